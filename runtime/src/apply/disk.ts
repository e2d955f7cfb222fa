/**
 * The disk's side of the world: reading facts about the base image and the
 * overlay (read-only, also used by --dry-run), and carrying out a DiskPlan so
 * that a failure never leaves a half-written disk behind.
 */
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { access, constants, lstat, mkdir, readFile, realpath, rename, rm, stat, statfs, writeFile } from "node:fs/promises";
import { execa } from "execa";
import { inKernelFileSystem } from "../config/fields.js";
import { formatBytes, MiB } from "../config/units.js";
import { ExitCode, LauncherError } from "../exitCodes.js";
import type { BaseFacts, BaseFile, DiskFacts, DiskPlan, ImageReferences, RecordedBase } from "../plan/disk.js";
import { digestSource, IDENTITY_NAME, OVERLAY_NAME, sameFile, SETTLE_MS } from "../plan/disk.js";
import { dirname, join } from "node:path";

interface ImageInfo extends ImageReferences {
  virtualSize: number;
  format: string;
}

/** qemu-img answers in well under a second; a minute means it is stuck (a file that never ends). */
const QEMU_IMG_TIMEOUT_MS = 60_000;

/**
 * `qemu-img info` of one image, without opening its backing chain. `format` set: open it as
 * that format only (never guessed from the content). Failures are host problems (exit 3).
 */
async function imageInfo(path: string, variable: string, format?: string): Promise<ImageInfo> {
  // --force-share: the overlay may be open by a QEMU that is still shutting down.
  const result = await execa("qemu-img", ["info", "--force-share", "--output=json", ...(format ? ["-f", format] : []), path], {
    reject: false,
    timeout: QEMU_IMG_TIMEOUT_MS,
  });
  if (result.timedOut) throw new LauncherError(`${variable} ${path}: qemu-img info did not answer within ${QEMU_IMG_TIMEOUT_MS / 1000} s`, ExitCode.Host);
  if (result.exitCode !== 0) {
    const reason = result.stderr.trim().split("\n").pop()?.replace(/^qemu-img: /, "") ?? "unknown error";
    throw new LauncherError(`${variable} ${path} cannot be read as ${format ? `a ${format} image` : "a disk image"}: ${reason}`, ExitCode.Host);
  }
  const info = JSON.parse(result.stdout) as {
    "virtual-size": number;
    format: string;
    "backing-filename"?: string;
    "backing-filename-format"?: string;
    "format-specific"?: { data?: { "data-file"?: string } };
  };
  const dataFile = info["format-specific"]?.data?.["data-file"];
  return {
    virtualSize: info["virtual-size"],
    format: info.format,
    ...(info["backing-filename"] !== undefined && { backingFile: info["backing-filename"] }),
    ...(info["backing-filename-format"] !== undefined && { backingFormat: info["backing-filename-format"] }),
    ...(dataFile !== undefined && { dataFile }),
  };
}

/**
 * What is at `path`: nothing, a regular file, or something the launcher must not read
 * (a folder, a FIFO or a device would hang the hash or qemu-img). `follow`: symlinks are
 * followed (a base image may be one); the overlay's are not (it could point anywhere).
 */
async function fileKind(path: string, follow: boolean): Promise<"missing" | "file" | string> {
  try {
    const stats = follow ? await stat(path) : await lstat(path);
    if (stats.isFile()) return "file";
    if (stats.isDirectory()) return "a folder";
    if (stats.isFIFO()) return "a FIFO";
    if (stats.isBlockDevice()) return "a block device";
    if (stats.isCharacterDevice()) return "a character device";
    if (stats.isSocket()) return "a socket";
    return "a symbolic link";
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") return "missing";
    throw new LauncherError(`${path} cannot be examined: ${(error as Error).message}`, ExitCode.Host);
  }
}

/** Whether anything is at `path` (symbolic links not followed). */
async function exists(path: string): Promise<boolean> {
  return (await fileKind(path, false)) !== "missing";
}

async function requireRegularFile(path: string, label: string, follow: boolean): Promise<boolean> {
  const kind = await fileKind(path, follow);
  if (kind === "missing") return false;
  if (kind !== "file") throw new LauncherError(`${label} ${path} is ${kind}, not a regular file`, ExitCode.Host);
  return true;
}

/**
 * The base's sha256 as `<base>.sha256` ("DIGEST SIZE", written at image build time) says it,
 * when its size matches the file: the size check keeps a digest from describing another image
 * mounted over the same path. Undefined when there is no usable one.
 */
