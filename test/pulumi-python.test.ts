/**
 * examples/python under the real Pulumi engine: our Python language host
 * (tools/pulumi/language-python), the pulumi SDK from PyPI in the project's virtualenv, and the
 * SDK that `pulumi package add ./provider` generates from the plugin and links into
 * requirements.txt. A bad argument's error first (no boot), then one guest boot: up, SSH, no
 * diff, destroy, nothing left behind.
 */
import { strict as assert } from "node:assert";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { copyFile, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { createServer, type Socket } from "node:net";
import { execa } from "execa";
import { ROOT } from "../scripts/pulumi-env.js";
import { engineAvailable, TestStack } from "./pulumiEngine.js";
import { BOOT_TIMEOUT_MS, docker, freePort, MACHINE_IMAGE, makeKeyPair, removeAll, ssh } from "./support.js";

const BRANCH = process.env.DEVMACHINES_IMAGE_TAG ?? "e2e";
const EXAMPLE = join(ROOT, "examples", "python");

test("examples/python with the real engine: package add generates and links the SDK, a bad argument fails the preview, up, SSH, destroy leaves nothing", { timeout: BOOT_TIMEOUT_MS + 15 * 60_000 }, async (t) => {
  if (!(await engineAvailable(t, ["pulumi-language-python"]))) return;
  const key = await makeKeyPair();
  const name = `dm-${BRANCH}-python-${randomBytes(3).toString("hex")}`;
  // A copy of the example: `package add` writes into Pulumi.yaml and requirements.txt, and the
  // generated SDK and the virtualenv land beside them; the checkout stays as committed.
  const projectDir = await mkdtemp(join(tmpdir(), "dm-python-example-"));
  for (const file of ["Pulumi.yaml", "__main__.py", "requirements.txt"]) await copyFile(join(EXAMPLE, file), join(projectDir, file));
  const stack = await TestStack.create(projectDir, "test");
  t.after(async () => {
    await stack.dispose();
    await removeAll({ containers: [name], volumes: [`${name}-disk`] });
    await rm(projectDir, { recursive: true, force: true });
  });

  // The plugin runs from source for its schema; our host generates the Python SDK, links it into
  // requirements.txt and installs both into the virtualenv (pip, from PyPI).
  let started = Date.now();
  const added = await stack.pulumi(["package", "add", join(ROOT, "provider")], { projectCommand: true });
  console.log(`  pulumi package add ./provider (SDK, virtualenv, pip install): ${Math.round((Date.now() - started) / 1000)}s`);
  assert.match(added.stdout, /import pulumi_devmachines as devmachines/, "package add says how to import the SDK");
  assert.ok(existsSync(join(projectDir, "sdks", "devmachines", "pulumi_devmachines", "dev_machine.py")), "the SDK was generated");
  assert.match(await readFile(join(projectDir, "requirements.txt"), "utf8"), /^\.\/sdks\/devmachines$/m, "the SDK is linked");
  assert.match(await readFile(join(projectDir, "Pulumi.yaml"), "utf8"), /^packages:\n\s+devmachines: /m, "the package is recorded");
  assert.ok(existsSync(join(projectDir, ".cache", "venv", "bin", "python")), "the virtualenv is under the project's .cache");

  // The engine ends its language host with SIGINT to the host's process group once it is done
  // with the program (an error it has reported, a cancel); in a race with the program's own exit
  // that once printed a KeyboardInterrupt traceback under the real error. Made deterministic: the
  // runner talks to a monitor that never answers and is interrupted while it waits.
  const interrupted = await interruptRunner(join(projectDir, ".cache", "venv", "bin", "python"), projectDir);
  assert.equal(interrupted.exitCode, 32, "an interrupted program exits as 'already reported'");
  assert.doesNotMatch(interrupted.all ?? "", /Traceback|KeyboardInterrupt/, "and says nothing more");

  for (const [k, v] of Object.entries({
    // The default size under TCG: the machine starts as a ready-state clone.
    name, sshKey: key.publicKey, image: MACHINE_IMAGE, cpu: "2", memory: "lots", storage: "20G", accel: "tcg", sshPort: String(await freePort()),
  })) await stack.config(k, v);

  // A bad argument fails the preview through the Python program with the component's own words,
  // once: no Python traceback after the engine has reported it.
  const bad = await stack.pulumi(["preview"], { allowFailure: true });
  assert.notEqual(bad.code, 0, "memory \"lots\" fails the preview");
  assert.match(bad.stdout + bad.stderr, /memory/i);
  assert.match(bad.stdout + bad.stderr, /lots/);
  assert.doesNotMatch(bad.stdout + bad.stderr, /Traceback/, "the error is reported once, without a traceback");
  await stack.config("memory", "2G");

  started = Date.now();
  await stack.pulumi(["up", "--yes", "--skip-preview"]);
  console.log(`  pulumi up (one machine, Python): ${Math.round((Date.now() - started) / 1000)}s`);
  const sshCommand = await stack.output("sshCommand");
  const port = /^ssh -p (\d+) dev@127\.0\.0\.1$/.exec(sshCommand)?.[1];
  assert.ok(port, `sshCommand is a plain ssh command line (is ${sshCommand})`);
  assert.equal(await stack.output("containerName"), name);
  assert.equal(await ssh({ host: "127.0.0.1", port: Number(port), user: "dev", key }, "cat /etc/motd"), "ready", "SSH into the machine");
  await stack.pulumi(["preview", "--expect-no-changes"]);

  await stack.pulumi(["destroy", "--yes", "--skip-preview"]);
  assert.equal((await docker(["ps", "-a", "--quiet", "--filter", `name=^${name}$`])).trim(), "", "no container is left");
  assert.equal((await docker(["volume", "ls", "--quiet", "--filter", `name=^${name}`])).trim(), "", "no volume is left");
});

/** Starts the host's exec.py on an empty program against a monitor that accepts and never
 * answers, sends SIGINT once the runner has connected, and returns how it ended. */
async function interruptRunner(python: string, projectDir: string) {
  const sockets: Socket[] = [];
  let connected!: () => void;
  const connection = new Promise<void>((resolve) => (connected = resolve));
  const silent = createServer((socket) => { sockets.push(socket); connected(); });
  await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
  const address = silent.address();
  assert.ok(address && typeof address === "object");
  const monitor = `127.0.0.1:${address.port}`;
  const program = await mkdtemp(join(tmpdir(), "dm-python-interrupt-"));
  try {
    await writeFile(join(program, "__main__.py"), "");
    const runner = execa(python, ["-u", join(ROOT, "tools", "pulumi", "language-python", "exec.py"),
      `--monitor=${monitor}`, `--engine=${monitor}`, "--project=p", "--stack=s", `--pwd=${projectDir}`, program],
    { all: true, reject: false });
    await connection;
    runner.kill("SIGINT");
    return await runner;
  } finally {
    for (const socket of sockets) socket.destroy();
    silent.close();
    await rm(program, { recursive: true, force: true });
  }
}
