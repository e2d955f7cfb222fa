/**
 * The supervisor's decisions, as pure functions: is this a sign that KVM cannot run the guest,
 * is the guest making progress, how did a QEMU run end, and what comes next (exit with a code,
 * or restart under the fallback accelerator). supervisor.ts only gathers the events.
 */
import { ExitCode, type ExitCodeValue } from "../exitCodes.js";
import type { Accel } from "../plan/accel.js";

/**
 * Lines QEMU prints on stderr when KVM cannot run this guest: the `KVM internal error`
 * / `emulation failure` dump of a paravirtual KVM, failed MSR writes and assertions in
 * QEMU's kvm code, or KVM failing to initialise.
 */
const KVM_FAILURE_PATTERNS: readonly RegExp[] = [
  /KVM internal error/i,
  /emulation failure/i,
  /kvm_buf_set_msrs|failed to set MSR/i,
  /kvm[^\n]*Assertion/i,
  /failed to initialize kvm|Could not access KVM kernel module/i,
  /KVM: entry failed/i,
];

/** True when a QEMU stderr line says KVM itself failed (not the guest, not the config). */
export function looksLikeKvmFailure(stderrLine: string): boolean {
  return KVM_FAILURE_PATTERNS.some((pattern) => pattern.test(stderrLine));
}

/** What the supervisor knows about the current run when it decides. */
export interface RunContext {
  accel: Accel;
  /** Where to go when KVM fails before readiness (ACCEL=auto's first run only). */
  fallback?: Accel;
  /** The guest printed the ready marker in this run. */
  ready: boolean;
  /** SIGTERM/SIGINT asked the guest to power off. */
  stopping: boolean;
}

/** What to do next. `kvmFailure` is set when the host's KVM verdict should be remembered. */
export type Next =
  | { kind: "restart"; accel: Accel; reason: string; kvmFailure?: string; coldBoot?: boolean }
  | { kind: "exit"; code: ExitCodeValue; message: string; kvmFailure?: string };

/**
 * A sign that the VM is dead or stuck (KVM error text, run state internal-error, no progress)
 * while QEMU may still be alive: restart under the fallback, or give up.
 */
export function onVmFailure(ctx: RunContext, reason: string): Next {
  if (ctx.accel !== "kvm") return { kind: "exit", code: ExitCode.Failure, message: `the VM stopped: ${reason}` };
  if (ctx.stopping) {
    return { kind: "exit", code: ExitCode.Failure, message: `KVM failed while the guest was powering off: ${reason}`, kvmFailure: reason };
  }
  if (ctx.ready) {
    return {
      kind: "exit",
      code: ExitCode.Failure,
      message: `KVM failed after the guest was ready: ${reason}. Remembered: the next start uses TCG`,
      kvmFailure: reason,
    };
  }
  if (ctx.fallback) return { kind: "restart", accel: ctx.fallback, reason, kvmFailure: reason };
  return {
    kind: "exit",
    code: ExitCode.Failure,
    message: `KVM cannot run this guest: ${reason}. ACCEL=kvm allows no fallback; set ACCEL=auto or ACCEL=tcg`,
    kvmFailure: reason,
  };
}

/** How QEMU's process ended. */
export interface QemuExit {
  exitCode?: number;
  signal?: string;
  /** The QMP SHUTDOWN event's reason, if one came. */
  shutdownReason?: string;
}

/** {@link RunContext} plus what happened during the run. */
export interface EndContext extends RunContext {
  /** SIGTERM's grace period ran out and the supervisor killed QEMU. */
  killedAfterGrace: boolean;
  /** The first KVM failure line QEMU printed, if any. */
  kvmStderr?: string;
  /** What asked the guest to stop, e.g. `SIGTERM received`. */
  stopReason?: string;
}

/** How a run that QEMU ended itself (no earlier decision) ends the launcher, or restarts it. */
export function onQemuExit(ctx: EndContext, exit: QemuExit): Next {
  const how = exit.signal ? `was killed by ${exit.signal}` : `exited with code ${exit.exitCode}`;
  if (ctx.killedAfterGrace) return { kind: "exit", code: ExitCode.Killed, message: `QEMU ${how} after the grace period` };
  if (exit.exitCode === 0) {
    const after = ctx.stopReason ? ` after ${ctx.stopReason}` : "";
    return { kind: "exit", code: ExitCode.Ok, message: `QEMU exited cleanly (${describeShutdown(exit.shutdownReason)})${after}` };
  }
  if (ctx.accel === "kvm" && ctx.kvmStderr !== undefined) return onVmFailure(ctx, `QEMU ${how} after "${ctx.kvmStderr}"`);
  if (ctx.accel === "kvm" && ctx.fallback && !ctx.ready && !ctx.stopping) {
    // No KVM text, but a QEMU that dies before the guest is ready under KVM may still be KVM's
    // doing: one TCG try settles it. Not remembered: the cause is unknown.
    return { kind: "restart", accel: ctx.fallback, reason: `QEMU ${how} before the guest was ready` };
  }
  return { kind: "exit", code: ExitCode.Failure, message: `QEMU ${how} on its own` };
}

