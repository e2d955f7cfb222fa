/** CONSOLE_PORT / CONSOLE_TOKEN(_FILE), and what they add to QEMU's command line. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { formatIssues, parseConfig, type ParseResult } from "../src/config/schema.js";
import { parseVnc } from "../src/config/vnc.js";
import { qemuArgs, runPaths } from "../src/plan/qemu.js";
import { ED25519 } from "./fixtures/keys.js";

const base = { CPU: "2", MEMORY: "1G", STORAGE: "20G", USER: "dev", SSH_KEYS: ED25519, HOSTNAME: "box" };
const noFiles = () => undefined;
const TOKEN = "s3cret-token-0123456789";

function issuesOf(result: ParseResult): string {
  assert.equal(result.ok, false, "expected the configuration to be refused");
  return result.ok ? "" : formatIssues(result.issues);
}

test("CONSOLE_PORT turns the console server on; the token comes from CONSOLE_TOKEN or CONSOLE_TOKEN_FILE", () => {
  const plain = parseConfig({ ...base, CONSOLE_PORT: "8080" }, noFiles);
  assert.ok(plain.ok);
  assert.deepEqual(plain.config.console, { port: 8080 });
  const given = parseConfig({ ...base, CONSOLE_PORT: "8080", CONSOLE_TOKEN: TOKEN }, noFiles);
  assert.ok(given.ok);
  assert.deepEqual(given.config.console, { port: 8080, token: TOKEN });
  const fromFile = parseConfig({ ...base, CONSOLE_PORT: "8080", CONSOLE_TOKEN_FILE: "/run/secrets/console" }, (path) =>
    path === "/run/secrets/console" ? `${TOKEN}\n` : undefined,
  );
  assert.ok(fromFile.ok);
  assert.deepEqual(fromFile.config.console, { port: 8080, token: TOKEN }, "the file's final newline is dropped");
  const off = parseConfig(base, noFiles);
  assert.ok(off.ok);
  assert.equal(off.config.console, undefined);
});

test("bad console settings are refused, naming the variable, never echoing the token", () => {
  const text = issuesOf(parseConfig({ ...base, CONSOLE_PORT: "70000", CONSOLE_TOKEN: "short secret" }, noFiles));
  assert.match(text, /CONSOLE_PORT="70000" must be a port number from 1 to 65535/);
  assert.match(text, /CONSOLE_TOKEN must be at least 16 characters long/);
  assert.match(text, /CONSOLE_TOKEN may hold only letters, digits/);
  assert.doesNotMatch(text, /short secret/);
  assert.match(issuesOf(parseConfig({ ...base, CONSOLE_PORT: "22" }, noFiles)), /CONSOLE_PORT="22" is container port tcp\/22, which already forwards/);
  assert.match(issuesOf(parseConfig({ ...base, CONSOLE_PORT: "8000", PORTS: "8000:80" }, noFiles)), /CONSOLE_PORT="8000" is container port tcp\/8000/);
  assert.match(issuesOf(parseConfig({ ...base, CONSOLE_TOKEN: TOKEN }, noFiles)), /CONSOLE_TOKEN is set without CONSOLE_PORT/);
  assert.match(
    issuesOf(parseConfig({ ...base, CONSOLE_PORT: "8080", CONSOLE_TOKEN: TOKEN, CONSOLE_TOKEN_FILE: "/x" }, () => TOKEN)),
    /CONSOLE_TOKEN_FILE is set together with CONSOLE_TOKEN/,
  );
  assert.match(issuesOf(parseConfig({ ...base, CONSOLE_PORT: "8080", CONSOLE_TOKEN_FILE: "/missing" }, noFiles)), /CONSOLE_TOKEN_FILE names \/missing, which does not exist/);
});

test("the console adds a VGA card and QEMU's VNC on a Unix socket in the run folder, beside a raw VNC", () => {
  const paths = runPaths("/run/devmachines");
  const spec = (text: string) => {
    const parsed = parseVnc(text);
    assert.ok(parsed.ok);
    return parsed.spec;
  };
  const args = ({ vnc, ...config }: { vnc?: string; console?: { port: number } }) =>
    qemuArgs(
      { config: { cpu: 1, memoryBytes: 1024 ** 3, hostname: "box", ...config, ...(vnc !== undefined && { vnc: spec(vnc) }) }, overlayPath: "/d/o.qcow2", networkArgs: [], paths },
      "tcg",
    );
  const tail = (argv: string[]) => argv.slice(argv.indexOf("-monitor") + 2);
  assert.deepEqual(tail(args({})), ["-display", "none"]);
  assert.deepEqual(tail(args({ console: { port: 8080 } })), ["-device", "VGA", "-vnc", "unix:/run/devmachines/vnc.sock,id=devmachines-console"]);
  assert.deepEqual(tail(args({ vnc: ":0", console: { port: 8080 } })), [
    "-device", "VGA", "-vnc", ":0", "-vnc", "unix:/run/devmachines/vnc.sock,id=devmachines-console",
  ]);
  assert.deepEqual(tail(args({ vnc: ":1" })), ["-device", "VGA", "-vnc", ":1"]);
  assert.equal(paths.serialSocket, "/run/devmachines/serial.sock");
});
