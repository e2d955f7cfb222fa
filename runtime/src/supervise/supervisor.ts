/**
 * Runs QEMU and looks after it until it exits: forwards the serial console, turns
 * SIGTERM/SIGINT into an ACPI power-down with a grace period, maps the outcome to an exit
 * code, and under `ACCEL=auto` restarts under TCG when KVM turns out not to work.
 *
 * QEMU argv the supervisor requires (built by the plan layer through `argsFor`):
 *   - `-accel kvm` or `-accel tcg,thread=multi`: use {@link accelArgs}(accel);
 *   - `-qmp unix:<qmpSocket>,server=on,wait=off`;
 *   - `-serial stdio -display none -monitor none`: QEMU's stdout is then exactly the
 *     guest's first serial port (the guest should use `console=ttyS0`); no `mon:stdio`,
 *     since the HMP multiplexer would eat the console and `Ctrl-A` sequences;
 *   - no `-daemonize`, and no `-no-shutdown` (a powered-off guest must end QEMU);
 *   - nothing KVM-only in `argsFor("tcg")` (e.g. `-cpu host`: use `-cpu max` under TCG).
 *
 * Known gap: a guest that merely hangs under a broken KVM (bookworm's 6.1 kernel spins
 * silently in its decompressor on kvm_pvm) is not detected; only failures QEMU reports
 * (stderr, run state internal-error, early exit) are.
 */
import fs from "node:fs";
import readline from "node:readline";
import type { Writable } from "node:stream";
import { execa, type ResultPromise } from "execa";
import { ExitCode, LauncherError, type ExitCodeValue } from "../exitCodes.js";
import { QmpClient, type QmpEvent } from "./qmp.js";
import { accelArgs, chooseInitialAccel, looksLikeKvmFailure, type Accel, type AccelMode, type KvmProbe } from "./accel.js";

export { accelArgs, type Accel, type AccelMode } from "./accel.js";

/** Options for {@link QemuSupervisor} and {@link superviseQemu}. */
export interface SuperviseOptions {
  /** QEMU binary. Default `qemu-system-x86_64`. */
  binary?: string;
  /**
   * The full QEMU argv (without the binary) for an accelerator. Called again with `tcg`
   * when `auto` falls back, so it must be pure. Must contain {@link accelArgs}(accel) and
   * the arguments listed at the top of this module.
   */
  argsFor: (accel: Accel) => string[];
  /** `ACCEL`. Default `auto`. */
  accel?: AccelMode;
  /** The path in `-qmp unix:<path>,...`. Removed before each start (a stale one blocks QEMU). */
  qmpSocket: string;
  /** How long the guest gets to power off after SIGTERM/SIGINT before QEMU is killed. */
  graceSeconds: number;
  /**
   * Under `auto`, how long after a KVM start a KVM failure still triggers the TCG restart.
   * Later failures end the launcher with ExitCode.Failure. Default 60.
   */
  kvmWatchSeconds?: number;
  /** A serial console line containing this marks the guest ready. Default `DEVMACHINES_READY`. */
  readyMarker?: string;
  /** Called for each serial console line (without the line ending). */
  onSerialLine?: (line: string) => void;
  /** Called once, when the ready marker first appears on the serial console. */
  onReady?: () => void;
  /** Where the serial console goes. Default process.stdout (so `docker logs` shows the boot). */
  serialOut?: Writable;
  /** Where QEMU's stderr and the supervisor's `devmachines:` lines go. Default process.stderr. */
  logOut?: Writable;
  /** How KVM is probed (tests replace it). Default: open /dev/kvm read-write. */
  probeKvm?: () => KvmProbe;
}

/** One QEMU run: which accelerator, and why it was abandoned if it was. */
export interface Attempt {
  accel: Accel;
  /** Set when this run was abandoned for a TCG restart. */
  kvmFailure?: string;
}

/** How long QEMU gets to act on QMP `quit` before SIGKILL. */
const QUIT_TIMEOUT_MS = 3000;
/** Lines of QEMU stderr kept to explain a failure. */
const STDERR_TAIL = 20;

