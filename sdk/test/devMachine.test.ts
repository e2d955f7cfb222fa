import assert from "node:assert/strict";
import { test } from "node:test";
import * as pulumi from "@pulumi/pulumi";
import { KEY, resourcesOf, SECRET_SIG, SECRET_VALUE, value } from "./mocks.js";
import { parseConfig } from "@devmachines/runtime/config";
import { containerArgs, DevMachine, DevMachineConfigError, containerSpec } from "../src/index.js";

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
  assert.deepEqual(inputs.capabilities, { adds: ["CAP_NET_ADMIN"] }, "NET_ADMIN and nothing broader, spelt as Docker reports it back");
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
    { team: "infra", "tech.utkin.devmachines.runtime": "true", "dev.devmachines.machine": "box", "dev.devmachines.network": "NAT", "dev.devmachines.user": "alice" },
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

  // Extra users travel in a file too, secret when one of them has a password or a hash.
  const manySpec = containerSpec("many", { users: [{ name: "ann", password: "pw-of-ann" }, { name: "ben", sshKeys: [KEY] }] });
  assert.equal(manySpec.env.USERS, undefined);
  assert.ok(!JSON.stringify(manySpec.env).includes("pw-of-ann"), "no password in the environment");
  const many = containerArgs(pulumi.output(manySpec));
  assert.equal(await pulumi.isSecret(many.envs as pulumi.Output<unknown>), false);
  assert.equal(await pulumi.isSecret(many.uploads as pulumi.Output<unknown>), true);
  const hashed = containerArgs(pulumi.output(containerSpec("hashed", { users: [{ name: "ann", passwordHash: HASH }] })));
  assert.equal(await pulumi.isSecret(hashed.uploads as pulumi.Output<unknown>), true, "a password hash is a secret too");
  const keysOnly = containerArgs(pulumi.output(containerSpec("keys-only", { users: [{ name: "ann", sshKeys: [KEY] }], userData: "packages: [htop]\n" })));
  assert.equal(await pulumi.isSecret(keysOnly.uploads as pulumi.Output<unknown>), false, "public keys and plain user data are not secret");
});

const HASH = "$6$saltsalt$Bq0e1nq6hY1ZzF0.jVqKx2m3oXr5cQ8uYbJmTQdpQfPQ2yU8cYhN0vD1aG7sR4wE9kL3nM6tB5pA2xZ1cV0uW/";

test("a password hash never reaches the environment: it travels in the secret PASSWORD_HASH_FILE, read by the runtime as the same user", () => {
  const spec = containerSpec("hash-box", { user: "alice", passwordHash: HASH, sshKeys: [KEY] });
  assert.ok(!JSON.stringify(spec.env).includes(HASH), "no hash in the environment (docker inspect)");
  assert.equal(spec.env.PASSWORD_HASH, undefined);
  assert.equal(spec.env.USER, "alice");
  assert.equal(spec.env.PASSWORD_HASH_FILE, "/run/secrets/devmachines/password-hash");
  const file = spec.files.find((f) => f.path === spec.env.PASSWORD_HASH_FILE)!;
  assert.deepEqual(file && { mode: file.mode, secret: file.secret }, { mode: "0400", secret: true });
  assert.equal(file.content, HASH);
  assert.equal(spec.access.user, "alice");
  assert.equal(spec.labels["dev.devmachines.user"], "alice");

  // The runtime reads the deployed form as exactly the user the short form (USER, PASSWORD_HASH, SSH_KEYS) describes.
  const read = (env: Record<string, string>, files: { path: string; content: string }[]) => {
    const result = parseConfig(env, (path) => files.find((f) => f.path === path)?.content);
    assert.ok(result.ok, JSON.stringify(!result.ok && result.issues));
    return result.config.users;
  };
  const { PASSWORD_HASH_FILE: _, ...rest } = spec.env;
  const shortForm = read({ ...rest, USER: "alice", PASSWORD_HASH: HASH, SSH_KEYS: KEY }, []);
  assert.deepEqual(read(spec.env, spec.files), shortForm);

  // With more users, the short-form user stays first.
  const both = containerSpec("hash-many", { user: "alice", passwordHash: HASH, users: [{ name: "ben", sshKeys: [KEY] }] });
  assert.deepEqual(read(both.env, both.files).map((u) => u.name), ["alice", "ben"]);
  assert.ok(!JSON.stringify(both.env).includes(HASH));
  // The rules still speak of the arguments the user gave.
  assert.throws(() => containerSpec("hash-pw", { user: "alice", password: "pw-pw-pw-pw", passwordHash: HASH }), /passwordHash: PASSWORD_HASH_FILE is set together with PASSWORD_FILE/);
  assert.throws(() => containerSpec("hash-bad", { user: "alice", passwordHash: "plain" }), /passwordHash: PASSWORD_HASH_FILE must be a crypt\(3\) hash/);
});

