/**
 * The network plan: pure. From the configuration and the discovered facts it
 * decides the QEMU arguments, the guest's MAC, the cloud-init network-config
 * (version 2, matched by MAC) and, for BRIDGE, what the bridge setup must do.
 */
import { isIP } from "node:net";
import { DEFAULTS, type LauncherConfig, type PortForward } from "../config/index.js";
import { ExitCode, LauncherError } from "../exitCodes.js";
import type { ContainerNetwork, DnsInfo, Ipv4Route } from "./discover.js";
import { derivedMac, normalizeMac, QEMU_DEFAULT_MAC } from "./mac.js";

/** Names used inside the container for BRIDGE mode. */
export const BRIDGE_NAME = "br0";
export const TAP_NAME = "tap0";
/** QEMU's id for the one network backend. */
export const NETDEV_ID = "net0";
/** The guest's MTU under QEMU user networking (slirp's own MTU). */
export const SLIRP_MTU = 1500;

/**
 * BRIDGE mode's management link: a second user-network NIC, private to each VM,
 * that carries the container's 127.0.0.1:22 to the guest's SSH (so the launcher's
 * readiness and health checks, and `docker exec ... ssh`, reach a guest that owns
 * the container's address) and QEMU's DNS forwarder, which asks the container's
 * own resolver (Docker's embedded DNS at 127.0.0.11 answers only inside the
 * container's namespace, where a bridged VM cannot send). Link-local, so it cannot
 * clash with a Docker network; private, so every DevMachine can use the same addresses.
 */
export const MANAGEMENT = {
  netdev: "mgmt0",
  network: "169.254.100.0/24",
  gateway: "169.254.100.2",
  /** QEMU's DNS forwarder on this link. */
  dns: "169.254.100.3",
  guestAddress: "169.254.100.15",
  prefixLength: 24,
  mac: "52:54:00:12:34:57",
} as const;

/** What `setupBridge` does: the VM takes over the container interface's IPv4 address. */
export interface BridgePlan {
  bridge: string;
  tap: string;
  /** The container's interface that joins the bridge (usually eth0). */
  containerInterface: string;
  /** The IPv4 address moved from the container interface to the guest. */
  address: string;
  prefixLength: number;
  /** The address's broadcast as it was, for undo. */
  broadcast?: string;
  gateway?: string;
  /** The container interface's MAC before setup; the guest NIC gets it. */
  originalMac: string;
  /** The locally administered MAC the container interface gets instead. */
  containerMac: string;
  /** The bridge's own MAC, fixed so it never equals the guest's (frames to it would stop at the bridge). */
  bridgeMac: string;
  mtu: number;
  /**
   * Routes through the container interface that go away with its address
   * (the default route included, kernel subnet routes excluded); undo puts them back.
   */
  routes: Ipv4Route[];
}

/** One interface of a cloud-init network-config version 2. */
export interface EthernetConfig {
  match: { macaddress: string };
  dhcp4: boolean;
  dhcp6: boolean;
  addresses?: string[];
  routes?: { to: string; via: string }[];
  nameservers?: { addresses: string[]; search?: string[] };
  mtu: number;
}

/** cloud-init network-config version 2 (netplan-like), as the NoCloud seed carries it. */
export interface NetworkConfig {
  version: 2;
  ethernets: Record<string, EthernetConfig>;
}

/** The whole network plan; printed by `--dry-run`. */
export interface NetworkPlan {
  mode: "NAT" | "BRIDGE";
  /** The `-netdev` / `-device` pair. */
  qemuArgs: string[];
  guestMac: string;
  networkConfig: NetworkConfig;
  /** BRIDGE only. */
  bridge?: BridgePlan;
  /** NAT only: container port -> guest port, SSH first. Empty for BRIDGE. */
  forwards: PortForward[];
  warnings: string[];
  /** One line per fact, for people reading a dry run. */
  describe: string[];
}

/** The key of the guest's one interface in network-config; matching is by MAC, so the name is ours. */
const GUEST_NIC = "primary";

/**
 * Plans the network. Pure: the same config and facts give the same plan.
 * Throws LauncherError(Config) for a forward QEMU cannot make, and
 * LauncherError(Host) when BRIDGE finds no IPv4 address to hand over.
 */
export function planNetwork(config: Pick<LauncherConfig, "network" | "ports"> & { dns?: string[] }, facts: ContainerNetwork): NetworkPlan {
  const dns = config.dns ?? [];
  return config.network === "BRIDGE" ? planBridge(facts, dns) : planNat(config.ports, facts, dns);
}

