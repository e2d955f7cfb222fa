/**
 * A second Docker Engine beside the first on this machine, standing in for a
 * second host in the conformance tests of groups placed over several hosts.
 */
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { createWriteStream } from "node:fs";
import { mkdir, readFile, rm } from "node:fs/promises";
import { dirname, join } from "node:path";
import { promisify } from "node:util";
import { docker } from "../sdk/src/index.js";

const run = promisify(execFile);

/**
 * A second Docker Engine on this machine: own data root, exec root (and so its own managed
 * containerd), socket, pid file and pre-created bridge; no iptables rules, so it cannot
 * disturb the first engine's (published ports go through docker-proxy).
 */
export interface SecondEngineOptions {
  /** Names its folders (/run/NAME, /var/lib/NAME). Default `devmachines-e2e`. */
  name?: string;
  /** Its bridge (at most 15 characters). Default `dm-e2e-br0`. */
  bridge?: string;
  /** The bridge's address. Default `172.31.250.1/24`. */
  bridgeAddress?: string;
  /** Where its networks' subnets come from. Default `10.213.0.0/16`. */
  addressPool?: string;
}

export class SecondEngine {
  readonly base: string;
  readonly dataRoot: string;
  readonly socket: string;
  readonly bridge: string;
  readonly bridgeAddress: string;
  readonly addressPool: string;
  private process?: ChildProcess;

  /** Separate names let test files use engines of their own at the same time. */
  constructor(options: SecondEngineOptions = {}) {
    const name = options.name ?? "devmachines-e2e";
    this.base = `/run/${name}`;
    this.dataRoot = `/var/lib/${name}/docker2`;
    this.socket = `unix://${this.base}/docker2.sock`;
    this.bridge = options.bridge ?? "dm-e2e-br0";
    this.bridgeAddress = options.bridgeAddress ?? "172.31.250.1/24";
    this.addressPool = options.addressPool ?? "10.213.0.0/16";
  }

  async start(): Promise<void> {
    await this.stop();
    await mkdir(this.base, { recursive: true });
    await mkdir(this.dataRoot, { recursive: true });
    await run("ip", ["link", "add", this.bridge, "type", "bridge"]);
    await run("ip", ["addr", "add", this.bridgeAddress, "dev", this.bridge]);
    await run("ip", ["link", "set", this.bridge, "up"]);
    await this.launch();
  }

  /**
   * Stops the engine the way a host's service manager does (SIGTERM: without --live-restore
   * it stops its containers first, each with its stop timeout) and starts it again on the
   * same data, as after a dockerd upgrade or restart. Resolves once it answers again.
   */
  async restart(stopTimeoutMs = 180_000): Promise<void> {
    const pid = this.process?.pid;
    if (!pid) throw new Error("the second dockerd is not running");
    const exited = new Promise<void>((resolve) => this.process!.once("exit", () => resolve()));
    process.kill(pid, "SIGTERM");
    const timer = setTimeout(() => process.kill(pid, "SIGKILL"), stopTimeoutMs);
    await exited;
    clearTimeout(timer);
    const hostBridgeBefore = await linkExists("docker0");
    // Without the address pool: dockerd, when it starts over a data root that holds a default
    // "bridge" network and has --default-address-pool set, deletes the link named docker0 (moby's
    // removeDefaultBridgeInterface, a hard-coded name): the FIRST engine's bridge, which broke
    // every later test on this host. Networks made before the restart keep their subnets.
    await this.launch({ addressPool: false });
    if (hostBridgeBefore && !(await linkExists("docker0"))) {
      throw new Error("restarting the second dockerd deleted the first engine's docker0 bridge");
    }
  }

  private async launch({ addressPool = true } = {}): Promise<void> {
    const logFile = createWriteStream(join(this.base, "dockerd.log"), { flags: "a" });
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
        ...(addressPool ? ["--default-address-pool", `base=${this.addressPool},size=24`] : []),
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

async function linkExists(name: string): Promise<boolean> {
  return run("ip", ["link", "show", name]).then(() => true, () => false);
}
