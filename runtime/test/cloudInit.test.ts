import assert from "node:assert/strict";
import { test } from "node:test";
import { verify } from "unixcrypt";
import { parse } from "yaml";
import type { LauncherConfig } from "../src/config/schema.js";
import { planCloudInit, READY_MARKER } from "../src/plan/cloudInit.js";
import { ED25519 } from "./fixtures/keys.js";

/** A fixed salt key, as the launcher keeps one per disk. */
const SALT_KEY = "5a".repeat(32);

const network = { version: 2, ethernets: { nic0: { match: { macaddress: "52:54:00:12:34:56" }, dhcp4: true } } };

function config(overrides: Partial<LauncherConfig> = {}): LauncherConfig {
  return {
    cpu: 2, memoryBytes: 1024 ** 3, storageBytes: 20 * 1024 ** 3,
    users: [{ name: "dev", sshKeys: [ED25519], sudo: true }],
    network: "NAT", ports: [], dns: [], accel: "tcg", hostname: "box",
    baseImage: "/images/base.qcow2", disksDir: "/var/lib/devmachines", ephemeral: false, graceSeconds: 60, onStop: "poweroff", snapshot: "auto", readyTimeoutSeconds: 600,
    ...overrides,
  };
}

// Values that would break naive YAML templating: quotes, newlines, ": ", "#", a leading "-", braces, anchors, tags.
const HOSTILE = [
  'pa"ss\'word',
  "line1\nline2: injected\n- root",
  "key: value # comment",
  "- leading dash",
  "{flow: mapping}",
  "&anchor *alias !!binary",
  "tab\there \\ backslash",
  "ünïcødé \u2028 separator",
  "'single' \"double\"",
  "yes",
  "null",
  "0x1F",
];

