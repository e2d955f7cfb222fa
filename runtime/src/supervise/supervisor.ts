/**
 * Runs QEMU and looks after it until it exits: forwards the serial console, turns
 * SIGTERM/SIGINT into an ACPI power-down with a grace period, maps the outcome to an exit
 * code, and owns the accelerator fallback the plan allows (ACCEL=auto: KVM, then TCG).
 * The decisions themselves are pure functions in decide.ts; this module gathers events.
 *
 * QEMU argv the supervisor requires (built by the plan layer through `argsFor`):
 *   - `-accel kvm` or `-accel tcg,thread=multi`: plan/accel.ts's accelArgs(accel);
 *   - `-qmp unix:<qmpSocket>,server=on,wait=off`;
 *   - `-serial stdio -display none -monitor none`: QEMU's stdout is then exactly the
 *     guest's first serial port (the guest should use `console=ttyS0`); no `mon:stdio`,
 *     since the HMP multiplexer would eat the console and `Ctrl-A` sequences;
 *   - no `-daemonize`, and no `-no-shutdown` (a powered-off guest must end QEMU);
 *   - nothing KVM-only in `argsFor("tcg")` (e.g. `-cpu host`: use `-cpu max` under TCG).
 *
 * QEMU runs under `setpriv --pdeathsig KILL` (util-linux): if the launcher dies, even by
 * SIGKILL, the kernel kills QEMU too, so no orphaned VM keeps the disk open.
 */
import fs from "node:fs";
import readline from "node:readline";
import type { Writable } from "node:stream";
import { setTimeout as delay } from "node:timers/promises";
import { execa, type ResultPromise } from "execa";
import { ExitCode, LauncherError, type ExitCodeValue } from "../exitCodes.js";
import { accelArgs, type Accel } from "../plan/accel.js";
import { QmpClient } from "./qmp.js";
import { watchDiskFull, type DiskFullWatch } from "./diskFull.js";
import {
  DEFAULT_PROGRESS_BOUNDS,
  looksLikeKvmFailure,
  awaitingProgress,
  missingProgress,
  onQemuExit,
  onResumeFailure,
  onVmFailure,
  type Next,
  type ProgressBounds,
  type RunContext,
} from "./decide.js";

/** Options for {@link QemuSupervisor} and {@link superviseQemu}. */
export interface SuperviseOptions {
  /** QEMU binary (the plan's QEMU_BINARY; tests pass a stand-in). */
  binary: string;
  /**
   * The full QEMU argv (without the binary) for an accelerator. Called again with the
   * fallback, so it must be pure. Must contain accelArgs(accel) and the arguments listed at
   * the top of this module.
   */
  argsFor: (accel: Accel) => string[];
  /** The plan's decision: what to start with, and what KVM may fall back to before readiness. */
  accel: { first: Accel; fallback?: Accel };
  /** The path in `-qmp unix:<path>,...`. Removed before each start (a stale one blocks QEMU). */
  qmpSocket: string;
  /** How long the guest gets to power off after SIGTERM/SIGINT before QEMU is killed. */
  graceSeconds: number;
  /** A serial console line containing this marks the guest ready (the plan's READY_MARKER). */
  readyMarker: string;
  /** Under KVM with a fallback: how soon the guest must show progress. Default {@link DEFAULT_PROGRESS_BOUNDS}. */
  progressBounds?: ProgressBounds;
  /** Called when KVM failed this guest, to remember the verdict; a rejection is logged as a warning. */
  onKvmFailure?: (reason: string) => Promise<void>;
  /** Where the guest's disk lives: a guest paused on a full folder is resumed once it has this much free. */
  diskFull?: { dir: string; minFreeBytes: number };
  /** Called once when SIGTERM/SIGINT asks the VM to stop. */
  onStopRequested?: (reason: string) => void;
  /** Called with the serial console's raw bytes as they come (prompts without a line ending too). */
  onSerialData?: (data: Buffer) => void;
  /** Where the serial console goes. Default process.stdout (so `docker logs` shows the boot). */
  serialOut?: Writable;
  /** Where QEMU's stderr and the supervisor's `devmachines:` lines go. Default process.stderr. */
  logOut?: Writable;
  /**
   * ON_STOP=suspend: on SIGTERM, a ready guest's state is saved to this file (QMP `migrate`)
   * instead of powering it off; {@link QemuSupervisor.saved} tells whether that completed. The
   * launcher puts the file in place after QEMU exits (apply/suspend.ts).
   */
  suspendTo?: string;
  /**
   * Resume: an open descriptor of a saved state, loaded by the first QEMU run (`-incoming fd:3`).
   * The guest counts as ready once it runs again; a load that fails boots the guest from its disk.
   */
  resumeFd?: number;
  /**
   * Called when loading the state failed, before the guest boots from its disk instead (a
   * clone's disk, a copy of the capture's, must be replaced by a new one first).
   */
  beforeColdBoot?: () => Promise<void>;
}

