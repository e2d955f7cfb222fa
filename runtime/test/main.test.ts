import assert from "node:assert/strict";
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { fileURLToPath } from "node:url";
import { execa } from "execa";
import { parse } from "yaml";
import { ED25519 } from "./fixtures/keys.js";
import { probeKvm, readHostIdentity, rememberKvmFailure } from "../src/apply/accel.js";

// The launcher as a process: the same entrypoint the container runs.
const MAIN = fileURLToPath(new URL("../src/main.ts", import.meta.url));
const work = await mkdtemp(join(tmpdir(), "dm-main-"));
after(() => rm(work, { recursive: true, force: true }));
const basePath = join(work, "base.qcow2");
await execa("qemu-img", ["create", "-q", "-f", "qcow2", basePath, "1G"]);

function launcher(args: string[], env: Record<string, string>) {
  // A clean environment: the shell's own USER or HOSTNAME must not leak into the test.
  return execa("node", ["--import", "tsx", MAIN, ...args], {
    env: { PATH: process.env.PATH!, DEVMACHINES_RUN_DIR: join(work, "run"), ...env },
    extendEnv: false,
    reject: false,
  });
}

const goodEnv = (disksDir: string) => ({
  CPU: "2", MEMORY: "1G", STORAGE: "10G", USER: "dev", SSH_KEYS: ED25519, HOSTNAME: "devbox",
  PORTS: "8080:80,5353:53/udp", BASE_IMAGE: basePath, DISKS_DIR: disksDir, ACCEL: "tcg",
});

test("--dry-run prints the whole plan as one JSON object and changes nothing", async () => {
  const disksDir = join(work, "dry");
  const result = await launcher(["--dry-run"], goodEnv(disksDir));
  assert.equal(result.exitCode, 0, result.stderr);
  const plan = JSON.parse(result.stdout);
  assert.equal(plan.qemu.binary, "qemu-system-x86_64");
  assert.ok(plan.qemu.args.every((arg: unknown) => typeof arg === "string"));
  const args = plan.qemu.args.join(" ");
  assert.match(args, /-accel tcg,thread=multi/);
  assert.match(args, /-smp 2 -m 1024M/);
  assert.match(args, /hostfwd=tcp::22-:22,hostfwd=tcp::8080-:80,hostfwd=udp::5353-:53/);
  assert.match(args, /-qmp unix:[^ ]*qmp.sock,server=on,wait=off/);
  const userData = parse(plan.cloudInit.userData);
  assert.equal(userData.hostname, "devbox");
  assert.deepEqual(userData.users[0].ssh_authorized_keys, [ED25519]);
  assert.equal(parse(plan.cloudInit.metaData)["local-hostname"], "devbox");
  assert.equal(parse(plan.cloudInit.networkConfig).version, 2);
  assert.equal(plan.disk.action, "create");
  assert.equal(plan.disk.sizeBytes, 10 * 1024 ** 3);
  assert.equal(plan.network.mode, "NAT");
  assert.deepEqual(plan.accel, { requested: "tcg", first: "tcg", reason: "ACCEL=tcg" });
  await assert.rejects(readdir(disksDir), /ENOENT/, "the dry run created nothing");
});

test("--dry-run shows the accelerator decision: a KVM failure remembered for this host means TCG at once", async (t) => {
  const disksDir = join(work, "verdict");
  await mkdir(disksDir, { recursive: true });
  const env = { ...goodEnv(disksDir), ACCEL: "auto" };
  if (!probeKvm().usable) {
    // no /dev/kvm here: auto settles for TCG with a warning, and the verdict file does not matter
    const plan = JSON.parse((await launcher(["--dry-run"], env)).stdout);
    assert.equal(plan.accel.first, "tcg");
    assert.match(plan.warnings.join("\n"), /KVM is not usable/);
    t.diagnostic("no usable /dev/kvm: the remembered-verdict case is covered by test/accel.test.ts and runtime/test/accel.test.ts");
    return;
  }
  const fresh = JSON.parse((await launcher(["--dry-run"], env)).stdout);
  assert.deepEqual([fresh.accel.first, fresh.accel.fallback], ["kvm", "tcg"]);
  assert.equal(await rememberKvmFailure(join(disksDir, "kvm-verdict.json"), await readHostIdentity("qemu-system-x86_64"), "no output"), undefined);
  const remembered = JSON.parse((await launcher(["--dry-run"], env)).stdout);
  assert.equal(remembered.accel.first, "tcg");
  assert.equal(remembered.accel.fallback, undefined);
  assert.match(remembered.accel.reason, /KVM failed this guest on this host before .*no output/);
  assert.match(remembered.warnings.join("\n"), /starting under TCG at once/);
});

