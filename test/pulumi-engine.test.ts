/**
 * The components under the real Pulumi engine and the real Docker provider (the toolchain of
 * `npm run pulumi:install`, offline). Boots are costly, so one stack of examples/single
 * carries the checks that do not disturb each other: up, SSH, secrets, no spurious diff,
 * no drift on refresh, an update that replaces the container and keeps the disk, destroy.
 */
import { strict as assert } from "node:assert";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { test } from "node:test";
import { ROOT } from "../scripts/pulumi-env.js";
import { engineAvailable, TestStack } from "./pulumiEngine.js";
import { SecondEngine } from "./secondEngine.js";
import { BOOT_TIMEOUT_MS, docker, freePort, MACHINE_IMAGE, makeKeyPair, removeAll, ssh } from "./support.js";

const BRANCH = process.env.DEVMACHINES_IMAGE_TAG ?? "e2e";
const unique = (what: string) => `dm-${BRANCH}-${what}-${randomBytes(3).toString("hex")}`;
const FIXTURE = join(ROOT, "test", "fixtures", "engine");

/** The port in `ssh -p PORT user@host`. */
function sshPortOf(sshCommand: string): number {
  const port = /-p (\d+)/.exec(sshCommand)?.[1];
  assert.ok(port, `no port in ${sshCommand}`);
  return Number(port);
}

async function exists(kind: "container" | "volume", name: string): Promise<boolean> {
  return docker([kind, "inspect", name]).then(() => true, () => false);
}

/** The console server's answers to `url` (with its token), to the bare page, and to a wrong token. */
async function consoleAnswers(url: string): Promise<{ bearer: number; query: number; cookie: boolean; none: number; wrong: number }> {
  const parsed = new URL(url);
  const token = parsed.searchParams.get("token") ?? "";
  const bare = `${parsed.origin}/`;
  const viaQuery = await fetch(url, { redirect: "manual" });
  return {
    bearer: (await fetch(bare, { headers: { authorization: `Bearer ${token}` } })).status,
    query: viaQuery.status,
    cookie: /HttpOnly/i.test(viaQuery.headers.get("set-cookie") ?? ""),
    none: (await fetch(bare)).status,
    wrong: (await fetch(bare, { headers: { authorization: `Bearer x${token}` } })).status,
  };
}

