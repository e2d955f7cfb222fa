import assert from "node:assert/strict";
import { mkdir, rm, writeFile } from "node:fs/promises";
import { after, before, describe, it } from "node:test";
import { execa } from "execa";
import { ExitCode, LauncherError } from "../src/exitCodes.js";
import {
  discoverNetwork,
  parseIpAddr,
  parseIpRoute,
  parseResolvConf,
  summarizeNetwork,
  type CommandRunner,
} from "../src/network/discover.js";
import { skipUnlessRoot } from "./fixtures/root.js";

// Captured on 2026-11-26 with iproute2 6.1: Docker 20.10 containers (nsenter -n, debian:trixie-slim),
// the Docker host itself, and a namespace with an extra route.
/** Container on a user-defined network (docker run --network NET --dns-search example.internal). */
const DOCKER_USER_ADDR = `[{"ifindex":1,"ifname":"lo","flags":["LOOPBACK","UP","LOWER_UP"],"mtu":65536,"qdisc":"noqueue","operstate":"UNKNOWN","group":"default","txqlen":1000,"link_type":"loopback","address":"00:00:00:00:00:00","broadcast":"00:00:00:00:00:00","addr_info":[{"family":"inet","local":"127.0.0.1","prefixlen":8,"scope":"host","label":"lo","valid_life_time":4294967295,"preferred_life_time":4294967295}]},{"ifindex":15,"link_index":16,"ifname":"eth0","flags":["BROADCAST","MULTICAST","UP","LOWER_UP"],"mtu":1500,"qdisc":"noqueue","operstate":"UP","group":"default","link_type":"ether","address":"02:42:ac:12:00:02","broadcast":"ff:ff:ff:ff:ff:ff","link_netnsid":0,"addr_info":[{"family":"inet","local":"172.18.0.2","prefixlen":16,"broadcast":"172.18.255.255","scope":"global","label":"eth0","valid_life_time":4294967295,"preferred_life_time":4294967295}]}]`;
const DOCKER_USER_ROUTE = `[{"dst":"default","gateway":"172.18.0.1","dev":"eth0","flags":[]},{"dst":"172.18.0.0/16","dev":"eth0","protocol":"kernel","scope":"link","prefsrc":"172.18.0.2","flags":[]}]`;
const DOCKER_USER_RESOLV = `search example.internal
nameserver 127.0.0.11
options ndots:0`
+ "\n";
/** Container on the default bridge: the host's own resolver is copied in. */
const DOCKER_DEFAULT_RESOLV = `nameserver 10.255.255.53`
+ "\n";
/** Container attached to two user-defined networks. */
const DOCKER_MULTI_ADDR = `[{"ifindex":1,"ifname":"lo","flags":["LOOPBACK","UP","LOWER_UP"],"mtu":65536,"qdisc":"noqueue","operstate":"UNKNOWN","group":"default","txqlen":1000,"link_type":"loopback","address":"00:00:00:00:00:00","broadcast":"00:00:00:00:00:00","addr_info":[{"family":"inet","local":"127.0.0.1","prefixlen":8,"scope":"host","label":"lo","valid_life_time":4294967295,"preferred_life_time":4294967295}]},{"ifindex":21,"link_index":22,"ifname":"eth0","flags":["BROADCAST","MULTICAST","UP","LOWER_UP"],"mtu":1500,"qdisc":"noqueue","operstate":"UP","group":"default","link_type":"ether","address":"02:42:ac:13:00:02","broadcast":"ff:ff:ff:ff:ff:ff","link_netnsid":0,"addr_info":[{"family":"inet","local":"172.19.0.2","prefixlen":16,"broadcast":"172.19.255.255","scope":"global","label":"eth0","valid_life_time":4294967295,"preferred_life_time":4294967295}]},{"ifindex":23,"link_index":24,"ifname":"eth1","flags":["BROADCAST","MULTICAST","UP","LOWER_UP"],"mtu":1500,"qdisc":"noqueue","operstate":"UP","group":"default","link_type":"ether","address":"02:42:ac:14:00:02","broadcast":"ff:ff:ff:ff:ff:ff","link_netnsid":0,"addr_info":[{"family":"inet","local":"172.20.0.2","prefixlen":16,"broadcast":"172.20.255.255","scope":"global","label":"eth1","valid_life_time":4294967295,"preferred_life_time":4294967295}]}]`;
const DOCKER_MULTI_ROUTE = `[{"dst":"default","gateway":"172.19.0.1","dev":"eth0","flags":[]},{"dst":"172.19.0.0/16","dev":"eth0","protocol":"kernel","scope":"link","prefsrc":"172.19.0.2","flags":[]},{"dst":"172.20.0.0/16","dev":"eth1","protocol":"kernel","scope":"link","prefsrc":"172.20.0.2","flags":[]}]`;
/** The Docker host: loopback, ifb, eth0 with IPv6, docker0, a veth enslaved to docker0. */
const HOST_ADDR = `[{"ifindex":1,"ifname":"lo","flags":["LOOPBACK","UP","LOWER_UP"],"mtu":65536,"qdisc":"noqueue","operstate":"UNKNOWN","group":"default","txqlen":1000,"link_type":"loopback","address":"00:00:00:00:00:00","broadcast":"00:00:00:00:00:00","addr_info":[{"family":"inet","local":"127.0.0.1","prefixlen":8,"scope":"host","label":"lo","valid_life_time":4294967295,"preferred_life_time":4294967295},{"family":"inet6","local":"::1","prefixlen":128,"scope":"host","valid_life_time":4294967295,"preferred_life_time":4294967295}]},{"ifindex":2,"ifname":"ifb0","flags":["BROADCAST","NOARP"],"mtu":1500,"qdisc":"noop","operstate":"DOWN","group":"default","txqlen":32,"link_type":"ether","address":"12:08:45:4c:ac:14","broadcast":"ff:ff:ff:ff:ff:ff","addr_info":[]},{"ifindex":3,"ifname":"ifb1","flags":["BROADCAST","NOARP"],"mtu":1500,"qdisc":"noop","operstate":"DOWN","group":"default","txqlen":32,"link_type":"ether","address":"0e:9f:4f:52:45:3b","broadcast":"ff:ff:ff:ff:ff:ff","addr_info":[]},{"ifindex":4,"ifname":"eth0","flags":["BROADCAST","MULTICAST","UP","LOWER_UP"],"mtu":1400,"qdisc":"pfifo_fast","operstate":"UP","group":"default","txqlen":1000,"link_type":"ether","address":"02:fc:00:00:00:01","broadcast":"ff:ff:ff:ff:ff:ff","addr_info":[{"family":"inet","local":"192.0.2.2","prefixlen":24,"broadcast":"192.0.2.255","scope":"global","label":"eth0","valid_life_time":4294967295,"preferred_life_time":4294967295},{"family":"inet6","local":"fd00::2","prefixlen":64,"scope":"global","nodad":true,"valid_life_time":4294967295,"preferred_life_time":4294967295},{"family":"inet6","local":"fe80::fc:ff:fe00:1","prefixlen":64,"scope":"link","valid_life_time":4294967295,"preferred_life_time":4294967295}]},{"ifindex":5,"ifname":"docker0","flags":["BROADCAST","MULTICAST","UP","LOWER_UP"],"mtu":1500,"qdisc":"noqueue","operstate":"UP","group":"default","link_type":"ether","address":"02:42:95:66:c0:a3","broadcast":"ff:ff:ff:ff:ff:ff","addr_info":[{"family":"inet","local":"172.17.0.1","prefixlen":16,"broadcast":"172.17.255.255","scope":"global","label":"docker0","valid_life_time":4294967295,"preferred_life_time":4294967295},{"family":"inet6","local":"fe80::42:95ff:fe66:c0a3","prefixlen":64,"scope":"link","valid_life_time":4294967295,"preferred_life_time":4294967295}]},{"ifindex":11,"link_index":10,"ifname":"vethec44235","flags":["BROADCAST","MULTICAST","UP","LOWER_UP"],"mtu":1500,"qdisc":"noqueue","master":"docker0","operstate":"UP","group":"default","link_type":"ether","address":"8e:e9:18:74:a5:6c","broadcast":"ff:ff:ff:ff:ff:ff","link_netnsid":0,"addr_info":[{"family":"inet6","local":"fe80::8ce9:18ff:fe74:a56c","prefixlen":64,"scope":"link","valid_life_time":4294967295,"preferred_life_time":4294967295}]}]`;
const HOST_ROUTE = `[{"dst":"default","gateway":"192.0.2.1","dev":"eth0","flags":[]},{"dst":"172.17.0.0/16","dev":"docker0","protocol":"kernel","scope":"link","prefsrc":"172.17.0.1","flags":[]},{"dst":"192.0.2.0/24","dev":"eth0","protocol":"kernel","scope":"link","prefsrc":"192.0.2.2","flags":[]}]`;
/** A namespace whose v0 has a default route and a second gateway route. */
const VIA_ADDR = `[{"ifindex":1,"ifname":"lo","flags":["LOOPBACK","UP","LOWER_UP"],"mtu":65536,"qdisc":"noqueue","operstate":"UNKNOWN","group":"default","txqlen":1000,"link_type":"loopback","address":"00:00:00:00:00:00","broadcast":"00:00:00:00:00:00","addr_info":[{"family":"inet","local":"127.0.0.1","prefixlen":8,"scope":"host","label":"lo","valid_life_time":4294967295,"preferred_life_time":4294967295},{"family":"inet6","local":"::1","prefixlen":128,"scope":"host","valid_life_time":4294967295,"preferred_life_time":4294967295}]},{"ifindex":2,"link":"v0","ifname":"v1","flags":["BROADCAST","MULTICAST","UP","LOWER_UP"],"mtu":1500,"qdisc":"noqueue","operstate":"UP","group":"default","txqlen":1000,"link_type":"ether","address":"ee:6f:aa:c9:58:b4","broadcast":"ff:ff:ff:ff:ff:ff","addr_info":[{"family":"inet6","local":"fe80::ec6f:aaff:fec9:58b4","prefixlen":64,"scope":"link","tentative":true,"valid_life_time":4294967295,"preferred_life_time":4294967295}]},{"ifindex":3,"link":"v1","ifname":"v0","flags":["BROADCAST","MULTICAST","UP","LOWER_UP"],"mtu":1500,"qdisc":"noqueue","operstate":"UP","group":"default","txqlen":1000,"link_type":"ether","address":"6e:6f:ac:fb:29:85","broadcast":"ff:ff:ff:ff:ff:ff","addr_info":[{"family":"inet","local":"10.77.0.5","prefixlen":24,"scope":"global","label":"v0","valid_life_time":4294967295,"preferred_life_time":4294967295},{"family":"inet6","local":"fe80::6c6f:acff:fefb:2985","prefixlen":64,"scope":"link","tentative":true,"valid_life_time":4294967295,"preferred_life_time":4294967295}]}]`;
const VIA_ROUTE = `[{"dst":"default","gateway":"10.77.0.1","dev":"v0","flags":[]},{"dst":"10.77.0.0/24","dev":"v0","protocol":"kernel","scope":"link","prefsrc":"10.77.0.5","flags":[]},{"dst":"10.88.0.0/16","gateway":"10.77.0.254","dev":"v0","flags":[]}]`;

