/**
 * End-to-end, in a real browser: a DevMachine started with CONSOLE_PORT serves its serial
 * console (xterm.js) and its screen (noVNC) behind a token. Debian's Chromium, driven by
 * playwright-core, logs in at the guest's serial `login:` prompt and runs a command, and
 * connects noVNC to the guest's display. One boot, shared by every check in this file.
 * Screenshots are kept under .cache/artifacts/console/ (their paths are printed).
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test, type TestContext } from "node:test";
import { promisify } from "node:util";
import type { Browser, Page } from "playwright-core";
import { ARTIFACTS, browserMissing, CANVAS_STATS, launchBrowser, until, type CanvasStats } from "./browser.js";
import { WebSocket } from "ws";
import { waitHealthy } from "../sdk/src/run.js";
import { skipLoudly } from "../runtime/test/fixtures/skip.js";
import { BOOT_TIMEOUT_MS, docker, e2eAvailable, MACHINE_IMAGE, progress, publishedPort, removeAll } from "./support.js";

const exec = promisify(execFile);
const NAME = `dm-${process.env.DEVMACHINES_IMAGE_TAG ?? "test"}-console`;
const TOKEN = "console-e2e-token-0123456789abcdef";
const PASSWORD = "correct horse";

/** Chromium is a Debian package (scripts/host-setup.sh installs it); without it the browser checks cannot run. */
function browserAvailable(t: TestContext): boolean {
  const reason = browserMissing();
  if (reason === undefined) return true;
  skipLoudly(t, reason);
  return false;
}

/** Everything the terminal holds, scrollback included, as text. */
const terminalText = (page: Page): Promise<string> =>
  page.evaluate(`(() => {
    const term = window.devmachinesTerminal;
    if (!term) return "";
    const buffer = term.buffer.active;
    const lines = [];
    for (let i = 0; i < buffer.length; i++) lines.push(buffer.getLine(i)?.translateToString(true) ?? "");
    return lines.join("\\n");
  })()`);

/** Polls the terminal until `pattern` shows (after `from` characters of it), or fails after `timeoutMs`. */
async function waitForTerminal(page: Page, pattern: RegExp, timeoutMs: number, from = 0): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const text = (await terminalText(page)).slice(from);
    if (pattern.test(text)) return text;
    // The guest gave up on its serial getty (udev did not announce ttyS0 within systemd's device
    // timeout, seen on a host loaded far beyond its cores): no prompt will come, say so now.
    if (/Dependency failed for .*serial-getty/.test(text)) {
      throw new Error(`the guest's serial getty did not start (its ttyS0 device unit timed out), so there is no login: prompt; the console shows:\n${text.slice(-2000)}`);
    }
    if (Date.now() > deadline) throw new Error(`the serial console did not show ${pattern} within ${timeoutMs / 1000}s; it shows:\n${text.slice(-2000)}`);
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

async function shoot(page: Page, file: string, selector?: string): Promise<void> {
  const path = join(ARTIFACTS, file);
  if (selector) await page.locator(selector).screenshot({ path });
  else await page.screenshot({ path });
  console.log(`  screenshot: ${path}`);
}

/** The HTTP status of a refused WebSocket upgrade, or "open" when it was accepted. */
function upgradeStatus(url: string, headers: Record<string, string>): Promise<number | "open" | "error"> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, { headers });
    ws.on("open", () => {
      resolve("open");
      ws.close();
    });
    ws.on("unexpected-response", (_request, response) => {
      resolve(response.statusCode ?? 0);
      response.resume();
    });
    ws.on("error", () => resolve("error"));
  });
}

