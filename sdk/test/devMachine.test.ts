import assert from "node:assert/strict";
import { test } from "node:test";
import * as pulumi from "@pulumi/pulumi";
import { KEY, resourcesOf, value } from "./mocks.js";
import { containerArgs, DevMachine, DevMachineConfigError, containerSpec } from "../src/index.js";

const SECRET_SIG = "4dabf18193072939515e22adb298388d";
const SECRET_VALUE = "1b47061264138c4ac30d75fd1eb44270";
const CONTAINER = "docker:index/container:Container";
const VOLUME = "docker:index/volume:Volume";

test("a DevMachine creates one container and one disk volume with everything the runtime needs", async () => {
  const dm = new DevMachine("box", {
    cpu: 4,
    memory: "4G",
    storage: "40G",
    user: "alice",
    sshKeys: [KEY],
    password: pulumi.secret("hunter2-hunter2"),
    ports: [{ guestPort: 8080, hostPort: 18080 }, { guestPort: 53, protocol: "udp", hostIp: "127.0.0.1" }],
    labels: [{ label: "team", value: "infra" }],
    userData: "packages: [htop]\n",
    sshPort: 2222,
  });
  assert.equal(await value(dm.sshCommand), "ssh -p 2222 alice@127.0.0.1");

  const [container] = resourcesOf(CONTAINER, "box");
  const [volume] = resourcesOf(VOLUME, "box");
  assert.ok(container && volume);
  assert.equal(container.name, "box-container");
  const inputs = container.inputs;
  assert.equal(inputs.name, "box");
  assert.equal(inputs.image, "devmachines/debian:13");
  assert.deepEqual(inputs.envs, [
    "ACCEL=auto",
    "CPU=4",
    "GRACE_SECONDS=60",
    "HOSTNAME=box",
    "MEMORY=4G",
    "NETWORK=NAT",
    "PASSWORD_FILE=/run/secrets/devmachines/password",
    "PORTS=8080:8080/tcp,53:53/udp",
    `SSH_KEYS=${KEY}`,
    "STORAGE=40G",
    "USER=alice",
  ]);
  assert.ok(!JSON.stringify(inputs.envs).includes("hunter2"), "the password is not in the environment");
  assert.equal((inputs.envs as unknown as Record<string, unknown>)[SECRET_SIG], undefined, "the environment is not secret");
  // The mock monitor receives the uploads as a secret envelope: the engine would encrypt them in the state.
  assert.equal(inputs.uploads[SECRET_SIG], SECRET_VALUE, "uploads reach the engine as a secret");
  assert.deepEqual(inputs.uploads.value, [
    { file: "/run/secrets/devmachines/password", content: "hunter2-hunter2", permissions: "0400" },
    { file: "/etc/devmachines/user-data", content: "packages: [htop]\n", permissions: "0444" },
  ]);
  assert.deepEqual(inputs.devices, [
    { hostPath: "/dev/kvm", containerPath: "/dev/kvm", permissions: "rwm" },
    { hostPath: "/dev/net/tun", containerPath: "/dev/net/tun", permissions: "rwm" },
  ]);
  assert.deepEqual(inputs.capabilities, { adds: ["NET_ADMIN"] }, "NET_ADMIN and nothing broader");
  assert.equal(inputs.privileged, undefined);
  assert.deepEqual(inputs.ports, [
    { internal: 22, protocol: "tcp", external: 2222 },
    { internal: 8080, protocol: "tcp", external: 18080 },
    { internal: 53, protocol: "udp", ip: "127.0.0.1" },
  ]);
  assert.deepEqual(inputs.volumes, [{ volumeName: "box-disk", containerPath: "/var/lib/devmachines" }]);
  assert.equal(volume.inputs.name, "box-disk");
  assert.deepEqual(
    Object.fromEntries(inputs.labels.map((l: { label: string; value: string }) => [l.label, l.value])),
    { team: "infra", "dev.devmachines.machine": "box", "dev.devmachines.network": "NAT", "dev.devmachines.user": "alice" },
  );
  assert.equal(inputs.healthcheck, undefined, "the image's HEALTHCHECK is inherited, not overridden");
  assert.equal(inputs.wait, true, "pulumi up waits for the VM to be ready (the image's health check)");
  assert.equal(inputs.waitTimeout, 600);
  assert.equal(inputs.stopTimeout, 90, "longer than the guest's 60 s grace period");
  assert.equal(inputs.destroyGraceSeconds, 90);
  assert.equal(inputs.stopSignal, "SIGTERM");
  assert.equal(inputs.restart, "unless-stopped");
  assert.equal(await value(dm.volumeName), "box-disk");
  assert.equal(await value(dm.containerName), "box");
});

