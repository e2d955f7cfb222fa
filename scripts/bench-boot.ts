/**
 * `npm run bench:boot`: how fast a DevMachine boots and how much memory and disk it takes,
 * measured side by side with a baseline in one go. Figures are printed, never asserted.
 *
 * Usage: node --import tsx scripts/bench-boot.ts [--image IMG] [--baseline IMG|none] [--runs N]
 *          [--accel tcg|auto] [--cpu N] [--memory SIZE]
 *   --image IMG      the machine image under test (default devmachines/debian:13)
 *   --baseline IMG   boot IMG (e.g. an older tag) with the very same settings as the baseline;
 *                    default: the image under test with ACCEL=tcg and 1 vCPU, which shows what
 *                    the second vCPU (multi-threaded TCG) buys on this machine; `none`: no baseline
 *   --runs N         boots per label (default 1)
 *   --accel A        ACCEL for the image under test: tcg (default; /dev/kvm here is a paravirtual
 *                    KVM ordinary guests die on) or auto (measures the KVM->TCG fallback too)
 *   --cpu N          vCPUs for the image under test (default 2, as the default DevMachine)
 *   --memory SIZE    guest memory for both (default 2G, as the default DevMachine)
 *
 * One VM at a time (two cores): each run boots the image under test and the baseline, the order
 * swapped every run so neither always boots on a machine that has just cooled down. Every boot is
 * a fresh ephemeral container (EPHEMERAL=true, no volume) named dm-bench-<pid>-..., removed
 * afterwards and on Ctrl-C. Per boot:
 *   to-healthy  docker run -> Docker health `healthy` (the image's check runs every 10 s: +0..10 s)
 *   cloud-init  the launcher's "cloud-init finished after N s" (counted from QEMU start)
 *   ready       the launcher's "ready after N s" (cloud-init done and SSH banner seen)
 *   first-ssh   docker run -> first successful `ssh ... true` with the generated key
 *               (probed with test/support.ts ssh(), which retries every 5 s: +0..5 s)
 *   mem         the container's memory use when healthy (docker stats)
 *   qemu-rss    QEMU's resident set inside the container (/proc/PID/status VmRSS)
 *   overlay     the qcow2 overlay's allocated size after boot (du of /var/lib/devmachines/disk.qcow2)
 * Exits 0 when every boot got healthy, 1 otherwise (with the container's last log lines).
 */
import { rm } from "node:fs/promises";
import { loadavg } from "node:os";
import { parseArgs } from "node:util";
import { defaultMachineSettings } from "../sdk/src/defaults.js";
import { throttleProgress } from "../sdk/src/progress.js";
import { containerLogs, docker, waitHealthy } from "../sdk/src/run.js";
import { BOOT_TIMEOUT_MS, makeKeyPair, publishedPort, removeAll, ssh, type KeyPair } from "../test/support.js";
import { seconds } from "./benchFormat.js";

const TARGET_SECONDS = 90;
const GUEST_USER = "dev";
const OVERLAY = "/var/lib/devmachines/disk.qcow2";

interface BootSpec {
  label: string;
  image: string;
  accel: string;
  cpu: number;
  memory: string;
}

interface BootResult extends BootSpec {
  run: number;
  ok: boolean;
  actualAccel?: string;
  toHealthy?: number;
  cloudInit?: number;
  ready?: number;
  firstSsh?: number;
  mem?: string;
  qemuRssMiB?: number;
  overlayMiB?: number;
  error?: string;
}

