/**
 * Read-only discovery of the container's network: which interface holds the
 * default route, its MAC, MTU, IPv4 address and gateway, the other IPv4
 * routes, and the resolvers. Pure parsers over `ip -j` output and
 * resolv.conf text, plus one thin function that runs the commands.
 */
import { isIP } from "node:net";
import { execa } from "execa";
import { ExitCode, LauncherError } from "../exitCodes.js";

/** Runs one command and returns its standard output; rejects when it fails. */
export type CommandRunner = (command: string, args: string[]) => Promise<{ stdout: string }>;

/** Runs commands directly in the launcher's own namespaces. */
export const defaultRunner: CommandRunner = async (command, args) => {
  const { stdout } = await execa(command, args);
  return { stdout };
};

/** One link from `ip -j addr show`. */
export interface LinkInfo {
  name: string;
  index: number;
  mac: string;
  mtu: number;
  flags: string[];
  linkType: string;
  /** The bridge (or bond) this link is enslaved to. */
  master?: string;
  ipv4: Ipv4Address[];
  /** Global-scope IPv6 addresses (link-local ones are left out). */
  ipv6: string[];
}

export interface Ipv4Address {
  address: string;
  prefixLength: number;
  /** As configured (Docker sets one); restored as it was. */
  broadcast?: string;
}

/** One IPv4 route from `ip -j route show`. */
export interface Ipv4Route {
  /** `default` or a CIDR such as `10.88.0.0/16` (host routes get /32). */
  destination: string;
  gateway?: string;
  device: string;
  scope?: string;
  protocol?: string;
  metric?: number;
}

/** What /etc/resolv.conf says, with Docker's record of its real upstream servers. */
export interface DnsInfo {
  /** `nameserver` lines, in order, as written (may be Docker's 127.0.0.11). */
  nameservers: string[];
  /** The last `search` (or `domain`) line's domains. */
  search: string[];
  /**
   * Servers Docker's embedded DNS forwards to, from its `# ExtServers: [...]`
   * comment (`host(X)` unwrapped). Empty when Docker wrote none (Docker
   * before 25 never writes it; default-bridge containers need none).
   */
  upstream: string[];
}

/** The facts about the container's network that the network plan needs. */
export interface ContainerNetwork {
  /** The interface holding the default route (usually eth0). */
  interface: string;
  mac: string;
  mtu: number;
  /** Its primary IPv4 address. */
  ipv4?: Ipv4Address;
  /** The default route's gateway. */
  gateway?: string;
  /** Every IPv4 route except the default route. */
  routes: Ipv4Route[];
  dns: DnsInfo;
  /** Global IPv6 addresses on the interface (BRIDGE carries IPv4 only). */
  ipv6: string[];
  /** Facts that may surprise the user (secondary addresses, multipath default route). */
  notes: string[];
}

interface RawAddrInfo {
  family?: string;
  local?: string;
  prefixlen?: number;
  broadcast?: string;
  scope?: string;
  secondary?: boolean;
}

interface RawLink {
  ifindex?: number;
  ifname?: string;
  flags?: string[];
  mtu?: number;
  master?: string;
  link_type?: string;
  address?: string;
  addr_info?: RawAddrInfo[];
}

interface RawRoute {
  dst?: string;
  gateway?: string;
  dev?: string;
  scope?: string;
  protocol?: string;
  metric?: number;
  type?: string;
  nexthops?: { gateway?: string; dev?: string }[];
}

function parseJsonArray(text: string, what: string): unknown[] {
  let value: unknown;
  try {
    value = JSON.parse(text.trim() === "" ? "[]" : text);
  } catch (error) {
    throw new Error(`cannot parse ${what} output as JSON: ${(error as Error).message}`);
  }
  if (!Array.isArray(value)) throw new Error(`${what} output is not a JSON array`);
  return value;
}

/** Parses `ip -j addr show`. */
export function parseIpAddr(json: string): LinkInfo[] {
  return (parseJsonArray(json, "ip -j addr show") as RawLink[]).map((link) => {
    const info = link.addr_info ?? [];
    return {
      name: link.ifname ?? "",
      index: link.ifindex ?? 0,
      mac: (link.address ?? "").toLowerCase(),
      mtu: link.mtu ?? 1500,
      flags: link.flags ?? [],
      linkType: link.link_type ?? "",
      ...(link.master !== undefined && { master: link.master }),
      // Primary addresses first: the kernel lists them first, but be explicit.
      ipv4: info
        .filter((a) => a.family === "inet" && a.local !== undefined && a.prefixlen !== undefined)
        .sort((a, b) => Number(a.secondary ?? false) - Number(b.secondary ?? false))
        .map((a) => ({ address: a.local!, prefixLength: a.prefixlen!, ...(a.broadcast !== undefined && { broadcast: a.broadcast }) })),
      ipv6: info.filter((a) => a.family === "inet6" && a.scope === "global" && a.local).map((a) => `${a.local}/${a.prefixlen}`),
    };
  });
}

