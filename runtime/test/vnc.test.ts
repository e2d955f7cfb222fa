import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm, stat, symlink, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { checkVncSocket } from "../src/apply/vnc.js";
import { formatIssues, parseConfig } from "../src/config/schema.js";
import { MAX_VNC_DISPLAY, parseVnc, vncArgument, VNC_SOCKET_DIR, type VncSpec } from "../src/config/vnc.js";
import { ExitCode, LauncherError } from "../src/exitCodes.js";
import { ED25519 } from "./fixtures/keys.js";

const argument = (text: string) => {
  const result = parseVnc(text);
  assert.ok(result.ok, `${text}: ${result.ok ? "" : result.problems.join("; ")}`);
  return vncArgument(result.spec);
};
const problems = (text: string) => {
  const result = parseVnc(text);
  assert.equal(result.ok, false, `${text} was accepted`);
  return result.ok ? "" : result.problems.join("\n");
};

test("display numbers, hosts, sockets in the VNC folder and known options are accepted and rebuilt", () => {
  assert.equal(argument(":0"), ":0");
  assert.equal(argument("0.0.0.0:1"), "0.0.0.0:1");
  assert.equal(argument("[::1]:2"), "[::1]:2");
  assert.equal(argument("localhost:3"), "localhost:3");
  assert.equal(argument(`:${MAX_VNC_DISPLAY}`), `:${MAX_VNC_DISPLAY}`);
  assert.equal(argument("none"), "none");
  assert.equal(argument("unix:console.sock"), `unix:${VNC_SOCKET_DIR}/console.sock`);
  assert.equal(argument(`unix:${VNC_SOCKET_DIR}/vnc`), `unix:${VNC_SOCKET_DIR}/vnc`);
  assert.equal(argument(":0,share=force-shared,lossy=on,non-adaptive=off,key-delay-ms=10,connections=4,to=5"), ":0,share=force-shared,lossy=on,non-adaptive=off,key-delay-ms=10,connections=4,to=5");
});

test("socket paths outside the VNC folder are refused: QEMU replaces whatever file is there", () => {
  for (const text of [
    "unix:/var/lib/devmachines/disk.qcow2", "unix:/run/devmachines/qmp.sock", "unix:../disk.qcow2", `unix:${VNC_SOCKET_DIR}/../x`,
    `unix:${VNC_SOCKET_DIR}/sub/x`, "unix:", "unix:..", "unix:.hidden", "unix:a b", `unix:${"x".repeat(65)}`, "unix:/etc/passwd",
  ]) {
    assert.match(problems(text), /socket name|VNC|rule|must be none/, text);
  }
});

test("unknown or dangerous options, bad values and out-of-range displays are refused, each named", () => {
  for (const [text, expected] of [
    [":0,power-control=on", /"power-control" is not allowed/],
    [":0,password=on", /"password" is not allowed/],
    [":0,tls-creds=tls0", /"tls-creds" is not allowed/],
    [":0,websocket=5700", /"websocket" is not allowed/],
    [":0,reverse=on", /"reverse" is not allowed/],
    ["unix:x,sasl=on", /"sasl" is not allowed/],
    [":0,share=everyone", /"share" must be allow-exclusive/],
    [":0,lossy=yes", /"lossy" must be on or off/],
    [":0,connections=0", /"connections" must be a whole number from 1 to 64/],
    [":0,key-delay-ms=99999999", /"key-delay-ms" must be a whole number/],
    [":5,to=4", /"to" needs/],
    [":0,lossy=on,lossy=off", /given twice/],
    [":0,", /is not allowed/],
    [`:${MAX_VNC_DISPLAY + 1}`, /out of range/],
    [":99999", /out of range/],
    [":-1", /must be none/],
    ["0", /must be none/],
    ["", /must be none/],
    ["none,lossy=on", /none takes no options/],
    ["[::1:0", /must be none|invalid host/],
    ["[1.2.3.4]:0", /invalid host/],
    ["bad_host!:0", /invalid host/],
    ["-evil:0", /invalid host/],
    [":0 -device foo", /must be none/],
  ] as const) {
    assert.match(problems(text), expected, text);
  }
  // Several problems come back together.
  assert.equal(parseVnc(":99999,power-control=on,lossy=maybe").ok === false && (parseVnc(":99999,power-control=on,lossy=maybe") as { problems: string[] }).problems.length, 3);
});

