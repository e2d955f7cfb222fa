/**
 * The file-system side of a VNC socket: checked before anything is created (QEMU replaces
 * whatever file is at the path), and its folder made just before QEMU starts.
 */
import { lstat, mkdir } from "node:fs/promises";
import { dirname } from "node:path";
import type { VncSpec } from "../config/vnc.js";
import { ExitCode, LauncherError } from "../exitCodes.js";

async function kindOf(path: string): Promise<"missing" | "socket" | "directory" | "other"> {
  try {
    const stats = await lstat(path);
    return stats.isSocket() ? "socket" : stats.isDirectory() ? "directory" : "other";
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return "missing";
    throw error;
  }
}

/**
 * For the socket of `VNC` (in /run/vnc) and the upstream layout's /socks/vnc.sock alike:
 * exit 3 when the socket's folder is not a real folder (a symlink could lead anywhere) or a non-socket sits at its path.
 */
export async function checkVncSocket(spec: VncSpec | undefined): Promise<void> {
  if (spec?.listen.kind !== "unix") return;
  const dir = dirname(spec.listen.path);
  const folder = await kindOf(dir);
  if (folder !== "missing" && folder !== "directory") {
    throw new LauncherError(`VNC: ${dir} is not a folder (a symlink or a file): QEMU's socket could replace a file elsewhere. Mount a folder there`, ExitCode.Host);
  }
  const target = await kindOf(spec.listen.path);
  if (target !== "missing" && target !== "socket") {
    throw new LauncherError(`VNC: ${spec.listen.path} exists and is not a socket: QEMU would replace it. Choose another socket name`, ExitCode.Host);
  }
}

export async function prepareVncSocket(spec: VncSpec | undefined): Promise<void> {
  if (spec?.listen.kind === "unix") await mkdir(dirname(spec.listen.path), { recursive: true, mode: 0o700 });
}
