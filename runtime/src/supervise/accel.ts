/**
 * Choosing QEMU's accelerator: `ACCEL` = `auto` | `kvm` | `tcg`.
 *
 * `/dev/kvm` being there is not enough: on some hosts it is a paravirtual KVM (kvm_pvm)
 * on which ordinary guests die or wedge at once. So `auto` starts with KVM when the device
 * opens, and the supervisor watches the first seconds and falls back to TCG
 * (see supervisor.ts, {@link looksLikeKvmFailure}).
 */
import fs from "node:fs";
import { ExitCode, LauncherError } from "../exitCodes.js";

/** The `ACCEL` setting. */
export type AccelMode = "auto" | "kvm" | "tcg";

/** An accelerator QEMU actually runs with. */
export type Accel = "kvm" | "tcg";

/** Whether `/dev/kvm` (or `device`) can be used, and if not, why. */
export interface KvmProbe {
  usable: boolean;
  /** Why not, for log lines and error messages. */
  reason?: string;
}

/** Checks that the KVM device exists and opens read-write (what QEMU needs). */
export function probeKvm(device = "/dev/kvm"): KvmProbe {
  let fd: number;
  try {
    fd = fs.openSync(device, fs.constants.O_RDWR);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return { usable: false, reason: `${device} does not exist` };
    return { usable: false, reason: `${device} cannot be opened read-write (${code ?? String(error)})` };
  }
  fs.closeSync(fd);
  return { usable: true };
}

/**
 * Decides which accelerator to start with.
 *
 * @returns `kvm` or `tcg`, and a warning to log when `auto` had to settle for TCG.
 * @throws LauncherError(ExitCode.Host) when `mode` is `kvm` and KVM is not usable.
 */
export function chooseInitialAccel(
  mode: AccelMode,
  probe: () => KvmProbe = () => probeKvm(),
): { accel: Accel; warning?: string } {
  if (mode === "tcg") return { accel: "tcg" };
  const kvm = probe();
  if (kvm.usable) return { accel: "kvm" };
  if (mode === "kvm") {
    throw new LauncherError(
      `ACCEL=kvm but KVM is not usable: ${kvm.reason}. ` +
        "Pass the device to the container (docker run --device /dev/kvm ...), " +
        "or set ACCEL=auto or ACCEL=tcg to run without KVM (much slower).",
      ExitCode.Host,
    );
  }
  return {
    accel: "tcg",
    warning:
      `KVM is not usable (${kvm.reason}); running under TCG software emulation, which is much slower. ` +
      "Pass --device /dev/kvm to docker run to use KVM.",
  };
}

/** The QEMU arguments that select `accel`. TCG uses one host thread per vCPU. */
export function accelArgs(accel: Accel): string[] {
  return accel === "kvm" ? ["-accel", "kvm"] : ["-accel", "tcg,thread=multi"];
}

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
