import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { discoverLocations, parseMountInfo } from "../src/locations/discover.js";
import { planLocations, type LocationSettings } from "../src/locations/plan.js";
import { ExitCode, LauncherError } from "../src/exitCodes.js";
import type { ContainerNetwork } from "../src/network/discover.js";
import { planArch } from "../src/plan/arch.js";
import { dryRunReport, planLaunch } from "../src/plan/index.js";
import { parseConfig } from "../src/config/index.js";
import { ED25519 } from "./fixtures/keys.js";

// Taken from a container run with `-v VOLUME:/disks -v FILE:/image/ubuntu.img:ro` (lines shortened).
const MOUNTINFO = `62 68 0:42 / / rw,relatime master:5 - overlay overlay rw,lowerdir=/var/lib/docker/overlay2/l/NITT
63 62 0:45 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw
91 62 254:0 /var/lib/docker/volumes/dm-upstream-x/_data /disks rw,relatime master:1 - ext4 /dev/vda rw,discard
92 62 254:0 /srv/images/debian-13.qcow2 /image/ubuntu.img ro,relatime - ext4 /dev/vda rw,discard
93 62 254:0 /var/lib/docker/containers/9c1c/resolv.conf /etc/resolv.conf rw,relatime - ext4 /dev/vda rw,discard
96 62 254:0 /var/lib/docker/volumes/029d/_data /var/lib/devmachines rw,relatime master:1 - ext4 /dev/vda rw,discard
97 62 254:0 /home/a\\040b /socks rw,relatime shared:7 master:1 - ext4 /dev/vda rw
`;

const DEFAULTS = { baseImage: "/images/base.qcow2", disksDir: "/var/lib/devmachines", runDir: "/run/devmachines" };
const plan = (settings: LocationSettings, mountPoints: string[], imageFiles: string[] = []) =>
  planLocations(settings, { mountPoints, imageFiles }, DEFAULTS);

test("parseMountInfo reads mount points, roots, read-only flags and octal escapes, whatever the optional fields", () => {
  const entries = parseMountInfo(MOUNTINFO);
  assert.deepEqual(entries.map((entry) => entry.mountPoint), ["/", "/proc", "/disks", "/image/ubuntu.img", "/etc/resolv.conf", "/var/lib/devmachines", "/socks"]);
  const image = entries.find((entry) => entry.mountPoint === "/image/ubuntu.img")!;
  assert.equal(image.root, "/srv/images/debian-13.qcow2");
  assert.equal(image.readOnly, true);
  assert.equal(image.fsType, "ext4");
  assert.equal(image.source, "/dev/vda");
  const socks = entries.find((entry) => entry.mountPoint === "/socks")!;
  assert.equal(socks.root, "/home/a b", "\\040 is a space");
  assert.equal(socks.fsType, "ext4", "two optional fields before the separator");
  assert.equal(entries.find((entry) => entry.mountPoint === "/disks")!.readOnly, false);
  assert.deepEqual(parseMountInfo("garbage\n\n1 2 3\n"), [], "lines of another shape are skipped");
});

test("nothing mounted: the image's defaults, each with its reason", () => {
  const result = plan({}, ["/", "/proc", "/var/lib/devmachines"], ["ubuntu.img"]);
  assert.equal(result.baseImage.path, "/images/base.qcow2");
  assert.match(result.baseImage.reason, /nothing is mounted at \/image/);
  assert.equal(result.disksDir.path, "/var/lib/devmachines");
  assert.match(result.disksDir.reason, /DISKS_DIR is not set and nothing is mounted at \/disks/);
  assert.equal(result.socketsDir.path, "/run/devmachines");
  assert.equal(result.vncSocket, undefined, "no VNC unless asked for");
});

