/**
 * The component's defaults and fixed places, the one module that writes them down, and the
 * default DevMachine built from them: what the root `Pulumi.yaml` stack deploys and what
 * `npm run up` starts without Pulumi, from the same settings.
 *
 * What the launcher has a default for itself (network, accel, where disks and
 * user data live, the guest's SSH port) is taken from the runtime's `DEFAULTS`, never
 * repeated; CPU, MEMORY, STORAGE and USER have no runtime default (the container requires
 * them), so the component's are written here.
 */
import { readdirSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { DEFAULTS as RUNTIME } from "@devmachines/runtime/config";
import type { Accel, MachineSettingsArgs, NetworkMode, RestartPolicy } from "./args.js";

export const DEFAULT_IMAGE = "devmachines/debian:13";
/** The default image per `arch`: the Debian 13 machine image built for it (`npm run images -- --arch ...`). */
export const DEFAULT_IMAGES = { x86_64: DEFAULT_IMAGE, aarch64: "devmachines/debian-arm64:13" } as const;
/** Where the image keeps the VM's disks; the volume is mounted here (the runtime's DISKS_DIR default). */
export const DISKS_DIR: string = RUNTIME.disksDir;
/** Where the component uploads secrets; the launcher reads them through *_FILE variables. */
export const SECRETS_DIR = "/run/secrets/devmachines";
/** The launcher reads extra user data from here when USER_DATA is not set (the runtime's default). */
export const USER_DATA_PATH: string = RUNTIME.userDataFile;
/** The guest's SSH port: the container port NAT publishes, and the port BRIDGE reaches the VM at. */
export const GUEST_SSH_PORT: number = RUNTIME.sshPort;
export const LABEL_PREFIX = "dev.devmachines";
/** The upstream project's label: its Ansible inventory (devmachines.core) finds machines by it. */
export const UPSTREAM_LABEL = "tech.utkin.devmachines.runtime";
/** The console server's container port (`CONSOLE_PORT`): noVNC's customary port, clear of the guest's forwards. */
export const CONSOLE_CONTAINER_PORT = 6080;

/** The component's defaults for the arguments a user leaves out. */
export const DEFAULTS = {
  cpu: 2,
  memory: "2G",
  storage: "20G",
  user: "dev",
  network: RUNTIME.network as NetworkMode,
  accel: RUNTIME.accel as Accel,
  restart: "unless-stopped" as RestartPolicy,
  /**
   * Longer than the runtime's own 6 s (which fits Docker's default 10 s stop timeout): the
   * component sets the container's stop timeout itself, to this plus stopMarginSeconds.
   */
  graceSeconds: 60,
  /** Docker's stop timeout beyond the guest's grace period: the launcher needs a moment after the kill. */
  stopMarginSeconds: 30,
  readyTimeoutSeconds: 600,
  sshHost: "127.0.0.1",
} as const;

/** The default machine's name (container `devmachine`, volume `devmachine-disk`). */
export const DEFAULT_MACHINE_NAME = "devmachine";

/** The component's `DEFAULTS` (2 vCPU, 2 GiB, 20 GiB disk, user `dev`), spelled out, plus SSH on 127.0.0.1:2222. */
export function defaultMachineSettings(): MachineSettingsArgs {
  return { cpu: DEFAULTS.cpu, memory: DEFAULTS.memory, storage: DEFAULTS.storage, user: DEFAULTS.user, sshPort: 2222, sshHostIp: "127.0.0.1" };
}

/** The public keys in `~/.ssh/*.pub` (so the default machine lets its owner in), or an empty list. */
export function localSshKeys(sshDir = join(homedir(), ".ssh")): string[] {
  let files: string[];
  try {
    files = readdirSync(sshDir).filter((file) => file.endsWith(".pub")).sort();
  } catch {
    return [];
  }
  return files
    .map((file) => readFileSync(join(sshDir, file), "utf8").trim())
    .filter((key) => /^(ssh-|ecdsa-|sk-)/.test(key));
}
