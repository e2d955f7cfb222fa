/**
 * `npm run images`: build the DevMachines images, skipping whatever is already current.
 *
 * Steps, in order (each prints its elapsed time; tool output is streamed, never hidden):
 *   base     debian:trixie-slim; pulled normally, or made by images/base/bootstrap.sh offline
 *   build    tsc -b runtime on the host: fails fast on type errors before any docker work
 *   runtime  devmachines/runtime:latest from ./Dockerfile
 *   disk     .cache/images/debian-13.qcow2 from images/debian/build.sh (it caches itself)
 *   machine  devmachines/debian:13 (+ :latest) from images/debian/Dockerfile
 *   capture  the ready state of a generic first boot (2 vCPU, 2 GiB, 20 GiB, NAT, TCG) added to
 *            the machine image in /images/clone (x86_64): new machines of that size start from
 *            it (SNAPSHOT=auto). Cached in ~/.cache/devmachines/clone/<key>, keyed by the machine
 *            image, the QEMU version and the size, so a fresh clone of the repository reuses it.
 * With --arch aarch64 the disk and machine steps build the arm64 guest instead:
 * .cache/images/debian-arm64-13.qcow2 (build.sh --arch arm64) and devmachines/debian-arm64:13.
 *
 * Usage: npm run images -- [--force] [--only STEP[,STEP...]] [--arch ARCH[,ARCH]] [--guest-disk FILE] [--if-docker]
 *                           [--capture-size CPUxMEMORYxSTORAGE[,...]]
 *   --force            rebuild the selected steps even when they look current
 *   --only STEPS       run only these steps (e.g. --only runtime, --only runtime,machine)
 *   --arch ARCHES      guests to build: x86_64 (the default), aarch64, or both comma-separated
 *   --guest-disk FILE  use this qcow2 for the machine image instead of building one (skips disk)
 *   --capture-size S   also capture a first boot of size S (e.g. 1x256Mx4G) into the variant
 *                      devmachines/debian:<tag>-S (the capture step; x86_64 only)
 * Env: DEVMACHINES_DOCKER=PATH   docker client to use; DEVMACHINES_BUILDKIT=0 forces the classic builder
 *      DEVMACHINES_IMAGE_TAG=T   tag the images devmachines/runtime:T and devmachines/debian:T only
 *
 * Skipping: each image carries the label `io.devmachines.inputs`, a hash of what it was built
 * from; a build is skipped when the existing image's label equals the current hash.
 */
import { createHash, generateKeyPairSync } from "node:crypto";
import { existsSync, readFileSync, realpathSync } from "node:fs";
import { copyFile, link, mkdir, readdir, readFile, rename, rm, stat } from "node:fs/promises";
import { homedir } from "node:os";
import { join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { execa, type ExecaError } from "execa";
import { captureVariantImage, parseCaptureSize, type CaptureSize } from "../runtime/src/plan/captureSize.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const BASE_IMAGE = "debian:trixie-slim";
/**
 * DEVMACHINES_IMAGE_TAG builds the images under one tag of their own (for a branch or a work tree
 * whose images must not replace the shared ones); the tests read the same variable.
 */
const IMAGE_TAG = process.env.DEVMACHINES_IMAGE_TAG;
const RUNTIME_IMAGE = `devmachines/runtime:${IMAGE_TAG ?? "latest"}`;

/** One guest architecture's disk and machine image. */
interface Guest {
  /** The launcher's ARCH (uname -m). */
  arch: string;
  /** Debian's name for it (build.sh --arch). */
  debianArch: string;
  disk: string;
  tags: string[];
  context: string;
  title: string;
}
const GUESTS: Record<string, Guest> = {
  x86_64: {
    arch: "x86_64",
    debianArch: "amd64",
    disk: join(ROOT, ".cache/images/debian-13.qcow2"),
    tags: IMAGE_TAG ? [`devmachines/debian:${IMAGE_TAG}`] : ["devmachines/debian:13", "devmachines/debian:latest"],
    context: join(ROOT, ".cache/machine-context/debian-13"),
    title: "DevMachines Debian 13",
  },
  aarch64: {
    arch: "aarch64",
    debianArch: "arm64",
    disk: join(ROOT, ".cache/images/debian-arm64-13.qcow2"),
    tags: [`devmachines/debian-arm64:${IMAGE_TAG ?? "13"}`],
    context: join(ROOT, ".cache/machine-context/debian-arm64-13"),
    title: "DevMachines Debian 13 (arm64)",
  },
};
const INPUTS_LABEL = "io.devmachines.inputs";
/** Host CAs (Debian convention) handed to the runtime build stage so npm works behind a TLS proxy. */
const HOST_CA_DIR = "/usr/local/share/ca-certificates";

/**
 * Everything the runtime image is built from: the Dockerfile, .dockerignore, and the paths the
 * .dockerignore allow-list re-includes (`!path`), read from there so the two cannot drift
 * (test/images-inputs.test.ts checks that every path the Dockerfile COPYs is allowed).
 * The sources are hashed rather than runtime/dist: the Dockerfile compiles them itself, so a
 * stale or half-written host dist/ must not decide whether the image is current.
 */
export function runtimeInputs(root = ROOT): string[] {
  const allowed = readFileSync(join(root, ".dockerignore"), "utf8")
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => line.startsWith("!"))
    .map((line) => line.slice(1).replace(/\/+$/, ""));
  return ["Dockerfile", ".dockerignore", ...allowed];
}

