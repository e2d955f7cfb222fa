/**
 * Readiness: a DevMachine is ready when cloud-init has finished (its final
 * message, carrying the plan's ready marker, appears on the serial console) and the
 * guest's SSH server answers. The launcher records the phase in a state file;
 * `--health` (the image's HEALTHCHECK) reads it and checks the SSH banner again
 * (from inside the container, in both network modes), so a dead sshd turns the
 * container unhealthy.
 *
 * The image's HEALTHCHECK does not run that (a Node process per check would cost too much at
 * the one-second interval that lets a resumed machine turn healthy within a second of being
 * ready): it reads the one-line verdict the launcher keeps in the `health` file beside the
 * state (`devmachines-health` in the Dockerfile), which the launcher refreshes on every phase
 * change and from its own SSH probe every {@link LIVENESS_INTERVAL_MS} while ready.
 */
import { connect } from "node:net";
import { readFile, rename, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";

export type Phase = "starting" | "booting" | "ready" | "stopping" | "stopped";

export interface LauncherState {
  phase: Phase;
  /** Where the guest's SSH answers from inside the container (NAT: the forward; BRIDGE: the management link). */
  ssh?: { host: string; port: number };
  accel?: string;
  /** Set when READY_TIMEOUT passed before readiness: which boot stage never came. */
  notReady?: string;
  updatedAt: string;
}

/** Writes the state and the health verdict that follows from it. */
export async function writeState(path: string, state: Omit<LauncherState, "updatedAt">): Promise<void> {
  const temp = `${path}.${process.pid}.tmp`;
  await writeFile(temp, `${JSON.stringify({ ...state, updatedAt: new Date().toISOString() })}\n`);
  await rename(temp, path);
  await writeHealth(healthPath(path), healthOf(state));
}

/** How often the launcher checks the SSH banner of a ready guest (the health file's liveness). */
export const LIVENESS_INTERVAL_MS = 10_000;

export interface HealthVerdict {
  healthy: boolean;
  message: string;
}

/** The health file beside the state file. */
export function healthPath(statePath: string): string {
  return join(dirname(statePath), "health");
}

/** The verdict a state implies (SSH was checked when the state became `ready`). */
export function healthOf(state: Pick<LauncherState, "phase" | "notReady">): HealthVerdict {
  if (state.notReady) return { healthy: false, message: state.notReady };
  if (state.phase !== "ready") return { healthy: false, message: `the VM is ${state.phase}` };
  return { healthy: true, message: "ready: SSH answers" };
}

/** One line, `0 message` or `1 message`: the exit code and output of the image's health check. */
export async function writeHealth(path: string, verdict: HealthVerdict): Promise<void> {
  const temp = `${path}.${process.pid}.tmp`;
  await writeFile(temp, `${verdict.healthy ? 0 : 1} ${verdict.message.replace(/\s+/g, " ")}\n`);
  await rename(temp, path);
}

/**
 * While the guest is ready: checks its SSH banner every {@link LIVENESS_INTERVAL_MS} and keeps
 * the health file's verdict in step. Returns the function that stops it.
 */
export function watchSsh(statePath: string, ssh: { host: string; port: number }, stillReady: () => boolean): () => void {
  let healthy = true;
  const timer = setInterval(() => {
    void (async () => {
      const problem = await sshBanner(ssh.host, ssh.port, 3000).then(() => undefined, (error: Error) => error.message);
      const wasHealthy = healthy;
      healthy = problem === undefined;
      if (wasHealthy === healthy || !stillReady()) return;
      await writeHealth(healthPath(statePath), problem === undefined ? healthOf({ phase: "ready" }) : { healthy: false, message: `the guest was ready, but SSH does not answer: ${problem}` });
    })().catch(() => undefined);
  }, LIVENESS_INTERVAL_MS);
  timer.unref();
  return () => clearInterval(timer);
}

/** What the serial console and SSH have shown so far, for naming the stage that never came. */
export interface BootProgress {
  /** Any line on the serial console. */
  serialOutput: boolean;
  /** A line of text from the guest (its kernel or userspace), not only GRUB's terminal set-up. */
  guestText: boolean;
  /** A cloud-init line. */
  cloudInit: boolean;
  /** The ready marker: cloud-init finished. */
  cloudInitDone: boolean;
  /** The guest's SSH server answered. */
  ssh: boolean;
}

/** The first boot stage that has not come yet, for the READY_TIMEOUT message; undefined when all did. */
export function missingStage(seen: BootProgress): string | undefined {
  if (!seen.serialOutput) return "firmware/GRUB: nothing at all on the serial console";
  if (!seen.guestText) return "kernel: the guest kernel never printed on the serial console";
  if (!seen.cloudInit) return "cloud-init: it never started (no cloud-init line on the serial console)";
  if (!seen.cloudInitDone) return "cloud-init: it started but never finished";
  if (!seen.ssh) return "SSH: cloud-init finished, but the guest's SSH server never answered";
  return undefined;
}

/** Resolves to the banner (e.g. `SSH-2.0-OpenSSH_10.0`) or rejects after `timeoutMs`. */
export function sshBanner(host: string, port: number, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port });
    let received = "";
    const fail = (error: Error) => {
      socket.destroy();
      reject(error);
    };
    socket.setTimeout(timeoutMs, () => fail(new Error(`no SSH banner from ${host}:${port} within ${timeoutMs} ms`)));
    socket.on("error", fail);
    socket.on("data", (chunk) => {
      received += chunk.toString("latin1");
      const line = received.split("\n")[0]!;
      if (received.includes("\n")) {
        socket.destroy();
        if (line.startsWith("SSH-")) resolve(line.trim());
        else reject(new Error(`${host}:${port} answered, but not with an SSH banner`));
      }
    });
    socket.on("end", () => fail(new Error(`${host}:${port} closed the connection before an SSH banner`)));
  });
}

