/** The whole plan of one start: what the dry run prints and what apply carries out. */
import type { LauncherConfig } from "../config/schema.js";
import type { ContainerNetwork } from "../network/discover.js";
import { planNetwork, type NetworkPlan } from "../network/plan.js";
import type { Accel } from "../supervise/accel.js";
import { planCloudInit, type CloudInitFiles } from "./cloudInit.js";
import { planDisk, type DiskFacts, type DiskPlan } from "./disk.js";
import { QEMU_BINARY, qemuArgs, type RunPaths } from "./qemu.js";

export interface LaunchPlan {
  disk: DiskPlan;
  network: NetworkPlan;
  cloudInit: CloudInitFiles;
  paths: RunPaths;
  /** The argv for either accelerator; `auto` may need both. */
  argsFor(accel: Accel): string[];
}

export function planLaunch(config: LauncherConfig, facts: { disk: DiskFacts; network: ContainerNetwork }, paths: RunPaths): LaunchPlan {
  const network = planNetwork(config, facts.network);
  const disk = planDisk(
    { basePath: config.baseImage, disksDir: config.disksDir, storageBytes: config.storageBytes, ephemeral: config.ephemeral },
    facts.disk,
  );
  const cloudInit = planCloudInit(config, network.networkConfig);
  const input = { config, overlayPath: disk.overlayPath, networkArgs: network.qemuArgs, paths };
  return { disk, network, cloudInit, paths, argsFor: (accel) => qemuArgs(input, accel) };
}

/** The dry run's JSON: a contract other checks rely on (README, Pulumi side, tests). */
export function dryRunReport(plan: LaunchPlan, accel: { requested: string; first: Accel; fallback?: Accel }, warnings: string[]) {
  return {
    qemu: { binary: QEMU_BINARY, args: plan.argsFor(accel.first) },
    cloudInit: { metaData: plan.cloudInit.metaData, userData: plan.cloudInit.userData, networkConfig: plan.cloudInit.networkConfig },
    disk: plan.disk,
    network: plan.network,
    accel,
    instanceId: plan.cloudInit.instanceId,
    warnings: [...warnings, ...plan.network.warnings],
  };
}
