/**
 * A small QMP (QEMU Machine Protocol) client over a unix socket.
 *
 * QEMU is started with `-qmp unix:<path>,server=on,wait=off`, so the socket appears a
 * moment after the process starts: {@link QmpClient.connect} retries until it does.
 * Commands carry an `id`, so replies are matched to their command even when events are
 * interleaved with them.
 */
import net from "node:net";

/** The greeting QEMU sends when a client connects. */
export interface QmpGreeting {
  QMP: {
    version: {
      qemu: { major: number; minor: number; micro: number };
      package: string;
    };
    capabilities: string[];
  };
}

/** An asynchronous event from QEMU, e.g. `SHUTDOWN`, `POWERDOWN`, `STOP`, `RESET`, `GUEST_PANICKED`. */
export interface QmpEvent {
  event: string;
  data?: Record<string, unknown>;
  timestamp: { seconds: number; microseconds: number };
}

/** What `query-status` returns; `status` is QEMU's RunState (`running`, `paused`, `internal-error`, ...). */
export interface QmpStatus {
  status: string;
  running: boolean;
  singlestep?: boolean;
}

/** A command that QEMU answered with an error. */
export class QmpError extends Error {
  constructor(
    /** The command that failed. */
    readonly command: string,
    /** QMP's error class, e.g. `CommandNotFound`, `GenericError`. */
    readonly errorClass: string,
    /** QMP's human-readable description. */
    readonly desc: string,
  ) {
    super(`QMP ${command} failed: ${errorClass}: ${desc}`);
    this.name = "QmpError";
  }
}

/** Options for {@link QmpClient.connect}. */
export interface QmpConnectOptions {
  /** Give up when the socket has not accepted a connection after this long. Default 10000 ms. */
  timeoutMs?: number;
  /** Pause between attempts while the socket does not exist yet. Default 50 ms. */
  retryIntervalMs?: number;
  /** Stop retrying (e.g. because QEMU has already exited). */
  signal?: AbortSignal;
}

/** A listener for QMP events. */
export type QmpEventListener = (event: QmpEvent) => void;

interface Pending {
  command: string;
  resolve: (value: unknown) => void;
  reject: (error: Error) => void;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Errors that mean "QEMU has not created or not started listening on the socket yet". */
const RETRYABLE = new Set(["ENOENT", "ECONNREFUSED", "EAGAIN"]);

/** A connected QMP session (capabilities already negotiated). */
export class QmpClient {
  private buffer = "";
  private nextId = 1;
  private readonly pending = new Map<string, Pending>();
  private readonly eventListeners = new Map<string, Set<QmpEventListener>>();
  private readonly closeListeners = new Set<(error?: Error) => void>();
  private isClosed = false;
  private greetingWaiter: ((greeting: QmpGreeting) => void) | undefined;
  /** The greeting QEMU sent, once received. */
  greeting: QmpGreeting | undefined;

  private constructor(private readonly socket: net.Socket) {
    socket.setEncoding("utf8"); // decodes multi-byte characters split across chunks
    socket.on("data", (chunk: string) => this.onData(chunk));
    socket.on("error", (error) => this.shutdown(error));
    socket.on("close", () => this.shutdown());
  }

  /**
   * Connects to QEMU's QMP socket, retrying while it does not exist yet, reads the
   * greeting and negotiates capabilities.
   *
   * @throws Error when the socket does not accept a connection within `timeoutMs`, when
   *   `signal` aborts, or when the greeting/negotiation fails.
   */
  static async connect(socketPath: string, options: QmpConnectOptions = {}): Promise<QmpClient> {
    const timeoutMs = options.timeoutMs ?? 10_000;
    const retryMs = options.retryIntervalMs ?? 50;
    const deadline = Date.now() + timeoutMs;
    let lastError: Error | undefined;
    for (;;) {
      if (options.signal?.aborted) throw new Error(`QMP connect to ${socketPath} aborted`);
      try {
        const socket = await openSocket(socketPath);
        const client = new QmpClient(socket);
        try {
          await client.handshake(Math.max(deadline - Date.now(), 1000));
        } catch (error) {
          client.close();
          throw error;
        }
        return client;
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code === undefined || !RETRYABLE.has(code)) throw error;
        lastError = error as Error;
      }
      if (Date.now() >= deadline) {
        throw new Error(
          `QMP socket ${socketPath} did not accept a connection within ${timeoutMs} ms (${lastError?.message ?? "no attempt"})`,
        );
      }
      await sleep(retryMs);
    }
  }

  private async handshake(timeoutMs: number): Promise<void> {
    const greeting = await withTimeout(
      new Promise<QmpGreeting>((resolve, reject) => {
        if (this.greeting) return resolve(this.greeting);
        this.greetingWaiter = resolve;
        this.onClose((error) => reject(error ?? new Error("QMP connection closed before the greeting")));
      }),
      timeoutMs,
      "QMP greeting",
    );
    this.greeting = greeting;
    await withTimeout(this.execute("qmp_capabilities"), timeoutMs, "qmp_capabilities");
  }

