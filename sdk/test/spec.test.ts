/** The pure container description: defaults from one place, host names derived from container names. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { DEFAULTS as RUNTIME_DEFAULTS, hostnameField } from "@devmachines/runtime/config";
import { KEY } from "./mocks.js";
import { containerSpec, defaultHostname, defaultMachineSettings, DEFAULTS, DISKS_DIR, USER_DATA_PATH } from "../src/index.js";

test("defaults: the runtime's own where it has them, the component's DEFAULTS elsewhere, and the default machine spells out the same", () => {
  assert.equal(DISKS_DIR, RUNTIME_DEFAULTS.disksDir);
  assert.equal(USER_DATA_PATH, RUNTIME_DEFAULTS.userDataFile);
  // The component sets its own stop timeout, so its grace period need not fit Docker's default 10 s.
  assert.ok(DEFAULTS.graceSeconds > RUNTIME_DEFAULTS.graceSeconds);
  const spec = containerSpec("plain", { sshKeys: [KEY], userData: "packages: [htop]\n" });
  assert.equal(spec.env.GRACE_SECONDS, String(DEFAULTS.graceSeconds));
  assert.equal(spec.stopTimeoutSeconds, DEFAULTS.graceSeconds + DEFAULTS.stopMarginSeconds);
  assert.equal(spec.labels["tech.utkin.devmachines.runtime"], "true", "the upstream inventory finds it");
  assert.equal(spec.env.NETWORK, RUNTIME_DEFAULTS.network);
  assert.equal(spec.env.ACCEL, RUNTIME_DEFAULTS.accel);
  assert.equal(spec.volumes[0]!.containerPath, RUNTIME_DEFAULTS.disksDir);
  assert.deepEqual(spec.files.map((file) => file.path), [RUNTIME_DEFAULTS.userDataFile]);
  const { cpu, memory, storage, user } = defaultMachineSettings();
  assert.deepEqual({ cpu, memory, storage, user }, { cpu: DEFAULTS.cpu, memory: DEFAULTS.memory, storage: DEFAULTS.storage, user: DEFAULTS.user });
  assert.deepEqual([spec.env.CPU, spec.env.MEMORY, spec.env.STORAGE, spec.env.USER], [String(DEFAULTS.cpu), DEFAULTS.memory, DEFAULTS.storage, DEFAULTS.user]);
});

test("defaultHostname: cut to 63 characters first, then trimmed, so no name ends in - or . and no label is empty", () => {
  const long = `${"a".repeat(62)}-tail`;
  assert.equal(defaultHostname(long), "a".repeat(62), "the cut lands after a hyphen, which is trimmed");
  assert.equal(defaultHostname(`${"b".repeat(62)}.tail`), "b".repeat(62), "the cut lands after a dot, which is trimmed");
  assert.equal(defaultHostname("My_Box..Web--"), "my-box.web");
  assert.equal(defaultHostname("lab.-web-.db"), "lab.web.db", "labels lose their outer hyphens");
  assert.equal(defaultHostname("..--.."), "devmachine");
  assert.equal(defaultHostname("Ünïcode box!"), "n-code-box");
  for (const name of [long, "My_Box..Web--", "-x-", "a..b", "x".repeat(200), `${"c".repeat(30)}..${"d".repeat(40)}`, "_._", "Ünïcode box!"]) {
    const host = defaultHostname(name);
    assert.ok(host.length <= 63, `${host} is at most 63 characters`);
    assert.ok(hostnameField.safeParse(host).success, `${JSON.stringify(name)} -> ${JSON.stringify(host)} is a valid HOSTNAME for the runtime`);
  }
  // A container name the runtime would refuse as a host name still makes a valid machine.
  assert.equal(containerSpec(`${"w".repeat(62)}_x`, { sshKeys: [KEY] }).hostname, "w".repeat(62));
});

test("onStop: suspend reaches the container as ON_STOP with the usual long stop timeout; a wrong value is refused as the container would", () => {
  const plain = containerSpec("plain", { sshKeys: [KEY] });
  assert.equal(plain.env.ON_STOP, undefined, "the runtime's default (poweroff) applies");
  const sleeper = containerSpec("sleeper", { sshKeys: [KEY], onStop: "suspend", memory: "2G" });
  assert.equal(sleeper.env.ON_STOP, "suspend");
  assert.ok(sleeper.stopTimeoutSeconds >= 60, "room for saving a few GiB of guest memory");
  assert.throws(() => containerSpec("bad", { sshKeys: [KEY], onStop: "hibernate" as "suspend" }), /ON_STOP="hibernate" must be poweroff or suspend/);
});

test("snapshot: off reaches the container as SNAPSHOT; unset leaves the runtime's auto; a wrong value is refused as the container would", () => {
  assert.equal(containerSpec("plain", { sshKeys: [KEY] }).env.SNAPSHOT, undefined);
  assert.equal(containerSpec("cold", { sshKeys: [KEY], snapshot: "off" }).env.SNAPSHOT, "off");
  assert.throws(() => containerSpec("bad", { sshKeys: [KEY], snapshot: "never" as "off" }), /SNAPSHOT="never" must be auto or off/);
});
