/** Writes the cloud-init NoCloud seed as an ISO with the volume id `cidata`. */
import { mkdtemp, rename, rm, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { execa } from "execa";
import type { CloudInitFiles } from "../plan/cloudInit.js";

export async function writeSeedIso(files: CloudInitFiles, isoPath: string): Promise<void> {
  const staging = await mkdtemp(join(dirname(isoPath), ".seed-"));
  const temp = `${isoPath}.creating`;
  try {
    await writeFile(join(staging, "meta-data"), files.metaData);
    await writeFile(join(staging, "user-data"), files.userData, { mode: 0o600 });
    await writeFile(join(staging, "network-config"), files.networkConfig);
    await execa("genisoimage", [
      "-quiet", "-output", temp, "-volid", "cidata", "-joliet", "-rock",
      join(staging, "user-data"), join(staging, "meta-data"), join(staging, "network-config"),
    ]);
    await rename(temp, isoPath);
  } finally {
    await rm(staging, { recursive: true, force: true });
    await rm(temp, { force: true });
  }
}
