/**
 * Facts about the container's mounts, gathered before planning: which folders are mount
 * points (read from /proc/self/mountinfo) and which files the upstream image folder holds.
 * Read-only, so --dry-run gathers them too. The decision is made in ./plan.ts.
 */
import { readdir, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { UPSTREAM } from "./plan.js";

/** One line of /proc/self/mountinfo (proc(5)), the fields the launcher needs. */
export interface MountEntry {
  /** Where it is mounted, in the container's view. */
  mountPoint: string;
  /** The folder of the source file system that is mounted there (a bind mount's source path). */
  root: string;
  fsType: string;
  source: string;
  readOnly: boolean;
}

/** What planLocations decides from. */
export interface LocationFacts {
  /** Every mount point of the container. */
  mountPoints: string[];
  /** Names of the regular files (symbolic links followed) directly in the image folder; empty when it is missing. */
  imageFiles: string[];
}

/** mountinfo escapes space, tab, newline and backslash as octal (`\040`). */
function unescapeOctal(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
}

/**
 * Parses /proc/self/mountinfo. Each line is
 * `ID PARENT MAJ:MIN ROOT MOUNT_POINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER_OPTIONS`;
 * the optional fields vary in number, so the fields after them are found by the `-` separator.
 * Lines that do not have that shape are skipped.
 */
export function parseMountInfo(text: string): MountEntry[] {
  const entries: MountEntry[] = [];
  for (const line of text.split("\n")) {
    const fields = line.trim().split(" ");
    const separator = fields.indexOf("-", 6);
    if (fields.length < 7 || separator < 0 || fields.length < separator + 3) continue;
    entries.push({
      root: unescapeOctal(fields[3]!),
      mountPoint: unescapeOctal(fields[4]!),
      readOnly: fields[5]!.split(",").includes("ro"),
      fsType: fields[separator + 1]!,
      source: unescapeOctal(fields[separator + 2]!),
    });
  }
  return entries;
}

/** Reads the facts (tests point the two paths elsewhere). */
export async function discoverLocations(
  { mountinfo, imageDir }: { mountinfo: string; imageDir: string } = { mountinfo: "/proc/self/mountinfo", imageDir: UPSTREAM.imageDir },
): Promise<LocationFacts> {
  let mountPoints: string[] = [];
  try {
    mountPoints = parseMountInfo(await readFile(mountinfo, "utf8")).map((entry) => entry.mountPoint);
  } catch {
    // No /proc (not Linux, or a sandbox): no mount is known, so every default stands.
  }
  const imageFiles: string[] = [];
  try {
    for (const name of (await readdir(imageDir)).sort()) {
      if (await stat(join(imageDir, name)).then((info) => info.isFile(), () => false)) imageFiles.push(name);
    }
  } catch {
    // No image folder: nothing to choose from there.
  }
  return { mountPoints, imageFiles };
}