function planNat(ports: PortForward[], facts: ContainerNetwork, dns: string[]): NetworkPlan {
  const warnings: string[] = [];
  const forwards: PortForward[] = [
    { protocol: "tcp", containerIp: "", containerPort: DEFAULTS.sshPort, guestPort: DEFAULTS.sshPort },
    ...ports,
  ];
  const hostfwds = forwards.map((forward) => hostfwd(forward, warnings));
  // Behind slirp the guest is alone on its network, so a fixed MAC never
  // collides, and unlike one derived from the container's (Docker >= 25
  // randomizes those) it survives re-creating the container with the same disk.
  const guestMac = QEMU_DEFAULT_MAC;
  return {
    mode: "NAT",
    qemuArgs: [
      "-netdev",
      ["user", `id=${NETDEV_ID}`, ...hostfwds.map((rule) => `hostfwd=${rule}`)].join(","),
      "-device",
      `virtio-net-pci,netdev=${NETDEV_ID},mac=${guestMac}`,
    ],
    guestMac,
    networkConfig: {
      version: 2,
      // slirp's DHCP hands out 10.0.2.15 and its DNS proxy 10.0.2.3, which asks the container's resolver.
      // DNS (the variable) adds resolvers the guest asks directly, through slirp's NAT.
      ethernets: {
        [GUEST_NIC]: {
          match: { macaddress: guestMac }, dhcp4: true, dhcp6: false,
          ...(dns.length > 0 && { nameservers: { addresses: dns } }),
          mtu: SLIRP_MTU,
        },
      },
    },
    forwards,
    warnings,
    describe: [
      `NAT: QEMU user networking behind the container's ${facts.interface}; the guest gets 10.0.2.15 by DHCP, MAC ${guestMac}`,
      ...forwards.map((f) => `forward ${f.protocol} ${f.containerIp ? `${f.containerIp}:` : ""}${f.containerPort} (container) -> ${f.guestPort} (guest)`),
    ],
  };
}

/**
 * One QEMU `hostfwd` rule, `PROTO:HOSTIP:HOSTPORT-:GUESTPORT`. QEMU (up to
 * at least 10.x) parses the host address with inet_aton, so it accepts IPv4
 * only: `tcp:[::1]:2222-:22` fails with "Bad host address" (QEMU issue #2876).
 */
function hostfwd(forward: PortForward, warnings: string[]): string {
  let hostIp = forward.containerIp;
  if (isIP(hostIp) === 6) {
    if (hostIp === "::" || hostIp === "0:0:0:0:0:0:0:0") {
      warnings.push(
        `PORTS: ${forward.protocol} [${hostIp}]:${forward.containerPort} listens on every IPv4 address of the container instead: QEMU user networking cannot listen on IPv6`,
      );
      hostIp = "";
    } else {
      throw new LauncherError(
        `PORTS: cannot forward ${forward.protocol} [${hostIp}]:${forward.containerPort}: QEMU user networking listens on IPv4 addresses only (give an IPv4 address, or none for all)`,
        ExitCode.Config,
      );
    }
  }
  return `${forward.protocol}:${hostIp}:${forward.containerPort}-:${forward.guestPort}`;
}

