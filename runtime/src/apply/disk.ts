/**
 * The disk's side of the world: reading facts about the base image and the
 * overlay (read-only, also used by --dry-run), and carrying out a DiskPlan so
 * that a failure never leaves a half-written disk behind.
 */
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { access, constants, mkdir, readFile, rename, rm, stat, statfs, writeFile } from "node:fs/promises";
import { execa } from "execa";
import { formatBytes, MiB } from "../config/units.js";
import { ExitCode, LauncherError } from "../exitCodes.js";
import type { BaseIdentity, DiskFacts, DiskPlan } from "../plan/disk.js";
import { IDENTITY_NAME, OVERLAY_NAME } from "../plan/disk.js";
import { dirname, join } from "node:path";

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
  if (overlay) return { base, overlay };
  return {
    base,
    overlay,
    identityWithoutOverlay: await exists(join(disksDir, IDENTITY_NAME)),
    interruptedCreate: await exists(join(disksDir, `${OVERLAY_NAME}.creating`)),
  };
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

/**
 * The least free space a start needs in the disks folder: the guest's writes land in the
 * overlay there (a first boot writes about 100 MiB), and a QEMU that runs out of space pauses
 * the guest, which then hangs without a word. Refusing at start is the clear failure.
 */
export const MIN_FREE_BYTES = 256 * MiB;

/** Fails with exit code 3 when the disks folder has less than {@link MIN_FREE_BYTES} free. */
export async function ensureFreeSpace(dir: string, variable: string, minBytes = MIN_FREE_BYTES): Promise<void> {
  const fs = await statfs(dir);
  const free = fs.bavail * fs.bsize;
  if (free < minBytes) {
    throw new LauncherError(
      `${variable} ${dir} is full: ${formatBytes(free)} free, and a DevMachine needs at least ${formatBytes(minBytes)} there to boot ` +
        "(the guest's writes land in its disk in that folder). Nothing was changed. Free space on that volume or mount a larger one",
      ExitCode.Host,
    );
  }
}

/** qemu-img's own words for a failure (its stderr), without execa's command line. */
function toolMessage(error: unknown): string {
  const stderr = (error as { stderr?: unknown }).stderr;
  return typeof stderr === "string" && stderr.trim() ? stderr.trim() : (error as Error).message;
}

/**
 * `qemu-img check -r leaks` on an existing overlay, before QEMU opens it. A killed QEMU
 * (docker kill, a host crash) can leave leaked clusters: space allocated and never used,
 * harmless, and repaired here so they do not pile up. A corrupt image is refused with a clear
 * message rather than handed to a guest that would meet I/O errors. Returns a line for the
 * log when something was repaired.
 */
export async function checkOverlay(path: string): Promise<string | undefined> {
  // Look first, read-only; repair only when leaks are all there is (exit code 3).
  const check = async (repair: boolean) => {
    const result = await execa("qemu-img", ["check", ...(repair ? ["-r", "leaks"] : []), "--output=json", path], { reject: false });
    let report: { corruptions?: number; leaks?: number; "leaks-fixed"?: number } = {};
    try {
      report = JSON.parse(result.stdout) as typeof report;
    } catch {
      // No report (qemu-img could not open or walk the image): its stderr says why.
    }
    return { result, report };
  };
  const first = await check(false);
  if (first.result.exitCode === 2 || (first.report.corruptions ?? 0) > 0) {
    throw new LauncherError(
      `the disk ${path} is corrupt: qemu-img check found ${first.report.corruptions ?? "some"} corrupted clusters, so it was not booted and was left as it is. ` +
        `Copy the volume first, then try a repair: qemu-img check -r all ${path} (in a container with the volume mounted)`,
      ExitCode.Disk,
    );
  }
  if (first.result.exitCode === 0) return undefined;
  if (first.result.exitCode !== 3) {
    throw new LauncherError(`could not check the disk ${path} before booting it: ${toolMessage(first.result)}`, ExitCode.Disk);
  }
  const repair = await check(true);
  if (repair.result.exitCode !== 0) {
    return `${first.report.leaks ?? "some"} leaked clusters (allocated space nothing uses, left by an unclean stop; harmless) could not be repaired: ${toolMessage(repair.result)}`;
  }
  return `repaired ${repair.report["leaks-fixed"] ?? first.report.leaks} leaked clusters left by an unclean stop (allocated space nothing used; no data lost)`;
}

export async function applyDisk(plan: DiskPlan): Promise<void> {
  if (plan.action === "reuse") return;
  if (plan.action === "grow") {
    // qemu-img resize only changes the virtual size in the header; the data stays untouched.
    try {
      await execa("qemu-img", ["resize", plan.overlayPath, String(plan.sizeBytes)]);
    } catch (error) {
      throw new LauncherError(`could not grow the disk ${plan.overlayPath}: ${toolMessage(error)}`, ExitCode.Host);
    }
    return;
  }
  // Build next to the final names, then rename: a crash leaves either the old disk or the new one.
  const overlayTemp = `${plan.overlayPath}.creating`;
  const identityTemp = `${plan.identityPath}.creating`;
  let identityPlaced = false;
  try {
    await execa("qemu-img", [
      "create", "-q", "-f", "qcow2", "-F", plan.baseFormat, "-b", plan.basePath, overlayTemp, String(plan.sizeBytes),
    ]);
    await writeFile(identityTemp, `${JSON.stringify(plan.base, null, 2)}\n`);
    // Identity first: a kill between the renames leaves the identity and disk.qcow2.creating,
    // which the next start recognises as a cut-short creation (see DiskFacts.interruptedCreate).
    await rename(identityTemp, plan.identityPath);
    identityPlaced = true;
    await rename(overlayTemp, plan.overlayPath);
  } catch (error) {
    await rm(overlayTemp, { force: true });
    await rm(identityTemp, { force: true });
    // An identity without its disk would make the next start refuse as if the disk were deleted.
    if (identityPlaced && !(await exists(plan.overlayPath))) await rm(plan.identityPath, { force: true });
    throw new LauncherError(
      `could not create the disk ${plan.overlayPath}: ${toolMessage(error)}. Nothing was left behind in ${dirname(plan.overlayPath)}`,
      ExitCode.Host,
    );
  }
}