/** Parses `ip -j route show` (IPv4, main table); multipath routes keep their first hop. */
export function parseIpRoute(json: string): Ipv4Route[] {
  const routes: Ipv4Route[] = [];
  for (const raw of parseJsonArray(json, "ip -j route show") as RawRoute[]) {
    if (raw.type !== undefined && raw.type !== "unicast") continue; // blackhole, unreachable, ...
    const hop = raw.nexthops?.[0];
    const device = raw.dev ?? hop?.dev;
    if (raw.dst === undefined || device === undefined) continue;
    const gateway = raw.gateway ?? hop?.gateway;
    const destination = raw.dst === "default" || raw.dst.includes("/") ? raw.dst : `${raw.dst}/32`;
    routes.push({
      destination,
      device,
      ...(gateway !== undefined && { gateway }),
      ...(raw.scope !== undefined && { scope: raw.scope }),
      ...(raw.protocol !== undefined && { protocol: raw.protocol }),
      ...(raw.metric !== undefined && { metric: raw.metric }),
    });
  }
  return routes;
}

/**
 * Parses resolv.conf the way Docker (and glibc) read it, plus Docker's
 * `# ExtServers: [host(192.168.1.1) 8.8.8.8]` comment.
 */
export function parseResolvConf(text: string): DnsInfo {
  const nameservers: string[] = [];
  let search: string[] = [];
  const upstream: string[] = [];
  for (const line of text.split(/\r?\n/)) {
    const ext = /^#\s*ExtServers:\s*\[(.*)\]\s*$/.exec(line);
    if (ext) {
      for (const token of ext[1]!.split(/\s+/)) {
        const address = /^host\((.*)\)$/.exec(token)?.[1] ?? token;
        // Older engines printed "invalid IP" for unusable entries.
        if (isIP(address) !== 0 && !upstream.includes(address)) upstream.push(address);
      }
      continue;
    }
    const fields = line.trim().split(/\s+/);
    if (fields[0] === undefined || fields[0] === "" || fields[0].startsWith("#") || fields[0].startsWith(";")) continue;
    if (fields[0] === "nameserver" && fields[1] !== undefined) {
      // A zone index (fe80::1%eth0) names an interface the guest does not have.
      if (isIP(fields[1]) !== 0 && !fields[1].includes("%")) nameservers.push(fields[1]);
    } else if ((fields[0] === "search" || fields[0] === "domain") && fields.length > 1) {
      search = fields.slice(1).filter((domain) => domain !== ".");
    }
  }
  return { nameservers, search, upstream };
}

/** Combines the parsed outputs into the facts the plan needs. */
export function summarizeNetwork(links: LinkInfo[], routes: Ipv4Route[], dns: DnsInfo): ContainerNetwork {
  const notes: string[] = [];
  const defaults = routes
    .filter((route) => route.destination === "default")
    .sort((a, b) => (a.metric ?? 0) - (b.metric ?? 0));
  const defaultRoute = defaults[0];
  let link = defaultRoute ? links.find((l) => l.name === defaultRoute.device) : undefined;
  if (!link) {
    // No default route (an internal network): take the first usable Ethernet link.
    link = links.find((l) => l.linkType === "ether" && !l.flags.includes("LOOPBACK") && l.flags.includes("UP") && l.ipv4.length > 0);
  }
  if (!link) {
    throw new LauncherError(
      "the container has no network interface with an IPv4 address (was it started with --network none?); the VM needs the container's network",
      ExitCode.Host,
    );
  }
  if (defaults.length > 1) notes.push(`${defaults.length} default routes found; using the one via ${defaultRoute!.device}`);
  if (link.ipv4.length > 1) {
    notes.push(`${link.name} has ${link.ipv4.length} IPv4 addresses; only the first, ${link.ipv4[0]!.address}/${link.ipv4[0]!.prefixLength}, is used`);
  }
  const gateway = defaultRoute && defaultRoute.device === link.name ? defaultRoute.gateway : undefined;
  return {
    interface: link.name,
    mac: link.mac,
    mtu: link.mtu,
    ...(link.ipv4[0] !== undefined && { ipv4: link.ipv4[0] }),
    ...(gateway !== undefined && { gateway }),
    routes: routes.filter((route) => route.destination !== "default"),
    dns,
    ipv6: link.ipv6,
    notes,
  };
}

/**
 * Discovers the container's network with `ip -j addr show`, `ip -j route show`
 * and `/etc/resolv.conf`. Changes nothing. `run` defaults to running the
 * commands directly; tests pass one that prefixes `ip netns exec NS`.
 */
export async function discoverNetwork(run: CommandRunner = defaultRunner): Promise<ContainerNetwork> {
  const [addr, route, resolv] = await Promise.all([
    run("ip", ["-j", "addr", "show"]),
    run("ip", ["-4", "-j", "route", "show"]),
    // Through the runner, so `ip netns exec` shows a namespace's own /etc/netns/NS/resolv.conf.
    run("cat", ["/etc/resolv.conf"]).catch(() => ({ stdout: "" })),
  ]);
  return summarizeNetwork(parseIpAddr(addr.stdout), parseIpRoute(route.stdout), parseResolvConf(resolv.stdout));
}
