/**
 * Running the real Pulumi engine from tests: a stack of an example program in a state
 * folder of its own (file backend), offline as scripts/pulumi-env.ts sets it up.
 */
import { execFile } from "node:child_process";
import { appendFile, mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestContext } from "node:test";
import { missingBinaries, pulumiEnv } from "../scripts/pulumi-env.js";
import { skipLoudly } from "../runtime/test/fixtures/skip.js";
import { e2eAvailable } from "./support.js";

/** e2eAvailable, and the toolchain of `npm run pulumi:install` (plus `extra` binaries) as a requirement too. */
export async function engineAvailable(t: TestContext, extra: string[] = []): Promise<boolean> {
  if (!(await e2eAvailable(t))) return false;
  const missing = missingBinaries(extra);
  if (missing.length === 0) return true;
  skipLoudly(t, `no ${missing.join(", ")} in .cache/pulumi/bin (npm run pulumi:install builds them)`);
  return false;
}

export interface PulumiResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** One stack of one Pulumi project, its state in a temporary folder, every command logged. */
export class TestStack {
  /** Everything the engine printed, for the secret checks (the engine's own logs). */
  readonly logFile: string;

  private constructor(
    readonly projectDir: string,
    readonly name: string,
    readonly stateDir: string,
    private readonly env: NodeJS.ProcessEnv,
  ) {
    this.logFile = join(stateDir, "engine.log");
  }

  static async create(projectDir: string, name: string): Promise<TestStack> {
    const stateDir = await mkdtemp(join(tmpdir(), "dm-pulumi-state-"));
    const env = pulumiEnv({ stateDir, base: { ...process.env, PULUMI_CONFIG_PASSPHRASE: "test-passphrase" } });
    const stack = new TestStack(projectDir, name, stateDir, env);
    await stack.pulumi(["stack", "init"]);
    return stack;
  }

  /**
   * Runs `pulumi ARGS --stack NAME` in the project; rejects with its output unless allowFailure.
   * `projectCommand`: a command of the project that takes no --stack (e.g. `package add`).
   */
  async pulumi(args: string[], options: { allowFailure?: boolean; timeoutMs?: number; secret?: string; revealsSecrets?: boolean; projectCommand?: boolean } = {}): Promise<PulumiResult> {
    // The stack flags go before a `--` (after it everything is a value).
    const end = args.includes("--") ? args.indexOf("--") : args.length;
    const stackFlags = options.projectCommand ? [] : ["--stack", this.name];
    const full = [...args.slice(0, end), ...stackFlags, "--non-interactive", ...args.slice(end)];
    // `up` and `destroy` take minutes (guest boots): say that they still run.
    const started = Date.now();
    const ticker = setInterval(() => console.log(`  [pulumi ${args[0]}] still running, ${Math.round((Date.now() - started) / 1000)}s`), 60_000);
    const result = await new Promise<PulumiResult>((resolve) => {
      execFile("pulumi", full, { cwd: this.projectDir, env: this.env, timeout: options.timeoutMs ?? 15 * 60_000, maxBuffer: 64 * 1024 * 1024 },
        (error, stdout, stderr) => {
          const code = error ? (typeof error.code === "number" ? error.code : 1) : 0;
          resolve({ code, stdout: stdout.toString(), stderr: stderr.toString() });
        });
    }).finally(() => clearInterval(ticker));
    // The command line is ours, not the engine's: a secret we pass on it is masked, so that the
    // log holds the engine's own output plainly, for the checks that no secret leaks there.
    const commandLine = full.map((arg) => (options.secret !== undefined && arg === options.secret ? "[secret]" : arg)).join(" ");
    // Secrets the test asked for (--show-secrets) are not the engine leaking them: kept out too.
    const stdout = options.revealsSecrets ? "[output withheld: the test asked for the secrets]" : result.stdout;
    await appendFile(this.logFile, `$ pulumi ${commandLine}\n${stdout}\n${result.stderr}\n`);
    if (result.code !== 0 && !options.allowFailure) {
      throw new Error(`pulumi ${args.join(" ")} failed (exit ${result.code}):\n${result.stdout}\n${result.stderr}`);
    }
    return result;
  }

  async config(key: string, value: string, secret = false): Promise<void> {
    await this.pulumi(["config", "set", ...(secret ? ["--secret"] : []), "--", key, value], secret ? { secret: value } : {});
  }

  /** A structured config value at `path`, e.g. `hosts[0].host` (`pulumi config set --path`). */
  async configPath(path: string, value: string): Promise<void> {
    await this.pulumi(["config", "set", "--path", "--", path, value]);
  }

  /** A stack output; a secret one prints as `[secret]` unless `showSecrets`. */
  async output(name: string, showSecrets = false): Promise<string> {
    return (await this.pulumi(["stack", "output", name, ...(showSecrets ? ["--show-secrets"] : [])], { revealsSecrets: showSecrets })).stdout.trim();
  }

  /** The stack's checkpoint files in the file backend, as they are on disk. */
  async stateFiles(): Promise<string> {
    const texts: string[] = [];
    const walk = async (dir: string): Promise<void> => {
      for (const entry of await readdir(dir, { withFileTypes: true })) {
        const path = join(dir, entry.name);
        if (entry.isDirectory()) await walk(path);
        else if (entry.name.endsWith(".json") || entry.name.endsWith(".json.bak")) texts.push(await readFile(path, "utf8"));
      }
    };
    await walk(join(this.stateDir, ".pulumi"));
    return texts.join("\n");
  }

  async engineLog(): Promise<string> {
    return readFile(this.logFile, "utf8");
  }

  /** Destroys what is left and removes the stack and its state folder. */
  async dispose(): Promise<void> {
    await this.pulumi(["destroy", "--yes", "--skip-preview"], { allowFailure: true });
    await this.pulumi(["stack", "rm", "--yes", "--force"], { allowFailure: true });
    await rm(this.stateDir, { recursive: true, force: true });
  }
}