describe("consoles in the browser", { concurrency: 1 }, () => {
  let base = "";
  let browser: Browser | undefined;
  let booted = false;

  before(async () => {
    await mkdir(ARTIFACTS, { recursive: true });
  });
  after(async () => {
    await browser?.close();
    await removeAll({ containers: [NAME] });
  });

  /** Starts the one machine of this file (the first test that needs it pays for the boot). */
  async function machine(t: TestContext): Promise<boolean> {
    if (!(await e2eAvailable(t)) || !browserAvailable(t)) return false;
    if (booted) return true;
    await removeAll({ containers: [NAME] });
    await docker([
      "run", "-d", "--name", NAME, "--device", "/dev/kvm",
      "-p", "127.0.0.1::22", "-p", "127.0.0.1::8080",
      "--env", "CPU=2", "--env", "MEMORY=1G", "--env", "STORAGE=6G", "--env", "USER=dev", "--env", `PASSWORD=${PASSWORD}`,
      "--env", "ACCEL=tcg", "--env", "CONSOLE_PORT=8080", "--env", `CONSOLE_TOKEN=${TOKEN}`,
      MACHINE_IMAGE,
    ]);
    booted = true;
    base = `http://127.0.0.1:${await publishedPort(NAME, 8080)}`;
    browser = await launchBrowser();
    // The server starts before QEMU: wait until it answers.
    for (let attempt = 0; attempt < 60; attempt++) {
      if (await fetch(`${base}/`).then(() => true, () => false)) break;
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
    return true;
  }

  test("without the right token: 401 on every page, and no WebSocket upgrade; a foreign Origin is refused", { timeout: 120_000 }, async (t) => {
    if (!(await machine(t))) return;
    for (const path of ["/", "/serial", "/vnc", "/assets/xterm/xterm.js"]) {
      assert.equal((await fetch(`${base}${path}`)).status, 401, `${path} without a token`);
      assert.equal((await fetch(`${base}${path}?token=wrong-token-0123456789`, { redirect: "manual" })).status, 401, `${path} with a wrong token`);
    }
    const ws = base.replace("http:", "ws:");
    for (const path of ["/ws/serial", "/ws/vnc"]) {
      assert.equal(await upgradeStatus(`${ws}${path}`, {}), 401, `${path} without a token`);
      assert.equal(await upgradeStatus(`${ws}${path}`, { authorization: "Bearer wrong-token-0123456789" }), 401, `${path} with a wrong token`);
      assert.equal(await upgradeStatus(`${ws}${path}`, { authorization: `Bearer ${TOKEN}`, origin: "http://evil.example" }), 403, `${path} from a foreign origin`);
      assert.equal(await upgradeStatus(`${ws}${path}`, { authorization: `Bearer ${TOKEN}`, origin: base }), "open", `${path} with the token`);
    }

    // In the browser: no token, a 401 page; a page of another origin cannot open the console's WebSocket.
    const page = await browser!.newPage();
    const refused = await page.goto(`${base}/serial`);
    assert.equal(refused?.status(), 401);
    await shoot(page, "01-no-token-401.png");
    const context = await browser!.newContext();
    const mine = await context.newPage();
    await mine.goto(`${base}/?token=${TOKEN}`); // the cookie is set in this context
    const foreign = await context.newPage();
    // A different origin (another port on the same host) holding the same cookie jar.
    await foreign.route("http://127.0.0.1:1/**", (route) => route.fulfill({ status: 200, contentType: "text/html", body: "<title>elsewhere</title>" }));
    await foreign.goto("http://127.0.0.1:1/");
    const outcome = await foreign.evaluate(
      (url) => new Promise<string>((resolve) => {
        const socket = new WebSocket(url);
        socket.onopen = () => resolve("open");
        socket.onerror = () => resolve("refused");
      }),
      `${ws}/ws/serial`,
    );
    assert.equal(outcome, "refused", "a page of another origin cannot use the console's cookie");
    await context.close();
    await page.close();
  });

  test("the serial console in xterm.js: the guest's login: prompt, and a command typed there gets the guest's answer", { timeout: BOOT_TIMEOUT_MS + 180_000 }, async (t) => {
    if (!(await machine(t))) return;
    const context = await browser!.newContext({ viewport: { width: 1100, height: 700 } });
    const page = await context.newPage();
    const response = await page.goto(`${base}/?token=${TOKEN}`);
    assert.equal(response?.status(), 200);
    assert.equal(new URL(page.url()).search, "", "the token is gone from the address bar");
    const cookies = await context.cookies(base);
    assert.ok(cookies.some((cookie) => cookie.httpOnly && cookie.value === TOKEN), "an HttpOnly cookie holds the token");
    await page.click('a[href="/serial"]');
    await page.waitForURL(`${base}/serial`);
    await waitForTerminal(page, /login: *$/m, BOOT_TIMEOUT_MS);
    await shoot(page, "02-serial-login-prompt.png");

    // Log in only after cloud-init has created the user; then a fresh prompt.
    const report = progress("console");
    await waitHealthy(NAME, { timeoutMs: BOOT_TIMEOUT_MS, intervalMs: 2000, onProgress: report });
    await page.click("#terminal");
    let from = (await terminalText(page)).length;
    await page.keyboard.press("Enter");
    await waitForTerminal(page, /login: *$/m, 60_000, from);
    from = (await terminalText(page)).length;
    await page.keyboard.type("dev");
    await page.keyboard.press("Enter");
    await waitForTerminal(page, /Password: *$/m, 60_000, from);
    await page.keyboard.type(PASSWORD);
    await page.keyboard.press("Enter");
    await waitForTerminal(page, /\$ *$/m, 60_000, from);

    // A second viewer at the same time: it sees what the first types, and may type too.
    const second = await context.newPage();
    await second.goto(`${base}/serial`);
    await waitForTerminal(second, /\$ *$/m, 30_000);
    from = (await terminalText(page)).length;
    await page.keyboard.type("echo \"answer=$((6*7)) from $(hostname)\"");
    await page.keyboard.press("Enter");
    const answer = await waitForTerminal(page, /^answer=42 from \S+/m, 60_000, from);
    assert.match(answer, /answer=42/);
    await waitForTerminal(second, /^answer=42 from \S+/m, 30_000);
    await second.click("#terminal");
    const secondFrom = (await terminalText(second)).length;
    await second.keyboard.type("echo typed-in-the-second-$((1+1))");
    await second.keyboard.press("Enter");
    await waitForTerminal(page, /^typed-in-the-second-2$/m, 60_000, from);
    await waitForTerminal(second, /^typed-in-the-second-2$/m, 60_000, secondFrom);
    await shoot(page, "03-serial-command-answered.png");
    await second.close();

    // `docker exec NAME devmachines console` attaches to the same console.
    const { stdout } = await exec("docker", ["exec", "-i", NAME, "sh", "-c", "(printf 'echo via-exec-$((2+3))\\r'; sleep 8) | devmachines console"], { timeout: 60_000 });
    assert.match(stdout, /via-exec-5/, "devmachines console reaches the guest's shell");
    await waitForTerminal(page, /^via-exec-5$/m, 30_000, from);
    await page.keyboard.type("exit");
    await page.keyboard.press("Enter");
    await context.close();
  });

  test("the screen in noVNC: connects through the WebSocket proxy and shows the guest's display", { timeout: BOOT_TIMEOUT_MS + 120_000 }, async (t) => {
    if (!(await machine(t))) return;
    const context = await browser!.newContext({ viewport: { width: 1100, height: 700 } });
    await context.setExtraHTTPHeaders({ authorization: `Bearer ${TOKEN}` });
    const page = await context.newPage();
    await page.goto(`${base}/vnc`);
    await until(page, `document.getElementById("status")?.textContent === "connected"`, 120_000);
    // The guest's text console (getty on tty1) draws light text on black: wait for some of it.
    const deadline = Date.now() + BOOT_TIMEOUT_MS;
    let stats: CanvasStats = { width: 0, height: 0, lit: 0, colours: 0 };
    for (;;) {
      stats = await page.evaluate<CanvasStats>(CANVAS_STATS);
      if (stats.lit > 200 && stats.colours > 1) break;
      if (Date.now() > deadline) break;
      await new Promise((resolve) => setTimeout(resolve, 2000));
    }
    await shoot(page, "04-vnc-screen.png", "#screen canvas");
    console.log(`  noVNC canvas ${stats.width}x${stats.height}: ${stats.lit} lit pixels, ${stats.colours} colours`);
    assert.ok(stats.width >= 640 && stats.height >= 400, `the canvas has the guest's resolution (${stats.width}x${stats.height})`);
    assert.ok(stats.lit > 200 && stats.colours > 1, "the canvas shows something: not blank");
    await context.close();
  });
});
