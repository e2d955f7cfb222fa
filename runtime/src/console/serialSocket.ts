/**
 * The serial console as a Unix socket in the run folder: `docker exec -it NAME devmachines
 * console` attaches to it, and so does `socat` from a container sharing the folder.
 * Only root inside the container can open it (mode 0600): the socket is the guest's console.
 */
import { chmod, rm } from "node:fs/promises";
import { createServer, type Server, type Socket } from "node:net";
import type { SerialHub } from "./serialHub.js";

export async function listenSerialSocket(hub: SerialHub, path: string): Promise<Server> {
  await rm(path, { force: true }); // a stale socket from the last run blocks listen()
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    const detach = hub.attach({ write: (data) => socket.write(data) });
    socket.on("data", (data: Buffer) => hub.type(data));
    socket.on("error", () => socket.destroy());
    socket.on("close", () => {
      detach();
      sockets.delete(socket);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(path, () => {
      server.off("error", reject);
      resolve();
    });
  });
  await chmod(path, 0o600);
  // close() waits for connections to end: end them, the guest is going away.
  const close = server.close.bind(server);
  server.close = (callback) => {
    for (const socket of sockets) socket.destroy();
    return close(callback);
  };
  return server;
}