/** One QEMU run: which accelerator, and why it was abandoned if it was. */
export interface Attempt {
  accel: Accel;
  /** Set when this run was abandoned for a restart under the fallback. */
  kvmFailure?: string;
}

/** The descriptor number the saved state has in QEMU (`-incoming fd:3`). */
const INCOMING_FD = 3;
/** How often a save's progress is polled, and a resume's load. */
const MIGRATION_POLL_MS = 100;

/** How long QEMU gets to act on QMP `quit` before SIGKILL. */
const QUIT_TIMEOUT_MS = 3000;
/** How long QEMU's output may still arrive after its exit. */
const PIPE_DRAIN_MS = 2000;
/** How often the progress of a KVM start is checked. */
const PROGRESS_POLL_MS = 250;
/** Clock ticks per second in /proc/<pid>/stat (USER_HZ, 100 on every Linux architecture QEMU runs here). */
const USER_HZ = 100;
/** Runs QEMU so that the kernel kills it when the launcher dies (util-linux, in every Debian). */
const SETPRIV = ["setpriv", "--pdeathsig", "KILL", "--"];

interface Run {
  accel: Accel;
  ctx: RunContext;
  child: ResultPromise;
  startedAt: number;
  qmp?: QmpClient;
  exited: boolean;
  /** Set when the supervisor decided the run's outcome before QEMU exited. */
  decided?: Next;
  kvmStderr?: string;
  lastStderr?: string;
  shutdownReason?: string;
  firstOutputMs?: number;
  firstLineMs?: number;
  progressTimer?: NodeJS.Timeout;
  diskFull?: DiskFullWatch;
  /** This run loads a saved state; `resumed` once the guest runs again. */
  resuming?: boolean;
  resumed?: boolean;
}

/**
 * Supervises one DevMachine's QEMU. Create it, subscribe with {@link onSerialLine} /
 * {@link onReady}, call {@link run}, and call {@link requestStop} on SIGTERM/SIGINT
 * ({@link superviseQemu} does the signal wiring).
 */
export class QemuSupervisor {
  private readonly opts: Required<Pick<SuperviseOptions, "serialOut" | "logOut" | "progressBounds">> & SuperviseOptions;
  private readonly lineListeners = new Set<(line: string) => void>();
  private readonly dataListeners = new Set<(data: Buffer) => void>();
  private readonly readyListeners = new Set<() => void>();
  private readonly startedListeners = new Set<() => void>();
  private ready = false;
  private stopReason: string | undefined;
  private graceTimer: NodeJS.Timeout | undefined;
  private killedAfterGrace = false;
  private current: Run | undefined;
  private savedState = false;
  private resumedState = false;
  /** Every QEMU run so far, in order. */
  readonly attempts: Attempt[] = [];

