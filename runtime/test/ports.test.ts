import assert from "node:assert/strict";
import { test } from "node:test";
import { parsePortSpec, parsePortSpecs, PortSpecError } from "../src/config/ports.js";

// Cases after go-connections' nat_test.go, read with the DevMachine meaning:
// the "host" side is the container, the "container" side is the guest.
test("single ports, protocols and addresses", () => {
  assert.deepEqual(parsePortSpec("2222:22"), [{ protocol: "tcp", hostIp: "", hostPort: 2222, guestPort: 22 }]);
  assert.deepEqual(parsePortSpec("80"), [{ protocol: "tcp", hostIp: "", hostPort: 80, guestPort: 80 }]);
  assert.deepEqual(parsePortSpec("1234/"), [{ protocol: "tcp", hostIp: "", hostPort: 1234, guestPort: 1234 }]);
  assert.deepEqual(parsePortSpec("5353:53/UDP"), [{ protocol: "udp", hostIp: "", hostPort: 5353, guestPort: 53 }]);
  assert.deepEqual(parsePortSpec("192.168.1.100::6000/udp"), [{ protocol: "udp", hostIp: "192.168.1.100", hostPort: 6000, guestPort: 6000 }]);
  assert.deepEqual(parsePortSpec("192.168.1.100:8080:80"), [{ protocol: "tcp", hostIp: "192.168.1.100", hostPort: 8080, guestPort: 80 }]);
  assert.deepEqual(parsePortSpec("0123"), [{ protocol: "tcp", hostIp: "", hostPort: 123, guestPort: 123 }]);
});

test("IPv6 addresses, bracketed or not", () => {
  assert.deepEqual(parsePortSpec("[::1]:80:80"), [{ protocol: "tcp", hostIp: "::1", hostPort: 80, guestPort: 80 }]);
  assert.deepEqual(parsePortSpec("::1:80:80"), [{ protocol: "tcp", hostIp: "::1", hostPort: 80, guestPort: 80 }]);
  assert.deepEqual(parsePortSpec("[2001:4860:0:2001::68]::333"), [{ protocol: "tcp", hostIp: "2001:4860:0:2001::68", hostPort: 333, guestPort: 333 }]);
  assert.deepEqual(parsePortSpec("::::80"), [{ protocol: "tcp", hostIp: "::", hostPort: 80, guestPort: 80 }]);
});

test("ranges expand port by port", () => {
  assert.deepEqual(parsePortSpec("0.0.0.0:1234-1235:3333-3334/tcp"), [
    { protocol: "tcp", hostIp: "0.0.0.0", hostPort: 1234, guestPort: 3333 },
    { protocol: "tcp", hostIp: "0.0.0.0", hostPort: 1235, guestPort: 3334 },
  ]);
  assert.equal(parsePortSpec("1234-1236/udp").length, 3);
  assert.equal(parsePortSpecs("80, 443 ,,8000-8001:9000-9001").length, 4);
});

test("specs Docker refuses, and what QEMU cannot forward, are refused with the rule", () => {
  const refused: Array<[string, RegExp]> = [
    ["", /no port specified/],
    ["192.168.1.100", /invalid port/],
    ["192.168.1.100:-1:-1", /invalid port/],
    ["localhost:1234:1234/tcp", /invalid IP address/],
    ["asdf", /invalid port/],
    ["65536", /invalid port/],
    ["1234-1230", /invalid port/],
    ["1234/ftp", /invalid protocol "ftp"/],
    ["8000-8010:80", /same length/],
    ["80-81:80-82", /same length/],
    ["3456/sctp", /sctp .* QEMU user networking/],
    ["0:80", /port 0/],
  ];
  for (const [spec, message] of refused) {
    assert.throws(() => parsePortSpec(spec), (error: unknown) => error instanceof PortSpecError && message.test(error.message), spec);
  }
});
