/**
 * What the end-to-end tests share: deciding whether they may run (a Docker
 * Engine and the machine image), SSH into guests with a key made for the run,
 * and cleaning up what they created.
 *
 * Without Docker they skip with a loud reason; with DEVMACHINES_E2E=required
 * (as .ci/run sets) a missing engine or image fails them instead.
 */
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile, chmod } from "node:fs/promises";
import { tmpdir } from "node:os";
import { createServer, type AddressInfo } from "node:net";
import { join } from "node:path";
import { promisify } from "node:util";
import type { TestContext } from "node:test";
import { E2E_REQUIRED, skipLoudly } from "../runtime/test/fixtures/skip.js";
import { throttleProgress, type WaitState } from "../sdk/src/progress.js";
import { docker } from "../sdk/src/run.js";

export { docker, publishedPort } from "../sdk/src/run.js";

const exec = promisify(execFile);

/** The image under test: DEVMACHINES_E2E_IMAGE, else the one `npm run images` built (DEVMACHINES_IMAGE_TAG aware). */
export const MACHINE_IMAGE =
  process.env.DEVMACHINES_E2E_IMAGE ?? `devmachines/debian:${process.env.DEVMACHINES_IMAGE_TAG ?? "13"}`;
export const REQUIRED = E2E_REQUIRED;
/** A guest boot under TCG on two loaded cores can take a few minutes. */
export const BOOT_TIMEOUT_MS = 8 * 60_000;

/** The arm64 machine image (`npm run images -- --arch aarch64`), DEVMACHINES_IMAGE_TAG aware. */
export const ARM_MACHINE_IMAGE =
  process.env.DEVMACHINES_E2E_ARM_IMAGE ?? `devmachines/debian-arm64:${process.env.DEVMACHINES_IMAGE_TAG ?? "13"}`;

const availability = new Map<string, Promise<string | undefined>>();

/** What end-to-end tests lack here ("no ..."), or undefined when they can run. */
function unavailableReason(image: string): Promise<string | undefined> {
  let reason = availability.get(image);
  if (!reason) {
    reason = (async () => {
      try {
        await docker(["info", "--format", "{{.ServerVersion}}"]);
      } catch (error) {
        return `no Docker Engine that answers (${(error as Error).message.split("\n")[0]}); run scripts/host-setup.sh as root`;
      }
      try {
        await docker(["image", "inspect", "--format", "{{.Id}}", image]);
      } catch {
        return `no machine image ${image}; build it with npm run images${image === ARM_MACHINE_IMAGE ? " -- --arch aarch64" : ""}`;
      }
      return undefined;
    })();
    availability.set(image, reason);
  }
  return reason;
}

/**
 * Call first in every end-to-end test: returns false (after a loud skip) when
 * the test cannot run here, and throws when DEVMACHINES_E2E=required.
 * `image` is the machine image the test runs (default: the x86_64 one).
 */
export async function e2eAvailable(t: TestContext, image: string = MACHINE_IMAGE): Promise<boolean> {
  const reason = await unavailableReason(image);
  if (!reason) return true;
  skipLoudly(t, reason, REQUIRED);
  return false;
}

export interface KeyPair {
  dir: string;
  privateKey: string;
  publicKey: string;
}

export async function makeKeyPair(): Promise<KeyPair> {
  const dir = await mkdtemp(join(tmpdir(), "dm-e2e-ssh-"));
  const privateKey = join(dir, "id_ed25519");
  await exec("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "devmachines-e2e", "-f", privateKey]);
  return { dir, privateKey, publicKey: (await readFile(`${privateKey}.pub`, "utf8")).trim() };
}

export interface SshTarget {
  host: string;
  port: number;
  user: string;
  key?: KeyPair;
  /** Log in with this password instead of the key (through SSH_ASKPASS, no extra tool). */
  password?: string;
}

/** Runs a command in the guest over real SSH; resolves with its stdout. */
export async function ssh(target: SshTarget, command: string, timeoutMs = 60_000): Promise<string> {
  const options = [
    "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
    "-o", "ConnectTimeout=20", "-o", "BatchMode=" + (target.password ? "no" : "yes"),
    "-p", String(target.port),
  ];
  const env = { ...process.env };
  let askpassDir: string | undefined;
  if (target.password) {
    askpassDir = await mkdtemp(join(tmpdir(), "dm-e2e-askpass-"));
    const script = join(askpassDir, "askpass.sh");
    await writeFile(script, `#!/bin/sh\nprintf '%s\\n' '${target.password.replace(/'/g, "'\\''")}'\n`);
    await chmod(script, 0o700);
    Object.assign(env, { SSH_ASKPASS: script, SSH_ASKPASS_REQUIRE: "force", DISPLAY: ":0" });
    options.push("-o", "PreferredAuthentications=password,keyboard-interactive", "-o", "PubkeyAuthentication=no");
  } else if (target.key) {
    options.push("-i", target.key.privateKey, "-o", "IdentitiesOnly=yes");
  }
  try {
    // Exit code 255 is ssh's own failure (connection, authentication): sshd may be restarting
    // at the end of cloud-init, so try again a few times. A failing command fails at once.
    for (let attempt = 1; ; attempt++) {
      try {
        const { stdout } = await exec("ssh", [...options, `${target.user}@${target.host}`, command], { env, timeout: timeoutMs });
        return stdout.trim();
      } catch (error) {
        if ((error as { code?: unknown }).code !== 255 || attempt === 3) throw error;
        await new Promise((resolve) => setTimeout(resolve, 5000));
      }
    }
  } finally {
    if (askpassDir) await rm(askpassDir, { recursive: true, force: true });
  }
}

/** A TCP port nobody listens on right now, for a fixed published port. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** Removes containers, volumes and networks by name, ignoring what is already gone. */
export async function removeAll(what: { containers?: string[]; volumes?: string[]; networks?: string[] }): Promise<void> {
  for (const name of what.containers ?? []) await docker(["rm", "--force", "--volumes", name]).catch(() => undefined);
  for (const name of what.volumes ?? []) await docker(["volume", "rm", "--force", name]).catch(() => undefined);
  for (const name of what.networks ?? []) await docker(["network", "rm", name]).catch(() => undefined);
}

/** Prints a line now and then while a guest boots, so a run never looks stuck. */
export function progress(label: string): (state: WaitState) => void {
  return throttleProgress(30, ({ status, health, seconds }) => console.log(`  [${label}] ${seconds}s: container ${status}, health ${health}`));
}

/**
 * Polls a container's output (stdout and stderr) since `since` (RFC 3339, or "0" for all)
 * until `pattern` appears; fails at once when the container stops running.
 */
export async function waitForLog(name: string, pattern: RegExp, timeoutMs: number, since = "0"): Promise<void> {
  const started = Date.now();
  for (;;) {
    const { stdout, stderr } = await exec("docker", ["logs", "--since", since, name], { maxBuffer: 64 * 1024 * 1024 });
    if (pattern.test(stdout) || pattern.test(stderr)) return;
    const state = await docker(["inspect", "--format", "{{.State.Status}}", name]);
    if (state !== "running") throw new Error(`${name} is ${state} while waiting for ${pattern}:\n${stderr.slice(-2000)}`);
    if (Date.now() - started > timeoutMs) throw new Error(`${name}: no ${pattern} after ${timeoutMs / 1000} s; its log:\n${stderr.slice(-3000)}`);
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}