  constructor(options: SuperviseOptions) {
    // `??`, not spread defaults: an explicit `undefined` must not erase a default
    this.opts = {
      ...options,
      progressBounds: options.progressBounds ?? DEFAULT_PROGRESS_BOUNDS,
      serialOut: options.serialOut ?? process.stdout,
      logOut: options.logOut ?? process.stderr,
    };
    if (options.onSerialData) this.dataListeners.add(options.onSerialData);
  }

  /** Subscribes to serial console lines. Returns an unsubscribe function. */
  onSerialLine(listener: (line: string) => void): () => void {
    this.lineListeners.add(listener);
    return () => this.lineListeners.delete(listener);
  }

  /** Subscribes to the serial console's raw bytes. Returns an unsubscribe function. */
  onSerialData(listener: (data: Buffer) => void): () => void {
    this.dataListeners.add(listener);
    return () => this.dataListeners.delete(listener);
  }

  /**
   * Types into the guest's serial console (QEMU's stdin is the serial port's input).
   * Dropped while no QEMU runs; returns whether it was passed on.
   */
  writeSerial(data: Buffer | string): boolean {
    const run = this.current;
    const stdin = run?.child.stdin;
    if (!run || run.exited || !stdin || stdin.destroyed || !stdin.writable) return false;
    stdin.write(data);
    return true;
  }