const STEPS = ["base", "build", "runtime", "disk", "machine", "capture"] as const;
type Step = (typeof STEPS)[number];

class UsageError extends Error {}
/** A failure with a message meant for the user; printed without a stack trace. */
class BuildError extends Error {}

interface Options {
  force: boolean;
  only: Set<Step>;
  guestDisk: string | undefined;
  /** The guests whose disk and machine image to build (--arch). */
  guests: Guest[];
  /** Sizes besides the default to capture, each into its own variant of the machine image (--capture-size). */
  captureSizes: CaptureSize[];
  /** Without a Docker Engine, say so and succeed (npm test: the end-to-end tests then skip or fail loudly themselves). */
  ifDocker: boolean;
}

function parseArgs(argv: string[]): Options {
  const opts: Options = { force: false, only: new Set(STEPS), guestDisk: undefined, guests: [GUESTS.x86_64!], captureSizes: [], ifDocker: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const [flag, inline] = arg.startsWith("--") && arg.includes("=") ? arg.split(/=(.*)/s, 2) : [arg, undefined];
    const value = (): string => {
      const v = inline ?? argv[++i];
      if (v === undefined || v === "") throw new UsageError(`${flag} needs a value`);
      return v;
    };
    switch (flag) {
      case "--force":
        opts.force = true;
        break;
      case "--only": {
        const names = value().split(",").map((s) => s.trim()).filter(Boolean);
        for (const name of names) {
          if (!(STEPS as readonly string[]).includes(name)) {
            throw new UsageError(`--only: unknown step "${name}" (steps: ${STEPS.join(", ")})`);
          }
        }
        opts.only = new Set(names as Step[]);
        break;
      }
      case "--guest-disk":
        opts.guestDisk = value();
        break;
      case "--arch": {
        const names = value().split(",").map((s) => s.trim()).filter(Boolean);
        const unknown = names.filter((name) => !GUESTS[name]);
        if (unknown.length > 0 || names.length === 0) {
          throw new UsageError(`--arch: unknown architecture "${unknown.join(",")}" (one or more of: ${Object.keys(GUESTS).join(", ")})`);
        }
        opts.guests = [...new Set(names)].map((name) => GUESTS[name]!);
        break;
      }
      case "--if-docker":
        opts.ifDocker = true;
        break;
      case "--capture-size": {
        const sizes = value().split(",").map((s) => s.trim()).filter(Boolean);
        try {
          opts.captureSizes.push(...sizes.map(parseCaptureSize));
        } catch (error) {
          throw new UsageError(`--capture-size: ${(error as Error).message}`);
        }
        break;
      }
      case "-h":
      case "--help":
        printHelp();
        process.exit(0);
      default:
        throw new UsageError(`unknown argument: ${arg} (try --help)`);
    }
  }
  return opts;
}

function printHelp(): void {
  console.log(`Usage: npm run images -- [--force] [--only STEP[,STEP...]] [--arch ARCH[,ARCH]] [--guest-disk FILE] [--capture-size S]
Steps, in order: ${STEPS.join(", ")}
  --force            rebuild the selected steps even when they look current
  --only STEPS       run only these steps, e.g. --only runtime
  --arch ARCHES      guests (disk + machine image): x86_64 (default), aarch64 (devmachines/debian-arm64), or both
  --if-docker        without a Docker Engine, say so and exit 0 instead of failing
  --capture-size S   also capture the ready state at size S (CPUxMEMORYxSTORAGE, e.g. 1x256Mx4G,
                     comma-separated for more) into the variant devmachines/debian:<tag>-S
  --guest-disk FILE  build the machine image from this qcow2 (skips the disk step)
Env: DEVMACHINES_DOCKER=PATH (docker client), DEVMACHINES_BUILDKIT=0 (classic builder),
     DEVMACHINES_IMAGE_TAG=T (build devmachines/runtime:T and devmachines/debian:T only)`);
}

// ---- progress ---------------------------------------------------------------------------