test("examples/single with the real engine: up, SSH, consoles, secrets, no diff, no drift, update keeps the disk, destroy", { timeout: 4 * BOOT_TIMEOUT_MS }, async (t) => {
  if (!(await engineAvailable(t))) return;
  const key = await makeKeyPair();
  const name = unique("single");
  const password = `pw-${randomBytes(12).toString("hex")}`;
  const stack = await TestStack.create(join(ROOT, "examples", "single"), "test");
  t.after(async () => {
    await stack.dispose();
    await removeAll({ containers: [name], volumes: [`${name}-disk`] });
  });
  for (const [k, v] of Object.entries({
    name, cpu: "1", memory: "1G", storage: "6G", image: MACHINE_IMAGE, packages: "",
    sshPort: String(await freePort()), webPort: String(await freePort()), consolePort: String(await freePort()),
    sshKey: key.publicKey,
  })) await stack.config(k, v);
  await stack.config("password", password, true);

  let started = Date.now();
  await stack.pulumi(["up", "--yes", "--skip-preview"]);
  console.log(`  pulumi up (one machine): ${Math.round((Date.now() - started) / 1000)}s`);
  const sshCommand = await stack.output("sshCommand");
  assert.match(sshCommand, /^ssh -p \d+ dev@127\.0\.0\.1$/, "sshCommand is a plain output");
  const target = { host: "127.0.0.1", port: sshPortOf(sshCommand), user: "dev", key };
  assert.equal(await ssh(target, "cat /etc/motd"), "ready");
  await ssh(target, "echo kept-across-updates > ~/data && sync");
  assert.equal(await ssh({ ...target, key: undefined, password }, "whoami"), "dev", "the secret password logs in");

  // The consoles, behind the random token the component generated (@pulumi/random): a secret output.
  assert.equal(await stack.output("consoleUrl"), "[secret]", "consoleUrl is a secret output");
  const consoleUrl = await stack.output("consoleUrl", true);
  assert.match(consoleUrl, /^http:\/\/127\.0\.0\.1:\d+\/\?token=[A-Za-z0-9]{32}$/);
  assert.deepEqual(await consoleAnswers(consoleUrl), { bearer: 200, query: 303, cookie: true, none: 401, wrong: 401 },
    "the console server answers with the token and refuses without it");
  const consoleToken = new URL(consoleUrl).searchParams.get("token")!;

  // The password and the console token never appear in plain text: state, export, docker inspect, engine output.
  const exported = (await stack.pulumi(["stack", "export"])).stdout;
  const inspect = await docker(["inspect", name]);
  for (const [where, text] of [["the state files", await stack.stateFiles()], ["pulumi stack export", exported],
    ["docker inspect", inspect], ["the engine's output", await stack.engineLog()]] as const) {
    assert.ok(!text.includes(password), `the password is in plain text in ${where}`);
    assert.ok(!text.includes(consoleToken), `the console token is in plain text in ${where}`);
  }
  assert.match(exported, /"secure"|ciphertext/, "the password is stored as a secret");

  // A second run changes nothing, and refresh reads the machine back as declared (no drift).
  await stack.pulumi(["preview", "--expect-no-changes"]);
  await stack.pulumi(["refresh", "--yes", "--skip-preview", "--expect-no-changes"]);
  await stack.pulumi(["preview", "--expect-no-changes"]);

  // More memory and a bigger disk: a new container on the same volume, the disk grown.
  const before = (await docker(["inspect", "--format", "{{.Id}}", name])).trim();
  await stack.config("memory", "1536M");
  await stack.config("storage", "8G");
  started = Date.now();
  await stack.pulumi(["up", "--yes", "--skip-preview"]);
  console.log(`  pulumi up (replace one machine): ${Math.round((Date.now() - started) / 1000)}s`);
  const after = (await docker(["inspect", "--format", "{{.Id}}", name])).trim();
  assert.notEqual(after, before, "changing memory replaces the container");
  assert.equal(await ssh(target, "cat ~/data"), "kept-across-updates", "the disk volume is kept");
  const rootBytes = Number(await ssh(target, "lsblk -bndo SIZE /dev/vda"));
  assert.ok(rootBytes >= 8 * 1024 ** 3 - 1, `the disk grew to 8G (is ${rootBytes} bytes)`);
  assert.equal(await stack.output("consoleUrl", true), consoleUrl, "the console token is kept across the replacement");
  assert.equal((await consoleAnswers(consoleUrl)).bearer, 200, "the new container's console server takes the kept token");

  // destroy removes the machine and keeps the disk it was told to keep (keepDisk).
  await stack.pulumi(["destroy", "--yes", "--skip-preview"]);
  assert.equal(await exists("container", name), false, "the container is gone");
  assert.equal(await exists("volume", `${name}-disk`), true, "the keepDisk volume stays");
});

test("bad arguments fail pulumi preview before anything is created, naming the argument and the rule", { timeout: 10 * 60_000 }, async (t) => {
  if (!(await engineAvailable(t))) return;
  const stack = await TestStack.create(FIXTURE, "errors");
  t.after(() => stack.dispose());
  const port = await freePort();
  const cases: Array<{ what: string; machines?: unknown[]; groups?: unknown[]; expect: RegExp[] }> = [
    { what: "memory \"lots\"", machines: [{ name: unique("bad"), memory: "lots" }], expect: [/memory/i, /lots/] },
    { what: "a user named root", machines: [{ name: unique("bad"), user: "root" }], expect: [/user/i, /must not be root/] },
    {
      what: "two machines on one host port",
      groups: [{ name: unique("bad"), machines: [{ name: "a", sshPort: port }, { name: "b", sshPort: port }] }],
      expect: [/sshPort/, new RegExp(`host port ${port}/tcp is taken by machine "a"`)],
    },
  ];
  for (const c of cases) {
    await stack.config("machines", JSON.stringify(c.machines ?? []));
    await stack.config("groups", JSON.stringify(c.groups ?? []));
    const result = await stack.pulumi(["preview"], { allowFailure: true });
    const output = result.stdout + result.stderr;
    assert.notEqual(result.code, 0, `${c.what}: preview must fail`);
    for (const pattern of c.expect) assert.match(output, pattern, `${c.what}: the error names the argument and the rule`);
    const resources = JSON.parse((await stack.pulumi(["stack", "export"])).stdout).deployment.resources ?? [];
    assert.equal(resources.length, 0, `${c.what}: nothing was created`);
  }
});