type RunOutcome = { kind: "exit"; code: ExitCodeValue } | { kind: "kvm-failed"; reason: string };

/**
 * Supervises one DevMachine's QEMU. Create it, subscribe with {@link onSerialLine} /
 * {@link onReady}, call {@link run}, and call {@link requestStop} on SIGTERM/SIGINT
 * ({@link superviseQemu} does the signal wiring).
 */
export class QemuSupervisor {
  private readonly opts: Required<
    Pick<SuperviseOptions, "binary" | "accel" | "kvmWatchSeconds" | "readyMarker" | "serialOut" | "logOut">
  > &
    SuperviseOptions;
  private readonly lineListeners = new Set<(line: string) => void>();
  private readonly readyListeners = new Set<() => void>();
  private ready = false;
  private stopReason: string | undefined;
  private graceTimer: NodeJS.Timeout | undefined;
  private killedAfterGrace = false;
  private current:
    | {
        accel: Accel;
        child: ResultPromise;
        qmp?: QmpClient;
        exited: boolean;
        /** Set when the supervisor decided the run's outcome before QEMU exited. */
        verdict?: RunOutcome;
      }
    | undefined;
  /** Every QEMU run so far, in order. */
  readonly attempts: Attempt[] = [];

  constructor(options: SuperviseOptions) {
    // `??`, not spread defaults: an explicit `undefined` must not erase a default
    this.opts = {
      ...options,
      binary: options.binary ?? "qemu-system-x86_64",
      accel: options.accel ?? "auto",
      kvmWatchSeconds: options.kvmWatchSeconds ?? 60,
      readyMarker: options.readyMarker ?? "DEVMACHINES_READY",
      serialOut: options.serialOut ?? process.stdout,
      logOut: options.logOut ?? process.stderr,
    };
    if (options.onSerialLine) this.lineListeners.add(options.onSerialLine);
    if (options.onReady) this.readyListeners.add(options.onReady);
  }

  /** Subscribes to serial console lines. Returns an unsubscribe function. */
  onSerialLine(listener: (line: string) => void): () => void {
    this.lineListeners.add(listener);
    return () => this.lineListeners.delete(listener);
  }

  /** Calls `listener` once the ready marker appears (at once if it already has). */
  onReady(listener: () => void): void {
    if (this.ready) listener();
    else this.readyListeners.add(listener);
  }

  /** The accelerator of the running (or last) QEMU, if one started. */
  get accel(): Accel | undefined {
    return this.current?.accel;
  }

  /** The QMP session of the running QEMU, once connected. */
  get qmp(): QmpClient | undefined {
    return this.current?.qmp;
  }

  private log(message: string): void {
    this.opts.logOut.write(`devmachines: ${message}\n`);
  }

  /**
   * Starts QEMU and resolves with the launcher's exit code when it is gone for good.
   *
   * @throws LauncherError(ExitCode.Host) when `ACCEL=kvm` and KVM is unusable, or when the
   *   QEMU binary cannot be started.
   */
  async run(): Promise<ExitCodeValue> {
    const initial = chooseInitialAccel(this.opts.accel, this.opts.probeKvm);
    if (initial.warning) this.log(`warning: ${initial.warning}`);
    let accel = initial.accel;
    for (;;) {
      if (this.stopReason !== undefined) {
        this.log(`${this.stopReason} before QEMU started; not starting it`);
        return ExitCode.Ok;
      }
      const outcome = await this.runOnce(accel);
      if (outcome.kind === "exit") return outcome.code;
      this.attempts[this.attempts.length - 1]!.kvmFailure = outcome.reason;
      this.log(
        `warning: KVM cannot run this guest (${outcome.reason}). /dev/kvm is there but does not work ` +
          "for ordinary guests (e.g. a paravirtual KVM such as kvm_pvm). ACCEL=auto: restarting the VM " +
          "under TCG software emulation, which is much slower. Set ACCEL=tcg to skip the KVM attempt.",
      );
      accel = "tcg";
    }
  }

