// Supervisor against a real qemu-system-x86_64. The supervisor runs in a child process
// (fixtures/supervise-run.ts) so that it receives real SIGTERMs.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { QmpClient } from "../src/supervise/qmp.js";
import { chooseInitialAccel, probeKvm, looksLikeKvmFailure } from "../src/supervise/accel.js";
import { ExitCode, LauncherError } from "../src/exitCodes.js";
import { kernelOrSkip } from "./fixtures/supervise-kernel.js";

const fixtures = path.join(path.dirname(fileURLToPath(import.meta.url)), "fixtures");
let dir: string;
const children: ChildProcess[] = [];
const qemuPids: number[] = [];

before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "dm-supervise-"));
});

after(() => {
  for (const child of children) child.kill("SIGKILL");
  for (const pid of qemuPids) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // already gone, as it should be
    }
  }
  fs.rmSync(dir, { recursive: true, force: true });
});

interface Result {
  code: number;
  attempts?: { accel: "kvm" | "tcg"; kvmFailure?: string }[];
  ready?: boolean;
  error?: string;
}

/** Starts the fixture; stdout/stderr are collected, and `waitFor` waits for a stderr/stdout match. */
function supervise(config: Record<string, unknown>) {
  const child = spawn(process.execPath, ["--import", "tsx", path.join(fixtures, "supervise-run.ts")], {
    env: { ...process.env, SUPERVISE_CONFIG: JSON.stringify(config) },
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.push(child);
  let stdout = "";
  let stderr = "";
  const waiters: { re: RegExp; resolve: () => void }[] = [];
  const check = () => {
    for (const w of [...waiters]) {
      if (w.re.test(stdout) || w.re.test(stderr)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve();
      }
    }
  };
  child.stdout.setEncoding("utf8").on("data", (s: string) => {
    stdout += s;
    check();
  });
  child.stderr.setEncoding("utf8").on("data", (s: string) => {
    stderr += s;
    for (const m of s.matchAll(/started QEMU \(pid (\d+)\)/g)) qemuPids.push(Number(m[1]));
    check();
  });
  const done = new Promise<{ exitCode: number | null; result: Result }>((resolve) => {
    child.once("close", (exitCode) => {
      const line = stderr.split("\n").find((l) => l.startsWith("supervise-result: "));
      assert.ok(line, `no result line; stderr:\n${stderr}`);
      resolve({ exitCode, result: JSON.parse(line.slice("supervise-result: ".length)) as Result });
    });
  });
  return {
    child,
    done,
    stdout: () => stdout,
    stderr: () => stderr,
    waitFor: (re: RegExp, ms = 15_000) =>
      new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`timed out waiting for ${re}\nstdout:\n${stdout}\nstderr:\n${stderr}`)), ms);
        waiters.push({ re, resolve: () => (clearTimeout(timer), resolve()) });
        check();
      }),
  };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** A paused VM with no disk: serves QMP, ignores ACPI power-down. */
function pausedVmArgs(qmpSocket: string, extra: string[] = []): string[] {
  return ["-S", "-nodefaults", "-machine", "q35", "-m", "64", "-display", "none", "-serial", "stdio",
    "-monitor", "none", "-qmp", `unix:${qmpSocket},server=on,wait=off`, ...extra];
}

/** A kernel with no root fs panics; panic=-1 reboots at once and -no-reboot makes QEMU exit 0. */
function panickingKernelArgs(kernel: string, qmpSocket: string): string[] {
  return ["-nodefaults", "-machine", "q35", "-m", "256", "-display", "none", "-serial", "stdio",
    "-monitor", "none", "-no-reboot", "-kernel", kernel, "-append", "console=ttyS0 panic=-1",
    "-qmp", `unix:${qmpSocket},server=on,wait=off`];
}

