import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtemp, open, readFile, readdir, rm, stat, symlink, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { execa } from "execa";
import { applyDisk, checkOverlay, completeBaseRecord, ensureFreeSpace, readDiskFacts } from "../src/apply/disk.js";
import { digestSource, planDisk, type DiskFacts } from "../src/plan/disk.js";
import { ExitCode, LauncherError } from "../src/exitCodes.js";

const GiB = 1024 ** 3;
const base = { sha256: "a".repeat(64), virtualSize: 2 * GiB, format: "qcow2" };
/** What qemu-img reports of an untouched overlay: its base, by path and recorded format. */
const backedByBase = { backingFile: "/images/base.qcow2", backingFormat: "qcow2" };
const options = { basePath: "/images/base.qcow2", disksDir: "/disks", storageBytes: 20 * GiB, ephemeral: false };

function refused(facts: DiskFacts, overrides: Partial<typeof options>, code: number, message: RegExp) {
  assert.throws(
    () => planDisk({ ...options, ...overrides }, facts),
    (error: unknown) => error instanceof LauncherError && error.exitCode === code && message.test(error.message),
  );
}

test("disk decisions: fresh, reuse, grow, ephemeral", () => {
  assert.equal(planDisk(options, { base, overlay: undefined }).action, "create");
  const reuse = planDisk(options, { base, overlay: { virtualSize: 20 * GiB, base, ...backedByBase } });
  assert.equal(reuse.action, "reuse");
  assert.equal(reuse.overlayPath, "/disks/disk.qcow2");
  const grow = planDisk({ ...options, storageBytes: 30 * GiB }, { base, overlay: { virtualSize: 20 * GiB, base, ...backedByBase } });
  assert.equal(grow.action, "grow");
  assert.equal(grow.sizeBytes, 30 * GiB);
  assert.equal(grow.previousSizeBytes, 20 * GiB);
  assert.equal(planDisk({ ...options, ephemeral: true }, { base, overlay: { virtualSize: 20 * GiB, base, ...backedByBase } }).action, "create");
});

