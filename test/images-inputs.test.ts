/**
 * The runtime image's inputs, without Docker: every path the Dockerfile COPYs from the build
 * context must pass .dockerignore's allow-list (or the build misses it) and be among the inputs
 * scripts/images.ts hashes to decide whether the image is current (or a change to it would not
 * rebuild the image). images.ts reads its inputs from .dockerignore; this holds it to that.
 */
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { test } from "node:test";
import { runtimeInputs } from "../scripts/images.js";

const root = new URL("../", import.meta.url);
const read = (path: string) => readFileSync(new URL(path, root), "utf8");

/** The build-context sources of the Dockerfile's COPY instructions (not `COPY --from=stage`). */
export function copySources(dockerfile: string): string[] {
  const instructions = dockerfile.replace(/\\\n/g, " ").split("\n").map((line) => line.trim());
  const sources: string[] = [];
  for (const line of instructions) {
    const match = /^(?:COPY|ADD)\s+(.*)$/i.exec(line);
    if (!match) continue;
    const words = match[1]!.split(/\s+/).filter(Boolean);
    if (words.some((word) => word.startsWith("--from="))) continue;
    const paths = words.filter((word) => !word.startsWith("--"));
    sources.push(...paths.slice(0, -1).map((path) => path.replace(/^\.\//, "").replace(/\/+$/, "")));
  }
  return sources;
}

/** `path` is `entry` or lies inside it. */
const covers = (entry: string, path: string) => path === entry || path.startsWith(`${entry}/`);

test("every path the Dockerfile COPYs is in .dockerignore's allow-list and among the inputs images.ts hashes", () => {
  const sources = copySources(read("Dockerfile"));
  assert.ok(sources.length >= 5 && sources.includes("runtime/src"), `found the COPY sources: ${sources.join(", ")}`);
  const allowed = read(".dockerignore")
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => line.startsWith("!"))
    .map((line) => line.slice(1).replace(/\/+$/, ""));
  const inputs = runtimeInputs();
  for (const source of sources) {
    assert.ok(allowed.some((entry) => covers(entry, source)), `${source} is COPYed but .dockerignore leaves it out of the build context`);
    assert.ok(inputs.some((entry) => covers(entry, source)), `${source} is COPYed but scripts/images.ts does not hash it: a change would not rebuild the image`);
  }
  for (const entry of ["Dockerfile", ".dockerignore", ...allowed]) assert.ok(inputs.includes(entry), `images.ts hashes ${entry}`);
  for (const entry of inputs) assert.ok(existsSync(new URL(entry, root)), `${entry} exists`);
});

test("copySources reads the forms the Dockerfile uses and skips stage copies", () => {
  assert.deepEqual(
    copySources("FROM x AS build\nCOPY a.json b.json ./\nCOPY --chown=0:0 runtime/src runtime/src\nCOPY --from=build /src/dist /opt/dist\nADD tpl/ \\\n  /opt/tpl\n"),
    ["a.json", "b.json", "runtime/src", "tpl"],
  );
});
