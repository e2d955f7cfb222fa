import assert from "node:assert/strict";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { execa } from "execa";
import { lockDisksDir, unlockDisksDir } from "../src/apply/lock.js";
import { ExitCode, LauncherError } from "../src/exitCodes.js";

const work = await mkdtemp(join(tmpdir(), "dm-lock-"));
after(() => rm(work, { recursive: true, force: true }));

// The holders below run with --no-fork: flock becomes the sleep, so killing it frees the lock
// at once (a forked sleep would keep the lock, and the test waiting, until it ends).
/** Whether another process could take the folder's lock right now. */
const othersCanLock = async (dir: string) => (await execa("flock", ["--nonblock", dir, "true"], { reject: false })).exitCode === 0;

test("the disks folder's lock is held until released, writes nothing, and refuses a second holder with exit 5", async () => {
  const dir = join(work, "disks");
  await execa("mkdir", ["-p", dir]);
  assert.deepEqual(lockDisksDir(dir, "DISKS_DIR"), {});
  assert.equal(await othersCanLock(dir), false, "another process is refused while we hold it");
  assert.deepEqual(await readdir(dir), [], "no lock file");
  unlockDisksDir(dir);
  assert.equal(await othersCanLock(dir), true, "released");

  const holder = execa("flock", ["--nonblock", "--no-fork", dir, "sleep", "30"], { reject: false });
  try {
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.throws(
      () => lockDisksDir(dir, "DISKS_DIR"),
      (error: unknown) => error instanceof LauncherError && error.exitCode === ExitCode.Busy && /in use by another running DevMachine/.test(error.message),
    );
  } finally {
    holder.kill();
    await holder;
  }
});

test("a lock whose holder dies is free again: a killed container never blocks the next start", async () => {
  const dir = join(work, "killed");
  await execa("mkdir", ["-p", dir]);
  const holder = execa("flock", ["--nonblock", "--no-fork", dir, "sleep", "30"], { reject: false });
  await new Promise((resolve) => setTimeout(resolve, 300));
  assert.equal(await othersCanLock(dir), false);
  holder.kill("SIGKILL");
  await holder;
  assert.deepEqual(lockDisksDir(dir, "DISKS_DIR"), {});
  unlockDisksDir(dir);
});