test("VNC problems exit 2 from the configuration, before anything is created", () => {
  const base = { CPU: "2", MEMORY: "1G", STORAGE: "20G", USER: "dev", SSH_KEYS: ED25519, HOSTNAME: "box" };
  const result = parseConfig({ ...base, VNC: "unix:/var/lib/devmachines/disk.qcow2,power-control=on" }, () => undefined);
  assert.equal(result.ok, false);
  const text = result.ok ? "" : formatIssues(result.issues);
  assert.match(text, /^ {2}VNC=.* unix: needs a socket name/m);
  assert.match(text, /^ {2}VNC=.* option "power-control" is not allowed/m);
});

test("a VNC display's ports may not be SSH's, a PORTS forward's or the console server's (exit 2)", () => {
  const base = { CPU: "2", MEMORY: "1G", STORAGE: "20G", USER: "dev", SSH_KEYS: ED25519, HOSTNAME: "box" };
  const issues = (env: Record<string, string>) => {
    const result = parseConfig({ ...base, ...env }, () => undefined);
    return result.ok ? "" : formatIssues(result.issues);
  };
  assert.match(issues({ VNC: ":0", CONSOLE_PORT: "5900" }), /VNC=":0" listens on container port tcp\/5900 \(5900 \+ display\), but tcp\/5900 is taken by CONSOLE_PORT/);
  assert.match(issues({ VNC: ":1,to=5", PORTS: "5903:80" }), /VNC=":1,to=5" listens on container ports tcp\/5901-5905 .* tcp\/5903 is taken by PORTS/);
  assert.equal(issues({ VNC: ":0", CONSOLE_PORT: "6080", PORTS: "5901:80" }), "", "distinct ports are fine");
  assert.equal(issues({ VNC: "unix:screen", CONSOLE_PORT: "5900" }), "", "a socket takes no port");
  assert.equal(parseConfig({ ...base, VNC: ":0", CONSOLE_PORT: "5900" }, () => undefined).ok, false);
});

const work = await mkdtemp(join(tmpdir(), "dm-vnc-"));
after(() => rm(work, { recursive: true, force: true }));

test("an existing file at the socket path, or a symlinked folder, is refused (exit 3); a stale socket is fine", async () => {
  const spec = (path: string): VncSpec => ({ listen: { kind: "unix", path }, options: [] });
  const folder = join(work, "vnc");
  await mkdir(folder);
  await writeFile(join(folder, "disk"), "precious");
  const refused = (error: unknown) => error instanceof LauncherError && error.exitCode === ExitCode.Host;
  await assert.rejects(checkVncSocket(spec(join(folder, "disk"))), refused);
  await mkdir(join(folder, "dir"));
  await assert.rejects(checkVncSocket(spec(join(folder, "dir"))), refused);
  await symlink(join(folder, "disk"), join(folder, "link"));
  await assert.rejects(checkVncSocket(spec(join(folder, "link"))), refused);
  await symlink(folder, join(work, "linked"));
  await assert.rejects(checkVncSocket(spec(join(work, "linked", "new.sock"))), refused);
  await checkVncSocket(spec(join(folder, "new.sock")));
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(join(folder, "stale.sock"), resolve));
  await checkVncSocket(spec(join(folder, "stale.sock")));
  server.close();
  assert.equal((await stat(join(folder, "disk"))).size, 8, "nothing was touched");
});