function planBridge(facts: ContainerNetwork, configuredDns: string[]): NetworkPlan {
  const warnings = [...facts.notes];
  const originalMac = normalizeMac(facts.mac);
  if (!facts.ipv4 || !originalMac) {
    throw new LauncherError(
      `NETWORK=BRIDGE needs an IPv4 address and a MAC address on the container's ${facts.interface}, and it has ${facts.ipv4 ? "no usable MAC" : "no IPv4 address"}; use NETWORK=NAT`,
      ExitCode.Host,
    );
  }
  const { address, prefixLength } = facts.ipv4;
  const containerMac = derivedMac(originalMac, "container", [originalMac]);
  const bridgeMac = derivedMac(originalMac, "bridge", [originalMac, containerMac]);

  const subnet = networkOf(address, prefixLength);
  const own = facts.routes.filter((route) => route.device === facts.interface);
  const isSubnetRoute = (route: Ipv4Route) => route.protocol === "kernel" && route.destination === `${subnet}/${prefixLength}`;
  const restore: Ipv4Route[] = [
    ...own.filter((route) => !isSubnetRoute(route)),
    ...(facts.gateway !== undefined ? [{ destination: "default", gateway: facts.gateway, device: facts.interface }] : []),
  ];
  const guestRoutes = [
    ...(facts.gateway !== undefined ? [{ to: "0.0.0.0/0", via: facts.gateway }] : []),
    ...own.filter((route) => route.gateway !== undefined).map((route) => ({ to: route.destination, via: route.gateway! })),
  ];
  for (const route of own.filter((r) => r.gateway === undefined && !isSubnetRoute(r))) {
    warnings.push(`the on-link route to ${route.destination} via ${facts.interface} is not given to the VM`);
  }
  const elsewhere = [...new Set(facts.routes.filter((r) => r.device !== facts.interface).map((r) => r.device))];
  if (elsewhere.length > 0) {
    warnings.push(`the VM is bridged to ${facts.interface} only: networks reached through ${elsewhere.join(", ")} stay with the container`);
  }
  if (facts.gateway === undefined) warnings.push(`${facts.interface} has no default route: the VM gets no gateway`);
  if (facts.ipv6.length > 0) {
    warnings.push(`BRIDGE hands over IPv4 only: the container's IPv6 address ${facts.ipv6.join(", ")} is not given to the VM`);
  }
  // DNS overrides: then the guest asks only those servers, over its bridged NIC.
  const dns = configuredDns.length > 0 ? { direct: configuredDns, management: false, warnings: [] } : bridgeDns(facts.dns);
  warnings.push(...dns.warnings);

  const plan: BridgePlan = {
    bridge: BRIDGE_NAME,
    tap: TAP_NAME,
    containerInterface: facts.interface,
    address,
    prefixLength,
    ...(facts.ipv4.broadcast !== undefined && { broadcast: facts.ipv4.broadcast }),
    ...(facts.gateway !== undefined && { gateway: facts.gateway }),
    originalMac,
    containerMac,
    bridgeMac,
    mtu: facts.mtu,
    routes: restore,
  };
  const nic: EthernetConfig = {
    match: { macaddress: originalMac },
    dhcp4: false,
    dhcp6: false,
    addresses: [`${address}/${prefixLength}`],
    ...(guestRoutes.length > 0 && { routes: guestRoutes }),
    ...((dns.direct.length > 0 || facts.dns.search.length > 0) && {
      nameservers: { addresses: dns.direct, ...(facts.dns.search.length > 0 && { search: facts.dns.search }) },
    }),
    mtu: facts.mtu,
  };
  // No routes on the management NIC: all other traffic stays on the bridged one. Its DNS
  // server is a link of its own to systemd-resolved, which asks every link's servers and
  // takes the first answer that finds the name: Docker's names come from here, outside
  // names from the direct servers when Docker's DNS cannot forward them (see bridgeDns).
  const management: EthernetConfig = {
    match: { macaddress: MANAGEMENT.mac },
    dhcp4: false,
    dhcp6: false,
    addresses: [`${MANAGEMENT.guestAddress}/${MANAGEMENT.prefixLength}`],
    ...(dns.management && { nameservers: { addresses: [MANAGEMENT.dns] } }),
    mtu: SLIRP_MTU,
  };
  return {
    mode: "BRIDGE",
    qemuArgs: [
      "-netdev",
      `tap,id=${NETDEV_ID},ifname=${TAP_NAME},script=no,downscript=no`,
      "-device",
      `virtio-net-pci,netdev=${NETDEV_ID},mac=${originalMac}`,
      "-netdev",
      [
        // ipv6=off: slirp would advertise an IPv6 default route on this NIC that leads nowhere.
        // Not restrict=on: restricted slirp drops every guest UDP packet but DHCP and TFTP, its
        // DNS forwarder's included. The guest has no route over this link, and beyond the DNS
        // forwarder it reaches only the container's loopback (as 169.254.100.2), as a NAT guest
        // does (as 10.0.2.2); the container's namespace has no other route once bridged.
        "user", `id=${MANAGEMENT.netdev}`, "ipv6=off", `net=${MANAGEMENT.network}`, `host=${MANAGEMENT.gateway}`, `dns=${MANAGEMENT.dns}`,
        `hostfwd=tcp:127.0.0.1:${DEFAULTS.sshPort}-${MANAGEMENT.guestAddress}:${DEFAULTS.sshPort}`,
      ].join(","),
      "-device",
      `virtio-net-pci,netdev=${MANAGEMENT.netdev},mac=${MANAGEMENT.mac}`,
    ],
    guestMac: originalMac,
    networkConfig: { version: 2, ethernets: { [GUEST_NIC]: nic, management } },
    bridge: plan,
    forwards: [],
    warnings,
    describe: [
      `BRIDGE: the VM takes over ${address}/${prefixLength} and MAC ${originalMac} from the container's ${facts.interface}`,
      `${facts.interface} (now MAC ${containerMac}) and ${TAP_NAME} join bridge ${BRIDGE_NAME}; MTU ${facts.mtu}`,
      `gateway ${facts.gateway ?? "none"}; DNS ${describeBridgeDns(dns)}${facts.dns.search.length ? `; search ${facts.dns.search.join(" ")}` : ""}`,
      `management: the container's 127.0.0.1:${DEFAULTS.sshPort} reaches the guest's SSH over a link private to this VM (${MANAGEMENT.guestAddress})`,
    ],
  };
}

