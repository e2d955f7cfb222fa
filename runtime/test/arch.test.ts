/** ARCH: the setting, the decision from the base image, and the aarch64 machine's QEMU plan. */
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { ensureEfiVars, findEsp, loaderArch } from "../src/apply/arch.js";
import { parseConfig } from "../src/config/index.js";
import { ExitCode, LauncherError } from "../src/exitCodes.js";
import { planAccel } from "../src/plan/accel.js";
import { planArch } from "../src/plan/arch.js";
import { dryRunReport, planLaunch } from "../src/plan/index.js";
import type { ContainerNetwork } from "../src/network/discover.js";
import { planLocations } from "../src/locations/plan.js";
import { DEFAULTS } from "../src/config/schema.js";
import { ED25519 } from "./fixtures/keys.js";

const ENV = { CPU: "2", MEMORY: "1G", STORAGE: "10G", USER: "dev", SSH_KEYS: ED25519, HOSTNAME: "box" };

test("ARCH takes x86_64 and aarch64 (and Debian's amd64/arm64); anything else names the variable and the rule", () => {
  for (const [given, arch] of [["aarch64", "aarch64"], ["arm64", "aarch64"], ["AMD64", "x86_64"], ["x86_64", "x86_64"]] as const) {
    const parsed = parseConfig({ ...ENV, ARCH: given }, () => undefined);
    assert.ok(parsed.ok, given);
    assert.equal(parsed.config.arch, arch);
  }
  const unset = parseConfig(ENV, () => undefined);
  assert.ok(unset.ok);
  assert.equal(unset.config.arch, undefined, "unset: the base image decides");
  const bad = parseConfig({ ...ENV, ARCH: "riscv64" }, () => undefined);
  assert.ok(!bad.ok);
  assert.deepEqual(bad.issues, [
    { variable: "ARCH", value: "riscv64", message: "must be x86_64 or aarch64 (or amd64, arm64); other architectures (riscv64) are not supported yet" },
  ]);
});

test("planArch: ARCH, else the base image, else x86_64; KVM only when the host is the guest's architecture", () => {
  const detected = { arch: "aarch64" as const, source: "/images/base.qcow2.arch" };
  const fromImage = planArch(undefined, { host: "x86_64", detected }, "/d");
  assert.equal(fromImage.arch, "aarch64");
  assert.equal(fromImage.reason, "the base image is aarch64 (/images/base.qcow2.arch)");
  assert.equal(fromImage.binary, "qemu-system-aarch64");
  assert.equal(fromImage.kvmPossible, false);
  assert.deepEqual(fromImage.firmware, { code: "/usr/share/AAVMF/AAVMF_CODE.fd", varsTemplate: "/usr/share/AAVMF/AAVMF_VARS.fd", vars: "/d/efi-vars.fd" });
  assert.equal(planArch("aarch64", { host: "aarch64", detected }, "/d").reason, "ARCH=aarch64 (the base image agrees: /images/base.qcow2.arch)");
  assert.equal(planArch("aarch64", { host: "aarch64", detected }, "/d").kvmPossible, true);
  const fallback = planArch(undefined, { host: "x86_64" }, "/d");
  assert.equal(fallback.arch, "x86_64");
  assert.equal(fallback.binary, "qemu-system-x86_64");
  assert.equal(fallback.firmware, undefined, "x86_64 boots through SeaBIOS");
  assert.equal(fallback.kvmPossible, true);
  assert.equal(planArch("aarch64", { host: "x86_64" }, "/d").reason, "ARCH=aarch64");
});

test("planArch: ARCH contradicting the base image stops the start with exit 2, naming ARCH, both architectures and the rule", () => {
  assert.throws(
    () => planArch("x86_64", { host: "x86_64", detected: { arch: "aarch64", source: "BOOTAA64.EFI on the disk's EFI system partition" } }, "/d"),
    (error: unknown) =>
      error instanceof LauncherError &&
      error.exitCode === ExitCode.Config &&
      error.message ===
        "ARCH=x86_64 does not match the base image, which is aarch64 (BOOTAA64.EFI on the disk's EFI system partition): " +
          "ARCH must name the base image's architecture. Unset ARCH to follow the image, or boot an x86_64 image",
  );
});

