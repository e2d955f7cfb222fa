import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { parseConfig } from "../src/config/index.js";
import { copyCloneDisk, readCloneFacts, writeCaptureMeta } from "../src/apply/clone.js";
import { captureVariantImage, parseCaptureSize } from "../src/plan/captureSize.js";
import { clonePaths, hardwareHash, planClone, type CloneCandidate, type CloneMeta } from "../src/plan/clone.js";
import type { DiskPlan } from "../src/plan/disk.js";
import { resealScript, type ResealInput } from "../src/plan/reseal.js";

const work = await mkdtemp(join(tmpdir(), "dm-clone-"));
after(() => rm(work, { recursive: true, force: true }));

const base = { sha256: "b".repeat(64), virtualSize: 3 * 2 ** 30, format: "qcow2" };
const meta: CloneMeta = {
  format: 1,
  qemu: "QEMU emulator version 10.0.6",
  accel: "tcg",
  arch: "x86_64",
  hardware: "hw",
  cpu: 2,
  memoryBytes: 2 * 2 ** 30,
  storageBytes: 20 * 2 ** 30,
  base,
  disk: { bytes: 1000, sha256: "d".repeat(64) },
  networkConfig: "net",
  stateBytes: 5000,
  captureUser: "devmachines-capture",
  capturedAt: "2026-11-29T13:00:00.000Z",
};
const facts = { meta, stateBytes: 5000, diskBytes: 1000 };
const now: CloneCandidate = {
  snapshot: "auto", diskAction: "create", ephemeral: false, resuming: false, network: "NAT", arch: "x86_64", accel: "tcg",
  qemu: meta.qemu, cpu: 2, memoryBytes: 2 * 2 ** 30, storageBytes: 20 * 2 ** 30, base, basePath: "/images/base.qcow2", hardware: "hw",
  networkConfig: "net",
};
const paths = clonePaths();

test("planClone: a new machine matching the capture in every recorded respect is cloned", () => {
  const plan = planClone(facts, now, paths);
  assert.equal(plan.action, "clone");
  assert.match(plan.reason, /matches: restoring it, then resealing/);
});

test("planClone: every mismatch cold-boots and says which rule decided", () => {
  const cases: [Partial<CloneCandidate>, RegExp][] = [
    [{ snapshot: "off" }, /^cold boot: SNAPSHOT=off$/],
    [{ resuming: true }, /saved state of this machine is resumed instead/],
    [{ diskAction: "reuse" }, /has a disk already/],
    [{ diskAction: "grow" }, /has a disk already/],
    [{ arch: "aarch64" }, /ARCH aarch64/],
    [{ network: "BRIDGE" }, /NETWORK=BRIDGE/],
    [{ accel: "kvm" }, /captured under TCG, this start uses KVM/],
    [{ accel: "kvm", accelFallback: "tcg" }, /uses KVM \(or TCG\)/],
    [{ qemu: "QEMU emulator version 9.2.0" }, /captured by QEMU emulator version 10\.0\.6, this is QEMU emulator version 9\.2\.0/],
    [{ base: { ...base, sha256: "c".repeat(64) } }, /BASE_IMAGE is not the base/],
    // The same base elsewhere: the copied disk would look for it at the captured path.
    [{ basePath: "/image/boot.qcow2" }, /BASE_IMAGE is \/image\/boot\.qcow2, the state was captured over \/images\/base\.qcow2/],
    [{ cpu: 4 }, /CPU=4 MEMORY=2048 MiB; the state was captured at CPU=2 MEMORY=2048 MiB/],
    [{ memoryBytes: 2 ** 30 }, /MEMORY=1024 MiB/],
    [{ storageBytes: 30 * 2 ** 30 }, /STORAGE=30720 MiB; the state was captured with a 20480 MiB disk/],
    [{ networkConfig: "other" }, /network settings \(DNS\)/],
    [{ hardware: "vga" }, /virtual hardware differs/],
  ];
  for (const [change, reason] of cases) {
    const plan = planClone(facts, { ...now, ...change }, paths);
    assert.equal(plan.action, "boot", JSON.stringify(change));
    assert.match(plan.reason, reason);
  }
});

test("planClone: a base not hashed yet is hashed only when it could be the capture's and all else would clone", () => {
  const { sha256: _unknown, ...unhashed } = base;
  const file = { bytes: 400 * 2 ** 20, mtimeMs: 1, ctimeMs: 2 };
  const withFile = { ...facts, meta: { ...meta, base: { ...base, file } } };
  const needs = planClone(withFile, { ...now, base: { ...unhashed, file: { ...file, mtimeMs: 7 } } }, paths);
  assert.equal(needs.action, "boot");
  assert.equal(needs.action === "boot" && needs.needsBaseDigest, true, "same format and sizes: only the digest can tell");
  for (const [other, why] of [
    [{ ...unhashed, virtualSize: 2 * 2 ** 30 }, "another virtual size"],
    [{ ...unhashed, format: "raw" }, "another format"],
    [{ ...unhashed, file: { ...file, bytes: 2 ** 30 } }, "another file size"],
  ] as const) {
    const plan = planClone(withFile, { ...now, base: other }, paths);
    assert.equal(plan.action === "boot" && plan.needsBaseDigest, undefined, why);
    assert.match(plan.reason, /BASE_IMAGE is not the base the state was captured over \(its format or size differ\)/, why);
  }
  // Another rule already decides: the base is not read for nothing.
  const cpu = planClone(withFile, { ...now, cpu: 4, base: unhashed }, paths);
  assert.equal(cpu.action === "boot" && cpu.needsBaseDigest, undefined);
  assert.match(cpu.reason, /CPU=4/);
  assert.equal(planClone(withFile, { ...now, base: { ...unhashed, sha256: base.sha256, file } }, paths).action, "clone", "hashed: it clones");
});

