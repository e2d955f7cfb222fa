/** The whole plan of one start: what the dry run prints and what apply carries out. */
import type { LauncherConfig } from "../config/schema.js";
import type { LocationPlan } from "../locations/plan.js";
import type { ContainerNetwork } from "../network/discover.js";
import { planNetwork, type NetworkPlan } from "../network/plan.js";
import { planAccel, type Accel, type AccelFacts, type AccelPlan } from "./accel.js";
import type { ArchPlan } from "./arch.js";
import { planCloudInit, READY_MARKER, type CloudInitFiles } from "./cloudInit.js";
import { planDisk, type DiskFacts, type DiskPlan } from "./disk.js";
import { planVnc, qemuArgs, runPaths, type RunPaths } from "./qemu.js";
import type { VncSpec } from "../config/vnc.js";
import { clonePaths, hardwareHash, planClone, sha256Text, type CloneFacts, type ClonePlan } from "./clone.js";
import { machineHash, planResume, suspendPaths, type ResumePlan, type SavedStateFacts, type SuspendPaths } from "./suspend.js";

/** ON_STOP and the saved state: what SIGTERM does, and whether this start resumes. */
export interface SuspendPlan {
  onStop: LauncherConfig["onStop"];
  paths: SuspendPaths;
  resume: ResumePlan;
  /** Identifies this machine under an accelerator (plan/suspend.ts machineHash): saved with the state. */
  machineHashFor(accel: Accel): string;
}

export interface LaunchPlan {
  /** Where the base image, the disks and the sockets are, and why. */
  locations: LocationPlan;
  disk: DiskPlan;
  network: NetworkPlan;
  cloudInit: CloudInitFiles;
  paths: RunPaths;
  accel: AccelPlan;
  /** The raw VNC server (VNC, or the upstream layout's /socks/vnc.sock); the console's own is in `paths`. */
  vnc?: VncSpec;
  /** The guest's architecture, and the machine, QEMU binary and firmware that go with it. */
  arch: ArchPlan;
  /** The serial console line that says the guest is ready (cloud-init's final message carries it). */
  readyMarker: string;
  suspend: SuspendPlan;
  /** SNAPSHOT: restore the machine image's captured ready state and reseal it, or boot (plan/clone.ts). */
  clone: ClonePlan;
  /** The argv for either accelerator; `auto` may need both. */
  argsFor(accel: Accel): string[];
}

/** What planning needs to know of the world: the disks, the container's network, the accelerator, the salt key kept with the disk. */
export interface LaunchFacts {
  disk: DiskFacts;
  network: ContainerNetwork;
  accel: AccelFacts;
  saltKey: string;
  /** The saved state in the disks folder, and the QEMU version (read only when there is one). */
  saved?: { facts: SavedStateFacts; qemu: string };
  /** The machine image's captured ready state (absent: none shipped), and the QEMU version when there is one. */
  clone?: { facts: CloneFacts; qemu: string | undefined; dir?: string };
}

/**
 * `locations` is decided first (planLocations), since the disk facts are read from the paths
 * it chose, and `arch` (planArch) next, since the accelerator's facts depend on it; `runDir`
 * holds the run's files, its sockets go where `locations` says.
 */
export function planLaunch(
  config: LauncherConfig,
  facts: LaunchFacts,
  locations: LocationPlan,
  runDir: string,
  arch: ArchPlan,
): LaunchPlan {
  const foreign = arch.kvmPossible ? undefined : { guest: arch.arch, host: arch.host };
  const accel = planAccel(config.accel, facts.accel, foreign);
  const paths = runPaths(runDir, locations.socketsDir.path);
  const network = planNetwork(config, facts.network);
  const disk = planDisk(
    { basePath: locations.baseImage.path, disksDir: locations.disksDir.path, storageBytes: config.storageBytes, ephemeral: config.ephemeral },
    facts.disk,
  );
  const cloudInit = planCloudInit(config, network.networkConfig, facts.saltKey);
  const vnc = planVnc(config.vnc, locations.vncSocket);
  const input = { config: { ...config, ...(vnc && { vnc }) }, overlayPath: disk.overlayPath, networkArgs: network.qemuArgs, paths, machine: arch };
  const argsFor = (which: Accel) => qemuArgs(input, which);
  const machineHashFor = (which: Accel) => machineHash(argsFor(which), [paths.dir, locations.socketsDir.path], cloudInit.instanceId);
  const savedPaths = suspendPaths(locations.disksDir.path);
  const resume: ResumePlan = facts.saved
    ? planResume(facts.saved.facts, { qemu: facts.saved.qemu, accel: accel.first, machineHash: machineHashFor(accel.first), diskAction: disk.action }, savedPaths)
    : { action: "none", reason: "no saved state: the guest boots" };
  const suspend: SuspendPlan = { onStop: config.onStop, paths: savedPaths, resume, machineHashFor };
  const clone = planClone(
    facts.clone?.facts,
    {
      snapshot: config.snapshot,
      diskAction: disk.action,
      ephemeral: config.ephemeral,
      resuming: resume.action === "resume",
      network: config.network,
      arch: arch.arch,
      accel: accel.first,
      ...(accel.fallback && { accelFallback: accel.fallback }),
      qemu: facts.clone?.qemu,
      cpu: config.cpu,
      memoryBytes: config.memoryBytes,
      storageBytes: config.storageBytes,
      base: disk.base,
      basePath: locations.baseImage.path,
      hardware: cloneHardwareFor(argsFor(accel.first), disk.overlayPath, [paths.dir, locations.socketsDir.path]),
      networkConfig: sha256Text(cloudInit.networkConfig),
    },
    clonePaths(facts.clone?.dir),
  );
  return { locations, disk, network, cloudInit, paths, accel, arch, ...(vnc && { vnc }), readyMarker: READY_MARKER, suspend, clone, argsFor };
}

/** The hardware a capture records and a clone must match (plan/clone.ts hardwareHash). */
export function cloneHardwareFor(argv: readonly string[], overlayPath: string, dirs: readonly string[]): string {
  return hardwareHash(argv, { overlayPath, dirs });
}

/** The dry run's JSON: a contract other checks rely on (README, Pulumi side, tests). */
export function dryRunReport(plan: LaunchPlan, warnings: string[]) {
  const { warning, ...accel } = plan.accel;
  return {
    qemu: { binary: plan.arch.binary, args: plan.argsFor(accel.first) },
    arch: { arch: plan.arch.arch, reason: plan.arch.reason, host: plan.arch.host, kvmPossible: plan.arch.kvmPossible, ...(plan.arch.firmware && { firmware: plan.arch.firmware }) },
    locations: plan.locations,
    cloudInit: { metaData: plan.cloudInit.metaData, userData: plan.cloudInit.userData, networkConfig: plan.cloudInit.networkConfig },
    disk: plan.disk,
    network: plan.network,
    accel,
    suspend: { onStop: plan.suspend.onStop, resume: plan.suspend.resume, savedState: plan.suspend.paths.state },
    clone: { action: plan.clone.action, reason: plan.clone.reason },
    instanceId: plan.cloudInit.instanceId,
    warnings: [...warnings, ...(warning ? [warning] : []), ...plan.network.warnings, ...plan.cloudInit.warnings],
  };
}