const say = (line: string) => console.log(`[bench] ${line}`);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function options() {
  const defaults = defaultMachineSettings();
  const { values } = parseArgs({
    options: {
      image: { type: "string", default: "devmachines/debian:13" },
      baseline: { type: "string" },
      runs: { type: "string", default: "1" },
      accel: { type: "string", default: "tcg" },
      cpu: { type: "string", default: String(defaults.cpu) },
      memory: { type: "string", default: String(defaults.memory) },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    console.log("Usage: node --import tsx scripts/bench-boot.ts [--image IMG] [--baseline IMG|none] [--runs N] [--accel tcg|auto] [--cpu N] [--memory SIZE]");
    process.exit(0);
  }
  const runs = Number(values.runs);
  const cpu = Number(values.cpu);
  if (!Number.isInteger(runs) || runs < 1) throw new Error(`--runs must be a whole number >= 1, not ${values.runs}`);
  if (!Number.isInteger(cpu) || cpu < 1) throw new Error(`--cpu must be a whole number >= 1, not ${values.cpu}`);
  if (values.accel !== "tcg" && values.accel !== "auto") throw new Error(`--accel must be tcg or auto, not ${values.accel}`);
  const test: BootSpec = { label: "test", image: values.image, accel: values.accel, cpu, memory: values.memory };
  let baseline: BootSpec | undefined;
  if (values.baseline === undefined) baseline = { ...test, label: "baseline", accel: "tcg", cpu: 1 };
  else if (values.baseline !== "none") baseline = { ...test, label: "baseline", image: values.baseline };
  return { runs, specs: baseline ? [test, baseline] : [test] };
}

/** Both streams of `docker logs`: the serial console (stdout) and the launcher's lines (stderr). */
async function logsOf(name: string, tail?: number): Promise<string> {
  return containerLogs(name, tail ? { tail } : {}).then(
    (both) => `${both.console}\n${both.launcher}`,
    (error: Error) => `(docker logs failed: ${error.message})`,
  );
}

function lastMatch(logs: string, pattern: RegExp): RegExpExecArray | undefined {
  let found: RegExpExecArray | undefined;
  for (const line of logs.split("\n")) found = pattern.exec(line) ?? found;
  return found;
}

/** QEMU's VmRSS in MiB, found by name in the container's /proc (the image has no ps). */
async function qemuRssMiB(name: string): Promise<number | undefined> {
  const script = 'for d in /proc/[0-9]*; do case "$(cat $d/comm 2>/dev/null)" in qemu-system*) grep VmRSS $d/status;; esac; done';
  const out = await docker(["exec", name, "sh", "-c", script]).catch(() => "");
  const kib = /VmRSS:\s+(\d+)\s+kB/.exec(out);
  return kib ? Number(kib[1]) / 1024 : undefined;
}

async function overlayMiB(name: string): Promise<number | undefined> {
  const out = await docker(["exec", name, "du", "-k", OVERLAY]).catch(() => "");
  const kib = /^(\d+)/.exec(out);
  return kib ? Number(kib[1]) / 1024 : undefined;
}

const live = new Set<string>();

async function boot(spec: BootSpec, run: number, key: KeyPair): Promise<BootResult> {
  const name = `dm-bench-${process.pid}-${spec.label}-${run}`;
  const result: BootResult = { ...spec, run, ok: false };
  const tag = `[${spec.label} run ${run}]`;
  live.add(name);
  let probing = true;
  try {
    say(`${tag} docker run ${spec.image} (ACCEL=${spec.accel}, CPU=${spec.cpu}, MEMORY=${spec.memory})`);
    const started = Date.now();
    await docker([
      "run", "-d", "--name", name, "--label", "dev.devmachines.bench=true",
      "--device", "/dev/kvm", "--device", "/dev/net/tun", "--cap-add", "NET_ADMIN",
      "--publish", "127.0.0.1::22",
      "--env", `CPU=${spec.cpu}`, "--env", `MEMORY=${spec.memory}`, "--env", `STORAGE=${defaultMachineSettings().storage}`,
      "--env", `USER=${GUEST_USER}`, "--env", `SSH_KEYS=${key.publicKey}`,
      "--env", "EPHEMERAL=true", "--env", `ACCEL=${spec.accel}`,
      spec.image,
    ]);
    const port = await publishedPort(name, 22);

    // Probe SSH beside the health wait: the first command that succeeds, whenever that is.
    const sshProbe = (async () => {
      while (probing) {
        try {
          await ssh({ host: "127.0.0.1", port, user: GUEST_USER, key }, "true", 30_000);
          result.firstSsh = seconds(started);
          return;
        } catch {
          await sleep(1000);
        }
      }
    })();

    await waitHealthy(name, {
      timeoutMs: BOOT_TIMEOUT_MS,
      intervalMs: 1000,
      onProgress: throttleProgress(15, ({ status, health }) => {
        const waited = seconds(started);
        void logsOf(name, 200).then((logs) => {
          const last = lastMatch(logs, /devmachines: (.*)$/)?.[1] ?? "-";
          say(`${tag} ${waited.toFixed(0)} s: ${status}, health ${health}, ssh ${result.firstSsh !== undefined ? "answered" : "not yet"}; launcher: ${last}`);
        });
      }),
    });
    result.toHealthy = seconds(started);
    result.mem = (await docker(["stats", "--no-stream", "--format", "{{.MemUsage}}", name])).split(" / ")[0]?.trim();
    result.qemuRssMiB = await qemuRssMiB(name);
    result.overlayMiB = await overlayMiB(name);

    // Healthy means SSH answered; give the probe a little time to see it too.
    const probeDeadline = Date.now() + 90_000;
    while (result.firstSsh === undefined && Date.now() < probeDeadline) await sleep(500);
    probing = false;
    await Promise.race([sshProbe, sleep(35_000)]);

    const logs = await logsOf(name);
    result.actualAccel = lastMatch(logs, /devmachines: started QEMU \(pid \d+\) under (\S+)/)?.[1];
    const cloudInit = lastMatch(logs, /devmachines: cloud-init finished after (\d+) s/)?.[1];
    const ready = lastMatch(logs, /devmachines: ready after (\d+) s/)?.[1];
    if (cloudInit) result.cloudInit = Number(cloudInit);
    if (ready) result.ready = Number(ready);
    result.ok = true;
    say(`${tag} healthy after ${result.toHealthy.toFixed(0)} s (launcher: ready after ${ready ?? "?"} s)`);
  } catch (error) {
    probing = false;
    result.error = (error as Error).message.split("\n")[0];
    say(`${tag} FAILED: ${(error as Error).message}`);
    const tailLines = (await logsOf(name, 40)).split("\n").filter((line) => line.trim()).slice(-40);
    console.log(`${tag} last log lines of ${name} (console and launcher):\n  ${tailLines.join("\n  ")}`);
  } finally {
    probing = false;
    await removeAll({ containers: [name] });
    live.delete(name);
  }
  return result;
}

const fmt = (value: number | undefined, digits = 0) => (value === undefined ? "-" : value.toFixed(digits));
const mib = (value: number | undefined) => (value === undefined ? "-" : `${value.toFixed(0)}MiB`);
/** `docker stats` sizes (`862.3MiB`, `1.2GiB`, `512KiB`) in MiB, for the median row. */
function statsMiB(text: string | undefined): number | undefined {
  const match = /^([\d.]+)\s*([KMGT]i?B|B)$/i.exec(text ?? "");
  if (!match) return undefined;
  const power = { B: -2, K: -1, M: 0, G: 1, T: 2 }[match[2]![0]!.toUpperCase() as "B" | "K" | "M" | "G" | "T"];
  return Number(match[1]) * 1024 ** power;
}

function median(values: (number | undefined)[]): number | undefined {
  const known = values.filter((value): value is number => value !== undefined).sort((a, b) => a - b);
  if (known.length === 0) return undefined;
  const mid = Math.floor(known.length / 2);
  return known.length % 2 ? known[mid] : (known[mid - 1]! + known[mid]!) / 2;
}

function printTable(rows: string[][]): void {
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)));
  for (const row of rows) console.log(row.map((cell, column) => cell.padEnd(widths[column]!)).join("  ").trimEnd());
}

