/**
 * The classes of hostile input from the adversarial review (shared notes, bad-inputs.md),
 * each tested as a class through the launcher's configuration parser: refused with the
 * variable named, every problem at once, nothing secret echoed.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { MAX_PORT_FORWARDS, parsePortList } from "../src/config/ports.js";
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

test("10: sizes have upper bounds; absurd sizes exit 2 with the bound, never Infinity", () => {
  assert.ok(parseConfig({ ...base, MEMORY: "1T", STORAGE: "1P" }, noFiles).ok, "the bounds themselves are allowed");
  for (const [variable, text] of [
    ["MEMORY", "1P"], ["MEMORY", "1025G"], ["MEMORY", `1${"0".repeat(400)}`], ["MEMORY", `1${"0".repeat(400)}P`],
    ["STORAGE", "100P"], ["STORAGE", "1025T"], ["STORAGE", `9${"9".repeat(330)}.5`],
  ] as const) {
    const issues = issuesOf(parseConfig({ ...base, [variable]: text }, noFiles));
    assert.match(issues, new RegExp(`^  ${variable}=.* must be at most (1 TiB|1 PiB)$`, "m"), `${variable}=${text.slice(0, 20)}`);
    assert.doesNotMatch(issues, /Infinity|NaN/);
  }
});

test("10: property: every size either parses within its bounds or is refused with a rule", () => {
  const unit = fc.constantFrom("", "k", "M", "g", "T", "p", "Gi", "mb", "TiB", " G");
  const number = fc.oneof(fc.nat().map(String), fc.stringMatching(/^\d{1,400}(\.\d{1,20})?$/));
  fc.assert(
    fc.property(number, unit, (digits, suffix) => {
      const result = parseConfig({ ...base, MEMORY: `${digits}${suffix}`, STORAGE: `${digits}${suffix}` }, noFiles);
      if (result.ok) {
        assert.ok(result.config.memoryBytes >= 128 * 1024 ** 2 && result.config.memoryBytes <= 1024 ** 4);
        assert.ok(result.config.storageBytes >= 1 && result.config.storageBytes <= 1024 ** 5);
        assert.ok(Number.isSafeInteger(result.config.memoryBytes) && Number.isSafeInteger(result.config.storageBytes));
      } else {
        for (const issue of result.issues) assert.match(issue.message, /must be (at most|at least|a size like)/);
      }
    }),
    { numRuns: 500 },
  );
});

test("9: port forwards have a documented limit, checked before anything is expanded", () => {
  assert.ok(parseConfig({ ...base, PORTS: `1000-${1000 + MAX_PORT_FORWARDS - 1}` }, noFiles).ok, "exactly the limit");
  for (const ports of [
    `1000-${1000 + MAX_PORT_FORWARDS}`,
    "1-65535",
    "1-65535/udp,1-65535/tcp",
    Array.from({ length: 600 }, (_, i) => `${10000 + i}-${10000 + i}`).join(",") + "," + Array.from({ length: 600 }, (_, i) => `${20000 + i}/udp`).join(","),
    Array(5000).fill("1-65535").join(","),
  ]) {
    const issues = issuesOf(parseConfig({ ...base, PORTS: ports }, noFiles));
    assert.match(issues, new RegExp(`PORTS=.* expands to \\d+ forwards .* at most ${MAX_PORT_FORWARDS}`));
    assert.ok(issues.length < 100_000, "the refusal does not list every port");
  }
});

test("9/13: property: a port list is all forwards within the limit, or refused with every bad entry named", () => {
  const entry = fc.oneof(
    fc.integer({ min: 0, max: 70000 }).map(String),
    fc.tuple(fc.integer({ min: 0, max: 70000 }), fc.integer({ min: 0, max: 70000 })).map(([a, b]) => `${a}-${b}`),
    fc.tuple(fc.integer({ min: 1, max: 65535 }), fc.integer({ min: 1, max: 65535 }), fc.constantFrom("tcp", "udp", "sctp", "tcp,22")).map(([a, b, p]) => `${a}:${b}/${p}`),
    fc.string({ maxLength: 8 }),
  );
  fc.assert(
    fc.property(fc.array(entry, { maxLength: 12 }), (entries) => {
      const list = entries.join(",");
      const { forwards, problems } = parsePortList(list);
      if (problems.length === 0) {
        assert.ok(forwards.length <= MAX_PORT_FORWARDS);
        for (const forward of forwards) {
          assert.ok(forward.containerPort >= 1 && forward.containerPort <= 65535 && forward.guestPort >= 1 && forward.guestPort <= 65535);
          assert.ok(forward.protocol === "tcp" || forward.protocol === "udp");
        }
      }
      // Each bad entry is reported by itself (plus, perhaps, the limit).
      const bad = list.split(",").map((item) => item.trim()).filter((item) => item !== "").filter((item) => parsePortList(item).problems.some((p) => !/expands to/.test(p)));
      assert.equal(problems.filter((p) => !/expands to/.test(p)).length, bad.length);
    }),
    { numRuns: 300 },
  );
});

test("13: every bad PORTS entry is reported, and duplicates among the good ones too", () => {
  const issues = issuesOf(parseConfig({ ...base, PORTS: "http,8080:80,99999,8080:81,1-2-3-x/sctp" }, noFiles));
  assert.match(issues, /"http": invalid port/);
  assert.match(issues, /"99999": invalid port/);
  assert.match(issues, /sctp/);
  assert.match(issues, /forwards container port tcp\/8080 twice/);
});

/** The classic "billion laughs", `levels` deep. */
function aliasBomb(levels: number): string {
  const lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'];
  for (let level = 1; level < levels; level++) {
    const name = String.fromCharCode(97 + level);
    const previous = String.fromCharCode(96 + level);
    lines.push(`${name}: &${name} [${Array(9).fill(`*${previous}`).join(",")}]`);
  }
  return `${lines.join("\n")}\n`;
}

