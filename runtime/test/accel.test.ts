// The accelerator decision (plan/accel.ts), the supervisor's pure decisions (supervise/decide.ts),
// the readiness stages, and the verdict file's round trip.
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { ExitCode, LauncherError } from "../src/exitCodes.js";
import { accelArgs, hostChanges, planAccel, type HostIdentity, type KvmVerdict } from "../src/plan/accel.js";
import { readKvmVerdict, rememberKvmFailure } from "../src/apply/accel.js";
import {
  awaitingProgress,
  DEFAULT_PROGRESS_BOUNDS,
  looksLikeKvmFailure,
  missingProgress,
  onQemuExit,
  onVmFailure,
  type RunContext,
} from "../src/supervise/decide.js";
import { missingStage } from "../src/supervise/readiness.js";
import { isGuestText } from "../src/supervise/supervisor.js";

const HOST: HostIdentity = { kernel: "6.12.0-pvm", cpu: "AMD EPYC 7B13", qemu: "QEMU emulator version 10.0.6" };
const verdictPath = "/var/lib/devmachines/kvm-verdict.json";
const verdict: KvmVerdict = { kvm: "fails", reason: 'QEMU reported "KVM internal error. Suberror: 1", 2.1s after start', seenAt: "2026-11-29T06:00:00Z", host: HOST };
const usable = { usable: true };

test("planAccel: tcg probes nothing; auto tries KVM with TCG as the fallback; no KVM means TCG with a warning", () => {
  assert.deepEqual(planAccel("tcg", { verdictPath }), { requested: "tcg", first: "tcg", reason: "ACCEL=tcg" });
  const auto = planAccel("auto", { kvm: usable, host: HOST, verdictPath });
  assert.equal(auto.first, "kvm");
  assert.equal(auto.fallback, "tcg");
  assert.equal(auto.warning, undefined);
  const none = planAccel("auto", { kvm: { usable: false, reason: "/dev/kvm does not exist" }, verdictPath });
  assert.deepEqual([none.first, none.fallback], ["tcg", undefined]);
  assert.match(none.warning ?? "", /\/dev\/kvm does not exist.*--device \/dev\/kvm/);
});

