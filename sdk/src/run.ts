/**
 * Runs a container description on a Docker Engine without Pulumi, with the
 * Docker CLI: `docker volume create`, `docker network create` (when missing),
 * `docker create`, `docker cp` (files, secrets included), `docker start`.
 * The conformance tests and the `npm run up` script use it, so what the
 * component deploys is the very thing that is proven to boot.
 */
import { spawn } from "node:child_process";
import { mkdtemp, mkdir, rm, writeFile, chmod } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import type { ContainerSpec } from "./description.js";

export interface DockerOptions {
  /** Docker daemon address (`unix:///...`, `ssh://...`); default: the CLI's own (DOCKER_HOST or the local socket). */
  dockerHost?: string;
  /** The docker binary. Default `docker` from PATH. */
  docker?: string;
}

export interface RunResult {
  containerId: string;
  name: string;
}

/** Runs `docker` with arguments; resolves with stdout, rejects with stderr in the message. */
export async function docker(args: string[], options: DockerOptions = {}, input?: NodeJS.ReadableStream): Promise<string> {
  return (await dockerStreams(args, options, input)).stdout.trim();
}

/** Runs `docker` and resolves with both output streams; rejects with stderr in the message. */
function dockerStreams(args: string[], options: DockerOptions, input?: NodeJS.ReadableStream): Promise<{ stdout: string; stderr: string }> {
  const argv = [...(options.dockerHost ? ["-H", options.dockerHost] : []), ...args];
  return new Promise((resolve, reject) => {
    const child = spawn(options.docker ?? "docker", argv, { stdio: [input ? "pipe" : "ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout!.on("data", (chunk) => (stdout += chunk));
    child.stderr!.on("data", (chunk) => (stderr += chunk));
    if (input && child.stdin) input.pipe(child.stdin);
    child.on("error", reject);
    child.on("close", (code) => {
      if (code === 0) resolve({ stdout, stderr });
      else reject(new Error(`docker ${argv.join(" ")} failed (exit ${code}): ${stderr.trim()}`));
    });
  });
}

/**
 * A DevMachine container's logs, both streams: `console` is the guest's serial
 * console (stdout), `launcher` the launcher's `devmachines:` lines (stderr).
 */
export async function containerLogs(name: string, options: DockerOptions & { tail?: number } = {}): Promise<{ console: string; launcher: string }> {
  const { stdout, stderr } = await dockerStreams(["logs", ...(options.tail ? ["--tail", String(options.tail)] : []), name], options);
  return { console: stdout, launcher: stderr };
}

/** `docker create` arguments for a description (files are copied in separately). */
export function createArgs(spec: ContainerSpec): string[] {
  const args = ["create", "--name", spec.name, "--hostname", spec.hostname];
  for (const [key, value] of Object.entries(spec.env)) args.push("--env", `${key}=${value}`);
  for (const device of spec.devices) args.push("--device", `${device}:${device}:rwm`);
  for (const cap of spec.capAdd) args.push("--cap-add", cap);
  for (const port of spec.ports) {
    const host = [port.hostIp && (port.hostIp.includes(":") ? `[${port.hostIp}]` : port.hostIp), port.hostPort ?? ""];
    const published = port.hostIp ? `${host[0]}:${host[1]}:` : port.hostPort !== undefined ? `${port.hostPort}:` : "";
    args.push("--publish", `${published}${port.containerPort}/${port.protocol}`);
  }
  for (const volume of spec.volumes) args.push("--mount", `type=volume,source=${volume.name},target=${volume.containerPath}`);
  for (const [label, value] of Object.entries(spec.labels)) args.push("--label", `${label}=${value}`);
  // No --health-* flags: the image's HEALTHCHECK is the one the container runs.
  args.push(
    "--stop-signal", spec.stopSignal,
    "--stop-timeout", String(spec.stopTimeoutSeconds),
    "--restart", spec.restart,
  );
  const [first, ...others] = spec.networks;
  if (first) {
    args.push("--network", first.name);
    for (const alias of first.aliases) args.push("--network-alias", alias);
  }
  args.push(spec.image);
  if (others.length > 0) throw new Error("runContainerSpec joins one network; connect the others with docker network connect");
  return args;
}

/**
 * Creates what the description needs and starts the container. Networks that do not
 * exist yet are created (labelled), volumes are created (labelled) or reused.
 */
export async function runContainerSpec(spec: ContainerSpec, options: DockerOptions = {}): Promise<RunResult> {
  for (const network of spec.networks) {
    const existing = await docker(["network", "ls", "--quiet", "--filter", `name=^${network.name}$`], options);
    if (!existing) await docker(["network", "create", "--label", "dev.devmachines.network=true", network.name], options);
  }
  for (const volume of spec.volumes) {
    const labels = Object.entries(volume.labels).flatMap(([key, value]) => ["--label", `${key}=${value}`]);
    await docker(["volume", "create", ...labels, volume.name], options);
  }
  const containerId = await docker(createArgs(spec), options);
  try {
    if (spec.files.length > 0) await copyFiles(spec, options);
    await docker(["start", spec.name], options);
  } catch (error) {
    await docker(["rm", "--force", spec.name], options).catch(() => undefined);
    throw error;
  }
  return { containerId, name: spec.name };
}

/** Copies the description's files into the created container as one tar stream (parents created, modes kept). */
async function copyFiles(spec: ContainerSpec, options: DockerOptions): Promise<void> {
  // A private temp dir: secrets touch the local disk only here, mode 0700, removed right after.
  const root = await mkdtemp(join(tmpdir(), "devmachines-files-"));
  try {
    await chmod(root, 0o700);
    for (const file of spec.files) {
      const local = join(root, file.path);
      await mkdir(dirname(local), { recursive: true });
      await writeFile(local, file.content, { mode: parseInt(file.mode, 8) });
    }
    const tar = spawn("tar", ["-C", root, "--owner=0", "--group=0", "--numeric-owner", "-cf", "-", ...spec.files.map((file) => `.${file.path}`)], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    await docker(["cp", "-", `${spec.name}:/`], options, tar.stdout);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

export interface WaitOptions extends DockerOptions {
  /** Give up after this long. Default 600 s. */
  timeoutMs?: number;
  /** Poll interval. Default 3 s. */
  intervalMs?: number;
  /** Called on every poll with the state and the seconds waited, e.g. to print progress. */
  onProgress?: (state: { status: string; health: string; seconds: number }) => void;
}

/**
 * What a DevMachine container's exit code means: the launcher's codes (README, "Exit codes";
 * runtime/src/exitCodes.ts) and the signal deaths Docker reports as 128 + signal.
 */
export function describeExitCode(code: number): string {
  const meanings: Record<number, string> = {
    0: "the guest powered off",
    1: "an unexpected failure: QEMU crashed or the VM stopped (the launcher's log says what)",
    2: "invalid configuration; nothing was created or changed",
    3: "the host or container lacks something (base image, /dev/kvm for ACCEL=kvm, /dev/net/tun or NET_ADMIN for BRIDGE, a writable disks folder)",
    4: "the guest did not power off within GRACE_SECONDS and was killed",
    137: "killed by SIGKILL (docker kill, the stop timeout, or the kernel's OOM killer)",
    143: "ended by SIGTERM before the launcher could handle it",
  };
  return meanings[code] ?? (code > 128 ? `killed by signal ${code - 128}` : "not a launcher exit code");
}

interface ContainerState {
  Status: string;
  Restarting?: boolean;
  ExitCode: number;
  StartedAt?: string;
  Health?: { Status: string; Log?: { ExitCode: number; Output: string }[] };
}

/** How the launcher's `--health` output begins once READY_TIMEOUT has passed (runtime/src/main.ts). */
const NOT_READY_PREFIX = "the guest is not ready after READY_TIMEOUT";

/** Why waiting for `healthy` is pointless now, or undefined while the container may still get there. */
export function hopelessState(state: ContainerState, restarts: number, restartsAtStart: number): string | undefined {
  const exit = `exit code ${state.ExitCode}: ${describeExitCode(state.ExitCode)}`;
  if (state.Status === "exited" || state.Status === "dead") return `stopped (${exit}) before it was healthy`;
  if (state.Restarting || state.Status === "restarting" || restarts > restartsAtStart) {
    return `is crash-looping: its launcher exited (${exit}) and Docker restarted it ${restarts} time(s)`;
  }
  const last = state.Health?.Log?.at(-1)?.Output.trim();
  if (state.Health?.Status === "unhealthy") return `is unhealthy${last ? `: ${last}` : ""}`;
  // The launcher's READY_TIMEOUT message: final, even while Docker's start period keeps the status "starting".
  if (last?.startsWith(NOT_READY_PREFIX)) return `never became ready: ${last}`;
  return undefined;
}

/**
 * Waits until the container's health check (the image's HEALTHCHECK) says `healthy` (SSH
 * answers, cloud-init done). Rejects at once when the container has no health check, and as
 * soon as waiting is pointless: it stopped, it restarted (its `RestartCount` grew: a crash
 * loop under a restart policy), or it turned unhealthy (READY_TIMEOUT passed); the error
 * carries the exit code, what it means, and the launcher's last log lines.
 */
export async function waitHealthy(name: string, options: WaitOptions = {}): Promise<{ seconds: number }> {
  const started = Date.now();
  const timeout = options.timeoutMs ?? 600_000;
  const config = JSON.parse(await docker(["inspect", "--format", "{{json .Config}}", name], options)) as {
    Image?: string;
    Healthcheck?: { Test?: string[] } | null;
  };
  const test = config.Healthcheck?.Test;
  if (!test?.length || test[0] === "NONE") {
    throw new Error(
      `container ${name} has no health check, so it cannot report when the VM is ready: its image ${config.Image ?? "(unknown)"} ` +
        "defines no HEALTHCHECK (build machine images FROM devmachines/runtime, which defines it) or it was disabled with --no-healthcheck",
    );
  }
  let restartsAtStart: number | undefined;
  for (;;) {
    const seconds = Math.round((Date.now() - started) / 1000);
    const raw = await docker(["inspect", "--format", "{{json .State}} {{.RestartCount}}", name], options);
    const cut = raw.lastIndexOf(" ");
    const state = JSON.parse(raw.slice(0, cut)) as ContainerState;
    const restarts = Number(raw.slice(cut + 1));
    restartsAtStart ??= restarts;
    const health = state.Health?.Status ?? "none";
    options.onProgress?.({ status: state.Status, health, seconds });
    if (health === "healthy") return { seconds };
    const hopeless = hopelessState(state, restarts, restartsAtStart);
    if (hopeless) {
      const logs = await containerLogs(name, { ...options, tail: 30 }).then(
        (both) => `launcher (stderr):\n${both.launcher.trimEnd()}\nconsole (stdout):\n${both.console.trimEnd()}`,
        (error: Error) => error.message,
      );
      throw new Error(`container ${name} ${hopeless} after ${seconds} s; last log lines:\n${logs}`);
    }
    if (Date.now() - started > timeout) {
      throw new Error(`container ${name} was not healthy after ${Math.round(timeout / 1000)} s (status ${state.Status}, health ${health})`);
    }
    await new Promise((resolve) => setTimeout(resolve, options.intervalMs ?? 3000));
  }
}

/** The host port Docker published for a container port (`docker port`). */
export async function publishedPort(name: string, containerPort: number, options: DockerOptions = {}, protocol = "tcp"): Promise<number> {
  const out = await docker(["port", name, `${containerPort}/${protocol}`], options);
  const first = out.split("\n")[0] ?? "";
  const port = Number(first.slice(first.lastIndexOf(":") + 1));
  if (!Number.isInteger(port) || port <= 0) throw new Error(`container ${name} publishes no port for ${containerPort}/${protocol}: ${out}`);
  return port;
}

/** The SSH command for a running description: published port on the access host (NAT) or the container's IP (BRIDGE). */
export async function sshCommandFor(spec: ContainerSpec, options: DockerOptions = {}): Promise<string> {
  if (spec.access.network === "BRIDGE") {
    const ip = await docker(["inspect", "--format", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", spec.name], options);
    return `ssh ${spec.access.user}@${ip.split(" ")[0]}`;
  }
  const port = await publishedPort(spec.name, 22, options);
  return `ssh -p ${port} ${spec.access.user}@${spec.access.sshHost ?? "127.0.0.1"}`;
}

export interface RemoveOptions extends DockerOptions {
  /** Also remove the disk volumes (default: only those not marked `keep`). */
  volumes?: "all" | "unkept" | "none";
  /** Also remove the networks the description names (fails quietly while other containers use them). */
  networks?: boolean;
}

/** Removes the container (and per options its volumes and networks); missing things are fine. */
export async function removeContainerSpec(spec: ContainerSpec, options: RemoveOptions = {}): Promise<void> {
  const quiet = (args: string[]) => docker(args, options).catch(() => undefined);
  await quiet(["rm", "--force", "--volumes", spec.name]);
  const which = options.volumes ?? "unkept";
  for (const volume of spec.volumes) {
    if (which === "all" || (which === "unkept" && !volume.keep)) await quiet(["volume", "rm", "--force", volume.name]);
  }
  if (options.networks) for (const network of spec.networks) await quiet(["network", "rm", network.name]);
}
