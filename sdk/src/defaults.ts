/**
 * The default DevMachine: what the root `Pulumi.yaml` stack deploys and what
 * `npm run up` starts without Pulumi, from the same settings.
 */
import { readdirSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import type { MachineSettingsArgs } from "./args.js";
import { DEFAULTS } from "./spec.js";

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
