/**
 * The side effects of BRIDGE mode, with `ip` only: a bridge holding the
 * container's interface and a TAP for QEMU, the IPv4 address taken off the
 * container interface (the guest owns it now) and the interface's MAC handed
 * to the guest. Every step is undone in reverse order, on failure and on exit.
 */
import { constants as fsConstants } from "node:fs";
import { open, readFile } from "node:fs/promises";
import { ExitCode, LauncherError } from "../exitCodes.js";
import type { CommandRunner, Ipv4Route } from "./discover.js";
import type { BridgePlan } from "./plan.js";

/** Undoes everything `setupBridge` did. Safe to call twice. */
export interface BridgeHandle {
  undo(): Promise<void>;
}

interface Step {
  name: string;
  do: () => Promise<void>;
  undo: () => Promise<void>;
  /** Several commands, so a failure may leave part done; its undo is harmless when nothing was. */
  undoIfFailed?: boolean;
}

/** Arguments for `ip route` that name one route, for `del` and `replace` alike. */
function routeArgs(route: Ipv4Route): string[] {
  return [
    route.destination,
    ...(route.gateway !== undefined ? ["via", route.gateway] : []),
    "dev",
    route.device,
    ...(route.metric !== undefined ? ["metric", String(route.metric)] : []),
  ];
}

function routeExtras(route: Ipv4Route): string[] {
  return [
    ...(route.protocol !== undefined && route.protocol !== "kernel" ? ["proto", route.protocol] : []),
    ...(route.scope !== undefined && route.gateway === undefined ? ["scope", route.scope] : []),
  ];
}

function describeError(error: unknown): string {
  const stderr = (error as { stderr?: unknown }).stderr;
  const text = typeof stderr === "string" && stderr.trim() !== "" ? stderr.trim() : error instanceof Error ? error.message : String(error);
  return text.split("\n")[0]!;
}

function steps(plan: BridgePlan, run: CommandRunner): Step[] {
  const ip = (...args: string[]) => run("ip", args).then(() => undefined);
  const iface = plan.containerInterface;
  const setMac = async (mac: string) => {
    try {
      await ip("link", "set", "dev", iface, "address", mac);
    } catch {
      // Drivers without live MAC change (veth has it) need the link down.
      await ip("link", "set", "dev", iface, "down");
      await ip("link", "set", "dev", iface, "address", mac);
      await ip("link", "set", "dev", iface, "up");
    }
  };
  const ensureFree = async (name: string) => {
    // `ip tuntap add` would silently reuse an existing persistent TAP, and undo would then delete it.
    const taken = await run("ip", ["-j", "link", "show", "dev", name]).then(
      () => true,
      () => false,
    );
    if (taken) {
      throw new LauncherError(`a network device named ${name} already exists in the container; BRIDGE mode creates its own ${name}`, ExitCode.Host);
    }
  };
  return [
    { name: `check that ${plan.bridge} is free`, do: () => ensureFree(plan.bridge), undo: async () => {} },
    { name: `check that ${plan.tap} is free`, do: () => ensureFree(plan.tap), undo: async () => {} },
    {
      name: `create bridge ${plan.bridge}`,
      do: async () => {
        // STP off and no forward delay: the port forwards at once, the guest's DHCP-less boot needs no wait.
        await ip("link", "add", "name", plan.bridge, "address", plan.bridgeMac, "mtu", String(plan.mtu), "type", "bridge", "stp_state", "0", "forward_delay", "0");
      },
      undo: () => ip("link", "del", "dev", plan.bridge),
    },
    {
      name: `create TAP ${plan.tap}`,
      do: () => ip("tuntap", "add", "dev", plan.tap, "mode", "tap"),
      undo: () => ip("link", "del", "dev", plan.tap),
    },
    {
      name: `attach ${plan.tap} to ${plan.bridge}`,
      do: async () => {
        await ip("link", "set", "dev", plan.tap, "mtu", String(plan.mtu));
        await ip("link", "set", "dev", plan.tap, "master", plan.bridge);
        await ip("link", "set", "dev", plan.tap, "up");
      },
      undo: () => ip("link", "set", "dev", plan.tap, "nomaster"),
      undoIfFailed: true,
    },
    ...plan.routes.map((route) => ({
      name: `remove route ${route.destination}${route.gateway ? ` via ${route.gateway}` : ""}`,
      do: () => ip("route", "del", ...routeArgs(route)),
      undo: () => ip("route", "replace", ...routeArgs(route), ...routeExtras(route)),
    })),
    {
      name: `remove ${plan.address}/${plan.prefixLength} from ${iface}`,
      do: () => ip("addr", "del", `${plan.address}/${plan.prefixLength}`, "dev", iface),
      undo: () => ip("addr", "add", `${plan.address}/${plan.prefixLength}`, ...(plan.broadcast ? ["brd", plan.broadcast] : []), "dev", iface),
    },
    {
      name: `give ${iface} the MAC ${plan.containerMac}`,
      do: () => setMac(plan.containerMac),
      undo: () => setMac(plan.originalMac),
      undoIfFailed: true,
    },
    {
      name: `attach ${iface} to ${plan.bridge}`,
      do: () => ip("link", "set", "dev", iface, "master", plan.bridge),
      undo: () => ip("link", "set", "dev", iface, "nomaster"),
    },
    {
      name: `bring ${plan.bridge} up`,
      do: () => ip("link", "set", "dev", plan.bridge, "up"),
      undo: () => ip("link", "set", "dev", plan.bridge, "down"),
    },
  ];
}

