/**
 * Just enough of the QEMU guest agent's protocol (qemu-guest-agent in the guest, on the
 * virtio-serial port `org.qemu.guest_agent.0`, reached through QEMU's `qga.sock`) to set the
 * guest's clock after a resume: a resumed guest's clock stands where it was when it was saved.
 *
 * The agent has no greeting. A 0xFF byte resets its JSON parser (whatever a former client left
 * half-written), and `guest-sync-delimited` with a fresh id tells this client's answers from
 * stale ones: everything up to the answer carrying that id is discarded.
 */
import net from "node:net";

export class GuestAgentError extends Error {
  constructor(
    message: string,
    /** The agent answered with this error (as opposed to not answering at all). */
    readonly agentError?: string,
    /** The command itself had been written to the agent: it may have run although no answer came. */
    readonly commandSent = false,
  ) {
    super(message);
  }
}

/** Sends one command after a sync and resolves with its `return` value. */
export async function guestAgentCommand(
  socketPath: string,
  command: string,
  argsJson: string | undefined,
  timeoutMs: number,
  /** How long to wait for the answer once the command is written (default: what is left of `timeoutMs`). */
  answerTimeoutMs?: number,
): Promise<unknown> {
  const socket = net.createConnection(socketPath);
  const syncId = Math.floor(Math.random() * 2 ** 31);
  try {
    return await new Promise<unknown>((resolve, reject) => {
      let buffer = "";
      let synced = false;
      const late = (ms: number) => () => reject(new GuestAgentError(`the guest agent did not answer ${command} within ${ms} ms`, undefined, synced));
      let timer = setTimeout(late(timeoutMs), timeoutMs);
      socket.setEncoding("latin1");
      socket.once("error", (error) => {
        clearTimeout(timer);
        reject(new GuestAgentError(`cannot reach the guest agent at ${socketPath}: ${error.message}`, undefined, synced));
      });
      socket.once("connect", () => {
        socket.write(Buffer.from([0xff]));
        socket.write(`{"execute":"guest-sync-delimited","arguments":{"id":${syncId}}}\n`);
      });
      socket.on("data", (chunk: string) => {
        buffer += chunk;
        let newline: number;
        while ((newline = buffer.indexOf("\n")) >= 0) {
          const line = buffer.slice(0, newline).replace(/\xff/g, "").trim();
          buffer = buffer.slice(newline + 1);
          if (!line) continue;
          let message: { return?: unknown; error?: { desc?: string } };
          try {
            message = JSON.parse(line) as typeof message;
          } catch {
            continue;
          }
          if (!synced) {
            if (message.return === syncId) {
              synced = true;
              if (answerTimeoutMs !== undefined) {
                clearTimeout(timer);
                timer = setTimeout(late(answerTimeoutMs), answerTimeoutMs);
              }
              socket.write(`{"execute":${JSON.stringify(command)}${argsJson === undefined ? "" : `,"arguments":${argsJson}`}}\n`);
            }
            continue;
          }
          clearTimeout(timer);
          if (message.error) reject(new GuestAgentError(`guest agent ${command} failed: ${message.error.desc ?? "unknown error"}`, message.error.desc ?? "unknown error"));
          else resolve(message.return);
          return;
        }
      });
    });
  } finally {
    socket.destroy();
  }
}

/**
 * Sets the guest's clock to the host's (nanoseconds since the epoch, written as an exact
 * integer: a JavaScript number would round it), retrying while the agent is not answering yet.
 * Resolves with a note when only the hardware clock could not follow: the agent sets the system
 * clock first, then runs `hwclock -w`, which a minimal guest may lack (Debian's cloud image
 * has no /sbin/hwclock); the system clock is what matters, and QEMU's RTC follows the host anyway.
 */
export async function setGuestClock(socketPath: string, deadlineMs: number, now: () => number = Date.now): Promise<string | undefined> {
  const until = Date.now() + deadlineMs;
  let lastError: unknown;
  while (Date.now() < until) {
    try {
      const ns = BigInt(now()) * 1_000_000n;
      await guestAgentCommand(socketPath, "guest-set-time", `{"time":${ns}}`, Math.max(1000, Math.min(3000, until - Date.now())));
      return undefined;
    } catch (error) {
      const agentError = error instanceof GuestAgentError ? error.agentError : undefined;
      if (agentError !== undefined && /hwclock|hardware clock/i.test(agentError)) return `the guest's hardware clock was not written (${agentError.trim()})`;
      // The agent answered with another error: asking again would get the same answer.
      if (agentError !== undefined) throw error;
      lastError = error;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
  throw lastError instanceof Error ? lastError : new GuestAgentError("the guest agent did not answer");
}

export interface GuestExecResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs a program in the guest as root through the agent (`guest-exec`, then `guest-exec-status`
 * until it exits), feeding `stdin` to it. The program's output comes back with its exit code.
 * Waits for the agent to answer at all first: right after a restore it may take a moment.
 */
export async function guestExec(
  socketPath: string,
  program: { path: string; args: string[]; stdin?: string },
  timeoutMs: number,
): Promise<GuestExecResult> {
  const until = Date.now() + timeoutMs;
  const left = () => Math.max(500, until - Date.now());
  const request = JSON.stringify({
    path: program.path,
    arg: program.args,
    "capture-output": true,
    ...(program.stdin !== undefined && { "input-data": Buffer.from(program.stdin).toString("base64") }),
  });
  let started: { pid?: number } | undefined;
  for (;;) {
    try {
      started = (await guestAgentCommand(socketPath, "guest-exec", request, Math.min(3000, left()), left())) as { pid?: number };
      break;
    } catch (error) {
      // An answer with an error (guest-exec disabled, no such program) will not change. And a
      // guest-exec once written is never sent again: without its answer (a loaded host) it may
      // still have started the program, and a second copy ran beside the first (seen with four
      // clones resealing at once). Only a try that never reached the agent is repeated.
      if (error instanceof GuestAgentError && (error.agentError !== undefined || error.commandSent)) throw error;
      if (Date.now() >= until) throw error;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  if (typeof started?.pid !== "number") throw new GuestAgentError("guest-exec answered without a pid");
  for (;;) {
    type Status = { exited?: boolean; exitcode?: number; signal?: number; "out-data"?: string; "err-data"?: string };
    // Asking again is harmless; the agent's socket takes one client at a time (the clock is set
    // beside the reseal), so a busy socket (connect EAGAIN) or a slow answer is asked again.
    const status = (await guestAgentCommand(socketPath, "guest-exec-status", JSON.stringify({ pid: started.pid }), Math.min(3000, left())).catch((error: unknown) => {
      if ((error instanceof GuestAgentError && error.agentError !== undefined) || Date.now() >= until) throw error;
      return {} as Status;
    })) as Status;
    if (status.exited) {
      const text = (data: string | undefined) => (data ? Buffer.from(data, "base64").toString("utf8") : "");
      return { exitCode: status.exitcode ?? 128 + (status.signal ?? 0), stdout: text(status["out-data"]), stderr: text(status["err-data"]) };
    }
    if (Date.now() >= until) throw new GuestAgentError(`${program.path} did not finish in the guest within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