  /** True once a stop was asked for (SIGTERM/SIGINT): the VM is on its way down. */
  get stopRequested(): boolean {
    return this.stopReason !== undefined;
  }

  /**
   * Asks the guest to power off (QMP `system_powerdown`), then kills QEMU after the grace
   * period. Safe to call repeatedly; later calls only log.
   */
  requestStop(reason: string): void {
    if (this.stopReason !== undefined) {
      this.log(`${reason} again: already waiting for the guest to power off`);
      return;
    }
    this.stopReason = reason;
    const run = this.current;
    if (!run || run.exited) return;
    this.log(`${reason}: asking the guest to power off (ACPI); killing it in ${this.opts.graceSeconds}s otherwise`);
    if (run.qmp) this.powerdown(run.qmp);
    // else: sent as soon as QMP connects (see runOnce)
    this.graceTimer = setTimeout(() => {
      if (run.exited) return;
      this.killedAfterGrace = true;
      this.log(`the guest did not power off within ${this.opts.graceSeconds}s: stopping QEMU`);
      void this.forceStop(run);
    }, this.opts.graceSeconds * 1000);
  }

  private powerdown(qmp: QmpClient): void {
    qmp.execute("system_powerdown").catch((error: Error) => {
      this.log(`system_powerdown failed: ${error.message}`);
    });
  }

  /** QMP `quit`, then SIGKILL if QEMU is still there. */
  private async forceStop(run: NonNullable<QemuSupervisor["current"]>): Promise<void> {
    if (run.exited) return;
    const killTimer = setTimeout(() => {
      if (!run.exited) {
        this.log(`QEMU did not quit within ${QUIT_TIMEOUT_MS / 1000}s: sending SIGKILL`);
        run.child.kill("SIGKILL");
      }
    }, QUIT_TIMEOUT_MS);
    void run.child.finally(() => clearTimeout(killTimer)).catch(() => {});
    if (run.qmp && !run.qmp.closed) {
      await run.qmp.execute("quit").catch(() => {}); // QEMU often closes the socket before replying
    } else {
      run.child.kill("SIGKILL");
    }
  }

