/**
 * The README's main job: deploy the default DevMachine and print how to SSH into it.
 *
 * This is `pulumi up` on the root stack with the toolchain `npm run pulumi:install` builds
 * (host-setup.sh runs it), offline as scripts/pulumi-env.ts sets it up: local file backend,
 * plugins from .cache/pulumi/bin. Only when that toolchain is missing does it fall back to
 * starting the very same container description the component would deploy, straight on the
 * local Docker Engine, and it says so.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { missingBinaries, pulumiEnv, pulumiInstalled } from "./pulumi-env.js";
import {
  containerLogs, containerSpec, DEFAULT_MACHINE_NAME, defaultMachineSettings, docker, localSshKeys, runContainerSpec, throttleProgress, waitHealthy,
  type MachineSettings,
} from "@devmachines/pulumi";

const ROOT = new URL("..", import.meta.url).pathname;
const say = (line: string) => console.log(`[up] ${line}`);

function run(command: string, args: string[], env: NodeJS.ProcessEnv = process.env): void {
  const result = spawnSync(command, args, { stdio: "inherit", cwd: ROOT, env });
  if (result.status !== 0) throw new Error(`${command} ${args.join(" ")} failed (exit ${result.status})`);
}

/** The owner's keys from ~/.ssh, or a key made for this checkout (kept in the ignored .cache/). */
function sshKeys(): { keys: string[]; identity?: string } {
  const own = localSshKeys();
  if (own.length > 0) return { keys: own };
  const identity = join(ROOT, ".cache", "ssh", "id_ed25519");
  if (!existsSync(identity)) {
    mkdirSync(join(ROOT, ".cache", "ssh"), { recursive: true });
    execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "devmachines-up", "-f", identity]);
    say(`no key in ~/.ssh: made ${identity}`);
  }
  return { keys: [readFileSync(`${identity}.pub`, "utf8").trim()], identity };
}

/** `ssh ...` with `-i identity` when the key is the one made for this checkout (not found by ssh on its own). */
function withIdentity(sshCommand: string, identity: string | undefined): string {
  return identity ? sshCommand.replace(/^ssh /, `ssh -i ${identity} `) : sshCommand;
}

async function main(): Promise<void> {
  say("building the images if needed (npm run images)");
  run("node", ["--import", "tsx", join(ROOT, "scripts/images.ts")]);
  // Keys first, for both ways: a machine without ~/.ssh keys gets one made for this checkout.
  const { keys, identity } = sshKeys();

  if (pulumiInstalled()) {
    const env = pulumiEnv();
    say(`pulumi up on the root stack "dev" (state: ${env.PULUMI_BACKEND_URL ?? ""})`);
    spawnSync("pulumi", ["stack", "select", "--create", "dev"], { stdio: "inherit", cwd: ROOT, env });
    // The stack authorizes exactly these keys (examples/default reads devmachines:sshKeys).
    spawnSync("pulumi", ["config", "rm", "devmachines:sshKeys", "--stack", "dev"], { stdio: "ignore", cwd: ROOT, env });
    keys.forEach((key, index) => run("pulumi", ["config", "set", "--stack", "dev", "--path", "--", `devmachines:sshKeys[${index}]`, key], env));
    // A work tree's own image tag (DEVMACHINES_IMAGE_TAG, as npm run images built it).
    if (process.env.DEVMACHINES_IMAGE_TAG) {
      run("pulumi", ["config", "set", "--stack", "dev", "devmachines:image", `devmachines/debian:${process.env.DEVMACHINES_IMAGE_TAG}`], env);
    }
    run("pulumi", ["up", "--yes", "--stack", "dev"], env);
    const sshCommand = execFileSync("pulumi", ["stack", "output", "sshCommand", "--stack", "dev"], { cwd: ROOT, env }).toString().trim();
    say(`ready. Log in with:\n\n    ${withIdentity(sshCommand, identity)}\n`);
    say("remove it with: eval \"$(npm run -s pulumi:env)\" && pulumi destroy --stack dev");
    return;
  }

  say(`the Pulumi toolchain is incomplete (missing ${missingBinaries().join(", ")}; npm run pulumi:install builds it): starting the same container description the DevMachine component deploys, with the Docker CLI`);
  // The defaults are plain values; their Input<> type is for Pulumi programs.
  const spec = containerSpec(DEFAULT_MACHINE_NAME, { ...(defaultMachineSettings() as MachineSettings), sshKeys: keys });
  const existing = await docker(["ps", "-a", "--quiet", "--filter", `name=^${spec.name}$`]);
  if (existing) {
    say(`container ${spec.name} exists already: starting it if it is stopped`);
    await docker(["start", spec.name]);
  } else {
    await runContainerSpec(spec);
    say(`started container ${spec.name}; the guest boots now (docker logs -f ${spec.name} shows its console)`);
  }
  const { seconds } = await waitHealthy(spec.name, {
    timeoutMs: spec.readyTimeoutSeconds * 1000,
    onProgress: throttleProgress(15, ({ health, seconds: waited }) => {
      // The launcher's latest line says where the boot is (accelerator, fallback, readiness).
      const state = health === "starting" ? "booting (waiting for SSH and cloud-init)" : health;
      void containerLogs(spec.name, { tail: 40 }).then(
        ({ launcher }) => {
          const latest = launcher.trimEnd().split("\n").filter((line) => line.startsWith("devmachines: ")).at(-1);
          say(`${waited}s: ${state}${latest ? ` | ${latest}` : ""}`);
        },
        () => say(`${waited}s: ${state}`),
      );
    }),
  });
  const { user, sshHost, sshPort } = spec.access;
  say(`ready after ${seconds}s. Log in with:\n\n    ${withIdentity(`ssh -p ${sshPort} ${user}@${sshHost}`, identity)}\n`);
  say(`stop it with: docker stop ${spec.name}   (the guest powers off cleanly; the disk stays in volume ${spec.volumes[0]?.name ?? "-"})`);
}

main().catch((error: unknown) => {
  console.error(`[up] ${(error as Error).message}`);
  process.exit(1);
});