/** Docker Engine 25+ (libnetwork resolvconf): the host's servers are recorded for the embedded DNS. */
const MOBY_RESOLV = `# Generated by Docker Engine.
# This file can be edited; Docker Engine will not make further changes once it
# has been modified.

nameserver 127.0.0.11
search corp.example
options ndots:0

# Based on host file: '/etc/resolv.conf' (internal resolver)
# ExtServers: [host(192.168.65.7) host(127.0.0.53) 8.8.8.8 host(fdb6:b8fe:b528::1)]
# Overrides: []
# Option ndots from: internal
`;

describe("parseIpAddr", () => {
  it("reads a Docker container's links", () => {
    const links = parseIpAddr(DOCKER_USER_ADDR);
    assert.deepEqual(links.map((l) => l.name), ["lo", "eth0"]);
    const eth0 = links[1]!;
    assert.equal(eth0.mac, "02:42:ac:12:00:02");
    assert.equal(eth0.mtu, 1500);
    assert.equal(eth0.linkType, "ether");
    assert.deepEqual(eth0.ipv4, [{ address: "172.18.0.2", prefixLength: 16, broadcast: "172.18.255.255" }]);
    assert.deepEqual(eth0.ipv6, []);
  });

  it("reads the host: IPv6 (global only), masters, links without addresses", () => {
    const links = parseIpAddr(HOST_ADDR);
    const eth0 = links.find((l) => l.name === "eth0")!;
    assert.equal(eth0.mtu, 1400);
    assert.deepEqual(eth0.ipv4, [{ address: "192.0.2.2", prefixLength: 24, broadcast: "192.0.2.255" }]);
    assert.deepEqual(eth0.ipv6, ["fd00::2/64"]);
    const veth = links.find((l) => l.name.startsWith("veth"))!;
    assert.equal(veth.master, "docker0");
    assert.deepEqual(veth.ipv4, []);
    assert.deepEqual(links.find((l) => l.name === "ifb0")!.ipv4, []);
  });

  it("puts primary addresses before secondary ones", () => {
    const json = JSON.stringify([
      {
        ifindex: 2,
        ifname: "eth0",
        flags: ["UP"],
        mtu: 1500,
        link_type: "ether",
        address: "02:42:AC:11:00:02",
        addr_info: [
          { family: "inet", local: "10.1.0.9", prefixlen: 24, scope: "global", secondary: true },
          { family: "inet", local: "10.1.0.2", prefixlen: 24, scope: "global" },
        ],
      },
    ]);
    const [eth0] = parseIpAddr(json);
    assert.equal(eth0!.mac, "02:42:ac:11:00:02");
    assert.deepEqual(eth0!.ipv4.map((a) => a.address), ["10.1.0.2", "10.1.0.9"]);
  });

  it("refuses output that is not JSON", () => {
    assert.throws(() => parseIpAddr("1: lo: <LOOPBACK,UP>"), /cannot parse ip -j addr show/);
  });
});