  private async runOnce(accel: Accel): Promise<RunOutcome> {
    const argv = this.opts.argsFor(accel);
    checkArgv(argv, accel, this.opts.qmpSocket);
    fs.rmSync(this.opts.qmpSocket, { force: true });
    this.attempts.push({ accel });
    const startedAt = Date.now();
    const withinKvmWatch = () =>
      accel === "kvm" && this.opts.accel === "auto" && Date.now() - startedAt < this.opts.kvmWatchSeconds * 1000;

    const child = execa(this.opts.binary, argv, {
      stdin: "ignore",
      stdout: "pipe",
      stderr: "pipe",
      buffer: false,
      reject: false,
      // Own process group: a terminal's Ctrl-C must reach only the launcher, which then
      // powers the guest down, instead of killing QEMU outright.
      detached: true,
    });
    const run: NonNullable<QemuSupervisor["current"]> = { accel, child, exited: false };
    this.current = run;
    // execa's cleanup skips detached children; a dying launcher must not leave QEMU behind.
    const killOnExit = () => {
      if (!run.exited) child.kill("SIGKILL");
    };
    process.once("exit", killOnExit);
    this.log(`started QEMU (pid ${child.pid ?? "?"}) under ${accel === "kvm" ? "KVM" : "TCG"}`);

    const stderrTail: string[] = [];
    let kvmStderr: string | undefined;
    /** Ends the run early: QEMU is still alive, but the VM is dead. */
    const abandon = (verdict: RunOutcome) => {
      if (run.verdict || run.exited) return;
      run.verdict = verdict;
      void this.forceStop(run);
    };
    const onKvmFailure = (reason: string) => {
      if (withinKvmWatch() && this.stopReason === undefined) {
        const after = ((Date.now() - startedAt) / 1000).toFixed(1);
        abandon({ kind: "kvm-failed", reason: `${reason}, ${after}s after start` });
      } else {
        this.log(`the VM stopped: ${reason}; stopping QEMU`);
        abandon({ kind: "exit", code: ExitCode.Failure });
      }
    };

    const serialDone = pumpLines(child.stdout!, (line) => this.onSerial(line));
    const stderrDone = pumpLines(child.stderr!, (line) => {
      this.opts.logOut.write(`${line}\n`);
      stderrTail.push(line);
      if (stderrTail.length > STDERR_TAIL) stderrTail.shift();
      if (kvmStderr === undefined && looksLikeKvmFailure(line)) {
        kvmStderr = line.trim();
        // QEMU stays alive after "KVM internal error"; QMP will say internal-error too,
        // but the text is the first and clearest sign.
        if (accel === "kvm") onKvmFailure(`QEMU reported "${kvmStderr}"`);
      }
    });

    const connectAbort = new AbortController();
    const checkStatus = async (qmp: QmpClient) => {
      const status = await qmp.queryStatus().catch(() => undefined);
      if (status?.status === "internal-error") {
        onKvmFailure(
          accel === "kvm"
            ? `QMP reports run state internal-error${kvmStderr ? ` after "${kvmStderr}"` : ""}`
            : "QMP reports run state internal-error",
        );
      } else if (status?.status === "guest-panicked") {
        this.log("the guest kernel panicked; stopping QEMU");
        abandon({ kind: "exit", code: ExitCode.Failure });
      }
    };
    let shutdownEvent: QmpEvent | undefined;
    const qmpDone = QmpClient.connect(this.opts.qmpSocket, { timeoutMs: 15_000, signal: connectAbort.signal })
      .then((qmp) => {
        if (run.exited) return qmp.close();
        run.qmp = qmp;
        this.log("QMP connected");
        qmp.on("SHUTDOWN", (event) => (shutdownEvent = event));
        qmp.on("POWERDOWN", () => this.log("ACPI power-down sent to the guest"));
        qmp.on("GUEST_PANICKED", () => this.log("the guest reported a kernel panic"));
        qmp.on("STOP", () => void checkStatus(qmp));
        if (this.stopReason !== undefined && !this.killedAfterGrace) this.powerdown(qmp);
        void checkStatus(qmp); // the VM may have stopped before we connected
      })
      .catch((error: Error) => {
        // A QEMU that is dying (e.g. a failed KVM start) drops QMP a moment before its exit is
        // seen: only complain about a QEMU that is still running after that moment.
        setTimeout(() => {
          if (!run.exited && !connectAbort.signal.aborted) {
            this.log(`cannot talk to QEMU over QMP (${error.message}); power-down on SIGTERM will not work`);
          }
        }, 1000).unref();
      });

    const result = await child;
    run.exited = true;
    process.off("exit", killOnExit);
    connectAbort.abort();
    await Promise.all([serialDone, stderrDone, qmpDone]);
    run.qmp?.close();
    clearTimeout(this.graceTimer);
    fs.rmSync(this.opts.qmpSocket, { force: true });

    if (result.failed && result.exitCode === undefined && result.signal === undefined) {
      // spawn itself failed (ENOENT, EACCES)
      throw new LauncherError(`cannot start ${this.opts.binary}: ${result.message}`, ExitCode.Host);
    }
    if (run.verdict) return run.verdict;
    const how = result.signal ? `was killed by ${result.signal}` : `exited with code ${result.exitCode}`;
    if (this.killedAfterGrace) {
      this.log(`QEMU ${how} after the grace period: exit code ${ExitCode.Killed}`);
      return { kind: "exit", code: ExitCode.Killed };
    }
    if (result.exitCode === 0) {
      const why = describeShutdown(shutdownEvent);
      this.log(`QEMU exited cleanly (${why})${this.stopReason ? ` after ${this.stopReason}` : ""}: exit code 0`);
      return { kind: "exit", code: ExitCode.Ok };
    }
    if (accel === "kvm" && kvmStderr !== undefined && withinKvmWatch() && this.stopReason === undefined) {
      return { kind: "kvm-failed", reason: `QEMU ${how} right after start: "${kvmStderr}"` };
    }
    this.log(`QEMU ${how} on its own: exit code ${ExitCode.Failure}`);
    return { kind: "exit", code: ExitCode.Failure };
  }