test("hostile values come back from the YAML exactly as data", () => {
  for (const hostile of HOSTILE) {
    const files = planCloudInit(
      config({
        hostname: hostile,
        users: [{ name: hostile, password: hostile, sshKeys: [`${ED25519.split(" ").slice(0, 2).join(" ")} ${hostile}`], sudo: true },
                { name: "second", passwordHash: hostile, sshKeys: [], sudo: false }],
      }),
      network,
      SALT_KEY,
    );
    assert.match(files.userData, /^#cloud-config\n/);
    const userData = parse(files.userData);
    assert.equal(userData.hostname, hostile);
    assert.equal(userData.fqdn, hostile);
    assert.equal(userData.users.length, 2, `no user was injected by ${JSON.stringify(hostile)}`);
    assert.equal(userData.users[0].name, hostile);
    assert.equal(userData.users[0].plain_text_passwd, undefined, "no plaintext password key");
    assert.match(userData.users[0].hashed_passwd, /^\$6\$[./0-9A-Za-z]{16}\$[./0-9A-Za-z]{86}$/);
    assert.equal(verify(hostile, userData.users[0].hashed_passwd), true, "the hash verifies against the password");
    assert.equal(userData.users[0].ssh_authorized_keys[0].endsWith(` ${hostile}`), true);
    assert.equal(userData.users[1].hashed_passwd, hostile);
    // The password appears nowhere else: not in user-data (the name and key comment carry the same text, so check the rest).
    const withoutPassword = planCloudInit(
      config({ hostname: "box", users: [{ name: "dev", password: hostile, sshKeys: [ED25519], sudo: true }] }),
      network,
      SALT_KEY,
    );
    for (const text of [withoutPassword.userData, withoutPassword.metaData, withoutPassword.networkConfig]) {
      assert.equal(text.includes(hostile), false, `plaintext ${JSON.stringify(hostile)} leaked`);
      assert.equal(text.includes(JSON.stringify(hostile)), false);
    }
    assert.deepEqual(Object.keys(userData).sort(), [
      "disable_root", "final_message", "fqdn", "growpart", "hostname", "manage_etc_hosts", "preserve_hostname",
      "resize_rootfs", "ssh_deletekeys", "ssh_pwauth", "users",
    ]);
    const metaData = parse(files.metaData);
    assert.equal(metaData["local-hostname"], hostile);
    assert.equal(metaData["instance-id"], files.instanceId);
  }
});

test("users get sudo, locked or open passwords and keys as asked", () => {
  const userData = parse(
    planCloudInit(
      config({ users: [{ name: "dev", sshKeys: [ED25519], sudo: true }, { name: "ops", password: "pw", sshKeys: [], sudo: false }] }),
      network,
      SALT_KEY,
    ).userData,
  );
  assert.equal(userData.ssh_pwauth, true);
  assert.equal(userData.ssh_deletekeys, false, "host keys survive a changed configuration");
  assert.deepEqual(userData.users[0], { name: "dev", shell: "/bin/bash", lock_passwd: true, sudo: "ALL=(ALL) NOPASSWD:ALL", ssh_authorized_keys: [ED25519] });
  const { hashed_passwd: opsHash, ...ops } = userData.users[1];
  assert.deepEqual(ops, { name: "ops", shell: "/bin/bash", lock_passwd: false, ssh_authorized_keys: [] });
  assert.match(opsHash, /^\$6\$/);
  assert.equal(verify("pw", opsHash), true);
  assert.match(userData.final_message, new RegExp(`^${READY_MARKER} `));
  assert.equal(parse(planCloudInit(config(), network, SALT_KEY).userData).ssh_pwauth, false, "no password, no password login");
});

test("network-config is the network plan, as YAML", () => {
  assert.deepEqual(parse(planCloudInit(config(), network, SALT_KEY).networkConfig), network);
});

test("the instance-id follows what the guest receives, and only that", () => {
  const id = (overrides: Partial<LauncherConfig>, net: object = network) => planCloudInit(config(overrides), net, SALT_KEY).instanceId;
  assert.equal(id({}), id({}), "stable for the same configuration");
  assert.equal(id({}), id({ storageBytes: 40 * 1024 ** 3, cpu: 4, memoryBytes: 2 * 1024 ** 3 }), "hardware changes keep the instance");
  assert.notEqual(id({}), id({ hostname: "other" }));
  assert.notEqual(id({}), id({ users: [{ name: "dev", password: "new", sshKeys: [ED25519], sudo: true }] }));
  const withPassword = (password: string) => id({ users: [{ name: "dev", password, sshKeys: [ED25519], sudo: true }] });
  assert.equal(withPassword("new"), withPassword("new"), "a hashed password keeps the instance across restarts (deterministic salt)");
  assert.notEqual(withPassword("new"), withPassword("newer"), "a changed password is a new instance");
  assert.notEqual(id({}), id({}, { ...network, ethernets: { nic0: { match: { macaddress: "52:54:00:00:00:01" }, dhcp4: true } } }));
  assert.notEqual(id({}), id({ userData: { kind: "cloud-config", text: "#cloud-config\nruncmd: [[true]]\n" } }));
  assert.match(id({}), /^devmachines-[0-9a-f]{16}$/);
});

function mimeParts(text: string): Array<{ headers: string; body: string }> {
  const boundary = /boundary="([^"]+)"/.exec(text)![1]!;
  return text
    .split(`--${boundary}`)
    .slice(1, -1)
    .map((chunk) => {
      // The line break before a boundary belongs to the boundary (RFC 2046).
      const [headers, ...body] = chunk.replace(/^\n/, "").replace(/\n$/, "").split("\n\n");
      return { headers: headers!, body: body.join("\n\n") };
    });
}

test("USER_DATA joins as the first MIME part; the launcher's comes last and replaces the keys it sets", () => {
  const extra = "#cloud-config\nwrite_files:\n  - path: /etc/motd\n    content: hello\nruncmd:\n  - [touch, /tmp/ran]\n";
  const files = planCloudInit(config({ userData: { kind: "cloud-config", text: extra } }), network, SALT_KEY);
  assert.match(files.userData, /^Content-Type: multipart\/mixed; boundary="devmachines-[0-9a-f]+"/);
  const parts = mimeParts(files.userData);
  assert.equal(parts.length, 2);
  assert.match(parts[0]!.headers, /text\/cloud-config/);
  assert.deepEqual(parse(parts[0]!.body).runcmd, [["touch", "/tmp/ran"]]);
  assert.match(parts[1]!.headers, /text\/cloud-config/);
  assert.match(parts[1]!.headers, /Merge-Type: dict\(replace\)\+list\(\)\+str\(\)/);
  assert.equal(parse(parts[1]!.body).hostname, "box");

  const script = planCloudInit(config({ userData: { kind: "script", text: "#!/bin/sh\necho hi\n" } }), network, SALT_KEY);
  const scriptParts = mimeParts(script.userData);
  assert.match(scriptParts[0]!.headers, /text\/x-shellscript/);
  assert.equal(scriptParts[0]!.body, "#!/bin/sh\necho hi");
});
