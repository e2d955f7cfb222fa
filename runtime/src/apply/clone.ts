/**
 * A clone's side effects: reading the machine image's captured state, and copying the captured
 * disk into the disks folder, checked against the capture before anything loads the state onto
 * it. The decisions are plan/clone.ts's.
 */
import { createHash } from "node:crypto";
import fs from "node:fs";
import { readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { pipeline } from "node:stream/promises";
import { Transform } from "node:stream";
import { clonePaths, type CloneFacts, type CloneMeta, type ClonePaths } from "../plan/clone.js";
import type { DiskPlan } from "../plan/disk.js";
import { fileSha256 } from "./disk.js";

function isCloneMeta(value: unknown): value is CloneMeta {
  const v = value as Partial<CloneMeta> | null;
  return (
    typeof v === "object" && v !== null && v.format === 1 && typeof v.qemu === "string" && (v.accel === "kvm" || v.accel === "tcg") &&
    typeof v.arch === "string" && typeof v.hardware === "string" && typeof v.cpu === "number" && typeof v.memoryBytes === "number" &&
    typeof v.storageBytes === "number" && typeof v.base?.sha256 === "string" && typeof v.disk?.sha256 === "string" &&
    typeof v.disk.bytes === "number" && typeof v.networkConfig === "string" && typeof v.stateBytes === "number" &&
    typeof v.captureUser === "string" && typeof v.capturedAt === "string"
  );
}

/** The captured state's description and the sizes of its files; undefined when the image ships none. */
export async function readCloneFacts(paths: ClonePaths): Promise<CloneFacts | undefined> {
  const text = await readFile(paths.meta, "utf8").catch((error: NodeJS.ErrnoException) => (error.code === "ENOENT" ? undefined : error));
  if (text === undefined) return undefined;
  if (text instanceof Error) return { problem: `${paths.meta} cannot be read (${text.message})` };
  const [state, disk] = await Promise.all([stat(paths.state).catch(() => undefined), stat(paths.disk).catch(() => undefined)]);
  const sizes = { ...(state?.isFile() && { stateBytes: state.size }), ...(disk?.isFile() && { diskBytes: disk.size }) };
  try {
    const meta: unknown = JSON.parse(text);
    return isCloneMeta(meta) ? { meta, ...sizes } : { problem: `${paths.meta} is not a DevMachines capture description`, ...sizes };
  } catch {
    return { problem: `${paths.meta} is not valid JSON`, ...sizes };
  }
}

/**
 * Copies the captured disk to the machine's overlay path (through `.creating` and a rename, the
 * base identity placed as applyDisk does), hashing it on the way; a copy that is not exactly the
 * captured disk is removed and refused. Either the whole disk is in place or nothing is.
 */
export async function copyCloneDisk(plan: DiskPlan, paths: ClonePaths, meta: CloneMeta): Promise<void> {
  const overlayTemp = `${plan.overlayPath}.creating`;
  const identityTemp = `${plan.identityPath}.creating`;
  const hash = createHash("sha256");
  try {
    await pipeline(
      fs.createReadStream(paths.disk, { highWaterMark: 4 * 2 ** 20 }),
      new Transform({
        transform(chunk: Buffer, _encoding, done) {
          hash.update(chunk);
          done(null, chunk);
        },
      }),
      fs.createWriteStream(overlayTemp, { mode: 0o644 }),
    );
    const sha256 = hash.digest("hex");
    if (sha256 !== meta.disk.sha256) throw new Error(`the copy's sha256 ${sha256.slice(0, 12)} is not the captured disk's ${meta.disk.sha256.slice(0, 12)}`);
    await writeFile(identityTemp, `${JSON.stringify(plan.base, null, 2)}\n`);
    await rename(identityTemp, plan.identityPath);
    await rename(overlayTemp, plan.overlayPath);
  } catch (error) {
    await removeCloneDisk(plan);
    throw error;
  }
}

/** Removes a clone's disk (and anything half-made), so the next attempt starts as a new machine. */
export async function removeCloneDisk(plan: DiskPlan): Promise<void> {
  await rm(`${plan.overlayPath}.creating`, { force: true });
  await rm(`${plan.identityPath}.creating`, { force: true });
  await rm(plan.overlayPath, { force: true });
  await rm(plan.identityPath, { force: true });
}

/**
 * The capture's last step (`npm run images`, after the generic first boot was saved): hashes
 * the captured disk and writes clone.json beside it and the state (vmstate.bin).
 */
export async function writeCaptureMeta(
  disksDir: string,
  facts: Omit<CloneMeta, "disk" | "stateBytes" | "capturedAt">,
): Promise<CloneMeta> {
  const paths = clonePaths(disksDir);
  const meta: CloneMeta = {
    ...facts,
    disk: { bytes: (await stat(paths.disk)).size, sha256: await fileSha256(paths.disk) },
    stateBytes: (await stat(paths.state)).size,
    capturedAt: new Date().toISOString(),
  };
  await writeFile(`${paths.meta}.tmp`, `${JSON.stringify(meta, null, 2)}\n`);
  await rename(`${paths.meta}.tmp`, paths.meta);
  return meta;
}