/** Docker's embedded DNS, answering only inside the container's namespace. */
export const DOCKER_DNS = "127.0.0.11";

/** Where a bridged VM sends its DNS queries. */
export interface BridgeDns {
  /** Servers the VM asks directly over its bridged NIC. */
  direct: string[];
  /**
   * Whether the VM also asks the container's own resolver, through QEMU's DNS
   * forwarder on the management link: true when the container's first IPv4
   * resolver is a loopback one (Docker's embedded DNS, which answers for the
   * containers and aliases on its networks), which only the container reaches.
   */
  management: boolean;
  warnings: string[];
}

/**
 * The resolvers of a bridged VM. QEMU's forwarder (like glibc) asks the first
 * IPv4 `nameserver` of the container's resolv.conf; when that is a loopback
 * address (Docker's 127.0.0.11) the management link carries the VM's queries to
 * it. Docker's embedded DNS answers container names itself but forwards other
 * names from the container's namespace, which has no address once the VM took it
 * (Docker 25+ forwards from the host instead when the host's resolver is a loopback
 * one). So the upstream servers Docker uses go to the VM as well, directly over
 * its bridged NIC: the VM owns the container's address and routes. Loopback and
 * IPv6 servers are never direct (the VM has neither the container's loopback nor IPv6).
 */
export function bridgeDns(dns: DnsInfo): BridgeDns {
  const firstV4 = dns.nameservers.find((server) => isIP(server) === 4);
  const management = firstV4 !== undefined && firstV4.startsWith("127.");
  const listed = dns.nameservers.length > 0 ? dns.nameservers : dns.upstream;
  const expanded = listed.flatMap((server) => (server === DOCKER_DNS ? dns.upstream : [server]));
  const direct: string[] = [];
  const dropped: string[] = [];
  for (const server of expanded) {
    if (isIP(server) !== 4 || server.startsWith("127.")) dropped.push(server);
    else if (!direct.includes(server)) direct.push(server);
  }
  const warnings: string[] = [];
  if (!management && direct.length === 0) {
    warnings.push(
      `the VM gets no DNS server: the container lists none a bridged VM can reach (${[...new Set(dropped)].join(", ") || "none"}). ` +
        `Set DNS=<server>[,<server>...]`,
    );
  } else if (management && direct.length === 0 && listed.includes(DOCKER_DNS)) {
    warnings.push(
      "Docker recorded no upstream DNS servers (Docker before 25 never does) and none were seen in use: " +
        "the VM resolves Docker's names, but outside names only where Docker's embedded DNS can still forward them " +
        "(it forwards from the container's namespace, which the VM's bridge leaves without an address). " +
        "Set DNS=<server>[,<server>...] if outside names fail",
    );
  }
  // Loopback servers are the container's own resolvers: reached through the management link, or named in the warning above.
  const lost = [...new Set(dropped.filter((server) => !server.startsWith("127.")))];
  if (lost.length > 0 && (management || direct.length > 0)) warnings.push(`DNS servers the bridged VM cannot reach are left out: ${lost.join(", ")}`);
  return { direct, management, warnings };
}

function describeBridgeDns(dns: BridgeDns): string {
  const parts = [...dns.direct, ...(dns.management ? [`${MANAGEMENT.dns} (the container's resolver, over the management link)`] : [])];
  return parts.join(" ") || "none";
}

function networkOf(address: string, prefixLength: number): string {
  const value = address.split(".").reduce((sum, octet) => sum * 256 + Number(octet), 0);
  const mask = prefixLength === 0 ? 0 : Number((0xffffffffn << BigInt(32 - prefixLength)) & 0xffffffffn);
  const network = (value & mask) >>> 0;
  return [24, 16, 8, 0].map((shift) => (network >>> shift) & 255).join(".");
}

/**
 * The network-config file's text. JSON, which YAML reads as-is: cloud-init's
 * YAML 1.1 parser would read an unquoted all-digit MAC such as
 * 52:54:00:12:34:56 as a base-60 integer, and every string here is quoted.
 */
export function networkConfigText(config: NetworkConfig): string {
  return `${JSON.stringify(config, null, 2)}\n`;
}
