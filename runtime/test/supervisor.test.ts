// Supervisor against a real qemu-system-x86_64. The supervisor runs in a child process
// (fixtures/supervise-run.ts) so that it receives real SIGTERMs.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { QmpClient } from "../src/supervise/qmp.js";
import { probeKvm } from "../src/apply/accel.js";
import { planAccel } from "../src/plan/accel.js";
import { looksLikeKvmFailure, type ProgressBounds } from "../src/supervise/decide.js";
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
  /** How often onStarted's listener was called. */
  started?: number;
  ready?: boolean;
  saved?: boolean;
  resumed?: boolean;
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
    child.once("close", (exitCode, signal) => {
      if (signal === "SIGKILL") return resolve({ exitCode, result: { code: -1 } });
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
  const { exitCode, result } = await run.done;
  assert.equal(exitCode, ExitCode.Failure, run.stderr());
  assert.equal(result.started, 1, "onStarted: once QEMU was started");
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
  const verdictPath = "/nonexistent/kvm-verdict.json";
  assert.throws(
    () => planAccel("kvm", { kvm: probeKvm("/nonexistent/kvm"), verdictPath }),
    (error: unknown) =>
      error instanceof LauncherError && error.exitCode === ExitCode.Host && /--device \/dev\/kvm/.test(error.message),
  );
  const auto = planAccel("auto", { kvm: { usable: false, reason: "x" }, verdictPath });
  assert.equal(auto.first, "tcg");
  assert.equal(auto.fallback, undefined);
  assert.match(auto.warning ?? "", /TCG/);
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
  if (paravirtual) assert.equal(attempts.length, 2, "expected the kvm_pvm failure on this machine:\n" + stderr);
  if (attempts.length === 2) {
    assert.equal(attempts[0]!.accel, "kvm");
    // whichever sign came first: QEMU's error text, the run state, or a guest that shows nothing
    assert.match(attempts[0]!.kvmFailure ?? "", /KVM internal error|internal-error|failed to set MSR|emulation failure|serial console/);
    assert.equal(attempts[1]!.accel, "tcg");
    assert.match(stderr, /warning: KVM cannot run this guest .* restarting the VM under TCG/);
    assert.equal(result.started, 1, "onStarted: once, not again for the TCG restart");
    // the guest only got through its boot after the fallback
    assert.equal(run.stdout().match(/Kernel panic - not syncing/g)?.length, 1);
  } else {
    assert.deepEqual(attempts, [{ accel: "kvm" }]);
    assert.ok(!stderr.split("\n").some(looksLikeKvmFailure), stderr);
    assert.doesNotMatch(stderr, /restarting the VM under TCG/);
  }
});

/**
 * A stand-in for qemu-system-x86_64 that plays a host whose KVM breaks: under `-accel kvm` it
 * runs the real QEMU under TCG (the guest boots and prints as it would) and then behaves as
 * `mode` says; under TCG it is the real QEMU, untouched. Each KVM start is logged to `kvmLog`.
 *   late-error  QEMU's kvm_pvm failure text on stderr after `delay` seconds (the VM keeps running),
 *               or once the file `delay` names exists
 *   silent      no output at all, ever (a guest spinning in its decompressor)
 */
function brokenKvmQemu(name: string, mode: "late-error" | "silent", delay: number | string = 1.5): { binary: string; kvmLog: string } {
  const real = execFileSync("sh", ["-c", "command -v qemu-system-x86_64"], { encoding: "utf8" }).trim();
  const binary = path.join(dir, `${name}-qemu`);
  const kvmLog = path.join(dir, `${name}-kvm.log`);
  const script = `#!/bin/bash
for arg in "$@"; do [ "$arg" = kvm ] && kvm=1; done
[ -n "$kvm" ] || exec ${real} "$@"
echo "kvm start $$" >> ${kvmLog}
${mode === "silent" ? "exec sleep 600" : ""}
args=(); for arg in "$@"; do [ "$arg" = kvm ] && arg=tcg,thread=multi; args+=("$arg"); done
( ${typeof delay === "number" ? `sleep ${delay}` : `while [ ! -e ${delay} ]; do sleep 0.1; done`}; echo "KVM internal error. Suberror: 1" >&2; echo "emulation failure" >&2 ) &
exec ${real} "\${args[@]}"
`;
  fs.writeFileSync(binary, script, { mode: 0o755 });
  return { binary, kvmLog };
}

/** The panicking kernel, whose panic line counts as "ready" so that a run reaches readiness. */
function faultRun(kernel: string, name: string, binary: string, verdictPath: string, progressBounds?: ProgressBounds) {
  const qmpSocket = path.join(dir, `${name}.sock`);
  return supervise({
    accel: "auto",
    kvm: { usable: true },
    binary,
    verdictPath,
    qmpSocket,
    graceSeconds: 1,
    readyMarker: "Kernel panic - not syncing",
    // The test kernel boots without GRUB and decompresses itself silently under TCG (which plays
    // KVM here): the image's bounds would call that no progress before the error comes.
    progressBounds: progressBounds ?? { firstOutput: { cpuMs: 600_000, wallMs: 600_000 }, firstLine: { cpuMs: 600_000, wallMs: 600_000 } },
    baseArgs: panickingKernelArgs(kernel, qmpSocket),
  });
}

