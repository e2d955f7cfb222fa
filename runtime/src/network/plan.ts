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
 * BRIDGE mode's management link: a second, isolated (restrict=on) user-network
 * NIC that only carries the container's 127.0.0.1:22 to the guest's SSH, so the
 * launcher (readiness, health) and `docker exec ... ssh` reach a guest that owns
 * the container's address. Link-local, so it cannot clash with a Docker network;
 * private to each VM, so every DevMachine can use the same addresses.
 */
export const MANAGEMENT = {
  netdev: "mgmt0",
  network: "169.254.100.0/24",
  gateway: "169.254.100.2",
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
  const dns = configuredDns.length > 0 ? { addresses: configuredDns, warnings: [] } : bridgeNameservers(facts.dns);
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
    ...((dns.addresses.length > 0 || facts.dns.search.length > 0) && {
      nameservers: { addresses: dns.addresses, ...(facts.dns.search.length > 0 && { search: facts.dns.search }) },
    }),
    mtu: facts.mtu,
  };
  // No routes and no DNS on the management NIC: all other traffic stays on the bridged one.
  const management: EthernetConfig = {
    match: { macaddress: MANAGEMENT.mac },
    dhcp4: false,
    dhcp6: false,
    addresses: [`${MANAGEMENT.guestAddress}/${MANAGEMENT.prefixLength}`],
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
        "user", `id=${MANAGEMENT.netdev}`, "restrict=on", "ipv6=off", `net=${MANAGEMENT.network}`, `host=${MANAGEMENT.gateway}`,
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
      `gateway ${facts.gateway ?? "none"}; DNS ${dns.addresses.join(" ") || "none"}${facts.dns.search.length ? `; search ${facts.dns.search.join(" ")}` : ""}`,
      `management: the container's 127.0.0.1:${DEFAULTS.sshPort} reaches the guest's SSH over an isolated link (${MANAGEMENT.guestAddress})`,
    ],
  };
}

/** Docker's embedded DNS, answering only inside the container's namespace. */
const DOCKER_DNS = "127.0.0.11";

/**
 * The resolvers a bridged VM can reach: Docker's embedded DNS (127.0.0.11)
 * is replaced by the upstream servers Docker recorded, loopback and IPv6
 * servers are dropped (the VM has neither the container's loopback nor IPv6).
 */
export function bridgeNameservers(dns: DnsInfo): { addresses: string[]; warnings: string[] } {
  const listed = dns.nameservers.length > 0 ? dns.nameservers : dns.upstream;
  const expanded = listed.flatMap((server) => (server === DOCKER_DNS ? dns.upstream : [server]));
  const addresses: string[] = [];
  const dropped: string[] = [];
  for (const server of expanded) {
    if (isIP(server) !== 4 || server.startsWith("127.")) dropped.push(server);
    else if (!addresses.includes(server)) addresses.push(server);
  }
  const warnings: string[] = [];
  const unreachable = [...new Set([...dropped, ...listed.filter((s) => s === DOCKER_DNS && dns.upstream.length === 0)])];
  if (addresses.length === 0) {
    warnings.push(
      `the VM gets no DNS server: the container lists only resolvers a bridged VM cannot reach (${unreachable.join(", ") || "none"}; ` +
        `127.0.0.11 is Docker's embedded DNS) and Docker recorded no upstream servers. ` +
        `Set DNS=<server>[,<server>...], or run the container on a network whose resolv.conf names a real server`,
    );
  } else if (dropped.length > 0) {
    warnings.push(`DNS servers the bridged VM cannot reach are left out: ${[...new Set(dropped)].join(", ")}`);
  }
  return { addresses, warnings };
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
