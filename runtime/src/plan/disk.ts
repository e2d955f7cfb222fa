/**
 * What to do with the guest's disk: a qcow2 overlay in the disks folder,
 * backed by the read-only base image. Pure: facts in, decision out.
 */
import { join } from "node:path";
import { ExitCode, LauncherError } from "../exitCodes.js";
import { formatBytes } from "../config/units.js";

/** Identifies a base image, recorded beside the overlay when it is created. */
export interface BaseIdentity {
  sha256: string;
  virtualSize: number;
  format: string;
}

/** What qemu-img reports an image refers to outside itself. */
export interface ImageReferences {
  backingFile?: string;
  backingFormat?: string;
  dataFile?: string;
}

export interface DiskFacts {
  base: BaseIdentity | undefined;
  /** The base's own references: must be none, or the guest would read files of the container. */
  baseReferences?: ImageReferences;
  overlay: ({ virtualSize: number; base: BaseIdentity | undefined } & ImageReferences) | undefined;
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
  base: BaseIdentity;
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
  const common = {
    overlayPath: join(disksDir, OVERLAY_NAME),
    identityPath: join(disksDir, IDENTITY_NAME),
    basePath,
    baseFormat: base.format,
    ephemeral,
    base,
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
  if (overlay.base.sha256 !== base.sha256) {
    throw new LauncherError(
      `the disk in ${disksDir} was created over another base image (sha256 ${overlay.base.sha256.slice(0, 12)}), but BASE_IMAGE ${basePath} is sha256 ${base.sha256.slice(0, 12)}. ` +
        "Booting it over a different base would corrupt it: run the image it was made with, or use a new volume",
      ExitCode.Disk,
    );
  }
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
      action: "grow",
      sizeBytes: storageBytes,
      previousSizeBytes: overlay.virtualSize,
      reason: `STORAGE grew from ${formatBytes(overlay.virtualSize)} to ${formatBytes(storageBytes)}: the guest grows its file system at boot`,
    };
  }
  return {
    ...common,
    action: "reuse",
    sizeBytes: overlay.virtualSize,
    previousSizeBytes: overlay.virtualSize,
    reason: "the disk from an earlier start is kept",
  };
}