test("planClone: the size that counts is the one clone.json records, not the default's", () => {
  // A capture of another size (npm run images -- --capture-size 1x256Mx4G) is matched by that size.
  const small: CloneMeta = { ...meta, cpu: 1, memoryBytes: 256 * 2 ** 20, storageBytes: 4 * 2 ** 30 };
  const smallFacts = { ...facts, meta: small };
  const smallNow: CloneCandidate = { ...now, cpu: 1, memoryBytes: 256 * 2 ** 20, storageBytes: 4 * 2 ** 30 };
  assert.equal(planClone(smallFacts, smallNow, paths).action, "clone");
  // The default size does not match it, and a 256 MiB machine does not match the default capture.
  assert.match(planClone(smallFacts, now, paths).reason, /CPU=2 MEMORY=2048 MiB; the state was captured at CPU=1 MEMORY=256 MiB/);
  assert.match(planClone(facts, smallNow, paths).reason, /CPU=1 MEMORY=256 MiB; the state was captured at CPU=2 MEMORY=2048 MiB/);
  assert.match(planClone(smallFacts, { ...smallNow, storageBytes: 20 * 2 ** 30 }, paths).reason, /captured with a 4096 MiB disk/);
});

test("parseCaptureSize: CPUxMEMORYxSTORAGE by the machine's own rules, a canonical label; the variant's tag", () => {
  const size = parseCaptureSize("1x256mx4GiB");
  assert.deepEqual(
    { cpu: size.cpu, memoryBytes: size.memoryBytes, storageBytes: size.storageBytes, label: size.label, env: size.env },
    { cpu: 1, memoryBytes: 256 * 2 ** 20, storageBytes: 4 * 2 ** 30, label: "1x256Mx4G", env: { CPU: "1", MEMORY: "256M", STORAGE: "4G" } },
  );
  assert.equal(parseCaptureSize("2X1536MX20G").label, "2x1536Mx20G");
  assert.equal(captureVariantImage("devmachines/debian:13", size), "devmachines/debian:13-1x256Mx4G");
  assert.equal(captureVariantImage("localhost:5000/devmachines/debian", size), "localhost:5000/devmachines/debian:latest-1x256Mx4G");
  for (const [text, rule] of [
    ["1x256M", /must be CPUxMEMORYxSTORAGE, e\.g\. 1x256Mx4G/],
    ["0x256Mx4G", /CPU must be a whole number of virtual CPUs, at least 1/],
    ["1x64Mx4G", /MEMORY must be at least 128 MiB \(is 64 MiB\)/],
    ["1x256Mxlots", /STORAGE must be a size like 512M/],
  ] as const) {
    assert.throws(() => parseCaptureSize(text), rule, text);
  }
});

test("planClone: a missing, unreadable or incomplete capture cold-boots", () => {
  assert.match(planClone(undefined, now, paths).reason, /ships no captured ready state/);
  assert.match(planClone({ problem: "x is not valid JSON" }, now, paths).reason, /cannot be used: x is not valid JSON/);
  assert.match(planClone({ meta, diskBytes: 1000 }, now, paths).reason, /state file has no bytes, 5000 were captured/);
  assert.match(planClone({ meta, stateBytes: 5000, diskBytes: 999 }, now, paths).reason, /captured disk has 999 bytes/);
});

test("hardwareHash: the name, paths, port forwards and -incoming do not count; devices and sizes do", () => {
  const argv = (name: string, dir: string, fwd: string, mem = "2048M") => [
    "-name", `guest=${name}`, "-m", mem, "-drive", `file=${dir}/disk.qcow2,if=none`, "-netdev", `user,id=net0,hostfwd=${fwd}`,
    "-qmp", `unix:${dir}/run/qmp.sock,server=on`, "-display", "none",
  ];
  const h = (a: string[], dir: string) => hardwareHash(a, { overlayPath: `${dir}/disk.qcow2`, dirs: [`${dir}/run`] });
  const one = h(argv("a", "/x", "tcp::22-:22"), "/x");
  assert.equal(h([...argv("b", "/y", "tcp::2222-:22"), "-incoming", "fd:3"], "/y"), one);
  assert.notEqual(h(argv("a", "/x", "tcp::22-:22", "1024M"), "/x"), one);
  assert.notEqual(h([...argv("a", "/x", "tcp::22-:22"), "-vnc", "unix:/x/run/vnc.sock"], "/x"), one);
});

