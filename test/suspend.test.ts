/**
 * End-to-end, ON_STOP=suspend: one guest boot shared by every check. `docker stop` saves the
 * running guest beside its disk (exit 0), `docker start` resumes it (processes, files and
 * /dev/shm kept, clock corrected, healthy fast), and a machine whose configuration changed
 * sets the state aside and cold-boots (checked up to GRUB booting the kernel, not a
 * second full boot: CI time).
 */
import assert from "node:assert/strict";
import { after, test } from "node:test";
import { containerLogs, waitHealthy } from "../sdk/src/run.js";
import { BOOT_TIMEOUT_MS, docker, e2eAvailable, MACHINE_IMAGE, makeKeyPair, progress, publishedPort, removeAll, ssh } from "./support.js";

const envArgs = (env: Record<string, string>) => Object.entries(env).flatMap(([key, value]) => ["--env", `${key}=${value}`]);
/** How long the machine stays suspended: long enough that an uncorrected guest clock shows it. */
const SUSPENDED_MS = 15_000;

test("ON_STOP=suspend: docker stop saves the guest, docker start resumes it with its processes, files, /dev/shm and a correct clock; a changed MEMORY cold-boots", { timeout: BOOT_TIMEOUT_MS + 300_000 }, async (t) => {
  if (!(await e2eAvailable(t))) return;
  const [name, other, volume] = ["dm-suspend-e2e", "dm-suspend-e2e-changed", "dm-suspend-e2e"];
  after(() => removeAll({ containers: [name, other], volumes: [volume] }));
  await removeAll({ containers: [name, other], volumes: [volume] });
  const key = await makeKeyPair();
  // The default size under TCG: the first start is a ready-state clone (seconds, not a boot).
  const env = { CPU: "2", MEMORY: "2G", STORAGE: "20G", USER: "dev", SSH_KEYS: key.publicKey, ACCEL: "tcg", ON_STOP: "suspend" };
  await docker([
    "run", "-d", "--name", name, "--hostname", "sleeper", "--stop-timeout", "60",
    "-p", "127.0.0.1::22", "-v", `${volume}:/var/lib/devmachines`, ...envArgs(env), MACHINE_IMAGE,
  ]);
  await waitHealthy(name, { timeoutMs: BOOT_TIMEOUT_MS, onProgress: progress(name) });
  let target = { host: "127.0.0.1", port: await publishedPort(name, 22), user: "dev", key };

  const pid = await ssh(target, "echo on disk > ~/kept.txt; echo in memory > /dev/shm/kept; setsid sleep 100000 >/dev/null 2>&1 < /dev/null & echo $!");
  assert.match(pid, /^\d+$/);
  const bootId = await ssh(target, "cat /proc/sys/kernel/random/boot_id");

  const stopStarted = Date.now();
  await docker(["stop", "-t", "60", name]);
  const stopSeconds = (Date.now() - stopStarted) / 1000;
  assert.equal(await docker(["inspect", "--format", "{{.State.ExitCode}}", name]), "0", "the save ended the launcher cleanly");
  const stopLogs = (await containerLogs(name)).launcher;
  assert.match(stopLogs, /SIGTERM received: saving the guest's state \(ON_STOP=suspend\)/);
  const saved = /state saved in ([\d.]+)s: (\d+) MiB written/.exec(stopLogs);
  assert.ok(saved, stopLogs);
  assert.match(stopLogs, /suspended: \d+ MiB in \/var\/lib\/devmachines\/vmstate\.bin/);
  t.diagnostic(`suspend: docker stop took ${stopSeconds.toFixed(1)} s; QEMU saved ${saved[2]} MiB in ${saved[1]} s (2 GiB guest)`);

  await new Promise((resolve) => setTimeout(resolve, SUSPENDED_MS));
  const startedAt = Date.now();
  await docker(["start", name]);
  await waitHealthy(name, { timeoutMs: 120_000, intervalMs: 200 });
  const healthySeconds = (Date.now() - startedAt) / 1000;
  t.diagnostic(`resume: docker start -> healthy in ${healthySeconds.toFixed(1)} s`);
  const resumeLogs = (await containerLogs(name)).launcher.slice(stopLogs.length);
  assert.match(resumeLogs, /resume: a state saved at .* matches this machine; it is consumed now/);
  assert.match(resumeLogs, /state loaded in [\d.]+s: the guest runs again/);
  assert.match(resumeLogs, /guest clock set to the host's/);
  assert.match(resumeLogs, /ready after \d+ s \(resumed\)/);

  target = { ...target, port: await publishedPort(name, 22) };
  assert.equal(await ssh(target, "cat /proc/sys/kernel/random/boot_id"), bootId, "the same boot: resumed, not booted");
  assert.equal(await ssh(target, `kill -0 ${pid} && echo running`), "running", "the background process survived");
  assert.equal(await ssh(target, "cat ~/kept.txt /dev/shm/kept"), "on disk\nin memory");
  const guestClock = Number(await ssh(target, "date +%s.%N"));
  const skew = Math.abs(guestClock - Date.now() / 1000);
  t.diagnostic(`guest clock off by ${skew.toFixed(2)} s after ${SUSPENDED_MS / 1000} s suspended`);
  assert.ok(skew < 5, `the guest clock was corrected after the resume (off by ${skew.toFixed(1)} s)`);

  // Suspended again, then started with more memory: the state must not be loaded.
  await docker(["stop", "-t", "60", name]);
  assert.equal(await docker(["inspect", "--format", "{{.State.ExitCode}}", name]), "0");
  await docker(["rm", name]);
  await docker([
    "run", "-d", "--name", other, "--hostname", "sleeper", "--stop-timeout", "60",
    "-v", `${volume}:/var/lib/devmachines`, ...envArgs({ ...env, MEMORY: "3G" }), MACHINE_IMAGE,
  ]);
  let logs = { launcher: "", console: "" };
  // GRUB's line: the guest boots from its disk (the kernel itself prints nothing on the console).
  for (let i = 0; i < 240 && !/Booting `Debian/.test(logs.console); i++) {
    await new Promise((resolve) => setTimeout(resolve, 500));
    logs = await containerLogs(other);
  }
  assert.match(logs.launcher, /warning: the saved state in \/var\/lib\/devmachines\/vmstate\.bin is not resumed: the machine's configuration changed/);
  assert.match(logs.launcher, /started QEMU \(pid \d+\) under TCG\n/, "a cold boot, without -incoming");
  assert.doesNotMatch(logs.launcher, /resuming the saved state/);
  assert.match(logs.console, /Booting `Debian/, "the guest boots from its disk");
  const files = await docker(["exec", other, "ls", "/var/lib/devmachines"]);
  assert.match(files, /vmstate\.set-aside\.bin/);
  assert.doesNotMatch(files, /vmstate\.(bin|json)\n/);
});
