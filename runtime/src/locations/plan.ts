/**
 * Where the base image, the disks and QEMU's sockets live. Pure: settings and mount facts
 * in, paths with their reasons out. Explicit settings win; otherwise the upstream Go
 * project's layout is followed when its volumes are mounted (/disks, /socks, /image), so
 * its compose files work with only the image changed; otherwise the image's defaults.
 */
import { ExitCode, LauncherError } from "../exitCodes.js";
import type { LocationFacts } from "./discover.js";

/** The upstream project's folders and the base image name it boots. */
export const UPSTREAM = {
  disksDir: "/disks",
  socketsDir: "/socks",
  imageDir: "/image",
  imageName: "ubuntu.img",
} as const;

/** Files in the image folder that can be a base image when none is named ubuntu.img. */
const IMAGE_FILE = /\.(img|qcow2)$/i;

export interface Location {
  path: string;
  /** Why this path, in words for the log and the dry run. */
  reason: string;
}

export interface LocationPlan {
  baseImage: Location;
  disksDir: Location;
  /** QEMU's sockets (QMP, guest agent, VNC). */
  socketsDir: Location;
  /** A VNC server on this Unix socket when VNC is not set (as upstream served one in /socks). */
  vncSocket?: string;
}

export interface LocationSettings {
  /** BASE_IMAGE, when set. */
  baseImage?: string;
  /** DISKS_DIR, when set. */
  disksDir?: string;
}

export interface LocationDefaults {
  baseImage: string;
  disksDir: string;
  /** The launcher's run folder, where sockets go unless /socks is mounted. */
  runDir: string;
}

export function planLocations(settings: LocationSettings, facts: LocationFacts, defaults: LocationDefaults): LocationPlan {
  const mounted = (path: string) => facts.mountPoints.includes(path);
  const mountedUnder = (dir: string) => facts.mountPoints.some((point) => point === dir || point.startsWith(`${dir}/`));

  const disksDir: Location =
    settings.disksDir !== undefined
      ? { path: settings.disksDir, reason: `DISKS_DIR is set${mounted(UPSTREAM.disksDir) ? ` (it wins over the volume at ${UPSTREAM.disksDir})` : ""}` }
      : mounted(UPSTREAM.disksDir)
        ? { path: UPSTREAM.disksDir, reason: `a volume is mounted at ${UPSTREAM.disksDir} (the upstream project's layout) and DISKS_DIR is not set` }
        : { path: defaults.disksDir, reason: `the image's default: DISKS_DIR is not set and nothing is mounted at ${UPSTREAM.disksDir}` };

  const socks = mounted(UPSTREAM.socketsDir);
  const socketsDir: Location = socks
    ? { path: UPSTREAM.socketsDir, reason: `a volume is mounted at ${UPSTREAM.socketsDir} (the upstream project's layout)` }
    : { path: defaults.runDir, reason: `the run folder: nothing is mounted at ${UPSTREAM.socketsDir}` };

  return {
    baseImage: chooseBaseImage(settings.baseImage, mountedUnder(UPSTREAM.imageDir), facts.imageFiles, defaults.baseImage),
    disksDir,
    socketsDir,
    ...(socks && { vncSocket: `${UPSTREAM.socketsDir}/vnc.sock` }),
  };
}

function chooseBaseImage(explicit: string | undefined, imageMounted: boolean, files: string[], fallback: string): Location {
  const dir = UPSTREAM.imageDir;
  if (explicit !== undefined) {
    return { path: explicit, reason: `BASE_IMAGE is set${imageMounted ? ` (it wins over what is mounted at ${dir})` : ""}` };
  }
  if (!imageMounted) return { path: fallback, reason: `the image's own guest disk: BASE_IMAGE is not set and nothing is mounted at ${dir}` };
  if (files.includes(UPSTREAM.imageName)) {
    return { path: `${dir}/${UPSTREAM.imageName}`, reason: `mounted at ${dir} under the upstream project's name, and BASE_IMAGE is not set` };
  }
  const candidates = files.filter((name) => IMAGE_FILE.test(name));
  if (candidates.length === 1) {
    return { path: `${dir}/${candidates[0]}`, reason: `the one disk image (*.img, *.qcow2) mounted at ${dir}, and BASE_IMAGE is not set` };
  }
  if (candidates.length > 1) {
    throw new LauncherError(
      `${dir} holds several disk images (${candidates.join(", ")}) and none is named ${UPSTREAM.imageName}: ` +
        `set BASE_IMAGE to the one to boot, e.g. BASE_IMAGE=${dir}/${candidates[0]}`,
      ExitCode.Host,
    );
  }
  throw new LauncherError(
    `something is mounted at ${dir}, but it holds no ${UPSTREAM.imageName}, *.img or *.qcow2 file` +
      `${files.length > 0 ? ` (it holds ${files.join(", ")})` : " (it is empty)"}: mount the guest image there, or set BASE_IMAGE`,
    ExitCode.Host,
  );
}