/**
 * A QEMU run that was to load a saved state ended before the guest ran again (an incompatible
 * or damaged state, or a KVM failure): the state is already consumed, and the disk untouched
 * (QEMU keeps it inactive until the load completes), so the guest boots from it.
 */
export function onResumeFailure(ctx: RunContext, exit: QemuExit, lastStderr: string | undefined): Next {
  const how = exit.signal ? `was killed by ${exit.signal}` : `exited with code ${exit.exitCode}`;
  const said = lastStderr ? ` ("${lastStderr.trim()}")` : "";
  return {
    kind: "restart",
    accel: ctx.accel,
    reason: `QEMU ${how} while loading the saved state${said}`,
    coldBoot: true,
  };
}

/** A progress bound: a stage is overdue once QEMU has used `cpuMs` of CPU time, or `wallMs` have passed. */
export interface Bound {
  cpuMs: number;
  wallMs: number;
}

/**
 * How soon a guest under KVM must show progress on its serial console (see the README's
 * "Acceleration"). Counted mainly in QEMU's CPU time, so that a busy host (where every process
 * waits for a core) does not pass for a broken KVM: a broken paravirtual KVM burns CPU in the
 * host kernel while the guest shows nothing (measured here: no byte in 40 s), whereas even TCG,
 * many times slower than working KVM, prints its first byte after well under a second of QEMU's
 * CPU time and GRUB's line soon after. The wall-clock bounds catch a VM that hangs without
 * using CPU.
 */
export interface ProgressBounds {
  /** Any byte on the serial console (GRUB setting up its terminal). */
  firstOutput: Bound;
  /** A line of text on the serial console (GRUB's `Booting ...`, then the guest's own). */
  firstLine: Bound;
}

export const DEFAULT_PROGRESS_BOUNDS: ProgressBounds = {
  firstOutput: { cpuMs: 1_500, wallMs: 20_000 },
  firstLine: { cpuMs: 6_000, wallMs: 60_000 },
};

/** What the serial console has shown so far in this run: times in ms since QEMU started. */
export interface Progress {
  elapsedMs: number;
  /** QEMU's CPU time so far (user + system). */
  cpuMs: number;
  firstOutputMs?: number;
  firstLineMs?: number;
}

function overdue(progress: Progress, bound: Bound): boolean {
  return progress.cpuMs >= bound.cpuMs || progress.elapsedMs >= bound.wallMs;
}

/** The no-progress reason when a stage is overdue, else undefined. */
export function missingProgress(progress: Progress, bounds: ProgressBounds): string | undefined {
  const spent = `${(progress.elapsedMs / 1000).toFixed(1)}s after start, QEMU having used ${(progress.cpuMs / 1000).toFixed(1)}s of CPU`;
  if (progress.firstOutputMs === undefined && overdue(progress, bounds.firstOutput)) {
    return `no output at all on the serial console ${spent} (firmware/GRUB never got there)`;
  }
  if (progress.firstLineMs === undefined && overdue(progress, bounds.firstLine)) {
    return `no line of text on the serial console ${spent} (GRUB/the guest kernel never printed)`;
  }
  return undefined;
}

/** True while some stage is still awaited (the supervisor keeps polling). */
export function awaitingProgress(progress: Pick<Progress, "firstOutputMs" | "firstLineMs">): boolean {
  return progress.firstOutputMs === undefined || progress.firstLineMs === undefined;
}

export function describeShutdown(reason: string | undefined): string {
  switch (reason) {
    case "guest-shutdown":
      return "the guest powered off";
    case "guest-reset":
      return "the guest reset with -no-reboot";
    case "guest-panic":
      return "the guest panicked";
    case "host-qmp-quit":
      return "QMP quit";
    case "host-signal":
      return "QEMU received a signal";
    case undefined:
      return "no SHUTDOWN event seen";
    default:
      return reason;
  }
}
