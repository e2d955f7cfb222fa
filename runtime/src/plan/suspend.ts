/**
 * Suspend and resume (ON_STOP=suspend): which saved state may be resumed, and what identifies
 * the machine it was saved from. Pure: the facts are read by apply/suspend.ts.
 *
 * A saved state is the guest's whole RAM and device state. Loaded onto anything other than the
 * very disk, QEMU, accelerator and virtual hardware it was saved with, it corrupts the guest
 * (its page cache and file system metadata would describe another disk). So every one of them
 * is recorded beside the state at save time and compared at start; any difference sets the
 * state aside and the guest cold-boots.
 */
import { createHash } from "node:crypto";
import { join } from "node:path";
import type { Accel } from "./accel.js";
import type { DiskPlan } from "./disk.js";

/** The saved RAM and device state (QEMU's migration stream), beside the disk. */
export const SAVED_STATE_NAME = "vmstate.bin";
/** What the state was saved from: {@link SavedStateMeta}. Written after the state, removed first. */
export const SAVED_META_NAME = "vmstate.json";
/** Where a state that may not be resumed goes (only the latest one is kept: they are large). */
export const SET_ASIDE_NAME = "vmstate.set-aside.bin";

/** The overlay as the file system sees it: any write by anyone changes the mtime (and usually the size). */
export interface DiskStamp {
  size: number;
  /** Nanoseconds, as a decimal string (a bigint does not survive JSON). */
  mtimeNs: string;
  ino: number;
}

/** Written beside the state when a save completes. */
export interface SavedStateMeta {
  format: 1;
  /** `qemu-system-x86_64 --version`'s first line. */
  qemu: string;
  accel: Accel;
  /** {@link machineHash} of the machine that was saved. */
  machineHash: string;
  /** The overlay after QEMU closed it, following the save. */
  disk: DiskStamp;
  stateBytes: number;
  savedAt: string;
}

/** What apply/suspend.ts found in the disks folder. */
export interface SavedStateFacts {
  /** The state file's size, when it exists. */
  stateBytes?: number;
  /** The metadata, when it exists and reads as {@link SavedStateMeta}. */
  meta?: SavedStateMeta;
  /** The metadata exists but cannot be read or is not ours. */
  metaProblem?: string;
  /** The overlay as it is now (before anything of this start touched it). */
  disk?: DiskStamp;
}

export interface SuspendPaths {
  state: string;
  meta: string;
  /** The state while it is being written (renamed to {@link state} once complete and on disk). */
  partial: string;
  setAside: string;
}

export function suspendPaths(disksDir: string): SuspendPaths {
  return {
    state: join(disksDir, SAVED_STATE_NAME),
    meta: join(disksDir, SAVED_META_NAME),
    partial: join(disksDir, `${SAVED_STATE_NAME}.partial`),
    setAside: join(disksDir, SET_ASIDE_NAME),
  };
}

export type ResumePlan =
  | { action: "none"; reason: string }
  | { action: "resume"; reason: string; statePath: string; stateBytes: number; savedAt: string }
  /** A state is there but must not be resumed: it is set aside, the guest cold-boots, and the log says why. */
  | { action: "set-aside"; reason: string; warning: string };

/** What this start would run: compared with what the state was saved from. */
export interface MachineNow {
  qemu: string;
  accel: Accel;
  machineHash: string;
  diskAction: DiskPlan["action"];
}

/**
 * Resume, cold-boot, or set the state aside. Whatever ON_STOP says now, a state that matches
 * is resumed: it is the machine as it was left, and a cold boot would lose its processes the
 * way a power cut does.
 */
export function planResume(facts: SavedStateFacts, now: MachineNow, paths: SuspendPaths): ResumePlan {
  if (facts.stateBytes === undefined && facts.meta === undefined && facts.metaProblem === undefined) {
    return { action: "none", reason: "no saved state: the guest boots" };
  }
  const aside = (why: string): ResumePlan => ({
    action: "set-aside",
    reason: why,
    warning: `the saved state in ${paths.state} is not resumed: ${why}. It was moved to ${paths.setAside} and the guest boots from its disk (processes and unsaved data of the suspended guest are lost, as after a power cut)`,
  });
  if (facts.stateBytes === undefined) return aside("the state file is missing (only its description is there)");
  if (facts.metaProblem !== undefined || facts.meta === undefined) {
    return aside(`its description ${paths.meta} ${facts.metaProblem ?? "is missing (the save never finished)"}`);
  }
  const meta = facts.meta;
  if (meta.stateBytes !== facts.stateBytes) return aside(`the state file has ${facts.stateBytes} bytes, but ${meta.stateBytes} were saved`);
  if (!facts.disk) return aside("the disk it was saved with is gone");
  if (now.diskAction !== "reuse") return aside(`the disk is not reused as it was (${now.diskAction}: STORAGE changed, or the disk was made anew)`);
  const disk = facts.disk;
  if (disk.ino !== meta.disk.ino || disk.size !== meta.disk.size || disk.mtimeNs !== meta.disk.mtimeNs) {
    return aside("the disk changed after the save (another size, time or file): resuming onto it would corrupt it");
  }
  if (meta.qemu !== now.qemu) return aside(`it was saved by ${meta.qemu}, this is ${now.qemu}`);
  if (meta.accel !== now.accel) return aside(`it was saved under ${meta.accel.toUpperCase()}, this start uses ${now.accel.toUpperCase()}`);
  if (meta.machineHash !== now.machineHash) {
    return aside("the machine's configuration changed (CPU, MEMORY, devices, network or cloud-init settings)");
  }
  return {
    action: "resume",
    reason: `a state saved at ${meta.savedAt} (${(meta.stateBytes / 2 ** 20).toFixed(0)} MiB) matches this machine`,
    statePath: paths.state,
    stateBytes: meta.stateBytes,
    savedAt: meta.savedAt,
  };
}

/**
 * Identifies the virtual machine a state belongs to: the QEMU argv (CPU, memory, devices,
 * accelerator) without what may differ between two runs of the same machine (the paths of the
 * host-side sockets and VNC servers: they carry no guest state), plus the cloud-init
 * instance, which changes with users, keys, user data, host name and network settings.
 */
export function machineHash(argv: readonly string[], volatileDirs: readonly string[], instanceId: string): string {
  const normalized = stateArgv(argv, { drop: ["-vnc", "-incoming"], paths: volatileDirs.map((dir) => [dir, "<run>"] as const) });
  return createHash("sha256").update(JSON.stringify({ argv: normalized, instanceId })).digest("hex");
}

/**
 * A QEMU argv without what carries no guest state: the `drop` options with their values, the
 * `paths` replaced by placeholders, and (with `hostForwards: false`) NAT's host-side port
 * forwards. What remains is the virtual machine a saved or captured state belongs to.
 */
export function stateArgv(
  argv: readonly string[],
  options: { drop: readonly string[]; paths: readonly (readonly [string, string])[]; hostForwards?: boolean },
): string[] {
  const normalized: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (options.drop.includes(arg)) {
      i++;
      continue;
    }
    let value = arg;
    for (const [path, placeholder] of options.paths) value = value.split(path).join(placeholder);
    if (options.hostForwards === false && value.startsWith("user,")) value = value.split(",").filter((part) => !part.startsWith("hostfwd=")).join(",");
    normalized.push(value);
  }
  return normalized;
}
