/**
 * The console server on a real port, with real WebSockets and a real Unix socket standing in
 * for QEMU's VNC server and serial port: the token and Origin rules hold on every path,
 * several viewers share the serial console, and the VNC proxy passes bytes both ways.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer, connect, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { WebSocket } from "ws";
import { SerialHub } from "../src/console/serialHub.js";
import { listenSerialSocket } from "../src/console/serialSocket.js";
import { ConsoleServer, fileBelow } from "../src/console/server.js";

const TOKEN = "s3cret-token-0123456789";
let dir: string;
let server: ConsoleServer;
let vncServer: Server;
let base: string;
const typed: Buffer[] = [];
const hub = new SerialHub((data) => (typed.push(data), true));

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "dm-console-test-"));
  const vncSocket = join(dir, "vnc.sock");
  // A stand-in VNC server: greets like RFB and echoes what it is sent.
  vncServer = createServer((socket) => {
    socket.write("RFB 003.008\n");
    socket.on("data", (data) => socket.write(Buffer.concat([Buffer.from("echo:"), data])));
  });
  await new Promise<void>((resolve) => vncServer.listen(vncSocket, resolve));
  server = await ConsoleServer.start({ port: 0, host: "127.0.0.1", token: TOKEN, machine: "box<1>", hub, vncSocket, log: () => {} });
  base = `http://127.0.0.1:${server.port}`;
});
after(async () => {
  await server.close();
  await new Promise((resolve) => vncServer.close(resolve));
  await rm(dir, { recursive: true, force: true });
});

const get = (path: string, headers: Record<string, string> = {}) => fetch(`${base}${path}`, { headers, redirect: "manual" });
const bearer = { authorization: `Bearer ${TOKEN}` };

/** Opens a WebSocket; resolves with it open, or with the HTTP status that refused the upgrade. */
function openWs(path: string, headers: Record<string, string>, protocols: string[] = []): Promise<{ ws?: WebSocket; status?: number }> {
  return new Promise((resolve) => {
    const ws = new WebSocket(`ws://127.0.0.1:${server.port}${path}`, protocols, { headers });
    // Messages may arrive with the handshake's answer: keep them from the very start.
    const early: Buffer[] = [];
    received.set(ws, early);
    ws.on("message", (data: Buffer) => early.push(data));
    ws.on("open", () => resolve({ ws }));
    ws.on("unexpected-response", (_request, response) => {
      resolve({ status: response.statusCode });
      response.resume();
    });
    ws.on("error", () => resolve({}));
  });
}

const received = new WeakMap<WebSocket, Buffer[]>();

/** Everything not yet consumed, once `want` appears in it. */
async function receive(ws: WebSocket, want: string): Promise<string> {
  const messages = received.get(ws)!;
  for (;;) {
    const text = Buffer.concat(messages).toString("utf8");
    if (text.includes(want)) {
      messages.length = 0;
      return text;
    }
    await new Promise((resolve) => ws.once("message", resolve));
  }
}

test("every page, asset and WebSocket answers 401 without the token, and 200 with it", async () => {
  for (const path of ["/", "/serial", "/vnc", "/assets/serial.js", "/assets/xterm/xterm.js", "/assets/novnc/core/rfb.js", "/nothing"]) {
    const refused = await get(path);
    assert.equal(refused.status, 401, path);
    assert.match(refused.headers.get("www-authenticate") ?? "", /^Bearer/);
    assert.equal((await get(path, { authorization: "Bearer wrong-token-0123456789" })).status, 401, path);
  }
  for (const path of ["/", "/serial", "/vnc", "/assets/serial.js", "/assets/vnc.js", "/assets/xterm/xterm.js", "/assets/xterm/xterm.css", "/assets/xterm/addon-fit.js", "/assets/novnc/core/rfb.js", "/assets/novnc/vendor/pako/lib/zlib/inflate.js"]) {
    const response = await get(path, bearer);
    assert.equal(response.status, 200, path);
    assert.match(response.headers.get("content-security-policy") ?? "", /script-src 'self'/);
  }
  const index = await (await get("/", bearer)).text();
  assert.match(index, /href="\/serial"/);
  assert.match(index, /href="\/vnc"/);
  assert.match(index, /box&lt;1&gt;/, "the machine name is escaped");
  assert.equal((await get("/nothing", bearer)).status, 404);
  for (const path of ["/ws/serial", "/ws/vnc"]) {
    assert.deepEqual(await openWs(path, {}), { status: 401 }, `${path} without a token`);
    assert.deepEqual(await openWs(path, { authorization: "Bearer wrong-token-0123456789" }), { status: 401 }, `${path} with a wrong token`);
  }
});

