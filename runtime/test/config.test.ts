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

test("a minimal environment gives a complete configuration with documented defaults", () => {
  const result = parseConfig(base, noFiles);
  assert.ok(result.ok);
  assert.deepEqual(result.config, {
    cpu: 2,
    memoryBytes: 1024 ** 3,
    storageBytes: 20 * 1024 ** 3,
    users: [{ name: "dev", sshKeys: [ED25519], sudo: true }],
    network: "NAT",
    ports: [],
    dns: [],
    accel: "auto",
    hostname: "box",
    ephemeral: false,
    graceSeconds: 8,
    onStop: "poweroff",
    snapshot: "auto",
    readyTimeoutSeconds: 600,
  });
});

test("every problem is reported at once, each naming its variable and rule", () => {
  const text = issuesOf(
    parseConfig({ CPU: "0", MEMORY: "64M", STORAGE: "lots", USER: "Dev", SSH_KEYS: "ssh-rsa AAAA", NETWORK: "wifi", ACCEL: "hvf", PORTS: "99999", VNC: "display one", EPHEMERAL: "maybe", GRACE_SECONDS: "-1", HOSTNAME: "-bad-", DNS: "dns.example" }, noFiles),
  );
  for (const expected of [
    /CPU="0" must be a whole number of virtual CPUs/,
    /MEMORY="64M" must be at least 128 MiB/,
    /STORAGE="lots" must be a size like/,
    /USER="Dev" must be a Linux user name/,
    /SSH_KEYS\[0\] has key data that is not a ssh-rsa key/,
    /NETWORK="WIFI" must be NAT or BRIDGE/,
    /ACCEL="hvf" must be auto, kvm or tcg/,
    /PORTS="99999" .*invalid port/,
    /VNC="display one" must be none, \[host\]:display/,
    /EPHEMERAL="maybe" must be true or false/,
    /GRACE_SECONDS="-1" must be a whole number of seconds/,
    /HOSTNAME="-bad-" must be a host name/,
    /DNS="dns.example" must list IPv4 addresses of DNS servers/,
  ]) {
    assert.match(text, expected);
  }
});

test("required values are named when missing", () => {
  const text = issuesOf(parseConfig({}, noFiles));
  for (const variable of ["CPU", "MEMORY", "STORAGE", "USER", "SSH_KEYS"]) assert.match(text, new RegExp(`^  ${variable} .*required`, "m"));
});

test("a user must be able to log in: a key or a password", () => {
  assert.match(issuesOf(parseConfig({ ...base, SSH_KEYS: undefined }, noFiles)), /no user could log in/);
  assert.ok(parseConfig({ ...base, SSH_KEYS: undefined, PASSWORD: "s3cret" }, noFiles).ok);
  assert.ok(parseConfig({ ...base, SSH_KEYS: undefined, PASSWORD_HASH: "$6$abcdefgh$KQeXafAQAaOoKTevphVU215RvJdgzyfASRasIOuh12hO8u0r1bGW92ZnTmC9IjsiQ8VPiTXBiZF49dFL1U4wX/" }, noFiles).ok);
});

test("DNS lists IPv4 resolvers for the guest", () => {
  const result = parseConfig({ ...base, DNS: "1.1.1.1, 9.9.9.9" }, noFiles);
  assert.ok(result.ok);
  assert.deepEqual(result.config.dns, ["1.1.1.1", "9.9.9.9"]);
});

test("root is refused, and passwords are never echoed", () => {
  const text = issuesOf(parseConfig({ ...base, USER: "root", PASSWORD: "hunter2", PASSWORD_HASH: "$6$x$y" }, noFiles));
  assert.match(text, /USER="root" must not be root/);
  assert.match(text, /PASSWORD_HASH is set together with PASSWORD/);
  assert.doesNotMatch(text, /hunter2/);
});

