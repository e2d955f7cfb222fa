/**
 * `npm run bench`: each subject beside its baseline in one run, figures and ratios printed
 * (never asserted). A recorded run is kept in docs/benchmarks.md.
 *
 * Usage: node --import tsx scripts/bench.ts [--only bare,density,resume,clone,launcher,disk,pulumi] [--memory 1G,2G]
 *          [--counts 1,10,100,500] [--guests 2,4,8] [--density-size 1x256Mx4G] [--density-timeout 900]
 *          [--density-kinds cold,clones]
 *   density   N guests of --density-size started at once (--guests), all until healthy: cold boots
 *             (SNAPSHOT=off) against clones of a capture of that same size (the machine image's
 *             variant from `npm run images -- --capture-size 1x256Mx4G`); when the first and the
 *             last are healthy, how many made it within --density-timeout seconds per run, and
 *             how many of the clones restored the capture. Many guest boots (scripts/bench-density.ts).
 *   bare      cold boot, docker run -> SSH answers: the machine image (container + launcher) against
 *             bare QEMU started in the same image with the launcher's own argv (from --dry-run),
 *             a fresh overlay over the same base and the very seed the launcher made, so only the
 *             launcher differs (the host's QEMU is another version). Two guest boots.
 *   resume    per memory size: docker run -> healthy (cold boot, the baseline) against
 *             docker start -> healthy of the same machine suspended by docker stop (ON_STOP=suspend),
 *             with the save's time and state size. One guest boot per size: take the boot lock.
 *   clone     docker run -> healthy of a new machine of the default size (2 vCPU, 2 GiB, 20G, TCG)
 *             restored from the machine image's captured state and resealed, against the same
 *             machine with SNAPSHOT=off (a cold boot), one after the other; with and without
 *             USER_DATA; the captured state's size. Two guest boots: take the boot lock.
 *   launcher  container start -> QEMU exec, the launcher against a shell script doing the same
 *             qemu-img + seed ISO + exec in the same image (the floor), and the launcher's and
 *             QEMU's resident memory a few seconds later (no guest boot is waited for).
 *   disk      overlay creation by the launcher (readDiskFacts + planDisk + applyDisk) over a small
 *             (the guest disk) and a large (2 GiB) base, both without a digest beside them, at a
 *             first start and a restart, against bare `qemu-img create`; and the base's hash that
 *             completes a new disk's record after QEMU started (off the start's path).
 *   pulumi    evaluating N DevMachines under mocks against N bare components of one
 *             docker.Container + docker.Volume, each in a fresh process (scripts/bench-pulumi.ts).
 * Env: DEVMACHINES_IMAGE_TAG picks the images (devmachines/debian:TAG), as for the tests.
 */
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm, utimes } from "node:fs/promises";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { execa } from "execa";
import { applyDisk, completeBaseRecord, readDiskFacts } from "../runtime/src/apply/disk.js";
import { density } from "./bench-density.js";
import { f1, median, ratio, seconds, table } from "./benchFormat.js";
import { planDisk } from "../runtime/src/plan/disk.js";
import { containerLogs, docker, publishedPort, waitHealthy } from "../sdk/src/run.js";
import { BOOT_TIMEOUT_MS, MACHINE_IMAGE, makeKeyPair, removeAll, ssh, type KeyPair } from "../test/support.js";

const { values } = parseArgs({
  options: {
    only: { type: "string", default: "bare,density,resume,clone,launcher,disk,pulumi" },
    memory: { type: "string", default: "1G,2G" },
    counts: { type: "string", default: "1,10,100,500" },
    guests: { type: "string", default: "2,4,8" },
    "density-size": { type: "string", default: "1x256Mx4G" },
    "density-timeout": { type: "string", default: "900" },
    "density-kinds": { type: "string", default: "cold,clones" },
  },
});
const only = new Set(values.only.split(","));
const PREFIX = `dm-bench-${process.pid}`;
const made: { containers: string[]; volumes: string[] } = { containers: [], volumes: [] };
const cleanup = () => removeAll(made);
process.on("SIGINT", () => void cleanup().finally(() => process.exit(130)));