test("secret inputs stay secret on the way to the engine: passwordHash, userData, users[].password, and the env they flow into", async () => {
  const dm = new DevMachine("secret-in", {
    user: "carol",
    sshKeys: [KEY],
    passwordHash: pulumi.secret(HASH),
    userData: pulumi.secret("write_files: [{path: /etc/token, content: s3cr3t-token}]\n"),
  });
  assert.equal(await value(dm.sshCommand).then((c) => c.endsWith("carol@127.0.0.1")), true);
  const [container] = resourcesOf(CONTAINER, "secret-in");
  const inputs = container!.inputs;
  assert.equal(inputs.uploads[SECRET_SIG], SECRET_VALUE, "uploads reach the engine as a secret");
  assert.deepEqual(
    inputs.uploads.value.map((u: { file: string }) => u.file),
    ["/run/secrets/devmachines/password-hash", "/etc/devmachines/user-data"],
  );
  assert.ok(!JSON.stringify(inputs.envs).includes(HASH), "the hash is not in the environment");
  assert.ok(!JSON.stringify(inputs.envs).includes("s3cr3t-token"));
  assert.equal((inputs.envs as Record<string, unknown>)[SECRET_SIG], undefined, "no secret setting flows into the environment");
  assert.equal(inputs.name, "secret-in", "names, ports and labels stay readable");
  assert.equal(await pulumi.isSecret(dm.spec), true, "the spec holds secrets, so it is secret");
  assert.equal(await pulumi.isSecret(dm.sshCommand), false);
  assert.equal(await pulumi.isSecret(dm.sshUser), false);

  // Nested secrets, as YAML, Python, Go and .NET programs pass them through the plugin.
  const nested = new DevMachine("secret-nested", { users: [{ name: "dave", password: pulumi.secret("pw-of-dave"), sshKeys: [KEY] }] });
  assert.equal(await value(nested.sshUser), "dave");
  assert.equal(await pulumi.isSecret(nested.sshCommand), false);
  const [nestedContainer] = resourcesOf(CONTAINER, "secret-nested");
  assert.equal(nestedContainer!.inputs.uploads[SECRET_SIG], SECRET_VALUE);
  assert.ok(!JSON.stringify(nestedContainer!.inputs.envs).includes("pw-of-dave"));

  // A secret setting that lands in the environment makes the environment secret (and what else it reaches).
  const host = new DevMachine("secret-env", { sshKeys: [KEY], hostname: pulumi.secret("hidden-host") });
  await value(host.sshCommand);
  const [hostContainer] = resourcesOf(CONTAINER, "secret-env");
  assert.equal(hostContainer!.inputs.envs[SECRET_SIG], SECRET_VALUE, "envs reach the engine as a secret");
  assert.equal(hostContainer!.inputs.hostname[SECRET_SIG], SECRET_VALUE);
  assert.equal(await pulumi.isSecret(host.spec), true);
});

test("a secret password does not make the machine's outputs secret, and they hide no password; the spec is secret", async () => {
  const dm = new DevMachine("secret-out", { sshKeys: [KEY], password: pulumi.secret("pw-pw-pw") });
  assert.equal(await pulumi.isSecret(dm.sshCommand), false);
  assert.equal(await pulumi.isSecret(dm.sshHost), false);
  assert.equal(await pulumi.isSecret(dm.sshPort), false);
  assert.equal(await pulumi.isSecret(dm.spec), true, "the spec holds the password file");
  assert.equal(await pulumi.isSecret(dm.spec.apply((s) => s.files[0]!.path)), true);
  assert.ok(!(await value(dm.sshCommand)).includes("pw-pw-pw"));
  const plain = new DevMachine("plain-out", { sshKeys: [KEY] });
  assert.equal(await pulumi.isSecret(plain.spec), false, "a description without secrets stays readable");
});