test("planAccel: a remembered verdict on the same host goes straight to TCG and says why and how to retry", () => {
  const plan = planAccel("auto", { kvm: usable, host: HOST, verdict, verdictPath });
  assert.deepEqual([plan.first, plan.fallback], ["tcg", undefined]);
  assert.match(plan.reason, /KVM failed this guest on this host before \(2026-11-29T06:00:00Z: QEMU reported "KVM internal error/);
  assert.match(plan.reason, /kvm-verdict\.json; delete that file or start once with ACCEL=kvm/);
  assert.match(plan.warning ?? "", /starting under TCG at once/);
});

test("planAccel: a changed host (kernel, CPU or QEMU) tries KVM again; ACCEL=kvm ignores the verdict", () => {
  for (const changed of [{ kernel: "6.13.1" }, { cpu: "Intel Xeon" }, { qemu: "QEMU emulator version 10.1.0" }]) {
    const plan = planAccel("auto", { kvm: usable, host: { ...HOST, ...changed }, verdict, verdictPath });
    assert.deepEqual([plan.first, plan.fallback], ["kvm", "tcg"]);
    assert.match(plan.reason, /the host changed since KVM failed here .* trying KVM again/);
  }
  assert.deepEqual(hostChanges(HOST, { ...HOST, kernel: "7.0" }), ['kernel "6.12.0-pvm" -> "7.0"']);
  const forced = planAccel("kvm", { kvm: usable, host: HOST, verdict, verdictPath });
  assert.deepEqual([forced.first, forced.fallback], ["kvm", undefined]);
  assert.match(forced.reason, /ACCEL=kvm \(the KVM failure remembered in .* is ignored\)/);
  assert.throws(
    () => planAccel("kvm", { kvm: { usable: false, reason: "/dev/kvm does not exist" }, verdictPath }),
    (error: unknown) => error instanceof LauncherError && error.exitCode === ExitCode.Host,
  );
  assert.deepEqual(accelArgs("kvm"), ["-accel", "kvm"]);
  assert.deepEqual(accelArgs("tcg"), ["-accel", "tcg,thread=multi"]);
});

test("the verdict file: written whole, read back; absent, broken or foreign files are no verdict", async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "dm-verdict-"));
  try {
    const file = path.join(dir, "kvm-verdict.json");
    assert.equal(await readKvmVerdict(file), undefined);
    assert.equal(await rememberKvmFailure(file, HOST, "no output"), undefined);
    const read = await readKvmVerdict(file);
    assert.equal(read?.reason, "no output");
    assert.deepEqual(read?.host, HOST);
    assert.deepEqual(fs.readdirSync(dir), ["kvm-verdict.json"], "no temp file left");
    fs.writeFileSync(file, "{not json");
    assert.equal(await readKvmVerdict(file), undefined);
    fs.writeFileSync(file, JSON.stringify({ kvm: "works" }));
    assert.equal(await readKvmVerdict(file), undefined);
    const error = await rememberKvmFailure(path.join(dir, "missing", "kvm-verdict.json"), HOST, "x");
    assert.match(error?.message ?? "", /ENOENT/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

const kvmAuto: RunContext = { accel: "kvm", fallback: "tcg", ready: false, stopping: false };

test("onVmFailure: before readiness under KVM with a fallback -> restart under TCG, remembered", () => {
  assert.deepEqual(onVmFailure(kvmAuto, "x"), { kind: "restart", accel: "tcg", reason: "x", kvmFailure: "x" });
});

test("onVmFailure: after readiness, while stopping, or without a fallback -> exit 1, still remembered; under TCG not KVM's fault", () => {
  const afterReady = onVmFailure({ ...kvmAuto, ready: true }, "x");
  assert.equal(afterReady.kind, "exit");
  assert.equal(afterReady.kind === "exit" && afterReady.code, ExitCode.Failure);
  assert.match(afterReady.kind === "exit" ? afterReady.message : "", /KVM failed after the guest was ready: x\. Remembered: the next start uses TCG/);
  assert.equal(afterReady.kvmFailure, "x");
  assert.equal(onVmFailure({ ...kvmAuto, stopping: true }, "x").kind, "exit");
  const forced = onVmFailure({ accel: "kvm", ready: false, stopping: false }, "x");
  assert.match(forced.kind === "exit" ? forced.message : "", /ACCEL=kvm allows no fallback/);
  const tcg = onVmFailure({ accel: "tcg", ready: false, stopping: false }, "QMP reports run state internal-error");
  assert.deepEqual(tcg, { kind: "exit", code: ExitCode.Failure, message: "the VM stopped: QMP reports run state internal-error" });
});

test("onQemuExit: clean exit, grace-period kill, KVM error text, early exit before readiness, plain crash", () => {
  const end = { ...kvmAuto, killedAfterGrace: false };
  assert.deepEqual(onQemuExit({ ...end, stopReason: "SIGTERM received", stopping: true }, { exitCode: 0, shutdownReason: "guest-shutdown" }), {
    kind: "exit", code: ExitCode.Ok, message: "QEMU exited cleanly (the guest powered off) after SIGTERM received",
  });
  assert.equal(onQemuExit({ ...end, killedAfterGrace: true }, { signal: "SIGKILL" }).kind === "exit" && ExitCode.Killed, ExitCode.Killed);
  // "failed to set MSR" 0.1 s after start, QEMU aborts
  const msr = onQemuExit({ ...end, kvmStderr: "kvm_buf_set_msrs: Assertion `ret == cpu->kvm_msr_buf->nmsrs' failed." }, { signal: "SIGABRT" });
  assert.equal(msr.kind, "restart");
  assert.match(msr.kvmFailure ?? "", /QEMU was killed by SIGABRT after "kvm_buf_set_msrs/);
  const early = onQemuExit(end, { exitCode: 1 });
  assert.deepEqual(early, { kind: "restart", accel: "tcg", reason: "QEMU exited with code 1 before the guest was ready" }, "retried, not remembered");
  assert.deepEqual(onQemuExit({ ...end, ready: true }, { exitCode: 1 }), { kind: "exit", code: ExitCode.Failure, message: "QEMU exited with code 1 on its own" });
  assert.equal(onQemuExit({ accel: "tcg", ready: false, stopping: false, killedAfterGrace: false }, { exitCode: 1 }).kind, "exit");
});

test("missingProgress: overdue by QEMU's CPU time or by the wall clock, stage by stage", () => {
  const b = DEFAULT_PROGRESS_BOUNDS;
  assert.equal(missingProgress({ elapsedMs: 1000, cpuMs: 500 }, b), undefined);
  // a broken KVM burning CPU: caught by the CPU bound long before the wall-clock one
  assert.match(missingProgress({ elapsedMs: 3000, cpuMs: 2000 }, b) ?? "", /^no output at all on the serial console 3\.0s after start, QEMU having used 2\.0s of CPU/);
  // a busy host: little CPU for QEMU, no verdict yet
  assert.equal(missingProgress({ elapsedMs: 15_000, cpuMs: 1200 }, b), undefined);
  // a VM that hangs without using CPU: the wall clock decides
  assert.match(missingProgress({ elapsedMs: 20_000, cpuMs: 10 }, b) ?? "", /no output at all/);
  assert.equal(missingProgress({ elapsedMs: 20_000, cpuMs: 3000, firstOutputMs: 900 }, b), undefined);
  assert.match(missingProgress({ elapsedMs: 20_000, cpuMs: 6000, firstOutputMs: 900 }, b) ?? "", /no line of text/);
  assert.equal(missingProgress({ elapsedMs: 99_000, cpuMs: 99_000, firstOutputMs: 900, firstLineMs: 1200 }, b), undefined);
  assert.equal(awaitingProgress({ firstOutputMs: 1 }), true);
  assert.equal(awaitingProgress({ firstOutputMs: 1, firstLineMs: 2 }), false);
});

test("looksLikeKvmFailure: the texts of the hosts seen so far, and not the guest's own errors", () => {
  for (const line of [
    "KVM internal error. Suberror: 1",
    "emulation failure",
    "qemu-system-x86_64: error: failed to set MSR 0x38f to 0x7000000ff",
    "qemu-system-x86_64: ../target/i386/kvm/kvm.c:3243: kvm_buf_set_msrs: Assertion `ret == cpu->kvm_msr_buf->nmsrs' failed.",
    "qemu-system-x86_64: failed to initialize kvm: Operation not permitted",
  ]) {
    assert.ok(looksLikeKvmFailure(line), line);
  }
  assert.ok(!looksLikeKvmFailure("qemu-system-x86_64: -device no-such-device: 'no-such-device' is not a valid device model name"));
});

test("isGuestText: GRUB's terminal set-up alone is not text; its Booting line and the kernel's are", () => {
  assert.equal(isGuestText("\u001b[H\u001b[J"), false);
  assert.equal(isGuestText("\u001b[H\u001b[J\u001b[1;1H  Booting `Debian GNU/Linux 13 (trixie)'"), true);
  assert.equal(isGuestText("[    0.052000] ..MP-BIOS bug: 8254 timer not connected to IO-APIC"), true);
  assert.equal(isGuestText(""), false);
});

test("missingStage names the first boot stage that never came", () => {
  const none = { serialOutput: false, guestText: false, cloudInit: false, cloudInitDone: false, ssh: false };
  assert.match(missingStage(none) ?? "", /^firmware\/GRUB/);
  assert.match(missingStage({ ...none, serialOutput: true }) ?? "", /^kernel:/);
  assert.match(missingStage({ ...none, serialOutput: true, guestText: true }) ?? "", /^cloud-init: it never started/);
  assert.match(missingStage({ ...none, serialOutput: true, guestText: true, cloudInit: true }) ?? "", /^cloud-init: it started but never finished/);
  assert.match(missingStage({ serialOutput: true, guestText: true, cloudInit: true, cloudInitDone: true, ssh: false }) ?? "", /^SSH:/);
  assert.equal(missingStage({ serialOutput: true, guestText: true, cloudInit: true, cloudInitDone: true, ssh: true }), undefined);
});
