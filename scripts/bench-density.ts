/**
 * The density benchmark (`npm run bench -- --only density`): N guests of one small size started
 * at once, cold boots (SNAPSHOT=off) against clones of a capture of that very size (the machine
 * image's variant from `npm run images -- --capture-size SIZE`), each until Docker reports it
 * healthy. Prints when the first and the last were healthy and how many made it; a run that
 * passes its timeout reports how many made it by then instead of waiting on.
 */
import { loadavg } from "node:os";
import { captureVariantImage, parseCaptureSize } from "../runtime/src/plan/captureSize.js";
import { containerLogs, docker, hopelessState } from "../sdk/src/run.js";
import { makeKeyPair, removeAll } from "../test/support.js";
import { f1, table } from "./benchFormat.js";

export interface DensityOptions {
  /** The machine image the variant is named after (devmachines/debian:TAG). */
  image: string;
  /** Guest counts, one run each per kind. */
  counts: number[];
  /** CPUxMEMORYxSTORAGE of every guest, cold and cloned (--capture-size's form). */
  size: string;
  /** Which starts to run per count: cold boots, clones, or both (the default). */
  kinds: ("cold" | "clones")[];
  /** Per run: guests not healthy by then are counted as not made. */
  timeoutSeconds: number;
  /** Container name prefix; names carry it so a cleanup finds them. */
  prefix: string;
  /** Names made, for the caller's cleanup on an interrupt. */
  made: { containers: string[] };
}

const load = () => loadavg()[0]!.toFixed(1);

export async function density(o: DensityOptions): Promise<void> {
  const size = parseCaptureSize(o.size);
  if (!o.counts.every((n) => Number.isInteger(n) && n > 0)) throw new Error(`--guests: ${o.counts.join(",")} must be whole numbers of guests, at least 1`);
  if (o.kinds.length === 0 || !o.kinds.every((k) => k === "cold" || k === "clones")) throw new Error(`--density-kinds: ${o.kinds.join(",")} must be cold, clones or both`);
  if (!(o.timeoutSeconds > 0)) throw new Error("--density-timeout must be a number of seconds above 0");
  const image = captureVariantImage(o.image, size);
  const meta = await docker(["run", "--rm", "--entrypoint", "cat", image, "/images/clone/clone.json"]).catch(() => "");
  if (!meta) {
    console.log(`## Density: skipped: no machine image ${image} with a capture of ${size.label}; build it with\n  DEVMACHINES_IMAGE_TAG=... npm run images -- --capture-size ${size.label}\n`);
    return;
  }
  const captured = JSON.parse(meta) as { disk: { bytes: number }; stateBytes: number };
  const key = await makeKeyPair();
  // READY_TIMEOUT as long as the run's own timeout: many cold boots sharing two cores can take
  // longer than the default 10 minutes, and the bench, not the launcher, decides when to give up.
  const common = { USER: "dev", SSH_KEYS: key.publicKey, ACCEL: "tcg", ...size.env, READY_TIMEOUT: String(o.timeoutSeconds) };
  const rows: (string | number)[][] = [];
  for (const count of o.counts) {
    const runs = [
      ["cold", "cold boots (SNAPSHOT=off)", { ...common, SNAPSHOT: "off" }],
      ["clones", "clones", common],
    ] as const;
    for (const [, kind, env] of runs.filter(([id]) => o.kinds.includes(id))) {
      const names = Array.from({ length: count }, (_, i) => `${o.prefix}-density-${rows.length}-${i}`);
      o.made.containers.push(...names);
      const loadBefore = load();
      console.log(`  density: starting ${count} x ${kind}, ${size.label} (load ${loadBefore})`);
      const started = Date.now();
      // Docker's start period as long too: past the image's (600 s) a booting guest turns
      // `unhealthy`, which the watch below (as waitHealthy) takes as final.
      await Promise.all(names.map((name) => docker(["run", "-d", "--name", name, "--health-start-period", `${o.timeoutSeconds}s`, ...Object.entries(env).flatMap(([k, v]) => ["-e", `${k}=${v}`]), image])));
      const outcome = await watch(names, started, o.timeoutSeconds);
      const ready = [...outcome.healthy.values()];
      const how = await Promise.all([...outcome.healthy.keys()].map(async (name) => /ready after .*\(cloned\)/.test((await containerLogs(name)).launcher)));
      const cloned = how.filter(Boolean).length;
      rows.push([
        count, kind, `${ready.length}/${count}`, env === common ? `${cloned}/${ready.length}` : "-",
        ready.length ? f1(Math.min(...ready)) : "-", ready.length ? f1(Math.max(...ready)) : "-", `${loadBefore} -> ${load()}`,
      ]);
      console.log(`  density: ${count} x ${kind}: ${ready.length}/${count} healthy, last after ${ready.length ? f1(Math.max(...ready)) : "-"} s`);
      await removeAll({ containers: names });
    }
  }
  console.log(`## Density: ${size.label} guests (CPU=${size.env.CPU} MEMORY=${size.env.MEMORY} STORAGE=${size.env.STORAGE}) started at once, TCG, until all are healthy\n`);
  table(["guests", "kind", "healthy", "cloned", "first healthy (s)", "last healthy (s)", "load (1 min) start -> end"], rows);
  console.log(`Captured state in ${image}: disk ${(captured.disk.bytes / 2 ** 20).toFixed(0)} MiB + state ${(captured.stateBytes / 2 ** 20).toFixed(0)} MiB.\n`);
}

/**
 * Polls all the run's containers with one `docker inspect` every half second (one per guest would cost
 * the cores the guests share), until each is healthy, hopeless, or the timeout passes. A guest
 * that did not make it has its launcher's last lines printed before its container goes.
 */
async function watch(names: string[], started: number, timeoutSeconds: number): Promise<{ healthy: Map<string, number> }> {
  const healthy = new Map<string, number>();
  const failed = new Map<string, string>();
  const restarts = new Map<string, number>();
  let lastProgress = Date.now();
  for (;;) {
    const waiting = names.filter((name) => !healthy.has(name) && !failed.has(name));
    const elapsed = (Date.now() - started) / 1000;
    if (waiting.length === 0) break;
    if (elapsed > timeoutSeconds) {
      for (const name of waiting) failed.set(name, `not healthy after the run's timeout of ${timeoutSeconds} s`);
      break;
    }
    const lines = (await docker(["inspect", "--format", "{{.Name}}\t{{json .State}}\t{{.RestartCount}}", ...waiting])).split("\n").filter(Boolean);
    for (const line of lines) {
      const [slashName, stateJson, restartCount] = line.split("\t") as [string, string, string];
      const name = slashName.replace(/^\//, "");
      const state = JSON.parse(stateJson) as Parameters<typeof hopelessState>[0];
      if (!restarts.has(name)) restarts.set(name, Number(restartCount));
      if (state.Health?.Status === "healthy") healthy.set(name, elapsed);
      else {
        const hopeless = hopelessState(state, Number(restartCount), restarts.get(name)!);
        if (hopeless) failed.set(name, hopeless);
      }
    }
    if (Date.now() - lastProgress >= 15_000) {
      lastProgress = Date.now();
      console.log(`  density: ${f1(elapsed)} s: ${healthy.size}/${names.length} healthy, ${failed.size} failed (load ${load()})`);
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  for (const [name, why] of failed) {
    const logs = await containerLogs(name).then((l) => l.launcher.split("\n").slice(-20).join("\n"), (e: Error) => e.message);
    console.log(`  density: ${name} did not become healthy: ${why}\n${logs}`);
  }
  return { healthy };
}