  private onSerial(line: string): void {
    this.opts.serialOut.write(`${line}\n`);
    for (const listener of [...this.lineListeners]) listener(line);
    if (!this.ready && line.includes(this.opts.readyMarker)) {
      this.ready = true;
      for (const listener of [...this.readyListeners]) listener();
      this.readyListeners.clear();
    }
  }
}

/**
 * Runs QEMU under a {@link QemuSupervisor}, turning SIGTERM/SIGINT into a graceful stop,
 * and resolves with the exit code for the launcher (ExitCode.Ok, Failure or Killed).
 *
 * @param onStart receives the supervisor before QEMU starts, to subscribe to lines/readiness.
 * @throws LauncherError(ExitCode.Host) when KVM was demanded and is unusable, or QEMU cannot start.
 */
export async function superviseQemu(
  options: SuperviseOptions,
  onStart?: (supervisor: QemuSupervisor) => void,
): Promise<ExitCodeValue> {
  const supervisor = new QemuSupervisor(options);
  onStart?.(supervisor);
  const onSigterm = () => supervisor.requestStop("SIGTERM received");
  const onSigint = () => supervisor.requestStop("SIGINT received");
  process.on("SIGTERM", onSigterm);
  process.on("SIGINT", onSigint);
  try {
    return await supervisor.run();
  } finally {
    process.off("SIGTERM", onSigterm);
    process.off("SIGINT", onSigint);
  }
}

function describeShutdown(event: QmpEvent | undefined): string {
  const reason = typeof event?.data?.reason === "string" ? event.data.reason : undefined;
  switch (reason) {
    case "guest-shutdown":
      return "the guest powered off";
    case "guest-reset":
      return "the guest reset with -no-reboot";
    case "guest-panic":
      return "the guest panicked";
    case "host-qmp-quit":
      return "QMP quit";
    case "host-signal":
      return "QEMU received a signal";
    case undefined:
      return "no SHUTDOWN event seen";
    default:
      return reason;
  }
}

/** Splits a stream into lines (a final unterminated line included), dropping `\r`. */
function pumpLines(stream: NodeJS.ReadableStream, onLine: (line: string) => void): Promise<void> {
  const rl = readline.createInterface({ input: stream, crlfDelay: Infinity });
  rl.on("line", (line) => onLine(line.replace(/\r+$/, "")));
  return new Promise((resolve) => rl.once("close", () => resolve()));
}

/** Catches argv mistakes of the plan layer early, with a message that says which. */
function checkArgv(argv: readonly string[], accel: Accel, qmpSocket: string): void {
  const valueOf = (flag: string) => argv.filter((_, i) => argv[i - 1] === flag);
  const problems: string[] = [];
  if (!valueOf("-qmp").some((v) => v.startsWith(`unix:${qmpSocket},`) && v.includes("server=on") && v.includes("wait=off"))) {
    problems.push(`-qmp unix:${qmpSocket},server=on,wait=off is missing`);
  }
  const wantAccel = accelArgs(accel)[1]!;
  if (!valueOf("-accel").includes(wantAccel)) problems.push(`-accel ${wantAccel} is missing`);
  if (!valueOf("-serial").includes("stdio")) problems.push("-serial stdio is missing");
  if (argv.includes("-daemonize")) problems.push("-daemonize is not allowed");
  if (problems.length > 0) {
    throw new LauncherError(`internal error: bad QEMU arguments: ${problems.join("; ")}`, ExitCode.Failure);
  }
}
