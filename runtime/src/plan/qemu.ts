/** The QEMU command line, assembled from the other plans. Pure. */
import type { LauncherConfig } from "../config/schema.js";
import { MiB } from "../config/units.js";
import { vncArgument, type VncSpec } from "../config/vnc.js";
import { accelArgs, type Accel } from "./accel.js";
import { machineFor, type MachinePlan } from "./arch.js";

/** Files of one run of the launcher (not persistent: a tmpfs or the container's layer). */
export interface RunPaths {
  dir: string;
  seedIso: string;
  qmpSocket: string;
  guestAgentSocket: string;
  state: string;
  /** The guest's serial console as a Unix socket (`devmachines console`, socat), with CONSOLE_PORT. */
  serialSocket: string;
  /** QEMU's VNC server as a Unix socket, behind the browser console's noVNC proxy. */
  vncSocket: string;
}

/** The run folder's files; QEMU's sockets go to `socketsDir` (/socks when mounted: locations/plan.ts). */
export function runPaths(dir: string, socketsDir: string = dir): RunPaths {
  return {
    dir,
    seedIso: `${dir}/seed.iso`,
    qmpSocket: `${socketsDir}/qmp.sock`,
    guestAgentSocket: `${socketsDir}/qga.sock`,
    state: `${dir}/state.json`,
    serialSocket: `${dir}/serial.sock`,
    vncSocket: `${dir}/vnc.sock`,
  };
}

export interface QemuPlanInput {
  config: Pick<LauncherConfig, "cpu" | "memoryBytes" | "hostname" | "vnc" | "console">;
  overlayPath: string;
  networkArgs: string[];
  paths: RunPaths;
  /** The emulated machine (plan/arch.ts); x86_64's q35 when absent. */
  machine?: MachinePlan;
}

/** The x86_64 machine's QEMU; the plan names the binary of the guest's architecture. */
export const QEMU_BINARY = "qemu-system-x86_64";

/** The argv for one accelerator; ACCEL=auto may call this twice (KVM, then TCG). */
export function qemuArgs(input: QemuPlanInput, accel: Accel): string[] {
  const { config, paths } = input;
  const machine = input.machine ?? machineFor("x86_64", "");
  const memoryMiB = Math.max(1, Math.floor(config.memoryBytes / MiB));
  const firmware = machine.firmware;
  return [
    "-name", `guest=${config.hostname.replace(/,/g, ",,")}`,
    "-machine", machine.machine,
    ...accelArgs(accel),
    "-cpu", machine.cpu[accel],
    "-smp", String(config.cpu),
    "-m", `${memoryMiB}M`,
    "-nodefaults",
    "-no-user-config",
    // UEFI (aarch64): the firmware's code read-only, its variable store writable and the machine's own.
    ...(firmware
      ? [
          "-drive", `if=pflash,unit=0,format=raw,readonly=on,file=${escapeOption(firmware.code)}`,
          "-drive", `if=pflash,unit=1,format=raw,file=${escapeOption(firmware.vars)}`,
        ]
      : []),
    "-drive", `file=${escapeOption(input.overlayPath)},if=none,id=disk0,format=qcow2,discard=unmap,detect-zeroes=unmap`,
    "-device", "virtio-blk-pci,drive=disk0,bootindex=0",
    "-drive", `file=${escapeOption(paths.seedIso)},if=none,id=seed0,format=raw,readonly=on`,
    "-device", "virtio-blk-pci,drive=seed0",
    ...input.networkArgs,
    // Entropy for the guest: sshd key generation would otherwise wait on a starved pool.
    "-device", "virtio-rng-pci",
    // A VM generation ID (ACPI, x86 only) that changes whenever QEMU starts: a guest restored
    // from a state (a resume, a clone) reseeds its kernel's random generator at once, so two
    // clones of one capture never draw the same random numbers.
    ...(machine.binary === "qemu-system-x86_64" ? ["-device", "vmgenid,guid=auto"] : []),
    "-chardev", `socket,id=qga0,path=${escapeOption(paths.guestAgentSocket)},server=on,wait=off`,
    "-device", "virtio-serial-pci",
    "-device", "virtserialport,chardev=qga0,name=org.qemu.guest_agent.0",
    "-qmp", `unix:${escapeOption(paths.qmpSocket)},server=on,wait=off`,
    // The guest's serial console is QEMU's stdout, which the launcher forwards to `docker logs`.
    "-serial", "stdio",
    "-monitor", "none",
    ...displayArgs(config, paths, machine.displayDevices),
  ];
}

/**
 * The raw VNC server: `VNC` as set (config/vnc.ts admits only its safe forms), else a socket on
 * the upstream layout's sockets volume when one is mounted (`upstreamSocket`, chosen by
 * locations/plan.ts, never by the user), else none.
 */
export function planVnc(vnc: VncSpec | undefined, upstreamSocket: string | undefined): VncSpec | undefined {
  if (vnc) return vnc;
  return upstreamSocket === undefined ? undefined : { listen: { kind: "unix", path: upstreamSocket }, options: [] };
}

/**
 * A display (q35: a VGA card) once any VNC server is asked for: the raw one (planVnc), and the browser console's
 * on a Unix socket only the launcher reaches (QEMU runs several VNC servers given distinct ids).
 * Every argument is rebuilt from a checked form, never passed through from the environment.
 */
function displayArgs(config: QemuPlanInput["config"], paths: RunPaths, devices: string[]): string[] {
  const servers = [
    ...(config.vnc ? [vncArgument(config.vnc)] : []),
    ...(config.console ? [`unix:${escapeOption(paths.vncSocket)},id=devmachines-console`] : []),
  ];
  if (servers.length === 0) return ["-display", "none"];
  return [...devices, ...servers.flatMap((server) => ["-vnc", server])];
}

/** QEMU option values use "," as a separator; a literal comma is written twice. */
function escapeOption(value: string): string {
  return value.replace(/,/g, ",,");
}