test("the upstream layout: /disks, /socks and /image/ubuntu.img are used when mounted", () => {
  const mountPoints = parseMountInfo(MOUNTINFO).map((entry) => entry.mountPoint);
  const result = plan({}, mountPoints, ["ubuntu.img"]);
  assert.equal(result.baseImage.path, "/image/ubuntu.img");
  assert.match(result.baseImage.reason, /upstream project's name, and BASE_IMAGE is not set/);
  assert.equal(result.disksDir.path, "/disks");
  assert.match(result.disksDir.reason, /a volume is mounted at \/disks/);
  assert.equal(result.socketsDir.path, "/socks");
  assert.equal(result.vncSocket, "/socks/vnc.sock");
});

test("/image as a mounted folder: ubuntu.img first, else the single *.img or *.qcow2", () => {
  assert.equal(plan({}, ["/image"], ["a.qcow2", "notes.txt", "ubuntu.img"]).baseImage.path, "/image/ubuntu.img");
  const single = plan({}, ["/image"], ["README", "noble.QCOW2"]);
  assert.equal(single.baseImage.path, "/image/noble.QCOW2");
  assert.match(single.baseImage.reason, /the one disk image/);
  assert.equal(plan({}, ["/image/jammy.img"], ["jammy.img"]).baseImage.path, "/image/jammy.img");
});

test("several images under /image and none named ubuntu.img is a clear error naming them and BASE_IMAGE", () => {
  assert.throws(
    () => plan({}, ["/image"], ["a.qcow2", "b.img"]),
    (error: unknown) =>
      error instanceof LauncherError &&
      error.exitCode === ExitCode.Host &&
      /\/image holds several disk images \(a\.qcow2, b\.img\) and none is named ubuntu\.img: set BASE_IMAGE .*BASE_IMAGE=\/image\/a\.qcow2/.test(error.message),
  );
  assert.throws(() => plan({}, ["/image"], []), /something is mounted at \/image, but it holds no ubuntu\.img, \*\.img or \*\.qcow2 file \(it is empty\)/);
  assert.throws(() => plan({}, ["/image"], ["notes.txt"]), /\(it holds notes\.txt\)/);
  // BASE_IMAGE settles it: no error, whatever /image holds.
  assert.equal(plan({ baseImage: "/image/b.img" }, ["/image"], ["a.qcow2", "b.img"]).baseImage.path, "/image/b.img");
});

test("BASE_IMAGE and DISKS_DIR win over the mounts, and the reason says so", () => {
  const result = plan({ baseImage: "/mnt/base.qcow2", disksDir: "/data" }, ["/disks", "/image"], ["ubuntu.img"]);
  assert.deepEqual(result.baseImage, { path: "/mnt/base.qcow2", reason: "BASE_IMAGE is set (it wins over what is mounted at /image)" });
  assert.deepEqual(result.disksDir, { path: "/data", reason: "DISKS_DIR is set (it wins over the volume at /disks)" });
  assert.deepEqual(plan({ disksDir: "/data" }, []).disksDir, { path: "/data", reason: "DISKS_DIR is set" });
});

test("the launch plan puts QMP and the guest agent in /socks, serves VNC there unless VNC is set, and the dry run shows the locations", () => {
  const parsed = parseConfig({ CPU: "1", MEMORY: "1G", STORAGE: "10G", USER: "dev", SSH_KEYS: ED25519, HOSTNAME: "box" }, () => undefined);
  assert.ok(parsed.ok);
  const locations = plan({}, ["/disks", "/socks", "/image"], ["ubuntu.img"]);
  const base = { sha256: "0".repeat(64), virtualSize: 2 * 1024 ** 3, format: "qcow2" };
  const network: ContainerNetwork = {
    interface: "eth0", mac: "02:42:ac:11:00:02", mtu: 1500, ipv4: { address: "172.17.0.2", prefixLength: 16 }, gateway: "172.17.0.1",
    routes: [], dns: { nameservers: ["8.8.8.8"], search: [], upstream: [] }, ipv6: [], notes: [],
  };
  const launch = planLaunch(parsed.config, { disk: { base, overlay: undefined }, network, accel: { verdictPath: "/disks/kvm-verdict.json" }, saltKey: "5".repeat(64) }, locations, "/run/devmachines", x86Host(locations));
  assert.equal(launch.disk.overlayPath, "/disks/disk.qcow2");
  assert.equal(launch.disk.basePath, "/image/ubuntu.img");
  assert.equal(launch.paths.qmpSocket, "/socks/qmp.sock");
  assert.equal(launch.paths.guestAgentSocket, "/socks/qga.sock");
  assert.equal(launch.paths.state, "/run/devmachines/state.json", "the health state stays in the run folder");
  const args = launch.argsFor("tcg").join(" ");
  assert.match(args, /-qmp unix:\/socks\/qmp\.sock,server=on,wait=off/);
  assert.match(args, /-vnc unix:\/socks\/vnc\.sock/);
  assert.deepEqual(launch.vnc, { listen: { kind: "unix", path: "/socks/vnc.sock" }, options: [] }, "one VNC plan: apply/vnc.ts checks this socket too");
  const report = dryRunReport(launch, []);
  assert.deepEqual(report.locations, locations);

  const withVnc = parseConfig({ CPU: "1", MEMORY: "1G", STORAGE: "10G", USER: "dev", SSH_KEYS: ED25519, VNC: ":3" }, () => undefined);
  assert.ok(withVnc.ok);
  const vncArgs = planLaunch(withVnc.config, { disk: { base, overlay: undefined }, network, accel: { verdictPath: "/disks/kvm-verdict.json" }, saltKey: "5".repeat(64) }, locations, "/run/devmachines", x86Host(locations)).argsFor("tcg");
  assert.deepEqual(vncArgs.filter((_, i) => vncArgs[i - 1] === "-vnc"), [":3"], "VNC as set, and only that");
});

const work = await mkdtemp(join(tmpdir(), "dm-locations-"));
after(() => rm(work, { recursive: true, force: true }));

test("discoverLocations reads the mount points and the image folder's files (links followed, folders left out)", async () => {
  const imageDir = join(work, "image");
  await mkdir(join(imageDir, "sub.qcow2"), { recursive: true });
  await writeFile(join(imageDir, "b.img"), "");
  await writeFile(join(work, "target.qcow2"), "");
  await symlink(join(work, "target.qcow2"), join(imageDir, "a.qcow2"));
  await symlink(join(work, "missing"), join(imageDir, "dangling.img"));
  await writeFile(join(work, "mountinfo"), MOUNTINFO);
  const facts = await discoverLocations({ mountinfo: join(work, "mountinfo"), imageDir });
  assert.deepEqual(facts.imageFiles, ["a.qcow2", "b.img"]);
  assert.ok(facts.mountPoints.includes("/image/ubuntu.img"));
  assert.deepEqual(await discoverLocations({ mountinfo: join(work, "none"), imageDir: join(work, "none") }), { mountPoints: [], imageFiles: [] });
});

/** The architecture plan of an x86_64 guest on an x86_64 host, the case these tests are about. */
function x86Host(locations: { disksDir: { path: string } }) {
  return planArch(undefined, { host: "x86_64" }, locations.disksDir.path);
}
