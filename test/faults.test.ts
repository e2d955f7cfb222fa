/**
 * Fault tests: nothing lost. Each is a real Docker Engine running real QEMU guests (TCG).
 *
 * 1. SIGKILL (`docker kill`) mid-write and mid-boot, then a start on the same volume: the
 *    overlay passes `qemu-img check`, the guest boots, data written and synced before is there.
 *    While the first machine runs, a second container on its volume is refused at once
 *    (exit 5, the lock named) and the first keeps running untouched.
 * 2. The disks folder read-only, full (a small tmpfs), its overlay deleted; the base image
 *    missing or swapped: each a clear error with its documented exit code, nothing changed.
 *    A base image without a digest beside it is not read at the first start (its digest is
 *    recorded once QEMU runs) nor at the next (the record's word, the file unchanged), and a
 *    base swapped in at its path is still refused.
 * 3. dockerd restarted (a second engine of our own, never the shared one) with a
 *    `--restart unless-stopped` machine running: it comes back healthy with its data.
 *
 * Boots are expensive (a minute each under TCG here): the file boots five times in all
 * (two full boots and a cut-short one in 1, two in 3; 2 kills its starts seconds in).
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { after, before, describe, test } from "node:test";
import { containerLogs, waitHealthy, type DockerOptions } from "../sdk/src/run.js";
import { SecondEngine } from "./secondEngine.js";
import {
  BOOT_TIMEOUT_MS, docker, e2eAvailable, freePort, MACHINE_IMAGE, makeKeyPair, progress, publishedPort, removeAll, ssh, waitForLog, type KeyPair,
} from "./support.js";

const exec = promisify(execFile);
const DISKS = "/var/lib/devmachines";
const DEVICES = ["--device", "/dev/kvm", "--device", "/dev/net/tun", "--cap-add", "NET_ADMIN"];
const envArgs = (env: Record<string, string>) => Object.entries(env).flatMap(([key, value]) => ["--env", `${key}=${value}`]);

function log(message: string): void {
  console.log(`[faults ${new Date().toISOString().slice(11, 19)}] ${message}`);
}

let key: KeyPair;
before(async () => {
  key = await makeKeyPair();
});
after(() => (key ? rm(key.dir, { recursive: true, force: true }) : undefined));

/** A small TCG guest (this host's KVM cannot run ordinary guests): the launcher's environment. */
const guestEnv = () => envArgs({ CPU: "2", MEMORY: "1G", STORAGE: "6G", USER: "dev", SSH_KEYS: key.publicKey, ACCEL: "tcg" });

/** The last `docker run` argument list: the machine image and nothing after it. */
function machineArgs(name: string, volume: string, extra: string[] = []): string[] {
  return ["--name", name, ...DEVICES, "--stop-timeout", "90", "-v", `${volume}:${DISKS}`, ...extra, ...guestEnv(), MACHINE_IMAGE];
}

/** Runs a container to its end (it is expected to refuse): its exit code and both log streams. */
async function runToExit(name: string, args: string[], options: DockerOptions = {}): Promise<{ code: number; logs: string }> {
  await docker(["rm", "--force", name], options).catch(() => undefined);
  await docker(["run", "--name", name, ...args], options).catch(() => undefined);
  const code = Number(await docker(["inspect", "--format", "{{.State.ExitCode}}", name], options));
  const { launcher, console: serial } = await containerLogs(name, options);
  await docker(["rm", "--force", name], options);
  return { code, logs: `${launcher}${serial}` };
}

/** A command in a throwaway container with the volume mounted at /d: exit code and output. */
async function inVolume(volume: string, entrypoint: string, args: string[]): Promise<{ code: number; out: string }> {
  try {
    const { stdout, stderr } = await exec("docker", ["run", "--rm", "-v", `${volume}:/d`, "--entrypoint", entrypoint, MACHINE_IMAGE, ...args]);
    return { code: 0, out: `${stdout}${stderr}`.trim() };
  } catch (error) {
    const e = error as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === "number" ? e.code : -1, out: `${e.stdout ?? ""}${e.stderr ?? ""}`.trim() };
  }
}

/** Every file in the volume with its size and modification time: proof that nothing changed. */
const snapshot = async (volume: string) => (await inVolume(volume, "find", ["/d", "-printf", "%p %s %T@\\n"])).out;