describe("parseIpRoute", () => {
  it("reads a Docker container's routes", () => {
    assert.deepEqual(parseIpRoute(DOCKER_USER_ROUTE), [
      { destination: "default", gateway: "172.18.0.1", device: "eth0" },
      { destination: "172.18.0.0/16", device: "eth0", scope: "link", protocol: "kernel" },
    ]);
  });

  it("keeps gateway routes and routes on other links", () => {
    const routes = parseIpRoute(VIA_ROUTE);
    assert.deepEqual(routes[2], { destination: "10.88.0.0/16", gateway: "10.77.0.254", device: "v0" });
    assert.deepEqual(parseIpRoute(DOCKER_MULTI_ROUTE).map((r) => r.device), ["eth0", "eth0", "eth1"]);
  });

  it("takes the first hop of a multipath route, gives host routes /32, skips blackholes", () => {
    const json = JSON.stringify([
      { dst: "default", flags: [], nexthops: [{ gateway: "10.5.0.1", dev: "eth0", weight: 1 }, { gateway: "10.6.0.1", dev: "eth1", weight: 1 }] },
      { dst: "10.9.9.9", gateway: "10.5.0.254", dev: "eth0", metric: 50 },
      { type: "blackhole", dst: "10.66.0.0/16", flags: [] },
    ]);
    assert.deepEqual(parseIpRoute(json), [
      { destination: "default", gateway: "10.5.0.1", device: "eth0" },
      { destination: "10.9.9.9/32", gateway: "10.5.0.254", device: "eth0", metric: 50 },
    ]);
  });
});

