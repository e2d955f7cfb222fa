/**
 * Finds the upstream servers Docker's embedded DNS forwards to, when Docker did
 * not record them in resolv.conf (Docker before 25 never does). A bridged VM
 * needs them: the embedded DNS forwards outside names from the container's
 * namespace, which has no address once the VM took it over, while the VM itself
 * can reach those servers. The embedded DNS's forwarding socket lives in the
 * container's namespace, so one lookup through it leaves a connection-tracking
 * entry there (`src=<container address> ... dport=53`) naming the server.
 * Read-only apart from that one query; any failure just finds nothing.
 */
import { Resolver } from "node:dns/promises";
import { isIP } from "node:net";
import { readFile } from "node:fs/promises";
import { DOCKER_DNS } from "./plan.js";
import type { ContainerNetwork } from "./discover.js";

/**
 * The DNS servers (port 53, UDP or TCP, IPv4) that `source` sent to, in the order of
 * /proc/net/nf_conntrack's lines, loopback excluded. Only each entry's original
 * direction (its first src/dst/dport) counts.
 */
export function parseConntrackResolvers(text: string, source: string): string[] {
  const servers: string[] = [];
  for (const line of text.split("\n")) {
    const fields = line.trim().split(/\s+/);
    if (fields[0] !== "ipv4" || (fields[2] !== "udp" && fields[2] !== "tcp")) continue;
    const value = (key: string) => fields.find((field) => field.startsWith(`${key}=`))?.slice(key.length + 1);
    const server = value("dst");
    if (value("src") !== source || value("dport") !== "53" || server === undefined) continue;
    if (isIP(server) === 4 && !server.startsWith("127.") && !servers.includes(server)) servers.push(server);
  }
  return servers;
}

/** Whether the facts leave the VM without a known upstream: only Docker's embedded DNS, nothing recorded. */
export function needsUpstreamProbe(facts: ContainerNetwork): boolean {
  return facts.ipv4 !== undefined && facts.dns.nameservers.includes(DOCKER_DNS) && facts.dns.upstream.length === 0;
}

/** A name nobody answers (RFC 6761), so the embedded DNS forwards it and the answer matters to no one. */
const PROBE_NAME = "devmachines-resolver-probe.invalid";

/**
 * Asks Docker's embedded DNS for a name it must forward, then reads which servers
 * the container's address sent DNS to. Empty when the kernel has no conntrack
 * procfs, Docker did not forward (internal networks), or anything else fails.
 */
export async function probeDockerUpstream(
  containerAddress: string,
  options: { server?: string; conntrackPath?: string; timeoutMs?: number } = {},
): Promise<string[]> {
  const resolver = new Resolver({ timeout: options.timeoutMs ?? 3000, tries: 1 });
  try {
    resolver.setServers([options.server ?? DOCKER_DNS]);
    // NXDOMAIN or a timeout are the usual outcomes; the forwarding is what counts.
    await resolver.resolve4(PROBE_NAME).catch(() => undefined);
    const text = await readFile(options.conntrackPath ?? "/proc/net/nf_conntrack", "utf8");
    return parseConntrackResolvers(text, containerAddress);
  } catch {
    return [];
  } finally {
    resolver.cancel();
  }
}

/**
 * The facts with `dns.upstream` filled in by `probeDockerUpstream` when a BRIDGE VM
 * with no `DNS` setting would otherwise know no upstream server; otherwise unchanged.
 */
export async function withDockerUpstream(
  facts: ContainerNetwork,
  config: { network: "NAT" | "BRIDGE"; dns: string[] },
  probe: (address: string) => Promise<string[]> = probeDockerUpstream,
): Promise<ContainerNetwork> {
  if (config.network !== "BRIDGE" || config.dns.length > 0 || !needsUpstreamProbe(facts)) return facts;
  const upstream = await probe(facts.ipv4!.address);
  return upstream.length > 0 ? { ...facts, dns: { ...facts.dns, upstream } } : facts;
}
