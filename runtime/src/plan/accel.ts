/**
 * The accelerator decision, made once per start from discovered facts (apply/accel.ts) like
 * the disk and the network plans. Pure.
 *
 * `/dev/kvm` opening is not proof that KVM works: on a paravirtual KVM (kvm_pvm) ordinary
 * guests die at once (`failed to set MSR`), minutes later (`KVM internal error`), or crawl.
 * So under `ACCEL=auto` KVM gets one try with TCG as the fallback the supervisor owns; when KVM
 * fails, the verdict is written to the disks folder with the host it was seen on, and the next
 * start on that same host plans TCG at once. A changed host (kernel, CPU, QEMU) tries KVM again.
 */
import { ExitCode, LauncherError } from "../exitCodes.js";
import type { LauncherConfig } from "../config/schema.js";

/** The `ACCEL` setting. */
export type AccelMode = LauncherConfig["accel"];

/** An accelerator QEMU actually runs with. */
export type Accel = "kvm" | "tcg";

/** The QEMU arguments that select `accel`. TCG uses one host thread per vCPU. */
export function accelArgs(accel: Accel): string[] {
  return accel === "kvm" ? ["-accel", "kvm"] : ["-accel", "tcg,thread=multi"];
}

/** Whether `/dev/kvm` opens read-write (what QEMU needs), and if not, why. */
export interface KvmProbe {
  usable: boolean;
  reason?: string;
}

/** What a KVM verdict depends on: it holds only on the host it was reached on. */
export interface HostIdentity {
  /** `uname -r` of the Docker host (containers share its kernel). */
  kernel: string;
  /** `model name` from /proc/cpuinfo. */
  cpu: string;
  /** First line of `qemu-system-x86_64 --version`. */
  qemu: string;
}

/** The verdict file's content: KVM failed this guest on `host`. */
export interface KvmVerdict {
  kvm: "fails";
  /** What was seen, e.g. `QEMU reported "KVM internal error. Suberror: 1", 3.2s after start`. */
  reason: string;
  /** ISO time of the failure. */
  seenAt: string;
  host: HostIdentity;
}

/** The verdict file's name in the disks folder (DISKS_DIR). */
export const KVM_VERDICT_FILE = "kvm-verdict.json";

/** Facts the decision needs. `kvm` and `host` are absent when ACCEL=tcg (nothing is probed). */
export interface AccelFacts {
  kvm?: KvmProbe;
  host?: HostIdentity;
  /** The verdict file's content, if there is one; `undefined` when absent or unreadable. */
  verdict?: KvmVerdict;
  /** The verdict file's path, for messages. */
  verdictPath: string;
}

/** The decision: what QEMU starts with, what the supervisor may fall back to, and why. */
export interface AccelPlan {
  requested: AccelMode;
  first: Accel;
  /** Set under ACCEL=auto when starting with KVM: any sign of a KVM failure before readiness restarts under it. */
  fallback?: "tcg";
  /** One line for the log and the dry run. */
  reason: string;
  /** Set when the user should hear about it (TCG is much slower). */
  warning?: string;
}

/** Which parts of the host differ from the verdict's; empty when the verdict holds here. */
export function hostChanges(was: HostIdentity, now: HostIdentity): string[] {
  return (Object.keys(was) as (keyof HostIdentity)[])
    .filter((key) => was[key] !== now[key])
    .map((key) => `${key} "${was[key]}" -> "${now[key]}"`);
}

const RETRY_HINT = "delete that file or start once with ACCEL=kvm to try KVM again";

/** A guest of another architecture than the host's: KVM cannot run it at all. */
export interface ForeignGuest {
  guest: string;
  host: string;
}

/**
 * Decides the accelerator.
 *
 * @throws LauncherError(ExitCode.Host) when ACCEL=kvm and KVM is not usable.
 * @throws LauncherError(ExitCode.Config) when ACCEL=kvm for a guest of another architecture.
 */
export function planAccel(mode: AccelMode, facts: AccelFacts, foreign?: ForeignGuest): AccelPlan {
  if (mode === "tcg") return { requested: mode, first: "tcg", reason: "ACCEL=tcg" };
  if (foreign) {
    const why = `the guest is ${foreign.guest} and this host is ${foreign.host}: KVM runs guests of the host's own architecture only`;
    if (mode === "kvm") {
      throw new LauncherError(`ACCEL=kvm is impossible here: ${why}. Set ACCEL=auto or ACCEL=tcg (software emulation), or run the machine on a ${foreign.guest} host`, ExitCode.Config);
    }
    return { requested: mode, first: "tcg", reason: why, warning: `${why}; running under TCG software emulation, which is much slower` };
  }
  const kvm = facts.kvm ?? { usable: false, reason: "KVM was not probed" };
  if (!kvm.usable) {
    if (mode === "kvm") {
      throw new LauncherError(
        `ACCEL=kvm but KVM is not usable: ${kvm.reason}. ` +
          "Pass the device to the container (docker run --device /dev/kvm ...), " +
          "or set ACCEL=auto or ACCEL=tcg to run without KVM (much slower).",
        ExitCode.Host,
      );
    }
    const reason = `KVM is not usable (${kvm.reason})`;
    return {
      requested: mode,
      first: "tcg",
      reason,
      warning: `${reason}; running under TCG software emulation, which is much slower. Pass --device /dev/kvm to docker run to use KVM.`,
    };
  }
  const verdict = facts.verdict;
  if (mode === "kvm") {
    const ignored = verdict ? ` (the KVM failure remembered in ${facts.verdictPath} is ignored)` : "";
    return { requested: mode, first: "kvm", reason: `ACCEL=kvm${ignored}` };
  }
  if (verdict && facts.host) {
    const changes = hostChanges(verdict.host, facts.host);
    if (changes.length === 0) {
      const reason =
        `KVM failed this guest on this host before (${verdict.seenAt}: ${verdict.reason}), as remembered in ` +
        `${facts.verdictPath}; ${RETRY_HINT}`;
      return { requested: mode, first: "tcg", reason, warning: `starting under TCG at once: ${reason}` };
    }
    return {
      requested: mode,
      first: "kvm",
      fallback: "tcg",
      reason: `the host changed since KVM failed here (${changes.join("; ")}): trying KVM again, TCG if it fails`,
    };
  }
  return { requested: mode, first: "kvm", fallback: "tcg", reason: "/dev/kvm opens: trying KVM, TCG if it fails" };
}