describe("parseResolvConf", () => {
  it("reads Docker 20.10's user-defined-network file: only the embedded DNS, no record of upstreams", () => {
    assert.deepEqual(parseResolvConf(DOCKER_USER_RESOLV), { nameservers: ["127.0.0.11"], search: ["example.internal"], upstream: [] });
  });

  it("reads the default bridge's copy of the host's resolvers", () => {
    assert.deepEqual(parseResolvConf(DOCKER_DEFAULT_RESOLV), { nameservers: ["10.255.255.53"], search: [], upstream: [] });
  });

  it("unwraps Docker 25+'s ExtServers comment, host(...) included", () => {
    assert.deepEqual(parseResolvConf(MOBY_RESOLV), {
      nameservers: ["127.0.0.11"],
      search: ["corp.example"],
      upstream: ["192.168.65.7", "127.0.0.53", "8.8.8.8", "fdb6:b8fe:b528::1"],
    });
  });

  it("reads --dns overrides and skips entries Docker marked invalid", () => {
    const text = "nameserver 127.0.0.11\noptions ndots:0\n\n# ExtServers: [10.9.9.9 invalid IP]\n# Overrides: [nameservers]\n";
    assert.deepEqual(parseResolvConf(text).upstream, ["10.9.9.9"]);
  });

  it("follows glibc: last search line wins, domain is an old search, ; comments, zone indexes dropped", () => {
    const text = [
      "; written by hand",
      "domain old.example",
      "search a.example b.example",
      "nameserver 10.0.0.53 # trailing",
      "nameserver fe80::1%eth0",
      "nameserver not-an-ip",
      "nameserver 2001:db8::53",
      "  nameserver 10.0.0.54",
    ].join("\n");
    assert.deepEqual(parseResolvConf(text), { nameservers: ["10.0.0.53", "2001:db8::53", "10.0.0.54"], search: ["a.example", "b.example"], upstream: [] });
  });

  it("reads an empty file", () => {
    assert.deepEqual(parseResolvConf(""), { nameservers: [], search: [], upstream: [] });
  });
});