test("disk refusals: no base, shrink, other base, unknown base, smaller than the base", () => {
  refused({ base: undefined, overlay: undefined }, {}, ExitCode.Host, /no base image at \/images\/base.qcow2/);
  refused({ base, overlay: { virtualSize: 20 * GiB, base, ...backedByBase } }, { storageBytes: 10 * GiB }, ExitCode.Config, /disks never shrink/);
  refused({ base, overlay: { virtualSize: 20 * GiB, base: { ...base, sha256: "b".repeat(64) }, ...backedByBase } }, {}, ExitCode.Disk, /created over another base image/);
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

// Bad-inputs class 1: a disk must never expose another file of the container to the guest.
const refusedWith = (code: number) => (pattern: RegExp) => (error: unknown) => error instanceof LauncherError && error.exitCode === code && pattern.test(error.message);
const refusedHost = refusedWith(ExitCode.Host);
/** A disk in the disks folder that cannot be used safely as it is: exit 6. */
const refusedDisk = refusedWith(ExitCode.Disk);
const planFor = async (basePath: string, disksDir: string) =>
  planDisk({ basePath, disksDir, storageBytes: 256 * 1024 ** 2, ephemeral: false }, await readDiskFacts(basePath, disksDir));

test("1: a base image with a backing file, an external data file, or a format that refers to files is refused (exit 3)", async () => {
  const dir = join(work, "hostile-bases");
  await execa("mkdir", ["-p", dir]);
  const secret = join(dir, "secret");
  await writeFile(secret, "TOP-SECRET-CONTENT".repeat(1000));
  const empty = join(dir, "empty-disks");

  const backed = join(dir, "backed.qcow2");
  await execa("qemu-img", ["create", "-q", "-f", "qcow2", "-F", "raw", "-b", secret, backed, "64M"]);
  await assert.rejects(planFor(backed, empty), refusedHost(/has a backing file .*secret.*refusing it/));

  const withData = join(dir, "data.qcow2");
  await execa("qemu-img", ["create", "-q", "-f", "qcow2", "-o", `data_file=${join(dir, "external.raw")}`, withData, "64M"]);
  await assert.rejects(planFor(withData, empty), refusedHost(/has an external data file/));

  // A "raw" image whose first bytes are a qcow2 header naming a backing file: the content
  // decides what qemu-img sees, so it is refused the same way, never opened as raw over it.
  const disguised = join(dir, "disguised.raw");
  await execa("qemu-img", ["create", "-q", "-f", "raw", disguised, "64M"]);
  await execa("dd", [`if=${backed}`, `of=${disguised}`, "bs=64k", "count=1", "conv=notrunc", "status=none"]);
  await assert.rejects(planFor(disguised, empty), refusedHost(/backing file/));

  // A VMDK descriptor can name any file as its extent: only qcow2 and raw are opened.
  const vmdk = join(dir, "descriptor.vmdk");
  await writeFile(vmdk, `# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType="monolithicFlat"\nRW 128 FLAT "${secret}" 0\nddb.virtualHWVersion = "4"\n`);
  await assert.rejects(planFor(vmdk, empty), refusedHost(/vmdk image; the launcher opens qcow2 or raw only/));

  await assert.rejects(readdir(empty), /ENOENT/, "nothing was created");
});

test("1: an existing disk whose backing path, backing format or content was changed is refused on reuse (exit 6; unreadable as qcow2: exit 3)", async () => {
  const dir = join(work, "tampered");
  await execa("mkdir", ["-p", dir]);
  const basePath = join(dir, "base.qcow2");
  await execa("qemu-img", ["create", "-q", "-f", "qcow2", basePath, "64M"]);
  const secret = join(dir, "secret");
  await writeFile(secret, "x".repeat(65536));

  for (const [name, tamper, pattern] of [
    ["path", ["rebase", "-u", "-f", "qcow2", "-F", "raw", "-b", secret], /backing file .*secret.* \(format raw\).*header was changed/],
    ["format", ["rebase", "-u", "-f", "qcow2", "-F", "raw", "-b", basePath], /\(format raw\), but BASE_IMAGE is .* \(qcow2\)/],
  ] as const) {
    const disksDir = join(dir, name);
    await execa("mkdir", ["-p", disksDir]);
    const plan = await planFor(basePath, disksDir);
    await applyDisk(plan);
    assert.equal((await planFor(basePath, disksDir)).action, "reuse", "untouched, it is reused");
    await execa("qemu-img", [...tamper, plan.overlayPath]);
    await assert.rejects(planFor(basePath, disksDir), refusedDisk(pattern), name);
  }

  // The disk replaced by a raw file: read as qcow2 only, never guessed.
  const disksDir = join(dir, "raw-disk");
  await execa("mkdir", ["-p", disksDir]);
  await applyDisk(await planFor(basePath, disksDir));
  await writeFile(join(disksDir, "disk.qcow2"), Buffer.alloc(1024 * 1024));
  await assert.rejects(planFor(basePath, disksDir), refusedHost(/the disk .* cannot be read as a qcow2 image/));
});

test("1: the plan refuses facts that name another file, whatever qemu-img said (pure)", () => {
  refused({ base, baseReferences: { backingFile: "/run/secrets/x" }, overlay: undefined }, {}, ExitCode.Host, /backing file \("\/run\/secrets\/x"\)/);
  refused({ base, baseReferences: { dataFile: "/etc/shadow" }, overlay: undefined }, {}, ExitCode.Host, /external data file/);
  refused({ base: { ...base, format: "vpc" }, overlay: undefined }, {}, ExitCode.Host, /vpc image/);
  const overlay = { virtualSize: 20 * GiB, base, backingFile: options.basePath, backingFormat: "qcow2" };
  assert.equal(planDisk(options, { base, overlay }).action, "reuse");
  refused({ base, overlay: { ...overlay, dataFile: "/dev/sda" } }, {}, ExitCode.Disk, /external data file/);
  refused({ base, overlay: { ...overlay, backingFile: undefined } }, {}, ExitCode.Disk, /backing file none/);
  refused({ base, overlay: { ...overlay, backingFormat: undefined } }, {}, ExitCode.Disk, /format unset/);
});

test("11: a base image, disk or record that is a folder, FIFO, device or symlinked disk is refused promptly (exit 3)", { timeout: 60_000 }, async () => {
  const dir = join(work, "odd-files");
  const disksDir = join(dir, "disks");
  await execa("mkdir", ["-p", join(dir, "folder"), disksDir]);
  await execa("mkfifo", [join(dir, "fifo")]);
  await symlink("/dev/zero", join(dir, "zero"));
  for (const [path, kind] of [[join(dir, "folder"), /a folder/], [join(dir, "fifo"), /a FIFO/], [join(dir, "zero"), /a character device/]] as const) {
    await assert.rejects(planFor(path, disksDir), refusedHost(new RegExp(`BASE_IMAGE .* is ${kind.source}, not a regular file`)));
  }
  const basePath = join(dir, "base.qcow2");
  await execa("qemu-img", ["create", "-q", "-f", "qcow2", basePath, "64M"]);
  // A FIFO beside the base where its recorded digest would be is ignored (the digest is computed).
  await execa("mkfifo", [`${basePath}.sha256`]);
  assert.equal((await planFor(basePath, disksDir)).action, "create");

  await execa("mkfifo", [join(disksDir, "disk.qcow2")]);
  await assert.rejects(planFor(basePath, disksDir), refusedHost(/the disk .* is a FIFO/));
  await rm(join(disksDir, "disk.qcow2"));
  await symlink(basePath, join(disksDir, "disk.qcow2"));
  await assert.rejects(planFor(basePath, disksDir), refusedHost(/the disk .* is a symbolic link/));
  await rm(join(disksDir, "disk.qcow2"));
  await applyDisk(await planFor(basePath, disksDir));
  await rm(join(disksDir, "disk.base.json"));
  await execa("mkfifo", [join(disksDir, "disk.base.json")]);
  await assert.rejects(planFor(basePath, disksDir), refusedHost(/base record .* is a FIFO/));
});

// The base's identity without reading the base when nothing changed (issue 9, benchmark 4).
const file = { bytes: 1000, mtimeMs: 1_700_000_000_000, ctimeMs: 1_700_000_000_500 };

test("digestSource: a sidecar, then a record over the same file, vouch for the base; a new disk defers; anything else is hashed now (pure)", () => {
  const record = { ...base, file };
  const { sha256: _pending, ...pending } = record;
  assert.equal(digestSource({ sidecar: true, file: undefined, record: undefined, newDisk: false }), "sidecar");
  assert.equal(digestSource({ sidecar: false, file, record: undefined, newDisk: true }), "deferred", "a new disk: hashed after QEMU started");
  assert.equal(digestSource({ sidecar: false, file: undefined, record: undefined, newDisk: true }), "now", "a base written moments ago: its facts vouch for nothing");
  assert.equal(digestSource({ sidecar: false, file, record, newDisk: false }), "record");
  assert.equal(digestSource({ sidecar: false, file, record, newDisk: true }), "deferred", "EPHEMERAL: the record is not used");
  for (const changed of [{ ...file, bytes: 1001 }, { ...file, mtimeMs: file.mtimeMs + 1 }, { ...file, ctimeMs: file.ctimeMs + 1 }]) {
    assert.equal(digestSource({ sidecar: false, file: changed, record, newDisk: false }), "now", JSON.stringify(changed));
  }
  assert.equal(digestSource({ sidecar: false, file, record: base, newDisk: false }), "now", "a record from before the file's facts");
  assert.equal(digestSource({ sidecar: false, file: undefined, record, newDisk: false }), "now", "a base written moments ago");
  assert.equal(digestSource({ sidecar: false, file, record: pending, newDisk: false }), "deferred", "a first start cut short: same file, hashed after QEMU started");
  assert.equal(digestSource({ sidecar: false, file, record: undefined, newDisk: false }), "deferred", "no record: planDisk refuses, no read needed");
});

test("planDisk: a record never completed is trusted only over the same file; a record is refreshed when its file's facts are stale (pure)", () => {
  const { sha256: _pending, ...unhashed } = base;
  const overlay = { virtualSize: 20 * GiB, ...backedByBase };
  const created = planDisk(options, { base: { ...unhashed, file }, overlay: undefined });
  assert.deepEqual([created.action, created.digestFrom, created.completeRecord, created.base], ["create", "pending", true, { ...unhashed, file }]);
  assert.equal(planDisk({ ...options, ephemeral: true }, { base: { ...unhashed, file }, overlay: undefined }).completeRecord, false, "EPHEMERAL: never completed");

  const again = planDisk(options, { base: { ...unhashed, file }, overlay: { ...overlay, base: { ...unhashed, file } } });
  assert.deepEqual([again.action, again.completeRecord, again.refreshRecord], ["reuse", true, false]);
  for (const changed of [{ ...file, ctimeMs: 1 }, undefined]) {
    refused({ base: { ...unhashed, ...(changed && { file: changed }) }, overlay: { ...overlay, base: { ...unhashed, file } } }, {}, ExitCode.Disk,
      /created moments before its first start stopped, before its base image was identified .*has changed since.*remove \/disks\/disk\.qcow2 and \/disks\/disk\.base\.json to start over/);
  }
  const sidecarNow = planDisk(options, { base: { ...base, file, digestFrom: "sidecar" }, overlay: { ...overlay, base: { ...unhashed, file } } });
  assert.deepEqual([sidecarNow.completeRecord, sidecarNow.refreshRecord, sidecarNow.base.sha256], [false, true, base.sha256], "a digest known now completes the record");

  const trusted = planDisk(options, { base: { ...base, file, digestFrom: "record" }, overlay: { ...overlay, base: { ...base, file } } });
  assert.deepEqual([trusted.digestFrom, trusted.refreshRecord, trusted.completeRecord], ["record", false, false]);
  const upgraded = planDisk(options, { base: { ...base, file, digestFrom: "hashed" }, overlay: { ...overlay, base } });
  assert.deepEqual([upgraded.digestFrom, upgraded.refreshRecord, upgraded.base], ["hashed", true, { ...base, file }], "an older record gets the file's facts");
  assert.equal(planDisk(options, { base: { ...base, digestFrom: "hashed" }, overlay: { ...overlay, base } }).refreshRecord, false, "no settled facts to record");
});

test("on real files: later starts read the base only when its file changed; a new disk's base is hashed after the start, and old records still work", async () => {
  const dir = join(work, "quick");
  const disksDir = join(dir, "disks");
  await execa("mkdir", ["-p", disksDir]);
  const basePath = join(dir, "base.raw");
  await writeFile(basePath, Buffer.alloc(4 * 1024 ** 2, 7));
  const digest = createHash("sha256").update(await readFile(basePath)).digest("hex");
  const opts = { basePath, disksDir, storageBytes: 256 * 1024 ** 2, ephemeral: false };
  const record = async () => JSON.parse(await readFile(join(disksDir, "disk.base.json"), "utf8")) as Record<string, unknown> & { file?: { mtimeMs: number } };
  const start = async (ephemeral = false) => {
    const plan = planDisk({ ...opts, ephemeral }, await readDiskFacts(basePath, disksDir, { ephemeral }));
    await applyDisk(plan);
    return plan;
  };

  // Written just now (an mtime ahead of the clock counts as that, whatever the load): its facts
  // cannot vouch for it yet, so a first start hashes it as before.
  const soon = new Date(Date.now() + 3_600_000);
  await utimes(basePath, soon, soon);
  const fresh = await start();
  assert.deepEqual([fresh.digestFrom, fresh.completeRecord, fresh.base.file], ["hashed", false, undefined]);
  assert.equal((await record()).sha256, digest);
  await rm(join(disksDir, "disk.qcow2"));
  await rm(join(disksDir, "disk.base.json"));

  // A settled base: the first start does not read it; the record is completed afterwards.
  const hourAgo = new Date(Date.now() - 3_600_000);
  await utimes(basePath, hourAgo, hourAgo);
  const first = await start();
  assert.deepEqual([first.action, first.digestFrom, first.completeRecord], ["create", "pending", true]);
  assert.equal((await record()).sha256, undefined, "no digest yet");
  assert.ok((await record()).file, "but the base file's facts");
  // Stopped before the hash: the next start knows the base by its facts, and defers again.
  const cutShort = planDisk(opts, await readDiskFacts(basePath, disksDir));
  assert.deepEqual([cutShort.action, cutShort.completeRecord], ["reuse", true]);
  assert.match(await completeBaseRecord(first), /base image identified after QEMU started: sha256 [0-9a-f]{12} in \d+ ms/);
  assert.equal((await record()).sha256, digest);

  // Same size, mtime and ctime: the record's digest is taken as it is, the base not read. A record
  // claiming another digest proves it: it is believed (read, the base would be refused as another).
  const claimed = "e".repeat(64);
  await writeFile(join(disksDir, "disk.base.json"), JSON.stringify({ ...(await record()), sha256: claimed }));
  const quick = await readDiskFacts(basePath, disksDir);
  assert.deepEqual([quick.base?.sha256, quick.base?.digestFrom], [claimed, "record"]);
  await writeFile(join(disksDir, "disk.base.json"), JSON.stringify({ ...(await record()), sha256: digest }));

  // A new mtime, same content: hashed, accepted, and the record takes the new facts.
  const dayAgo = new Date(Date.now() - 86_400_000);
  await utimes(basePath, dayAgo, dayAgo);
  const touched = await start();
  assert.deepEqual([touched.action, touched.digestFrom, touched.refreshRecord], ["reuse", "hashed", true]);
  assert.equal(Math.round((await record()).file?.mtimeMs ?? 0), dayAgo.getTime());
  assert.equal((await readDiskFacts(basePath, disksDir)).base?.digestFrom, "record", "and the start after it reads nothing");

  // A record written before the file's facts existed: hashed as then, accepted, upgraded.
  await writeFile(join(disksDir, "disk.base.json"), JSON.stringify({ sha256: digest, virtualSize: 4 * 1024 ** 2, format: "raw" }));
  const old = await start();
  assert.deepEqual([old.action, old.digestFrom, old.refreshRecord], ["reuse", "hashed", true]);
  assert.deepEqual((await record()).file, old.base.file);
  assert.equal((await readDiskFacts(basePath, disksDir)).base?.digestFrom, "record");

  // Other content of the same size, the mtime put back: ctime tells, the base is hashed and refused.
  const handle = await open(basePath, "r+");
  await handle.write(Buffer.from("other"), 0, 5, 0);
  await handle.close();
  await utimes(basePath, dayAgo, dayAgo);
  await assert.rejects(planFor(basePath, disksDir), refusedDisk(/created over another base image .*Booting it over a different base would corrupt it/));

  // EPHEMERAL: a fresh disk at every start; its base is never read.
  const ephemeral = await start(true);
  assert.deepEqual([ephemeral.action, ephemeral.digestFrom, ephemeral.completeRecord], ["create", "pending", false]);
});

test("on real files: a record never completed is refused once its base file changed; a completion over a changed base records nothing", async () => {
  const dir = join(work, "pending");
  const disksDir = join(dir, "disks");
  await execa("mkdir", ["-p", disksDir]);
  const basePath = join(dir, "base.qcow2");
  await execa("qemu-img", ["create", "-q", "-f", "qcow2", basePath, "64M"]);
  const hourAgo = new Date(Date.now() - 3_600_000);
  await utimes(basePath, hourAgo, hourAgo);
  const plan = await planFor(basePath, disksDir);
  await applyDisk(plan);
  await utimes(basePath, new Date(Date.now() - 7_200_000), new Date(Date.now() - 7_200_000));
  assert.match(await completeBaseRecord(plan), /warning: BASE_IMAGE .* changed since the disk was created over it/);
  assert.equal((JSON.parse(await readFile(plan.identityPath, "utf8")) as { sha256?: string }).sha256, undefined, "nothing recorded");
  const before = (await readdir(disksDir)).sort();
  await assert.rejects(planFor(basePath, disksDir), refusedDisk(/before its base image was identified \(sha256\), and BASE_IMAGE .* has changed since/));
  assert.deepEqual((await readdir(disksDir)).sort(), before, "the refusal changed nothing");
});