test("SIGTERM, guest ignores the power-down: QEMU is killed after the grace period -> Killed", async () => {
  const qmpSocket = path.join(dir, "killed.sock");
  const run = supervise({ accel: "tcg", qmpSocket, graceSeconds: 1, baseArgs: pausedVmArgs(qmpSocket) });
  await run.waitFor(/QMP connected/);
  const pid = qemuPids.at(-1)!;
  const signalled = Date.now();
  run.child.kill("SIGTERM");
  await run.waitFor(/asking the guest to power off/);
  run.child.kill("SIGTERM"); // a second signal while waiting changes nothing
  const { exitCode, result } = await run.done;
  const tookMs = Date.now() - signalled;
  assert.equal(exitCode, ExitCode.Killed, run.stderr());
  assert.equal(result.code, ExitCode.Killed);
  assert.match(run.stderr(), /SIGTERM received again/);
  assert.match(run.stderr(), /did not power off within 1s/);
  // The outcome is judged by the exit code and the log above; the lower bound only proves that
  // the grace period was waited before the kill (a little slack for millisecond rounding).
  assert.ok(tookMs >= 950, `killed after ${tookMs} ms, before the 1 s grace period had passed`);
  assert.equal(alive(pid), false, "QEMU must be gone");
  assert.equal(fs.existsSync(qmpSocket), false, "QMP socket removed");
});

test("SIGINT, then QEMU exits within the grace period -> Ok", async () => {
  const qmpSocket = path.join(dir, "graceful.sock");
  const testSocket = path.join(dir, "graceful-test.sock");
  const run = supervise({
    accel: "tcg",
    qmpSocket,
    graceSeconds: 20,
    // a second QMP monitor lets the test play the part of a guest that powers off
    baseArgs: pausedVmArgs(qmpSocket, ["-qmp", `unix:${testSocket},server=on,wait=off`]),
  });
  await run.waitFor(/QMP connected/);
  const qmp = await QmpClient.connect(testSocket);
  const powerdown = qmp.waitForEvent("POWERDOWN", 5000);
  run.child.kill("SIGINT");
  await powerdown; // the supervisor really sent system_powerdown
  await qmp.execute("quit").catch(() => {});
  qmp.close();
  const { exitCode, result } = await run.done;
  assert.equal(exitCode, ExitCode.Ok, run.stderr());
  assert.equal(result.code, ExitCode.Ok);
  assert.match(run.stderr(), /QEMU exited cleanly \(QMP quit\) after SIGINT received: exit code 0/);
});

test("QEMU exiting on its own with an error -> Failure", async () => {
  const qmpSocket = path.join(dir, "broken.sock");
  const run = supervise({
    accel: "tcg",
    qmpSocket,
    graceSeconds: 1,
    baseArgs: pausedVmArgs(qmpSocket, ["-device", "no-such-device"]),
  });
  const { exitCode } = await run.done;
  assert.equal(exitCode, ExitCode.Failure, run.stderr());
  assert.match(run.stderr(), /no-such-device/); // QEMU's own stderr is passed through
  assert.match(run.stderr(), /QEMU exited with code 1 on its own: exit code 1/);
});

test("arguments without the required -qmp are refused before QEMU starts", async () => {
  const qmpSocket = path.join(dir, "noqmp.sock");
  const run = supervise({ accel: "tcg", qmpSocket, graceSeconds: 1, baseArgs: ["-S", "-serial", "stdio"] });
  const { exitCode, result } = await run.done;
  assert.equal(exitCode, ExitCode.Failure);
  assert.match(result.error ?? "", /-qmp unix:.*noqmp\.sock,server=on,wait=off is missing/);
  assert.equal(qemuPids.length > 0 && run.stderr().includes("started QEMU"), false);
});

test("ACCEL=kvm without a usable KVM is a host error that says --device /dev/kvm", () => {
  assert.deepEqual(probeKvm("/nonexistent/kvm"), { usable: false, reason: "/nonexistent/kvm does not exist" });
  assert.throws(
    () => chooseInitialAccel("kvm", () => probeKvm("/nonexistent/kvm")),
    (error: unknown) =>
      error instanceof LauncherError && error.exitCode === ExitCode.Host && /--device \/dev\/kvm/.test(error.message),
  );
  const auto = chooseInitialAccel("auto", () => ({ usable: false, reason: "x" }));
  assert.equal(auto.accel, "tcg");
  assert.match(auto.warning ?? "", /TCG/);
  assert.equal(chooseInitialAccel("tcg", () => assert.fail("tcg must not probe")).accel, "tcg");
});

