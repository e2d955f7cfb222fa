/**
 * The accelerator's side of the world: probing /dev/kvm, naming the host a KVM verdict
 * depends on, and reading and writing that verdict in the disks folder. Read-only except
 * {@link rememberKvmFailure}; the decision itself is plan/accel.ts.
 */
import fs from "node:fs";
import { readFile, rename, writeFile } from "node:fs/promises";
import os from "node:os";
import { join } from "node:path";
import { execa } from "execa";
import { KVM_VERDICT_FILE, type AccelFacts, type AccelMode, type HostIdentity, type KvmProbe, type KvmVerdict } from "../plan/accel.js";

/** Checks that the KVM device exists and opens read-write (what QEMU needs). */
export function probeKvm(device = "/dev/kvm"): KvmProbe {
  let fd: number;
  try {
    fd = fs.openSync(device, fs.constants.O_RDWR);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return { usable: false, reason: `${device} does not exist` };
    return { usable: false, reason: `${device} cannot be opened read-write (${code ?? String(error)})` };
  }
  fs.closeSync(fd);
  return { usable: true };
}

/** Host kernel, CPU model and QEMU version: what a KVM verdict holds for. */
export async function readHostIdentity(qemuBinary: string): Promise<HostIdentity> {
  const cpuinfo = await readFile("/proc/cpuinfo", "utf8").catch(() => "");
  const cpu = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1]?.trim() ?? "unknown";
  const qemu = await execa(qemuBinary, ["--version"]).then(
    (result) => result.stdout.split("\n")[0]!.trim(),
    () => "unknown",
  );
  return { kernel: os.release(), cpu, qemu };
}

function isVerdict(value: unknown): value is KvmVerdict {
  const v = value as Partial<KvmVerdict> | null;
  return (
    typeof v === "object" && v !== null && v.kvm === "fails" && typeof v.reason === "string" &&
    typeof v.host?.kernel === "string" && typeof v.host.cpu === "string" && typeof v.host.qemu === "string"
  );
}

/** The verdict file's content; an absent, unreadable or foreign file is no verdict (KVM is tried). */
export async function readKvmVerdict(path: string): Promise<KvmVerdict | undefined> {
  try {
    const value: unknown = JSON.parse(await readFile(path, "utf8"));
    return isVerdict(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

export function kvmVerdictPath(disksDir: string): string {
  return join(disksDir, KVM_VERDICT_FILE);
}

/** Everything plan/accel.ts needs; nothing is probed under ACCEL=tcg. */
export async function discoverAccel(mode: AccelMode, disksDir: string, qemuBinary: string): Promise<AccelFacts> {
  const verdictPath = kvmVerdictPath(disksDir);
  if (mode === "tcg") return { verdictPath };
  const kvm = probeKvm();
  if (!kvm.usable) return { kvm, verdictPath };
  const [host, verdict] = await Promise.all([readHostIdentity(qemuBinary), readKvmVerdict(verdictPath)]);
  return { kvm, host, verdict, verdictPath };
}

/**
 * Writes the verdict (temp file + rename, so a crash never leaves half a file). A disks
 * folder that cannot take it costs only the quick start next time: the error is returned
 * for a warning, never thrown.
 */
export async function rememberKvmFailure(path: string, host: HostIdentity, reason: string): Promise<Error | undefined> {
  const verdict: KvmVerdict = { kvm: "fails", reason, seenAt: new Date().toISOString(), host };
  const temp = `${path}.${process.pid}.tmp`;
  try {
    await writeFile(temp, `${JSON.stringify(verdict, null, 2)}\n`);
    await rename(temp, path);
    return undefined;
  } catch (error) {
    await fs.promises.rm(temp, { force: true }).catch(() => undefined);
    return error as Error;
  }
}
