/**
 * Drop-in for the upstream Go project's users: its compose file's shape (volumes at /disks and
 * /socks, the guest image at /image/ubuntu.img, 22 published, 60 s stop grace, its label) with
 * only the image changed, on a real Docker Engine with Debian's docker-compose v1. One machine,
 * two boots: the disk lives on the /disks volume and survives `down` and `up`.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { containerLogs, waitHealthy } from "../sdk/src/run.js";
import { BOOT_TIMEOUT_MS, docker, e2eAvailable, MACHINE_IMAGE, progress, publishedPort, ssh } from "./support.js";

const exec = promisify(execFile);
const LABEL = "tech.utkin.devmachines.runtime";
/** Our own guest disk stands in for upstream's Ubuntu image (`npm run images` builds it). */
const GUEST_IMAGE = fileURLToPath(new URL("../.cache/images/debian-13.qcow2", import.meta.url));
const ENV = ["CPU=1", "MEMORY=1G", "STORAGE=10G", "USER=user", "PASSWORD=pass"].flatMap((pair) => ["--env", pair]);

function guestImage(): string {
  if (!existsSync(GUEST_IMAGE)) throw new Error(`${GUEST_IMAGE} is missing: build it with npm run images`);
  return GUEST_IMAGE;
}

/** What the upstream Ansible inventory (devmachines.core) does: containers with the label, and where their 22/tcp is published. */
async function upstreamInventory(): Promise<{ name: string; host: string; port: number }[]> {
  const ids = (await docker(["ps", "-aq", "--filter", `label=${LABEL}`])).split("\n").filter(Boolean);
  const hosts = [];
  for (const id of ids) {
    const inspect = JSON.parse(await docker(["inspect", id]))[0] as {
      Name: string;
      Config: { Labels: Record<string, string> | null };
      NetworkSettings: { Ports: Record<string, { HostIp: string; HostPort: string }[] | null> | null };
    };
    if (!(LABEL in (inspect.Config.Labels ?? {}))) continue;
    const port = inspect.NetworkSettings.Ports?.["22/tcp"]?.[0];
    if (!port) continue;
    hosts.push({ name: inspect.Name.replace(/^\//, ""), host: port.HostIp === "0.0.0.0" ? "127.0.0.1" : port.HostIp, port: Number(port.HostPort) });
  }
  return hosts;
}

/** Waits for `healthy`; a failure carries the end of the guest's console and the launcher's log. */
async function healthy(name: string, label: string): Promise<void> {
  try {
    await waitHealthy(name, { timeoutMs: BOOT_TIMEOUT_MS, onProgress: progress(label) });
  } catch (error) {
    const logs = await containerLogs(name, { tail: 40 }).catch(() => ({ console: "", launcher: "" }));
    throw new Error(`${(error as Error).message}\n--- launcher\n${logs.launcher}\n--- console\n${logs.console}`);
  }
}

describe("coming from the upstream project", { concurrency: 1 }, () => {
  test("the images carry the upstream label; the upstream mounts show in --dry-run; several images under /image are a clear error", async (t) => {
    if (!(await e2eAvailable(t))) return;
    assert.equal(await docker(["image", "inspect", "--format", `{{index .Config.Labels "${LABEL}"}}`, MACHINE_IMAGE]), "true");
    // The runtime image npm run images built beside the machine image (scripts/images.ts names it).
    const runtimeImage = `devmachines/runtime:${process.env.DEVMACHINES_IMAGE_TAG ?? "latest"}`;
    assert.equal(await docker(["image", "inspect", "--format", `{{index .Config.Labels "${LABEL}"}}`, runtimeImage]), "true");

    const volumes = ["dm-upstream-dry-disks", "dm-upstream-dry-socks"];
    after(() => Promise.all(volumes.map((volume) => docker(["volume", "rm", "--force", volume]).catch(() => undefined))));
    const plan = JSON.parse(
      await docker([
        "run", "--rm", ...ENV, "-v", `${volumes[0]}:/disks`, "-v", `${volumes[1]}:/socks`, "-v", `${guestImage()}:/image/ubuntu.img:ro`,
        MACHINE_IMAGE, "--dry-run",
      ]),
    );
    assert.equal(plan.locations.baseImage.path, "/image/ubuntu.img");
    assert.equal(plan.locations.disksDir.path, "/disks");
    assert.equal(plan.locations.socketsDir.path, "/socks");
    assert.equal(plan.disk.overlayPath, "/disks/disk.qcow2");
    assert.match(plan.qemu.args.join(" "), /-qmp unix:\/socks\/qmp\.sock/);

    const dir = await mkdtemp(join(tmpdir(), "dm-upstream-image-"));
    after(() => rm(dir, { recursive: true, force: true }));
    await writeFile(join(dir, "jammy.img"), "");
    await writeFile(join(dir, "noble.qcow2"), "");
    const refused = await docker(["run", "--rm", ...ENV, "-v", `${dir}:/image:ro`, MACHINE_IMAGE, "--dry-run"]).then(
      () => assert.fail("two images under /image were accepted"),
      (error: Error) => error,
    );
    assert.match(refused.message, /\(exit 3\)/, "a host problem: exit code 3");
    assert.match(refused.message, /\/image holds several disk images \(jammy\.img, noble\.qcow2\) and none is named ubuntu\.img: set BASE_IMAGE/);
  });

  test("an upstream-shaped compose file: up, SSH with the password to the container's IP, stop within the grace period, down and up, the data is there", { timeout: 2 * BOOT_TIMEOUT_MS + 240_000 }, async (t) => {
    if (!(await e2eAvailable(t))) return;
    const compose = fileURLToPath(new URL("./upstream-compose.yaml", import.meta.url));
    const name = "dm-upstream-runtime";
    const env = { ...process.env, NAME: name, IMAGE: MACHINE_IMAGE, GUEST_IMAGE: guestImage() };
    const run = (args: string[]) => exec("docker-compose", ["-p", "dm-upstream-compose", "-f", compose, ...args], { env });
    after(() => run(["down", "--volumes", "--timeout", "60"]).catch(() => undefined));
    await run(["down", "--volumes"]).catch(() => undefined);

    await run(["up", "-d"]);
    await healthy(name, "upstream 1");
    // The upstream quick start: ssh user@$VM_IP with the container's IP.
    const ip = await docker(["inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{break}}{{end}}", name]);
    assert.match(ip, /^\d+\.\d+\.\d+\.\d+$/);
    const password = { user: "user", password: "pass" };
    assert.equal(await ssh({ host: ip, port: 22, ...password }, "echo kept > ~/note.txt && sync && whoami"), "user");

    const launcher = (await containerLogs(name)).launcher;
    assert.match(launcher, /base image: \/image\/ubuntu\.img \(mounted at \/image under the upstream project's name/);
    assert.match(launcher, /disks folder: \/disks \(a volume is mounted at \/disks/);
    assert.match(launcher, /sockets: \/socks \(a volume is mounted at \/socks/);
    // The disk, its base's identity and the password salts' key (kept with the disk it belongs to).
    assert.deepEqual((await docker(["exec", name, "ls", "/disks"])).split("\n"), ["disk.base.json", "disk.qcow2", "password-salt.key"]);
    assert.deepEqual((await docker(["exec", name, "ls", "/socks"])).split("\n"), ["qga.sock", "qmp.sock", "vnc.sock"]);

    // The upstream inventory finds it by the label and its published 22/tcp, and that address works.
    const found = (await upstreamInventory()).find((host) => host.name === name);
    assert.ok(found, "the upstream inventory query finds the machine");
    assert.equal(found.port, await publishedPort(name, 22));
    assert.equal(await ssh({ host: found.host, port: found.port, ...password }, "cat ~/note.txt"), "kept");

    // Within compose's stop_grace_period (60 s), the guest powers off and the launcher exits 0
    // by itself: a kill by Docker would be 137, a kill after GRACE_SECONDS 4.
    await run(["stop"]);
    const stopLog = (await containerLogs(name, { tail: 8 })).launcher;
    assert.equal(await docker(["inspect", "--format", "{{.State.ExitCode}}", name]), "0", `the guest powered off cleanly:\n${stopLog}`);
    assert.match(stopLog, /QEMU exited cleanly \(the guest powered off\)/);

    // `down` removes the container (the named volumes stay), `up` makes a new one on them.
    await run(["down"]);
    await run(["up", "-d"]);
    await healthy(name, "upstream 2");
    assert.match((await containerLogs(name)).launcher, /disk: reuse \/disks\/disk\.qcow2/);
    const ip2 = await docker(["inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{break}}{{end}}", name]);
    assert.equal(await ssh({ host: ip2, port: 22, ...password }, "cat ~/note.txt"), "kept", "the disk lived on the /disks volume");

    // The default GRACE_SECONDS fits Docker's own default stop timeout (10 s) as well.
    await docker(["stop", "--time", "10", name]);
    const lastLog = (await containerLogs(name, { tail: 8 })).launcher;
    assert.equal(await docker(["inspect", "--format", "{{.State.ExitCode}}", name]), "0", `stopped cleanly within Docker's default 10 s:\n${lastLog}`);
  });
});
