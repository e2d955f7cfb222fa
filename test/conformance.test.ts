/**
 * Conformance: the container description the Pulumi components deploy, run on
 * real Docker Engines without Pulumi, boots a VM we can SSH into.
 *
 * 1. One DevMachine's `containerSpec(...)` -> runContainerSpec on the local engine ->
 *    healthy -> SSH with a generated key to the published port -> a command runs.
 * 2. A DevMachineGroup's descriptions placed over two engines (the second one started
 *    here, beside the first) -> both healthy -> SSH into each.
 *
 * Needs Docker and the machine image; skips loudly without them, fails instead when
 * DEVMACHINES_E2E=required. Guests boot under TCG (about 70-90 s each here).
 */
import assert from "node:assert/strict";
import { rm } from "node:fs/promises";
import { test } from "node:test";
import {
  containerLogs,
  containerSpec,
  docker,
  groupContainerSpecs,
  publishedPort,
  removeContainerSpec,
  runContainerSpec,
  throttleProgress,
  waitHealthy,
  type ContainerSpec,
  type DockerOptions,
} from "../sdk/src/index.js";
import { SecondEngine } from "./secondEngine.js";
import { e2eAvailable, freePort, MACHINE_IMAGE, makeKeyPair, ssh, type KeyPair } from "./support.js";

function log(message: string): void {
  console.log(`[conformance ${new Date().toISOString().slice(11, 19)}] ${message}`);
}

const BOOT_TIMEOUT_MS = 6 * 60_000;

/** Guest settings for tests: small, TCG (this machine's KVM cannot run ordinary guests), fast to give up. */
const guest = (key: KeyPair) => ({
  image: MACHINE_IMAGE,
  cpu: 2,
  memory: "1G",
  storage: "8G",
  accel: "tcg" as const,
  sshKeys: [key.publicKey],
  sshHostIp: "127.0.0.1",
  readyTimeoutSeconds: BOOT_TIMEOUT_MS / 1000,
  graceSeconds: 20,
  restart: "no" as const,
});

async function boot(spec: ContainerSpec, options: DockerOptions = {}): Promise<number> {
  const where = options.dockerHost ?? "local engine";
  log(`starting ${spec.name} on ${where}`);
  await runContainerSpec(spec, options);
  const { seconds } = await waitHealthy(spec.name, {
    ...options,
    timeoutMs: BOOT_TIMEOUT_MS,
    onProgress: throttleProgress(15, ({ status, health, seconds }) => log(`${spec.name}: ${status}/${health} after ${seconds} s`)),
  });
  log(`${spec.name} healthy after ${seconds} s on ${where}`);
  return seconds;
}

test("a DevMachine's container description boots on the Docker Engine and lets us in over SSH", { timeout: BOOT_TIMEOUT_MS + 120_000 }, async (t) => {
  if (!(await e2eAvailable(t))) return;
  const key = await makeKeyPair();
  const spec = containerSpec("dm-test-single", {
    ...guest(key),
    user: "tester",
    password: "conformance-secret-pw",
    hostname: "dm-test-single",
    userData: "write_files:\n  - path: /etc/dm-conformance\n    content: from-user-data\n",
    labels: [{ label: "dev.devmachines.test", value: "conformance" }],
  });
  try {
    await removeContainerSpec(spec, { volumes: "all" });
    const seconds = await boot(spec);

    const inspect = JSON.parse(await docker(["inspect", spec.name]))[0];
    // Docker 28 reports capabilities with their CAP_ prefix.
    assert.deepEqual(inspect.HostConfig.CapAdd.map((cap: string) => cap.replace(/^CAP_/, "")), ["NET_ADMIN"], "NET_ADMIN and nothing broader");
    assert.equal(inspect.HostConfig.Privileged, false);
    assert.deepEqual(inspect.HostConfig.Devices.map((d: { PathOnHost: string }) => d.PathOnHost), ["/dev/kvm", "/dev/net/tun"]);
    assert.ok(!JSON.stringify(inspect.Config.Env).includes("conformance-secret-pw"), "the password is not in the container's environment");
    assert.equal(inspect.Config.Labels["dev.devmachines.machine"], "dm-test-single");
    assert.equal(inspect.Mounts[0]?.Name, "dm-test-single-disk");

    const port = await publishedPort(spec.name, 22);
    const out = await ssh({ host: "127.0.0.1", port, user: "tester", key }, "id -un; hostname; cat /etc/dm-conformance; echo; sudo -n true && echo sudo-ok");
    assert.deepEqual(out.split("\n"), ["tester", "dm-test-single", "from-user-data", "sudo-ok"]);
    log(`single machine: healthy after ${seconds} s, SSH on 127.0.0.1:${port} answered ${JSON.stringify(out)}`);
  } catch (error) {
    log(`logs of ${spec.name}:\n${await containerLogs(spec.name, { tail: 40 }).then((logs) => logs.launcher + logs.console, (e: Error) => e.message)}`);
    throw error;
  } finally {
    await removeContainerSpec(spec, { volumes: "all", networks: true });
    await rm(key.dir, { recursive: true, force: true });
  }
});