test("a machine that cannot become healthy fails pulumi up at once, with the launcher's own last log lines", { timeout: 10 * 60_000 }, async (t) => {
  if (!(await engineAvailable(t))) return;
  const key = await makeKeyPair();
  const name = unique("broken");
  const stack = await TestStack.create(FIXTURE, "broken");
  t.after(async () => {
    await stack.dispose();
    await removeAll({ containers: [name], volumes: [`${name}-disk`] });
  });
  // The runtime image holds no guest disk: the launcher exits 3 (the host or container lacks
  // something) at once, and the restart policy starts it again and again. No guest boots.
  await stack.config("machines", JSON.stringify([{
    name, image: `devmachines/runtime:${process.env.DEVMACHINES_IMAGE_TAG ?? "latest"}`, sshKeys: [key.publicKey],
    cpu: 1, memory: "512M", storage: "2G", sshPort: await freePort(),
  }]));
  const started = Date.now();
  const result = await stack.pulumi(["up", "--yes", "--skip-preview"], { allowFailure: true });
  const seconds = Math.round((Date.now() - started) / 1000);
  console.log(`  pulumi up of a machine that cannot start failed after ${seconds}s`);
  const output = result.stdout + result.stderr;
  assert.notEqual(result.code, 0, "pulumi up fails");
  assert.match(output, new RegExp(`container ${name} is crash-looping: its process exited`), "the error says what happened");
  assert.match(output, /--- stderr \(the launcher\) ---/, "the error carries the container's log");
  assert.match(output, /base image/i, "the launcher's own words are in the error");
  assert.doesNotMatch(output, /wait_timeout/, "it gave up when the launcher had exited, not at the end of the 600 s wait");
});

test("examples/lab with the real engine over two Docker Engines: three machines up, SSH into each, web and db reach each other by name, destroy leaves nothing on either", { timeout: 3 * BOOT_TIMEOUT_MS + 300_000 }, async (t) => {
  if (!(await engineAvailable(t))) return;
  const key = await makeKeyPair();
  const name = unique("lab");
  // A second engine on this machine stands in for a second Docker host (as in the conformance
  // tests); its own bridge, address pool and folders keep it apart from the faults test's.
  const engine = new SecondEngine({ name: "devmachines-lab", bridge: "dm-lab-br0", bridgeAddress: "172.31.251.1/24", addressPool: "10.214.0.0/16" });
  const stack = await TestStack.create(join(ROOT, "examples", "lab"), "test");
  const second = { dockerHost: engine.socket };
  t.after(async () => {
    await stack.dispose();
    await removeAll({ containers: ["web", "db", "client"].map((m) => `${name}-${m}`), networks: [name] });
    await engine.stop();
  });
  console.log("  starting a second Docker Engine");
  await engine.start();
  const loadStarted = Date.now();
  await engine.loadImage(MACHINE_IMAGE);
  console.log(`  ${MACHINE_IMAGE} loaded into it in ${Math.round((Date.now() - loadStarted) / 1000)}s`);

  for (const [k, v] of Object.entries({
    // subnet "": each engine picks its own (one fixed subnet on two engines of one kernel would clash).
    name, sshKey: key.publicKey, image: MACHINE_IMAGE, packages: "false", subnet: "",
    clientSshPort: String(await freePort()),
  })) await stack.config(k, v);
  await stack.configPath("hosts[0].name", "local");
  await stack.configPath("hosts[0].host", "unix:///var/run/docker.sock");
  await stack.configPath("hosts[1].name", "second");
  await stack.configPath("hosts[1].host", engine.socket);

  const started = Date.now();
  await stack.pulumi(["up", "--yes", "--skip-preview"]);
  console.log(`  pulumi up (the three-machine lab on two engines): ${Math.round((Date.now() - started) / 1000)}s`);
  const machines = JSON.parse(await stack.output("machines")) as Record<string, { containerName: string; host: string; sshHost: string; sshPort: number; sshUser: string }>;
  assert.deepEqual(Object.keys(machines).sort(), ["client", "db", "web"]);
  assert.deepEqual(Object.fromEntries(Object.entries(machines).map(([n, m]) => [n, m.host])), { web: "local", db: "local", client: "second" });
  assert.equal(await docker(["ps", "--quiet", "--filter", `name=^${name}-client$`]), "", "the client does not run on the first engine");
  assert.notEqual(await docker(["ps", "--quiet", "--filter", `name=^${name}-client$`], second), "", "the client runs on the second engine");
  for (const machine of Object.values(machines)) {
    const target = { host: machine.sshHost, port: machine.sshPort, user: machine.sshUser, key };
    assert.equal(await ssh(target, "echo in"), "in", `SSH into ${machine.containerName}`);
  }
  // What the example promises: from web, `db` (its name in the group, a network alias) resolves and
  // its SSH answers: web reads db's SSH banner.
  const web = machines.web!;
  const banner = await ssh({ host: web.sshHost, port: web.sshPort, user: web.sshUser, key },
    `bash -c 'exec 3<>/dev/tcp/db/22 && timeout 20 head -n 1 <&3'`);
  assert.match(banner, /^SSH-2\.0-OpenSSH/);
  await stack.pulumi(["preview", "--expect-no-changes"]);

  await stack.pulumi(["destroy", "--yes", "--skip-preview"]);
  for (const options of [{}, second]) {
    const left = await docker(["ps", "-a", "--quiet", "--filter", `name=^${name}-`], options);
    assert.equal(left.trim(), "", "no container is left");
    const networks = await docker(["network", "ls", "--quiet", "--filter", `name=^${name}`], options);
    assert.equal(networks.trim(), "", "no network is left");
    const volumes = await docker(["volume", "ls", "--quiet", "--filter", `name=^${name}-`], options);
    assert.equal(volumes.trim(), "", "no volume is left");
  }
});

