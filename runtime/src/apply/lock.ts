/**
 * One DevMachine per disks folder. Two VMs writing one qcow2 overlay corrupt it, and a
 * second launcher could change the folder (EPHEMERAL re-creates the disk, STORAGE grows it)
 * before its QEMU ever reached QEMU's own image lock. So the launcher locks the folder
 * itself, before anything in it changes, and holds the lock until it exits.
 *
 * The lock is flock(2) on the folder's own descriptor: nothing is written (no lock file to
 * go stale), and the kernel drops it when the launcher dies, even under SIGKILL, so a killed
 * container never blocks the next start. Node has no flock, so util-linux's `flock` takes it
 * on a descriptor it inherits from us; the lock belongs to that open file description, which
 * stays open here (and only here: Node opens with O_CLOEXEC, so QEMU does not inherit it).
 */
import { spawnSync } from "node:child_process";
import { closeSync, openSync } from "node:fs";
import { ExitCode, LauncherError } from "../exitCodes.js";

/** flock's exit code when the lock is held elsewhere (`--conflict-exit-code`). */
const CONFLICT = 75;

/** Descriptors kept open for the life of the process: closing one would drop its lock. */
const held = new Map<string, number>();

/**
 * Takes the disks folder's lock or fails with ExitCode.Busy. Where flock cannot work at all
 * (a file system without it), returns a warning instead: QEMU's own image locking still
 * refuses a second writer of the disk.
 */
export function lockDisksDir(dir: string, variable: string): { warning?: string } {
  if (held.has(dir)) return {};
  const fd = openSync(dir, "r");
  const result = spawnSync("flock", ["--nonblock", "--conflict-exit-code", String(CONFLICT), "3"], {
    stdio: ["ignore", "ignore", "pipe", fd],
    encoding: "utf8",
  });
  if (result.status === 0) {
    held.set(dir, fd);
    return {};
  }
  closeSync(fd);
  if (result.status === CONFLICT) {
    throw new LauncherError(
      `${variable} ${dir} is in use by another running DevMachine: its lock (flock on the folder) is held, so this container changed nothing. ` +
        "Two VMs on one disk would corrupt it. Stop the other container first (docker ps --filter volume=VOLUME finds it), or give this one a volume of its own",
      ExitCode.Busy,
    );
  }
  const why = result.error?.message ?? (result.stderr.trim() || `flock exited ${result.status}`);
  return { warning: `could not lock ${variable} ${dir} (${why}); relying on QEMU's own image locking to refuse a second VM on this disk` };
}

/** Drops the lock (tests; the launcher keeps it until it exits). */
export function unlockDisksDir(dir: string): void {
  const fd = held.get(dir);
  if (fd === undefined) return;
  held.delete(dir);
  closeSync(fd);
}
