/**
 * The `VNC` setting: QEMU's `-vnc` argument, narrowed to what is safe to hand to QEMU.
 *
 *   none                      a VGA card but no VNC server
 *   [host]:display[,opts]     TCP port 5900+display on host (empty: every address)
 *   unix:NAME[,opts]          a Unix socket VNC_SOCKET_DIR/NAME (a bare name, or that full path)
 *
 * A socket may live only in VNC_SOCKET_DIR: QEMU replaces whatever file is at the path with
 * its socket, so a free path would let the setting delete a disk. Options come from a known
 * list with checked values (`power-control`, `password`, TLS and the like are refused).
 * The argument QEMU receives is rebuilt from the parsed form, never passed through.
 */
import { isIP } from "node:net";

/** The one folder a VNC socket may be created in (mount a volume here to share it). */
export const VNC_SOCKET_DIR = "/run/vnc";

/** VNC's TCP ports are 5900 + display; the display number must keep that within 65535. */
export const VNC_BASE_PORT = 5900;
export const MAX_VNC_DISPLAY = 65535 - VNC_BASE_PORT;

export type VncListen =
  | { kind: "none" }
  | { kind: "tcp"; host: string; display: number }
  | { kind: "unix"; path: string };

export interface VncSpec {
  listen: VncListen;
  /** Known options, values checked, in the order given. */
  options: Array<[name: string, value: string]>;
}

const onOff = (value: string) => (value === "on" || value === "off" ? undefined : "on or off");
const wholeNumber = (min: number, max: number) => (value: string) =>
  /^\d{1,6}$/.test(value) && Number(value) >= min && Number(value) <= max ? undefined : `a whole number from ${min} to ${max}`;

/** The options accepted, each with the check of its value. `to` is checked against the display below. */
const OPTIONS: Record<string, (value: string) => string | undefined> = {
  share: (value) => (["allow-exclusive", "force-shared", "ignore"].includes(value) ? undefined : "allow-exclusive, force-shared or ignore"),
  lossy: onOff,
  "non-adaptive": onOff,
  "key-delay-ms": wholeNumber(0, 10000),
  connections: wholeNumber(1, 64),
  to: wholeNumber(0, MAX_VNC_DISPLAY),
};

const HOSTNAME = /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
const SOCKET_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export const VNC_RULE =
  `must be none, [host]:display (display 0-${MAX_VNC_DISPLAY}, e.g. :0) or unix:NAME (a socket in ${VNC_SOCKET_DIR}), ` +
  `then optional ,option=value (${Object.keys(OPTIONS).join(", ")})`;

/** Parses `VNC`; returns the problems (each a complete sentence fragment) or the spec. */
export function parseVnc(text: string): { ok: true; spec: VncSpec } | { ok: false; problems: string[] } {
  const problems: string[] = [];
  const [target = "", ...optionTexts] = text.trim().split(",");
  let listen: VncListen | undefined;
  if (target === "none") {
    listen = { kind: "none" };
  } else if (target.startsWith("unix:")) {
    const given = target.slice("unix:".length);
    const name = given.startsWith(`${VNC_SOCKET_DIR}/`) ? given.slice(VNC_SOCKET_DIR.length + 1) : given;
    if (SOCKET_NAME.test(name) && name !== "." && name !== "..") listen = { kind: "unix", path: `${VNC_SOCKET_DIR}/${name}` };
    else problems.push(`unix: needs a socket name (letters, digits, . _ -; at most 64) or a path directly in ${VNC_SOCKET_DIR}: QEMU replaces any file at the path`);
  } else {
    const match = /^(\[([0-9A-Fa-f:.]+)\]|[^:\[\]]*):(\d{1,5})$/.exec(target);
    const host = match ? (match[2] ?? match[1]!) : "";
    const display = match ? Number(match[3]) : NaN;
    if (!match) problems.push(VNC_RULE);
    else if (host !== "" && !(match[2] ? isIP(host) === 6 : isIP(host) === 4 || HOSTNAME.test(host))) problems.push(`has an invalid host "${host}" (an IPv4 address, [IPv6] or a host name)`);
    else if (display > MAX_VNC_DISPLAY) problems.push(`display ${display} is out of range: 0-${MAX_VNC_DISPLAY} (port 5900 + display must stay within 65535)`);
    else listen = { kind: "tcp", host, display };
  }
  const options: VncSpec["options"] = [];
  const seen = new Set<string>();
  for (const optionText of optionTexts) {
    const equals = optionText.indexOf("=");
    const name = equals < 0 ? optionText : optionText.slice(0, equals);
    const value = equals < 0 ? "" : optionText.slice(equals + 1);
    const check = Object.hasOwn(OPTIONS, name) ? OPTIONS[name]! : undefined;
    // An unknown option's name is shown only when it looks like one (it may be anything).
    const shown = /^[a-z-]{1,32}$/.test(name) ? `"${name}"` : "";
    if (!check) problems.push(`option ${shown} is not allowed (allowed: ${Object.keys(OPTIONS).join(", ")})`.replace("  ", " "));
    else if (seen.has(name)) problems.push(`option "${name}" is given twice`);
    else if (check(value)) problems.push(`option "${name}" must be ${check(value)}`);
    else if (name === "to" && (listen?.kind !== "tcp" || Number(value) < listen.display)) problems.push('option "to" needs a display form (:N) and a last display at least N');
    else options.push([name, value]);
    seen.add(name);
  }
  if (listen?.kind === "none" && optionTexts.length > 0) problems.push("none takes no options");
  return problems.length > 0 || !listen ? { ok: false, problems } : { ok: true, spec: { listen, options } };
}

/** The `-vnc` argument for QEMU, rebuilt from the parsed spec. */
export function vncArgument(spec: VncSpec): string {
  const { listen } = spec;
  const target =
    listen.kind === "none" ? "none" : listen.kind === "unix" ? `unix:${listen.path}` : `${isIP(listen.host) === 6 ? `[${listen.host}]` : listen.host}:${listen.display}`;
  return [target, ...spec.options.map(([name, value]) => `${name}=${value}`)].join(",");
}

/**
 * The container's TCP ports a display form listens on: 5900 + display, up to 5900 + `to`
 * (QEMU takes the first free one of that range). None for a socket or `none`.
 */
export function vncTcpPorts(spec: VncSpec): { first: number; last: number } | undefined {
  if (spec.listen.kind !== "tcp") return undefined;
  const to = spec.options.find(([name]) => name === "to");
  return { first: VNC_BASE_PORT + spec.listen.display, last: VNC_BASE_PORT + (to ? Number(to[1]) : spec.listen.display) };
}