const t0 = Date.now();
const secs = (ms: number): string => `${(ms / 1000).toFixed(1)}s`;
const log = (msg: string): void => console.log(`[images ${secs(Date.now() - t0).padStart(7)}] ${msg}`);

interface StepResult {
  step: Step;
  outcome: "built" | "skipped" | "failed";
  ms: number;
  note: string;
}
const results: StepResult[] = [];

async function runStep(step: Step, index: number, total: number, title: string, fn: () => Promise<{ built: boolean; note: string }>): Promise<void> {
  log(`==> [${index}/${total}] ${step}: ${title}`);
  const start = Date.now();
  try {
    const { built, note } = await fn();
    const ms = Date.now() - start;
    results.push({ step, outcome: built ? "built" : "skipped", ms, note });
    log(`<== ${step}: ${built ? "built" : "up to date"} in ${secs(ms)}${note ? ` (${note})` : ""}`);
  } catch (err) {
    results.push({ step, outcome: "failed", ms: Date.now() - start, note: "" });
    throw err;
  }
}

// ---- docker -----------------------------------------------------------------------------

interface Docker {
  bin: string;
  buildkit: boolean;
  why: string;
}

const ok = async (bin: string, args: string[], env?: Record<string, string>): Promise<boolean> =>
  (await execa(bin, args, { reject: false, stdio: "ignore", env, timeout: 20_000 })).exitCode === 0;

/**
 * Which client and builder to use. The machine's /usr/local/bin/docker (v28, first on PATH)
 * has no buildx plugin, so `docker build` there falls back to the deprecated classic builder.
 * Debian's /usr/bin/docker (20.10) talks to the engine's built-in BuildKit with
 * DOCKER_BUILDKIT=1 (works offline with local base images): it builds the two Dockerfile
 * stages in parallel and streams plain progress. Any client with buildx gets BuildKit too;
 * otherwise the classic builder, which the Dockerfiles also support.
 */
async function pickDocker(): Promise<Docker> {
  const override = process.env.DEVMACHINES_DOCKER;
  const candidates = [...new Set([override, "/usr/bin/docker", "docker"].filter((c): c is string => !!c))];
  const forceClassic = process.env.DEVMACHINES_BUILDKIT === "0";
  let fallback: Docker | undefined;
  for (const bin of candidates) {
    const v = await execa(bin, ["version", "--format", "{{.Client.Version}}"], { reject: false, timeout: 20_000 });
    const version = String(v.stdout ?? "").trim();
    if (!version) continue; // not installed (a missing server still prints the client version)
    if (forceClassic) return { bin, buildkit: false, why: `client ${version}, classic builder (DEVMACHINES_BUILDKIT=0)` };
    if (await ok(bin, ["buildx", "version"])) return { bin, buildkit: true, why: `client ${version} with buildx` };
    const major = Number(version.split(".")[0]);
    if (major > 0 && major < 23) return { bin, buildkit: true, why: `client ${version}, engine's built-in BuildKit` };
    fallback ??= { bin, buildkit: false, why: `client ${version} has no buildx: classic builder` };
  }
  if (!fallback) throw new BuildError("no docker client found (install Debian's docker.io package)");
  return fallback;
}

function dockerEnv(d: Docker): Record<string, string> {
  return { DOCKER_BUILDKIT: d.buildkit ? "1" : "0", BUILDKIT_PROGRESS: "plain" };
}

async function inspect(d: Docker, image: string, format: string): Promise<string | undefined> {
  const r = await execa(d.bin, ["image", "inspect", "--format", format, image], { reject: false });
  return r.exitCode === 0 ? String(r.stdout).trim() : undefined;
}
const imageId = (d: Docker, image: string) => inspect(d, image, "{{.Id}}");
const imageInputs = (d: Docker, image: string) => inspect(d, image, `{{ index .Config.Labels "${INPUTS_LABEL}" }}`);
const imageSize = async (d: Docker, image: string): Promise<string> => {
  const bytes = Number(await inspect(d, image, "{{.Size}}"));
  return Number.isFinite(bytes) ? `${(bytes / 1e6).toFixed(0)} MB` : "?";
};

/**
 * The image a rebuild replaced is left untagged (hundreds of MB for a machine image): remove it.
 * `docker image rm ID` refuses while a container or another tag still uses it, which is fine.
 */
async function removeReplaced(d: Docker, oldId: string | undefined, image: string): Promise<void> {
  if (!oldId || oldId === (await imageId(d, image))) return;
  const r = await execa(d.bin, ["image", "rm", oldId], { reject: false });
  if (r.exitCode === 0) log(`removed the replaced image ${oldId.slice(7, 19)}`);
}

