import assert from "node:assert/strict";
import { mkdtemp, open, readFile, readdir, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { execa } from "execa";
import { applyDisk, checkOverlay, ensureFreeSpace, readDiskFacts } from "../src/apply/disk.js";
import { planDisk, type DiskFacts } from "../src/plan/disk.js";
import { ExitCode, LauncherError } from "../src/exitCodes.js";

const GiB = 1024 ** 3;
const base = { sha256: "a".repeat(64), virtualSize: 2 * GiB, format: "qcow2" };
const options = { basePath: "/images/base.qcow2", disksDir: "/disks", storageBytes: 20 * GiB, ephemeral: false };

function refused(facts: DiskFacts, overrides: Partial<typeof options>, code: number, message: RegExp) {
  assert.throws(
    () => planDisk({ ...options, ...overrides }, facts),
    (error: unknown) => error instanceof LauncherError && error.exitCode === code && message.test(error.message),
  );
}

test("disk decisions: fresh, reuse, grow, ephemeral", () => {
  assert.equal(planDisk(options, { base, overlay: undefined }).action, "create");
  const reuse = planDisk(options, { base, overlay: { virtualSize: 20 * GiB, base } });
  assert.equal(reuse.action, "reuse");
  assert.equal(reuse.overlayPath, "/disks/disk.qcow2");
  const grow = planDisk({ ...options, storageBytes: 30 * GiB }, { base, overlay: { virtualSize: 20 * GiB, base } });
  assert.equal(grow.action, "grow");
  assert.equal(grow.sizeBytes, 30 * GiB);
  assert.equal(grow.previousSizeBytes, 20 * GiB);
  assert.equal(planDisk({ ...options, ephemeral: true }, { base, overlay: { virtualSize: 20 * GiB, base } }).action, "create");
});

test("disk refusals: no base, shrink, other base, unknown base, smaller than the base", () => {
  refused({ base: undefined, overlay: undefined }, {}, ExitCode.Host, /no base image at \/images\/base.qcow2/);
  refused({ base, overlay: { virtualSize: 20 * GiB, base } }, { storageBytes: 10 * GiB }, ExitCode.Config, /disks never shrink/);
  refused({ base, overlay: { virtualSize: 20 * GiB, base: { ...base, sha256: "b".repeat(64) } } }, {}, ExitCode.Disk, /created over another base image/);
  refused({ base, overlay: { virtualSize: 20 * GiB, base: undefined } }, {}, ExitCode.Disk, /base image is unknown/);
  refused({ base, overlay: undefined }, { storageBytes: GiB }, ExitCode.Config, /smaller than the base image/);
});

test("a deleted disk is refused, never replaced by a blank one; a cut-short creation is simply redone", () => {
  refused({ base, overlay: undefined, identityWithoutOverlay: true }, {}, ExitCode.Disk, /disk\.qcow2 is missing.*wrong volume.*remove \/disks\/disk\.base\.json/);
  const redo = planDisk(options, { base, overlay: undefined, identityWithoutOverlay: true, interruptedCreate: true });
  assert.equal(redo.action, "create");
  assert.match(redo.reason, /cut short/);
  assert.equal(planDisk({ ...options, ephemeral: true }, { base, overlay: undefined, identityWithoutOverlay: true }).action, "create");
});

// The same decisions carried out with the real qemu-img on real files.
const work = await mkdtemp(join(tmpdir(), "dm-disk-"));
after(() => rm(work, { recursive: true, force: true }));

async function size(path: string): Promise<number> {
  const { stdout } = await execa("qemu-img", ["info", "--force-share", "--output=json", path]);
  return (JSON.parse(stdout) as { "virtual-size": number })["virtual-size"];
}

test("applied for real: create over a base, reuse, grow, then a different base is refused", async () => {
  const basePath = join(work, "base.qcow2");
  await execa("qemu-img", ["create", "-q", "-f", "qcow2", basePath, "64M"]);
  const disksDir = join(work, "disks");
  const opts = { basePath, disksDir, storageBytes: 256 * 1024 ** 2, ephemeral: false };
  await execa("mkdir", ["-p", disksDir]);

  const first = planDisk(opts, await readDiskFacts(basePath, disksDir));
  assert.equal(first.action, "create");
  await applyDisk(first);
  assert.equal(await size(first.overlayPath), 256 * 1024 ** 2);
  const { stdout } = await execa("qemu-img", ["info", "--output=json", first.overlayPath]);
  assert.equal((JSON.parse(stdout) as { "backing-filename": string })["backing-filename"], basePath);
  assert.deepEqual(JSON.parse(await readFile(first.identityPath, "utf8")), first.base);
  assert.deepEqual((await readdir(disksDir)).sort(), ["disk.base.json", "disk.qcow2"], "no temporary files left");

  assert.equal(planDisk(opts, await readDiskFacts(basePath, disksDir)).action, "reuse");
  const grow = planDisk({ ...opts, storageBytes: 512 * 1024 ** 2 }, await readDiskFacts(basePath, disksDir));
  assert.equal(grow.action, "grow");
  await applyDisk(grow);
  assert.equal(await size(grow.overlayPath), 512 * 1024 ** 2);

  // A recorded digest beside the base (as the machine images ship it) identifies it, but only
  // while its size matches: a digest left behind by another image at that path is ignored.
  const baseSize = (await stat(basePath)).size;
  await writeFile(`${basePath}.sha256`, `${"c".repeat(64)} ${baseSize + 1}\n`);
  assert.equal(planDisk({ ...opts, storageBytes: 512 * 1024 ** 2 }, await readDiskFacts(basePath, disksDir)).action, "reuse", "a digest for another size is ignored");
  await writeFile(`${basePath}.sha256`, `${"c".repeat(64)} ${baseSize}\n`);
  const facts = await readDiskFacts(basePath, disksDir);
  assert.equal(facts.base?.sha256, "c".repeat(64));
  assert.throws(() => planDisk({ ...opts, storageBytes: 512 * 1024 ** 2 }, facts), /another base image/);
});

test("a failed create (the base vanished) leaves no half-written disk", async () => {
  const disksDir = join(work, "failed");
  await execa("mkdir", ["-p", disksDir]);
  const plan = planDisk(
    { basePath: join(work, "missing-base.qcow2"), disksDir, storageBytes: 256 * 1024 ** 2, ephemeral: false },
    { base: { sha256: "d".repeat(64), virtualSize: 64 * 1024 ** 2, format: "qcow2" }, overlay: undefined },
  );
  await assert.rejects(applyDisk(plan));
  assert.deepEqual(await readdir(disksDir), []);
});

test("on real files: a deleted overlay is refused, a leftover .creating is redone, a full folder is refused", async () => {
  const basePath = join(work, "base-deleted.qcow2");
  await execa("qemu-img", ["create", "-q", "-f", "qcow2", basePath, "64M"]);
  const disksDir = join(work, "deleted");
  await execa("mkdir", ["-p", disksDir]);
  const opts = { basePath, disksDir, storageBytes: 256 * 1024 ** 2, ephemeral: false };
  await applyDisk(planDisk(opts, await readDiskFacts(basePath, disksDir)));
  await rm(join(disksDir, "disk.qcow2"));
  const facts = await readDiskFacts(basePath, disksDir);
  assert.equal(facts.identityWithoutOverlay, true);
  assert.throws(() => planDisk(opts, facts), (error: unknown) => error instanceof LauncherError && error.exitCode === ExitCode.Disk);
  assert.deepEqual(await readdir(disksDir), ["disk.base.json"], "the refusal changed nothing");

  // A kill between the identity's rename and the overlay's leaves the temporary overlay behind.
  await writeFile(join(disksDir, "disk.qcow2.creating"), "half");
  const redo = planDisk(opts, await readDiskFacts(basePath, disksDir));
  assert.equal(redo.action, "create");
  await applyDisk(redo);
  assert.deepEqual((await readdir(disksDir)).sort(), ["disk.base.json", "disk.qcow2"]);

  await ensureFreeSpace(disksDir, "DISKS_DIR", 1);
  await assert.rejects(
    ensureFreeSpace(disksDir, "DISKS_DIR", Number.MAX_SAFE_INTEGER),
    (error: unknown) => error instanceof LauncherError && error.exitCode === ExitCode.Host && /DISKS_DIR .* is full: .* free/.test(error.message),
  );
});

/** Sets one cluster's 16-bit refcount in a fresh qcow2 (its header's first refcount block). */
async function setRefcount(path: string, cluster: number, refcount: number): Promise<void> {
  const file = await open(path, "r+");
  try {
    const header = Buffer.alloc(104);
    await file.read(header, 0, 104, 0);
    const table = Buffer.alloc(8);
    await file.read(table, 0, 8, Number(header.readBigUInt64BE(48)));
    const block = Number(table.readBigUInt64BE(0));
    const entry = Buffer.alloc(2);
    entry.writeUInt16BE(refcount);
    await file.write(entry, 0, 2, block + 2 * cluster);
  } finally {
    await file.close();
  }
}

test("an overlay is checked before it boots: leaks (an unclean stop) are repaired, corruption is refused with exit 6", async () => {
  const path = join(work, "checked.qcow2");
  await execa("qemu-img", ["create", "-q", "-f", "qcow2", path, "64M"]);
  assert.equal(await checkOverlay(path), undefined, "a clean image: nothing to say");

  // Allocated, referenced by nothing: a leak (within the file, as a killed QEMU leaves it).
  await execa("truncate", ["-s", "1M", path]);
  await setRefcount(path, 10, 1);
  assert.match((await checkOverlay(path)) ?? "", /repaired 1 leaked clusters/);
  assert.equal((await execa("qemu-img", ["check", path], { reject: false })).exitCode, 0, "repaired for good");

  await setRefcount(path, 3, 0); // the L1 table's own cluster marked free: corruption
  await assert.rejects(
    checkOverlay(path),
    (error: unknown) => error instanceof LauncherError && error.exitCode === ExitCode.Disk && /is corrupt: qemu-img check found \d+ corrupted clusters/.test(error.message),
  );
});