test("fault: KVM's error arrives late (after the guest printed): TCG restart, guest ready, verdict remembered; the next start skips KVM", async (t) => {
  const kernel = kernelOrSkip(t);
  if (!kernel) return;
  const { binary, kvmLog } = brokenKvmQemu("late", "late-error");
  const verdictPath = path.join(dir, "late-verdict.json");
  const first = faultRun(kernel, "late1", binary, verdictPath);
  const { exitCode, result } = await first.done;
  const stderr = first.stderr();
  assert.equal(exitCode, ExitCode.Ok, stderr);
  assert.equal(result.ready, true, "the guest reached readiness under TCG");
  assert.deepEqual(result.attempts?.map((a) => a.accel), ["kvm", "tcg"], stderr);
  assert.match(result.attempts?.[0]?.kvmFailure ?? "", /QEMU reported "KVM internal error. Suberror: 1", \d+\.\ds after start/);
  assert.match(stderr, /warning: KVM cannot run this guest .* restarting the VM under TCG/);
  assert.match(first.stdout(), /Linux version/); // the KVM run had shown progress: the error alone decided
  const verdict = JSON.parse(fs.readFileSync(verdictPath, "utf8")) as { kvm: string; reason: string; host: Record<string, string> };
  assert.equal(verdict.kvm, "fails");
  assert.match(verdict.reason, /KVM internal error/);
  assert.deepEqual(Object.keys(verdict.host).sort(), ["cpu", "kernel", "qemu"]);
  assert.equal(fs.readFileSync(kvmLog, "utf8").trim().split("\n").length, 1);

  const second = faultRun(kernel, "late2", binary, verdictPath);
  const again = await second.done;
  assert.equal(again.exitCode, ExitCode.Ok, second.stderr());
  assert.deepEqual(again.result.attempts, [{ accel: "tcg" }], "straight to TCG");
  assert.match(second.stderr(), /starting under TCG at once: KVM failed this guest on this host before .* delete that file or start once with ACCEL=kvm/);
  assert.equal(fs.readFileSync(kvmLog, "utf8").trim().split("\n").length, 1, "KVM was not tried again");
});

test("fault: under KVM the guest makes no progress (nothing on the serial console): TCG restart after the bound, guest ready", async (t) => {
  const kernel = kernelOrSkip(t);
  if (!kernel) return;
  const { binary, kvmLog } = brokenKvmQemu("silent", "silent");
  const verdictPath = path.join(dir, "silent-verdict.json");
  const run = faultRun(kernel, "silent", binary, verdictPath, { firstOutput: { cpuMs: 1000, wallMs: 2000 }, firstLine: { cpuMs: 2000, wallMs: 3000 } });
  const { exitCode, result } = await run.done;
  const stderr = run.stderr();
  assert.equal(exitCode, ExitCode.Ok, stderr);
  assert.equal(result.ready, true);
  assert.deepEqual(result.attempts?.map((a) => a.accel), ["kvm", "tcg"], stderr);
  assert.match(result.attempts?.[0]?.kvmFailure ?? "", /no output at all on the serial console 2\.\ds after start, QEMU having used 0\.\ds of CPU/);
  assert.ok(fs.existsSync(kvmLog));
  assert.match(fs.readFileSync(verdictPath, "utf8"), /no output at all/);
});

test("fault: KVM fails after the guest was ready: logged as such, exit 1, remembered for the next start", async (t) => {
  const kernel = kernelOrSkip(t);
  if (!kernel) return;
  const trigger = path.join(dir, "after-ready.trigger");
  const { binary } = brokenKvmQemu("after-ready", "late-error", trigger);
  const verdictPath = path.join(dir, "after-ready-verdict.json");
  const qmpSocket = path.join(dir, "after-ready.sock");
  // ready as soon as the kernel prints its command line; the kernel then waits, never panicking
  const args = panickingKernelArgs(kernel, qmpSocket).map((arg) => (arg === "console=ttyS0 panic=-1" ? "console=ttyS0 panic=0 root=/dev/nonexistent rootwait" : arg));
  const patient = { firstOutput: { cpuMs: 600_000, wallMs: 600_000 }, firstLine: { cpuMs: 600_000, wallMs: 600_000 } };
  const run = supervise({ accel: "auto", kvm: { usable: true }, binary, verdictPath, qmpSocket, graceSeconds: 1, readyMarker: "Kernel command line:", progressBounds: patient, baseArgs: args });
  await run.waitFor(/Kernel command line:/, 120_000);
  fs.writeFileSync(trigger, "");
  const { exitCode, result } = await run.done;
  const stderr = run.stderr();
  assert.equal(exitCode, ExitCode.Failure, stderr);
  assert.equal(result.ready, true);
  assert.deepEqual(result.attempts, [{ accel: "kvm" }], "no restart after readiness");
  assert.match(stderr, /KVM failed after the guest was ready: QEMU reported "KVM internal error. Suberror: 1".* Remembered: the next start uses TCG: exit code 1/);
  assert.match(fs.readFileSync(verdictPath, "utf8"), /KVM internal error/);
});

