/**
 * What the browser tests share: Debian's Chromium (scripts/host-setup.sh installs it) driven
 * by playwright-core, and the folder their screenshots are kept in.
 */
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { chromium, type Browser, type Page } from "playwright-core";

export const CHROMIUM = process.env.DEVMACHINES_CHROMIUM ?? "/usr/bin/chromium";
/** Screenshots, kept as test artefacts (the tests print each path). */
export const ARTIFACTS = fileURLToPath(new URL("../.cache/artifacts/console/", import.meta.url));

/** Why the browser tests cannot run here, or undefined when they can. */
export function browserMissing(): string | undefined {
  return existsSync(CHROMIUM) ? undefined : `no Chromium at ${CHROMIUM} (apt-get install chromium, or scripts/host-setup.sh)`;
}

export function launchBrowser(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox", "--headless=new"] });
}

/**
 * Polls a page expression until it is truthy. Not page.waitForFunction: that evaluates with
 * `new Function` in the page, which the console's Content-Security-Policy rightly forbids.
 */
export async function until(page: Page, expression: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await page.evaluate(expression))) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000}s waiting for ${expression}`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

/** Lit pixels (brighter than near-black) of the noVNC canvas, and its size. */
export const CANVAS_STATS = `(() => {
  const canvas = document.querySelector("#screen canvas");
  if (!canvas || canvas.width === 0) return { width: 0, height: 0, lit: 0, colours: 0 };
  const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let lit = 0;
  const colours = new Set();
  for (let i = 0; i < data.length; i += 4) {
    if (data[i] + data[i + 1] + data[i + 2] > 96) lit++;
    colours.add((data[i] << 16) | (data[i + 1] << 8) | data[i + 2]);
  }
  return { width: canvas.width, height: canvas.height, lit, colours: colours.size };
})()`;
export type CanvasStats = { width: number; height: number; lit: number; colours: number };