test("bad arguments fail at once with the runtime's messages, naming argument and variable", () => {
  assert.throws(
    () => new DevMachine("bad", { memory: "12", cpu: 0, sshKeys: ["ssh-rsa nope"], network: "WIFI" as "NAT" }),
    (error: unknown) => {
      assert.ok(error instanceof DevMachineConfigError);
      assert.match(error.message, /memory: MEMORY="12" must be at least 128 MiB/);
      assert.match(error.message, /cpu: CPU="0" must be a whole number of virtual CPUs/);
      assert.match(error.message, /sshKeys: SSH_KEYS\[0\] has key data that is not a ssh-rsa key/);
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

test("bad-inputs 13: ports with a host port out of range, a bad host address or a protocol that adds forwards are refused, each named", () => {
  const bad = [
    { guestPort: 80, hostPort: 70000 },
    { guestPort: 80, hostPort: 0 },
    { guestPort: 80, hostPort: 8.5 },
    { guestPort: 0 },
    { guestPort: 65536 },
    { guestPort: 80, hostIp: "localhost" },
    { guestPort: 80, hostIp: "1.2.3.4:99" },
    { guestPort: 80, protocol: "tcp,8000:22" as "tcp" },
    { guestPort: 80, protocol: "sctp" as "tcp" },
    { guestPort: 80, protocol: "udp/tcp" as "tcp" },
  ];
  for (const port of bad) {
    assert.throws(
      () => containerSpec("bad-port", { sshKeys: [KEY], ports: [{ guestPort: 443 }, port] }),
      (error: unknown) => error instanceof DevMachineConfigError && /ports\[1\]\.(guestPort|hostPort|hostIp|protocol)=.* must be/.test(error.message),
      JSON.stringify(port),
    );
  }
  assert.throws(() => containerSpec("bad-ssh-ip", { sshKeys: [KEY], sshHostIp: "everywhere" }), /sshHostIp="everywhere" must be an IPv4 or IPv6 address/);
  // All at once.
  try {
    containerSpec("many", { sshKeys: [KEY], ports: [{ guestPort: 0, hostPort: 99999, protocol: "x" as "tcp", hostIp: "y" }] });
    assert.fail("accepted");
  } catch (error) {
    assert.ok(error instanceof DevMachineConfigError);
    assert.equal(error.issues.length, 4);
  }
  const good = containerSpec("good-ports", { sshKeys: [KEY], ports: [{ guestPort: 80, hostPort: 8080, hostIp: "::1", protocol: "udp" }] });
  assert.equal(good.env.PORTS, "80:80/udp");
});

test("bad-inputs 3/7: a multi-line key or a YAML alias bomb in userData throws DevMachineConfigError, not a raw error", () => {
  assert.throws(() => containerSpec("nl-key", { sshKeys: [`${KEY}\n${KEY}`] }), (error: unknown) => error instanceof DevMachineConfigError && /exactly one key line/.test(error.message));
  assert.throws(
    () => containerSpec("nl-users", { users: [{ name: "ann", sshKeys: [`${KEY}\r${KEY}`] }] }),
    (error: unknown) => error instanceof DevMachineConfigError && /sshKeys\[0\] contains a line break/.test(error.message),
  );
  for (const userData of ["runcmd: [*nope]", "a: &a [1,1,1,1,1,1,1,1,1,1]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]", "a: !custom x"]) {
    assert.throws(
      () => containerSpec("yaml", { sshKeys: [KEY], userData }),
      (error: unknown) => error instanceof DevMachineConfigError && /userData: USER_DATA /.test(error.message),
      userData,
    );
  }
});

test("arch: aarch64 picks devmachines/debian-arm64:13 and sets ARCH; a given image is kept and ARCH still checks it; a bad arch names the argument", async () => {
  await value(new DevMachine("armbox", { sshKeys: [KEY], arch: "aarch64" }).containerId);
  const [arm] = resourcesOf(CONTAINER, "armbox");
  assert.ok(arm);
  assert.equal(arm.inputs.image, "devmachines/debian-arm64:13");
  assert.ok((arm.inputs.envs as string[]).includes("ARCH=aarch64"));

  await value(new DevMachine("armown", { sshKeys: [KEY], arch: "aarch64", image: "registry.example/arm:1" }).containerId);
  const [own] = resourcesOf(CONTAINER, "armown");
  assert.equal(own?.inputs.image, "registry.example/arm:1", "a given image wins; the launcher checks it against ARCH");

  await value(new DevMachine("plain", { sshKeys: [KEY] }).containerId);
  const [plain] = resourcesOf(CONTAINER, "plain");
  assert.equal(plain?.inputs.image, "devmachines/debian:13");
  assert.ok(!(plain?.inputs.envs as string[]).some((e) => e.startsWith("ARCH=")), "unset: the launcher follows the image");

  assert.throws(
    () => containerSpec("bad", { sshKeys: [KEY], arch: "riscv64" as "aarch64" }),
    (error: unknown) => error instanceof DevMachineConfigError && /arch/.test(error.message) && /ARCH/.test(error.message) && /x86_64 or aarch64/.test(error.message),
  );
});
