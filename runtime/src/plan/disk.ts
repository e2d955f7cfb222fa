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

export interface DiskFacts {
  base: BaseIdentity | undefined;
  overlay: { virtualSize: number; base: BaseIdentity | undefined } | undefined;
  /**
   * The identity file is there but the overlay is not: a disk was made in this folder and
   * is gone (deleted by hand, or restored without it). Never silently replaced by a blank one.
   */
  identityWithoutOverlay?: boolean;
  /** A `disk.qcow2.creating` is left from a creation that was cut short: nothing usable, create again. */
  interruptedCreate?: boolean;
}

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