test("7: YAML aliases in USER_DATA: undefined ones and alias bombs exit 2 naming USER_DATA, without echo", () => {
  const cases = [
    "runcmd: [*nope]",
    "*nope : value",
    "packages:\n  - *later\nlater: &later htop",
    "write_files:\n  - path: /x\n    content: *secret_anchor_name",
    aliasBomb(9),
    aliasBomb(4),
  ];
  for (const userData of cases) {
    for (const env of [{ USER_DATA: userData }, { USER_DATA_FILE: "/ud" }]) {
      const issues = issuesOf(parseConfig({ ...base, ...env }, (path) => (path === "/ud" ? userData : undefined)));
      assert.match(issues, /^ {2}USER_DATA(_FILE)? (is not valid YAML: an alias|uses YAML aliases that expand too far)/m, userData.slice(0, 40));
      assert.doesNotMatch(issues, /secret_anchor_name|lol/);
    }
  }
  // A few aliases, as people use them, are fine.
  assert.ok(parseConfig({ ...base, USER_DATA: "x: &pkgs [htop]\npackages: *pkgs\n" }, noFiles).ok);
});

test("12: YAML tags cloud-init's safe loader refuses exit 2; YAML's standard tags pass", () => {
  for (const userData of [
    "a: !custom x",
    "runcmd: !!python/object/apply:os.system ['id']",
    "a: !!python/name:os.system ''",
    "a: !<tag:example.com,2000:app/foo> x",
    "? !custom key\n: value",
    "packages: !custom [htop]",
    "write_files: !!python/object:__main__.X {}",
    "a: !!foo x",
    "runcmd:\n  - [echo, !shout hi]",
    "a: !!python/unicode x",
  ]) {
    const issues = issuesOf(parseConfig({ ...base, USER_DATA: userData }, noFiles));
    assert.match(issues, /^ {2}USER_DATA uses the YAML tag.* at line \d+, which cloud-init's safe YAML loader refuses/m, userData);
  }
  for (const userData of ["a: !!str 1", "a: !!binary aGk=", "a: !!int '3'", "a: !!set {x}", "a: !!timestamp 2020-01-01", "a: !<tag:yaml.org,2002:str> x", "<<: {a: 1}\nb: 2"]) {
    assert.ok(parseConfig({ ...base, USER_DATA: userData }, noFiles).ok, userData);
  }
});

test("13: PASSWORD_FILE with NUL, other control characters or bytes that are not UTF-8 exits 2, never echoed", () => {
  const secret = "pw-Canary-5511";
  const files: Array<string | Uint8Array> = [
    `${secret}\u0000tail`, `${secret}\u001b[2J`, `${secret}\ttab`, `${secret}\u0085`,
    Buffer.concat([Buffer.from(secret), Buffer.from([0xff, 0xfe])]),
    Buffer.concat([Buffer.from(secret), Buffer.from([0xc3])]),
  ];
  for (const content of files) {
    const issues = issuesOf(parseConfig({ ...base, PASSWORD_FILE: "/pw" }, (path) => (path === "/pw" ? content : undefined)));
    assert.match(issues, /^ {2}PASSWORD_FILE (names \/pw, which is not UTF-8 text|must not contain line breaks or other control characters)/m);
    assert.equal(issues.includes(secret), false);
  }
  // The same rules for the direct forms.
  assert.match(issuesOf(parseConfig({ ...base, PASSWORD: "a\u0000b" }, noFiles)), /^ {2}PASSWORD must not contain/m);
  assert.match(issuesOf(parseConfig({ ...base, USERS: JSON.stringify([{ name: "ann", password: "a\u0000b" }]) }, noFiles)), /^ {2}USERS\[0\]\.password must not contain/m);
  // Other files that are not UTF-8.
  assert.match(issuesOf(parseConfig({ ...base, SSH_KEYS_FILE: "/k", SSH_KEYS: undefined }, (path) => (path === "/k" ? Buffer.from([0x80, 0x81]) : undefined))), /SSH_KEYS_FILE names \/k, which is not UTF-8 text/);
  assert.match(issuesOf(parseConfig({ ...base, USER_DATA_FILE: "/u" }, (path) => (path === "/u" ? Buffer.from([0xc0, 0xaf]) : undefined))), /USER_DATA_FILE names \/u, which is not UTF-8 text/);
  // Valid UTF-8 bytes are read as text.
  assert.ok(parseConfig({ ...base, PASSWORD_FILE: "/pw" }, (path) => (path === "/pw" ? Buffer.from("pässwörd🔑\n") : undefined)).ok);
});

test("13: PASSWORD_HASH must be a complete hash of a known scheme; real ones of each scheme pass", () => {
  const real = [
    "$6$abcdefgh$KQeXafAQAaOoKTevphVU215RvJdgzyfASRasIOuh12hO8u0r1bGW92ZnTmC9IjsiQ8VPiTXBiZF49dFL1U4wX/",
    "$6$rounds=10000$saltstringsaltst$OW1/O6BYHV6BcXZu8QVeXbDWra3Oeqh0sbHbbMCVNSnCM/UrjmM0Dp8vOuZeHBy/YTBmSK6H9qs/y3RnOaw5v.",
    "$5$KUMEr86wjxNl8dS6$vNGCak1K6U/awygLOc/NBmWiw1qeQOj7KQ/hruGmhL9",
    "$1$3MWdnVGs$Am5hNsnahFNM0SHd6wn4s/",
    "$y$j9T$230BItaNwJBFHxv1OjG6D/$TkwdruGhA31so2dYuOHo/JcHidD5rNyGsbQzpIgNvR3",
    "$gy$j9T$GhAri.D/mNF.sYWx0bu4d/$SI5kxHpLM2yb7RwIWxD6v.1xK.fcwJoF796PU099caA",
    "$7$CU..../....dKUF0uUlQzi6HZxL4Dwi6.$Qhho8yN/y79yzNHJjqahFCohTpTE66L0IFyuV5Doi2C",
    "$2b$05$UM1PkwyQYdjTedb5lZf5TuB0yz4rWL47KX0xbPBdwYp0/el4B8wiy",
  ];
  for (const hash of real) assert.ok(parseConfig({ ...base, PASSWORD_HASH: hash }, noFiles).ok, hash);
  const malformed = [
    ...real.map((hash) => hash.slice(0, -1)), // truncated
    ...real.map((hash) => `${hash}x`), // extended
    ...real.map((hash) => `${hash.slice(0, -2)}!${hash.slice(-1)}`), // a character outside crypt's alphabet
    "$6$x$y", "$6$$", "$6$salt", "$6$toolongsaltstring1$" + "a".repeat(86), "$6$rounds=99$salt$" + "a".repeat(86), "$9$salt$hash",
    "$2b$99$" + "a".repeat(53), "$y$$$", "!", "*", "$6$salt$" + "a".repeat(86) + "\u0000",
  ];
  for (const hash of malformed) {
    const issues = issuesOf(parseConfig({ ...base, PASSWORD_HASH: hash }, noFiles));
    assert.match(issues, /^ {2}PASSWORD_HASH must be a crypt\(3\) hash, complete/m, hash);
    assert.equal(issues.includes(hash.slice(3, 20)) && hash.length > 20, false, "the hash is not echoed");
  }
  assert.match(issuesOf(parseConfig({ ...base, USERS: JSON.stringify([{ name: "ann", passwordHash: "$6$x$y" }]) }, noFiles)), /USERS\[0\]\.passwordHash must be a crypt/);
});

test("13: system users and groups of the guest, and host names longer than Linux allows, exit 2", () => {
  for (const name of ["daemon", "sshd", "sudo", "users", "nobody", "_apt", "systemd-network", "systemd-anything", "www-data", "messagebus"]) {
    assert.match(issuesOf(parseConfig({ ...base, USER: name }, noFiles)), new RegExp(`USER="${name}" must not be a system user or group`), name);
    assert.match(issuesOf(parseConfig({ ...base, USER: undefined, SSH_KEYS: undefined, USERS: JSON.stringify([{ name, sshKeys: [ED25519] }]) }, noFiles)), /USERS\[0\]\.name must not be a system user/);
  }
  for (const name of ["dev", "admin", "debian", "ann-2", "_dev"]) assert.ok(parseConfig({ ...base, USER: name }, noFiles).ok, name);

  assert.ok(parseConfig({ ...base, HOSTNAME: "a".repeat(63) }, noFiles).ok);
  assert.ok(parseConfig({ ...base, HOSTNAME: `${"a".repeat(31)}.${"b".repeat(32)}` }, noFiles).ok, "64 characters");
  for (const hostname of [`${"a".repeat(32)}.${"b".repeat(32)}`, "a".repeat(65), `${"a".repeat(63)}.${"b".repeat(63)}.${"c".repeat(63)}`, "a".repeat(300)]) {
    assert.match(issuesOf(parseConfig({ ...base, HOSTNAME: hostname }, noFiles)), /HOSTNAME=.* must be at most 64 characters/, String(hostname.length));
  }
});

test("13: every problem is reported at once, also the ones that depend on other values", () => {
  const issues = issuesOf(
    parseConfig(
      {
        CPU: "0", MEMORY: "1P", STORAGE: "100P", USER: "sshd", PASSWORD: "a\u0000b", SSH_KEYS: `${ED25519}\n${RSA}`,
        PORTS: "http,8080:80,8080:81,1-65535", VNC: "unix:/var/lib/devmachines/disk.qcow2,power-control=on",
        HOSTNAME: "h".repeat(65), DISKS_DIR: "/proc/x", BASE_IMAGE: "/dev/zero", USER_DATA: "runcmd: [*nope]\nx: !custom y",
      },
      noFiles,
    ),
  );
  for (const expected of [
    /CPU="0"/, /MEMORY="1P" must be at most/, /STORAGE="100P" must be at most/, /USER="sshd" must not be a system user/,
    /PASSWORD must not contain/, /SSH_KEYS\[0\] contains a line break/, /"http": invalid port/, /tcp\/8080 twice/, /expands to/,
    /VNC=.* unix: needs a socket name/, /VNC=.* "power-control" is not allowed/, /HOSTNAME=.* at most 64/,
    /DISKS_DIR="\/proc\/x" must not be under/, /BASE_IMAGE="\/dev\/zero" must not be under/, /USER_DATA uses the YAML tag/,
  ]) {
    assert.match(issues, expected);
  }
});

test("11: BASE_IMAGE and DISKS_DIR under /proc, /sys or /dev (also by ..) exit 2; /dev/shm is an ordinary folder", () => {
  for (const [variable, path] of [["DISKS_DIR", "/proc/x"], ["DISKS_DIR", "/sys"], ["DISKS_DIR", "/var/../dev/disks"], ["BASE_IMAGE", "/dev/sda"], ["BASE_IMAGE", "/proc/self/fd/0"], ["BASE_IMAGE", "//dev//zero"]] as const) {
    assert.match(issuesOf(parseConfig({ ...base, [variable]: path }, noFiles)), new RegExp(`${variable}=.* must not be under /proc, /sys or /dev`), path);
  }
  assert.ok(parseConfig({ ...base, DISKS_DIR: "/dev/shm/disks", BASE_IMAGE: "/images/devices.qcow2" }, noFiles).ok);
});

test("13: a refused password source does not add a misleading 'no user could log in'; long values are cut in messages", () => {
  const both = issuesOf(parseConfig({ ...base, SSH_KEYS: undefined, PASSWORD: "x", PASSWORD_FILE: "/pw" }, () => "y"));
  assert.match(both, /PASSWORD_FILE is set together with PASSWORD/);
  assert.doesNotMatch(both, /no user could log in/);
  const badKey = issuesOf(parseConfig({ ...base, SSH_KEYS: "ssh-ed25519 AAAA" }, noFiles));
  assert.doesNotMatch(badKey, /no user could log in/);
  const long = issuesOf(parseConfig({ ...base, DNS: "x".repeat(5000) }, noFiles));
  assert.match(long, /DNS="x{200}"\.\.\. \(5000 characters\) must list/);
});
