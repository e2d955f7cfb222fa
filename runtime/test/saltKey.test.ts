import assert from "node:assert/strict";
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { execa } from "execa";
import { readSaltKey, SALT_KEY_NAME, storeSaltKey } from "../src/apply/saltKey.js";
import { ExitCode, LauncherError } from "../src/exitCodes.js";

const work = await mkdtemp(join(tmpdir(), "dm-salt-"));
after(() => rm(work, { recursive: true, force: true }));

test("the salt key is made once per disks folder, kept private, and read back the same", async () => {
  const dir = join(work, "disks");
  await mkdir(dir);
  const first = await readSaltKey(dir);
  assert.equal(first.stored, false);
  assert.deepEqual(await readdir(dir), [], "reading never writes (the dry run relies on it)");
  assert.notEqual((await readSaltKey(dir)).key, first.key, "unstored keys are random each time");
  await storeSaltKey(dir, first);
  assert.deepEqual(await readdir(dir), [SALT_KEY_NAME]);
  assert.equal((await stat(join(dir, SALT_KEY_NAME))).mode & 0o777, 0o600);
  assert.deepEqual(await readSaltKey(dir), { key: first.key, stored: true });
  await storeSaltKey(dir, { key: "0".repeat(64), stored: true });
  assert.equal((await readFile(join(dir, SALT_KEY_NAME), "utf8")).trim(), first.key, "a stored key is never replaced");
  assert.equal((await readSaltKey(join(work, "missing"))).stored, false);
});

test("a salt key file that is not one the launcher wrote (garbage, a FIFO, a folder) is refused at once (exit 3)", { timeout: 30_000 }, async () => {
  const refused = (error: unknown) => error instanceof LauncherError && error.exitCode === ExitCode.Host && !/SECRET/.test(error.message);
  for (const [name, make] of [
    ["garbage", (path: string) => writeFile(path, "SECRET not a key\n")],
    ["fifo", (path: string) => execa("mkfifo", [path])],
    ["folder", (path: string) => mkdir(path)],
  ] as const) {
    const dir = join(work, name);
    await mkdir(dir);
    await make(join(dir, SALT_KEY_NAME));
    await assert.rejects(readSaltKey(dir), refused, name);
  }
});
