/**
 * The guest's architecture (ARCH) and the machine QEMU emulates for it. Pure.
 *
 * ARCH comes from the user, or from the base image (a metadata file the machine images
 * write beside their disk, else the boot loader found on the disk's EFI system partition:
 * apply/arch.ts). When both speak they must agree: booting an arm64 disk on an x86_64
 * machine only ends in a firmware prompt, so a mismatch stops the start (exit 2).
 */
import { ExitCode, LauncherError } from "../exitCodes.js";
import type { Accel } from "./accel.js";

/** Guest architectures the launcher plans (uname -m names). riscv64 is the next to fit here. */
export const ARCHES = ["x86_64", "aarch64"] as const;
export type Arch = (typeof ARCHES)[number];

/** Other spellings users meet (Debian's and Docker's platform names) and the ARCH they mean. */
export const ARCH_ALIASES: Readonly<Record<string, Arch>> = { amd64: "x86_64", x64: "x86_64", arm64: "aarch64" };

/** What the base image says about its architecture, and where that was read. */
export interface ArchFacts {
  detected?: { arch: Arch; source: string };
  /** The architecture of the machine the container runs on (uname -m). */
  host: string;
}

/** UEFI firmware: read-only code plus the guest's own writable variable store. */
export interface FirmwarePlan {
  code: string;
  /** The empty variable store copied for a new machine. */
  varsTemplate: string;
  /** The machine's variable store in the disks folder (boot entries persist with the disk). */
  vars: string;
}

export interface ArchPlan {
  arch: Arch;
  /** Why this architecture, in words for the log and the dry run. */
  reason: string;
  binary: string;
  /** The machine type's argument (`-machine`). */
  machine: string;
  /** CPU model per accelerator. */
  cpu: Record<Accel, string>;
  /** Absent for x86_64, which boots through SeaBIOS (the image carries GRUB for BIOS). */
  firmware?: FirmwarePlan;
  /** The guest's first serial port, where its console and cloud-init's ready line appear. */
  serialDevice: string;
  /** Devices a VNC server needs to show something and take input. */
  displayDevices: string[];
  /** The host's architecture (uname -m), for messages. */
  host: string;
  /** Whether KVM can run this guest here: only on a host of the same architecture. */
  kvmPossible: boolean;
}

/** Debian's qemu-efi-aarch64 (AAVMF): the files the runtime image carries. */
export const AARCH64_FIRMWARE = { code: "/usr/share/AAVMF/AAVMF_CODE.fd", varsTemplate: "/usr/share/AAVMF/AAVMF_VARS.fd" } as const;

/** The variable store's name in the disks folder. */
export const EFI_VARS_NAME = "efi-vars.fd";

/** Node's process.arch and uname -m spellings, as an ARCH (undefined for others). */
export function normaliseArch(name: string): Arch | undefined {
  const lower = name.trim().toLowerCase();
  if ((ARCHES as readonly string[]).includes(lower)) return lower as Arch;
  return ARCH_ALIASES[lower];
}

/**
 * Decides the architecture from ARCH (when set) and what the base image says.
 *
 * @throws LauncherError(ExitCode.Config) when ARCH contradicts the base image.
 */
export function planArch(explicit: Arch | undefined, facts: ArchFacts, disksDir: string): ArchPlan {
  const detected = facts.detected;
  if (explicit && detected && explicit !== detected.arch) {
    throw new LauncherError(
      `ARCH=${explicit} does not match the base image, which is ${detected.arch} (${detected.source}): ` +
        `ARCH must name the base image's architecture. Unset ARCH to follow the image, or boot an ${explicit} image`,
      ExitCode.Config,
    );
  }
  const arch = explicit ?? detected?.arch ?? "x86_64";
  const reason = explicit
    ? `ARCH=${explicit}${detected ? ` (the base image agrees: ${detected.source})` : ""}`
    : detected
      ? `the base image is ${detected.arch} (${detected.source})`
      : "ARCH is not set and the base image does not say: x86_64, the default";
  const kvmPossible = normaliseArch(facts.host) === arch;
  return { arch, reason, host: facts.host, kvmPossible, ...machineFor(arch, disksDir) };
}

/** The machine for `arch`: what QEMU emulates, whatever chose the architecture. */
export type MachinePlan = Omit<ArchPlan, "arch" | "reason" | "host" | "kvmPossible">;

export function machineFor(arch: Arch, disksDir: string): MachinePlan {
  switch (arch) {
    case "x86_64":
      return {
        binary: "qemu-system-x86_64",
        machine: "q35",
        // "host" passes the real CPU through under KVM; TCG emulates the richest model it can.
        cpu: { kvm: "host", tcg: "max" },
        serialDevice: "ttyS0",
        displayDevices: ["-device", "VGA"],
      };
    case "aarch64":
      return {
        binary: "qemu-system-aarch64",
        // virt is QEMU's machine for arm guests (no real board to mimic; virtio everywhere).
        // gic-version=max: GICv3 (needed past 8 vCPUs) under TCG, the host's own under KVM.
        machine: "virt,gic-version=max",
        // Under TCG `max` with pauth-impdef=on: every armv8/9 feature the kernel may use, with
        // pointer authentication computed by QEMU's cheap implementation-defined algorithm
        // instead of the architected QARMA5 cipher, which costs TCG dearly on every function
        // return of a pauth-built kernel (Debian's arm64 kernel is one). See README (ARCH).
        cpu: { kvm: "host", tcg: "max,pauth-impdef=on" },
        firmware: { ...AARCH64_FIRMWARE, vars: `${disksDir}/${EFI_VARS_NAME}` },
        serialDevice: "ttyAMA0",
        // virt has no VGA and no PS/2: a virtio GPU (UEFI and Linux drive it) and USB input.
        displayDevices: ["-device", "virtio-gpu-pci", "-device", "qemu-xhci", "-device", "usb-kbd", "-device", "usb-tablet"],
      };
  }
}