test("secrets stay secret: the password upload is secret, the rest of the container stays readable", async () => {
  const spec = containerSpec("sec", { user: "bob", password: "correct horse" });
  const args = containerArgs(pulumi.output(spec));
  assert.equal(await pulumi.isSecret(args.uploads as pulumi.Output<unknown>), true);
  assert.equal(await pulumi.isSecret(args.envs as pulumi.Output<unknown>), false);
  assert.equal(await pulumi.isSecret(args.ports as pulumi.Output<unknown>), false);

  // Extra users travel in a file too, secret when one of them has a plaintext password.
  const manySpec = containerSpec("many", { users: [{ name: "ann", password: "pw-of-ann" }, { name: "ben", sshKeys: [KEY] }] });
  assert.equal(manySpec.env.USERS, undefined);
  assert.ok(!JSON.stringify(manySpec.env).includes("pw-of-ann"), "no password in the environment");
  const many = containerArgs(pulumi.output(manySpec));
  assert.equal(await pulumi.isSecret(many.envs as pulumi.Output<unknown>), false);
  assert.equal(await pulumi.isSecret(many.uploads as pulumi.Output<unknown>), true);
  const hashed = containerArgs(pulumi.output(containerSpec("hashed", { users: [{ name: "ann", passwordHash: "$6$salt$abc" }] })));
  assert.equal(await pulumi.isSecret(hashed.uploads as pulumi.Output<unknown>), false);
});

test("a secret input does not make the machine's outputs secret, and the component's own outputs hide no password", async () => {
  const dm = new DevMachine("secret-out", { sshKeys: [KEY], password: pulumi.secret("pw-pw-pw") });
  assert.equal(await pulumi.isSecret(dm.sshCommand), false);
  assert.equal(await pulumi.isSecret(dm.spec.apply((s) => s.files[0]!.path)), false);
  assert.ok(!(await value(dm.sshCommand)).includes("pw-pw-pw"));
});

test("bad arguments fail at once with the runtime's messages, naming argument and variable", () => {
  assert.throws(
    () => new DevMachine("bad", { memory: "12", cpu: 0, sshKeys: ["ssh-rsa nope"], network: "WIFI" as "NAT" }),
    (error: unknown) => {
      assert.ok(error instanceof DevMachineConfigError);
      assert.match(error.message, /memory: MEMORY="12" must be at least 128 MiB/);
      assert.match(error.message, /cpu: CPU="0" must be a whole number of virtual CPUs/);
      assert.match(error.message, /sshKeys: SSH_KEYS\[0\] key "ssh-rsa nope" has key data that is not a ssh-rsa key/);
      assert.match(error.message, /network: NETWORK="WIFI" must be NAT or BRIDGE/);
      return true;
    },
  );
  assert.throws(() => new DevMachine("nobody", {}), /SSH_KEYS or a password is required: no user could log in/);
  assert.throws(() => new DevMachine("rooted", { user: "root", password: "x" }), /user: USER="root" must not be root/);
  assert.throws(() => new DevMachine("bridged", { network: "BRIDGE", sshKeys: [KEY], ports: [{ guestPort: 80 }] }), /PORTS has no effect with NETWORK=BRIDGE/);
  assert.throws(() => new DevMachine("ud", { sshKeys: [KEY], userData: "a: [" }), /userData: USER_DATA is not valid YAML/);
});

test("BRIDGE: no published ports, SSH at the container's own address on port 22", async () => {
  const dm = new DevMachine("bridge-box", { network: "BRIDGE", sshKeys: [KEY], dockerNetwork: "lan" });
  const ip = await value(dm.ipAddress);
  assert.match(ip, /^172\.30\.0\.\d+$/);
  assert.equal(await value(dm.sshHost), ip);
  assert.equal(await value(dm.sshPort), 22);
  const [container] = resourcesOf(CONTAINER, "bridge-box");
  assert.deepEqual(container!.inputs.ports, []);
  assert.deepEqual(container!.inputs.networksAdvanced, [{ name: "lan", aliases: ["bridge-box"] }]);
  assert.ok(container!.inputs.envs.includes("NETWORK=BRIDGE"));
});

test("without sshPort Docker picks the port, and the outputs report the one it picked", async () => {
  const dm = new DevMachine("auto-port", { sshKeys: [KEY], persistent: false, graceSeconds: 100, readyTimeoutSeconds: 900, restart: "on-failure" });
  const port = await value(dm.sshPort);
  assert.ok(port >= 32768);
  assert.equal(await value(dm.sshCommand), `ssh -p ${port} dev@127.0.0.1`);
  assert.equal(await value(dm.volumeName), "");
  assert.equal(resourcesOf(VOLUME, "auto-port").length, 0);
  const [container] = resourcesOf(CONTAINER, "auto-port");
  assert.equal(container!.inputs.stopTimeout, 130);
  assert.equal(container!.inputs.waitTimeout, 900);
  assert.equal(container!.inputs.restart, "on-failure");
  assert.deepEqual(container!.inputs.volumes, []);
});

test("arguments given as outputs are resolved before the description is built", async () => {
  const dm = new DevMachine("from-outputs", { sshKeys: pulumi.output([KEY]), memory: pulumi.output("1G"), hostname: Promise.resolve("web-1") as pulumi.Input<string> });
  const spec = await value(dm.spec);
  assert.equal(spec.env.MEMORY, "1G");
  assert.equal(spec.hostname, "web-1");
});
