import assert from "node:assert/strict";
import net from "node:net";
import { test } from "node:test";
import { SSH_WAIT_MIN_MS, sshWaitMs, waitForSsh } from "../src/supervise/readiness.js";

test("sshWaitMs: the SSH wait lasts until READY_TIMEOUT, and never less than the floor", () => {
  // Found by twelve clones at once: sshd answered a minute after a fixed two-minute wait had given up.
  assert.equal(sshWaitMs(900_000, 300_000), 600_000);
  assert.equal(sshWaitMs(600_000, 590_000), SSH_WAIT_MIN_MS);
  assert.equal(sshWaitMs(600_000, 700_000), SSH_WAIT_MIN_MS);
});

/** A port that accepts connections and never says anything (sshd too starved to send its banner). */
async function silentServer(): Promise<{ port: number; close: () => void }> {
  const sockets: net.Socket[] = [];
  const server = net.createServer((socket) => void sockets.push(socket));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { port: (server.address() as net.AddressInfo).port, close: () => (sockets.forEach((s) => s.destroy()), server.close()) };
}

test("waitForSsh: retries until its deadline, then says how long it waited and what the last try met", async () => {
  const silent = await silentServer();
  try {
    await assert.rejects(waitForSsh("127.0.0.1", silent.port, 1500), /^Error: SSH did not answer at 127\.0\.0\.1:\d+ within 1\.5 s; last try: no SSH banner from/);
  } finally {
    silent.close();
  }
});

test("waitForSsh: a banner that comes on a later try is returned", async () => {
  const silent = await silentServer();
  silent.close();
  // Nothing listens at first (connection refused); the server answers from the second try on.
  const later = net.createServer((socket) => socket.end("SSH-2.0-OpenSSH_10.0\r\n"));
  setTimeout(() => later.listen(silent.port, "127.0.0.1"), 300);
  try {
    assert.equal(await waitForSsh("127.0.0.1", silent.port, 30_000), "SSH-2.0-OpenSSH_10.0");
  } finally {
    later.close();
  }
});

test("waitForSsh: a banner slower than the first try's 5 s still arrives (each try waits longer)", async () => {
  // Twelve clones at once: sshd answered every connection after more than 5 s, so fixed 5 s
  // tries never saw a banner while `docker exec ... /dev/tcp` waiting 20 s did.
  const slow = net.createServer((socket) => {
    const timer = setTimeout(() => socket.end("SSH-2.0-OpenSSH_10.0\r\n"), 5500);
    socket.on("close", () => clearTimeout(timer));
  });
  await new Promise<void>((resolve) => slow.listen(0, "127.0.0.1", resolve));
  try {
    assert.equal(await waitForSsh("127.0.0.1", (slow.address() as net.AddressInfo).port, 30_000), "SSH-2.0-OpenSSH_10.0");
  } finally {
    slow.close();
  }
});
