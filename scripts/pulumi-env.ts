/**
 * The one place that says how this checkout runs the Pulumi engine offline: the toolchain
 * from .cache/pulumi/bin (npm run pulumi:install) first on PATH, plugins found there and never
 * downloaded, no update check, state in a local file backend, the secrets passphrase in a
 * file of the checkout, no Pulumi Cloud. `npm run up`, the engine tests and the README use it.
 *
 *   eval "$(npm run -s pulumi:env)"      # then plain `pulumi ...` works in this shell
 */
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { delimiter, join } from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = fileURLToPath(new URL("..", import.meta.url));
/** Where pulumi:install links the CLI, the language hosts and the docker provider. */
export const PULUMI_BIN = join(ROOT, ".cache", "pulumi", "bin");

export interface PulumiEnvOptions {
  /** The file backend's folder (default .cache/pulumi/state of the checkout). */
  stateDir?: string;
  /** The environment to extend (default process.env). */
  base?: NodeJS.ProcessEnv;
}

/**
 * What a TypeScript program on the local Docker Engine needs: the CLI, the Node.js host, the
 * Docker provider, and the random provider (a DevMachine's console token).
 */
export const TOOLCHAIN = ["pulumi", "pulumi-language-nodejs", "pulumi-resource-docker", "pulumi-resource-random"];

/** The binaries (TOOLCHAIN plus `extra`) that `npm run pulumi:install` has not put in place. */
export function missingBinaries(extra: string[] = []): string[] {
  return [...TOOLCHAIN, ...extra].filter((binary) => !existsSync(join(PULUMI_BIN, binary)));
}

/** True when `npm run pulumi:install` has put the toolchain in place. */
export function pulumiInstalled(): boolean {
  return missingBinaries().length === 0;
}

/**
 * The environment for `pulumi` commands. An explicit PULUMI_CONFIG_PASSPHRASE(_FILE) in the
 * base environment wins; otherwise a random passphrase is made once in .cache/pulumi/passphrase
 * (it encrypts the stack's secrets: losing it makes them unreadable, as with any passphrase).
 */
export function pulumiEnv(options: PulumiEnvOptions = {}): NodeJS.ProcessEnv {
  const base = options.base ?? process.env;
  const home = join(ROOT, ".cache", "pulumi");
  const stateDir = options.stateDir ?? join(home, "state");
  mkdirSync(stateDir, { recursive: true });
  const env: NodeJS.ProcessEnv = {
    ...base,
    PATH: [PULUMI_BIN, base.PATH ?? ""].join(delimiter),
    // Plugins and settings of this checkout, not of ~/.pulumi.
    PULUMI_HOME: join(home, "home"),
    PULUMI_BACKEND_URL: `file://${stateDir}`,
    PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
    PULUMI_SKIP_UPDATE_CHECK: "true",
    PULUMI_SKIP_CONFIRMATIONS: "true",
    PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK: "true",
  };
  if (base.PULUMI_CONFIG_PASSPHRASE === undefined && base.PULUMI_CONFIG_PASSPHRASE_FILE === undefined) {
    const file = join(home, "passphrase");
    if (!existsSync(file)) writeFileSync(file, randomBytes(24).toString("base64url"), { mode: 0o600 });
    env.PULUMI_CONFIG_PASSPHRASE_FILE = file;
  }
  return env;
}

/** `export NAME='value'` lines for a shell: the settings pulumiEnv adds. */
function shellExports(): string {
  const env = pulumiEnv();
  const names = ["PATH", "PULUMI_HOME", "PULUMI_BACKEND_URL", "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION",
    "PULUMI_SKIP_UPDATE_CHECK", "PULUMI_SKIP_CONFIRMATIONS", "PULUMI_CONFIG_PASSPHRASE_FILE"];
  return names.filter((name) => env[name] !== undefined)
    .map((name) => `export ${name}='${(env[name] ?? "").replace(/'/g, `'\\''`)}'`).join("\n");
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) console.log(shellExports());
