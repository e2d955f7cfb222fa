import assert from "node:assert/strict";
import { test } from "node:test";
import { splitSshKeys, sshKeyProblem } from "../src/config/sshKeys.js";
import { ECDSA, ED25519, RSA } from "./fixtures/keys.js";

test("real keys from ssh-keygen are accepted", () => {
  for (const key of [ED25519, RSA, ECDSA, ED25519.split(" ").slice(0, 2).join(" ")]) assert.equal(sshKeyProblem(key), undefined, key);
});

test("malformed keys are refused with the reason", () => {
  const [, data] = ED25519.split(" ");
  assert.match(sshKeyProblem("ssh-foo AAAA")!, /unknown key type "ssh-foo"/);
  assert.match(sshKeyProblem("ssh-ed25519")!, /not an OpenSSH public key/);
  assert.match(sshKeyProblem(`ssh-ed25519 ${data!.slice(0, -1)}`)!, /invalid base64/);
  assert.match(sshKeyProblem(`ssh-rsa ${data}`)!, /not a ssh-rsa key/);
  assert.match(sshKeyProblem(`ssh-dss ${data}`)!, /DSA/);
  assert.match(sshKeyProblem("not a key at all")!, /unknown key type|not an OpenSSH/);
});

test("lists split on commas (SSH_KEYS) or lines (SSH_KEYS_FILE)", () => {
  assert.deepEqual(splitSshKeys(`${ED25519}, ${RSA},`, ","), [ED25519, RSA]);
  assert.deepEqual(splitSshKeys(`# mine\n${ED25519}\r\n\n${RSA}\n`, "\n"), [ED25519, RSA]);
});
