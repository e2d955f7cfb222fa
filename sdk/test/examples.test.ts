/** The TypeScript examples compile against the sdk as users get it (the package's built types). */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import { test } from "node:test";
import { promisify } from "node:util";
import { parse } from "yaml";

const root = new URL("../../", import.meta.url);

test("the TypeScript examples type-check (tsc --noEmit against @devmachines/pulumi)", async () => {
  const tsc = new URL("node_modules/typescript/bin/tsc", root).pathname;
  const result = await promisify(execFile)(process.execPath, [tsc, "--noEmit", "-p", new URL("examples/tsconfig.json", root).pathname]).catch(
    (error: { stdout?: string; message: string }) => ({ stdout: error.stdout ?? error.message }),
  );
  assert.equal(result.stdout.trim(), "", "tsc reported errors");
});

test("every TypeScript example is a Pulumi nodejs project whose main file exists", async () => {
  for (const dir of ["", "examples/single/", "examples/lab/"]) {
    const project = parse(await readFile(new URL(`${dir}Pulumi.yaml`, root), "utf8"));
    assert.equal(project.runtime.name, "nodejs", `${dir}Pulumi.yaml runtime`);
    assert.equal(project.runtime.options.nodeargs, "--import tsx");
    await readFile(new URL(`${dir}${project.main}`, root));
  }
  const rootProject = parse(await readFile(new URL("Pulumi.yaml", root), "utf8"));
  assert.match(rootProject.backend.url, /^file:\/\//, "the default stack keeps its state locally");
});

test("the compose file runs the machine image with the devices, NET_ADMIN only, a disk volume, SSH published and a 90 s stop grace", async (t) => {
  const path = new URL("examples/compose.yaml", root).pathname;
  const compose = parse(await readFile(path, "utf8"));
  const service = compose.services.devmachine;
  assert.match(service.image, /^devmachines\/debian(:|$)/);
  assert.deepEqual(service.devices, ["/dev/kvm", "/dev/net/tun"]);
  assert.deepEqual(service.cap_add, ["NET_ADMIN"]);
  assert.equal(service.privileged, undefined);
  assert.deepEqual(service.volumes, ["disk:/var/lib/devmachines"]);
  assert.ok(service.ports.some((port: string) => port.endsWith(":22")));
  assert.equal(service.stop_grace_period, "90s");
  for (const variable of ["CPU", "MEMORY", "STORAGE", "USER", "SSH_KEYS"]) assert.ok(variable in service.environment, variable);
  // Debian's docker-compose v1 must accept it as it is.
  const run = promisify(execFile);
  const checked = await run("docker-compose", ["-f", path, "config", "--quiet"], { env: { ...process.env, SSH_KEYS: "ssh-ed25519 AAAA test" } }).then(
    () => true,
    (error: NodeJS.ErrnoException & { stderr?: string }) => (error.code === "ENOENT" ? undefined : assert.fail(`docker-compose config: ${error.stderr}`)),
  );
  if (checked === undefined) t.skip("docker-compose is not installed: checked the YAML structure only");
});