test("?token= sets an HttpOnly cookie and redirects to the same page without it; the cookie then works", async () => {
  const response = await get(`/serial?token=${TOKEN}`);
  assert.equal(response.status, 303);
  assert.equal(response.headers.get("location"), "/serial");
  const cookie = response.headers.get("set-cookie") ?? "";
  assert.match(cookie, /HttpOnly/);
  const pair = cookie.split(";")[0]!;
  assert.equal((await get("/serial", { cookie: pair })).status, 200);
  const { ws } = await openWs("/ws/serial", { cookie: pair, origin: base });
  assert.ok(ws, "the cookie opens the WebSocket");
  ws.close();
});

test("a foreign Origin is refused on the pages and the WebSockets, even with the token", async () => {
  assert.equal((await get("/serial", { ...bearer, origin: "http://evil.example" })).status, 403);
  assert.deepEqual(await openWs("/ws/serial", { ...bearer, origin: "http://evil.example" }), { status: 403 });
  assert.deepEqual(await openWs("/ws/vnc", { ...bearer, origin: `http://127.0.0.1:${server.port + 1}` }), { status: 403 });
});

test("asset paths cannot leave the packages' folders", async () => {
  assert.equal(fileBelow("/pkg/core", "../../../etc/passwd.js"), undefined);
  assert.equal(fileBelow("/pkg/core", "%2e%2e/x.js"), undefined);
  assert.equal(fileBelow("/pkg/core", "rfb.css"), undefined);
  assert.equal(fileBelow("/pkg/core", "util/events.js"), "/pkg/core/util/events.js");
  assert.equal((await get("/assets/novnc/core/%2e%2e/%2e%2e/%2e%2e/package.json", bearer)).status, 404);
});

test("serial: several viewers see the output, with the recent output first, and all of them can type", async () => {
  hub.output(Buffer.from("Debian GNU/Linux 13 box ttyS0\r\n\r\nbox login: "));
  const a = await openWs("/ws/serial", { ...bearer, origin: base });
  const b = await openWs("/ws/serial", { ...bearer, origin: base });
  assert.ok(a.ws && b.ws);
  const [seenA, seenB] = await Promise.all([receive(a.ws, "login: "), receive(b.ws, "login: ")]);
  assert.match(seenA, /box login: $/);
  assert.match(seenB, /box login: $/);

  // Also attached through the Unix socket, as `devmachines console` does.
  const socketPath = join(dir, "serial.sock");
  const unix = await listenSerialSocket(hub, socketPath);
  const client = connect(socketPath);
  await new Promise((resolve) => client.once("data", resolve));

  const next = Promise.all([receive(a.ws, "Password:"), receive(b.ws, "Password:")]);
  a.ws.send(Buffer.from("dev\r"));
  b.ws.send(Buffer.from("x"));
  client.write("y");
  await new Promise((resolve) => setTimeout(resolve, 200));
  assert.equal(Buffer.concat(typed).toString(), "dev\rxy", "keystrokes from every viewer reach the guest");
  hub.output(Buffer.from("Password: "));
  await next;
  client.destroy();
  await new Promise((resolve) => unix.close(resolve));
  a.ws.close();
  b.ws.close();
});

test("vnc: the WebSocket is a byte pipe to QEMU's VNC socket", async () => {
  const { ws } = await openWs("/ws/vnc", { ...bearer, origin: base }, ["binary"]);
  assert.ok(ws);
  assert.equal(ws.protocol, "binary");
  assert.match(await receive(ws, "RFB 003.008"), /^RFB 003.008\n/);
  const answer = receive(ws, "echo:RFB 003.008");
  ws.send(Buffer.from("RFB 003.008\n"));
  await answer;
  ws.close();
});

test("the scrollback keeps the last bytes only", () => {
  const small = new SerialHub(() => true, 10);
  small.output(Buffer.from("0123456789"));
  small.output(Buffer.from("abcdef"));
  assert.equal(small.scrollback().toString(), "6789abcdef");
});
