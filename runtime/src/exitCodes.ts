/**
 * Exit codes of the launcher, and so of a DevMachine container.
 * Documented in the README; tests and the Pulumi side rely on them.
 */
export const ExitCode = {
  /** The guest powered off: by itself, or cleanly after SIGTERM/SIGINT. */
  Ok: 0,
  /** Something unexpected failed (QEMU crashed, a tool broke). */
  Failure: 1,
  /** The configuration (environment) is invalid; nothing was created or changed. */
  Config: 2,
  /** The host/container lacks something (base image, /dev/kvm, /dev/net/tun, NET_ADMIN, writable disks folder). */
  Host: 3,
  /** The guest did not power off within the grace period after SIGTERM and was killed. */
  Killed: 4,
  /** The disks folder is in use by another running DevMachine (its lock is held); nothing was changed. */
  Busy: 5,
  /**
   * The disk in the disks folder cannot be used safely as it is (its overlay was deleted, or it
   * was made over another or an unknown base image); nothing was changed.
   */
  Disk: 6,
} as const;

export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode];

/** An error that ends the launcher with a chosen exit code and a message meant for the user. */
export class LauncherError extends Error {
  constructor(
    message: string,
    readonly exitCode: ExitCodeValue,
  ) {
    super(message);
    this.name = "LauncherError";
  }
}