test("planAccel: a guest of another architecture runs under TCG, says why, and ACCEL=kvm is refused (exit 2)", () => {
  const foreign = { guest: "aarch64", host: "x86_64" };
  const auto = planAccel("auto", { verdictPath: "/d/v" }, foreign);
  assert.equal(auto.first, "tcg");
  assert.equal(auto.fallback, undefined);
  assert.equal(auto.reason, "the guest is aarch64 and this host is x86_64: KVM runs guests of the host's own architecture only");
  assert.match(auto.warning ?? "", /running under TCG software emulation/);
  assert.deepEqual(planAccel("tcg", { verdictPath: "/d/v" }, foreign), { requested: "tcg", first: "tcg", reason: "ACCEL=tcg" });
  assert.throws(
    () => planAccel("kvm", { kvm: { usable: true }, verdictPath: "/d/v" }, foreign),
    (error: unknown) => error instanceof LauncherError && error.exitCode === ExitCode.Config && /^ACCEL=kvm is impossible here: the guest is aarch64/.test(error.message),
  );
});

const network: ContainerNetwork = {
  interface: "eth0", mac: "02:42:ac:11:00:02", mtu: 1500, ipv4: { address: "172.17.0.2", prefixLength: 16 }, gateway: "172.17.0.1",
  routes: [], dns: { nameservers: ["8.8.8.8"], search: [], upstream: [] }, ipv6: [], notes: [],
};
const base = { sha256: "0".repeat(64), virtualSize: 2 * 1024 ** 3, format: "qcow2" };

function launchFor(env: Record<string, string>, host = "x86_64") {
  const parsed = parseConfig({ ...ENV, ...env }, () => undefined);
  assert.ok(parsed.ok);
  const locations = planLocations(parsed.config, { mountPoints: [], imageFiles: [] }, { ...DEFAULTS, runDir: "/run/devmachines" });
  const arch = planArch(parsed.config.arch, { host, detected: { arch: "aarch64", source: "/images/base.qcow2.arch" } }, locations.disksDir.path);
  const foreign = arch.kvmPossible ? undefined : { guest: arch.arch, host };
  const accelFacts = { verdictPath: "/var/lib/devmachines/kvm-verdict.json", kvm: { usable: true } };
  assert.equal(planAccel(parsed.config.accel, accelFacts, foreign).first, host === "x86_64" ? "tcg" : "kvm");
  return planLaunch(parsed.config, { disk: { base, overlay: undefined }, network, accel: accelFacts, saltKey: "5".repeat(64) }, locations, "/run/devmachines", arch);
}

test("the aarch64 plan: qemu-system-aarch64 virt, max CPU with cheap pauth under TCG, UEFI pflash with the machine's own vars, virtio disk/net, PL011 serial", () => {
  const launch = launchFor({});
  const args = launch.argsFor("tcg");
  const after = (flag: string) => args.filter((_, i) => args[i - 1] === flag);
  assert.deepEqual(after("-machine"), ["virt,gic-version=max"]);
  assert.deepEqual(after("-cpu"), ["max,pauth-impdef=on"]);
  assert.deepEqual(after("-accel"), ["tcg,thread=multi"]);
  assert.deepEqual(after("-drive").slice(0, 2), [
    "if=pflash,unit=0,format=raw,readonly=on,file=/usr/share/AAVMF/AAVMF_CODE.fd",
    "if=pflash,unit=1,format=raw,file=/var/lib/devmachines/efi-vars.fd",
  ]);
  assert.ok(after("-device").includes("virtio-blk-pci,drive=disk0,bootindex=0"), "virtio root disk, first to boot");
  assert.ok(after("-device").some((d) => d.startsWith("virtio-net-pci,netdev=")), "virtio NIC");
  assert.deepEqual(after("-serial"), ["stdio"], "virt's first serial port is the PL011 (ttyAMA0)");
  assert.ok(!args.includes("VGA"), "no VGA on virt");
  assert.equal(launch.argsFor("kvm")[launch.argsFor("kvm").indexOf("-cpu") + 1], "host");
  const report = dryRunReport(launch, []);
  assert.equal(report.qemu.binary, "qemu-system-aarch64");
  assert.equal(report.arch.arch, "aarch64");
  assert.equal(report.arch.kvmPossible, false);
  assert.equal(report.arch.firmware?.vars, "/var/lib/devmachines/efi-vars.fd");
});