test("SNAPSHOT: auto by default, auto|off any case, anything else names the field and the rule", () => {
  const env = { CPU: "2", MEMORY: "2G", STORAGE: "20G", USER: "dev", PASSWORD: "pw", HOSTNAME: "h" };
  const parsed = parseConfig(env, () => undefined);
  assert.equal(parsed.ok && parsed.config.snapshot, "auto");
  const off = parseConfig({ ...env, SNAPSHOT: "OFF" }, () => undefined);
  assert.equal(off.ok && off.config.snapshot, "off");
  const bad = parseConfig({ ...env, SNAPSHOT: "never" }, () => undefined);
  assert.equal(bad.ok, false);
  assert.deepEqual(!bad.ok && bad.issues.map((issue) => [issue.variable, issue.message]), [["SNAPSHOT", "must be auto or off"]]);
});

const resealBase: ResealInput = {
  hostname: "box",
  users: [{ name: "dev", sshKeys: ["ssh-ed25519 AAAA dev@x"], sudo: true }],
  userData: false,
  seed: { metaData: "m", userData: "u", networkConfig: "n" },
  machineId: "0123456789abcdef0123456789abcdef",
  randomSeed: Buffer.from("random").toString("base64"),
  captureUser: "devmachines-capture",
  captureHostname: "devmachines-capture",
};

test("resealScript: valid shell; hostile values arrive as data; USER_DATA brings cloud-init back, with the seed disk off", () => {
  const hostile = "pa'ss\"$(reboot)`x`\n- root";
  const script = resealScript({
    ...resealBase,
    hostname: "box",
    users: [{ name: "dev", passwordHash: `$6$salt$${hostile}`, sshKeys: [`ssh-ed25519 AAAA ${hostile}`], sudo: false }],
  });
  execFileSync("sh", ["-n"], { input: script });
  assert.ok(!script.includes("ssh-ed25519 AAAA"), "keys travel base64-encoded");
  assert.match(script, /usermod -p '\$6\$salt\$pa'\\''ss"\$\(reboot\)`x`\n- root' dev/, "the hash is single-quoted as a whole");
  assert.match(script, /rm -f \/etc\/ssh\/ssh_host_\*/);
  assert.match(script, /userdel -r -f devmachines-capture/);
  assert.match(script, /PasswordAuthentication %s\\n' yes/);
  assert.doesNotMatch(script, /cloud-init (init|modules|clean)/);
  const withUserData = resealScript({ ...resealBase, userData: true });
  execFileSync("sh", ["-n"], { input: withUserData });
  assert.match(withUserData, /fs_label: null/);
  assert.match(withUserData, /cloud-init modules --mode=final/);
  assert.throws(() => resealScript({ ...resealBase, users: [{ name: "x; reboot", sshKeys: [], sudo: false }] }), /not a user name/);
  assert.throws(() => resealScript({ ...resealBase, machineId: "nope" }), /machineId/);
});

test("copyCloneDisk: the copy is checked against the capture; a mismatch leaves nothing behind", async () => {
  const captureDir = join(work, "capture");
  const disksDir = join(work, "disks");
  execFileSync("mkdir", ["-p", captureDir, disksDir]);
  await writeFile(join(captureDir, "disk.qcow2"), "captured disk bytes");
  await writeFile(join(captureDir, "vmstate.bin"), "state");
  const { disk: _disk, stateBytes: _state, capturedAt: _at, ...recorded } = meta;
  const written = await writeCaptureMeta(captureDir, recorded);
  const read = await readCloneFacts(clonePaths(captureDir));
  assert.deepEqual(read, { meta: written, stateBytes: 5, diskBytes: 19 });
  const plan = { overlayPath: join(disksDir, "disk.qcow2"), identityPath: join(disksDir, "disk.base.json"), base } as DiskPlan;
  await copyCloneDisk(plan, clonePaths(captureDir), written);
  assert.equal(await readFile(plan.overlayPath, "utf8"), "captured disk bytes");
  assert.deepEqual(JSON.parse(await readFile(plan.identityPath, "utf8")), base);
  await rm(plan.overlayPath);
  await rm(plan.identityPath);
  await assert.rejects(copyCloneDisk(plan, clonePaths(captureDir), { ...written, disk: { ...written.disk, sha256: "0".repeat(64) } }), /is not the captured disk's/);
  for (const file of ["disk.qcow2", "disk.qcow2.creating", "disk.base.json", "disk.base.json.creating"]) assert.ok(!existsSync(join(disksDir, file)), file);
  assert.equal(await readCloneFacts(clonePaths(disksDir)), undefined);
});

test("planClone: a capture made over another BASE_IMAGE path clones machines with that path only", () => {
  const elsewhere = { ...facts, meta: { ...meta, basePath: "/image/boot.qcow2" } };
  assert.equal(planClone(elsewhere, { ...now, basePath: "/image/boot.qcow2" }, paths).action, "clone");
  assert.match(planClone(elsewhere, now, paths).reason, /BASE_IMAGE is \/images\/base\.qcow2, the state was captured over \/image\/boot\.qcow2/);
});