/** `qemu-img check` of the volume's overlay; fails the test on anything but a clean image or mere leaks. */
async function checkOverlay(volume: string, when: string): Promise<void> {
  const { code, out } = await inVolume(volume, "qemu-img", ["check", "--output=json", "/d/disk.qcow2"]);
  log(`qemu-img check ${when}: exit ${code} ${out.replace(/\s+/g, " ")}`);
  // 0: no errors; 3: leaked clusters only (space a killed QEMU left allocated, no data at risk;
  // the launcher repairs them at its next start). 2 would be corruption, 1 a failed check.
  assert.ok(code === 0 || code === 3, `the overlay passes qemu-img check ${when} (exit ${code}): ${out}`);
  assert.equal(JSON.parse(out.slice(out.indexOf("{"))).corruptions ?? 0, 0);
}

/** `docker start` an existing container; resolves with the time it started (for `logs --since`). */
async function restart(name: string): Promise<string> {
  await docker(["start", name]);
  return docker(["inspect", "--format", "{{.State.StartedAt}}", name]);
}

describe("faults: nothing lost", { concurrency: 1 }, () => {
  test("docker kill mid-write and mid-boot keeps synced data and a sound overlay; a second container on the volume is refused at once", { timeout: 3 * BOOT_TIMEOUT_MS }, async (t) => {
    if (!(await e2eAvailable(t))) return;
    const [name, second, volume] = ["dm-faults-kill", "dm-faults-kill-second", "dm-faults-kill"];
    after(() => removeAll({ containers: [name, second], volumes: [volume] }));
    await removeAll({ containers: [name, second], volumes: [volume] });
    await docker(["volume", "create", volume]);

    await docker(["run", "-d", "-p", "127.0.0.1::22", ...machineArgs(name, volume)]);
    await waitHealthy(name, { timeoutMs: BOOT_TIMEOUT_MS, onProgress: progress(name) });
    const target = { host: "127.0.0.1", port: await publishedPort(name, 22), user: "dev", key };
    const digest = await ssh(target, "echo kept > ~/kept.txt && head -c 16M /dev/urandom > ~/blob && sync && sha256sum ~/blob | cut -d' ' -f1");
    const bootId = await ssh(target, "cat /proc/sys/kernel/random/boot_id");
    log(`first boot healthy; 16 MiB written and synced (sha256 ${digest.slice(0, 12)})`);

    // A second container on the same volume: refused before it changes anything, the first untouched.
    const before = await inVolume(volume, "find", ["/d", "-printf", "%p %s\\n"]);
    const refused = await runToExit(second, machineArgs(second, volume));
    assert.equal(refused.code, 5, `exit 5: the disks folder is in use\n${refused.logs}`);
    assert.match(refused.logs, /DISKS_DIR \/var\/lib\/devmachines is in use by another running DevMachine: its lock \(flock on the folder\) is held, so this container changed nothing/);
    assert.doesNotMatch(refused.logs, /started QEMU|disk: /, "it stopped before the disk and QEMU");
    assert.equal((await inVolume(volume, "find", ["/d", "-printf", "%p %s\\n"])).out, before.out, "the volume's files are as they were");
    const state = JSON.parse(await docker(["inspect", "--format", "{{json .State}}", name])) as { Running: boolean; Health: { Status: string } };
    assert.equal(state.Running, true);
    assert.equal(await docker(["inspect", "--format", "{{.RestartCount}}", name]), "0");
    assert.equal(await ssh(target, "cat ~/kept.txt; cat /proc/sys/kernel/random/boot_id"), `kept\n${bootId}`, "the first machine runs on, same boot");
    log("a second container on the volume exited 5 at once; the first runs on");

    // Mid-write: a writer appends and syncs in a loop; SIGKILL while it runs.
    await ssh(target, "setsid sh -c 'while :; do head -c 4M /dev/urandom >> ~/churn; sync; done' >/dev/null 2>&1 < /dev/null &");
    await ssh(target, "while [ $(stat -c %s ~/churn 2>/dev/null || echo 0) -lt 33554432 ]; do sleep 0.5; done");
    await docker(["kill", name]);
    log("killed (SIGKILL) while the guest was writing");
    await checkOverlay(volume, "after a kill mid-write");

    // Mid-boot: start again and kill while the guest boots (its kernel is quiet on the console:
    // GRUB's line, then some seconds for the kernel and early user space to run and write).
    const since = await restart(name);
    await waitForLog(name, /Booting `Debian|Cloud-init v\./, BOOT_TIMEOUT_MS, since);
    await new Promise((resolve) => setTimeout(resolve, 15_000));
    await docker(["kill", name]);
    const midBoot = await exec("docker", ["logs", "--since", since, name]);
    assert.match(midBoot.stderr, /disk: reuse/, "the second start reused the disk");
    assert.doesNotMatch(midBoot.stderr, /ready after/, "the kill came before the guest was ready");
    log("killed (SIGKILL) mid-boot");
    await checkOverlay(volume, "after a kill mid-boot");

    // And once more: a whole boot, with the data synced before the first kill.
    const last = await restart(name);
    await waitHealthy(name, { timeoutMs: BOOT_TIMEOUT_MS, onProgress: progress(name) });
    const again = { ...target, port: await publishedPort(name, 22) };
    assert.equal(await ssh(again, "cat ~/kept.txt"), "kept");
    assert.equal(await ssh(again, "sha256sum ~/blob | cut -d' ' -f1"), digest, "the synced 16 MiB are intact");
    assert.match(await ssh(again, "test -s ~/churn && echo churn-there"), /churn-there/, "the file being written when killed is there");
    assert.notEqual(await ssh(again, "cat /proc/sys/kernel/random/boot_id"), bootId);
    const lastLogs = await exec("docker", ["logs", "--since", last, name]);
    log(`healthy again; launcher said: ${(lastLogs.stderr.match(/devmachines: disk: .*/g) ?? []).join(" | ")}`);
    await docker(["stop", "-t", "90", name]);
    // Clean after a clean stop: the leaks of the kills were repaired by the launcher's own check.
    const clean = await inVolume(volume, "qemu-img", ["check", "/d/disk.qcow2"]);
    assert.equal(clean.code, 0, `clean after a clean stop: ${clean.out}`);
  });

  test("disks folder read-only, full, its overlay deleted; base image missing or swapped: documented exit code, clear message, nothing changed", { timeout: BOOT_TIMEOUT_MS }, async (t) => {
    if (!(await e2eAvailable(t))) return;
    const [name, volume] = ["dm-faults-disks", "dm-faults-disks"];
    const otherBase = join(tmpdir(), "dm-faults-other-base.qcow2");
    after(async () => {
      await removeAll({ containers: [name], volumes: [volume] });
      await rm(otherBase, { force: true });
    });
    await removeAll({ containers: [name], volumes: [volume] });

    // A disk made by a real start, stopped (SIGKILL) as soon as QEMU runs: no full boot needed.
    await docker(["run", "-d", ...machineArgs(name, volume)]);
    await waitForLog(name, /started QEMU/, 120_000);
    await docker(["kill", name]);
    await docker(["rm", name]);
    const made = await snapshot(volume);
    assert.match(made, /\/d\/disk\.qcow2 /);
    assert.match(made, /\/d\/disk\.base\.json /);

    const cases: { what: string; args: string[]; code: number; message: RegExp }[] = [
      {
        what: "read-only disks folder",
        args: machineArgs(name, `${volume}`, []).map((arg) => (arg === `${volume}:${DISKS}` ? `${volume}:${DISKS}:ro` : arg)),
        code: 3,
        message: /DISKS_DIR \/var\/lib\/devmachines cannot be written .*Mount a writable volume there/,
      },
      {
        what: "base image missing",
        args: machineArgs(name, volume, ["--env", "BASE_IMAGE=/images/gone.qcow2"]),
        code: 3,
        message: /no base image at \/images\/gone\.qcow2 \(BASE_IMAGE\)/,
      },
      {
        what: "base image swapped",
        args: machineArgs(name, volume, ["-v", `${otherBase}:/images/base.qcow2:ro`]),
        code: 6,
        message: /the disk in \/var\/lib\/devmachines was created over another base image .*Booting it over a different base would corrupt it/,
      },
    ];
    await exec("qemu-img", ["create", "-q", "-f", "qcow2", otherBase, "1G"]);
    for (const { what, args, code, message } of cases) {
      const result = await runToExit(name, args);
      assert.equal(result.code, code, `${what}: exit ${code}\n${result.logs}`);
      assert.match(result.logs, message, what);
      assert.equal(await snapshot(volume), made, `${what}: the volume is as it was`);
      log(`${what}: exit ${result.code}, ${result.logs.trim().split("\n").at(-1)}`);
    }

    // The overlay deleted between starts: refused, never silently replaced by a blank disk.
    await inVolume(volume, "rm", ["/d/disk.qcow2"]);
    const deleted = await snapshot(volume);
    const gone = await runToExit(name, machineArgs(name, volume));
    assert.equal(gone.code, 6, `overlay deleted: exit 6\n${gone.logs}`);
    assert.match(gone.logs, /\/var\/lib\/devmachines\/disk\.qcow2 is missing, but .*disk\.base\.json says a disk was made .*Refusing to boot a blank disk in its place/);
    assert.equal(await snapshot(volume), deleted, "overlay deleted: nothing was made");
    log(`overlay deleted: exit 6, ${gone.logs.trim().split("\n").at(-1)}`);

    // Full: a 64 MiB tmpfs as the disks folder. The launcher runs under sh so the folder can
    // be listed after it exits (a tmpfs goes with its container).
    const full = await runToExit(name, [
      ...DEVICES, "--mount", `type=tmpfs,destination=${DISKS},tmpfs-size=64m`, ...guestEnv(), "--entrypoint", "sh", MACHINE_IMAGE,
      "-c", `node /opt/devmachines/runtime/dist/main.js; code=$?; echo "left in the disks folder: [$(ls -A ${DISKS})]"; exit $code`,
    ]);
    assert.equal(full.code, 3, `full: exit 3\n${full.logs}`);
    assert.match(full.logs, /DISKS_DIR \/var\/lib\/devmachines is full: 64 MiB free, and a DevMachine needs at least 256 MiB there to boot/);
    assert.match(full.logs, /left in the disks folder: \[\]/, "nothing was made");
    log(`full: exit 3, ${full.logs.match(/devmachines: DISKS_DIR.*/)?.[0]}`);
  });

  test("a base image without a digest beside it: the first start does not read it and records its digest once QEMU runs; the next start takes the record's word; a swapped base is still refused", { timeout: BOOT_TIMEOUT_MS }, async (t) => {
    if (!(await e2eAvailable(t))) return;
    const [name, volume] = ["dm-faults-nodigest", "dm-faults-nodigest"];
    const noDigest = join(tmpdir(), "dm-faults-nodigest.sha256");
    const otherBase = join(tmpdir(), "dm-faults-nodigest-other.qcow2");
    after(async () => {
      await removeAll({ containers: [name], volumes: [volume] });
      await rm(noDigest, { force: true });
      await rm(otherBase, { force: true });
    });
    await removeAll({ containers: [name], volumes: [volume] });
    // The image's own base, its digest beside it hidden (an empty file): as a user's image would be.
    await writeFile(noDigest, "");
    const hide = ["-v", `${noDigest}:/images/base.qcow2.sha256:ro`];
    const record = async () => JSON.parse((await inVolume(volume, "cat", ["/d/disk.base.json"])).out) as { sha256?: string; file?: { bytes: number } };

    // Each start is killed as soon as the launcher has said what it did: no guest boot needed.
    await docker(["run", "-d", ...machineArgs(name, volume, hide)]);
    await waitForLog(name, /disk: base image identified after QEMU started: sha256 [0-9a-f]{12} in \d+ ms/, 120_000);
    await docker(["kill", name]);
    const first = (await containerLogs(name)).launcher;
    assert.match(first, /disk: create .*; base not hashed yet: it is read once QEMU runs/);
    await docker(["rm", name]);
    const sha256 = (await inVolume(volume, "sha256sum", ["/images/base.qcow2"])).out.split(" ")[0];
    const made = await record();
    assert.equal(made.sha256, sha256, "the record holds the base's digest");
    assert.ok(made.file && made.file.bytes > 0, "and its file's facts");
    log(`first start: ${first.match(/devmachines: disk: base image identified.*/)?.[0]}`);

    await docker(["run", "-d", ...machineArgs(name, volume, hide)]);
    await waitForLog(name, /started QEMU/, 120_000);
    await docker(["kill", name]);
    const second = (await containerLogs(name)).launcher;
    assert.match(second, /disk: reuse .*; base sha256 [0-9a-f]{12} \(from the disk's record: the base file is unchanged since it was hashed\)/);
    assert.doesNotMatch(second, /identified after QEMU started/, "nothing left to complete");
    await docker(["rm", name]);
    log(`restart: ${second.match(/devmachines: disk: reuse.*/)?.[0]}`);

    // Another image at the same path: its file differs, so it is hashed, and refused.
    await exec("qemu-img", ["create", "-q", "-f", "qcow2", otherBase, "1G"]);
    const before = await snapshot(volume);
    const swapped = await runToExit(name, machineArgs(name, volume, [...hide, "-v", `${otherBase}:/images/base.qcow2:ro`]));
    assert.equal(swapped.code, 6, `swapped base: exit 6\n${swapped.logs}`);
    assert.match(swapped.logs, /the disk in \/var\/lib\/devmachines was created over another base image .*Booting it over a different base would corrupt it/);
    assert.equal(await snapshot(volume), before, "the volume is as it was");
  });

  test("dockerd restarted with a --restart unless-stopped machine running: it comes back healthy with its data", { timeout: 3 * BOOT_TIMEOUT_MS }, async (t) => {
    if (!(await e2eAvailable(t))) return;
    // Never the shared engine: a second one of our own (own data root, exec root, socket,
    // bridge and address pool; --live-restore off, the default, so a restart stops containers).
    const engine = new SecondEngine({ name: "dm-faults-engine", bridge: "dm-flt-br0", bridgeAddress: "172.31.252.1/24", addressPool: "10.215.0.0/16" });
    const options = { dockerHost: engine.socket };
    const [name, volume] = ["dm-faults-restart", "dm-faults-restart"];
    // Remove the machine first (a forced kill): an engine stopped while a guest still powers
    // off is killed after a minute and leaves the container's shim behind.
    after(async () => {
      await docker(["rm", "--force", "--volumes", name], options).catch(() => undefined);
      await engine.stop();
    });
    await engine.start();
    const loadStarted = Date.now();
    await engine.loadImage(MACHINE_IMAGE);
    log(`second engine up, ${MACHINE_IMAGE} loaded in ${Math.round((Date.now() - loadStarted) / 1000)} s`);

    const port = await freePort();
    // The engine stops it with its 90 s stop timeout: a grace period to match, so a busy host's
    // slow power-off is not cut short at the default 8 s (seen beside another booting guest).
    await docker(["run", "-d", "--restart", "unless-stopped", "-p", `127.0.0.1:${port}:22`, ...machineArgs(name, volume, ["-e", "GRACE_SECONDS=60"])], options);
    await waitHealthy(name, { ...options, timeoutMs: BOOT_TIMEOUT_MS, onProgress: progress(name) });
    const target = { host: "127.0.0.1", port, user: "dev", key };
    await ssh(target, "echo survives-dockerd > ~/kept.txt && sync");
    const bootId = await ssh(target, "cat /proc/sys/kernel/random/boot_id");
    const firstStart = await docker(["inspect", "--format", "{{.State.StartedAt}}", name], options);

    log("restarting the second dockerd");
    await engine.restart();
    // The engine starts its unless-stopped containers itself; wait for a new start, then health.
    const started = Date.now();
    while ((await docker(["inspect", "--format", "{{.State.StartedAt}}", name], options)) === firstStart) {
      if (Date.now() - started > 120_000) throw new Error(`${name} was not started again after the engine's restart`);
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
    await waitHealthy(name, { ...options, timeoutMs: BOOT_TIMEOUT_MS, onProgress: progress(`${name} after restart`) });
    assert.equal(await ssh(target, "cat ~/kept.txt"), "survives-dockerd");
    assert.notEqual(await ssh(target, "cat /proc/sys/kernel/random/boot_id"), bootId, "the guest really booted again");
    const { launcher } = await containerLogs(name, options);
    // The engine stopped it with SIGTERM: a clean power-off, then the same disk again.
    assert.match(launcher, /SIGTERM received: asking the guest to power off/);
    assert.match(launcher, /QEMU exited cleanly \(the guest powered off\)/);
    assert.match(launcher, /disk: reuse/);
    log("back healthy after the engine's restart, data there");
  });
});
