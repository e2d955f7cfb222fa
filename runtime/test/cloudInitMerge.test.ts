/**
 * Bad-inputs class 5: USER_DATA must not remove the launcher's users, turn on password or
 * root login, or hide readiness, whatever merge rules it asks for. Checked with the guest's
 * own cloud-init merging the seed exactly as the guest does (fixtures/cloudInitMerge.ts).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { parseConfig } from "../src/config/schema.js";
import { parseUserData } from "../src/config/userData.js";
import { planCloudInit, READY_MARKER } from "../src/plan/cloudInit.js";
import { realCloudInit } from "./fixtures/cloudInitMerge.js";
import { ED25519, RSA } from "./fixtures/keys.js";

const base = { CPU: "2", MEMORY: "1G", STORAGE: "20G", USER: "dev", SSH_KEYS: ED25519, HOSTNAME: "box" };

function seed(userData: string, env: Record<string, string> = {}) {
  const result = parseConfig({ ...base, ...env, USER_DATA: userData }, () => undefined);
  assert.ok(result.ok, result.ok ? "" : JSON.stringify(result.issues));
  return planCloudInit(result.config, { version: 2 }, "cd".repeat(32));
}

/** What the launcher's users, keys and readiness must look like after the merge. */
function assertLauncherWins(config: Record<string, unknown>, label: string) {
  const users = config.users as Array<{ name: string; ssh_authorized_keys: string[]; lock_passwd: boolean }>;
  assert.deepEqual(users.map((user) => user.name), ["dev"], `${label}: users`);
  assert.deepEqual(users[0]!.ssh_authorized_keys, [ED25519], `${label}: keys`);
  assert.equal(users[0]!.lock_passwd, true, `${label}: password stays locked`);
  assert.equal(config.ssh_pwauth, false, `${label}: no password login`);
  assert.equal(config.disable_root, true, `${label}: no root login`);
  assert.match(String(config.final_message), new RegExp(READY_MARKER), `${label}: readiness`);
  assert.equal(config.hostname, "box", `${label}: host name`);
}

const HOSTILE_MERGES = [
  "", // cloud-init's own default rules
  "merge_how: dict(replace)+list(replace)+str()\n",
  "merge_how:\n  - name: dict\n    settings: [replace]\n  - name: list\n    settings: [replace]\n",
  "merge_type: dict(replace,recurse_list)+list(prepend)+str(append)\n",
  "merge_how: dict(no_replace)+list(append)+str()\n",
];
const HOSTILE_KEYS = [
  "users: []\n",
  "users: [default]\n",
  `users:\n  - name: dev\n    lock_passwd: false\n    plain_text_passwd: x\n    ssh_authorized_keys: ["${RSA}"]\n  - name: intruder\n    sudo: ALL=(ALL) NOPASSWD:ALL\n`,
  "ssh_pwauth: true\ndisable_root: false\n",
  "final_message: nothing to see\n",
  "hostname: other\nfqdn: other.example\n",
];

test("5: the launcher's users, keys, password and root login, host name and readiness win over any USER_DATA, in the guest's real cloud-init", async (t) => {
  const cloudInit = await realCloudInit(t);
  if (!cloudInit) return;
  const cases = HOSTILE_MERGES.flatMap((rules) => HOSTILE_KEYS.map((keys) => `${rules}${keys}packages: [htop]\nruncmd:\n  - [touch, /tmp/ran]\n`));
  const results = await cloudInit.merge(cases.map((userData) => seed(userData).userData));
  cases.forEach((userData, index) => {
    const merged = results[index]!;
    const label = JSON.stringify(userData);
    assert.deepEqual(merged.failed, [], label);
    assertLauncherWins(merged.config, label);
    // What USER_DATA is for still arrives.
    assert.deepEqual(merged.config.packages, ["htop"], `${label}: packages`);
    assert.deepEqual(merged.config.runcmd, [["touch", "/tmp/ran"]], `${label}: runcmd`);
  });
});

test("5: with no USER_DATA, or a script, the guest's cloud-init sees the launcher's cloud-config unchanged", async (t) => {
  const cloudInit = await realCloudInit(t);
  if (!cloudInit) return;
  const plain = planCloudInit((parseConfig(base, () => undefined) as { config: Parameters<typeof planCloudInit>[0] }).config, { version: 2 }, "cd".repeat(32));
  const [merged, script] = await cloudInit.merge([plain.userData, seed("#!/bin/sh\necho hi\n").userData]);
  assertLauncherWins(merged!.config, "no USER_DATA");
  assert.match(merged!.version, /^\d+\.\d+/);
  assertLauncherWins(script!.config, "script");
});

test("5: each launcher key USER_DATA sets is named in a warning, and merge rules too", () => {
  const files = seed("merge_how: dict(replace)+list()+str()\nusers: []\nssh_pwauth: true\nfinal_message: x\npackages: [htop]\n");
  const warnings = files.warnings.join("\n");
  assert.match(warnings, /USER_DATA sets merge_how: it applies within USER_DATA only/);
  for (const key of ["users", "ssh_pwauth", "final_message"]) assert.match(warnings, new RegExp(`USER_DATA sets ${key}, which the launcher sets itself`));
  assert.doesNotMatch(warnings, /packages/);
  assert.deepEqual(seed("packages: [htop]\n").warnings, []);
});

test("12: USER_DATA's YAML is refused exactly when the guest's cloud-init YAML loader would drop it", async (t) => {
  const cloudInit = await realCloudInit(t);
  if (!cloudInit) return;
  const samples = [
    "a: !!str 1", "a: !!binary aGk=", "a: !!int '3'", "a: !!float '1.5'", "a: !!bool yes", "a: !!null ''", "a: !!set {x}",
    "a: !!timestamp 2020-01-01", "a: !!omap [{x: 1}]", "a: !!pairs [{x: 1}]", "a: !!seq [1]", "a: !!map {x: 1}",
    "a: !<tag:yaml.org,2002:str> x", "<<: {a: 1}\nb: 2", "x: &a [1]\ny: *a",
    "a: !custom x", "a: !!foo x", "a: !!python/unicode x", "a: !!python/object:os.system x", "a: !!python/name:os.system ''",
    "a: !!value x", "a: !!merge x", "a: !<tag:example.com,2000:x> y", "runcmd: [*nope]", "a: [unclosed",
  ];
  const loads = await cloudInit.loads(samples);
  samples.forEach((sample, index) => {
    assert.equal(parseUserData(sample).ok, loads[index], `${JSON.stringify(sample)}: cloud-init ${loads[index] ? "reads" : "refuses"} it`);
  });
});
