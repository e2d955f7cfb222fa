// QMP client against a real qemu-system-x86_64: a paused VM (-S) with no disk serves QMP.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { QmpClient, QmpError, type QmpEvent } from "../src/supervise/qmp.js";

let dir: string;
const qemus: ChildProcess[] = [];

function startPausedQemu(socket: string): ChildProcess {
  const child = spawn(
    "qemu-system-x86_64",
    ["-S", "-nodefaults", "-machine", "q35", "-m", "64", "-accel", "tcg", "-display", "none", "-serial", "none",
      "-monitor", "none", "-qmp", `unix:${socket},server=on,wait=off`],
    { stdio: ["ignore", "ignore", "inherit"] },
  );
  qemus.push(child);
  return child;
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once("exit", () => resolve()));
}

before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "dm-qmp-"));
});

after(async () => {
  for (const child of qemus) {
    child.kill("SIGKILL");
    await exited(child);
  }
  fs.rmSync(dir, { recursive: true, force: true });
});

test("connects while the socket is still being created, reads the greeting, negotiates", async () => {
  const socket = path.join(dir, "greet.sock");
  startPausedQemu(socket); // connect starts before QEMU has created the socket
  const qmp = await QmpClient.connect(socket, { timeoutMs: 10_000 });
  try {
    assert.ok(qmp.greeting);
    assert.ok(qmp.greeting.QMP.version.qemu.major >= 7);
    assert.ok(Array.isArray(qmp.greeting.QMP.capabilities));
    const status = await qmp.queryStatus();
    assert.equal(status.status, "prelaunch");
    assert.equal(status.running, false);
  } finally {
    qmp.close();
  }
});

test("execute returns `return`, rejects with QMP's error class and desc, delivers events", async () => {
  const socket = path.join(dir, "exec.sock");
  const qemu = startPausedQemu(socket);
  const qmp = await QmpClient.connect(socket);
  try {
    const name = await qmp.execute<{ name?: string }>("query-name");
    assert.deepEqual(name, {});

    await assert.rejects(qmp.execute("no-such-command"), (error: unknown) => {
      assert.ok(error instanceof QmpError);
      assert.equal(error.errorClass, "CommandNotFound");
      assert.match(error.desc, /no-such-command/);
      return true;
    });
    // arguments are passed through: a wrong one is QEMU's GenericError
    await assert.rejects(qmp.execute("query-status", { bogus: 1 }), (error: unknown) => {
      assert.ok(error instanceof QmpError);
      assert.equal(error.errorClass, "GenericError");
      assert.match(error.desc, /bogus/);
      return true;
    });

    const all: string[] = [];
    const offAll = qmp.on("*", (event) => all.push(event.event));
    const resume = qmp.waitForEvent("RESUME", 5000);
    await qmp.execute("cont");
    const resumed: QmpEvent = await resume;
    assert.equal(resumed.event, "RESUME");
    assert.equal(typeof resumed.timestamp.seconds, "number");

    const stop = qmp.waitForEvent("STOP", 5000);
    await qmp.execute("stop");
    await stop;
    assert.equal((await qmp.queryStatus()).status, "paused");
    offAll();
    assert.deepEqual(all, ["RESUME", "STOP"]);

    // quit: QEMU reports SHUTDOWN (host-qmp-quit), exits, and the session closes
    const shutdown = qmp.waitForEvent("SHUTDOWN", 5000);
    const closed = new Promise<void>((resolve) => qmp.onClose(() => resolve()));
    await qmp.execute("quit").catch(() => {}); // the reply can lose the race with the close
    const event = await shutdown;
    assert.equal(event.data?.reason, "host-qmp-quit");
    await closed;
    assert.equal(qmp.closed, true);
    await exited(qemu);
    assert.equal(qemu.exitCode, 0);
    await assert.rejects(qmp.execute("query-status"), /closed/);
  } finally {
    qmp.close();
  }
});

test("handles replies and events split at any byte (through a one-byte-at-a-time proxy)", async () => {
  const socket = path.join(dir, "split.sock");
  const proxySocket = path.join(dir, "proxy.sock");
  startPausedQemu(socket);
  // Make sure QEMU's socket exists before the proxy dials it.
  (await QmpClient.connect(socket)).close();
  const proxy = net.createServer((client) => {
    const upstream = net.createConnection(socket);
    client.pipe(upstream);
    upstream.on("data", async (chunk: Buffer) => {
      upstream.pause();
      for (const byte of chunk) {
        client.write(Buffer.from([byte]));
        await new Promise((resolve) => setImmediate(resolve));
      }
      upstream.resume();
    });
    upstream.on("close", () => client.destroy());
    client.on("close", () => upstream.destroy());
  });
  await new Promise<void>((resolve) => proxy.listen(proxySocket, resolve));
  const qmp = await QmpClient.connect(proxySocket);
  try {
    const resume = qmp.waitForEvent("RESUME", 5000);
    const [status] = await Promise.all([qmp.queryStatus(), qmp.execute("cont")]);
    assert.equal(status.status, "prelaunch");
    await resume;
    await assert.rejects(qmp.execute("no-such-command"), QmpError);
    assert.equal((await qmp.queryStatus()).status, "running");
  } finally {
    qmp.close();
    await new Promise((resolve) => proxy.close(resolve));
  }
});

test("connect gives up after its timeout when no socket appears", async () => {
  // The outcome is the error that names the timeout; no stopwatch.
  await assert.rejects(
    QmpClient.connect(path.join(dir, "never.sock"), { timeoutMs: 300 }),
    /did not accept a connection within 300 ms/,
  );
});

test("connect stops when its signal aborts", async () => {
  const controller = new AbortController();
  setTimeout(() => controller.abort(), 100);
  await assert.rejects(
    QmpClient.connect(path.join(dir, "never2.sock"), { timeoutMs: 10_000, signal: controller.signal }),
    /aborted/,
  );
});

test("onClose fires and commands reject once QEMU goes away", async () => {
  const socket = path.join(dir, "gone.sock");
  const qemu = startPausedQemu(socket);
  const qmp = await QmpClient.connect(socket);
  const closed = new Promise<Error | undefined>((resolve) => qmp.onClose(resolve));
  qemu.kill("SIGKILL");
  await closed;
  assert.equal(qmp.closed, true);
  await assert.rejects(qmp.execute("query-status"), /closed/);
});