/** Streams the build to the terminal (a build can run for minutes; the user sees every step). */
async function dockerBuild(d: Docker, args: string[]): Promise<void> {
  const progress = d.buildkit ? ["--progress=plain"] : [];
  log(`$ ${d.bin} build ${[...progress, ...args].map((a) => (a.includes("\n") ? "<...>" : a)).join(" ")}`);
  await execa(d.bin, ["build", ...progress, ...args], { stdio: "inherit", env: dockerEnv(d) });
}

// ---- hashing ----------------------------------------------------------------------------

async function listFiles(path: string): Promise<string[]> {
  const st = await stat(path).catch(() => undefined);
  if (!st) return [];
  if (!st.isDirectory()) return [path];
  const entries = await readdir(path, { withFileTypes: true });
  const nested = await Promise.all(
    entries
      .filter((e) => e.name !== "node_modules" && e.name !== "dist" && !e.name.endsWith(".tsbuildinfo"))
      .map((e) => listFiles(join(path, e.name))),
  );
  return nested.flat();
}

async function hashInputs(paths: string[], extra: string[]): Promise<string> {
  const h = createHash("sha256");
  const files = (await Promise.all(paths.map((p) => listFiles(join(ROOT, p))))).flat().sort();
  for (const file of files) {
    h.update(relative(ROOT, file)).update("\0").update(await readFile(file)).update("\0");
  }
  for (const e of extra) h.update(e).update("\0");
  return h.digest("hex").slice(0, 32);
}

// ---- steps ------------------------------------------------------------------------------

async function stepBase(d: Docker, o: Options): Promise<{ built: boolean; note: string }> {
  if (!o.force && (await imageId(d, BASE_IMAGE))) return { built: false, note: `${BASE_IMAGE} present` };
  if (!o.force) {
    log(`${BASE_IMAGE} missing: trying docker pull`);
    if ((await execa(d.bin, ["pull", BASE_IMAGE], { reject: false, stdio: "inherit" })).exitCode === 0) {
      return { built: true, note: "pulled" };
    }
    log("pull failed (no registry?): building it locally with debootstrap");
  }
  await execa("bash", [join(ROOT, "images/base/bootstrap.sh"), ...(o.force ? ["--force"] : [])], { stdio: "inherit" });
  return { built: true, note: "debootstrap + docker import" };
}

async function stepBuild(): Promise<{ built: boolean; note: string }> {
  const tsc = join(ROOT, "node_modules/.bin/tsc");
  if (!existsSync(tsc)) throw new BuildError("node_modules/.bin/tsc is missing: run `npm ci` first");
  // tsc -b is incremental: about a second when nothing changed. It rewrites its build info
  // file only when it compiled something, which tells "built" from "up to date".
  const info = join(ROOT, "runtime/tsconfig.tsbuildinfo");
  const before = (await stat(info).catch(() => undefined))?.mtimeMs;
  await execa(tsc, ["-b", "runtime"], { cwd: ROOT, stdio: "inherit" });
  const after = (await stat(info).catch(() => undefined))?.mtimeMs;
  if (!existsSync(join(ROOT, "runtime/dist/main.js"))) {
    throw new BuildError("runtime/dist/main.js was not produced: the launcher has no src/main.ts yet?");
  }
  return { built: before === undefined || before !== after, note: "tsc -b runtime" };
}

async function hostExtraCAs(): Promise<string> {
  const names = (await readdir(HOST_CA_DIR).catch(() => [] as string[])).filter((n) => n.endsWith(".crt")).sort();
  const pems = await Promise.all(names.map((n) => readFile(join(HOST_CA_DIR, n), "utf8")));
  return pems.join("\n").trim();
}

async function stepRuntime(d: Docker, o: Options): Promise<{ built: boolean; note: string }> {
  const baseId = await imageId(d, BASE_IMAGE);
  if (!baseId) throw new BuildError(`${BASE_IMAGE} is missing: run \`npm run images -- --only base\` first`);
  const hash = await hashInputs(runtimeInputs(), [`base=${baseId}`]);
  if (!o.force && (await imageInputs(d, RUNTIME_IMAGE)) === hash) {
    return { built: false, note: `inputs ${hash.slice(0, 12)} unchanged, ${await imageSize(d, RUNTIME_IMAGE)}` };
  }
  const args = ["-t", RUNTIME_IMAGE, "--label", `${INPUTS_LABEL}=${hash}`];
  const cas = await hostExtraCAs();
  if (cas) {
    log(`passing the host's extra CA certificates (${HOST_CA_DIR}) to the build stage for npm`);
    args.push("--build-arg", `EXTRA_CA_CERTS=${cas}`);
  }
  if (o.force) args.push("--no-cache");
  const oldId = await imageId(d, RUNTIME_IMAGE);
  await dockerBuild(d, [...args, ROOT]);
  await removeReplaced(d, oldId, RUNTIME_IMAGE);
  return { built: true, note: `inputs ${hash.slice(0, 12)}, ${await imageSize(d, RUNTIME_IMAGE)}` };
}

