/**
 * What to do with the guest's disk: a qcow2 overlay in the disks folder,
 * backed by the read-only base image. Pure: facts in, decision out.
 */
import { join } from "node:path";
import { ExitCode, LauncherError } from "../exitCodes.js";
import { formatBytes } from "../config/units.js";

/**
 * The base file's quick facts (stat), as git's index and rsync's quick check use them: while
 * they are unchanged, so is the content, and a digest taken under them still holds. ctime is
 * part of it: no one can set it (utimes sets mtime, and bumps ctime), so a different image with
 * the same size and a clamped mtime (reproducible builds) is still told apart. A layer of an
 * image keeps its files' ctime for every container of it on a host; a re-pull or a restored
 * backup changes it, which costs one more hash, never a wrong answer.
 */
export interface BaseFile {
  bytes: number;
  mtimeMs: number;
  ctimeMs: number;
}

/** Identifies a base image, recorded beside the overlay when it is created. */
export interface BaseIdentity {
  sha256: string;
  virtualSize: number;
  format: string;
  /** The base file when `sha256` was taken of it (records from before these facts have none: hashed again once). */
  file?: BaseFile;
}

/**
 * The record beside the overlay (disk.base.json). `sha256` is absent from the moment the disk
 * is created until the base is hashed, after QEMU started (the hash is kept off a first
 * start's path); a container stopped before then leaves it so, and the next start tells the
 * base by `file` alone until its hash completes the record.
 */
export type RecordedBase = Omit<BaseIdentity, "sha256"> & { sha256?: string };

/** How this start knows the base's digest. */
export type DigestFrom = "sidecar" | "record" | "hashed";

/** The base image as found at this start: `file` only when it can vouch for the content (see {@link SETTLE_MS}). */
export interface BaseFacts extends RecordedBase {
  digestFrom?: DigestFrom;
}

/**
 * A base file modified less than this long ago may still be being written: its quick facts do
 * not vouch for its content (a write in the same timestamp tick would leave them as they are).
 * Longer than any file system's timestamp granularity (FAT: 2 s).
 */
export const SETTLE_MS = 3000;

export const sameFile = (a: BaseFile | undefined, b: BaseFile | undefined): boolean =>
  a !== undefined && b !== undefined && a.bytes === b.bytes && a.mtimeMs === b.mtimeMs && a.ctimeMs === b.ctimeMs;

/**
 * How readDiskFacts learns the base's digest, reading no more of it than it must:
 *   "sidecar"   `<base>.sha256` says it (the machine images ship one);
 *   "record"    the disk's record says it, and the base file is as it was when it was hashed;
 *   "deferred"  not now: a new disk is created at once and its base hashed after QEMU started
 *               (also a record whose hash never completed, over the same file); or there is
 *               nothing to compare with (no record, or one never completed whose file changed:
 *               planDisk refuses those);
 *   "now"       hashed before anything else: a record from before the quick facts, a base file
 *               that changed since it was hashed, or one written moments ago.
 */
export function digestSource(facts: { sidecar: boolean; file: BaseFile | undefined; record: RecordedBase | undefined; newDisk: boolean }): "sidecar" | "record" | "deferred" | "now" {
  if (facts.sidecar) return "sidecar";
  if (facts.newDisk) return facts.file ? "deferred" : "now";
  if (!facts.record || facts.record.sha256 === undefined) return "deferred";
  return sameFile(facts.record.file, facts.file) ? "record" : "now";
}

/** What qemu-img reports an image refers to outside itself. */
export interface ImageReferences {
  backingFile?: string;
  backingFormat?: string;
  dataFile?: string;
}

export interface DiskFacts {
  base: BaseFacts | undefined;
  /** The base's own references: must be none, or the guest would read files of the container. */
  baseReferences?: ImageReferences;
  overlay: ({ virtualSize: number; base: RecordedBase | undefined } & ImageReferences) | undefined;
  /**
   * The identity file is there but the overlay is not: a disk was made in this folder and
   * is gone (deleted by hand, or restored without it). Never silently replaced by a blank one.
   */
  identityWithoutOverlay?: boolean;
  /** A `disk.qcow2.creating` is left from a creation that was cut short: nothing usable, create again. */
  interruptedCreate?: boolean;
}