test("--dry-run with PASSWORD shows only a crypt hash, never the password", async () => {
  const password = "Plaintext-Canary-93f1";
  const result = await launcher(["--dry-run"], { ...goodEnv(join(work, "dry-password")), PASSWORD: password });
  assert.equal(result.exitCode, 0, result.stderr);
  assert.equal(result.stdout.includes(password), false, "the password is not in the plan");
  assert.equal(result.stderr.includes(password), false, "the password is not in the log");
  const userData = parse(JSON.parse(result.stdout).cloudInit.userData);
  assert.equal(userData.users[0].plain_text_passwd, undefined);
  assert.match(userData.users[0].hashed_passwd, /^\$6\$[./0-9A-Za-z]{16}\$[./0-9A-Za-z]{86}$/);
  assert.equal(userData.users[0].lock_passwd, false);
});

test("a bad configuration exits 2, names every variable, and leaves the disks folder untouched", async () => {
  const disksDir = join(work, "bad");
  const result = await launcher([], { ...goodEnv(disksDir), CPU: "many", MEMORY: "12", PORTS: "http" });
  assert.equal(result.exitCode, 2);
  assert.match(result.stderr, /CPU="many" must be a whole number/);
  assert.match(result.stderr, /MEMORY="12" must be at least 128 MiB/);
  assert.match(result.stderr, /PORTS="http"/);
  assert.match(result.stderr, /nothing was created or changed/);
  await assert.rejects(readdir(disksDir), /ENOENT/);
});

test("host problems exit 3 with what to change in docker run", async () => {
  const missingBase = await launcher([], { ...goodEnv(join(work, "host")), BASE_IMAGE: join(work, "nope.qcow2") });
  assert.equal(missingBase.exitCode, 3);
  assert.match(missingBase.stderr, /no base image at .*nope\.qcow2.*docker run -v/);
  await writeFile(join(work, "a-file"), "");
  const unwritable = await launcher([], { ...goodEnv(join(work, "a-file", "disks")) });
  assert.equal(unwritable.exitCode, 3);
  assert.match(unwritable.stderr, /DISKS_DIR .*a-file\/disks cannot be written.*docker run -v/);
});

test("11: kernel file systems as BASE_IMAGE or DISKS_DIR exit 2, a FIFO or folder as BASE_IMAGE exits 3, promptly", { timeout: 60_000 }, async () => {
  for (const env of [{ DISKS_DIR: "/proc/devmachines" }, { DISKS_DIR: "/var/../sys/x" }, { BASE_IMAGE: "/dev/zero" }, { BASE_IMAGE: "/proc/self/fd/0" }]) {
    const result = await launcher([], { ...goodEnv(join(work, "kernel-fs")), ...env });
    assert.equal(result.exitCode, 2, result.stderr);
    assert.match(result.stderr, /(DISKS_DIR|BASE_IMAGE)=.* must not be under \/proc, \/sys or \/dev/);
  }
  await execa("mkfifo", [join(work, "base-fifo")]);
  for (const [path, kind] of [[join(work, "base-fifo"), "a FIFO"], [work, "a folder"]] as const) {
    const result = await launcher(["--dry-run"], { ...goodEnv(join(work, "odd-base")), BASE_IMAGE: path });
    assert.equal(result.exitCode, 3, result.stderr);
    assert.match(result.stderr, new RegExp(`BASE_IMAGE .* is ${kind}, not a regular file`));
  }
  await assert.rejects(readdir(join(work, "odd-base")), /ENOENT/);
});