async function stepDisk(o: Options, g: Guest): Promise<{ built: boolean; note: string }> {
  const script = join(ROOT, "images/debian/build.sh");
  if (!existsSync(script)) {
    if (existsSync(g.disk)) return { built: false, note: "no build.sh; using the existing disk" };
    throw new BuildError(`${script} is missing and there is no ${relative(ROOT, g.disk)}`);
  }
  const before = await stamp(g.disk);
  // build.sh keeps its own stamp and says "up to date" quickly when nothing changed.
  await execa("bash", [script, "--arch", g.debianArch, ...(o.force ? ["--force"] : [])], { cwd: ROOT, stdio: "inherit" });
  const after = await stamp(g.disk);
  if (!after) throw new BuildError(`${script} finished but ${relative(ROOT, g.disk)} does not exist`);
  return { built: before !== after, note: relative(ROOT, g.disk) };
}

/** Cheap identity of a multi-GB file: its size, mtime and build.sh's input stamp beside it. */
async function stamp(file: string): Promise<string | undefined> {
  const st = await stat(file).catch(() => undefined);
  if (!st) return undefined;
  const inputStamp = await readFile(`${file}.stamp`, "utf8").catch(() => "");
  return `${st.size}:${st.mtimeMs}:${inputStamp.trim()}`;
}

async function stepMachine(d: Docker, o: Options, g: Guest): Promise<{ built: boolean; note: string }> {
  const MACHINE_TAGS = g.tags;
  const MACHINE_CONTEXT = g.context;
  const disk = o.guestDisk ?? g.disk;
  const diskStamp = await stamp(disk);
  if (!diskStamp) throw new BuildError(`guest disk ${disk} is missing: run \`npm run images -- --only disk\` first`);
  const runtimeId = await imageId(d, RUNTIME_IMAGE);
  if (!runtimeId) throw new BuildError(`${RUNTIME_IMAGE} is missing: run \`npm run images -- --only runtime\` first`);
  const hash = await hashInputs(["images/debian/Dockerfile"], [`runtime=${runtimeId}`, `disk=${diskStamp}`, `arch=${g.arch}`]);
  const current = await Promise.all(MACHINE_TAGS.map((t) => imageInputs(d, t)));
  if (!o.force && current.every((h) => h === hash)) {
    return { built: false, note: `inputs ${hash.slice(0, 12)} unchanged, ${await imageSize(d, MACHINE_TAGS[0]!)}` };
  }
  // A context holding only the disk, so docker does not send the whole repository.
  // A hard link costs nothing; copy only if .cache spans file systems.
  await rm(MACHINE_CONTEXT, { recursive: true, force: true });
  await mkdir(MACHINE_CONTEXT, { recursive: true });
  const staged = join(MACHINE_CONTEXT, "base.qcow2");
  try {
    await link(disk, staged);
  } catch {
    log(`copying ${disk} into the build context (different file system, no hard link)`);
    await copyFile(disk, staged);
  }
  const oldId = await imageId(d, MACHINE_TAGS[0]!);
  try {
    const tags = MACHINE_TAGS.flatMap((t) => ["-t", t]);
    await dockerBuild(d, [
      "-f", join(ROOT, "images/debian/Dockerfile"),
      ...tags,
      "--label", `${INPUTS_LABEL}=${hash}`,
      "--build-arg", `RUNTIME_IMAGE=${RUNTIME_IMAGE}`,
      "--build-arg", `GUEST_ARCH=${g.arch}`,
      "--build-arg", `GUEST_NAME=${g.title}`,
      MACHINE_CONTEXT,
    ]);
  } finally {
    // Drop the link at once: if build.sh later replaces the disk, a stale link would pin GBs.
    await rm(MACHINE_CONTEXT, { recursive: true, force: true });
  }
  await removeReplaced(d, oldId, MACHINE_TAGS[0]!);
  return { built: true, note: `inputs ${hash.slice(0, 12)}, ${await imageSize(d, MACHINE_TAGS[0]!)}` };
}

/** Labels of a machine image that carries a captured ready state. */
const CAPTURE_LABEL = "io.devmachines.capture";
const CAPTURE_FROM_LABEL = "io.devmachines.capture.from";
/** The generic first boot that is captured: the default size, NAT, TCG (see runtime/src/plan/clone.ts CAPTURE). */
const CAPTURE_ENV: Record<"CPU" | "MEMORY" | "STORAGE", string> & Record<string, string> = {
  CPU: "2", MEMORY: "2G", STORAGE: "20G", USER: "devmachines-capture", HOSTNAME: "devmachines-capture",
  NETWORK: "NAT", ACCEL: "tcg", ON_STOP: "suspend", SNAPSHOT: "off", DEVMACHINES_CAPTURE: "1",
};
/** Guest boots on this shared host wait for each other (see README: tests). */
const BOOT_LOCK = process.env.DEVMACHINES_BOOT_LOCK ?? "/tmp/devmachines-boot.lock";

