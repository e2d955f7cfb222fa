#!/usr/bin/env node
/**
 * The DevMachine launcher: the container's entrypoint.
 *
 *   (no flag)   validate the environment, prepare disk, seed and network, boot and supervise QEMU
 *   --dry-run   print the whole plan as one JSON object and change nothing
 *   --health    exit 0 when the VM is ready (the image's HEALTHCHECK)
 */
import { readFileSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { DEFAULTS, formatIssues, parseConfig, type LauncherConfig } from "./config/index.js";
import { ExitCode, LauncherError, type ExitCodeValue } from "./exitCodes.js";
import { applyDisk, ensureWritableDir, readDiskFacts } from "./apply/disk.js";
import { writeSeedIso } from "./apply/seed.js";
import { checkBridgePrerequisites, setupBridge, type BridgeHandle } from "./network/bridge.js";
import { defaultRunner, discoverNetwork } from "./network/discover.js";
import { withDockerUpstream } from "./network/resolverProbe.js";
import { dryRunReport, planLaunch, type LaunchPlan } from "./plan/index.js";
import { QEMU_BINARY, runPaths } from "./plan/qemu.js";
import { chooseInitialAccel } from "./supervise/accel.js";
import { checkHealth, waitForSsh, writeState } from "./supervise/readiness.js";
import { superviseQemu } from "./supervise/supervisor.js";

const RUN_DIR = process.env.DEVMACHINES_RUN_DIR ?? "/run/devmachines";

const log = (message: string) => process.stderr.write(`devmachines: ${message}\n`);

function readFileIfPresent(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
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

async function prepare(): Promise<{ config: LauncherConfig; plan: LaunchPlan; warnings: string[] }> {
  const { config, warnings } = loadConfig();
  const [discovered, disk] = await Promise.all([discoverNetwork(), readDiskFacts(config.baseImage, config.disksDir)]);
  const network = await withDockerUpstream(discovered, config);
  const plan = planLaunch(config, { disk, network }, runPaths(RUN_DIR));
  return { config, plan, warnings };
}

async function dryRun(): Promise<ExitCodeValue> {
  const { config, plan, warnings } = await prepare();
  const first = chooseInitialAccel(config.accel);
  const accel = { requested: config.accel, first: first.accel, ...(config.accel === "auto" && first.accel === "kvm" && { fallback: "tcg" as const }) };
  process.stdout.write(`${JSON.stringify(dryRunReport(plan, accel, first.warning ? [...warnings, first.warning] : warnings), null, 2)}\n`);
  return ExitCode.Ok;
}

async function run(): Promise<ExitCodeValue> {
  const paths = runPaths(RUN_DIR);
  // First of all: a restarted container must not report the last run's "ready".
  await mkdir(RUN_DIR, { recursive: true });
  await writeState(paths.state, { phase: "starting" });
  const { config, plan, warnings } = await prepare();
  for (const warning of [...warnings, ...plan.network.warnings]) log(`warning: ${warning}`);

  // Everything that can refuse does so before the first change.
  chooseInitialAccel(config.accel);
  if (config.network === "BRIDGE") await checkBridgePrerequisites();
  await ensureWritableDir(config.disksDir, "DISKS_DIR");

  // The seed lives in the run folder and the bridge undoes itself; the disk comes last,
  // so a failure before it leaves the volume as it was.
  await writeSeedIso(plan.cloudInit, plan.paths.seedIso);
  log(`cloud-init: instance ${plan.cloudInit.instanceId}`);
  for (const line of plan.network.describe) log(`network: ${line}`);
  let bridge: BridgeHandle | undefined;
  if (plan.network.bridge) bridge = await setupBridge(plan.network.bridge, defaultRunner);

  // Container port 22 reaches the guest's SSH in both modes (BRIDGE: over the management link).
  const ssh = { host: "127.0.0.1", port: DEFAULTS.sshPort };
  let finished = false;
  const stopping = () => {
    if (!finished) void writeState(plan.paths.state, { phase: "stopping", ssh }).catch(() => undefined);
  };
  process.once("SIGTERM", stopping);
  process.once("SIGINT", stopping);
  try {
    log(`disk: ${plan.disk.action} ${plan.disk.overlayPath} (${plan.disk.reason})`);
    await applyDisk(plan.disk);
    await writeState(plan.paths.state, { phase: "booting", ssh });
    const started = Date.now();
    return await superviseQemu(
      { binary: QEMU_BINARY, argsFor: plan.argsFor, accel: config.accel, qmpSocket: plan.paths.qmpSocket, graceSeconds: config.graceSeconds },
      (supervisor) => {
        supervisor.onReady(() => {
          void (async () => {
            const seconds = () => ((Date.now() - started) / 1000).toFixed(0);
            log(`cloud-init finished after ${seconds()} s`);
            log(`SSH answers: ${await waitForSsh(ssh.host, ssh.port, 120_000)}`);
            // A stop may have begun while SSH was checked: never report a stopping VM as ready.
            if (finished || supervisor.stopRequested) return;
            await writeState(plan.paths.state, { phase: "ready", ssh });
            log(`ready after ${seconds()} s: ${config.users.map((user) => user.name).join(", ")} can log in with ssh`);
          })().catch((error: unknown) => log(`readiness check failed: ${(error as Error).message}`));
        });
      },
    );
  } finally {
    finished = true;
    process.off("SIGTERM", stopping);
    process.off("SIGINT", stopping);
    await writeState(plan.paths.state, { phase: "stopped" }).catch(() => undefined);
    // A teardown problem is reported, but the guest's own outcome stays the exit code.
    await bridge?.undo().catch((error: unknown) => log(`warning: ${(error as Error).message}`));
  }
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

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    if (error instanceof LauncherError) {
      log(error.message);
      process.exit(error.exitCode);
    }
    log(`unexpected failure: ${(error as Error).stack ?? String(error)}`);
    process.exit(ExitCode.Failure);
  },
);