  /** Calls `listener` once, when the first QEMU process has been started. */
  onStarted(listener: () => void): void {
    this.startedListeners.add(listener);
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

  /** True once the guest's state was saved on SIGTERM (ON_STOP=suspend). */
  get saved(): boolean {
    return this.savedState;
  }

  /** True when the guest was resumed from a saved state rather than booted. */
  get resumed(): boolean {
    return this.resumedState;
  }

  /** True once a stop was asked for (SIGTERM/SIGINT): the VM is on its way down. */
  get stopRequested(): boolean {
    return this.stopReason !== undefined;
  }

  private log(message: string): void {
    this.opts.logOut.write(`devmachines: ${message}\n`);
  }

  /**
   * Starts QEMU and resolves with the launcher's exit code when it is gone for good.
   *
   * @throws LauncherError(ExitCode.Host) when the QEMU binary (or setpriv) cannot be started.
   */
  async run(): Promise<ExitCodeValue> {
    // One handler for the launcher's whole life: a dying launcher takes QEMU along (the
    // pdeathsig covers SIGKILL; this covers a normal exit in the middle of a run).
    const killOnExit = () => {
      if (this.current && !this.current.exited) this.current.child.kill("SIGKILL");
    };
    process.on("exit", killOnExit);
    try {
      let accel = this.opts.accel.first;
      let fallback = this.opts.accel.fallback;
      for (;;) {
        if (this.stopReason !== undefined) {
          this.log(`${this.stopReason} before QEMU started; not starting it`);
          return ExitCode.Ok;
        }
        const next = await this.runOnce(accel, fallback);
        if (next.kind === "exit") {
          this.log(`${next.message}: exit code ${next.code}`);
        } else if (next.coldBoot) {
          this.log(`warning: ${next.reason}: the saved state cannot be resumed, so the guest boots from its disk`);
          await this.opts.beforeColdBoot?.();
          continue; // same accelerator, same fallback; the state is consumed, so this run boots
        } else {
          this.attempts[this.attempts.length - 1]!.kvmFailure = next.reason;
          this.log(
            `warning: KVM cannot run this guest (${next.reason}). /dev/kvm is there but does not work ` +
              "for ordinary guests (e.g. a paravirtual KVM such as kvm_pvm). ACCEL=auto: restarting the VM " +
              `under ${next.accel === "tcg" ? "TCG software emulation, which is much slower" : next.accel}.`,
          );
        }
        if (next.kvmFailure !== undefined) await this.rememberKvmFailure(next.kvmFailure);
        if (next.kind === "exit") return next.code;
        accel = next.accel;
        fallback = undefined;
      }
    } finally {
      process.off("exit", killOnExit);
    }
  }

  private async rememberKvmFailure(reason: string): Promise<void> {
    if (!this.opts.onKvmFailure) return;
    await this.opts.onKvmFailure(reason).catch((error: Error) => this.log(`warning: cannot remember the KVM failure: ${error.message}`));
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
    this.opts.onStopRequested?.(reason);
    const run = this.current;
    if (!run || run.exited) return;
    run.ctx.stopping = true;
    if (run.diskFull?.paused) {
      // A paused guest cannot act on ACPI: waiting out the grace period would only delay the stop.
      this.log(`${reason}: the guest is paused on a full disks folder and cannot power off; stopping QEMU (its disk stays consistent; writes the guest had not flushed are lost)`);
      this.killedAfterGrace = true; // not a clean power-off: exit code 4, as after the grace period
      void this.forceStop(run);
      return;
    }
    if (this.opts.suspendTo !== undefined && run.qmp && run.ctx.ready) {
      this.log(`${reason}: saving the guest's state (ON_STOP=suspend); stopping QEMU in ${this.opts.graceSeconds}s otherwise`);
      void this.suspend(run, run.qmp, this.opts.suspendTo);
    } else {
      if (this.opts.suspendTo !== undefined) this.log(`ON_STOP=suspend: the guest is not ready yet, so it is powered off instead of saved`);
      this.log(`${reason}: asking the guest to power off (ACPI); killing it in ${this.opts.graceSeconds}s otherwise`);
      if (run.qmp) this.powerdown(run.qmp);
      // else: sent as soon as QMP connects (see connectQmp)
    }
    this.graceTimer = setTimeout(() => {
      if (run.exited) return;
      this.killedAfterGrace = true;
      this.log(`the guest did not power off within ${this.opts.graceSeconds}s: stopping QEMU`);
      void this.forceStop(run);
    }, this.opts.graceSeconds * 1000);
  }

  /**
   * Pauses the guest and writes its RAM and device state to `path` (QMP `migrate` to a pipe into
   * the file), printing progress, then quits QEMU. The disk is flushed and closed by QEMU before
   * it exits. A save that fails lets the guest run on and powers it off as ON_STOP=poweroff would.
   */
  private async suspend(run: Run, qmp: QmpClient, path: string): Promise<void> {
    const started = Date.now();
    const secs = () => ((Date.now() - started) / 1000).toFixed(1);
    try {
      await qmp.execute("stop");
      // The default bandwidth cap (tens of MiB/s) is for live migration over a network; a
      // paused guest written to a local file should go as fast as the disk takes it.
      await qmp.execute("migrate-set-parameters", { "max-bandwidth": 2 ** 40 });
      await qmp.execute("migrate", { uri: `exec:cat > ${shellQuote(path)}` });
      let lastLog = Date.now();
      for (;;) {
        const info = await qmp.execute<MigrationInfo>("query-migrate");
        if (info.status === "completed") {
          this.savedState = true;
          this.log(`state saved in ${secs()}s: ${mib(info.ram?.transferred)} MiB written for ${mib(info.ram?.total)} MiB of guest memory`);
          break;
        }
        if (info.status === "failed" || info.status === "cancelled") throw new Error(info["error-desc"] ?? `migration ${info.status}`);
        if (Date.now() - lastLog >= 1000) {
          lastLog = Date.now();
          this.log(`saving: ${mib(info.ram?.transferred)} of at most ${mib(info.ram?.total)} MiB after ${secs()}s`);
        }
        if (run.exited) return;
        await delay(MIGRATION_POLL_MS);
      }
    } catch (error) {
      if (run.exited || this.killedAfterGrace) return;
      this.log(`warning: saving the guest's state failed after ${secs()}s (${(error as Error).message}): powering it off instead`);
      await qmp.execute("cont").catch(() => undefined);
      this.powerdown(qmp);
      return;
    }
    await this.forceStop(run);
  }

  /** Resume: waits for QEMU to load the state, lets the guest run, and marks it ready. */
  private async watchResume(run: Run, qmp: QmpClient): Promise<void> {
    const started = Date.now();
    for (;;) {
      if (run.exited) return;
      const status = await qmp.queryStatus().catch(() => undefined);
      if (status && status.status !== "inmigrate") {
        // A state saved from a paused guest loads paused: it is let run here.
        if (!status.running) await qmp.execute("cont");
        break;
      }
      await delay(MIGRATION_POLL_MS);
    }
    run.resumed = true;
    this.resumedState = true;
    this.log(`state loaded in ${((Date.now() - started) / 1000).toFixed(1)}s: the guest runs again`);
    this.markReady(run);
  }

  private powerdown(qmp: QmpClient): void {
    qmp.execute("system_powerdown").catch((error: Error) => {
      this.log(`system_powerdown failed: ${error.message}`);
    });
  }

  /** QMP `quit`, then SIGKILL if QEMU is still there. */
  private async forceStop(run: Run): Promise<void> {
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

  /**
   * Stops QEMU at once (no power-off, no save) and ends with a failure: the guest must not go on
   * running (a clone whose reseal failed still carries another machine's identity).
   */
  abort(message: string): void {
    const run = this.current;
    if (!run || run.exited) return;
    run.ctx.stopping = true;
    this.decide(run, { kind: "exit", code: ExitCode.Failure, message });
  }

  /** Ends the run early with a decision: QEMU may still be alive, but the VM is dead or stuck. */
  private decide(run: Run, next: Next): void {
    if (run.decided || run.exited) return;
    run.decided = next;
    clearInterval(run.progressTimer);
    void this.forceStop(run);
  }

  private onVmFailure(run: Run, reason: string): void {
    const after = ((Date.now() - run.startedAt) / 1000).toFixed(1);
    this.decide(run, onVmFailure(run.ctx, `${reason}, ${after}s after start`));
  }

  /** Under KVM with a fallback and before readiness: a guest that shows no progress is KVM's failure. */
  private watchProgress(run: Run): void {
    if (run.accel !== "kvm" || !run.ctx.fallback) return;
    const bounds = this.opts.progressBounds;
    run.progressTimer = setInterval(() => {
      if (run.exited || run.decided || run.ctx.ready || run.ctx.stopping || !awaitingProgress(run)) {
        clearInterval(run.progressTimer);
        return;
      }
      const progress = { elapsedMs: Date.now() - run.startedAt, cpuMs: cpuTimeMs(run.child.pid), firstOutputMs: run.firstOutputMs, firstLineMs: run.firstLineMs };
      const missing = missingProgress(progress, bounds);
      if (missing) this.decide(run, onVmFailure(run.ctx, missing));
    }, PROGRESS_POLL_MS);
  }

  private async runOnce(accel: Accel, fallback: Accel | undefined): Promise<Next> {
    // Only the first run may load the state: it was consumed (apply/suspend.ts) and a failed load boots.
    const resuming = this.opts.resumeFd !== undefined && this.attempts.length === 0;
    const argv = [...this.opts.argsFor(accel), ...(resuming ? ["-incoming", `fd:${INCOMING_FD}`] : [])];
    checkArgv(argv, accel, this.opts.qmpSocket);
    fs.rmSync(this.opts.qmpSocket, { force: true });
    this.attempts.push({ accel });

    const [wrapper, ...wrapperArgs] = SETPRIV;
    const child = execa(wrapper!, [...wrapperArgs, this.opts.binary, ...argv], {
      // A pipe, not "ignore": the consoles type into the guest's serial port through it.
      // The saved state, when resuming, becomes QEMU's descriptor 3 (setpriv passes it on).
      // (execa takes a descriptor number there, though its types only list it for stdin/stdout/stderr)
      stdio: ["pipe", "pipe", "pipe", (resuming ? this.opts.resumeFd! : "ignore") as "ignore"],
      buffer: false,
      reject: false,
      // Own process group: a terminal's Ctrl-C must reach only the launcher, which then
      // powers the guest down, instead of killing QEMU outright.
      detached: true,
    }) as unknown as ResultPromise; // the fourth descriptor is never read here: the usual shape
    // QEMU has its own copy now; the launcher's would keep the unlinked state's blocks allocated.
    if (resuming) fs.closeSync(this.opts.resumeFd!);
    const run: Run = {
      accel,
      ctx: { accel, fallback, ready: false, stopping: this.stopReason !== undefined },
      child,
      startedAt: Date.now(),
      exited: false,
      resuming,
    };
    this.current = run;
    const how = `${fallback ? `, ${fallback.toUpperCase()} if it fails before the guest is ready` : ""}${resuming ? ", resuming the saved state" : ""}`;
    this.log(`started QEMU (pid ${child.pid ?? "?"}) under ${accel === "kvm" ? "KVM" : "TCG"}${how}`);
    for (const listener of [...this.startedListeners]) listener();
    this.startedListeners.clear();

    child.stdout!.once("data", () => (run.firstOutputMs ??= Date.now() - run.startedAt));
    // QEMU exiting closes its end; a late keystroke must not crash the launcher with EPIPE.
    child.stdin?.on("error", () => {});
    child.stdout!.on("data", (data: Buffer) => {
      for (const listener of [...this.dataListeners]) listener(data);
    });
    const serialDone = pumpLines(child.stdout!, (line) => this.onSerial(run, line));
    const stderrDone = pumpLines(child.stderr!, (line) => {
      this.opts.logOut.write(`${line}\n`);
      run.lastStderr = line;
      if (run.kvmStderr === undefined && accel === "kvm" && looksLikeKvmFailure(line)) {
        run.kvmStderr = line.trim();
        // QEMU stays alive after "KVM internal error"; QMP will say internal-error too,
        // but the text is the first and clearest sign.
        this.onVmFailure(run, `QEMU reported "${run.kvmStderr}"`);
      }
    });
    this.watchProgress(run);
    const connectAbort = new AbortController();
    const qmpDone = this.connectQmp(run, connectAbort.signal);

    const result = await child;
    run.exited = true;
    run.diskFull?.close();
    clearInterval(run.progressTimer);
    connectAbort.abort();
    // QEMU's pipes close with it, unless something it started still holds them: never wait on those.
    const drained = await Promise.race([Promise.all([serialDone, stderrDone]).then(() => true), delay(PIPE_DRAIN_MS, false)]);
    if (!drained) {
      child.stdout!.destroy();
      child.stderr!.destroy();
    }
    await qmpDone;
    run.qmp?.close();
    clearTimeout(this.graceTimer);
    fs.rmSync(this.opts.qmpSocket, { force: true });

    if (result.failed && result.exitCode === undefined && result.signal === undefined) {
      // spawn itself failed (ENOENT, EACCES)
      throw new LauncherError(`cannot start ${SETPRIV[0]} ${this.opts.binary}: ${result.message}`, ExitCode.Host);
    }
    if ((result.exitCode === 126 || result.exitCode === 127) && /^setpriv: /.test(run.lastStderr ?? "")) {
      throw new LauncherError(`cannot start ${this.opts.binary}: ${run.lastStderr}`, ExitCode.Host);
    }
    if (run.decided) return run.decided;
    if (run.resuming && !run.resumed && !run.ctx.stopping) {
      return onResumeFailure(run.ctx, { exitCode: result.exitCode, signal: result.signal }, run.lastStderr);
    }
    return onQemuExit(
      { ...run.ctx, killedAfterGrace: this.killedAfterGrace, kvmStderr: run.kvmStderr, stopReason: this.stopReason },
      { exitCode: result.exitCode, signal: result.signal, shutdownReason: run.shutdownReason },
    );
  }

  private connectQmp(run: Run, signal: AbortSignal): Promise<void> {
    const checkStatus = async (qmp: QmpClient) => {
      const status = await qmp.queryStatus().catch(() => undefined);
      if (status?.status === "internal-error") {
        this.onVmFailure(run, `QMP reports run state internal-error${run.kvmStderr ? ` after "${run.kvmStderr}"` : ""}`);
      } else if (status?.status === "guest-panicked") {
        this.decide(run, { kind: "exit", code: ExitCode.Failure, message: "the guest kernel panicked; QEMU stopped" });
      }
    };
    return QmpClient.connect(this.opts.qmpSocket, { timeoutMs: 15_000, signal })
      .then((qmp) => {
        if (run.exited) return qmp.close();
        run.qmp = qmp;
        this.log("QMP connected");
        qmp.on("SHUTDOWN", (event) => {
          if (typeof event.data?.reason === "string") run.shutdownReason = event.data.reason;
        });
        qmp.on("POWERDOWN", () => this.log("ACPI power-down sent to the guest"));
        qmp.on("GUEST_PANICKED", () => this.log("the guest reported a kernel panic"));
        qmp.on("STOP", () => void checkStatus(qmp));
        if (this.opts.diskFull) run.diskFull = watchDiskFull(qmp, { ...this.opts.diskFull, log: (message) => this.log(message) });
        void checkStatus(qmp); // the VM may have stopped before we connected
        if (run.resuming) void this.watchResume(run, qmp).catch((error: Error) => this.log(`resume: ${error.message}`));
        if (this.stopReason !== undefined && !this.killedAfterGrace) this.powerdown(qmp);
      })
      .catch((error: Error) => {
        // A QEMU that is dying (e.g. a failed KVM start) drops QMP a moment before its exit is
        // seen: only complain about a QEMU that is still running after that moment.
        setTimeout(() => {
          if (!run.exited && !signal.aborted) {
            this.log(`cannot talk to QEMU over QMP (${error.message}); power-down on SIGTERM will not work`);
          }
        }, 1000).unref();
      });
  }

  private onSerial(run: Run, line: string): void {
    this.opts.serialOut.write(`${line}\n`);
    if (run.firstLineMs === undefined && isGuestText(line)) run.firstLineMs = Date.now() - run.startedAt;
    for (const listener of [...this.lineListeners]) listener(line);
    if (!run.ctx.ready && line.includes(this.opts.readyMarker)) this.markReady(run);
  }

  private markReady(run: Run): void {
    run.ctx.ready = true;
    clearInterval(run.progressTimer);
    if (this.ready) return; // an earlier run was ready already (a restart after readiness)
    this.ready = true;
    for (const listener of [...this.readyListeners]) listener();
    this.readyListeners.clear();
  }
}

/** A process's CPU time (user + system) in ms from /proc/<pid>/stat; 0 when it cannot be read. */
function cpuTimeMs(pid: number | undefined): number {
  if (pid === undefined) return 0;
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    // fields after the parenthesised command name (which may contain spaces): utime is the 12th, stime the 13th
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / USER_HZ;
  } catch {
    return 0;
  }
}

/** A line with readable text once terminal escape sequences are gone (GRUB's console set-up has none). */
export function isGuestText(line: string): boolean {
  // eslint-disable-next-line no-control-regex
  return /[A-Za-z0-9]{2}/.test(line.replace(/\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[()][0-9A-Za-z]|\x1b./g, ""));
}

/**
 * Runs QEMU under a {@link QemuSupervisor}, turning SIGTERM/SIGINT into a graceful stop
 * (the launcher's only signal handlers), and resolves with the exit code for the launcher.
 *
 * @param onStart receives the supervisor before QEMU starts, to subscribe to lines/readiness.
 * @throws LauncherError(ExitCode.Host) when QEMU cannot start.
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

/** The part of QMP `query-migrate`'s answer the save reads. */
interface MigrationInfo {
  status?: string;
  "error-desc"?: string;
  ram?: { transferred?: number; total?: number };
}

const mib = (bytes: number | undefined) => ((bytes ?? 0) / 2 ** 20).toFixed(0);

/** A path as one word for QEMU's `exec:` migration, which runs through /bin/sh. */
export function shellQuote(text: string): string {
  return `'${text.replace(/'/g, `'\\''`)}'`;
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