test("a second launcher on a disks folder in use exits 5 at once and changes nothing", async () => {
  const disksDir = join(work, "busy");
  await mkdir(disksDir, { recursive: true });
  // Another holder of the lock: util-linux flock keeps it while its command runs; --no-fork makes
  // the holder the process we kill (a forked sleep would keep the lock, and us waiting, 60 s).
  const holder = execa("flock", ["--nonblock", "--no-fork", disksDir, "sleep", "60"], { reject: false });
  try {
    await new Promise((resolve) => setTimeout(resolve, 300));
    const result = await launcher([], goodEnv(disksDir));
    assert.equal(result.exitCode, 5, result.stderr);
    assert.match(result.stderr, /DISKS_DIR .*busy is in use by another running DevMachine: its lock \(flock on the folder\) is held/);
    assert.deepEqual(await readdir(disksDir), [], "nothing was written");
  } finally {
    holder.kill();
    await holder;
  }
});

test("--health is unhealthy before the launcher has booted anything", async () => {
  const result = await launcher(["--health"], { DEVMACHINES_RUN_DIR: join(work, "fresh-run") });
  assert.equal(result.exitCode, 1);
  assert.match(result.stdout, /has not started the VM yet/);
});

test("a restarted container never reports the last run's readiness", async () => {
  // The container's /run survives `docker restart`: the state a killed launcher left says "ready".
  const runDir = join(work, "restarted-run");
  await mkdir(runDir, { recursive: true });
  await writeFile(join(runDir, "state.json"), JSON.stringify({ phase: "ready", ssh: { host: "127.0.0.1", port: 1 } }));
  const start = await launcher([], { ...goodEnv(join(work, "restarted")), CPU: "zero", DEVMACHINES_RUN_DIR: runDir });
  assert.equal(start.exitCode, 2);
  const health = await launcher(["--health"], { DEVMACHINES_RUN_DIR: runDir });
  assert.equal(health.exitCode, 1);
  assert.match(health.stdout, /the VM is starting/);
});

test("the image's health check (devmachines-health) prints the launcher's verdict and exits with it", async () => {
  const script = new URL("../bin/devmachines-health", import.meta.url).pathname;
  const runDir = join(work, "health-run");
  const check = () => execa("sh", [script], { env: { DEVMACHINES_RUN_DIR: runDir }, reject: false });
  const before = await check();
  assert.equal(before.exitCode, 1);
  assert.equal(before.stdout, "the launcher has not started the VM yet");
  // A start that fails on its configuration leaves the verdict of the phase it reached.
  await launcher([], { ...goodEnv(join(work, "health")), CPU: "zero", DEVMACHINES_RUN_DIR: runDir });
  const starting = await check();
  assert.equal(starting.exitCode, 1);
  assert.equal(starting.stdout, "the VM is starting");
  await writeFile(join(runDir, "health"), "0 ready: SSH answers\n");
  const ready = await check();
  assert.equal(ready.exitCode, 0);
  assert.equal(ready.stdout, "ready: SSH answers");
});

test("unknown flags are refused with the usage", async () => {
  const result = await launcher(["--frobnicate"], {});
  assert.equal(result.exitCode, 2);
  assert.match(result.stderr, /Usage: devmachines-runtime/);
});