async function sidecarDigest(path: string): Promise<string | undefined> {
  try {
    if ((await fileKind(`${path}.sha256`, true)) !== "file") return undefined;
    const [recorded, size] = (await readFile(`${path}.sha256`, "utf8")).trim().split(/\s+/);
    if (recorded && /^[0-9a-f]{64}$/.test(recorded) && Number(size) === (await stat(path)).size) return recorded;
  } catch {
    // No usable recorded digest.
  }
  return undefined;
}

/** The base file's quick facts, when they can vouch for its content: not modified within {@link SETTLE_MS}. */
async function settledFile(path: string): Promise<BaseFile | undefined> {
  const stats = await stat(path);
  if (Date.now() - stats.mtimeMs < SETTLE_MS) return undefined;
  return { bytes: stats.size, mtimeMs: stats.mtimeMs, ctimeMs: stats.ctimeMs };
}

/**
 * Hashes the base; its facts go with the digest only when they are the same after the read as
 * before it (a file written to meanwhile gets none, and is hashed again next time).
 */
async function hashBase(path: string): Promise<{ sha256: string; file?: BaseFile }> {
  const before = await settledFile(path);
  const sha256 = await fileSha256(path);
  const after = await settledFile(path);
  return { sha256, ...(sameFile(before, after) && { file: before }) };
}