/**
 * How long the launcher waits for SSH once cloud-init says the guest is ready: until READY_TIMEOUT
 * (many guests sharing a few cores can take minutes for sshd to answer after a clone's reseal
 * reloaded it; a fixed two minutes gave up on guests that answered soon after, and they then
 * never became healthy), and at least two minutes for a guest that got ready late.
 */
export const SSH_WAIT_MIN_MS = 120_000;
export function sshWaitMs(readyTimeoutMs: number, elapsedMs: number): number {
  return Math.max(readyTimeoutMs - elapsedMs, SSH_WAIT_MIN_MS);
}

/**
 * Waits until the SSH banner answers, retrying; gives up after `deadlineMs`, saying how long it
 * waited. Each try waits twice as long as the one before (5 s, 10 s, ... 60 s): a starved guest's
 * sshd can take longer than any fixed wait to send its banner, and a try given up leaves a
 * pre-auth session in the guest until its LoginGraceTime, which costs the guest more CPU and
 * soon meets sshd's MaxStartups (ten) refusing new connections.
 */
export async function waitForSsh(host: string, port: number, deadlineMs: number): Promise<string> {
  const until = Date.now() + deadlineMs;
  let lastError: unknown;
  let tryMs = 5000;
  while (Date.now() < until) {
    try {
      return await sshBanner(host, port, Math.max(1, Math.min(tryMs, until - Date.now())));
    } catch (error) {
      tryMs = Math.min(tryMs * 2, 60_000);
      lastError = error;
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, Math.min(1000, until - Date.now()))));
    }
  }
  const last = lastError instanceof Error ? `; last try: ${lastError.message}` : "";
  throw new Error(`SSH did not answer at ${host}:${port} within ${(deadlineMs / 1000).toFixed(1)} s${last}`);
}

/** The `--health` check: exit code 0 when ready, 1 otherwise, with one line saying why. */
export async function checkHealth(statePath: string): Promise<{ healthy: boolean; message: string }> {
  let state: LauncherState;
  try {
    state = JSON.parse(await readFile(statePath, "utf8")) as LauncherState;
  } catch {
    return { healthy: false, message: "the launcher has not started the VM yet" };
  }
  if (state.notReady) return { healthy: false, message: state.notReady };
  if (state.phase !== "ready") return { healthy: false, message: `the VM is ${state.phase}` };
  if (!state.ssh) return { healthy: true, message: "cloud-init finished" };
  try {
    const banner = await sshBanner(state.ssh.host, state.ssh.port, 3000);
    return { healthy: true, message: `cloud-init finished; SSH answers (${banner})` };
  } catch (error) {
    return { healthy: false, message: `cloud-init finished, but SSH does not answer: ${(error as Error).message}` };
  }
}
