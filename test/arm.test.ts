/**
 * End-to-end: the arm64 machine image (devmachines/debian-arm64) on a real Docker Engine.
 * On an x86_64 host the guest runs under TCG (KVM runs only the host's own architecture):
 * boot it, SSH in, `uname -m` says aarch64, `docker stop` powers it off cleanly (exit 0).
 * Also, without a boot: ARCH comes from the image, and a contradicting ARCH is refused.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { after, before, describe, test } from "node:test";
import { containerLogs, waitHealthy } from "../sdk/src/run.js";
import {
  ARM_MACHINE_IMAGE, BOOT_TIMEOUT_MS, docker, e2eAvailable, makeKeyPair, progress, publishedPort, removeAll, ssh, type KeyPair,
} from "./support.js";

const exec = promisify(execFile);
const envArgs = (env: Record<string, string>) => Object.entries(env).flatMap(([key, value]) => ["--env", `${key}=${value}`]);

let key: KeyPair;
before(async () => {
  key = await makeKeyPair();
});

/** Runs the launcher in the arm64 image without booting; resolves with exit code and output. */
async function launcher(args: string[], env: Record<string, string>, script?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const argv = ["run", "--rm", ...envArgs({ CPU: "1", MEMORY: "1G", STORAGE: "4G", USER: "dev", SSH_KEYS: key.publicKey, ...env })];
  if (script) argv.push("--entrypoint", "sh");
  argv.push(ARM_MACHINE_IMAGE, ...(script ? ["-c", script] : args));
  return exec("docker", argv, { maxBuffer: 16 * 1024 * 1024 }).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (error: { code?: number; stdout?: string; stderr?: string }) => ({ code: error.code ?? -1, stdout: error.stdout ?? "", stderr: error.stderr ?? "" }),
  );
}

describe("an aarch64 DevMachine", { concurrency: 1 }, () => {
  test("ARCH from the image: the dry run plans qemu-system-aarch64 on virt with UEFI; ARCH=x86_64 against it exits 2 naming ARCH", async (t) => {
    if (!(await e2eAvailable(t, ARM_MACHINE_IMAGE))) return;
    const plan = JSON.parse((await launcher(["--dry-run"], {})).stdout) as {
      qemu: { binary: string; args: string[] };
      arch: { arch: string; reason: string; firmware?: { code: string } };
      accel: { first: string };
    };
    assert.equal(plan.qemu.binary, "qemu-system-aarch64");
    assert.equal(plan.arch.arch, "aarch64");
    assert.equal(plan.arch.reason, "the base image is aarch64 (/images/base.qcow2.arch)");
    assert.ok(plan.qemu.args.includes("virt,gic-version=max"));
    if (process.arch === "x64") assert.equal(plan.accel.first, "tcg", "an x86_64 host runs an arm64 guest under TCG");

    // A user's own disk has no .arch file beside it: the boot loader on its EFI partition tells.
    const probed = await launcher([], {}, "cp /images/base.qcow2 /tmp/mine.qcow2 && BASE_IMAGE=/tmp/mine.qcow2 exec node /opt/devmachines/runtime/dist/main.js --dry-run");
    assert.equal(probed.code, 0, probed.stderr);
    assert.equal((JSON.parse(probed.stdout) as typeof plan).arch.reason, "the base image is aarch64 (BOOTAA64.EFI on the disk's EFI system partition)");

    const wrong = await launcher(["--dry-run"], { ARCH: "x86_64" });
    assert.equal(wrong.code, 2, "a mismatch is a configuration error: exit 2");
    assert.match(wrong.stderr, /ARCH=x86_64 does not match the base image, which is aarch64 \(\/images\/base\.qcow2\.arch\): ARCH must name the base image's architecture/);
  });

  test("boots under TCG, SSH answers, uname -m is aarch64, docker stop powers it off with exit 0", { timeout: BOOT_TIMEOUT_MS + 180_000 }, async (t) => {
    if (!(await e2eAvailable(t, ARM_MACHINE_IMAGE))) return;
    const name = "dm-test-arm64";
    after(() => removeAll({ containers: [name] }));
    await removeAll({ containers: [name] });
    const started = Date.now();
    await docker([
      "run", "-d", "--name", name, "--hostname", "arm-box", "--stop-timeout", "60", "-p", "127.0.0.1::22",
      // Under TCG an arm64 guest powers off more slowly than an x86_64 one: a longer grace period.
      ...envArgs({ CPU: "2", MEMORY: "1G", STORAGE: "4G", USER: "dev", SSH_KEYS: key.publicKey, GRACE_SECONDS: "40" }),
      ARM_MACHINE_IMAGE,
    ]);
    await waitHealthy(name, { timeoutMs: BOOT_TIMEOUT_MS, intervalMs: 2000, onProgress: progress("arm64") });
    // A figure, not an assertion: it depends on the host and its load.
    console.log(`  [arm64] boot-to-healthy: ${((Date.now() - started) / 1000).toFixed(1)} s after docker run (TCG, 2 vCPU, 1 GiB)`);

    const target = { host: "127.0.0.1", port: await publishedPort(name, 22), user: "dev", key };
    assert.equal(await ssh(target, "uname -m"), "aarch64");
    assert.equal(await ssh(target, "hostname"), "arm-box");
    assert.equal(await ssh(target, "cloud-init status | head -1"), "status: done");
    assert.equal(await ssh(target, "test -d /sys/firmware/efi && echo uefi"), "uefi", "booted through UEFI");

    const stopAt = Date.now();
    await docker(["stop", "-t", "60", name]);
    console.log(`  [arm64] docker stop took ${((Date.now() - stopAt) / 1000).toFixed(1)} s`);
    assert.equal(await docker(["inspect", "--format", "{{.State.ExitCode}}", name]), "0", "the guest powered off on ACPI power-down");
    const logs = await containerLogs(name);
    assert.match(logs.launcher, /architecture: aarch64 \(the base image is aarch64/);
    assert.match(logs.launcher, /QEMU exited cleanly \(the guest powered off\)/);
  });
});
