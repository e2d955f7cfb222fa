import assert from "node:assert/strict";
import { test } from "node:test";
import { parsePortSpec, parsePortSpecs, PortSpecError } from "../src/config/ports.js";

// Cases after go-connections' nat_test.go, read with the DevMachine meaning:
// the "host" side is the container, the "container" side is the guest.
test("single ports, protocols and addresses", () => {
  assert.deepEqual(parsePortSpec("2222:22"), [{ protocol: "tcp", containerIp: "", containerPort: 2222, guestPort: 22 }]);
  assert.deepEqual(parsePortSpec("80"), [{ protocol: "tcp", containerIp: "", containerPort: 80, guestPort: 80 }]);
  assert.deepEqual(parsePortSpec("1234/"), [{ protocol: "tcp", containerIp: "", containerPort: 1234, guestPort: 1234 }]);
  assert.deepEqual(parsePortSpec("5353:53/UDP"), [{ protocol: "udp", containerIp: "", containerPort: 5353, guestPort: 53 }]);
  assert.deepEqual(parsePortSpec("192.168.1.100::6000/udp"), [{ protocol: "udp", containerIp: "192.168.1.100", containerPort: 6000, guestPort: 6000 }]);
  assert.deepEqual(parsePortSpec("192.168.1.100:8080:80"), [{ protocol: "tcp", containerIp: "192.168.1.100", containerPort: 8080, guestPort: 80 }]);
  assert.deepEqual(parsePortSpec("0123"), [{ protocol: "tcp", containerIp: "", containerPort: 123, guestPort: 123 }]);
});

test("IPv6 addresses, bracketed or not", () => {
  assert.deepEqual(parsePortSpec("[::1]:80:80"), [{ protocol: "tcp", containerIp: "::1", containerPort: 80, guestPort: 80 }]);
  assert.deepEqual(parsePortSpec("::1:80:80"), [{ protocol: "tcp", containerIp: "::1", containerPort: 80, guestPort: 80 }]);
  assert.deepEqual(parsePortSpec("[2001:4860:0:2001::68]::333"), [{ protocol: "tcp", containerIp: "2001:4860:0:2001::68", containerPort: 333, guestPort: 333 }]);
  assert.deepEqual(parsePortSpec("::::80"), [{ protocol: "tcp", containerIp: "::", containerPort: 80, guestPort: 80 }]);
});

test("ranges expand port by port", () => {
  assert.deepEqual(parsePortSpec("0.0.0.0:1234-1235:3333-3334/tcp"), [
    { protocol: "tcp", containerIp: "0.0.0.0", containerPort: 1234, guestPort: 3333 },
    { protocol: "tcp", containerIp: "0.0.0.0", containerPort: 1235, guestPort: 3334 },
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

// Docker's range parser (go-connections nat.ParsePortRange up to v0.5.0, which Docker CLI 20.10
// and 28.2 use) splits on "-" and reads only the first two parts: `docker create -p 1-2-3:80-81`
// passes the CLI's parser, and `-p 8080:1-2-3` is refused as a 2-port range against one port.
// We follow that Docker, and this test documents it. (go-connections v0.6 cuts at the first "-"
// and refuses "1-2-3"; revisit when Docker ships that parser.)
test("a range with a third part is read as Docker reads it: 1-2-3 is 1-2", () => {
  assert.deepEqual(parsePortSpec("1-2-3"), parsePortSpec("1-2"));
  assert.deepEqual(parsePortSpec("8000-8001-9:80-81"), [
    { protocol: "tcp", containerIp: "", containerPort: 8000, guestPort: 80 },
    { protocol: "tcp", containerIp: "", containerPort: 8001, guestPort: 81 },
  ]);
  assert.throws(() => parsePortSpec("8080:1-2-3"), /same length/, "like Docker: a 2-port range against one port");
  assert.throws(() => parsePortSpec("1-x-3"), /invalid port/, "the second part must still be a port");
  assert.throws(() => parsePortSpec("-8000-"), /invalid port/, "go-connections' 'range with trailing hyphen' case");
});