/** The base formats the launcher opens: anything else (vmdk extents, ...) could refer to other files. */
export const BASE_FORMATS = ["qcow2", "raw"] as const;

/** A path for a message: quoted, at most 200 characters. */
const shown = (path: string) => JSON.stringify(path.length > 200 ? `${path.slice(0, 200)}...` : path);

export interface DiskPlan {
  action: "create" | "reuse" | "grow";
  /** Why this action, in words for the log. */
  reason: string;
  overlayPath: string;
  identityPath: string;
  basePath: string;
  baseFormat: string;
  sizeBytes: number;
  /** The overlay's size before this start, when it existed. */
  previousSizeBytes?: number;
  ephemeral: boolean;
  /** What the disk's record says of its base (applyDisk writes it at creation); `sha256` absent: not hashed yet. */
  base: RecordedBase;
  /** How this start knows the base's digest; "pending": not yet (see completeRecord). */
  digestFrom: DigestFrom | "pending";
  /** Hash the base once QEMU runs and complete the record (apply/disk.ts completeBaseRecord). */
  completeRecord: boolean;
  /** Rewrite the record with the base file's current facts (an older record, or the file's facts changed while its content did not). */
  refreshRecord: boolean;
}

export const OVERLAY_NAME = "disk.qcow2";
export const IDENTITY_NAME = "disk.base.json";