  /** True once the connection is closed (by {@link close}, or because QEMU went away). */
  get closed(): boolean {
    return this.isClosed;
  }

  /**
   * Runs a QMP command.
   *
   * @returns the command's `return` value.
   * @throws QmpError when QEMU answers with an error; Error when the connection closes first.
   */
  execute<T = unknown>(command: string, args?: Record<string, unknown>): Promise<T> {
    if (this.isClosed) return Promise.reject(new Error(`QMP ${command}: connection is closed`));
    const id = `dm-${this.nextId++}`;
    const message: Record<string, unknown> = { execute: command, id };
    if (args !== undefined) message.arguments = args;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { command, resolve: resolve as (value: unknown) => void, reject });
      this.socket.write(`${JSON.stringify(message)}\n`);
    });
  }

  /** Shorthand for `query-status`. */
  queryStatus(): Promise<QmpStatus> {
    return this.execute<QmpStatus>("query-status");
  }

  /**
   * Subscribes to events named `event` (e.g. `"SHUTDOWN"`), or to all events with `"*"`.
   *
   * @returns a function that unsubscribes.
   */
  on(event: string, listener: QmpEventListener): () => void {
    let set = this.eventListeners.get(event);
    if (!set) this.eventListeners.set(event, (set = new Set()));
    set.add(listener);
    return () => set.delete(listener);
  }

  /**
   * Resolves with the next event named `event` (or `"*"` for any), or rejects after
   * `timeoutMs` or when the connection closes.
   */
  waitForEvent(event: string, timeoutMs: number): Promise<QmpEvent> {
    return new Promise((resolve, reject) => {
      const off = this.on(event, (e) => {
        cleanup();
        resolve(e);
      });
      const offClose = this.onClose(() => {
        cleanup();
        reject(new Error(`QMP connection closed while waiting for ${event}`));
      });
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`no QMP ${event} event within ${timeoutMs} ms`));
      }, timeoutMs);
      const cleanup = () => {
        off();
        offClose();
        clearTimeout(timer);
      };
    });
  }

  /**
   * Calls `listener` once when the connection closes (`error` is set when it broke).
   * Called at once when already closed.
   *
   * @returns a function that unsubscribes.
   */
  onClose(listener: (error?: Error) => void): () => void {
    if (this.isClosed) {
      queueMicrotask(() => listener());
      return () => {};
    }
    this.closeListeners.add(listener);
    return () => this.closeListeners.delete(listener);
  }

  /** Closes the connection; pending commands reject. QEMU keeps running. */
  close(): void {
    this.socket.destroy();
    this.shutdown();
  }

  private onData(chunk: string): void {
    this.buffer += chunk;
    let newline: number;
    while ((newline = this.buffer.indexOf("\n")) >= 0) {
      const line = this.buffer.slice(0, newline).trim();
      this.buffer = this.buffer.slice(newline + 1);
      if (line) this.onMessage(line);
    }
  }

  private onMessage(line: string): void {
    let message: Record<string, unknown>;
    try {
      message = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return; // QEMU only sends JSON; a broken line is not worth killing the session over
    }
    if ("QMP" in message) {
      this.greeting = message as unknown as QmpGreeting;
      this.greetingWaiter?.(this.greeting);
      this.greetingWaiter = undefined;
      return;
    }
    if (typeof message.event === "string") {
      const event = message as unknown as QmpEvent;
      for (const key of [event.event, "*"]) {
        for (const listener of [...(this.eventListeners.get(key) ?? [])]) listener(event);
      }
      return;
    }
    const id = typeof message.id === "string" ? message.id : undefined;
    const pending = id === undefined ? undefined : this.pending.get(id);
    if (!pending || id === undefined) return;
    this.pending.delete(id);
    if ("error" in message) {
      const error = (message.error ?? {}) as { class?: string; desc?: string };
      pending.reject(new QmpError(pending.command, error.class ?? "Unknown", error.desc ?? ""));
    } else {
      pending.resolve(message.return);
    }
  }

  private shutdown(error?: Error): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.socket.destroy();
    for (const [id, pending] of this.pending) {
      this.pending.delete(id);
      pending.reject(new Error(`QMP ${pending.command}: connection closed${error ? ` (${error.message})` : ""}`));
    }
    for (const listener of [...this.closeListeners]) listener(error);
    this.closeListeners.clear();
  }
}

function openSocket(path: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.createConnection(path);
    const onError = (error: Error) => {
      socket.destroy();
      reject(error);
    };
    socket.once("error", onError);
    socket.once("connect", () => {
      socket.off("error", onError);
      resolve(socket);
    });
  });
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