test("*_FILE variables read Docker secrets; a missing file is a named error", () => {
  const files: Record<string, string> = { "/run/secrets/pw": "from-file\n", "/run/secrets/keys": `# team\n${ED25519}\n${RSA}\n` };
  const result = parseConfig({ ...base, SSH_KEYS: undefined, PASSWORD_FILE: "/run/secrets/pw", SSH_KEYS_FILE: "/run/secrets/keys" }, (path) => files[path]);
  assert.ok(result.ok);
  assert.equal(result.config.users[0]!.password, "from-file");
  assert.deepEqual(result.config.users[0]!.sshKeys, [ED25519, RSA]);
  assert.match(issuesOf(parseConfig({ ...base, PASSWORD_FILE: "/nope" }, noFiles)), /PASSWORD_FILE names \/nope, which does not exist/);
  assert.match(issuesOf(parseConfig({ ...base, PASSWORD: "a", PASSWORD_FILE: "/run/secrets/pw" }, (path) => files[path])), /PASSWORD_FILE is set together with PASSWORD/);
});

test("PASSWORD_HASH_FILE reads the hash from a file, reported under its own name and never echoed", () => {
  const hash = "$6$abcdefgh$KQeXafAQAaOoKTevphVU215RvJdgzyfASRasIOuh12hO8u0r1bGW92ZnTmC9IjsiQ8VPiTXBiZF49dFL1U4wX/";
  const files: Record<string, string> = { "/run/secrets/hash": `${hash}\n`, "/run/secrets/bad": "plain-text-pw\n", "/run/secrets/pw": "pw" };
  const read = (path: string) => files[path];
  const result = parseConfig({ ...base, SSH_KEYS: undefined, PASSWORD_HASH_FILE: "/run/secrets/hash" }, read);
  assert.ok(result.ok, "a hash alone lets the user log in");
  assert.deepEqual(result.config.users, [{ name: "dev", passwordHash: hash, sshKeys: [], sudo: true }], "the trailing line break is not part of the hash");
  const direct = parseConfig({ ...base, SSH_KEYS: undefined, PASSWORD_HASH: hash }, noFiles);
  assert.ok(direct.ok);
  assert.deepEqual(result.config, direct.config, "the file form configures exactly what the direct form does");

  const bad = issuesOf(parseConfig({ ...base, PASSWORD_HASH_FILE: "/run/secrets/bad" }, read));
  assert.match(bad, /^  PASSWORD_HASH_FILE must be a crypt\(3\) hash/m);
  assert.doesNotMatch(bad, /plain-text-pw/, "the file's content is never echoed");
  assert.match(issuesOf(parseConfig({ ...base, PASSWORD_HASH_FILE: "/nope" }, noFiles)), /^  PASSWORD_HASH_FILE names \/nope, which does not exist/m);
  assert.match(issuesOf(parseConfig({ ...base, PASSWORD_HASH: hash, PASSWORD_HASH_FILE: "/run/secrets/hash" }, read)), /^  PASSWORD_HASH_FILE is set together with PASSWORD_HASH/m);
  assert.match(issuesOf(parseConfig({ ...base, PASSWORD_FILE: "/run/secrets/pw", PASSWORD_HASH_FILE: "/run/secrets/hash" }, read)), /^  PASSWORD_HASH_FILE is set together with PASSWORD_FILE: give one of them/m);
  assert.match(issuesOf(parseConfig({ ...base, PASSWORD: "pw", PASSWORD_HASH_FILE: "/nope" }, noFiles)), /PASSWORD_HASH_FILE is set together with PASSWORD:/, "a conflict is named even when the file is missing");
  assert.match(
    issuesOf(parseConfig({ CPU: "1", MEMORY: "1G", STORAGE: "8G", PASSWORD_HASH_FILE: "/run/secrets/hash" }, read)),
    /^  USER is required when PASSWORD, PASSWORD_HASH or SSH_KEYS is set/m,
  );
});

