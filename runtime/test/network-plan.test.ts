import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parse, stringify } from "yaml";
import { parsePortSpecs } from "../src/config/index.js";
import { ExitCode, LauncherError } from "../src/exitCodes.js";
import type { ContainerNetwork } from "../src/network/discover.js";
import { derivedMac, normalizeMac } from "../src/network/mac.js";
import { bridgeDns, networkConfigText, planNetwork } from "../src/network/plan.js";

/** A container on a user-defined Docker network, as discovered (Docker 25+ resolv.conf). */
const facts: ContainerNetwork = {
  interface: "eth0",
  mac: "02:42:ac:12:00:02",
  mtu: 1450,
  ipv4: { address: "172.18.0.2", prefixLength: 16 },
  gateway: "172.18.0.1",
  routes: [
    { destination: "172.18.0.0/16", device: "eth0", scope: "link", protocol: "kernel" },
    { destination: "10.88.0.0/16", gateway: "172.18.0.254", device: "eth0" },
  ],
  dns: { nameservers: ["127.0.0.11"], search: ["corp.example"], upstream: ["192.168.65.7", "127.0.0.53"] },
  ipv6: [],
  notes: [],
};

/** What the cloud-init seed will carry, read back as cloud-init reads it. */
const roundTrip = (value: unknown): unknown => parse(stringify(value));

const isLocalUnicast = (mac: string) => {
  const first = parseInt(mac.slice(0, 2), 16);
  return (first & 0x02) === 0x02 && (first & 0x01) === 0;
};

describe("planNetwork: NAT", () => {
  it("forwards SSH first, then each port, in QEMU's hostfwd syntax", () => {
    const plan = planNetwork({ network: "NAT", ports: parsePortSpecs("8080:80,127.0.0.1:5353:53/udp,9000-9001") }, facts);
    assert.equal(plan.mode, "NAT");
    assert.deepEqual(plan.qemuArgs, [
      "-netdev",
      "user,id=net0,hostfwd=tcp::22-:22,hostfwd=tcp::8080-:80,hostfwd=udp:127.0.0.1:5353-:53,hostfwd=tcp::9000-:9000,hostfwd=tcp::9001-:9001",
      "-device",
      "virtio-net-pci,netdev=net0,mac=52:54:00:12:34:56",
    ]);
    assert.deepEqual(plan.forwards.map((f) => `${f.protocol}/${f.containerPort}->${f.guestPort}`), ["tcp/22->22", "tcp/8080->80", "udp/5353->53", "tcp/9000->9000", "tcp/9001->9001"]);
    assert.equal(plan.bridge, undefined);
    assert.deepEqual(plan.warnings, []);
  });

  it("uses DHCP on the NIC matched by MAC, never by name", () => {
    const plan = planNetwork({ network: "NAT", ports: [] }, facts);
    assert.deepEqual(roundTrip(plan.networkConfig), {
      version: 2,
      ethernets: { primary: { match: { macaddress: "52:54:00:12:34:56" }, dhcp4: true, dhcp6: false, mtu: 1500 } },
    });
    assert.doesNotMatch(stringify(plan.networkConfig), /eth0|ens\d|enp\d|set-name/);
  });

  it("keeps the guest MAC stable whatever the container's MAC (Docker may randomize it)", () => {
    const a = planNetwork({ network: "NAT", ports: [] }, facts);
    const b = planNetwork({ network: "NAT", ports: [] }, { ...facts, mac: "6e:1f:00:aa:bb:cc" });
    assert.equal(a.guestMac, b.guestMac);
    assert.ok(isLocalUnicast(a.guestMac));
  });

  it("listens on IPv4 for [::] (QEMU cannot listen on IPv6) and says so", () => {
    const plan = planNetwork({ network: "NAT", ports: parsePortSpecs("[::]:8443:443") }, facts);
    assert.match(plan.qemuArgs[1]!, /hostfwd=tcp::8443-:443$/);
    assert.match(plan.warnings.join("\n"), /\[::\]:8443 listens on every IPv4 address/);
  });

  it("refuses a specific IPv6 address, which QEMU's hostfwd rejects (Bad host address)", () => {
    assert.throws(
      () => planNetwork({ network: "NAT", ports: parsePortSpecs("[::1]:8080:80/udp") }, facts),
      (error: unknown) => error instanceof LauncherError && error.exitCode === ExitCode.Config && /udp \[::1\]:8080/.test(error.message),
    );
  });

  it("describes itself for the dry run", () => {
    const plan = planNetwork({ network: "NAT", ports: parsePortSpecs("8080:80") }, facts);
    assert.match(plan.describe.join("\n"), /forward tcp 8080 \(container\) -> 80 \(guest\)/);
  });
});