export function captureCacheDir(): string {
  return join(process.env.XDG_CACHE_HOME ?? join(homedir(), ".cache"), "devmachines", "clone");
}

/**
 * Captures the ready state of a generic first boot and adds it to the machine image (a layer
 * with /images/clone: disk.qcow2, vmstate.bin, clone.json). The capture is a real boot of the
 * machine image (about a minute under TCG) whose launcher saves the guest as soon as it is ready
 * (ON_STOP=suspend) and describes it (clone.json); it is kept in the cache under a key of the
 * machine image's id, the QEMU version and the size, so a rebuild of the same image reuses it.
 * Each --capture-size adds a variant of the machine image (`<tag>-<size>`) whose capture is of
 * that size; the image under the default tags keeps the default size's.
 */
async function stepCapture(d: Docker, o: Options, g: Guest): Promise<{ built: boolean; note: string }> {
  const tag = g.tags[0]!;
  if (!(await imageId(d, tag))) throw new BuildError(`${tag} is missing: run \`npm run images -- --only machine\` first`);
  const captured = await inspect(d, tag, `{{ index .Config.Labels "${CAPTURE_LABEL}" }}`);
  // A forced capture starts again from the image without one.
  const from = (captured && (await inspect(d, tag, `{{ index .Config.Labels "${CAPTURE_FROM_LABEL}" }}`))) || (await imageId(d, tag))!;
  if (!(await imageId(d, from))) {
    throw new BuildError(`${tag} was built on ${from.slice(7, 19)}, which is gone: rebuild it with \`npm run images -- --only machine,capture --force\``);
  }
  // The image without a capture keeps a tag of its own: every size is built FROM it by name
  // (BuildKit looks an image id up in a registry), and an image whose last tag is removed is
  // deleted, so a later --capture-size would have nothing to start from. The one it replaces
  // belongs to a machine image since rebuilt: removed (refused, harmlessly, while in use).
  const fromTag = `devmachines/capture-from:${tag.slice(tag.lastIndexOf(":") + 1)}`;
  const previous = await imageId(d, fromTag);
  await execa(d.bin, ["tag", from, fromTag]);
  if (previous && previous !== from) await execa(d.bin, ["image", "rm", previous], { reject: false });
  const qemu = String((await execa(d.bin, ["run", "--rm", "--entrypoint", "qemu-system-x86_64", from, "--version"])).stdout).split("\n")[0]!.trim();
  const notes: string[] = [];
  let built = false;
  for (const size of [undefined, ...o.captureSizes]) {
    const tags = size ? [captureVariantImage(tag, size)] : g.tags;
    const key = captureKey(from, qemu, size?.label ?? DEFAULT_CAPTURE_SIZE);
    const current = await inspect(d, tags[0]!, `{{ index .Config.Labels "${CAPTURE_LABEL}" }}`);
    // The default image is current once it carries any capture (a machine rebuild drops it); a
    // variant only when its capture is of this very machine image, QEMU and size.
    if (!o.force && (size ? current === key : !!current)) {
      notes.push(`${tags[0]} carries capture ${current!.slice(0, 12)}`);
      continue;
    }
    notes.push(await addCapture(d, o, { from, fromTag, key, qemu, tags, env: size ? { ...CAPTURE_ENV, ...size.env } : CAPTURE_ENV }));
    built = true;
  }
  return { built, note: notes.join("; ") };
}

/** The default capture's size, as --capture-size writes it (the cache key's part). */
const DEFAULT_CAPTURE_SIZE = `${CAPTURE_ENV.CPU}x${CAPTURE_ENV.MEMORY}x${CAPTURE_ENV.STORAGE}`;

function captureKey(from: string, qemu: string, size: string): string {
  return createHash("sha256").update(`${from}\0${qemu}\0${size}`).digest("hex").slice(0, 32);
}