test("USERS adds several users; errors point inside the JSON", () => {
  const users = JSON.stringify([{ name: "alice", sshKeys: [RSA] }, { name: "bob", password: "pw", sudo: false }]);
  const result = parseConfig({ ...base, USERS: users }, noFiles);
  assert.ok(result.ok);
  assert.deepEqual(result.config.users.map((user) => [user.name, user.sudo]), [["dev", true], ["alice", true], ["bob", false]]);

  const onlyUsers = parseConfig({ CPU: "1", MEMORY: "512M", STORAGE: "8G", USERS: users }, noFiles);
  assert.ok(onlyUsers.ok, "USERS alone is enough");

  assert.match(issuesOf(parseConfig({ ...base, USERS: "[{" }, noFiles)), /USERS is not valid JSON/);
  const fromFile = parseConfig({ CPU: "1", MEMORY: "512M", STORAGE: "8G", USERS_FILE: "/run/secrets/users" }, (path) => (path === "/run/secrets/users" ? users : undefined));
  assert.ok(fromFile.ok, "USERS_FILE reads the same JSON from a file (passwords stay out of the environment)");
  assert.deepEqual(fromFile.config.users.map((user) => user.name), ["alice", "bob"]);
  assert.match(issuesOf(parseConfig({ ...base, USERS_FILE: "/run/secrets/users" }, () => "[{")), /USERS_FILE is not valid JSON/);
  assert.match(issuesOf(parseConfig({ ...base, USERS: '[{"name":"x","sshKeys":["nope"],"shell":"/bin/sh"}]' }, noFiles)), /USERS\[0\]\.sshKeys\[0\] is not an OpenSSH public key/);
  assert.match(issuesOf(parseConfig({ ...base, USERS: '[{"name":"x","shell":"/bin/sh"}]' }, noFiles)), /USERS\[0\]/);
  assert.match(issuesOf(parseConfig({ ...base, USERS: '[{"name":"dev","password":"x"}]' }, noFiles)), /names the user "dev" twice/);
});

test("ports: SSH's container port 22 is reserved; in BRIDGE mode ports only warn", () => {
  assert.match(issuesOf(parseConfig({ ...base, PORTS: "22:2222" }, noFiles)), /tcp\/22 is taken by the SSH forward/);
  assert.match(issuesOf(parseConfig({ ...base, PORTS: "8080:80,8080:81" }, noFiles)), /forwards container port tcp\/8080 twice/);
  const udp = parseConfig({ ...base, PORTS: "22/udp" }, noFiles);
  assert.ok(udp.ok, "udp/22 does not clash with SSH");
  const bridge = parseConfig({ ...base, NETWORK: "bridge", PORTS: "8080:80" }, noFiles);
  assert.ok(bridge.ok);
  assert.equal(bridge.config.network, "BRIDGE");
  assert.match(bridge.warnings.join("\n"), /PORTS has no effect with NETWORK=BRIDGE/);
});