function report(results: BootResult[], specs: BootSpec[]): void {
  const header = ["label", "image", "accel", "cpu", "run", "to-healthy s", "cloud-init s", "ready s", "first-ssh s", "mem", "qemu-rss", "overlay"];
  const rows = results.map((r) => [
    r.label, r.image, r.actualAccel ?? r.accel, String(r.cpu), String(r.run),
    r.ok ? fmt(r.toHealthy) : "FAILED", fmt(r.cloudInit), fmt(r.ready), fmt(r.firstSsh), r.mem ?? "-", mib(r.qemuRssMiB), mib(r.overlayMiB),
  ]);
  for (const spec of specs) {
    const mine = results.filter((r) => r.label === spec.label && r.ok);
    rows.push([
      spec.label, spec.image, "", String(spec.cpu), "median",
      fmt(median(mine.map((r) => r.toHealthy))), fmt(median(mine.map((r) => r.cloudInit))), fmt(median(mine.map((r) => r.ready))),
      fmt(median(mine.map((r) => r.firstSsh))), mib(median(mine.map((r) => statsMiB(r.mem)))), mib(median(mine.map((r) => r.qemuRssMiB))), mib(median(mine.map((r) => r.overlayMiB))),
    ]);
  }
  console.log("");
  printTable([header, ...rows]);
  console.log("");
  for (const spec of specs) {
    const mine = results.filter((r) => r.label === spec.label);
    const ready = median(mine.filter((r) => r.ok).map((r) => r.ready));
    const healthy = median(mine.filter((r) => r.ok).map((r) => r.toHealthy));
    const tcg = mine.every((r) => (r.actualAccel ?? "").toUpperCase() === "TCG");
    const failed = mine.filter((r) => !r.ok).length;
    const met = failed === 0 && ready !== undefined && ready <= TARGET_SECONDS;
    console.log(
      `${spec.label}: target ready <= ${TARGET_SECONDS} s under TCG: ${met ? "MET" : "NOT MET"}` +
        ` (median ready ${fmt(ready)} s from QEMU start, ${fmt(healthy)} s from docker run to healthy` +
        `${failed ? `; ${failed} boot(s) failed` : ""}${tcg ? "" : "; not every boot ran under TCG"})`,
    );
  }
  const [one, five, fifteen] = loadavg();
  console.log(`load average at the start: ${loadAtStart}; at the end: ${one!.toFixed(2)} ${five!.toFixed(2)} ${fifteen!.toFixed(2)} (other VMs on this machine skew the figures)`);
}

