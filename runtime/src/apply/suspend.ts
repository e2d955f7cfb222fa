/**
 * The saved state's side effects: reading what is in the disks folder, setting a state aside,
 * consuming a state before its resume, and completing a save on disk. The decisions are
 * plan/suspend.ts's.
 */
import fs from "node:fs";
import { readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import type { DiskStamp, SavedStateFacts, SavedStateMeta, SuspendPaths } from "../plan/suspend.js";
import type { Accel } from "../plan/accel.js";

export async function diskStamp(path: string): Promise<DiskStamp | undefined> {
  const info = await stat(path, { bigint: true }).catch(() => undefined);
  if (!info) return undefined;
  return { size: Number(info.size), mtimeNs: info.mtimeNs.toString(), ino: Number(info.ino) };
}

function isMeta(value: unknown): value is SavedStateMeta {
  const v = value as Partial<SavedStateMeta> | null;
  return (
    typeof v === "object" && v !== null && v.format === 1 && typeof v.qemu === "string" && (v.accel === "kvm" || v.accel === "tcg") &&
    typeof v.machineHash === "string" && typeof v.stateBytes === "number" && typeof v.savedAt === "string" &&
    typeof v.disk?.mtimeNs === "string" && typeof v.disk.size === "number" && typeof v.disk.ino === "number"
  );
}

/** Reads the saved state's facts; the overlay is stamped before anything of this start touches it. */
export async function readSavedState(paths: SuspendPaths, overlayPath: string): Promise<SavedStateFacts> {
  const [stateInfo, metaText, disk] = await Promise.all([
    stat(paths.state).catch(() => undefined),
    readFile(paths.meta, "utf8").catch((error: NodeJS.ErrnoException) => (error.code === "ENOENT" ? undefined : error)),
    diskStamp(overlayPath),
  ]);
  const facts: SavedStateFacts = { ...(stateInfo && { stateBytes: stateInfo.size }), ...(disk && { disk }) };
  if (metaText instanceof Error) return { ...facts, metaProblem: `cannot be read (${metaText.message})` };
  if (metaText === undefined) return facts;
  try {
    const meta: unknown = JSON.parse(metaText);
    return isMeta(meta) ? { ...facts, meta } : { ...facts, metaProblem: "is not a DevMachines state description" };
  } catch {
    return { ...facts, metaProblem: "is not valid JSON" };
  }
}

function fsyncDir(path: string): void {
  const fd = fs.openSync(path, "r");
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** Moves the state aside (replacing an older one) and drops its description. */
export async function setAside(paths: SuspendPaths): Promise<void> {
  await rm(paths.meta, { force: true });
  await rename(paths.state, paths.setAside).catch((error: NodeJS.ErrnoException) => {
    if (error.code !== "ENOENT") throw error;
  });
  fsyncDir(dirname(paths.state));
}

/**
 * Opens the state for QEMU's `-incoming fd:N` and removes it from the folder before QEMU even
 * starts: a state is resumed once at most. Whatever happens after (the guest writes to its disk,
 * the container is killed), the next start can never load it onto the disk it no longer matches.
 */
export function consumeSavedState(paths: SuspendPaths): number {
  const fd = fs.openSync(paths.state, "r");
  fs.rmSync(paths.meta, { force: true });
  fs.rmSync(paths.state);
  fsyncDir(dirname(paths.state));
  return fd;
}

/**
 * After QEMU wrote the state to `paths.partial` and exited: the state reaches the disk, the
 * overlay is stamped as QEMU left it, and only then are the state and its description put in
 * place (state first: a state without a description is set aside, never resumed).
 */
export async function completeSave(
  paths: SuspendPaths,
  overlayPath: string,
  machine: { qemu: string; accel: Accel; machineHash: string },
): Promise<SavedStateMeta> {
  const fd = fs.openSync(paths.partial, "r+");
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  const disk = await diskStamp(overlayPath);
  if (!disk) throw new Error(`the disk ${overlayPath} is gone`);
  const meta: SavedStateMeta = {
    format: 1,
    ...machine,
    disk,
    stateBytes: fs.statSync(paths.partial).size,
    savedAt: new Date().toISOString(),
  };
  const metaTemp = `${paths.meta}.${process.pid}.tmp`;
  await writeFile(metaTemp, `${JSON.stringify(meta, null, 2)}\n`);
  const metaFd = fs.openSync(metaTemp, "r+");
  try {
    fs.fsyncSync(metaFd);
  } finally {
    fs.closeSync(metaFd);
  }
  await rename(paths.partial, paths.state);
  await rename(metaTemp, paths.meta);
  fsyncDir(dirname(paths.state));
  return meta;
}
