/**
 * The architecture's side of the world: what the base image says it is (read-only, also
 * used by --dry-run), and the UEFI variable store a UEFI guest writes.
 *
 * The base image says it in one of two ways:
 *   1. `<base>.arch` ("ARCH SIZE"), written by the machine images' Dockerfile; the size
 *      keeps it from describing another image mounted over the same path (as `.sha256`).
 *   2. The boot loader on the disk's EFI system partition: UEFI boots the removable-media
 *      path EFI/BOOT/BOOT<arch>.EFI, so its name tells the architecture (BOOTAA64.EFI,
 *      BOOTX64.EFI; GRUB and shim beside it are named the same way). That covers the
 *      cloud images users mount. Read with `qemu-img dd`, so qcow2 and raw both work.
 * A disk with neither (an MBR disk that boots through BIOS) says nothing: ARCH decides,
 * else x86_64.
 */
import { copyFile, mkdtemp, readFile, rename, rm, stat } from "node:fs/promises";
import os from "node:os";
import { join } from "node:path";
import { execa } from "execa";
import { normaliseArch, type Arch, type ArchFacts, type FirmwarePlan } from "../plan/arch.js";

export async function readArchFacts(basePath: string): Promise<ArchFacts> {
  const host = os.machine();
  // Only a regular file is read: a FIFO or device would block the probe (readDiskFacts refuses
  // them next, with the clear message).
  if (!(await stat(basePath).then((facts) => facts.isFile(), () => false))) return { host };
  const detected = (await fromMetadata(basePath)) ?? (await fromEfiPartition(basePath).catch(() => undefined));
  return detected ? { host, detected } : { host };
}

async function fromMetadata(basePath: string): Promise<ArchFacts["detected"]> {
  try {
    const [name, size] = (await readFile(`${basePath}.arch`, "utf8")).trim().split(/\s+/);
    const arch = normaliseArch(name ?? "");
    if (arch && Number(size) === (await stat(basePath)).size) return { arch, source: `${basePath}.arch` };
  } catch {
    // No metadata file (a mounted image): look at the disk itself.
  }
  return undefined;
}

/** The EFI system partition's type GUID as stored on disk (mixed-endian). */
const ESP_TYPE = Buffer.from("28732ac11ff8d211ba4b00a0c93ec93b", "hex");
/** More than any real ESP holds before its boot loaders (Debian's cloud images: 124 MiB). */
const MAX_ESP_BYTES = 256 * 1024 * 1024;

/**
 * FAT short-name directory entries (8+3 characters, space padded) of the removable-path
 * boot loader and its usual neighbours. Every FAT file has one, whatever its long name.
 */
const LOADER_NAMES: Record<Arch, string[]> = {
  aarch64: ["BOOTAA64EFI", "GRUBAA64EFI", "SHIMAA64EFI"],
  x86_64: ["BOOTX64 EFI", "GRUBX64 EFI", "SHIMX64 EFI"],
};

async function fromEfiPartition(basePath: string): Promise<ArchFacts["detected"]> {
  const dir = await mkdtemp(join(os.tmpdir(), "devmachines-arch-"));
  try {
    const { stdout } = await execa("qemu-img", ["info", "--force-share", "--output=json", basePath]);
    const format = (JSON.parse(stdout) as { format: string }).format;
    const read = async (offset: number, length: number): Promise<Buffer> => {
      // qemu-img dd counts in blocks of bs: the largest power of two (up to 1 MiB) that
      // divides the offset, so a MiB-aligned partition is read in MiB blocks.
      let bs = 512;
      while (bs < 1024 * 1024 && offset % (bs * 2) === 0 && length % (bs * 2) === 0) bs *= 2;
      const out = join(dir, "read.bin");
      await rm(out, { force: true });
      await execa("qemu-img", ["dd", "-U", "-f", format, "-O", "raw", `bs=${bs}`, `skip=${offset / bs}`, `count=${Math.ceil(length / bs)}`, `if=${basePath}`, `of=${out}`]);
      return readFile(out);
    };
    const esp = findEsp(await read(0, 1024 * 1024));
    if (!esp) return undefined;
    const found = loaderArch(await read(esp.offset, Math.min(esp.length, MAX_ESP_BYTES)));
    return found ? { arch: found.arch, source: `${found.name} on the disk's EFI system partition` } : undefined;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The EFI system partition's byte range from a GPT disk's first MiB; undefined without one. */
export function findEsp(head: Buffer): { offset: number; length: number } | undefined {
  const header = 512;
  if (head.length < 1024 || head.toString("latin1", header, header + 8) !== "EFI PART") return undefined;
  const entriesLba = Number(head.readBigUInt64LE(header + 72));
  const count = head.readUInt32LE(header + 80);
  const size = head.readUInt32LE(header + 84);
  for (let i = 0; i < count; i++) {
    const at = entriesLba * 512 + i * size;
    if (size < 128 || at + 48 > head.length) break;
    if (!head.subarray(at, at + 16).equals(ESP_TYPE)) continue;
    const first = Number(head.readBigUInt64LE(at + 32));
    const last = Number(head.readBigUInt64LE(at + 40));
    if (last >= first) return { offset: first * 512, length: (last - first + 1) * 512 };
  }
  return undefined;
}

/** The one architecture whose boot loader names appear in a FAT file system's bytes. */
export function loaderArch(fat: Buffer): { arch: Arch; name: string } | undefined {
  const found: { arch: Arch; name: string }[] = [];
  for (const [arch, names] of Object.entries(LOADER_NAMES) as [Arch, string[]][]) {
    const name = names.find((short) => fat.includes(Buffer.from(short, "latin1")));
    if (name) found.push({ arch, name: `${name.slice(0, 8).trim()}.${name.slice(8)}` });
  }
  // Boot loaders of two architectures on one disk: it does not say which to run.
  return found.length === 1 ? found[0] : undefined;
}

/**
 * A new machine's UEFI variable store: a copy of the firmware's empty one, written whole
 * (temp file + rename) so a cut-short copy never passes for a store. A fresh one for an
 * ephemeral machine, whose disk is fresh too; otherwise the existing one is kept.
 */
export async function ensureEfiVars(firmware: FirmwarePlan, fresh: boolean): Promise<"created" | "kept"> {
  if (!fresh && (await stat(firmware.vars).catch(() => undefined))) return "kept";
  const temp = `${firmware.vars}.${process.pid}.tmp`;
  await copyFile(firmware.varsTemplate, temp);
  await rename(temp, firmware.vars);
  return "created";
}
