/**
 * Ready-state clones (SNAPSHOT=auto): a new machine starts from the ready state the machine
 * image ships (captured once by `npm run images`: a generic first boot at the default size),
 * instead of booting, and is then resealed (plan/reseal.ts) so that it shares no identity with
 * the capture or with any other clone. Pure: the facts are read by apply/clone.ts.
 *
 * A state restores correctly only onto the very disk it was captured with, by the same QEMU,
 * under the same accelerator, into the same virtual hardware (CPU count, memory, devices). So
 * each of them is recorded in the capture's description and compared here; anything else
 * cold-boots as before, and the log says which rule decided.
 */
import { createHash } from "node:crypto";
import { join } from "node:path";
import { DEFAULTS } from "../config/schema.js";
import type { Accel } from "./accel.js";
import type { BaseFacts, BaseIdentity, DiskPlan } from "./disk.js";
import { stateArgv } from "./suspend.js";

/** Where a machine image keeps its captured ready state. */
export const CLONE_DIR = "/images/clone";
export const CLONE_DISK_NAME = "disk.qcow2";
export const CLONE_STATE_NAME = "vmstate.bin";
export const CLONE_META_NAME = "clone.json";

/** The user, host name and size of the generic first boot that is captured. */
export const CAPTURE = {
  user: "devmachines-capture",
  hostname: "devmachines-capture",
  cpu: 2,
  memory: "2G",
  storage: "20G",
} as const;

export interface ClonePaths {
  dir: string;
  disk: string;
  state: string;
  meta: string;
}

export function clonePaths(dir: string = CLONE_DIR): ClonePaths {
  return { dir, disk: join(dir, CLONE_DISK_NAME), state: join(dir, CLONE_STATE_NAME), meta: join(dir, CLONE_META_NAME) };
}

/** The capture's description (clone.json), written by the capture run beside the state. */
export interface CloneMeta {
  format: 1;
  /** `qemu-system-x86_64 --version`'s first line. */
  qemu: string;
  accel: Accel;
  arch: string;
  /** {@link hardwareHash} of the captured machine. */
  hardware: string;
  cpu: number;
  memoryBytes: number;
  storageBytes: number;
  /** The base image under the captured overlay. */
  base: BaseIdentity;
  /** Where that base was (BASE_IMAGE): the captured overlay's header names this path. Absent in
   * captures made before it was recorded, which were all made over the default. */
  basePath?: string;
  /** The captured overlay: a copy is checked against it before the state is loaded onto it. */
  disk: { bytes: number; sha256: string };
  /** sha256 of the network-config the captured guest applied (its network stays as captured). */
  networkConfig: string;
  stateBytes: number;
  /** The capture's own user: the reseal removes it. */
  captureUser: string;
  capturedAt: string;
}

export interface CloneFacts {
  meta?: CloneMeta;
  /** clone.json is there but unusable, or the state or disk beside it is missing or of another size. */
  problem?: string;
  /** The state file's and the disk's sizes as found. */
  stateBytes?: number;
  diskBytes?: number;
}

/** What this start would be: compared with what was captured. */
export interface CloneCandidate {
  snapshot: "auto" | "off";
  diskAction: DiskPlan["action"];
  ephemeral: boolean;
  /** A saved state of this machine (ON_STOP=suspend) is resumed instead. */
  resuming: boolean;
  network: "NAT" | "BRIDGE";
  arch: string;
  accel: Accel;
  /** ACCEL=auto may still fall back; a clone needs the accelerator the state was captured under, for sure. */
  accelFallback?: Accel;
  qemu: string | undefined;
  cpu: number;
  memoryBytes: number;
  storageBytes: number;
  /** The base as this start knows it: its digest may not be read yet (a new disk's is read after QEMU started). */
  base: BaseFacts;
  /** BASE_IMAGE: a copied overlay opens its base by the path it was captured over. */
  basePath: string;
  hardware: string;
  networkConfig: string;
}

export type ClonePlan =
  | { action: "clone"; reason: string; paths: ClonePaths; meta: CloneMeta }
  /** `needsBaseDigest`: everything else matches, and only the base's digest can tell: hash it and plan again. */
  | { action: "boot"; reason: string; needsBaseDigest?: true };

const mib = (bytes: number) => `${Math.round(bytes / 2 ** 20)} MiB`;