describe("summarizeNetwork", () => {
  const dns = parseResolvConf(DOCKER_USER_RESOLV);

  it("describes a Docker container on a user-defined network", () => {
    assert.deepEqual(summarizeNetwork(parseIpAddr(DOCKER_USER_ADDR), parseIpRoute(DOCKER_USER_ROUTE), dns), {
      interface: "eth0",
      mac: "02:42:ac:12:00:02",
      mtu: 1500,
      ipv4: { address: "172.18.0.2", prefixLength: 16, broadcast: "172.18.255.255" },
      gateway: "172.18.0.1",
      routes: [{ destination: "172.18.0.0/16", device: "eth0", scope: "link", protocol: "kernel" }],
      dns,
      ipv6: [],
      notes: [],
    });
  });

  it("picks the interface of the default route when there are two networks", () => {
    const facts = summarizeNetwork(parseIpAddr(DOCKER_MULTI_ADDR), parseIpRoute(DOCKER_MULTI_ROUTE), dns);
    assert.equal(facts.interface, "eth0");
    assert.equal(facts.mac, "02:42:ac:13:00:02");
    assert.deepEqual(facts.routes.map((r) => `${r.destination} ${r.device}`), ["172.19.0.0/16 eth0", "172.20.0.0/16 eth1"]);
  });

  it("keeps the other routes and the host's MTU and IPv6", () => {
    const facts = summarizeNetwork(parseIpAddr(HOST_ADDR), parseIpRoute(HOST_ROUTE), dns);
    assert.equal(facts.interface, "eth0");
    assert.equal(facts.mtu, 1400);
    assert.equal(facts.gateway, "192.0.2.1");
    assert.deepEqual(facts.ipv6, ["fd00::2/64"]);
    const via = summarizeNetwork(parseIpAddr(VIA_ADDR), parseIpRoute(VIA_ROUTE), dns);
    assert.equal(via.interface, "v0");
    assert.deepEqual(via.routes[1], { destination: "10.88.0.0/16", gateway: "10.77.0.254", device: "v0" });
  });

  it("falls back to the first addressed Ethernet link without a default route (internal network)", () => {
    const routes = parseIpRoute(DOCKER_USER_ROUTE).filter((r) => r.destination !== "default");
    const facts = summarizeNetwork(parseIpAddr(DOCKER_USER_ADDR), routes, dns);
    assert.equal(facts.interface, "eth0");
    assert.equal(facts.gateway, undefined);
  });

  it("notes secondary addresses", () => {
    const links = parseIpAddr(DOCKER_USER_ADDR);
    links[1]!.ipv4.push({ address: "172.18.0.99", prefixLength: 16 });
    const facts = summarizeNetwork(links, parseIpRoute(DOCKER_USER_ROUTE), dns);
    assert.match(facts.notes.join("\n"), /2 IPv4 addresses; only the first, 172\.18\.0\.2\/16/);
  });

  it("refuses a container with loopback only (--network none) as a host problem", () => {
    const lo = parseIpAddr(DOCKER_USER_ADDR).slice(0, 1);
    assert.throws(
      () => summarizeNetwork(lo, [], dns),
      (error: unknown) => error instanceof LauncherError && error.exitCode === ExitCode.Host && /--network none/.test(error.message),
    );
  });
});

