/**
 * The disk's side of the world: reading facts about the base image and the
 * overlay (read-only, also used by --dry-run), and carrying out a DiskPlan so
 * that a failure never leaves a half-written disk behind.
 */
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { access, constants, mkdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { execa } from "execa";
import { ExitCode, LauncherError } from "../exitCodes.js";
import type { BaseIdentity, DiskFacts, DiskPlan } from "../plan/disk.js";
import { IDENTITY_NAME, OVERLAY_NAME } from "../plan/disk.js";
import { join } from "node:path";

interface ImageInfo {
  virtualSize: number;
  format: string;
}

async function imageInfo(path: string): Promise<ImageInfo> {
  // --force-share: the overlay may be open by a QEMU that is still shutting down.
  const { stdout } = await execa("qemu-img", ["info", "--force-share", "--output=json", path]);
  const info = JSON.parse(stdout) as { "virtual-size": number; format: string };
  return { virtualSize: info["virtual-size"], format: info.format };
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path, constants.F_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * The base's sha256: from `<base>.sha256` ("DIGEST SIZE", written at image build
 * time) when its size matches the file, else computed. The size check keeps a
 * digest from describing another image mounted over the same path.
 */
async function baseDigest(path: string): Promise<string> {
  try {
    const [recorded, size] = (await readFile(`${path}.sha256`, "utf8")).trim().split(/\s+/);
    if (recorded && /^[0-9a-f]{64}$/.test(recorded) && Number(size) === (await stat(path)).size) return recorded;
  } catch {
    // No usable recorded digest: compute it below.
  }
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

export async function readDiskFacts(basePath: string, disksDir: string): Promise<DiskFacts> {
  let base: BaseIdentity | undefined;
  if (await exists(basePath)) {
    const [info, sha256] = await Promise.all([imageInfo(basePath), baseDigest(basePath)]);
    base = { sha256, virtualSize: info.virtualSize, format: info.format };
  }
  const overlayPath = join(disksDir, OVERLAY_NAME);
  let overlay: DiskFacts["overlay"];
  if (await exists(overlayPath)) {
    const info = await imageInfo(overlayPath);
    let recorded: BaseIdentity | undefined;
    try {
      recorded = JSON.parse(await readFile(join(disksDir, IDENTITY_NAME), "utf8")) as BaseIdentity;
    } catch {
      recorded = undefined;
    }
    overlay = { virtualSize: info.virtualSize, base: recorded };
  }
  return { base, overlay };
}

/** Fails with exit code 3 when the disks folder cannot be written. */
export async function ensureWritableDir(dir: string, variable: string): Promise<void> {
  try {
    await mkdir(dir, { recursive: true });
    await access(dir, constants.W_OK);
  } catch (error) {
    throw new LauncherError(
      `${variable} ${dir} cannot be written (${(error as Error).message}). Mount a writable volume there: docker run -v devmachine-disk:${dir} ...`,
      ExitCode.Host,
    );
  }
}

export async function applyDisk(plan: DiskPlan): Promise<void> {
  if (plan.action === "reuse") return;
  if (plan.action === "grow") {
    // qemu-img resize only changes the virtual size in the header; the data stays untouched.
    await execa("qemu-img", ["resize", plan.overlayPath, String(plan.sizeBytes)]);
    return;
  }
  // Build next to the final names, then rename: a crash leaves either the old disk or the new one.
  const overlayTemp = `${plan.overlayPath}.creating`;
  const identityTemp = `${plan.identityPath}.creating`;
  try {
    await execa("qemu-img", [
      "create", "-q", "-f", "qcow2", "-F", plan.baseFormat, "-b", plan.basePath, overlayTemp, String(plan.sizeBytes),
    ]);
    await writeFile(identityTemp, `${JSON.stringify(plan.base, null, 2)}\n`);
    await rename(identityTemp, plan.identityPath);
    await rename(overlayTemp, plan.overlayPath);
  } catch (error) {
    await rm(overlayTemp, { force: true });
    await rm(identityTemp, { force: true });
    throw error;
  }
}
