// The disk-full watcher: a guest paused by QEMU on ENOSPC is reported and resumed once there is room.
import { test } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as delay } from "node:timers/promises";
import { blockIoError, watchDiskFull } from "../src/supervise/diskFull.js";
import type { QmpClient, QmpEvent } from "../src/supervise/qmp.js";

/** The two QmpClient methods the watcher uses, recording commands and delivering events. */
function fakeQmp() {
  const listeners = new Map<string, ((event: QmpEvent) => void)[]>();
  const commands: string[] = [];
  const qmp = {
    on(event: string, listener: (event: QmpEvent) => void) {
      listeners.set(event, [...(listeners.get(event) ?? []), listener]);
      return () => undefined;
    },
    async execute(command: string) {
      commands.push(command);
      return {};
    },
  };
  const emit = (event: string, data: Record<string, unknown>) =>
    listeners.get(event)?.forEach((listener) => listener({ event, data, timestamp: { seconds: 0, microseconds: 0 } }));
  return { qmp: qmp as unknown as QmpClient, commands, emit };
}

const enospc = { device: "", "node-name": "disk0", operation: "write", action: "stop", nospace: true, reason: "No space left on device" };

test("blockIoError reads QEMU's BLOCK_IO_ERROR and ignores other events", () => {
  assert.deepEqual(blockIoError({ event: "BLOCK_IO_ERROR", data: enospc, timestamp: { seconds: 0, microseconds: 0 } }), {
    device: "disk0", operation: "write", action: "stop", nospace: true, reason: "No space left on device",
  });
  assert.equal(blockIoError({ event: "STOP", timestamp: { seconds: 0, microseconds: 0 } }), undefined);
});

test("a full disks folder: one message, paused until there is room, then QMP cont", async () => {
  const { qmp, commands, emit } = fakeQmp();
  const logs: string[] = [];
  let free = 10 * 2 ** 20;
  const watch = watchDiskFull(qmp, { dir: "/disks", minFreeBytes: 256 * 2 ** 20, pollMs: 10, log: (m) => logs.push(m), freeBytes: async () => free });
  emit("BLOCK_IO_ERROR", enospc);
  emit("BLOCK_IO_ERROR", enospc); // queued writes report again
  assert.equal(watch.paused, true);
  assert.equal(logs.length, 1);
  assert.match(logs[0]!, /\/disks is full: QEMU paused the guest so that no write is lost\. It resumes by itself once the folder has 256 MiB free/);
  await delay(50);
  assert.deepEqual(commands, [], "not resumed while the folder is still full");
  free = 300 * 2 ** 20;
  await delay(50);
  assert.deepEqual(commands, ["cont"]);
  assert.equal(watch.paused, false);
  assert.match(logs[1]!, /\/disks has room again \(300 MiB free\): the guest resumes/);
  watch.close();
});

test("another I/O error is reported and never resumed; report-only errors are ignored; close stops polling", async () => {
  const { qmp, commands, emit } = fakeQmp();
  const logs: string[] = [];
  const watch = watchDiskFull(qmp, { dir: "/disks", minFreeBytes: 1, pollMs: 10, log: (m) => logs.push(m), freeBytes: async () => 2 ** 30 });
  emit("BLOCK_IO_ERROR", { ...enospc, nospace: false, reason: "Input/output error" });
  emit("BLOCK_IO_ERROR", { ...enospc, action: "report" });
  await delay(40);
  assert.equal(watch.paused, false);
  assert.deepEqual(commands, []);
  assert.equal(logs.length, 1);
  assert.match(logs[0]!, /the guest's disk0 failed a write \(Input\/output error\): QEMU paused the guest/);
  emit("BLOCK_IO_ERROR", enospc);
  watch.close();
  await delay(40);
  assert.deepEqual(commands, [], "closed: no resume");
});
