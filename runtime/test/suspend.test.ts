import assert from "node:assert/strict";
import { mkdtemp, readdir, readFile, rm, utimes, writeFile } from "node:fs/promises";
import fs from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { parseConfig } from "../src/config/index.js";
import { completeSave, consumeSavedState, diskStamp, readSavedState, setAside } from "../src/apply/suspend.js";
import { machineHash, planResume, suspendPaths, type MachineNow, type SavedStateFacts, type SavedStateMeta } from "../src/plan/suspend.js";
import { onResumeFailure } from "../src/supervise/decide.js";
import { healthOf } from "../src/supervise/readiness.js";
import { setGuestClock } from "../src/supervise/guestAgent.js";
import { shellQuote } from "../src/supervise/supervisor.js";

const work = await mkdtemp(join(tmpdir(), "dm-suspend-"));
after(() => rm(work, { recursive: true, force: true }));

const paths = suspendPaths("/disks");
const disk = { size: 1_000_000, mtimeNs: "1764400000123456789", ino: 42 };
const meta: SavedStateMeta = {
  format: 1,
  qemu: "QEMU emulator version 10.0.6",
  accel: "tcg",
  machineHash: "h1",
  disk,
  stateBytes: 300 * 2 ** 20,
  savedAt: "2026-11-29T10:00:00.000Z",
};
const now: MachineNow = { qemu: meta.qemu, accel: "tcg", machineHash: "h1", diskAction: "reuse" };
const good: SavedStateFacts = { stateBytes: meta.stateBytes, meta, disk };

test("planResume: no saved state means a plain boot", () => {
  assert.equal(planResume({ disk }, now, paths).action, "none");
});

test("planResume: a state that matches disk, QEMU, accelerator and machine is resumed", () => {
  const plan = planResume(good, now, paths);
  assert.equal(plan.action, "resume");
  assert.equal(plan.action === "resume" && plan.statePath, "/disks/vmstate.bin");
});

