/**
 * The console pages in Debian's Chromium without booting a guest: the console server of
 * runtime/src/console with a serial hub that echoes like a tty, and a real QEMU without a
 * disk behind the VNC socket (SeaBIOS prints "No bootable device" on its screen). Seconds,
 * not minutes: it catches page, CSP and module-loading faults before the boot test does.
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import type { Browser } from "playwright-core";
import { ARTIFACTS, browserMissing, CANVAS_STATS, launchBrowser, until, type CanvasStats } from "./browser.js";
import { SerialHub } from "../runtime/src/console/serialHub.js";
import { ConsoleServer } from "../runtime/src/console/server.js";
import { skipOption } from "../runtime/test/fixtures/skip.js";

const TOKEN = "browser-test-token-0123456789";

let dir: string;
let qemu: ChildProcess | undefined;
let server: ConsoleServer | undefined;
let browser: Browser | undefined;
let base = "";
const typed: string[] = [];
// Answers like a tty in cooked mode: echoes, and a line ending in `\r` gets an answer.
const hub: SerialHub = new SerialHub((data) => {
  const text = data.toString("utf8");
  typed.push(text);
  hub.output(Buffer.from(text.replace(/\r/g, "\r\n")));
  if (text.includes("\r")) hub.output(Buffer.from("Password: "));
  return true;
});

// Under DEVMACHINES_E2E=required a missing Chromium runs the tests, which then fail on it.
const skip = skipOption("the console browser tests", browserMissing(), "Install Debian's chromium (scripts/host-setup.sh)");
const available = !skip;

before(async () => {
  if (!available) return;
  await mkdir(ARTIFACTS, { recursive: true });
  dir = await mkdtemp(join(tmpdir(), "dm-console-browser-"));
  const vncSocket = join(dir, "vnc.sock");
  qemu = spawn("qemu-system-x86_64", ["-nodefaults", "-machine", "q35", "-accel", "tcg", "-m", "64", "-device", "VGA", "-vnc", `unix:${vncSocket}`, "-serial", "none", "-monitor", "none"], { stdio: "ignore" });
  for (let i = 0; i < 100 && !existsSync(vncSocket); i++) await new Promise((resolve) => setTimeout(resolve, 100));
  hub.output(Buffer.from("Debian GNU/Linux 13 box ttyS0\r\n\r\nbox login: "));
  server = await ConsoleServer.start({ port: 0, host: "127.0.0.1", token: TOKEN, machine: "box", hub, vncSocket, log: () => {} });
  base = `http://127.0.0.1:${server.port}`;
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await server?.close();
  qemu?.kill();
  if (dir) await rm(dir, { recursive: true, force: true });
});

test("the serial page: ?token= becomes a cookie, the terminal shows the prompt and sends keystrokes, no page errors", { skip }, async () => {
  const page = await browser!.newPage();
  const errors: string[] = [];
  page.on("pageerror", (error) => errors.push(error.message));
  page.on("console", (message) => {
    if (message.type() === "error") errors.push(message.text());
  });
  await page.goto(`${base}/serial?token=${TOKEN}`);
  assert.equal(page.url(), `${base}/serial`, "the token is gone from the address bar");
  await until(page, `document.getElementById("status")?.textContent === "connected"`);
  await page.click("#terminal");
  await page.keyboard.type("dev");
  await page.keyboard.press("Enter");
  await until(page, `(() => { const b = window.devmachinesTerminal.buffer.active; for (let i = 0; i < b.length; i++) if (b.getLine(i).translateToString(true).includes("Password:")) return true; return false; })()`);
  assert.equal(typed.join(""), "dev\r", "xterm.js sends what was typed, Enter as \\r");
  const path = join(ARTIFACTS, "browser-serial.png");
  await page.screenshot({ path });
  console.log(`  screenshot: ${path}`);
  assert.deepEqual(errors, [], "no script errors, nothing the Content-Security-Policy blocked");
  await page.close();
});

test("the screen page: noVNC connects through the proxy and draws QEMU's display", { skip }, async () => {
  const context = await browser!.newContext();
  await context.setExtraHTTPHeaders({ authorization: `Bearer ${TOKEN}` });
  const page = await context.newPage();
  const errors: string[] = [];
  page.on("pageerror", (error) => errors.push(error.message));
  await page.goto(`${base}/vnc`);
  await until(page, `document.getElementById("status")?.textContent === "connected"`);
  let lit = 0;
  for (let attempt = 0; attempt < 60 && lit < 200; attempt++) {
    lit = (await page.evaluate<CanvasStats>(CANVAS_STATS)).lit;
    if (lit < 200) await new Promise((resolve) => setTimeout(resolve, 500));
  }
  const path = join(ARTIFACTS, "browser-vnc.png");
  await page.locator("#screen canvas").screenshot({ path });
  console.log(`  screenshot: ${path}`);
  assert.ok(lit >= 200, `the canvas shows SeaBIOS's text (${lit} lit pixels)`);
  assert.deepEqual(errors, []);
  await context.close();
});