test("fault: the launcher is killed with SIGKILL: QEMU does not outlive it", async () => {
  const qmpSocket = path.join(dir, "orphan.sock");
  const run = supervise({ accel: "tcg", qmpSocket, graceSeconds: 1, baseArgs: pausedVmArgs(qmpSocket) });
  await run.waitFor(/QMP connected/);
  const pid = qemuPids.at(-1)!;
  assert.equal(alive(pid), true);
  run.child.kill("SIGKILL");
  // the kernel delivers the parent-death signal at once; give the reaper a moment
  for (let i = 0; i < 50 && alive(pid); i++) await new Promise((resolve) => setTimeout(resolve, 100));
  assert.equal(alive(pid), false, `QEMU (pid ${pid}) outlived its SIGKILLed launcher`);
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

test("ON_STOP=suspend against real QEMU: SIGTERM saves a ready guest and exits 0; the state resumes the same guest; a state that does not load boots instead", async (t) => {
  const kernel = kernelOrSkip(t);
  if (!kernel) return;
  // A kernel without a root file system that waits forever after its panic (panic=0): a guest
  // that runs, with RAM worth saving, and whose console shows whether it booted again.
  const args = (qmpSocket: string) => ["-nodefaults", "-machine", "q35", "-m", "128", "-display", "none", "-serial", "stdio",
    "-monitor", "none", "-kernel", kernel, "-append", "console=ttyS0 panic=0", "-qmp", `unix:${qmpSocket},server=on,wait=off`];
  const state = path.join(dir, "vmstate.partial");
  const first = path.join(dir, "suspend-1.sock");
  const save = supervise({ accel: "tcg", qmpSocket: first, graceSeconds: 60, readyMarker: "Kernel panic - not syncing", suspendTo: state, baseArgs: args(first) });
  await save.waitFor(/Kernel panic - not syncing/, 120_000);
  await save.waitFor(/QMP connected/);
  save.child.kill("SIGTERM");
  const saved = await save.done;
  assert.equal(saved.exitCode, ExitCode.Ok, save.stderr());
  assert.equal(saved.result.saved, true);
  assert.match(save.stderr(), /SIGTERM received: saving the guest's state \(ON_STOP=suspend\)/);
  assert.match(save.stderr(), /state saved in [\d.]+s: \d+ MiB written for \d+ MiB of guest memory/);
  assert.match(save.stderr(), /QEMU exited cleanly \(QMP quit\)/);
  assert.ok(fs.statSync(state).size > 1024 * 1024, "the guest's RAM is in the file");

  const second = path.join(dir, "suspend-2.sock");
  const resume = supervise({ accel: "tcg", qmpSocket: second, graceSeconds: 1, readyMarker: "never printed", resumeFrom: state, baseArgs: args(second) });
  await resume.waitFor(/state loaded in [\d.]+s: the guest runs again/, 60_000);
  resume.child.kill("SIGTERM"); // no suspendTo this time: powered off, which this guest ignores
  const resumed = await resume.done;
  assert.equal(resumed.result.resumed, true);
  assert.equal(resumed.result.ready, true, "a resumed guest is ready without a new ready marker");
  assert.doesNotMatch(resume.stdout(), /Linux version/, "resumed, not booted");
  assert.match(resume.stderr(), /resuming the saved state/);

  // Another machine (more memory) cannot load it: QEMU fails, the guest boots instead.
  const third = path.join(dir, "suspend-3.sock");
  const other = supervise({ accel: "tcg", qmpSocket: third, graceSeconds: 1, readyMarker: "Kernel panic - not syncing", resumeFrom: state, baseArgs: args(third).map((arg) => (arg === "128" ? "256" : arg)) });
  await other.waitFor(/Kernel panic - not syncing/, 120_000);
  assert.match(other.stderr(), /warning: QEMU exited with code 1 while loading the saved state .*: the saved state cannot be resumed, so the guest boots from its disk/);
  assert.match(other.stdout(), /Linux version/);
  other.child.kill("SIGTERM");
  const booted = await other.done;
  assert.equal(booted.result.resumed, false);
  assert.deepEqual(booted.result.attempts, [{ accel: "tcg" }, { accel: "tcg" }]);
});