test("USER_DATA must be a cloud-config mapping or a script", () => {
  const ok = parseConfig({ ...base, USER_DATA: "packages: [htop]\nruncmd:\n  - echo hi\n" }, noFiles);
  assert.ok(ok.ok);
  assert.equal(ok.config.userData?.kind, "cloud-config");
  assert.match(ok.config.userData!.text, /^#cloud-config\n/);
  const script = parseConfig({ ...base, USER_DATA: "#!/bin/sh\necho hi\n" }, noFiles);
  assert.ok(script.ok);
  assert.equal(script.config.userData?.kind, "script");
  assert.match(issuesOf(parseConfig({ ...base, USER_DATA: "a: [unclosed" }, noFiles)), /USER_DATA is not valid YAML/);
  assert.match(issuesOf(parseConfig({ ...base, USER_DATA: "- just\n- a list\n" }, noFiles)), /USER_DATA must be a cloud-config mapping/);
  const fromDefaultFile = parseConfig(base, (path) => (path === "/etc/devmachines/user-data" ? "runcmd: [[touch, /x]]\n" : undefined));
  assert.ok(fromDefaultFile.ok);
  assert.equal(fromDefaultFile.config.userData?.kind, "cloud-config");
});

test("checks across values run even when other values are wrong: all problems at once", () => {
  const text = issuesOf(parseConfig({ ...base, CPU: "0", PORTS: "22:2222" }, noFiles));
  assert.match(text, /CPU="0" must be a whole number/);
  assert.match(text, /tcp\/22 is taken by the SSH forward/);

  const many = issuesOf(
    parseConfig({ ...base, CPU: "0", MEMORY: "1", PORTS: "8080:80,8080:81", USERS: '[{"name":"dev","password":"x"},{"name":"ok","sudo":"yes"}]' }, noFiles),
  );
  assert.match(many, /CPU="0"/);
  assert.match(many, /MEMORY="1" must be at least 128 MiB/);
  assert.match(many, /forwards container port tcp\/8080 twice/);
  assert.match(many, /USERS names the user "dev" twice/, "duplicate check runs although USERS[1] is invalid");
  assert.match(many, /USERS\[1\]\.sudo must be true or false/);

  // A check is skipped only when the value it needs did not parse.
  const badPorts = issuesOf(parseConfig({ ...base, CPU: "0", PORTS: "22:abc" }, noFiles));
  assert.match(badPorts, /PORTS="22:abc"/);
  assert.doesNotMatch(badPorts, /twice/);
  const badNames = issuesOf(parseConfig({ ...base, USER: "Dev", USERS: '[{"name":"Dev","password":"x"}]' }, noFiles));
  assert.doesNotMatch(badNames, /twice/, "names that are not user names are not compared");
});

test("values read from NAME_FILE are reported as NAME_FILE, with the path inside it", () => {
  const keys = issuesOf(parseConfig({ ...base, SSH_KEYS: undefined, SSH_KEYS_FILE: "/run/secrets/keys" }, () => `${ED25519}\nssh-rsa AAAA\n`));
  assert.match(keys, /^  SSH_KEYS_FILE\[1\] has key data that is not a ssh-rsa key/m);
  assert.doesNotMatch(keys, /^  SSH_KEYS\[/m);

  const users = issuesOf(parseConfig({ ...base, USERS_FILE: "/run/secrets/users" }, () => '[{"name":"Bad","sshKeys":["nope"]}]'));
  assert.match(users, /^  USERS_FILE\[0\]\.name must be a Linux user name/m);
  assert.match(users, /^  USERS_FILE\[0\]\.sshKeys\[0\] is not an OpenSSH public key/m);
  assert.doesNotMatch(users, /^  USERS\[/m);
  const twice = issuesOf(parseConfig({ ...base, USERS_FILE: "/run/secrets/users" }, () => '[{"name":"dev","password":"x"}]'));
  assert.match(twice, /^  USERS_FILE names the user "dev" twice/m);

  const empty = issuesOf(parseConfig({ ...base, PASSWORD_FILE: "/run/secrets/pw" }, () => "\n"));
  assert.match(empty, /^  PASSWORD_FILE must not be empty/m);
  assert.doesNotMatch(empty, /^  PASSWORD /m);
  const breaks = issuesOf(parseConfig({ ...base, PASSWORD_FILE: "/run/secrets/pw" }, () => "one\ntwo\n"));
  assert.match(breaks, /^  PASSWORD_FILE must not contain line breaks/m);
  assert.doesNotMatch(breaks, /one|two/, "a password from a file is never echoed");
  const withHash = issuesOf(parseConfig({ ...base, PASSWORD_FILE: "/run/secrets/pw", PASSWORD_HASH: "$6$x$y" }, () => "pw"));
  assert.match(withHash, /PASSWORD_HASH is set together with PASSWORD_FILE/);

  // The direct forms keep their own names.
  assert.match(issuesOf(parseConfig({ ...base, SSH_KEYS: "ssh-rsa AAAA" }, noFiles)), /^  SSH_KEYS\[0\] has/m);
  assert.match(issuesOf(parseConfig({ ...base, USERS: '[{"name":"Bad","sshKeys":[]}]' }, noFiles)), /^  USERS\[0\]\.name must be/m);
});

test("CPU and GRACE_SECONDS have upper bounds, with the rule in the message", () => {
  assert.equal((parseConfig({ ...base, CPU: "255" }, noFiles) as { config: { cpu: number } }).config.cpu, 255);
  assert.match(issuesOf(parseConfig({ ...base, CPU: "256" }, noFiles)), /CPU="256" must be at most 255: QEMU's q35 machine starts at most 255 vCPUs/);
  assert.match(issuesOf(parseConfig({ ...base, CPU: "99999999999999999999" }, noFiles)), /CPU=.* must be at most 255/);

  for (const [text, seconds] of [["0", 0], ["3600", 3600]] as const) {
    const result = parseConfig({ ...base, GRACE_SECONDS: text }, noFiles);
    assert.ok(result.ok);
    assert.equal(result.config.graceSeconds, seconds);
  }
  // Past 2^31-1 ms Node's setTimeout fires after 1 ms: such a value must never reach the supervisor.
  assert.match(issuesOf(parseConfig({ ...base, GRACE_SECONDS: "3601" }, noFiles)), /GRACE_SECONDS="3601" must be at most 3600 seconds \(one hour\)/);
  assert.match(issuesOf(parseConfig({ ...base, GRACE_SECONDS: "99999999999" }, noFiles)), /GRACE_SECONDS="99999999999" must be at most 3600/);
});