test("examples/yaml through the YAML language host and the plugin: preview plans the machines, up, SSH into each, user data and the ops user, destroy leaves nothing", { timeout: 2 * BOOT_TIMEOUT_MS + 300_000 }, async (t) => {
  if (!(await engineAvailable(t, ["pulumi-language-yaml"]))) return;
  const key = await makeKeyPair();
  const stack = await TestStack.create(join(ROOT, "examples", "yaml"), "test");
  // The YAML program names its containers after its resources: box, and pair-0 for a pair of one.
  const containers = ["box", "pair-0"];
  t.after(async () => {
    await stack.dispose();
    await removeAll({ containers, volumes: containers.map((c) => `${c}-disk`), networks: ["pair"] });
  });
  const opsPassword = `pw-${randomBytes(8).toString("hex")}`;
  for (const [k, v] of Object.entries({
    sshKey: key.publicKey, image: MACHINE_IMAGE, pairCount: "1",
    sshPort: String(await freePort()), httpPort: String(await freePort()),
    // No packages (CI has no mirror): a file written by cloud-init shows the user data applied.
    boxUserData: "write_files: [{path: /etc/yaml-example, content: from-pulumi-yaml}]",
  })) await stack.config(k, v);
  await stack.config("opsPassword", opsPassword, true);

  // Preview runs the YAML host, the plugin from ../../provider (through the Node.js host) and
  // the Docker provider's checks, and creates nothing.
  const { stdout } = await stack.pulumi(["preview", "--diff"]);
  assert.match(stdout, /devmachines:index:DevMachine\b/);
  assert.match(stdout, /devmachines:index:DevMachineGroup\b/);
  assert.match(stdout, /docker:index\/container:Container/);
  assert.equal((await docker(["ps", "-a", "--quiet", "--filter", "name=^box$"])).trim(), "", "preview creates nothing");

  const started = Date.now();
  await stack.pulumi(["up", "--yes", "--skip-preview"]);
  console.log(`  pulumi up (examples/yaml: box and a pair of one): ${Math.round((Date.now() - started) / 1000)}s`);
  const box = { host: "127.0.0.1", port: sshPortOf(await stack.output("boxSsh")), user: "dev", key };
  assert.equal(await ssh(box, "hostname; cat /etc/yaml-example; echo; id -un ops"), "box\nfrom-pulumi-yaml\nops");
  assert.equal(await ssh({ ...box, user: "ops", key: undefined, password: opsPassword }, "whoami"), "ops", "the secret password from YAML config logs in");
  const pairPort = /Host pair-0\n(?:\s+\S+ \S+\n)*?\s+Port (\d+)/.exec(await stack.output("pairSshConfig"))?.[1];
  assert.ok(pairPort, "pairSshConfig names pair-0's port");
  assert.equal(await ssh({ host: "127.0.0.1", port: Number(pairPort), user: "dev", key }, "hostname"), "pair-0");
  const exported = (await stack.pulumi(["stack", "export"])).stdout;
  assert.ok(!exported.includes(opsPassword), "the ops password is not in plain text in the state");
  await stack.pulumi(["preview", "--expect-no-changes"]);

  await stack.pulumi(["destroy", "--yes", "--skip-preview"]);
  for (const container of containers) {
    assert.equal(await exists("container", container), false, `${container} is gone`);
    assert.equal(await exists("volume", `${container}-disk`), false, `${container}'s disk volume is gone`);
  }
  assert.equal((await docker(["network", "ls", "--quiet", "--filter", "name=^pair$"])).trim(), "", "the pair's network is gone");
});