/** Clone, or boot as before; `reason` is what the log prints either way. */
export function planClone(facts: CloneFacts | undefined, now: CloneCandidate, paths: ClonePaths): ClonePlan {
  const boot = (why: string): ClonePlan => ({ action: "boot", reason: `cold boot: ${why}` });
  if (now.snapshot === "off") return boot("SNAPSHOT=off");
  if (now.resuming) return boot("a saved state of this machine is resumed instead");
  if (now.diskAction !== "create") return boot("the machine has a disk already (a ready state is only ever restored onto a new machine)");
  if (!facts) return boot(`the machine image ships no captured ready state (${paths.meta})`);
  if (facts.problem !== undefined || !facts.meta) return boot(`the captured ready state cannot be used: ${facts.problem ?? "no description"}`);
  const meta = facts.meta;
  if (facts.stateBytes !== meta.stateBytes) return boot(`the captured state file has ${facts.stateBytes ?? "no"} bytes, ${meta.stateBytes} were captured`);
  if (facts.diskBytes !== meta.disk.bytes) return boot(`the captured disk has ${facts.diskBytes ?? "no"} bytes, ${meta.disk.bytes} were captured`);
  if (now.arch !== meta.arch) return boot(`ARCH ${now.arch}: the state was captured from an ${meta.arch} guest`);
  if (now.network !== "NAT") return boot("NETWORK=BRIDGE: the captured guest's network (MAC and address) is NAT's and cannot be resealed safely");
  if (now.accel !== meta.accel || (now.accelFallback !== undefined && now.accelFallback !== meta.accel)) {
    return boot(`the state was captured under ${meta.accel.toUpperCase()}, this start uses ${now.accel.toUpperCase()}${now.accelFallback ? ` (or ${now.accelFallback.toUpperCase()})` : ""}`);
  }
  if (now.qemu !== meta.qemu) return boot(`the state was captured by ${meta.qemu}, this is ${now.qemu ?? "an unknown QEMU"}`);
  if (now.cpu !== meta.cpu || now.memoryBytes !== meta.memoryBytes) {
    return boot(`CPU=${now.cpu} MEMORY=${mib(now.memoryBytes)}; the state was captured at CPU=${meta.cpu} MEMORY=${mib(meta.memoryBytes)}`);
  }
  if (now.storageBytes !== meta.storageBytes) {
    return boot(`STORAGE=${mib(now.storageBytes)}; the state was captured with a ${mib(meta.storageBytes)} disk (a restored guest cannot grow its disk safely)`);
  }
  if (now.networkConfig !== meta.networkConfig) return boot("the network settings (DNS) differ from the captured guest's, which keeps its network as it was");
  if (now.hardware !== meta.hardware) return boot("the virtual hardware differs from the captured machine's (VNC or CONSOLE_PORT add a display)");
  const capturedOver = meta.basePath ?? DEFAULTS.baseImage;
  if (now.basePath !== capturedOver) {
    return boot(`BASE_IMAGE is ${now.basePath}, the state was captured over ${capturedOver} (the captured disk names that path)`);
  }
  // Last, as the one rule that may need the base read: only when all else would clone.
  if (now.base.sha256 === undefined) {
    const other = now.base.format !== meta.base.format || now.base.virtualSize !== meta.base.virtualSize ||
      (now.base.file !== undefined && meta.base.file !== undefined && now.base.file.bytes !== meta.base.file.bytes);
    if (other) return boot("BASE_IMAGE is not the base the state was captured over (its format or size differ)");
    return { action: "boot", reason: "cold boot: BASE_IMAGE's digest is not known yet", needsBaseDigest: true };
  }
  if (now.base.sha256 !== meta.base.sha256) return boot("BASE_IMAGE is not the base the state was captured over");
  return {
    action: "clone",
    reason: `the captured ready state (${mib(meta.stateBytes)}, ${meta.capturedAt}) matches: restoring it, then resealing this machine's identity`,
    paths,
    meta,
  };
}

/**
 * The virtual hardware of a QEMU argv, without what differs between two machines of the same
 * hardware and carries no guest state: the VM's name, the disk's and the run folder's paths,
 * the host side of NAT's port forwards, and a resume's `-incoming`.
 */
export function hardwareHash(argv: readonly string[], volatile: { overlayPath: string; dirs: readonly string[] }): string {
  const paths = [[volatile.overlayPath, "<disk>"] as const, ...volatile.dirs.map((dir) => [dir, "<run>"] as const)];
  const normalized = stateArgv(argv, { drop: ["-name", "-incoming"], paths, hostForwards: false });
  return createHash("sha256").update(JSON.stringify(normalized)).digest("hex");
}

export const sha256Text = (text: string): string => createHash("sha256").update(text).digest("hex");