describe("discoverNetwork in a network namespace", { skip: skipUnlessRoot("ip netns") }, () => {
  const ns = `devm-disc-${process.pid}`;
  const run: CommandRunner = async (command, args) => {
    const { stdout } = await execa("ip", ["netns", "exec", ns, command, ...args]);
    return { stdout };
  };

  before(async () => {
    await execa("ip", ["netns", "add", ns]);
    // `ip netns exec` bind-mounts /etc/netns/NS/resolv.conf over /etc/resolv.conf.
    await mkdir(`/etc/netns/${ns}`, { recursive: true });
    await writeFile(`/etc/netns/${ns}/resolv.conf`, MOBY_RESOLV);
    const ip = (...args: string[]) => execa("ip", ["-n", ns, ...args]);
    await ip("link", "add", "eth0", "mtu", "1450", "address", "02:42:0a:3c:00:05", "type", "veth", "peer", "name", "outer");
    await ip("link", "set", "eth0", "up");
    await ip("link", "set", "outer", "up");
    await ip("addr", "add", "10.60.0.5/24", "dev", "eth0");
    await ip("route", "add", "default", "via", "10.60.0.1");
  });

  after(async () => {
    await execa("ip", ["netns", "del", ns]).catch(() => undefined);
    await rm(`/etc/netns/${ns}`, { recursive: true, force: true });
  });

  it("finds the interface, address, gateway, MTU and resolvers", async () => {
    const facts = await discoverNetwork(run);
    assert.equal(facts.interface, "eth0");
    assert.equal(facts.mac, "02:42:0a:3c:00:05");
    assert.equal(facts.mtu, 1450);
    assert.deepEqual(facts.ipv4, { address: "10.60.0.5", prefixLength: 24 });
    assert.equal(facts.gateway, "10.60.0.1");
    assert.deepEqual(facts.dns.search, ["corp.example"]);
    assert.deepEqual(facts.dns.upstream, ["192.168.65.7", "127.0.0.53", "8.8.8.8", "fdb6:b8fe:b528::1"]);
  });
});
