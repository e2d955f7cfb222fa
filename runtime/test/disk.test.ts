import assert from "node:assert/strict";
import { mkdtemp, readFile, readdir, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { execa } from "execa";
import { applyDisk, readDiskFacts } from "../src/apply/disk.js";
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
  refused({ base, overlay: { virtualSize: 20 * GiB, base: { ...base, sha256: "b".repeat(64) } } }, {}, ExitCode.Host, /created over another base image/);
  refused({ base, overlay: { virtualSize: 20 * GiB, base: undefined } }, {}, ExitCode.Host, /base image is unknown/);
  refused({ base, overlay: undefined }, { storageBytes: GiB }, ExitCode.Config, /smaller than the base image/);
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
