/**
 * The classes of hostile input from the adversarial review (shared notes, bad-inputs.md),
 * each tested as a class through the launcher's configuration parser: refused with the
 * variable named, every problem at once, nothing secret echoed.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { formatIssues, parseConfig, type ParseResult } from "../src/config/schema.js";
import { ED25519, RSA } from "./fixtures/keys.js";

const base = { CPU: "2", MEMORY: "1G", STORAGE: "20G", USER: "dev", SSH_KEYS: ED25519, HOSTNAME: "box" };
const noFiles = () => undefined;

function issuesOf(result: ParseResult): string {
  assert.equal(result.ok, false, "expected the configuration to be refused");
  return result.ok ? "" : formatIssues(result.issues);
}

/** Every way a key reaches the launcher, each with the variable its problems are reported under. */
function keyFields(key: string): Array<{ variable: RegExp; env: Record<string, string | undefined>; files: Record<string, string> }> {
  return [
    { variable: /^ {2}SSH_KEYS\[0\] /m, env: { SSH_KEYS: key }, files: {} },
    { variable: /^ {2}SSH_KEYS_FILE\[0\] /m, env: { SSH_KEYS: undefined, SSH_KEYS_FILE: "/k" }, files: { "/k": `# mine\n${key}\n` } },
    { variable: /^ {2}USERS\[0\]\.sshKeys\[0\] /m, env: { USER: undefined, SSH_KEYS: undefined, USERS: JSON.stringify([{ name: "ann", sshKeys: [key] }]) }, files: {} },
    { variable: /^ {2}USERS_FILE\[0\]\.sshKeys\[0\] /m, env: { USER: undefined, SSH_KEYS: undefined, USERS_FILE: "/u" }, files: { "/u": JSON.stringify([{ name: "ann", sshKeys: [key] }]) } },
  ];
}

test("3: a key with a line break (or any control character) is refused in every key field", () => {
  const [type, data] = ED25519.split(" ");
  const smuggled = [
    `${ED25519}\r${RSA}`,
    `${type} ${data} comment\u2028${RSA}`,
    `${type} ${data}\u0085${RSA}`,
    `${type} ${data} c\u0000${RSA}`,
    `\r${ED25519}`,
  ];
  for (const key of smuggled) {
    for (const field of keyFields(key)) {
      const text = issuesOf(parseConfig({ ...base, ...field.env }, (path) => field.files[path]));
      assert.match(text, field.variable, `${JSON.stringify(key)} via ${field.variable}`);
      assert.match(text, /exactly one key line/);
    }
  }
  // SSH_KEYS itself: two keys need a comma, a line break inside SSH_KEYS makes one bad entry.
  assert.match(issuesOf(parseConfig({ ...base, SSH_KEYS: `${ED25519}\n${RSA}` }, noFiles)), /SSH_KEYS\[0\] contains a line break/);
  assert.match(issuesOf(parseConfig({ ...base, SSH_KEYS: `${ED25519}\r` }, noFiles)), /SSH_KEYS\[0\] contains a line break/);
  // A keys file may end its lines with CRLF (written on Windows): that is one line each.
  assert.ok(parseConfig({ ...base, SSH_KEYS: undefined, SSH_KEYS_FILE: "/k" }, (path) => (path === "/k" ? `${ED25519}\r\n${RSA}\r\n` : undefined)).ok);
});

test("4: problems with keys never echo the line, which may be a secret put there by mistake", () => {
  const secret = "Correct-Horse-Battery-Staple-42";
  for (const line of [secret, `password: ${secret}`, `ssh-ed25519 ${secret}`, `${secret} ${ED25519.split(" ")[1]}`, "-----BEGIN OPENSSH PRIVATE KEY-----"]) {
    for (const field of keyFields(line)) {
      const text = issuesOf(parseConfig({ ...base, ...field.env }, (path) => field.files[path]));
      assert.match(text, field.variable);
      assert.equal(text.includes(secret), false, text);
      assert.equal(text.includes("BEGIN"), false, text);
    }
  }
});
