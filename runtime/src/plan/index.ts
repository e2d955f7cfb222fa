/** The whole plan of one start: what the dry run prints and what apply carries out. */
import type { LauncherConfig } from "../config/schema.js";
import type { ContainerNetwork } from "../network/discover.js";
import { planNetwork, type NetworkPlan } from "../network/plan.js";
import { planAccel, type Accel, type AccelFacts, type AccelPlan } from "./accel.js";
import { planCloudInit, READY_MARKER, type CloudInitFiles } from "./cloudInit.js";
import { planDisk, type DiskFacts, type DiskPlan } from "./disk.js";
import { QEMU_BINARY, qemuArgs, type RunPaths } from "./qemu.js";

export interface LaunchPlan {
  disk: DiskPlan;
  network: NetworkPlan;
  cloudInit: CloudInitFiles;
  paths: RunPaths;
  accel: AccelPlan;
  /** The serial console line that says the guest is ready (cloud-init's final message carries it). */
  readyMarker: string;
  /** The argv for either accelerator; `auto` may need both. */
  argsFor(accel: Accel): string[];
}

/** What planning needs to know of the world: the disks, the container's network, the accelerator, the salt key kept with the disk. */
export interface LaunchFacts {
  disk: DiskFacts;
  network: ContainerNetwork;
  accel: AccelFacts;
  saltKey: string;
}

export function planLaunch(config: LauncherConfig, facts: LaunchFacts, paths: RunPaths): LaunchPlan {
  const accel = planAccel(config.accel, facts.accel);
  const network = planNetwork(config, facts.network);
  const disk = planDisk(
    { basePath: config.baseImage, disksDir: config.disksDir, storageBytes: config.storageBytes, ephemeral: config.ephemeral },
    facts.disk,
  );
  const cloudInit = planCloudInit(config, network.networkConfig, facts.saltKey);
  const input = { config, overlayPath: disk.overlayPath, networkArgs: network.qemuArgs, paths };
  return { disk, network, cloudInit, paths, accel, readyMarker: READY_MARKER, argsFor: (which) => qemuArgs(input, which) };
}

/** The dry run's JSON: a contract other checks rely on (README, Pulumi side, tests). */
export function dryRunReport(plan: LaunchPlan, warnings: string[]) {
  const { warning, ...accel } = plan.accel;
  return {
    qemu: { binary: QEMU_BINARY, args: plan.argsFor(accel.first) },
    cloudInit: { metaData: plan.cloudInit.metaData, userData: plan.cloudInit.userData, networkConfig: plan.cloudInit.networkConfig },
    disk: plan.disk,
    network: plan.network,
    accel,
    instanceId: plan.cloudInit.instanceId,
    warnings: [...warnings, ...(warning ? [warning] : []), ...plan.network.warnings, ...plan.cloudInit.warnings],
  };
}