/** Seconds from `since` until `ssh true` succeeds on the container's published port 22. */
async function untilSsh(name: string, key: KeyPair, since: number): Promise<number> {
  const port = await publishedPort(name, 22);
  for (;;) {
    if (seconds(since) * 1000 > BOOT_TIMEOUT_MS) throw new Error(`${name}: no SSH after ${BOOT_TIMEOUT_MS / 1000} s`);
    if (await ssh({ host: "127.0.0.1", port, user: "dev", key }, "true", 10_000).then(() => true, () => false)) return seconds(since);
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

async function bare(): Promise<void> {
  const key = await makeKeyPair();
  const env = { CPU: "2", MEMORY: "2G", STORAGE: "20G", USER: "dev", SSH_KEYS: key.publicKey, ACCEL: "tcg", SNAPSHOT: "off" };
  const envFlags = Object.entries(env).flatMap(([k, v]) => ["-e", `${k}=${v}`]);
  const [subject, baseline] = [`${PREFIX}-bare-launcher`, `${PREFIX}-bare-qemu`];
  made.containers.push(subject, baseline);
  const work = await mkdtemp(join(tmpdir(), "dm-bench-bare-"));
  try {
    let started = Date.now();
    await docker(["run", "-d", "--name", subject, "-p", "127.0.0.1::22", ...envFlags, MACHINE_IMAGE]);
    const launcherSsh = await untilSsh(subject, key, started);
    await waitHealthy(subject, { timeoutMs: BOOT_TIMEOUT_MS, intervalMs: 200 });
    const launcherHealthy = seconds(started);
    // The launcher's own argv (its dry run: what it execs) and the seed it made for this guest.
    const plan = JSON.parse(await docker(["run", "--rm", ...envFlags, MACHINE_IMAGE, "--dry-run"])) as { qemu: { binary: string; args: string[] }; disk: { overlayPath: string; basePath: string; sizeBytes: number } };
    await docker(["cp", `${subject}:/run/devmachines/seed.iso`, join(work, "seed.iso")]);
    await removeAll({ containers: [subject] });

    const { overlayPath, basePath, sizeBytes } = plan.disk;
    const argv = [plan.qemu.binary, ...plan.qemu.args].map((arg) => `'${arg.replace(/'/g, "'\\''")}'`).join(" ");
    const script = `set -e; mkdir -p /run/devmachines; qemu-img create -q -f qcow2 -F qcow2 -b ${basePath} ${overlayPath} ${sizeBytes}; exec ${argv}`;
    started = Date.now();
    await docker(["run", "-d", "--name", baseline, "-p", "127.0.0.1::22", "-v", `${join(work, "seed.iso")}:/run/devmachines/seed.iso:ro`,
      "--no-healthcheck", "--entrypoint", "sh", MACHINE_IMAGE, "-c", script]);
    const qemuSsh = await untilSsh(baseline, key, started);
    await removeAll({ containers: [baseline] });
    console.log("## Cold boot: the machine image against bare QEMU with the launcher's argv (TCG, 2 vCPU, 2 GiB; docker run -> first SSH command)\n");
    table(["start", "run -> SSH (s)", "ratio to bare QEMU", "run -> healthy (s)"], [
      ["bare QEMU (same image, argv and seed, no launcher)", f1(qemuSsh), "1.00x", "-"],
      ["machine image (launcher)", f1(launcherSsh), ratio(launcherSsh, qemuSsh), f1(launcherHealthy)],
    ]);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

async function resume(): Promise<void> {
  const key = await makeKeyPair();
  const rows: (string | number)[][] = [];
  for (const memory of values.memory.split(",")) {
    const name = `${PREFIX}-resume-${memory}`;
    made.containers.push(name);
    made.volumes.push(name);
    const env = { CPU: "2", MEMORY: memory, STORAGE: "6G", USER: "dev", SSH_KEYS: key.publicKey, ACCEL: "tcg", ON_STOP: "suspend" };
    let started = Date.now();
    await docker(["run", "-d", "--name", name, "--stop-timeout", "90", "-v", `${name}:/var/lib/devmachines`, ...Object.entries(env).flatMap(([k, v]) => ["-e", `${k}=${v}`]), MACHINE_IMAGE]);
    await waitHealthy(name, { timeoutMs: BOOT_TIMEOUT_MS, intervalMs: 200 });
    const cold = seconds(started);
    started = Date.now();
    await docker(["stop", "-t", "90", name]);
    const stop = seconds(started);
    const logs = (await containerLogs(name)).launcher;
    const saved = /state saved in ([\d.]+)s: (\d+) MiB written/.exec(logs);
    const exit = await docker(["inspect", "--format", "{{.State.ExitCode}}", name]);
    started = Date.now();
    await docker(["start", name]);
    await waitHealthy(name, { timeoutMs: 120_000, intervalMs: 200 });
    const warm = seconds(started);
    const resumed = /ready after \d+ s \(resumed\)/.test((await containerLogs(name)).launcher);
    rows.push([memory, f1(cold), f1(warm), ratio(warm, cold), saved ? `${saved[2]} MiB` : "?", saved ? `${saved[1]} s` : "?", `${f1(stop)} s (exit ${exit})`, resumed ? "yes" : "NO: cold-booted"]);
    await removeAll({ containers: [name], volumes: [name] });
  }
  console.log("## Resume against cold boot (TCG, 2 vCPU; healthy as Docker reports it, polled every 0.2 s)\n");
  table(["memory", "cold boot: run -> healthy (s)", "resume: start -> healthy (s)", "resume/cold", "state size", "save time", "docker stop", "resumed"], rows);
}

async function clone(): Promise<void> {
  const key = await makeKeyPair();
  const base = { CPU: "2", MEMORY: "2G", STORAGE: "20G", USER: "dev", SSH_KEYS: key.publicKey, ACCEL: "tcg" };
  const userData = "#cloud-config\nruncmd:\n  - [sh, -c, \"echo ran > /var/tmp/ran\"]\n";
  const rows: (string | number)[][] = [];
  let coldSeconds = 0;
  for (const [label, env] of [
    ["cold boot (SNAPSHOT=off)", { ...base, SNAPSHOT: "off" }],
    ["clone", base],
    ["clone with USER_DATA", { ...base, USER_DATA: userData }],
  ] as const) {
    const name = `${PREFIX}-clone-${rows.length}`;
    made.containers.push(name);
    const started = Date.now();
    await docker(["run", "-d", "--name", name, ...Object.entries(env).flatMap(([k, v]) => ["-e", `${k}=${v}`]), MACHINE_IMAGE]);
    await waitHealthy(name, { timeoutMs: BOOT_TIMEOUT_MS, intervalMs: 200 });
    const healthy = seconds(started);
    if (rows.length === 0) coldSeconds = healthy;
    const logs = (await containerLogs(name)).launcher;
    const reseal = /clone: resealed after (\d+) s \(([^)]*)\)/.exec(logs);
    const loaded = /state loaded in ([\d.]+)s/.exec(logs);
    rows.push([label, f1(healthy), ratio(healthy, coldSeconds), loaded ? `${loaded[1]} s` : "-", reseal ? reseal[2]! : "-", /\(cloned\)/.test(logs) ? "cloned" : "booted"]);
    await removeAll({ containers: [name] });
  }
  const metaText = await docker(["run", "--rm", "--entrypoint", "cat", MACHINE_IMAGE, "/images/clone/clone.json"]).catch(() => "");
  const meta = metaText ? (JSON.parse(metaText) as { disk: { bytes: number }; stateBytes: number }) : undefined;
  console.log("## Clone against cold boot (TCG, 2 vCPU, 2 GiB, 20G; docker run -> healthy as Docker reports it, polled every 0.2 s)\n");
  table(["start", "run -> healthy (s)", "ratio to cold boot", "state load", "reseal steps (guest uptime)", "how"], rows);
  if (meta) console.log(`Captured state in the machine image: disk ${(meta.disk.bytes / 2 ** 20).toFixed(0)} MiB + state ${(meta.stateBytes / 2 ** 20).toFixed(0)} MiB.\n`);
}

/** ms from the container's start to the first log line matching `pattern` (docker logs -t). */
async function msToLine(name: string, pattern: RegExp, timeoutMs = 60_000): Promise<number> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const { stdout, stderr } = await execa("docker", ["logs", "-t", name], { reject: false });
    const line = `${stdout}\n${stderr}`.split("\n").find((text) => pattern.test(text));
    if (line) {
      const startedAt = await docker(["inspect", "--format", "{{.State.StartedAt}}", name]);
      return nanoDate(line.split(" ")[0]!) - nanoDate(startedAt);
    }
    if (Date.now() > until) throw new Error(`no log line ${pattern} from ${name}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Docker's RFC 3339 times carry nanoseconds; Date keeps milliseconds, enough here. */
function nanoDate(text: string): number {
  const match = /^(.*T\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$/.exec(text.trim());
  if (!match) throw new Error(`not a time: ${text}`);
  return Date.parse(`${match[1]}${(match[2] ?? ".0").slice(0, 4).padEnd(4, "0")}${match[3]}`);
}

async function rssMiB(name: string, pid: string): Promise<number> {
  const status = await docker(["exec", name, "sh", "-c", `grep VmRSS /proc/${pid}/status`]);
  return Number(/(\d+)/.exec(status)![1]) / 1024;
}

async function launcher(): Promise<void> {
  const runs = 3;
  const rows: (string | number)[][] = [];
  const subject: number[] = [];
  const floor: number[] = [];
  let launcherRss = 0;
  let qemuRss = 0;
  const key = await makeKeyPair();
  for (let run = 0; run < runs; run++) {
    const name = `${PREFIX}-launcher-${run}`;
    made.containers.push(name);
    await docker(["run", "-d", "--name", name, "-e", "CPU=1", "-e", "MEMORY=512M", "-e", "STORAGE=6G", "-e", "USER=dev", "-e", `SSH_KEYS=${key.publicKey}`, "-e", "ACCEL=tcg", "-e", "EPHEMERAL=true", MACHINE_IMAGE]);
    subject.push(await msToLine(name, /started QEMU \(pid/));
    if (run === runs - 1) {
      await new Promise((resolve) => setTimeout(resolve, 5000));
      launcherRss = await rssMiB(name, "1");
      // QEMU runs under `setpriv ... --`, which execs it: the pid the launcher logs is QEMU's.
      const qemuPid = /started QEMU \(pid (\d+)\)/.exec((await containerLogs(name)).launcher)![1]!;
      qemuRss = await rssMiB(name, qemuPid);
    }
    await removeAll({ containers: [name] });
    const shell = `${name}-shell`;
    made.containers.push(shell);
    const script = [
      "qemu-img create -q -f qcow2 -F qcow2 -b /images/base.qcow2 /var/lib/devmachines/disk.qcow2 6G",
      "mkdir -p /tmp/seed && printf 'instance-id: x\\n' > /tmp/seed/meta-data && printf '#cloud-config\\n' > /tmp/seed/user-data",
      "genisoimage -quiet -output /tmp/seed.iso -volid cidata -joliet -rock /tmp/seed",
      "echo EXEC-QEMU",
      "exec sleep 30",
    ].join(" && ");
    await docker(["run", "-d", "--name", shell, "--entrypoint", "sh", MACHINE_IMAGE, "-c", script]);
    floor.push(await msToLine(shell, /EXEC-QEMU/));
    await removeAll({ containers: [shell] });
  }
  rows.push(["container start -> QEMU exec (ms, median of 3)", median(subject).toFixed(0), median(floor).toFixed(0), ratio(median(subject), median(floor))]);
  console.log("## Launcher: start to QEMU, and memory\n");
  table(["", "launcher", "shell script (floor)", "ratio"], rows);
  console.log(`Resident memory 5 s after QEMU started: launcher (node) ${f1(launcherRss)} MiB, QEMU ${f1(qemuRss)} MiB (512 MiB guest, booting).\n`);
}

async function disk(): Promise<void> {
  const work = await mkdtemp(join(tmpdir(), "dm-bench-disk-"));
  try {
    const small = join(process.cwd(), ".cache/images/debian-13.qcow2");
    const large = join(work, "large.raw");
    await execa("truncate", ["-s", "2G", large]);
    // A base is normally older than the few seconds within which its facts vouch for nothing (plan/disk.ts SETTLE_MS).
    const hourAgo = new Date(Date.now() - 3_600_000);
    await utimes(large, hourAgo, hourAgo);
    const rows: (string | number)[][] = [];
    const timed = async (what: () => Promise<unknown>) => {
      const started = performance.now();
      await what();
      return performance.now() - started;
    };
    for (const [label, base, format] of [["small (guest disk)", small, "qcow2"], ["large (2 GiB raw)", large, "raw"]] as const) {
      if (!existsSync(base)) {
        rows.push([label, "missing: npm run images first", "", "", "", ""]);
        continue;
      }
      const dir = join(work, `launcher-${format}`);
      await mkdir(dir);
      // What a start does with the disk before QEMU runs: read the facts, plan, apply.
      const start = async () => {
        const plan = planDisk({ basePath: base, disksDir: dir, storageBytes: 20 * 2 ** 30, ephemeral: false }, await readDiskFacts(base, dir));
        await applyDisk(plan);
        return plan;
      };
      let plan = await start(); // warms the page cache and qemu-img, as for the bare runs after it
      const [first, restart, bare]: [number[], number[], number[]] = [[], [], []];
      let completeMs = 0;
      for (let run = 0; run < 3; run++) {
        await rm(join(dir, "disk.qcow2"));
        await rm(join(dir, "disk.base.json"));
        first.push(await timed(async () => (plan = await start())));
        // The record's completion, beside the guest's boot: off the start's path, measured once for the record.
        if (run === 0) completeMs = await timed(async () => console.error(`  ${label}: ${await completeBaseRecord(plan)}`));
        else await completeBaseRecord(plan);
        restart.push(await timed(start));
        const bareDisk = join(work, `bare-${format}.qcow2`);
        await rm(bareDisk, { force: true });
        bare.push(await timed(() => execa("qemu-img", ["create", "-q", "-f", "qcow2", "-F", format, "-b", base, bareDisk, "20G"])));
      }
      const [firstMs, restartMs, bareMs] = [median(first), median(restart), median(bare)];
      rows.push([label, firstMs.toFixed(0), restartMs.toFixed(0), bareMs.toFixed(0), ratio(Math.max(firstMs, restartMs), bareMs), completeMs.toFixed(0)]);
    }
    console.log("## Disk: overlay creation\n");
    table(["base", "launcher, first start (ms)", "launcher, restart (ms)", "qemu-img create (ms)", "ratio (slower start)", "base hashed after QEMU started (ms, once)"], rows);
    console.log("Medians of 3 runs. The launcher's start reads the base's facts (stat, `qemu-img info`) and creates the overlay; the hash that completes a new disk's record runs beside the guest's boot.\n");
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

async function pulumiBench(): Promise<void> {
  const rows: (string | number)[][] = [];
  for (const count of values.counts.split(",").map(Number)) {
    const one = async (kind: string) =>
      JSON.parse((await execa("node", ["--import", "tsx", "scripts/bench-pulumi.ts", String(count), kind])).stdout.trim().split("\n").at(-1)!) as { ms: number; rssMiB: number };
    const machine = await one("devmachine");
    const bare = await one("bare");
    rows.push([count, f1(machine.ms / count), f1(bare.ms / count), ratio(machine.ms, bare.ms), f1(machine.rssMiB / count), f1(bare.rssMiB / count)]);
  }
  console.log("## Pulumi: evaluation under mocks, per machine\n");
  table(["machines", "DevMachine ms", "bare Container+Volume ms", "ratio", "DevMachine MiB", "bare MiB"], rows);
}

console.log(`# npm run bench, ${new Date().toISOString()}, load ${loadavg().map((n) => n.toFixed(1)).join(" ")}, image ${MACHINE_IMAGE}\n`);
try {
  if (only.has("bare")) await bare();
  if (only.has("density")) {
    await density({
      image: MACHINE_IMAGE, counts: values.guests.split(",").map(Number), size: values["density-size"],
      kinds: values["density-kinds"].split(",") as ("cold" | "clones")[],
      timeoutSeconds: Number(values["density-timeout"]), prefix: PREFIX, made,
    });
  }
  if (only.has("disk")) await disk();
  if (only.has("pulumi")) await pulumiBench();
  if (only.has("launcher")) await launcher();
  if (only.has("resume")) await resume();
  if (only.has("clone")) await clone();
} finally {
  await cleanup();
}
