/**
 * What happens when the guest's disk cannot be written: QEMU's default for a full host disk
 * (`werror=enospc`) pauses the VM instead of failing the guest's write, so nothing is lost,
 * but the guest then hangs without a word. This watcher says so in the log and resumes the
 * guest (QMP `cont`) once the disks folder has room again.
 */
import { freeBytes as statfsFree } from "../apply/disk.js";
import type { QmpClient, QmpEvent } from "./qmp.js";

export interface DiskFullOptions {
  /** The folder that holds the guest's disk. */
  dir: string;
  /** Free space the folder needs before the guest is resumed. */
  minFreeBytes: number;
  /** How often free space is checked while the guest is paused. Default 5000 ms. */
  pollMs?: number;
  log: (message: string) => void;
  /** Free bytes in `dir` (tests pass their own). Default: statfs. */
  freeBytes?: (dir: string) => Promise<number>;
}

/** Paused state for the supervisor: a paused guest cannot act on an ACPI power-off. */
export interface DiskFullWatch {
  /** True while the guest is paused on a full disks folder. */
  readonly paused: boolean;
  /** Stops polling. */
  close(): void;
}

/** The fields QEMU's BLOCK_IO_ERROR event carries that matter here. */
export interface BlockIoError {
  device: string;
  operation: string;
  action: string;
  nospace: boolean;
  reason: string;
}

/** Reads a BLOCK_IO_ERROR event's data; undefined for other events. */
export function blockIoError(event: QmpEvent): BlockIoError | undefined {
  if (event.event !== "BLOCK_IO_ERROR" || !event.data) return undefined;
  const data = event.data;
  return {
    device: String(data.device || data["node-name"] || "disk"),
    operation: String(data.operation ?? "write"),
    action: String(data.action ?? ""),
    nospace: data.nospace === true,
    reason: String(data.reason ?? ""),
  };
}

export function watchDiskFull(qmp: QmpClient, options: DiskFullOptions): DiskFullWatch {
  const freeBytes = options.freeBytes ?? statfsFree;
  const pollMs = options.pollMs ?? 5000;
  let timer: NodeJS.Timeout | undefined;
  let paused = false;
  let closed = false;
  const mib = (bytes: number) => `${Math.floor(bytes / 2 ** 20)} MiB`;

  const poll = async () => {
    timer = undefined;
    if (closed) return;
    const free = await freeBytes(options.dir).catch(() => 0);
    if (free < options.minFreeBytes) {
      timer = setTimeout(() => void poll(), pollMs);
      return;
    }
    try {
      await qmp.execute("cont");
      paused = false;
      options.log(`${options.dir} has room again (${mib(free)} free): the guest resumes`);
    } catch (error) {
      options.log(`cannot resume the guest: ${(error as Error).message}; trying again`);
      timer = setTimeout(() => void poll(), pollMs);
    }
  };

  qmp.on("BLOCK_IO_ERROR", (event) => {
    const error = blockIoError(event);
    if (!error || error.action !== "stop" || closed) return;
    if (!error.nospace) {
      options.log(`the guest's ${error.device} failed a ${error.operation} (${error.reason || "I/O error"}): QEMU paused the guest; its disk is as it was before that write`);
      return;
    }
    if (paused) return; // every queued write reports again; one message is enough
    paused = true;
    options.log(
      `${options.dir} is full: QEMU paused the guest so that no write is lost. ` +
        `It resumes by itself once the folder has ${mib(options.minFreeBytes)} free (checked every ${pollMs / 1000} s): free space on that volume`,
    );
    if (!timer) timer = setTimeout(() => void poll(), pollMs);
  });

  return {
    get paused() {
      return paused;
    },
    close() {
      closed = true;
      if (timer) clearTimeout(timer);
    },
  };
}