test("guest kernel panics with -no-reboot: QEMU exits on its own -> Ok; serial console forwarded, ready marker seen", async (t) => {
  const kernel = kernelOrSkip(t);
  if (!kernel) return;
  const qmpSocket = path.join(dir, "panic.sock");
  const run = supervise({
    accel: "tcg",
    qmpSocket,
    graceSeconds: 1,
    readyMarker: "Kernel command line:",
    baseArgs: panickingKernelArgs(kernel, qmpSocket),
  });
  const { exitCode, result } = await run.done;
  assert.equal(exitCode, ExitCode.Ok, run.stderr());
  assert.match(run.stdout(), /Linux version/);
  assert.match(run.stdout(), /Kernel panic - not syncing/);
  assert.doesNotMatch(run.stdout(), /\r/);
  assert.equal(result.ready, true);
  assert.match(run.stderr(), /QEMU exited cleanly \(the guest reset with -no-reboot\)/);
});

test("ACCEL=auto falls back to TCG exactly when KVM really fails the guest", async (t) => {
  // On these machines /dev/kvm is a paravirtual KVM (kvm_pvm): trixie's kernel dies under
  // it with "KVM internal error. Suberror: 1" a few seconds in, and QEMU stays alive with
  // the VM in run state internal-error. On a host with working KVM the same guest boots
  // under KVM and no fallback may happen.
  const kernel = kernelOrSkip(t);
  if (!kernel) return;
  const kvmUsable = probeKvm().usable;
  const paravirtual = fs.existsSync("/sys/module/kvm_pvm");
  const qmpSocket = path.join(dir, "auto.sock");
  const run = supervise({ accel: "auto", qmpSocket, graceSeconds: 1, baseArgs: panickingKernelArgs(kernel, qmpSocket) });
  const { exitCode, result } = await run.done;
  const attempts = result.attempts ?? [];
  const stderr = run.stderr();
  assert.equal(exitCode, ExitCode.Ok, stderr);
  assert.match(run.stdout(), /Kernel panic - not syncing/); // the guest did boot in the end

  if (!kvmUsable) {
    assert.deepEqual(attempts, [{ accel: "tcg" }]);
    assert.match(stderr, /KVM is not usable/);
    return;
  }
  const firstRun = stderr.split(/started QEMU \(pid \d+\) under TCG/)[0]!;
  const kvmReallyFailed = firstRun.split("\n").some(looksLikeKvmFailure);
  if (paravirtual) assert.ok(kvmReallyFailed, "expected the kvm_pvm failure on this machine:\n" + stderr);
  if (kvmReallyFailed) {
    assert.equal(attempts.length, 2, stderr);
    assert.equal(attempts[0]!.accel, "kvm");
    assert.match(attempts[0]!.kvmFailure ?? "", /KVM internal error|internal-error/);
    assert.equal(attempts[1]!.accel, "tcg");
    assert.match(stderr, /warning: KVM cannot run this guest .* restarting the VM under TCG/);
    // the guest only booted after the fallback
    assert.equal(run.stdout().match(/Linux version/g)?.length, 1);
  } else {
    assert.deepEqual(attempts, [{ accel: "kvm" }]);
    assert.doesNotMatch(stderr, /restarting the VM under TCG/);
  }
});

test("without a test kernel: a failure when DEVMACHINES_E2E=required, otherwise a loud skip", (t) => {
  const missing = { reason: "supervise-kernel.sh failed: no network" };
  const skipped: string[] = [];
  const fake = { name: "kernel test", skip: (message?: string) => void skipped.push(message ?? "") };
  assert.throws(() => kernelOrSkip(fake, missing, true), /DEVMACHINES_E2E=required, but "kernel test" has no test kernel: .*no network/);
  assert.deepEqual(skipped, [], "a required run never skips");

  const warned: string[] = [];
  t.mock.method(console, "warn", (text: string) => void warned.push(text));
  assert.equal(kernelOrSkip(fake, missing, false), undefined);
  assert.match(warned.join("\n"), /SKIPPING "kernel test": no test kernel: .*no network/);
  assert.deepEqual(skipped, ["no test kernel: supervise-kernel.sh failed: no network"]);

  assert.equal(kernelOrSkip(fake, { path: "/boot/vmlinuz" }, true), "/boot/vmlinuz");
});