test("a DevMachineGroup placed over two Docker Engines boots on both and each machine answers SSH", { timeout: 2 * BOOT_TIMEOUT_MS + 300_000 }, async (t) => {
  if (!(await e2eAvailable(t))) return;
  const key = await makeKeyPair();
  const engine = new SecondEngine();
  const hosts = [
    { name: "first", host: "unix:///var/run/docker.sock" },
    { name: "second", host: engine.socket },
  ];
  // Fixed host ports: each engine hands out ephemeral ports on its own and they could collide.
  const placed = groupContainerSpecs("dm-test-grp", {
    template: guest(key),
    machines: [
      { name: "a", sshPort: await freePort() },
      { name: "b", sshPort: await freePort(), memory: "768M" },
    ],
    hosts,
  });
  const optionsOf = (hostIndex: number): DockerOptions => ({ dockerHost: hosts[hostIndex]!.host });
  try {
    log("starting a second Docker Engine");
    await engine.start();
    log(`loading ${MACHINE_IMAGE} into it`);
    const loadStarted = Date.now();
    await engine.loadImage(MACHINE_IMAGE);
    log(`image loaded in ${Math.round((Date.now() - loadStarted) / 1000)} s`);

    assert.deepEqual(placed.map((p) => [p.spec.name, p.machine.hostName]), [["dm-test-grp-a", "first"], ["dm-test-grp-b", "second"]]);
    for (const { machine, spec } of placed) await removeContainerSpec(spec, { ...optionsOf(machine.hostIndex), volumes: "all" });

    // Two guests at once: this machine's practical limit.
    const seconds = await Promise.all(placed.map(({ machine, spec }) => boot(spec, optionsOf(machine.hostIndex))));

    for (const { machine, spec } of placed) {
      const inspect = JSON.parse(await docker(["inspect", spec.name], optionsOf(machine.hostIndex)))[0];
      assert.ok(inspect.NetworkSettings.Networks["dm-test-grp"], `${spec.name} joined the group's network on ${machine.hostName}`);
      assert.equal(inspect.Config.Labels["dev.devmachines.host"], machine.hostName);
      const port = spec.access.sshPort!;
      const out = await ssh({ host: spec.access.sshHost!, port, user: "dev", key }, "hostname; grep MemTotal /proc/meminfo");
      assert.equal(out.split("\n")[0], spec.hostname);
      log(`${spec.name} on ${machine.hostName}: SSH 127.0.0.1:${port} -> ${JSON.stringify(out)}`);
    }
    // The second machine really runs on the second engine, not the first.
    assert.equal(await docker(["ps", "--quiet", "--filter", "name=^dm-test-grp-b$"]), "");
    log(`group: healthy after ${seconds.join(" s and ")} s`);
  } finally {
    for (const { machine, spec } of placed) {
      await removeContainerSpec(spec, { ...optionsOf(machine.hostIndex), volumes: "all", networks: true });
    }
    log("stopping the second Docker Engine");
    await engine.stop();
    await rm(key.dir, { recursive: true, force: true });
  }
});
