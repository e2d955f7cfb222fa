import assert from "node:assert/strict";
import { test } from "node:test";
import { splitSshKeys, sshKeyProblem } from "../src/config/sshKeys.js";
import { ECDSA, ECDSA384, ECDSA521, ED25519, RSA, RSA1024 } from "./fixtures/keys.js";

const REAL = [ED25519, RSA, ECDSA, ECDSA384, ECDSA521, RSA1024];

/** A wire-format string: uint32 length, then the bytes. */
const sshString = (bytes: Buffer | string) => {
  const data = typeof bytes === "string" ? Buffer.from(bytes) : bytes;
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  return Buffer.concat([length, data]);
};
const withBlob = (key: string, blob: Buffer) => `${key.split(" ")[0]} ${blob.toString("base64")}`;
const blobOf = (key: string) => Buffer.from(key.split(" ")[1]!, "base64");

test("real keys from ssh-keygen are accepted, with or without a comment", () => {
  for (const key of [...REAL, ED25519.split(" ").slice(0, 2).join(" "), `${ED25519}\twith\ttabs`]) assert.equal(sshKeyProblem(key), undefined, key);
  // A security key's blob (no fixture: it needs the hardware) built by hand: type, 32-byte key, application.
  const sk = Buffer.concat([sshString("sk-ssh-ed25519@openssh.com"), sshString(Buffer.alloc(32, 7)), sshString("ssh:")]);
  assert.equal(sshKeyProblem(`sk-ssh-ed25519@openssh.com ${sk.toString("base64")}`), undefined);
  assert.match(sshKeyProblem(`sk-ssh-ed25519@openssh.com ${sk.subarray(0, -4).toString("base64")}`)!, /truncated/);
});

test("malformed keys are refused with the reason", () => {
  const [, data] = ED25519.split(" ");
  assert.match(sshKeyProblem("ssh-foo AAAA")!, /does not start with a known key type/);
  assert.match(sshKeyProblem("ssh-ed25519")!, /not an OpenSSH public key/);
  assert.match(sshKeyProblem(`ssh-ed25519 ${data!.slice(0, -1)}`)!, /invalid base64/);
  assert.match(sshKeyProblem(`ssh-rsa ${data}`)!, /not a ssh-rsa key/);
  assert.match(sshKeyProblem(`ssh-dss ${data}`)!, /DSA/);
  assert.match(sshKeyProblem("not a key at all")!, /known key type|not an OpenSSH/);
  assert.match(sshKeyProblem("-----BEGIN OPENSSH PRIVATE KEY-----")!, /private key/);
  assert.match(sshKeyProblem(`command="/bin/sh" ${ED25519}`)!, /options and certificates are not accepted/);
});

test("every truncation and every extension of a real key blob is refused", () => {
  for (const key of REAL) {
    const blob = blobOf(key);
    for (let length = 0; length < blob.length; length++) {
      const problem = sshKeyProblem(withBlob(key, blob.subarray(0, length)));
      assert.ok(problem, `${key.split(" ")[0]} cut to ${length} of ${blob.length} bytes was accepted`);
    }
    assert.match(sshKeyProblem(withBlob(key, Buffer.concat([blob, Buffer.from([0])])))!, /extra bytes/);
  }
  // A blob that claims a longer field than it holds.
  const lying = Buffer.concat([sshString("ssh-ed25519"), Buffer.from([0, 0, 0, 33]), Buffer.alloc(32)]);
  assert.match(sshKeyProblem(`ssh-ed25519 ${lying.toString("base64")}`)!, /truncated/);
  // RSA below OpenSSH's minimum (768 bits), well-formed otherwise.
  const small = Buffer.concat([sshString("ssh-rsa"), sshString(Buffer.from([1, 0, 1])), sshString(Buffer.concat([Buffer.from([0]), Buffer.alloc(96, 0xff)]))]);
  assert.match(sshKeyProblem(`ssh-rsa ${small.toString("base64")}`)!, /under 1024 bits/);
});

test("a key is exactly one line: every line break or control character is refused, wherever it is", () => {
  const breaks = ["\n", "\r", "\r\n", "\u000b", "\u000c", "\u0000", "\u0085", "\u2028", "\u2029", "\u001b"];
  for (const br of breaks) {
    const shown = JSON.stringify(br);
    // In the comment, between two keys, between type and data, and at either end.
    assert.match(sshKeyProblem(`${ED25519}${br}${RSA}`)!, /exactly one key line/, `after the comment: ${shown}`);
    assert.match(sshKeyProblem(`${ED25519.split(" ").slice(0, 2).join(" ")}${br}ssh-ed25519 AAAA`)!, /exactly one key line/, `after the data: ${shown}`);
    assert.match(sshKeyProblem(`ssh-ed25519${br}${ED25519.split(" ")[1]}`)!, /exactly one key line/, `as a separator: ${shown}`);
    assert.match(sshKeyProblem(`${br}${ED25519}`)!, /exactly one key line/, `leading: ${shown}`);
    assert.match(sshKeyProblem(`${ED25519}${br}`)!, /exactly one key line/, `trailing: ${shown}`);
  }
});

test("only ASCII spaces and tabs separate the fields, as sshd reads them", () => {
  const [type, data] = ED25519.split(" ");
  for (const space of ["\u00a0", "\u2003", "\u3000", "\ufeff", "\u200b"]) {
    assert.ok(sshKeyProblem(`${type}${space}${data}`), `separator U+${space.codePointAt(0)!.toString(16)}`);
  }
  assert.equal(sshKeyProblem(`  ${ED25519}  `), undefined, "surrounding ASCII blanks are fine");
});

test("problems never quote the key or anything else from the line", () => {
  const secret = "Hunter2-Secret-Canary";
  for (const text of [secret, `${secret} AAAA`, `ssh-ed25519 ${secret}`, `ssh-ed25519 AAAA\n${secret}`, `${ED25519.split(" ").slice(0, 2).join(" ")}X ${secret}`]) {
    const problem = sshKeyProblem(text);
    assert.ok(problem, text);
    assert.equal(problem.includes(secret), false, problem);
    assert.equal(problem.includes("AAAA"), false, problem);
  }
});

test("lists split on commas (SSH_KEYS) or lines (SSH_KEYS_FILE)", () => {
  assert.deepEqual(splitSshKeys(`${ED25519}, ${RSA},`, ","), [ED25519, RSA]);
  assert.deepEqual(splitSshKeys(`# mine\n${ED25519}\r\n\n${RSA}\n`, "\n"), [ED25519, RSA]);
  // A line break inside one SSH_KEYS entry stays inside it, so the entry is refused as a whole.
  const [entry] = splitSshKeys(`${ED25519}\n${RSA}`, ",");
  assert.ok(sshKeyProblem(entry!));
  // A lone CR inside a file line stays in the line too.
  const [line] = splitSshKeys(`${ED25519}\r${RSA}\n`, "\n");
  assert.ok(sshKeyProblem(line!));
});