/** Captures (or reuses the cached capture of) one size and builds `tags` from `from` with it. */
async function addCapture(
  d: Docker,
  o: Options,
  c: { from: string; fromTag: string; key: string; qemu: string; tags: string[]; env: typeof CAPTURE_ENV },
): Promise<string> {
  const { from, fromTag, key, qemu, tags, env } = c;
  const size = `${env.CPU}x${env.MEMORY}x${env.STORAGE}`;
  const dir = join(captureCacheDir(), key);
  let note = `cached in ${dir}`;
  if (o.force || !existsSync(join(dir, "clone.json"))) {
    await captureBoot(d, from, dir, env);
    note = `captured into ${dir}`;
  } else log(`reusing the capture in ${dir} (machine image ${from.slice(7, 19)}, ${qemu}, ${size}): no boot needed`);
  const dockerfile = [
    `FROM ${fromTag}`,
    "COPY disk.qcow2 vmstate.bin clone.json /images/clone/",
    `LABEL ${CAPTURE_LABEL}="${key}" ${CAPTURE_FROM_LABEL}="${from}"`,
    "",
  ].join("\n");
  const oldId = await imageId(d, tags[0]!);
  const progress = d.buildkit ? ["--progress=plain"] : [];
  log(`$ ${d.bin} build -f - ${tags.map((t) => `-t ${t}`).join(" ")} ${dir}`);
  await execa(d.bin, ["build", ...progress, "-f", "-", ...tags.flatMap((t) => ["-t", t]), dir], { input: dockerfile, stdout: "inherit", stderr: "inherit", env: dockerEnv(d) });
  if (oldId !== from) await removeReplaced(d, oldId, tags[0]!);
  const meta = JSON.parse(await readFile(join(dir, "clone.json"), "utf8")) as { disk: { bytes: number }; stateBytes: number };
  return `${tags[0]} (${size}): ${note}; disk ${(meta.disk.bytes / 1e6).toFixed(0)} MB + state ${(meta.stateBytes / 1e6).toFixed(0)} MB, ${await imageSize(d, tags[0]!)}`;
}

/** An OpenSSH ed25519 public key whose private half is thrown away at once. */
function throwawayPublicKey(): string {
  const x = Buffer.from(generateKeyPairSync("ed25519").publicKey.export({ format: "jwk" }).x!, "base64url");
  const sized = (data: Buffer) => {
    const length = Buffer.alloc(4);
    length.writeUInt32BE(data.length);
    return Buffer.concat([length, data]);
  };
  return `ssh-ed25519 ${Buffer.concat([sized(Buffer.from("ssh-ed25519")), sized(x)]).toString("base64")} devmachines-capture`;
}

