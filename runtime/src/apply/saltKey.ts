/**
 * The salt key of the password hashes (config/passwordCrypt.ts), kept in the disks folder
 * beside the disk it belongs to: same disk, same salts, same instance-id. A new volume gets a
 * new key, and a new disk anyway. Read during planning (the dry run too, which never writes
 * it: without a stored key its salts are random), written just before the seed.
 */
import { lstat, readFile, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { newSaltKey } from "../config/passwordCrypt.js";
import { ExitCode, LauncherError } from "../exitCodes.js";

export const SALT_KEY_NAME = "password-salt.key";

export interface SaltKey {
  key: string;
  /** False: made up for this start, to be stored by storeSaltKey before the seed is written. */
  stored: boolean;
}

export async function readSaltKey(disksDir: string): Promise<SaltKey> {
  const path = join(disksDir, SALT_KEY_NAME);
  try {
    // Only a regular file is read: a FIFO or device there would block the read.
    if (!(await lstat(path)).isFile()) throw new LauncherError(`${path} is not a regular file: remove it (the launcher writes it)`, ExitCode.Host);
  } catch (error) {
    if (error instanceof LauncherError) throw error;
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") return { key: newSaltKey(), stored: false };
    throw new LauncherError(`${path} cannot be read: ${(error as Error).message}`, ExitCode.Host);
  }
  const key = (await readFile(path, "utf8")).trim();
  if (!/^[0-9a-f]{64}$/.test(key)) throw new LauncherError(`${path} is not a salt key the launcher wrote: remove it (a new one is made)`, ExitCode.Host);
  return { key, stored: true };
}

export async function storeSaltKey(disksDir: string, salt: SaltKey): Promise<void> {
  if (salt.stored) return;
  const path = join(disksDir, SALT_KEY_NAME);
  await writeFile(`${path}.creating`, `${salt.key}\n`, { mode: 0o600 });
  await rename(`${path}.creating`, path);
}
