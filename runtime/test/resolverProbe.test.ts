import assert from "node:assert/strict";
import { createSocket } from "node:dgram";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import type { ContainerNetwork } from "../src/network/discover.js";
import { needsUpstreamProbe, parseConntrackResolvers, probeDockerUpstream, withDockerUpstream } from "../src/network/resolverProbe.js";

/** /proc/net/nf_conntrack in a container on a user-defined network after one lookup (Docker 20.10, kernel 6.x). */
const CONNTRACK = `ipv4     2 udp      17 29 src=127.0.0.1 dst=127.0.0.11 sport=56249 dport=53 src=127.0.0.11 dst=127.0.0.1 sport=47314 dport=56249 mark=0 zone=0 use=2
ipv4     2 udp      17 29 src=172.18.0.2 dst=10.255.255.53 sport=56132 dport=53 src=10.255.255.53 dst=172.18.0.2 sport=53 dport=56132 mark=0 zone=0 use=2
ipv4     2 udp      17 29 src=172.18.0.2 dst=10.255.255.53 sport=35887 dport=53 src=10.255.255.53 dst=172.18.0.2 sport=53 dport=35887 mark=0 zone=0 use=2
ipv4     2 udp      17 25 src=172.18.0.2 dst=192.0.2.9 sport=40000 dport=53 [UNREPLIED] src=192.0.2.9 dst=172.18.0.2 sport=53 dport=40000 mark=0 zone=0 use=2
ipv4     2 tcp      6 117 TIME_WAIT src=172.18.0.2 dst=198.51.100.4 sport=41000 dport=53 src=198.51.100.4 dst=172.18.0.2 sport=53 dport=41000 [ASSURED] mark=0 zone=0 use=2
ipv4     2 tcp      6 431999 ESTABLISHED src=172.18.0.2 dst=203.0.113.80 sport=42000 dport=443 src=203.0.113.80 dst=172.18.0.2 sport=443 dport=42000 [ASSURED] mark=0 zone=0 use=2
ipv4     2 udp      17 29 src=172.18.0.3 dst=10.0.0.99 sport=5000 dport=53 src=10.0.0.99 dst=172.18.0.3 sport=53 dport=5000 mark=0 zone=0 use=2
ipv6     10 udp      17 29 src=fd00::2 dst=fd00::53 sport=5000 dport=53 src=fd00::53 dst=fd00::2 sport=53 dport=5000 mark=0 zone=0 use=2
`;

const facts: ContainerNetwork = {
  interface: "eth0",
  mac: "02:42:ac:12:00:02",
  mtu: 1500,
  ipv4: { address: "172.18.0.2", prefixLength: 16 },
  gateway: "172.18.0.1",
  routes: [],
  dns: { nameservers: ["127.0.0.11"], search: [], upstream: [] },
  ipv6: [],
  notes: [],
};

describe("parseConntrackResolvers", () => {
  it("names the DNS servers the container's address sent to, once each, in order, by UDP and TCP", () => {
    assert.deepEqual(parseConntrackResolvers(CONNTRACK, "172.18.0.2"), ["10.255.255.53", "192.0.2.9", "198.51.100.4"]);
  });

  it("ignores loopback (the embedded DNS itself), other sources, other ports, IPv6 and junk", () => {
    assert.deepEqual(parseConntrackResolvers(CONNTRACK, "127.0.0.1"), []);
    assert.deepEqual(parseConntrackResolvers(CONNTRACK, "172.18.0.3"), ["10.0.0.99"]);
    assert.deepEqual(parseConntrackResolvers("garbage\n\nipv4 2 udp src=172.18.0.2\n", "172.18.0.2"), []);
  });
});

describe("withDockerUpstream", () => {
  const probe = async (address: string) => (address === "172.18.0.2" ? ["10.255.255.53"] : []);

  it("fills in the upstream a BRIDGE VM would otherwise lack", async () => {
    assert.equal(needsUpstreamProbe(facts), true);
    const result = await withDockerUpstream(facts, { network: "BRIDGE", dns: [] }, probe);
    assert.deepEqual(result.dns, { nameservers: ["127.0.0.11"], search: [], upstream: ["10.255.255.53"] });
  });

  it("probes nothing in NAT, with DNS set, with upstreams recorded, or without Docker's DNS", async () => {
    const never = async (): Promise<string[]> => assert.fail("no probe expected");
    assert.equal(await withDockerUpstream(facts, { network: "NAT", dns: [] }, never), facts);
    assert.equal(await withDockerUpstream(facts, { network: "BRIDGE", dns: ["9.9.9.9"] }, never), facts);
    const recorded = { ...facts, dns: { ...facts.dns, upstream: ["10.1.1.1"] } };
    assert.equal(await withDockerUpstream(recorded, { network: "BRIDGE", dns: [] }, never), recorded);
    const defaultBridge = { ...facts, dns: { nameservers: ["10.0.0.53"], search: [], upstream: [] } };
    assert.equal(await withDockerUpstream(defaultBridge, { network: "BRIDGE", dns: [] }, never), defaultBridge);
  });

  it("keeps the facts when the probe finds nothing", async () => {
    assert.equal(await withDockerUpstream({ ...facts, ipv4: { address: "172.18.0.9", prefixLength: 16 } }, { network: "BRIDGE", dns: [] }, probe).then((f) => f.dns.upstream.length), 0);
  });
});

describe("probeDockerUpstream", () => {
  it("sends one query to the resolver, then reads the conntrack file", async () => {
    const dir = await mkdtemp(join(tmpdir(), "dm-probe-"));
    const server = createSocket("udp4");
    const names: string[] = [];
    server.on("message", (message, peer) => {
      // The question's first label, enough to know what was asked; answer with NXDOMAIN.
      names.push(message.subarray(13, 13 + message[12]!).toString());
      const reply = Buffer.from(message);
      reply[2] = 0x81;
      reply[3] = 0x83;
      server.send(reply, peer.port, peer.address);
    });
    await new Promise<void>((resolve) => server.bind(0, "127.0.0.1", resolve));
    try {
      await writeFile(join(dir, "nf_conntrack"), CONNTRACK);
      const server_ = `127.0.0.1:${server.address().port}`;
      assert.deepEqual(await probeDockerUpstream("172.18.0.2", { server: server_, conntrackPath: join(dir, "nf_conntrack") }), [
        "10.255.255.53", "192.0.2.9", "198.51.100.4",
      ]);
      assert.deepEqual(names, ["devmachines-resolver-probe"]);
      assert.deepEqual(await probeDockerUpstream("172.18.0.2", { server: server_, conntrackPath: join(dir, "missing") }), []);
    } finally {
      server.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