async function undoAll(done: Step[]): Promise<string[]> {
  const failures: string[] = [];
  for (const step of [...done].reverse()) {
    try {
      await step.undo();
    } catch (error) {
      failures.push(`undo "${step.name}": ${describeError(error)}`);
    }
  }
  return failures;
}

/**
 * Builds the bridge for BRIDGE mode through `run` (`ip` commands only).
 * On failure the steps already done are undone and a LauncherError is thrown;
 * on success the handle's `undo()` restores the container interface (address,
 * MAC, routes) and removes the bridge and TAP.
 */
export async function setupBridge(plan: BridgePlan, run: CommandRunner): Promise<BridgeHandle> {
  const done: Step[] = [];
  for (const step of steps(plan, run)) {
    try {
      await step.do();
      done.push(step);
    } catch (error) {
      const partial = step.undoIfFailed ? [{ ...step, undo: () => step.undo().catch(() => undefined) }] : [];
      const failures = await undoAll([...done, ...partial]);
      const rollback = failures.length === 0 ? "everything done before was undone" : `undoing failed too: ${failures.join("; ")}`;
      const code = error instanceof LauncherError ? error.exitCode : ExitCode.Failure;
      throw new LauncherError(`BRIDGE setup failed at "${step.name}": ${describeError(error)} (${rollback})`, code);
    }
  }
  let undone = false;
  return {
    async undo() {
      if (undone) return;
      undone = true;
      const failures = await undoAll(done);
      if (failures.length > 0) throw new LauncherError(`BRIDGE teardown incomplete: ${failures.join("; ")}`, ExitCode.Failure);
    },
  };
}

/** CAP_NET_ADMIN's bit in the capability sets. */
const CAP_NET_ADMIN = 12;

/** What the container lacks for BRIDGE mode, each with its `docker run` fix; empty when nothing. */
export function bridgePrerequisiteProblems(facts: { capEff?: string; tun: "ok" | "missing" | "denied" }): string[] {
  const problems: string[] = [];
  const hasNetAdmin = facts.capEff !== undefined && /^[0-9a-f]+$/i.test(facts.capEff) && ((BigInt(`0x${facts.capEff}`) >> BigInt(CAP_NET_ADMIN)) & 1n) === 1n;
  if (!hasNetAdmin) problems.push("the process lacks CAP_NET_ADMIN (add --cap-add NET_ADMIN to docker run)");
  if (facts.tun === "missing") problems.push("/dev/net/tun does not exist (add --device /dev/net/tun to docker run)");
  if (facts.tun === "denied") problems.push("/dev/net/tun cannot be opened (add --device /dev/net/tun to docker run)");
  return problems;
}

/** Reads `CapEff` from a /proc/PID/status text. */
export function parseCapEff(statusText: string): string | undefined {
  return /^CapEff:\s*([0-9a-fA-F]+)\s*$/m.exec(statusText)?.[1];
}

/**
 * Checks that BRIDGE mode can work here: CAP_NET_ADMIN in the effective set
 * (/proc/self/status, bit 12) and a usable /dev/net/tun. Throws
 * LauncherError(Host) naming what to add to `docker run`.
 */
export async function checkBridgePrerequisites(paths: { status?: string; tun?: string } = {}): Promise<void> {
  const status = await readFile(paths.status ?? "/proc/self/status", "utf8").catch(() => "");
  let tun: "ok" | "missing" | "denied" = "ok";
  try {
    // Opening creates no device; only TUNSETIFF would.
    const handle = await open(paths.tun ?? "/dev/net/tun", fsConstants.O_RDWR);
    await handle.close();
  } catch (error) {
    tun = (error as NodeJS.ErrnoException).code === "ENOENT" ? "missing" : "denied";
  }
  const capEff = parseCapEff(status);
  const problems = bridgePrerequisiteProblems({ ...(capEff !== undefined && { capEff }), tun });
  if (problems.length > 0) {
    throw new LauncherError(
      `NETWORK=BRIDGE cannot work in this container: ${problems.join("; ")}. ` +
        "For example: docker run --cap-add NET_ADMIN --device /dev/net/tun -e NETWORK=BRIDGE ...",
      ExitCode.Host,
    );
  }
}
