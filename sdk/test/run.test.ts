/** The CLI form of the container description (what runContainerSpec passes to `docker create`). */
import assert from "node:assert/strict";
import { test } from "node:test";
import { KEY } from "./mocks.js";
import { containerSpec, createArgs } from "../src/index.js";

test("createArgs turns the description into docker create flags, and the password stays out of them", () => {
  const spec = containerSpec("cli-box", {
    sshKeys: [KEY],
    password: "never-on-the-command-line",
    sshPort: 2222,
    sshHostIp: "127.0.0.1",
    ports: [{ guestPort: 8080 }, { guestPort: 53, protocol: "udp", hostPort: 5353, hostIp: "::1" }],
    dockerNetwork: "lab",
  });
  const args = createArgs(spec);
  const pairs = (flag: string) => args.flatMap((arg, i) => (arg === flag ? [args[i + 1]] : []));
  assert.deepEqual(args.slice(0, 5), ["create", "--name", "cli-box", "--hostname", "cli-box"]);
  assert.equal(args.at(-1), "devmachines/debian:13");
  assert.deepEqual(pairs("--device"), ["/dev/kvm:/dev/kvm:rwm", "/dev/net/tun:/dev/net/tun:rwm"]);
  assert.deepEqual(pairs("--cap-add"), ["NET_ADMIN"]);
  assert.deepEqual(pairs("--publish"), ["127.0.0.1:2222:22/tcp", "127.0.0.1::8080/tcp", "[::1]:5353:53/udp"]);
  assert.deepEqual(pairs("--mount"), ["type=volume,source=cli-box-disk,target=/var/lib/devmachines"]);
  assert.deepEqual(pairs("--network"), ["lab"]);
  assert.deepEqual(pairs("--network-alias"), ["cli-box"]);
  assert.deepEqual(pairs("--stop-timeout"), ["90"]);
  assert.deepEqual(pairs("--health-cmd"), ["node /opt/devmachines/runtime/dist/main.js --health"]);
  assert.ok(pairs("--env").includes("PASSWORD_FILE=/run/secrets/devmachines/password"));
  assert.ok(!args.join(" ").includes("never-on-the-command-line"));
});