test("planResume: every mismatch sets the state aside with a warning that says which", () => {
  const cases: [string, SavedStateFacts, Partial<MachineNow>, RegExp][] = [
    ["disk written after the save", { ...good, disk: { ...disk, mtimeNs: "1764400000999999999" } }, {}, /disk changed after the save/],
    ["disk grown", { ...good, disk: { ...disk, size: 2_000_000 } }, {}, /disk changed/],
    ["disk replaced", { ...good, disk: { ...disk, ino: 7 } }, {}, /disk changed/],
    ["disk gone", { stateBytes: good.stateBytes, meta }, {}, /disk it was saved with is gone/],
    ["disk resized by STORAGE", good, { diskAction: "grow" }, /STORAGE changed/],
    ["another QEMU", good, { qemu: "QEMU emulator version 10.1.0" }, /saved by QEMU emulator version 10\.0\.6, this is QEMU emulator version 10\.1\.0/],
    ["another accelerator", good, { accel: "kvm" }, /saved under TCG, this start uses KVM/],
    ["another machine (MEMORY, CPU, devices, cloud-init)", good, { machineHash: "h2" }, /configuration changed \(CPU, MEMORY/],
    ["a truncated state", { ...good, stateBytes: 100 }, {}, /has 100 bytes, but 314572800 were saved/],
    ["no description (the save never finished)", { stateBytes: 5, disk }, {}, /missing \(the save never finished\)/],
    ["a broken description", { stateBytes: 5, disk, metaProblem: "is not valid JSON" }, {}, /vmstate\.json is not valid JSON/],
    ["a description without its state", { meta, disk }, {}, /state file is missing/],
  ];
  for (const [name, facts, change, reason] of cases) {
    const plan = planResume(facts, { ...now, ...change }, paths);
    assert.equal(plan.action, "set-aside", name);
    assert.match(plan.reason, reason, name);
    assert.match(plan.action === "set-aside" ? plan.warning : "", /moved to \/disks\/vmstate\.set-aside\.bin and the guest boots from its disk/, name);
  }
});

test("machineHash: same machine in other run folders is the same; CPU, memory, devices, cloud-init are not", () => {
  const argv = (run: string, memory = "1024M") => ["-smp", "2", "-m", memory, "-qmp", `unix:${run}/qmp.sock,server=on,wait=off`, "-vnc", "unix:/x/vnc.sock"];
  const one = machineHash(argv("/run/a"), ["/run/a"], "i-1");
  assert.equal(machineHash(argv("/socks"), ["/socks"], "i-1"), one, "socket folders carry no guest state");
  assert.equal(machineHash(argv("/run/a").slice(0, -2), ["/run/a"], "i-1"), one, "a VNC server's address carries no guest state");
  assert.notEqual(machineHash(argv("/run/a", "2048M"), ["/run/a"], "i-1"), one);
  assert.notEqual(machineHash(argv("/run/a"), ["/run/a"], "i-2"), one, "users, keys, user data and network settings change the instance");
  assert.notEqual(machineHash([...argv("/run/a"), "-device", "VGA"], ["/run/a"], "i-1"), one);
});

test("a failed load of a saved state restarts the same accelerator as a cold boot", () => {
  const next = onResumeFailure({ accel: "tcg", ready: false, stopping: false }, { exitCode: 1 }, "qemu: load of migration failed: Invalid argument");
  assert.deepEqual(next, {
    kind: "restart",
    accel: "tcg",
    coldBoot: true,
    reason: 'QEMU exited with code 1 while loading the saved state ("qemu: load of migration failed: Invalid argument")',
  });
});

test("ON_STOP: poweroff by default, suspend when asked, anything else refused naming the variable", () => {
  const env = { CPU: "1", MEMORY: "1G", STORAGE: "10G", USER: "dev", PASSWORD: "pw", HOSTNAME: "h" };
  const read = () => undefined;
  const parsed = parseConfig(env, read);
  assert.equal(parsed.ok && parsed.config.onStop, "poweroff");
  const suspend = parseConfig({ ...env, ON_STOP: "Suspend" }, read);
  assert.equal(suspend.ok && suspend.config.onStop, "suspend");
  const bad = parseConfig({ ...env, ON_STOP: "hibernate" }, read);
  assert.equal(bad.ok, false);
  assert.deepEqual(!bad.ok && bad.issues, [{ variable: "ON_STOP", value: "hibernate", message: "must be poweroff or suspend" }]);
  const ephemeral = parseConfig({ ...env, ON_STOP: "suspend", EPHEMERAL: "true" }, read);
  assert.equal(ephemeral.ok, false);
  assert.match(!ephemeral.ok ? ephemeral.issues[0]!.message : "", /cannot be suspend with EPHEMERAL=true/);
});

test("save and resume on disk: complete, read back, consume once, set aside", async () => {
  const dir = join(work, "disks");
  fs.mkdirSync(dir);
  const p = suspendPaths(dir);
  const overlay = join(dir, "disk.qcow2");
  await writeFile(overlay, "disk");
  await writeFile(p.partial, "state!");
  const saved = await completeSave(p, overlay, { qemu: "Q", accel: "tcg", machineHash: "h" });
  assert.equal(saved.stateBytes, 6);
  assert.deepEqual((await readdir(dir)).sort(), ["disk.qcow2", "vmstate.bin", "vmstate.json"]);
  const facts = await readSavedState(p, overlay);
  assert.deepEqual(facts.meta, saved);
  assert.equal(planResume(facts, { qemu: "Q", accel: "tcg", machineHash: "h", diskAction: "reuse" }, p).action, "resume");

  // The guest writes its disk after the save: never resumed onto it.
  await utimes(overlay, new Date(), new Date(Date.now() + 5000));
  const changed = await readSavedState(p, overlay);
  assert.notDeepEqual(changed.disk, await Promise.resolve(saved.disk));
  assert.equal(planResume(changed, { qemu: "Q", accel: "tcg", machineHash: "h", diskAction: "reuse" }, p).action, "set-aside");

  // Consumed: gone from the folder before QEMU starts, still readable through the descriptor.
  const fd = consumeSavedState(p);
  assert.deepEqual(await readdir(dir), ["disk.qcow2"]);
  assert.equal(fs.readFileSync(fd, "utf8"), "state!");
  fs.closeSync(fd);
  assert.equal((await readSavedState(p, overlay)).stateBytes, undefined);

  await writeFile(p.state, "old");
  await writeFile(p.meta, "{");
  assert.equal((await readSavedState(p, overlay)).metaProblem, "is not valid JSON");
  await setAside(p);
  assert.deepEqual((await readdir(dir)).sort(), ["disk.qcow2", "vmstate.set-aside.bin"]);
  assert.equal(await readFile(p.setAside, "utf8"), "old");
  assert.equal((await diskStamp(join(dir, "nothing"))), undefined);
});

test("health verdicts: ready is healthy, every other phase and READY_TIMEOUT are not", () => {
  assert.deepEqual(healthOf({ phase: "ready" }), { healthy: true, message: "ready: SSH answers" });
  assert.deepEqual(healthOf({ phase: "booting" }), { healthy: false, message: "the VM is booting" });
  assert.equal(healthOf({ phase: "booting", notReady: "the guest is not ready after READY_TIMEOUT=2 s" }).message, "the guest is not ready after READY_TIMEOUT=2 s");
});

test("the exec: migration target is one shell word whatever the path holds", () => {
  assert.equal(shellQuote("/disks/vm state's.bin"), `'/disks/vm state'\\''s.bin'`);
});

test("setGuestClock: syncs with the agent, sends the host's time in exact nanoseconds, and accepts a guest without hwclock", async () => {
  const socketPath = join(work, "qga.sock");
  const received: string[] = [];
  const server = net.createServer((socket) => {
    socket.setEncoding("latin1");
    let buffer = "";
    socket.on("data", (chunk: string) => {
      buffer += chunk;
      let newline: number;
      while ((newline = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, newline).replace(/\xff/g, "");
        buffer = buffer.slice(newline + 1);
        received.push(line);
        const message = JSON.parse(line) as { execute: string; arguments?: { id?: number } };
        // A stale answer first, as a former client may have left one: it must be skipped.
        if (message.execute === "guest-sync-delimited") socket.write(`{"return": {}}\n\xff{"return": ${message.arguments!.id}}\n`, "latin1");
        else socket.write(`{"error": {"class": "GenericError", "desc": "child process has failed to set hardware clock to system time: failed to exec '/sbin/hwclock'"}}\n`);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  try {
    const note = await setGuestClock(socketPath, 5000, () => 1764410000123);
    assert.match(note ?? "", /hardware clock was not written/);
    assert.equal(received.at(-1), '{"execute":"guest-set-time","arguments":{"time":1764410000123000000}}');
  } finally {
    server.close();
  }
});
