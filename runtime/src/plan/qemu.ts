/** The QEMU command line, assembled from the other plans. Pure. */
import type { LauncherConfig } from "../config/schema.js";
import { MiB } from "../config/units.js";
import { vncArgument } from "../config/vnc.js";
import { accelArgs, type Accel } from "./accel.js";

/** Files of one run of the launcher (not persistent: a tmpfs or the container's layer). */
export interface RunPaths {
  dir: string;
  seedIso: string;
  qmpSocket: string;
  guestAgentSocket: string;
  state: string;
}

export function runPaths(dir: string): RunPaths {
  return {
    dir,
    seedIso: `${dir}/seed.iso`,
    qmpSocket: `${dir}/qmp.sock`,
    guestAgentSocket: `${dir}/qga.sock`,
    state: `${dir}/state.json`,
  };
}

export interface QemuPlanInput {
  config: Pick<LauncherConfig, "cpu" | "memoryBytes" | "hostname" | "vnc">;
  overlayPath: string;
  networkArgs: string[];
  paths: RunPaths;
}

export const QEMU_BINARY = "qemu-system-x86_64";

/** The argv for one accelerator; ACCEL=auto may call this twice (KVM, then TCG). */
export function qemuArgs(input: QemuPlanInput, accel: Accel): string[] {
  const { config, paths } = input;
  const memoryMiB = Math.max(1, Math.floor(config.memoryBytes / MiB));
  return [
    "-name", `guest=${config.hostname.replace(/,/g, ",,")}`,
    "-machine", "q35",
    ...accelArgs(accel),
    // "host" passes the real CPU through under KVM; TCG emulates the richest model it can.
    "-cpu", accel === "kvm" ? "host" : "max",
    "-smp", String(config.cpu),
    "-m", `${memoryMiB}M`,
    "-nodefaults",
    "-no-user-config",
    "-drive", `file=${escapeOption(input.overlayPath)},if=none,id=disk0,format=qcow2,discard=unmap,detect-zeroes=unmap`,
    "-device", "virtio-blk-pci,drive=disk0,bootindex=0",
    "-drive", `file=${escapeOption(paths.seedIso)},if=none,id=seed0,format=raw,readonly=on`,
    "-device", "virtio-blk-pci,drive=seed0",
    ...input.networkArgs,
    // Entropy for the guest: sshd key generation would otherwise wait on a starved pool.
    "-device", "virtio-rng-pci",
    "-chardev", `socket,id=qga0,path=${escapeOption(paths.guestAgentSocket)},server=on,wait=off`,
    "-device", "virtio-serial-pci",
    "-device", "virtserialport,chardev=qga0,name=org.qemu.guest_agent.0",
    "-qmp", `unix:${escapeOption(paths.qmpSocket)},server=on,wait=off`,
    // The guest's serial console is QEMU's stdout, which the launcher forwards to `docker logs`.
    "-serial", "stdio",
    "-monitor", "none",
    ...(config.vnc ? ["-device", "VGA", "-vnc", vncArgument(config.vnc)] : ["-display", "none"]),
  ];
}

/** QEMU option values use "," as a separator; a literal comma is written twice. */
function escapeOption(value: string): string {
  return value.replace(/,/g, ",,");
}