/** Boots the generic machine until it is ready and saved, printing its progress (never silent for long). */
async function captureBoot(d: Docker, image: string, dir: string, env: typeof CAPTURE_ENV): Promise<void> {
  const partial = `${dir}.partial`;
  await rm(partial, { recursive: true, force: true });
  await mkdir(partial, { recursive: true });
  const name = `dm-capture-${process.pid}`;
  // The capture's user needs a way in for the launcher to accept it; nobody holds this key, and
  // every clone removes the user anyway.
  const args = [
    "run", "--rm", "--name", name, "-e", `SSH_KEYS=${throwawayPublicKey()}`, "--stop-timeout", "120", "-v", `${partial}:/var/lib/devmachines`,
    ...Object.entries(env).flatMap(([k, v]) => ["-e", `${k}=${v}`]),
    image,
  ];
  const locked = existsSync("/usr/bin/flock");
  log(`capturing: booting ${image.slice(7, 19)} once (about a minute under TCG${locked ? `, after other boots holding ${BOOT_LOCK}` : ""}); progress follows`);
  const started = Date.now();
  let last = "waiting for the boot lock";
  const heartbeat = setInterval(() => log(`capture: ${((Date.now() - started) / 1000).toFixed(0)} s, ${last}`), 10_000);
  try {
    const child = locked ? execa("flock", [BOOT_LOCK, d.bin, ...args], { all: true, reject: false }) : execa(d.bin, args, { all: true, reject: false });
    child.all!.setEncoding("utf8");
    let buffer = "";
    const tail: string[] = [];
    child.all!.on("data", (chunk: string) => {
      buffer += chunk;
      let newline: number;
      while ((newline = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, newline).replace(/\r$/, "");
        buffer = buffer.slice(newline + 1);
        tail.push(line);
        if (tail.length > 30) tail.shift();
        if (line.startsWith("devmachines: ")) {
          last = line.slice(13, 140);
          log(`capture: ${last}`);
        } else {
          // The guest's console: only its last line, without terminal control sequences.
          const text = line.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, "").trim();
          if (text) last = `guest: ${text.slice(0, 100)}`;
        }
      }
    });
    const result = await child;
    if (result.exitCode !== 0) {
      await rm(partial, { recursive: true, force: true });
      console.log(tail.join("\n"));
      throw new BuildError(`the capture boot exited with ${result.exitCode} (the end of its output is above); nothing was cached`);
    }
  } finally {
    clearInterval(heartbeat);
    await execa(d.bin, ["rm", "-f", name], { reject: false });
  }
  for (const file of ["disk.qcow2", "vmstate.bin", "clone.json"]) {
    if (!existsSync(join(partial, file))) throw new BuildError(`the capture finished without ${file} in ${partial}`);
  }
  await rm(dir, { recursive: true, force: true });
  await rename(partial, dir);
  log(`captured in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  await pruneCaptures(dir);
}

/**
 * Keeps the newest captures of each size (about 300 MB each at 2 GiB): older ones belong to machine
 * images since rebuilt. Counted per size, so capturing a variant never evicts the default's.
 */
async function pruneCaptures(keep: string, count = 3): Promise<void> {
  const root = captureCacheDir();
  const entries = await Promise.all(
    (await readdir(root)).map(async (name) => {
      const path = join(root, name);
      const meta = await readFile(join(path, "clone.json"), "utf8").then((text) => JSON.parse(text) as Record<string, unknown>, (): Record<string, unknown> => ({}));
      return { path, size: `${String(meta.cpu)}/${String(meta.memoryBytes)}/${String(meta.storageBytes)}`, mtime: (await stat(path)).mtimeMs };
    }),
  );
  const size = entries.find((entry) => entry.path === keep)?.size;
  const old = entries.filter((entry) => entry.path !== keep && entry.size === size).sort((a, b) => b.mtime - a.mtime).slice(count - 1);
  for (const entry of old) {
    await rm(entry.path, { recursive: true, force: true });
    log(`removed an older capture: ${entry.path}`);
  }
}

// ---- main -------------------------------------------------------------------------------

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  if (o.guestDisk) {
    if (!existsSync(o.guestDisk)) throw new UsageError(`--guest-disk: ${o.guestDisk} does not exist`);
    o.only.delete("disk");
  }
  const d = await pickDocker();
  log(`docker: ${d.bin} (${d.why})`);
  if (!(await ok(d.bin, ["info"]))) {
    if (o.ifDocker) {
      log("!!! no Docker Engine answers: NOT building the images; end-to-end tests will skip (or fail with DEVMACHINES_E2E=required)");
      return;
    }
    throw new BuildError(
      "Docker Engine is not reachable. Start it (as root) and retry:\n" +
        "  nohup dockerd > /var/log/dockerd.log 2>&1 &   # then wait for `docker info`",
    );
  }
  log(`steps: ${STEPS.filter((s) => o.only.has(s)).join(", ")}${o.force ? " (forced)" : ""}`);

  if (o.guestDisk && o.guests.length > 1) throw new UsageError("--guest-disk is one disk: give it with one --arch");
  const plan: [Step, string, () => Promise<{ built: boolean; note: string }>][] = [
    ["base", `base image ${BASE_IMAGE}`, () => stepBase(d, o)],
    ["build", "compile the launcher (type check before docker)", () => stepBuild()],
    ["runtime", `runtime image ${RUNTIME_IMAGE}`, () => stepRuntime(d, o)],
    ...o.guests.flatMap((g): typeof plan => [
      ["disk", `guest disk ${relative(ROOT, g.disk)} (${g.arch})`, () => stepDisk(o, g)],
      ["machine", `machine image ${g.tags.join(", ")}`, () => stepMachine(d, o, g)],
      ...(g.arch === "x86_64" ? [["capture", `ready state of a first boot in ${g.tags[0]}`, () => stepCapture(d, o, g)] as (typeof plan)[number]] : []),
    ]),
  ];
  for (const [i, [step, title, fn]] of plan.entries()) {
    if (o.only.has(step)) await runStep(step, i + 1, plan.length, title, fn);
  }
}

function summary(): void {
  if (results.length === 0) return;
  console.log("\nSummary:");
  for (const r of results) {
    console.log(`  ${r.step.padEnd(8)} ${r.outcome.padEnd(8)} ${secs(r.ms).padStart(8)}  ${r.note}`);
  }
  console.log(`  total             ${secs(Date.now() - t0).padStart(8)}`);
}

/** Run as a script (`node --import tsx scripts/images.ts`), not when a test imports `runtimeInputs`. */
function isMain(): boolean {
  try {
    return process.argv[1] !== undefined && realpathSync(resolve(process.argv[1])) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isMain()) {
  main().then(
    () => summary(),
    (err: unknown) => {
      summary();
      if (err instanceof UsageError) {
        console.error(`images: ${err.message}`);
        process.exit(2);
      }
      if (err instanceof BuildError) {
        console.error(`\nimages: ${err.message}`);
      } else if (err instanceof Error && "command" in err) {
        const e = err as ExecaError;
        // The command may carry PEM text (--build-arg EXTRA_CA_CERTS): show only its first line.
        const cmd = String(e.command).split("\n")[0]!.slice(0, 200);
        console.error(`\nimages: command failed (exit ${e.exitCode ?? e.signal ?? "?"}), see its output above: ${cmd}`);
      } else {
        console.error("\nimages:", err);
      }
      process.exit(1);
    },
  );
}