const loadAtStart = loadavg().map((value) => value.toFixed(2)).join(" ");

async function main(): Promise<number> {
  const { runs, specs } = options();
  for (const spec of new Set(specs.map((s) => s.image))) await docker(["image", "inspect", "--format", "{{.Id}}", spec]);
  say(`${runs} run(s) of ${specs.map((s) => `${s.label}=${s.image} (ACCEL=${s.accel}, ${s.cpu} vCPU, ${s.memory})`).join(" vs ")}; load average now ${loadAtStart}`);
  const key = await makeKeyPair();
  const cleanUp = async (signal: string) => {
    say(`${signal}: removing ${[...live].join(", ") || "nothing"}`);
    await removeAll({ containers: [...live] });
    await rm(key.dir, { recursive: true, force: true });
    process.exit(130);
  };
  process.once("SIGINT", () => void cleanUp("SIGINT"));
  process.once("SIGTERM", () => void cleanUp("SIGTERM"));
  const results: BootResult[] = [];
  try {
    for (let run = 1; run <= runs; run++) {
      const order = run % 2 === 1 ? specs : [...specs].reverse();
      for (const spec of order) results.push(await boot(spec, run, key));
    }
  } finally {
    await removeAll({ containers: [...live] });
    await rm(key.dir, { recursive: true, force: true });
  }
  results.sort((a, b) => specs.findIndex((s) => s.label === a.label) - specs.findIndex((s) => s.label === b.label) || a.run - b.run);
  report(results, specs);
  return results.every((r) => r.ok) ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(`[bench] ${(error as Error).message}`);
    process.exit(1);
  },
);