describe("planNetwork: BRIDGE", () => {
  const plan = planNetwork({ network: "BRIDGE", ports: parsePortSpecs("8080:80") }, facts);

  it("gives QEMU the TAP and the container's original MAC, plus a management link for SSH from the container and DNS to it", () => {
    assert.deepEqual(plan.qemuArgs, [
      "-netdev", "tap,id=net0,ifname=tap0,script=no,downscript=no", "-device", "virtio-net-pci,netdev=net0,mac=02:42:ac:12:00:02",
      "-netdev", "user,id=mgmt0,ipv6=off,net=169.254.100.0/24,host=169.254.100.2,dns=169.254.100.3,hostfwd=tcp:127.0.0.1:22-169.254.100.15:22",
      "-device", "virtio-net-pci,netdev=mgmt0,mac=52:54:00:12:34:57",
    ]);
    assert.equal(plan.guestMac, "02:42:ac:12:00:02");
    assert.deepEqual(plan.forwards, []);
  });

  it("gives the container interface and the bridge new, deterministic, locally administered MACs", () => {
    const bridge = plan.bridge!;
    assert.equal(bridge.originalMac, "02:42:ac:12:00:02");
    for (const mac of [bridge.containerMac, bridge.bridgeMac]) {
      assert.equal(normalizeMac(mac), mac);
      assert.ok(isLocalUnicast(mac), mac);
    }
    assert.equal(new Set([bridge.originalMac, bridge.containerMac, bridge.bridgeMac]).size, 3);
    const again = planNetwork({ network: "BRIDGE", ports: [] }, { ...facts }).bridge!;
    assert.equal(again.containerMac, bridge.containerMac);
    assert.equal(again.bridgeMac, bridge.bridgeMac);
    const other = planNetwork({ network: "BRIDGE", ports: [] }, { ...facts, mac: "02:42:ac:12:00:03" }).bridge!;
    assert.notEqual(other.containerMac, bridge.containerMac);
  });

  it("plans the bridge: names, address, gateway, MTU and the routes to put back", () => {
    assert.deepEqual(
      { ...plan.bridge!, containerMac: "-", bridgeMac: "-" },
      {
        bridge: "br0",
        tap: "tap0",
        containerInterface: "eth0",
        address: "172.18.0.2",
        prefixLength: 16,
        gateway: "172.18.0.1",
        originalMac: "02:42:ac:12:00:02",
        containerMac: "-",
        bridgeMac: "-",
        mtu: 1450,
        routes: [
          { destination: "10.88.0.0/16", gateway: "172.18.0.254", device: "eth0" },
          { destination: "default", gateway: "172.18.0.1", device: "eth0" },
        ],
      },
    );
  });

  it("gives the guest a static network-config matched by MAC: address, routes, DNS (upstream direct, Docker's over management), MTU", () => {
    assert.deepEqual(roundTrip(plan.networkConfig), {
      version: 2,
      ethernets: {
        primary: {
          match: { macaddress: "02:42:ac:12:00:02" },
          dhcp4: false,
          dhcp6: false,
          addresses: ["172.18.0.2/16"],
          routes: [
            { to: "0.0.0.0/0", via: "172.18.0.1" },
            { to: "10.88.0.0/16", via: "172.18.0.254" },
          ],
          nameservers: { addresses: ["192.168.65.7"], search: ["corp.example"] },
          mtu: 1450,
        },
        management: {
          match: { macaddress: "52:54:00:12:34:57" }, dhcp4: false, dhcp6: false, addresses: ["169.254.100.15/24"],
          nameservers: { addresses: ["169.254.100.3"] }, mtu: 1500,
        },
      },
    });
    assert.match(plan.describe.join("\n"), /DNS 192\.168\.65\.7 169\.254\.100\.3 \(the container's resolver, over the management link\); search corp\.example/);
  });

  it("warns about nothing here: the host-loopback upstream is reached through Docker's DNS; never about PORTS (the config layer does)", () => {
    assert.deepEqual(plan.warnings, []);
  });

  it("warns about networks on other interfaces, IPv6, and a missing gateway", () => {
    const { gateway: _, ...noGateway } = facts;
    const odd: ContainerNetwork = {
      ...noGateway,
      routes: [...facts.routes, { destination: "172.20.0.0/16", device: "eth1", scope: "link", protocol: "kernel" }],
      ipv6: ["fd00::5/64"],
    };
    const result = planNetwork({ network: "BRIDGE", ports: [] }, odd);
    const text = result.warnings.join("\n");
    assert.match(text, /through eth1 stay with the container/);
    assert.match(text, /IPv6 address fd00::5\/64/);
    assert.match(text, /no default route/);
    assert.deepEqual(result.networkConfig.ethernets.primary!.routes, [{ to: "10.88.0.0/16", via: "172.18.0.254" }]);
  });

  it("refuses an interface without an IPv4 address", () => {
    const { ipv4: _, ...noAddress } = facts;
    assert.throws(
      () => planNetwork({ network: "BRIDGE", ports: [] }, noAddress),
      (error: unknown) => error instanceof LauncherError && error.exitCode === ExitCode.Host && /no IPv4 address/.test(error.message),
    );
  });
});

describe("planNetwork: the DNS variable", () => {
  it("replaces the discovered resolvers of a bridged VM, the management link's included, without warnings about them", () => {
    const noUpstream = { ...facts, dns: { nameservers: ["127.0.0.11"], search: [], upstream: [] } };
    const plan = planNetwork({ network: "BRIDGE", ports: [], dns: ["10.20.30.40", "10.20.30.41"] }, noUpstream);
    assert.deepEqual(plan.networkConfig.ethernets.primary!.nameservers, { addresses: ["10.20.30.40", "10.20.30.41"] });
    assert.equal(plan.networkConfig.ethernets.management!.nameservers, undefined);
    assert.doesNotMatch(plan.warnings.join("\n"), /DNS/);
    const discovered = planNetwork({ network: "BRIDGE", ports: [] }, noUpstream);
    assert.deepEqual(discovered.networkConfig.ethernets.management!.nameservers, { addresses: ["169.254.100.3"] });
    assert.equal(discovered.networkConfig.ethernets.primary!.nameservers, undefined);
    assert.match(discovered.warnings.join("\n"), /outside names only where Docker's embedded DNS can still forward them.*Set DNS=/);
  });

  it("adds resolvers beside DHCP's in NAT", () => {
    const plan = planNetwork({ network: "NAT", ports: [], dns: ["10.20.30.40"] }, facts);
    assert.deepEqual(plan.networkConfig.ethernets.primary, {
      match: { macaddress: "52:54:00:12:34:56" }, dhcp4: true, dhcp6: false, nameservers: { addresses: ["10.20.30.40"] }, mtu: 1500,
    });
    assert.equal(planNetwork({ network: "NAT", ports: [] }, facts).networkConfig.ethernets.primary!.nameservers, undefined);
  });
});

describe("bridgeDns", () => {
  it("asks a real resolver from the default bridge directly, and nothing over the management link", () => {
    assert.deepEqual(bridgeDns({ nameservers: ["10.255.255.53"], search: [], upstream: [] }), { direct: ["10.255.255.53"], management: false, warnings: [] });
  });

  it("asks Docker's embedded DNS over the management link and the upstream servers Docker recorded directly", () => {
    const result = bridgeDns({ nameservers: ["127.0.0.11"], search: [], upstream: ["10.9.9.9", "8.8.8.8"] });
    assert.deepEqual(result, { direct: ["10.9.9.9", "8.8.8.8"], management: true, warnings: [] });
  });

  it("with no upstream known (Docker 20.10 user-defined network, nothing probed) asks Docker's DNS and says outside names may fail", () => {
    const result = bridgeDns({ nameservers: ["127.0.0.11"], search: ["x.example"], upstream: [] });
    assert.deepEqual([result.direct, result.management], [[], true]);
    assert.match(result.warnings[0]!, /Docker recorded no upstream DNS servers .*Set DNS=/);
  });

  it("follows the first IPv4 resolver, as QEMU's forwarder does: a real one first means no management DNS", () => {
    assert.deepEqual(bridgeDns({ nameservers: ["fd00::53", "127.0.0.53"], search: [], upstream: [] }).management, true);
    assert.deepEqual(bridgeDns({ nameservers: ["10.0.0.53", "127.0.0.11"], search: [], upstream: ["10.1.1.1"] }), {
      direct: ["10.0.0.53", "10.1.1.1"], management: false, warnings: [],
    });
  });

  it("drops host-loopback and IPv6 upstreams, naming only the IPv6 ones (loopback ones are Docker's to ask)", () => {
    const result = bridgeDns({ nameservers: ["127.0.0.11"], search: [], upstream: ["127.0.0.53", "fdb6::1", "10.1.1.1"] });
    assert.deepEqual(result.direct, ["10.1.1.1"]);
    assert.deepEqual(result.warnings, ["DNS servers the bridged VM cannot reach are left out: fdb6::1"]);
  });

  it("says the VM gets no DNS server when nothing is reachable at all", () => {
    const result = bridgeDns({ nameservers: ["fd00::53"], search: [], upstream: [] });
    assert.deepEqual([result.direct, result.management], [[], false]);
    assert.match(result.warnings[0]!, /the VM gets no DNS server: .*fd00::53.*Set DNS=/);
  });
});

describe("networkConfigText", () => {
  it("keeps an all-digit MAC a string for cloud-init's YAML 1.1 parser", () => {
    const config = planNetwork({ network: "NAT", ports: [] }, facts).networkConfig;
    // The hazard: plain YAML output, read as YAML 1.1, turns 52:54:00:12:34:56 into a base-60 number.
    assert.equal(typeof (parse(stringify(config), { version: "1.1" }) as any).ethernets.primary.match.macaddress, "number");
    const text = networkConfigText(config);
    assert.deepEqual(parse(text, { version: "1.1" }), config);
    assert.deepEqual(parse(text), config);
  });
});

describe("derivedMac", () => {
  it("is deterministic, unicast, locally administered and avoids the addresses given", () => {
    const mac = derivedMac("02:42:ac:12:00:02", "container");
    assert.equal(derivedMac("02:42:ac:12:00:02", "container"), mac);
    assert.ok(isLocalUnicast(mac));
    assert.notEqual(derivedMac("02:42:ac:12:00:02", "container", [mac]), mac);
  });
});