export function planDisk(
  options: { basePath: string; disksDir: string; storageBytes: number; ephemeral: boolean },
  facts: DiskFacts,
): DiskPlan {
  const { basePath, disksDir, storageBytes, ephemeral } = options;
  const base = facts.base;
  if (!base) {
    throw new LauncherError(
      `no base image at ${basePath} (BASE_IMAGE). Run a machine image such as devmachines/debian, or mount a qcow2 or raw disk read-only there: docker run -v /path/to/image.qcow2:${basePath}:ro ...`,
      ExitCode.Host,
    );
  }
  if (!(BASE_FORMATS as readonly string[]).includes(base.format)) {
    throw new LauncherError(
      `BASE_IMAGE ${basePath} is a ${base.format} image; the launcher opens qcow2 or raw only (other formats can refer to other files). Convert it: qemu-img convert -O qcow2 IN OUT`,
      ExitCode.Host,
    );
  }
  const references = facts.baseReferences ?? {};
  if (references.backingFile !== undefined || references.dataFile !== undefined) {
    const what = references.backingFile !== undefined ? `a backing file (${shown(references.backingFile)})` : `an external data file (${shown(references.dataFile!)})`;
    throw new LauncherError(
      `BASE_IMAGE ${basePath} has ${what}: refusing it, because the guest's disk would expose that file of the container. ` +
        "Make it self-contained first: qemu-img convert -O qcow2 IN OUT",
      ExitCode.Host,
    );
  }
  const { digestFrom, ...identity } = base;
  const common = {
    overlayPath: join(disksDir, OVERLAY_NAME),
    identityPath: join(disksDir, IDENTITY_NAME),
    basePath,
    baseFormat: base.format,
    ephemeral,
    base: identity,
    digestFrom: digestFrom ?? ("pending" as const),
    // An ephemeral disk is made anew at every start: its record is never read again.
    completeRecord: base.sha256 === undefined && !ephemeral,
    refreshRecord: false,
  };
  if (storageBytes < base.virtualSize) {
    throw new LauncherError(
      `STORAGE=${formatBytes(storageBytes)} is smaller than the base image's disk (${formatBytes(base.virtualSize)}): set STORAGE to at least that`,
      ExitCode.Config,
    );
  }
  const overlay = facts.overlay;
  if (!overlay && !ephemeral && facts.identityWithoutOverlay && !facts.interruptedCreate) {
    throw new LauncherError(
      `${common.overlayPath} is missing, but ${common.identityPath} says a disk was made in ${disksDir}: the disk was deleted, or the wrong volume is mounted. ` +
        `Refusing to boot a blank disk in its place. Mount the volume that holds the disk, or remove ${common.identityPath} to start over with a fresh disk`,
      ExitCode.Disk,
    );
  }
  if (!overlay || ephemeral) {
    return {
      ...common,
      action: "create",
      sizeBytes: storageBytes,
      reason: ephemeral
        ? "EPHEMERAL is set: a fresh disk at every start"
        : facts.identityWithoutOverlay
          ? "the last creation of the disk was cut short: creating it again"
          : "first start: no disk in the disks folder yet",
    };
  }
  if (!overlay.base) {
    throw new LauncherError(
      `${common.overlayPath} exists but ${common.identityPath} does not, so its base image is unknown: refusing to use it. Move it away or remove the volume to start over`,
      ExitCode.Disk,
    );
  }
  if (overlay.base.sha256 === undefined) {
    // The first start stopped before the base was hashed: only the file's facts tell it.
    if (!sameFile(overlay.base.file, base.file)) {
      throw new LauncherError(
        `the disk in ${disksDir} was created moments before its first start stopped, before its base image was identified (sha256), and BASE_IMAGE ${basePath} has changed since ` +
          `(size, modification or change time): it may be another image, and booting the disk over a different base would corrupt it. ` +
          `Run the image it was made with; or, if the disk holds nothing you need (its first start was cut short), remove ${common.overlayPath} and ${common.identityPath} to start over`,
        ExitCode.Disk,
      );
    }
  } else if (overlay.base.sha256 !== base.sha256) {
    throw new LauncherError(
      `the disk in ${disksDir} was created over another base image (sha256 ${overlay.base.sha256.slice(0, 12)}), but BASE_IMAGE ${basePath} is sha256 ${base.sha256?.slice(0, 12) ?? "unknown"}. ` +
        "Booting it over a different base would corrupt it: run the image it was made with, or use a new volume",
      ExitCode.Disk,
    );
  }
  // The digest matched by reading: record the file's facts, so that the next start need not.
  const refresh = {
    refreshRecord: base.sha256 !== undefined && base.file !== undefined && (overlay.base.sha256 === undefined || !sameFile(overlay.base.file, base.file)),
  };
  // The overlay's header names its backing file: it must still be this base, opened as its
  // recorded format, with no data file, or the guest would see another file of the container.
  if (overlay.dataFile !== undefined || overlay.backingFile !== basePath || overlay.backingFormat !== overlay.base.format) {
    const found = overlay.dataFile !== undefined
      ? `an external data file (${shown(overlay.dataFile)})`
      : `backing file ${overlay.backingFile === undefined ? "none" : shown(overlay.backingFile)} (format ${overlay.backingFormat ?? "unset"})`;
    throw new LauncherError(
      `${common.overlayPath} has ${found}, but BASE_IMAGE is ${basePath} (${overlay.base.format}): its header was changed, or the base image moved; refusing to open it. ` +
        `${overlay.dataFile === undefined && overlay.backingFile !== undefined ? `Mount the base image at ${shown(overlay.backingFile)} again (BASE_IMAGE), restore` : "Restore"} the disk from a backup, or use a new volume`,
      ExitCode.Disk,
    );
  }
  if (storageBytes < overlay.virtualSize) {
    throw new LauncherError(
      `STORAGE=${formatBytes(storageBytes)} is smaller than the existing disk (${formatBytes(overlay.virtualSize)}) in ${disksDir}: disks never shrink. Set STORAGE to at least ${formatBytes(overlay.virtualSize)}, or use a new volume`,
      ExitCode.Config,
    );
  }
  if (storageBytes > overlay.virtualSize) {
    return {
      ...common,
      ...refresh,
      action: "grow",
      sizeBytes: storageBytes,
      previousSizeBytes: overlay.virtualSize,
      reason: `STORAGE grew from ${formatBytes(overlay.virtualSize)} to ${formatBytes(storageBytes)}: the guest grows its file system at boot`,
    };
  }
  return {
    ...common,
    ...refresh,
    action: "reuse",
    sizeBytes: overlay.virtualSize,
    previousSizeBytes: overlay.virtualSize,
    reason: "the disk from an earlier start is kept",
  };
}