test("the aarch64 plan with VNC: a virtio GPU and USB keyboard and tablet (virt has no VGA or PS/2)", () => {
  const args = launchFor({ VNC: ":1" }).argsFor("tcg");
  const devices = args.filter((_, i) => args[i - 1] === "-device");
  for (const device of ["virtio-gpu-pci", "qemu-xhci", "usb-kbd", "usb-tablet"]) assert.ok(devices.includes(device), device);
});

test("the aarch64 plan on an arm64 host tries KVM with the host CPU", () => {
  const launch = launchFor({}, "aarch64");
  assert.equal(launch.arch.kvmPossible, true);
  assert.equal(launch.accel.first, "kvm");
  const args = launch.argsFor("kvm");
  assert.deepEqual(args.slice(args.indexOf("-accel"), args.indexOf("-accel") + 4), ["-accel", "kvm", "-cpu", "host"]);
});

/** A GPT disk head (protective MBR, header, entries) with one partition of `type` at LBA 2048. */
function gptHead(type: string): Buffer {
  const head = Buffer.alloc(1024 * 1024);
  head.write("EFI PART", 512, "latin1");
  head.writeBigUInt64LE(2n, 512 + 72);
  head.writeUInt32LE(128, 512 + 80);
  head.writeUInt32LE(128, 512 + 84);
  const entry = 1024 + 128; // the second entry
  Buffer.from(type, "hex").copy(head, entry);
  head.writeBigUInt64LE(2048n, entry + 32);
  head.writeBigUInt64LE(2048n + 65535n, entry + 40);
  return head;
}

test("findEsp: the EFI system partition's byte range from a GPT head; none on MBR disks or without an ESP", () => {
  assert.deepEqual(findEsp(gptHead("28732ac11ff8d211ba4b00a0c93ec93b")), { offset: 2048 * 512, length: 65536 * 512 });
  assert.equal(findEsp(gptHead("af3dc60f838472478e793d69d8477de4")), undefined, "a Linux partition only");
  assert.equal(findEsp(Buffer.alloc(1024 * 1024)), undefined, "no GPT");
});

test("loaderArch: BOOTAA64.EFI means aarch64, BOOTX64.EFI x86_64; both (or neither) say nothing", () => {
  const fat = (...names: string[]) => Buffer.concat(names.map((n) => Buffer.concat([Buffer.alloc(21), Buffer.from(n, "latin1"), Buffer.alloc(21)])));
  assert.deepEqual(loaderArch(fat("BOOTAA64EFI")), { arch: "aarch64", name: "BOOTAA64.EFI" });
  assert.deepEqual(loaderArch(fat("GRUBX64 EFI")), { arch: "x86_64", name: "GRUBX64.EFI" });
  assert.equal(loaderArch(fat("BOOTAA64EFI", "BOOTX64 EFI")), undefined);
  assert.equal(loaderArch(fat("README  TXT")), undefined);
});

const work = await mkdtemp(join(tmpdir(), "dm-arch-"));
after(() => rm(work, { recursive: true, force: true }));

test("ensureEfiVars: a new machine copies the empty store; a kept disk keeps its store; a new disk gets a fresh one", async () => {
  const firmware = { code: "/x", varsTemplate: join(work, "VARS.fd"), vars: join(work, "efi-vars.fd") };
  await writeFile(firmware.varsTemplate, "empty");
  assert.equal(await ensureEfiVars(firmware, false), "created");
  await writeFile(firmware.vars, "boot entries");
  assert.equal(await ensureEfiVars(firmware, false), "kept");
  assert.equal(await readFile(firmware.vars, "utf8"), "boot entries");
  assert.equal(await ensureEfiVars(firmware, true), "created");
  assert.equal(await readFile(firmware.vars, "utf8"), "empty");
});
