/**
 * Helpers for the conformance tests: the gate that skips loudly (or fails when
 * DEVMACHINES_E2E=required), SSH with a throwaway key, free ports, and a second
 * Docker Engine beside the first that stands in for a second host.
 */
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { createWriteStream } from "node:fs";
import { mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import type { TestContext } from "node:test";
import { promisify } from "node:util";
import { docker } from "../sdk/src/index.js";

const run = promisify(execFile);
export const MACHINE_IMAGE = process.env.DEVMACHINES_IMAGE ?? "devmachines/debian:13";
export const REQUIRED = process.env.DEVMACHINES_E2E === "required";

/** Why the conformance tests cannot run here, or undefined when they can. */
export async function missingPrerequisite(): Promise<string | undefined> {
  try {
    await docker(["info", "--format", "{{.ServerVersion}}"]);
  } catch (error) {
    return `no Docker Engine reachable (${(error as Error).message.split("\n")[0]})`;
  }
  try {
    await docker(["image", "inspect", "--format", "{{.Id}}", MACHINE_IMAGE]);
  } catch {
    return `the machine image ${MACHINE_IMAGE} does not exist (build it with npm run images)`;
  }
  for (const tool of ["ssh", "ssh-keygen"]) {
    try {
      await run("which", [tool]);
    } catch {
      return `${tool} is not installed`;
    }
  }
  return undefined;
}

/** Skips the test with a loud reason, or throws when the environment says the tests are required. */
export async function gate(t: TestContext): Promise<boolean> {
  const missing = await missingPrerequisite();
  if (missing === undefined) return true;
  const message = `CONFORMANCE TEST SKIPPED: ${missing}. Set DEVMACHINES_E2E=required to make this a failure.`;
  if (REQUIRED) throw new Error(`DEVMACHINES_E2E=required but ${missing}`);
  console.warn(`\n*** ${message} ***\n`);
  t.skip(message);
  return false;
}

export function log(message: string): void {
  console.log(`[conformance ${new Date().toISOString().slice(11, 19)}] ${message}`);
}

export interface SshKey {
  dir: string;
  privateKey: string;
  publicKey: string;
}

export async function generateKey(): Promise<SshKey> {
  const dir = await mkdtemp(join(tmpdir(), "dm-test-ssh-"));
  const privateKey = join(dir, "id_ed25519");
  await run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "dm-test@conformance", "-f", privateKey]);
  return { dir, privateKey, publicKey: (await readFile(`${privateKey}.pub`, "utf8")).trim() };
}

/** Runs a command in the guest over SSH; a few retries cover sshd restarting at the end of cloud-init. */
export async function ssh(key: SshKey, user: string, host: string, port: number, command: string): Promise<string> {
  const args = [
    "-i", key.privateKey,
    "-p", String(port),
    "-o", "StrictHostKeyChecking=no",
    "-o", "UserKnownHostsFile=/dev/null",
    "-o", "BatchMode=yes",
    "-o", "ConnectTimeout=15",
    "-o", "LogLevel=ERROR",
    `${user}@${host}`,
    command,
  ];
  let lastError: unknown;
  for (let attempt = 1; attempt <= 3; attempt++) {
    try {
      const { stdout } = await run("ssh", args, { timeout: 60_000 });
      return stdout.trim();
    } catch (error) {
      lastError = error;
      log(`ssh ${user}@${host}:${port} attempt ${attempt} failed: ${(error as { stderr?: string }).stderr?.trim() || (error as Error).message}`);
      await new Promise((resolve) => setTimeout(resolve, 5000));
    }
  }
  throw lastError;
}

/** A TCP port nobody listens on right now (two engines must not both pick the same ephemeral port). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/**
 * A second Docker Engine on this machine: own data root, exec root (and so its own managed
 * containerd), socket, pid file and pre-created bridge; no iptables rules, so it cannot
 * disturb the first engine's (published ports go through docker-proxy).
 */
export class SecondEngine {
  readonly base = "/run/devmachines-e2e";
  readonly dataRoot = "/var/lib/devmachines-e2e/docker2";
  readonly socket = `unix://${this.base}/docker2.sock`;
  readonly bridge = "dm-e2e-br0";
  readonly bridgeAddress = "172.31.250.1/24";
  private process?: ChildProcess;

  async start(): Promise<void> {
    await this.stop();
    await mkdir(this.base, { recursive: true });
    await mkdir(this.dataRoot, { recursive: true });
    await run("ip", ["link", "add", this.bridge, "type", "bridge"]);
    await run("ip", ["addr", "add", this.bridgeAddress, "dev", this.bridge]);
    await run("ip", ["link", "set", this.bridge, "up"]);
    const logFile = createWriteStream(join(this.base, "dockerd.log"));
    this.process = spawn(
      "dockerd",
      [
        "--data-root", this.dataRoot,
        "--exec-root", join(this.base, "exec2"),
        "-H", this.socket,
        "--pidfile", join(this.base, "docker2.pid"),
        "--bridge", this.bridge,
        "--iptables=false",
        "--ip6tables=false",
        "--ip-masq=false",
        // Its own address pool, so the group network it creates cannot overlap the first engine's.
        "--default-address-pool", "base=10.213.0.0/16,size=24",
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    this.process.stdout!.pipe(logFile);
    this.process.stderr!.pipe(logFile);
    const started = Date.now();
    for (;;) {
      try {
        await docker(["info", "--format", "{{.ServerVersion}}"], { dockerHost: this.socket });
        return;
      } catch (error) {
        if (this.process.exitCode !== null || Date.now() - started > 60_000) {
          const tail = (await readFile(join(this.base, "dockerd.log"), "utf8").catch(() => "")).split("\n").slice(-15).join("\n");
          throw new Error(`the second dockerd did not come up: ${(error as Error).message}\n${tail}`);
        }
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
    }
  }

  /** Copies an image from the first engine: docker save | docker -H ... load. */
  async loadImage(image: string): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      const save = spawn("docker", ["save", image], { stdio: ["ignore", "pipe", "inherit"] });
      const load = spawn("docker", ["-H", this.socket, "load", "--quiet"], { stdio: ["pipe", "inherit", "inherit"] });
      save.stdout!.pipe(load.stdin!);
      save.on("error", reject);
      load.on("error", reject);
      load.on("close", (code) => (code === 0 ? resolve() : reject(new Error(`docker load exited ${code}`))));
    });
  }

  /** Stops the engine (its containers with it), removes the bridge and the data. Safe to call twice. */
  async stop(): Promise<void> {
    const pid = this.process?.pid ?? Number((await readFile(join(this.base, "docker2.pid"), "utf8").catch(() => "")).trim());
    if (pid) {
      try {
        process.kill(pid, "SIGTERM");
        const started = Date.now();
        while (Date.now() - started < 60_000) {
          process.kill(pid, 0);
          await new Promise((resolve) => setTimeout(resolve, 500));
        }
        process.kill(pid, "SIGKILL");
      } catch {
        // gone
      }
    }
    this.process = undefined;
    await run("ip", ["link", "del", this.bridge]).catch(() => undefined);
    await rm(dirname(this.dataRoot), { recursive: true, force: true }).catch(() => undefined);
    await rm(this.base, { recursive: true, force: true }).catch(() => undefined);
  }
}
