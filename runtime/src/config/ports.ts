/**
 * Port forwards in Docker's port-spec syntax (go-connections `ParsePortSpec`):
 * `[ip:][hostPort:]containerPort[/protocol]`, ranges like `8000-8010`, IPv6
 * addresses in brackets. Inside a DevMachine Docker's "host" side is the container
 * and its "container" side is the guest, so the parsed forwards say so:
 * `PORTS=8080:80` forwards the container's port 8080 (`containerPort`) to the
 * guest's port 80 (`guestPort`); publish 8080 with `docker run -p`.
 */
import { isIP } from "node:net";

export type Protocol = "tcp" | "udp";

/** One forward from the container into the guest, ranges already expanded. */
export interface PortForward {
  protocol: Protocol;
  /** Address inside the container to listen on; empty means every address. */
  containerIp: string;
  /** Port on the container side (Docker's "host" port in the spec). */
  containerPort: number;
  /** Port on the guest side. */
  guestPort: number;
}

/** A refusal, worded as the rule that was broken. */
export class PortSpecError extends Error {}

/**
 * The most forwards `PORTS` may expand to (ranges count port by port). QEMU takes all of
 * them in one `-netdev` argument, and Linux limits one argument to 128 KiB: at about 40
 * characters a rule, 1024 stays far below that (and below anything slirp handles well).
 */
export const MAX_PORT_FORWARDS = 1024;

/** One spec, parsed and checked, before its range is expanded. */
interface PortRangeSpec {
  protocol: Protocol;
  containerIp: string;
  containerStart: number;
  guestStart: number;
  count: number;
}

function splitParts(spec: string): [ip: string, container: string, guest: string] {
  const parts = spec.split(":");
  const n = parts.length;
  if (n === 1) return ["", "", parts[0]!];
  if (n === 2) return ["", parts[0]!, parts[1]!];
  if (n === 3) return [parts[0]!, parts[1]!, parts[2]!];
  return [parts.slice(0, n - 2).join(":"), parts[n - 2]!, parts[n - 1]!];
}

/** go's ParseUint(s, 10, 16): digits only, at most 65535. */
function parsePortNumber(text: string): number | undefined {
  if (!/^\d+$/.test(text)) return undefined;
  const value = Number(text);
  return value <= 65535 ? value : undefined;
}

/**
 * go-connections' ParsePortRange as Docker's CLI uses it (up to v0.5.0, Docker 20.10 to 28):
 * `strings.Split(ports, "-")`, then parts[0] and parts[1] only, so `1-2-3` is the range 1-2.
 * Kept identical to that Docker on purpose (ports.test.ts documents it).
 */
function parsePortRange(text: string): [number, number] | undefined {
  if (text === "") return undefined;
  if (!text.includes("-")) {
    const port = parsePortNumber(text);
    return port === undefined ? undefined : [port, port];
  }
  const [startText, endText] = text.split("-");
  const start = parsePortNumber(startText!);
  const end = parsePortNumber(endText!);
  if (start === undefined || end === undefined || end < start) return undefined;
  return [start, end];
}

/** Parses one spec the way Docker does, then applies what QEMU user networking can forward. */
export function parsePortSpec(spec: string): PortForward[] {
  return expand(parseRangeSpec(spec));
}

function expand(range: PortRangeSpec): PortForward[] {
  return Array.from({ length: range.count }, (_, i) => ({
    protocol: range.protocol,
    containerIp: range.containerIp,
    containerPort: range.containerStart + i,
    guestPort: range.guestStart + i,
  }));
}

function parseRangeSpec(spec: string): PortRangeSpec {
  let [ip, containerPart, guestPart] = splitParts(spec);
  const slash = guestPart.indexOf("/");
  const guestPort = slash < 0 ? guestPart : guestPart.slice(0, slash);
  let protocol = slash < 0 ? "" : guestPart.slice(slash + 1);
  if (guestPort === "") throw new PortSpecError(`"${spec}": no port specified`);
  protocol = (protocol || "tcp").toLowerCase();
  if (!["tcp", "udp", "sctp"].includes(protocol)) {
    throw new PortSpecError(`"${spec}": invalid protocol "${protocol}" (tcp or udp)`);
  }
  if (protocol === "sctp") {
    throw new PortSpecError(`"${spec}": sctp is valid for Docker but QEMU user networking forwards only tcp and udp`);
  }
  if (ip.startsWith("[")) {
    if (!ip.endsWith("]")) throw new PortSpecError(`"${spec}": invalid IP address ${ip}`);
    ip = ip.slice(1, -1);
  }
  if (ip !== "" && isIP(ip) === 0) throw new PortSpecError(`"${spec}": invalid IP address "${ip}"`);

  const guestRange = parsePortRange(guestPort);
  if (!guestRange) throw new PortSpecError(`"${spec}": invalid port or range "${guestPort}" (1-65535, or start-end)`);
  let containerRange = guestRange;
  if (containerPart !== "") {
    const parsed = parsePortRange(containerPart);
    if (!parsed) throw new PortSpecError(`"${spec}": invalid port or range "${containerPart}" (1-65535, or start-end)`);
    containerRange = parsed;
  }
  const count = guestRange[1] - guestRange[0] + 1;
  if (containerRange[1] - containerRange[0] + 1 !== count) {
    // Docker would pick one free port from a host range; a QEMU forward needs fixed ports.
    throw new PortSpecError(`"${spec}": the ranges ${containerPart} and ${guestPort} must have the same length`);
  }
  if (guestRange[0] === 0 || containerRange[0] === 0) throw new PortSpecError(`"${spec}": port 0 cannot be forwarded`);

  return { protocol: protocol as Protocol, containerIp: ip, containerStart: containerRange[0], guestStart: guestRange[0], count };
}

/**
 * Parses a comma-separated list (blank entries ignored) entry by entry: the forwards of the
 * good entries, and one problem per bad entry, so that every problem is reported at once.
 * The limit is checked before a range is expanded, so a huge list costs no memory.
 */
export function parsePortList(list: string): { forwards: PortForward[]; problems: string[] } {
  const forwards: PortForward[] = [];
  const problems: string[] = [];
  let total = 0;
  for (const spec of list.split(",").map((item) => item.trim()).filter((item) => item !== "")) {
    try {
      const range = parseRangeSpec(spec);
      total += range.count;
      if (total <= MAX_PORT_FORWARDS) forwards.push(...expand(range));
    } catch (error) {
      if (!(error instanceof PortSpecError)) throw error;
      problems.push(error.message);
    }
  }
  if (total > MAX_PORT_FORWARDS) {
    problems.push(`expands to ${total} forwards (ranges count port by port); at most ${MAX_PORT_FORWARDS} fit on QEMU's command line`);
  }
  return { forwards, problems };
}

/** Parses a comma-separated list; throws the first problem. */
export function parsePortSpecs(list: string): PortForward[] {
  const { forwards, problems } = parsePortList(list);
  if (problems.length > 0) throw new PortSpecError(problems[0]);
  return forwards;
}