test("READY_TIMEOUT: a guest that shows nothing is reported with the stage that never came, and --health says so", async () => {
  // A stand-in QEMU that never prints (a guest stuck before its firmware), first in PATH.
  const bin = join(work, "silent-bin");
  await mkdir(bin, { recursive: true });
  await writeFile(join(bin, "qemu-system-x86_64"), '#!/bin/sh\n[ "$1" = --version ] && { echo "QEMU emulator version 0 (stand-in)"; exit 0; }\nexec sleep 600\n', { mode: 0o755 });
  const runDir = join(work, "stuck-run");
  const child = execa("node", ["--import", "tsx", MAIN], {
    env: { ...goodEnv(join(work, "stuck")), PATH: `${bin}:${process.env.PATH!}`, DEVMACHINES_RUN_DIR: runDir, READY_TIMEOUT: "2", GRACE_SECONDS: "1" },
    extendEnv: false,
    reject: false,
  });
  let stderr = "";
  child.stderr!.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  for (let i = 0; i < 300 && !stderr.includes("READY_TIMEOUT"); i++) await new Promise((resolve) => setTimeout(resolve, 100));
  assert.match(stderr, /error: the guest is not ready after READY_TIMEOUT=2 s; the stage that never came: firmware\/GRUB: nothing at all on the serial console/);
  const health = await launcher(["--health"], { DEVMACHINES_RUN_DIR: runDir });
  assert.equal(health.exitCode, 1);
  assert.match(health.stdout, /^the guest is not ready after READY_TIMEOUT=2 s; the stage that never came: firmware\/GRUB/);
  child.kill("SIGTERM");
  const result = await child;
  assert.equal(result.exitCode, 4, stderr); // the stand-in ignores the power-down: killed after GRACE_SECONDS
});

test("--dry-run piped into a slow reader prints the whole plan (stdout drained before exit)", async () => {
  // A plan of about 1 MiB (a large write_files), far beyond a pipe's 64 KiB buffer.
  const userData = `write_files:\n  - path: /big\n    content: "${"x".repeat(1_000_000)}"\n`;
  const out = join(work, "piped.json");
  await writeFile(join(work, "big-user-data"), userData);
  const result = await execa("sh", ["-c", 'node --import tsx "$MAIN" --dry-run | (sleep 1; cat) > "$OUT"'], {
    env: { PATH: process.env.PATH!, DEVMACHINES_RUN_DIR: join(work, "run"), MAIN, OUT: out, ...goodEnv(join(work, "piped")), USER_DATA_FILE: join(work, "big-user-data") },
    extendEnv: false,
    reject: false,
  });
  assert.equal(result.exitCode, 0, result.stderr);
  const plan = JSON.parse(await readFile(out, "utf8"));
  assert.match(plan.cloudInit.userData, /x{1000000}/);
});

test("USER_DATA with an alias bomb or an undefined alias exits 2 naming it, never an unexpected failure", async () => {
  for (const userData of ["runcmd: [*nope]\n", `a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n`]) {
    const result = await launcher(["--dry-run"], { ...goodEnv(join(work, "alias")), USER_DATA: userData });
    assert.equal(result.exitCode, 2, result.stderr);
    assert.match(result.stderr, /^ {2}USER_DATA /m);
    assert.doesNotMatch(result.stderr, /unexpected failure|ReferenceError|at .*\.ts:\d+/);
  }
});

test("2: password hashes use the disks folder's salt key: the instance-id is stable with it, and the dry run never writes it", async () => {
  const disksDir = join(work, "salted");
  const env = { ...goodEnv(disksDir), PASSWORD: "Salted-Canary-77" };
  const plan = async () => {
    const result = await launcher(["--dry-run"], env);
    assert.equal(result.exitCode, 0, result.stderr);
    return JSON.parse(result.stdout) as { instanceId: string; cloudInit: { userData: string } };
  };
  // No key yet (a first start): each dry run salts at random, and writes nothing.
  assert.notEqual((await plan()).instanceId, (await plan()).instanceId);
  await assert.rejects(readdir(disksDir), /ENOENT/);
  // With the key a start stores beside the disk: the same plan every time.
  await mkdir(disksDir);
  await writeFile(join(disksDir, "password-salt.key"), `${"ab".repeat(32)}\n`);
  const [first, second] = [await plan(), await plan()];
  assert.equal(first.instanceId, second.instanceId);
  assert.equal(first.cloudInit.userData, second.cloudInit.userData);
  assert.equal(first.cloudInit.userData.includes("Salted-Canary-77"), false);
});