/** A file's sha256, read as a stream. */
export async function fileSha256(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

/** A record read back; anything else (hand-edited, cut short) is treated as no record: the disk is refused. */
function asRecordedBase(value: unknown): RecordedBase | undefined {
  const v = value as Partial<RecordedBase> | null;
  const number = (x: unknown) => typeof x === "number" && Number.isFinite(x);
  const fileOk = v?.file === undefined || (number(v.file.bytes) && number(v.file.mtimeMs) && number(v.file.ctimeMs));
  if (typeof v !== "object" || v === null || !fileOk || !number(v.virtualSize) || typeof v.format !== "string") return undefined;
  if (v.sha256 !== undefined && !(typeof v.sha256 === "string" && /^[0-9a-f]{64}$/.test(v.sha256))) return undefined;
  return v as RecordedBase;
}

/** The record as applyDisk and the completion write it (atomically: through `.creating` and a rename). */
async function writeRecord(path: string, base: RecordedBase): Promise<void> {
  await writeFile(`${path}.creating`, `${JSON.stringify(base, null, 2)}\n`);
  await rename(`${path}.creating`, path);
}

/**
 * Everything a start needs to know of the base, the overlay and its record. The base is hashed
 * only when nothing else can vouch for it (plan/disk.ts digestSource): never for a new disk
 * (`ephemeral`: every start's disk is new), whose record is completed after QEMU started.
 */
export async function readDiskFacts(basePath: string, disksDir: string, options: { ephemeral?: boolean } = {}): Promise<DiskFacts> {
  let base: BaseFacts | undefined;
  let baseReferences: ImageReferences | undefined;
  if (await requireRegularFile(basePath, "BASE_IMAGE", true)) {
    const [info, file, sidecar] = await Promise.all([imageInfo(basePath, "BASE_IMAGE"), settledFile(basePath), sidecarDigest(basePath)]);
    base = { virtualSize: info.virtualSize, format: info.format, ...(file && { file }), ...(sidecar && { sha256: sidecar, digestFrom: "sidecar" as const }) };
    baseReferences = {
      ...(info.backingFile !== undefined && { backingFile: info.backingFile }),
      ...(info.dataFile !== undefined && { dataFile: info.dataFile }),
    };
  }
  const overlayPath = join(disksDir, OVERLAY_NAME);
  const identityPath = join(disksDir, IDENTITY_NAME);
  let overlay: DiskFacts["overlay"];
  if (await requireRegularFile(overlayPath, "the disk", false)) {
    // Always read as qcow2: a disk whose content was made to look like another format is not guessed at.
    const { virtualSize, backingFile, backingFormat, dataFile } = await imageInfo(overlayPath, "the disk", "qcow2");
    let recorded: RecordedBase | undefined;
    try {
      if (await requireRegularFile(identityPath, "the disk's base record", false)) {
        recorded = asRecordedBase(JSON.parse(await readFile(identityPath, "utf8")));
      }
    } catch (error) {
      if (error instanceof LauncherError) throw error;
      recorded = undefined;
    }
    overlay = {
      virtualSize,
      base: recorded,
      ...(backingFile !== undefined && { backingFile }),
      ...(backingFormat !== undefined && { backingFormat }),
      ...(dataFile !== undefined && { dataFile }),
    };
  }
  if (base) {
    const source = digestSource({ sidecar: base.sha256 !== undefined, file: base.file, record: overlay?.base, newDisk: !overlay || options.ephemeral === true });
    if (source === "record") base = { ...base, sha256: overlay!.base!.sha256!, digestFrom: "record" };
    if (source === "now") base = await identifyBase(basePath, base);
  }
  const references = baseReferences && { baseReferences };
  if (overlay) return { base, ...references, overlay };
  return {
    base,
    ...references,
    overlay,
    identityWithoutOverlay: await exists(identityPath),
    interruptedCreate: await exists(join(disksDir, `${OVERLAY_NAME}.creating`)),
  };
}

/** The base hashed now (its facts taken again, as they were during the read). */
export async function identifyBase(basePath: string, base: BaseFacts): Promise<BaseFacts> {
  const { file: _before, ...rest } = base;
  const { sha256, file } = await hashBase(basePath);
  return { ...rest, sha256, digestFrom: "hashed", ...(file && { file }) };
}

/**
 * A new disk's record completed once QEMU runs: the base is hashed, and its digest recorded
 * only if the file is still the one the disk was created over (same quick facts before and
 * after the read). Returns a line for the log; never throws (the guest runs on either way, and
 * the next start decides on what the record says).
 */
export async function completeBaseRecord(plan: Pick<DiskPlan, "basePath" | "identityPath" | "base">): Promise<string> {
  const started = Date.now();
  try {
    const { sha256, file } = await hashBase(plan.basePath);
    if (!sameFile(file, plan.base.file)) {
      return `warning: BASE_IMAGE ${plan.basePath} changed since the disk was created over it (size, modification or change time), so its digest was not recorded; the next start refuses the disk unless the base is as it was`;
    }
    await writeRecord(plan.identityPath, { ...plan.base, sha256 });
    return `base image identified after QEMU started: sha256 ${sha256.slice(0, 12)} in ${Date.now() - started} ms, recorded in ${plan.identityPath}`;
  } catch (error) {
    return `warning: the base image could not be hashed to complete ${plan.identityPath} (${(error as Error).message}); the next start tries again`;
  }
}

/** Fails with exit code 3 when the disks folder cannot be written. */
export async function ensureWritableDir(dir: string, variable: string): Promise<void> {
  try {
    await mkdir(dir, { recursive: true });
    await access(dir, constants.W_OK);
    // The configuration refuses /proc, /sys and /dev; a symlink must not lead there either.
    if (inKernelFileSystem(await realpath(dir))) throw new Error("it leads into /proc, /sys or /dev");
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
 * the guest (supervise/diskFull.ts resumes it at this much free). Refusing at start is the clear failure.
 */
export const MIN_FREE_BYTES = 256 * MiB;

/** Bytes an unprivileged writer can still use in the file system holding `dir`. */
export async function freeBytes(dir: string): Promise<number> {
  const fs = await statfs(dir);
  return fs.bavail * fs.bsize;
}

/** Fails with exit code 3 when the disks folder has less than {@link MIN_FREE_BYTES} free. */
export async function ensureFreeSpace(dir: string, variable: string, minBytes = MIN_FREE_BYTES): Promise<void> {
  const free = await freeBytes(dir);
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
    // -f qcow2: the overlay is always qcow2; its format is never guessed from the content.
    const result = await execa("qemu-img", ["check", "-f", "qcow2", ...(repair ? ["-r", "leaks"] : []), "--output=json", path], { reject: false });
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
  if (plan.action !== "create") {
    if (plan.action === "grow") {
      // qemu-img resize only changes the virtual size in the header; the data stays untouched.
      try {
        await execa("qemu-img", ["resize", "-f", "qcow2", plan.overlayPath, String(plan.sizeBytes)]);
      } catch (error) {
        throw new LauncherError(`could not grow the disk ${plan.overlayPath}: ${toolMessage(error)}`, ExitCode.Host);
      }
    }
    if (plan.refreshRecord) {
      // A faster next start only: the record as it was still identifies the base, so a failure here is no reason to stop.
      await writeRecord(plan.identityPath, plan.base).catch(() => rm(`${plan.identityPath}.creating`, { force: true }));
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
    // Identity first: a kill between the renames leaves the identity and disk.qcow2.creating,
    // which the next start recognises as a cut-short creation (see DiskFacts.interruptedCreate).
    await writeRecord(plan.identityPath, plan.base);
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
