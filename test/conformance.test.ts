/**
 * Conformance: the container description the Pulumi components deploy, run on
 * real Docker Engines without Pulumi, boots a VM we can SSH into.
 *
 * 1. One DevMachine's `containerSpec(...)` -> runContainerSpec on the local engine ->
 *    healthy -> SSH with a generated key to the published port -> a command runs.
 *
 * A group placed over two engines is tested through the real Pulumi engine instead
 * (test/pulumi-engine.test.ts, examples/lab), which deploys these same descriptions.
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
  publishedPort,
  removeContainerSpec,
  runContainerSpec,
  throttleProgress,
  waitHealthy,
  type ContainerSpec,
  type DockerOptions,
} from "../sdk/src/index.js";
import { e2eAvailable, MACHINE_IMAGE, makeKeyPair, ssh, type KeyPair } from "./support.js";

function log(message: string): void {
  console.log(`[conformance ${new Date().toISOString().slice(11, 19)}] ${message}`);
}

const BOOT_TIMEOUT_MS = 6 * 60_000;

/** Guest settings for tests: small, TCG (this machine's KVM cannot run ordinary guests), fast to give up. */
const guest = (key: KeyPair) => ({
  image: MACHINE_IMAGE,
  // The default size: under TCG a new machine starts as a ready-state clone.
  cpu: 2,
  memory: "2G",
  storage: "20G",
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
