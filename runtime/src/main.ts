#!/usr/bin/env node
/**
 * The DevMachine launcher: the container's entrypoint.
 *
 *   (no flag)   validate the environment, prepare disk, seed and network, boot and supervise QEMU
 *   --dry-run   print the whole plan as one JSON object and change nothing
 *   --health    exit 0 when the VM is ready (the image's HEALTHCHECK)
 */
import { openSync, readFileSync, statSync } from "node:fs";
import { mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { DEFAULTS, formatIssues, parseConfig, type LauncherConfig } from "./config/index.js";
import { ExitCode, LauncherError, type ExitCodeValue } from "./exitCodes.js";
import { discoverAccel, kvmVerdictPath, readHostIdentity, rememberKvmFailure } from "./apply/accel.js";
import {
  applyDisk, checkOverlay, completeBaseRecord, ensureFreeSpace, ensureWritableDir, fileSha256, identifyBase, MIN_FREE_BYTES, readDiskFacts,
} from "./apply/disk.js";
import { lockDisksDir } from "./apply/lock.js";
import { readSaltKey, storeSaltKey, type SaltKey } from "./apply/saltKey.js";
import { writeSeedIso } from "./apply/seed.js";
import { checkVncSocket, prepareVncSocket } from "./apply/vnc.js";
import { completeSave, consumeSavedState, readSavedState, setAside } from "./apply/suspend.js";
import { copyCloneDisk, readCloneFacts, removeCloneDisk, writeCaptureMeta } from "./apply/clone.js";
import { CAPTURE, clonePaths, sha256Text } from "./plan/clone.js";
import { resealInput, runReseal } from "./supervise/reseal.js";
import { OVERLAY_NAME } from "./plan/disk.js";
import { suspendPaths } from "./plan/suspend.js";
import { setGuestClock } from "./supervise/guestAgent.js";
import { checkBridgePrerequisites, setupBridge, type BridgeHandle } from "./network/bridge.js";
import { defaultRunner, discoverNetwork } from "./network/discover.js";
import { withDockerUpstream } from "./network/resolverProbe.js";
import { cloneHardwareFor, dryRunReport, planLaunch, type LaunchPlan } from "./plan/index.js";
import type { HostIdentity } from "./plan/accel.js";
import { runPaths } from "./plan/qemu.js";
import { planArch } from "./plan/arch.js";
import { ensureEfiVars, readArchFacts } from "./apply/arch.js";
import { checkHealth, missingStage, sshWaitMs, waitForSsh, watchSsh, writeState, type BootProgress } from "./supervise/readiness.js";
import { isGuestText, superviseQemu, type QemuSupervisor } from "./supervise/supervisor.js";
import { discoverLocations } from "./locations/discover.js";
import { planLocations, type LocationPlan } from "./locations/plan.js";
import { startConsoles } from "./console/index.js";

const RUN_DIR = process.env.DEVMACHINES_RUN_DIR ?? "/run/devmachines";

const log = (message: string) => process.stderr.write(`devmachines: ${message}\n`);

function readFileIfPresent(path: string): Uint8Array | undefined {
  try {
    // A FIFO or a device would block the read forever: only regular files are read.
    if (!statSync(path).isFile()) return undefined;
    // Bytes, not text: the parser refuses a file that is not UTF-8 instead of guessing.
    return readFileSync(path);
  } catch {
    return undefined;
  }
}

function loadConfig(): { config: LauncherConfig; warnings: string[] } {
  const result = parseConfig(process.env, readFileIfPresent);
  if (!result.ok) {
    throw new LauncherError(
      `invalid configuration; nothing was created or changed:\n${formatIssues(result.issues)}\nSee the configuration reference in the README.`,
      ExitCode.Config,
    );
  }
  return result;
}

/** Where the base image, the disks and the sockets are: the mounts decide, so they are read first. */
async function locate(config: LauncherConfig): Promise<LocationPlan> {
  return planLocations(config, await discoverLocations(), { ...DEFAULTS, runDir: RUN_DIR });
}

async function prepare(config: LauncherConfig, locations: LocationPlan): Promise<{ plan: LaunchPlan; host?: HostIdentity; salt: SaltKey; config: LauncherConfig }> {
  const disksDir = locations.disksDir.path;
  // The architecture first: it names the QEMU binary, and a guest of another architecture
  // than the host's has no KVM to probe. A mismatch with ARCH stops here, before any change.
  const arch = planArch(config.arch, await readArchFacts(locations.baseImage.path), disksDir);
  const [discovered, disk, accel, salt, savedFacts] = await Promise.all([
    discoverNetwork(),
    readDiskFacts(locations.baseImage.path, disksDir, { ephemeral: config.ephemeral }),
    discoverAccel(arch.kvmPossible ? config.accel : "tcg", disksDir, arch.binary),
    readSaltKey(disksDir),
    // Read before anything of this start touches the disk: its stamp must be QEMU's of the save.
    readSavedState(suspendPaths(disksDir), join(disksDir, OVERLAY_NAME)),
  ]);
  // The machine image's captured ready state: only a new machine can start from it.
  const cloneFacts = config.snapshot === "auto" && !disk.overlay ? await readCloneFacts(clonePaths()) : undefined;
  const stateThere = savedFacts.stateBytes !== undefined || savedFacts.meta !== undefined || savedFacts.metaProblem !== undefined;
  const saved = stateThere ? { facts: savedFacts, qemu: (accel.host ?? (await readHostIdentity(arch.binary))).qemu } : undefined;
  const network = await withDockerUpstream(discovered, config);
  const clone = cloneFacts && { facts: cloneFacts, qemu: (accel.host ?? (await readHostIdentity(arch.binary))).qemu };
  const facts = { disk, network, accel, saltKey: salt.key, ...(saved && { saved }), ...(clone && { clone }) };
  let plan = planLaunch(config, facts, locations, RUN_DIR, arch);
  // A new disk's base is hashed after QEMU started, unless this start would clone but for the
  // base's digest: then it is read now (a clone saves far more than the read costs).
  if (plan.clone.action === "boot" && plan.clone.needsBaseDigest && disk.base) {
    plan = planLaunch(config, { ...facts, disk: { ...disk, base: await identifyBase(locations.baseImage.path, disk.base) } }, locations, RUN_DIR, arch);
  }
  // QEMU replaces whatever file is at a VNC socket's path: refused before anything is made.
  await checkVncSocket(plan.vnc);
  return { plan, host: accel.host, salt, config };
}

async function dryRun(): Promise<ExitCodeValue> {
  const { config, warnings } = loadConfig();
  const { plan } = await prepare(config, await locate(config));
  process.stdout.write(`${JSON.stringify(dryRunReport(plan, warnings), null, 2)}\n`);
  return ExitCode.Ok;
}

async function run(): Promise<ExitCodeValue> {
  const paths = runPaths(RUN_DIR);
  // First of all: a restarted container must not report the last run's "ready".
  await mkdir(RUN_DIR, { recursive: true });
  await writeState(paths.state, { phase: "starting" });
  const { config, warnings } = loadConfig();
  // The disks folder before anything is read from it: writable, with room to boot, and ours
  // alone (a second container on the volume stops here, exit 5, having changed nothing).
  const locations = await locate(config);
  const disksDir = locations.disksDir.path;
  await ensureWritableDir(disksDir, "DISKS_DIR");
  await ensureFreeSpace(disksDir, "DISKS_DIR");
  const lock = lockDisksDir(disksDir, "DISKS_DIR");
  const { plan, host, salt } = await prepare(config, locations);
  let cloning = plan.clone.action === "clone";
  let cloneResealed = false;
  // `npm run images` captures the generic first boot: it is saved as soon as it is ready.
  const capturing = process.env.DEVMACHINES_CAPTURE === "1";
  log(`snapshot: ${plan.clone.reason}`);
  for (const warning of [...warnings, ...(lock.warning ? [lock.warning] : []), ...plan.network.warnings, ...plan.cloudInit.warnings]) {
    log(`warning: ${warning}`);
  }
  log(`architecture: ${plan.arch.arch} (${plan.arch.reason}); ${plan.arch.binary} -machine ${plan.arch.machine}`);
  log(`accelerator: ${plan.accel.first.toUpperCase()} (${plan.accel.reason})`);
  if (plan.accel.warning) log(`warning: ${plan.accel.warning}`);

  // Everything that can refuse does so before the first change (ACCEL=kvm without KVM: planLaunch).
  if (config.network === "BRIDGE") await checkBridgePrerequisites();

  // The seed lives in the run folder and the bridge undoes itself; the disk comes last,
  // so a failure before it leaves the volume as it was.
  // The salt key first: the seed's password hashes were made with it.
  await storeSaltKey(disksDir, salt);
  await writeSeedIso(plan.cloudInit, plan.paths.seedIso);
  await prepareVncSocket(plan.vnc);
  const { baseImage, socketsDir, vncSocket } = plan.locations;
  log(`base image: ${baseImage.path} (${baseImage.reason})`);
  log(`disks folder: ${disksDir} (${locations.disksDir.reason})`);
  log(`sockets: ${socketsDir.path} (${socketsDir.reason})${vncSocket && !config.vnc ? `; VNC on ${vncSocket}` : ""}`);
  log(`cloud-init: instance ${plan.cloudInit.instanceId}`);
  for (const line of plan.network.describe) log(`network: ${line}`);
  let bridge: BridgeHandle | undefined;
  if (plan.network.bridge) bridge = await setupBridge(plan.network.bridge, defaultRunner);

  // Container port 22 reaches the guest's SSH in both modes (BRIDGE: over the management link).
  const ssh = { host: "127.0.0.1", port: DEFAULTS.sshPort };
  let finished = false;
  let stopLiveness = () => {};
  const consoles = await startConsoles({ console: config.console, machine: config.hostname, paths: plan.paths, log }).catch(async (error: Error) => {
    await bridge?.undo().catch(() => undefined);
    throw new LauncherError(error.message, ExitCode.Host);
  });
  try {
    log(`disk: ${plan.disk.action} ${plan.disk.overlayPath} (${plan.disk.reason}); base ${baseIdentityNote(plan.disk)}`);
    const { resume, paths: savedPaths } = plan.suspend;
    if (resume.action === "set-aside") {
      log(`warning: ${resume.warning}`);
      await setAside(savedPaths);
    }
    // Resume: the stamp proved the disk is exactly as QEMU closed it after the save, so it is
    // neither checked (a repair would change it) nor touched before QEMU has it.
    const resumeFd = resume.action === "resume" ? consumeSavedState(savedPaths) : undefined;
    if (resume.action === "resume") log(`resume: ${resume.reason}; it is consumed now (a state is resumed once)`);
    if (plan.disk.action !== "create" && resumeFd === undefined) {
      const repaired = await checkOverlay(plan.disk.overlayPath);
      if (repaired) log(`disk: ${repaired}`);
    }
    // A clone: the captured disk is copied (and checked) before its state may be loaded onto it.
    const cloneFd = resumeFd === undefined ? await startClone(plan) : undefined;
    if (cloneFd === undefined) await applyDisk(plan.disk);
    if (plan.arch.firmware) {
      // A new disk gets a new variable store: boot entries belong to the disk they point into.
      const vars = await ensureEfiVars(plan.arch.firmware, plan.disk.action === "create");
      log(`firmware: UEFI ${plan.arch.firmware.code}, variable store ${plan.arch.firmware.vars} (${vars})`);
    }
    await writeState(plan.paths.state, { phase: "booting", ssh });
    const started = Date.now();
    const seconds = () => ((Date.now() - started) / 1000).toFixed(0);
    const seen: BootProgress = { serialOutput: false, guestText: false, cloudInit: false, cloudInitDone: false, ssh: false };
    let stopping = false;
    // READY_TIMEOUT: a guest that never becomes ready is reported (log and --health), and left
    // running for inspection (VNC, docker exec); the health check turns unhealthy.
    const readyTimer = setTimeout(() => {
      const missing = missingStage(seen);
      if (!missing || stopping) return;
      const notReady = `the guest is not ready after READY_TIMEOUT=${config.readyTimeoutSeconds} s; the stage that never came: ${missing}`;
      log(`error: ${notReady}`);
      void writeState(plan.paths.state, { phase: "booting", ssh, notReady }).catch(() => undefined);
    }, config.readyTimeoutSeconds * 1000);
    readyTimer.unref();
    try {
      let activeSupervisor: QemuSupervisor | undefined;
      const code = await superviseQemu(
        {
          binary: plan.arch.binary,
          argsFor: plan.argsFor,
          accel: plan.accel,
          readyMarker: plan.readyMarker,
          qmpSocket: plan.paths.qmpSocket,
          graceSeconds: config.graceSeconds,
          diskFull: { dir: disksDir, minFreeBytes: MIN_FREE_BYTES },
          ...(config.onStop === "suspend" && { suspendTo: savedPaths.partial }),
          ...(resumeFd !== undefined && { resumeFd }),
          ...(cloneFd !== undefined && {
            resumeFd: cloneFd,
            // The copy of the captured disk must not be booted as this machine: it holds the capture's identity.
            beforeColdBoot: async () => {
              cloneResealed = false;
              cloning = false;
              log("clone: the captured state did not load; replacing the copied disk with a new one and booting");
              await removeCloneDisk(plan.disk);
              await applyDisk(plan.disk);
            },
          }),
          onSerialData: consoles.onSerialData,
          onKvmFailure: async (reason) => {
            // KVM only ever runs after discoverAccel read the host (ACCEL=auto or kvm with a usable /dev/kvm)
            const error = await rememberKvmFailure(kvmVerdictPath(plan.locations.disksDir.path), host ?? (await readHostIdentity(plan.arch.binary)), reason);
            if (error) throw error;
            log(`remembered in ${kvmVerdictPath(plan.locations.disksDir.path)}: the next start on this host uses TCG at once (delete the file to try KVM again)`);
          },
          onStopRequested: () => {
            stopping = true;
            if (!finished) void writeState(plan.paths.state, { phase: "stopping", ssh }).catch(() => undefined);
          },
        },
        (supervisor) => {
          activeSupervisor = supervisor;
          consoles.attach(supervisor);
          if (plan.disk.completeRecord) {
            // Off the start's path: the base is hashed beside the guest's boot, once QEMU runs.
            supervisor.onStarted(() => void completeBaseRecord(plan.disk).then((line) => log(`disk: ${line}`)));
          }
          supervisor.onSerialLine((line) => {
            seen.serialOutput = true;
            if (isGuestText(line)) seen.guestText = true;
            if (/cloud-init/i.test(line)) seen.cloudInit = true;
          });
          const reseal = async (supervisor: QemuSupervisor): Promise<boolean> => {
            try {
              const input = resealInput(config, plan.cloudInit, salt.key, { user: plan.clone.action === "clone" ? plan.clone.meta.captureUser : CAPTURE.user, hostname: CAPTURE.hostname });
              const steps = await runReseal(plan.paths.guestAgentSocket, input, config.readyTimeoutSeconds * 1000);
              cloneResealed = true;
              log(`clone: resealed after ${seconds()} s (${steps}): new host keys, machine-id, random seed; host name ${config.hostname}; users ${config.users.map((user) => user.name).join(", ")}${config.userData ? "; USER_DATA applied by cloud-init" : ""}`);
              return true;
            } catch (error) {
              log(`error: clone: the reseal failed (${(error as Error).message}); stopping the guest and removing its disk, so the next start begins anew`);
              supervisor.abort("the clone could not be resealed");
              return false;
            }
          };
          supervisor.onReady(() => {
            seen.cloudInitDone = true;
            void (async () => {
              // A clone's reseal needs no correct clock: it runs beside the clock's setting.
              const resealing = cloning && supervisor.resumed ? reseal(supervisor) : undefined;
              if (supervisor.resumed) {
                // The guest's clock stood still while it was saved: set it before anyone can log in.
                await setGuestClock(plan.paths.guestAgentSocket, 10_000).then(
                  (note) => log(`guest clock set to the host's after ${seconds()} s${note ? `; ${note}` : ""}`),
                  (error: Error) => log(`warning: the guest's clock could not be set (${error.message}); it runs behind until NTP corrects it`),
                );
              } else log(`cloud-init finished after ${seconds()} s`);
              // Healthy only once resealed: until then the guest is the capture, not this machine.
              if (resealing && !(await resealing)) return;
              log(`SSH answers: ${await waitForSsh(ssh.host, ssh.port, sshWaitMs(config.readyTimeoutSeconds * 1000, Date.now() - started))}`);
              seen.ssh = true;
              // A stop may have begun while SSH was checked: never report a stopping VM as ready.
              if (finished || supervisor.stopRequested) return;
              await writeState(plan.paths.state, { phase: "ready", ssh, accel: supervisor.accel });
              stopLiveness = watchSsh(plan.paths.state, ssh, () => !finished && !supervisor.stopRequested);
              if (capturing) {
                log("capture: the generic first boot is ready; saving its state");
                process.kill(process.pid, "SIGTERM");
              }
              log(`ready after ${seconds()} s${cloning ? " (cloned)" : supervisor.resumed ? " (resumed)" : ""} under ${supervisor.accel?.toUpperCase() ?? "?"}: ${config.users.map((user) => user.name).join(", ")} can log in with ssh`);
            })().catch((error: unknown) => log(`readiness check failed: ${(error as Error).message}`));
          });
        },
      );
      // A clone that never became this machine is not kept, nor saved (a stop during the reseal
      // with ON_STOP=suspend): the next start clones or boots cleanly.
      if (cloneFd !== undefined && cloning && !cloneResealed) {
        await rm(savedPaths.partial, { force: true });
        await removeCloneDisk(plan.disk).catch((error: Error) => log(`warning: could not remove the unsealed clone's disk: ${error.message}`));
        log("clone: stopped before its reseal finished: its disk was removed, so the next start begins anew");
      } else await finishSuspend(plan, activeSupervisor);
      if (capturing && activeSupervisor?.saved) await finishCapture(plan, config);
      return code;
    } finally {
      clearTimeout(readyTimer);
    }
  } finally {
    finished = true;
    stopLiveness();
    await writeState(plan.paths.state, { phase: "stopped" }).catch(() => undefined);
    await consoles.close().catch(() => undefined);
    // A teardown problem is reported, but the guest's own outcome stays the exit code.
    await bridge?.undo().catch((error: unknown) => log(`warning: ${(error as Error).message}`));
  }
}

/** How this start knows the base, for the log. */
function baseIdentityNote(disk: LaunchPlan["disk"]): string {
  const sha = disk.base.sha256?.slice(0, 12);
  switch (disk.digestFrom) {
    case "sidecar":
      return `sha256 ${sha} (from ${disk.basePath}.sha256)`;
    case "record":
      return `sha256 ${sha} (from the disk's record: the base file is unchanged since it was hashed)`;
    case "hashed":
      return `sha256 ${sha} (hashed now${disk.refreshRecord ? "; its file's facts recorded for the next start" : ""})`;
    case "pending":
      return disk.completeRecord ? "not hashed yet: it is read once QEMU runs, and its digest recorded" : "not hashed (EPHEMERAL: its record is never read again)";
  }
}

/**
 * A clone's start: copies the captured disk into place and opens the captured state for QEMU's
 * `-incoming`. A copy that fails or does not match the capture leaves nothing behind and the
 * machine boots instead (undefined).
 */
async function startClone(plan: LaunchPlan): Promise<number | undefined> {
  if (plan.clone.action !== "clone") return undefined;
  const started = Date.now();
  try {
    await copyCloneDisk(plan.disk, plan.clone.paths, plan.clone.meta);
    const fd = openSync(plan.clone.paths.state, "r");
    log(`clone: copied the captured disk (${(plan.clone.meta.disk.bytes / 2 ** 20).toFixed(0)} MiB, sha256 checked) in ${Date.now() - started} ms; restoring ${plan.clone.paths.state}`);
    return fd;
  } catch (error) {
    await removeCloneDisk(plan.disk);
    log(`warning: clone: ${(error as Error).message}; the guest boots instead`);
    return undefined;
  }
}

/** The capture's description beside the saved state (clone.json): what a clone must match. */
async function finishCapture(plan: LaunchPlan, config: LauncherConfig): Promise<void> {
  const disksDir = plan.locations.disksDir.path;
  const meta = await writeCaptureMeta(disksDir, {
    format: 1,
    qemu: (await readHostIdentity(plan.arch.binary)).qemu,
    accel: "tcg",
    arch: plan.arch.arch,
    hardware: cloneHardwareFor(plan.argsFor("tcg"), plan.disk.overlayPath, [plan.paths.dir, plan.locations.socketsDir.path]),
    cpu: config.cpu,
    memoryBytes: config.memoryBytes,
    storageBytes: config.storageBytes,
    // The machine images' base has a digest beside it; any other is hashed here rather than described without one.
    base: { ...plan.disk.base, sha256: plan.disk.base.sha256 ?? (await fileSha256(plan.disk.basePath)) },
    basePath: plan.disk.basePath,
    networkConfig: sha256Text(plan.cloudInit.networkConfig),
    captureUser: config.users[0]!.name,
  });
  log(`capture: ${meta.disk.bytes} bytes of disk and ${meta.stateBytes} bytes of state described in ${join(disksDir, "clone.json")}`);
}

/** After QEMU exited: a completed save is put in place for the next start; a partial one is removed. */
async function finishSuspend(plan: LaunchPlan, supervisor: QemuSupervisor | undefined): Promise<void> {
  const paths = plan.suspend.paths;
  if (!supervisor?.saved || !supervisor.accel) {
    await rm(paths.partial, { force: true });
    return;
  }
  const started = Date.now();
  const qemu = (await readHostIdentity(plan.arch.binary)).qemu;
  const meta = await completeSave(paths, plan.disk.overlayPath, { qemu, accel: supervisor.accel, machineHash: plan.suspend.machineHashFor(supervisor.accel) }).catch(
    async (error: Error) => {
      log(`error: the saved state could not be put in place (${error.message}); the next start boots the guest from its disk`);
      await rm(paths.partial, { force: true });
      return undefined;
    },
  );
  if (!meta) return;
  log(`suspended: ${(meta.stateBytes / 2 ** 20).toFixed(0)} MiB in ${paths.state} (on disk after ${Date.now() - started} ms more); the next start resumes it`);
}

async function health(): Promise<ExitCodeValue> {
  const result = await checkHealth(runPaths(RUN_DIR).state);
  process.stdout.write(`${result.message}\n`);
  return result.healthy ? ExitCode.Ok : ExitCode.Failure;
}

const USAGE = `Usage: devmachines-runtime [--dry-run | --health | --help]
Boots the QEMU virtual machine described by the environment (CPU, MEMORY, STORAGE, USER, ...).
  --dry-run  print the plan as JSON and change nothing
  --health   exit 0 when the VM is ready (SSH answers and cloud-init finished)`;

async function main(argv: string[]): Promise<ExitCodeValue> {
  const flag = argv[0];
  if (argv.length > 1 || (flag && !["--dry-run", "--health", "--help", "-h"].includes(flag))) {
    process.stderr.write(`${USAGE}\n`);
    return ExitCode.Config;
  }
  if (flag === "--help" || flag === "-h") {
    process.stdout.write(`${USAGE}\n`);
    return ExitCode.Ok;
  }
  if (flag === "--health") return health();
  if (flag === "--dry-run") return dryRun();
  return run();
}

/**
 * Exits once stdout and stderr have handed everything to the OS. A pipe takes 64 KiB at
 * a time; process.exit() right after a large write (the dry run's JSON) would cut it there.
 * A stream calls back in order, so an empty write's callback means all before it is out.
 */
async function exitWhenFlushed(code: ExitCodeValue): Promise<never> {
  const flushed = (stream: NodeJS.WriteStream) => new Promise<void>((resolve) => stream.write("", () => resolve()));
  await Promise.all([flushed(process.stdout), flushed(process.stderr)]);
  process.exit(code);
}

main(process.argv.slice(2)).then(
  (code) => exitWhenFlushed(code),
  (error: unknown) => {
    if (error instanceof LauncherError) {
      log(error.message);
      return exitWhenFlushed(error.exitCode);
    }
    log(`unexpected failure: ${(error as Error).stack ?? String(error)}`);
    return exitWhenFlushed(ExitCode.Failure);
  },
);
