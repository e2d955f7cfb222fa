/**
 * The consoles of one run: the serial hub fed by the supervisor, its Unix socket (always),
 * and the browser console server (with CONSOLE_PORT). The launcher's only entry point here.
 */
import type { Server } from "node:net";
import type { ConsoleConfig } from "../config/console.js";
import type { RunPaths } from "../plan/qemu.js";
import type { QemuSupervisor } from "../supervise/supervisor.js";
import { generateToken } from "./auth.js";
import { SerialHub } from "./serialHub.js";
import { listenSerialSocket } from "./serialSocket.js";
import type { ConsoleServer } from "./server.js";

export interface Consoles {
  /** Give to the supervisor as `onSerialData`. */
  onSerialData(data: Buffer): void;
  /** Connects keystrokes to the running QEMU. */
  attach(supervisor: QemuSupervisor): void;
  close(): Promise<void>;
}

export async function startConsoles(options: {
  console?: ConsoleConfig;
  machine: string;
  paths: RunPaths;
  log: (message: string) => void;
}): Promise<Consoles> {
  let supervisor: QemuSupervisor | undefined;
  const hub = new SerialHub((data) => supervisor?.writeSerial(data) ?? false);
  let socket: Server | undefined;
  try {
    socket = await listenSerialSocket(hub, options.paths.serialSocket);
  } catch (error) {
    // The serial console in `docker logs` still works; only the attach is lost.
    options.log(`warning: no serial console socket at ${options.paths.serialSocket}: ${(error as Error).message}`);
  }
  let server: ConsoleServer | undefined;
  if (options.console) {
    const token = options.console.token ?? generateToken();
    // Loaded only when asked for: the web server (http, ws, TLS and zlib underneath) was a fifth
    // of the launcher's start for the many machines that never open it.
    const { ConsoleServer } = await import("./server.js");
    server = await ConsoleServer.start({
      port: options.console.port,
      token,
      machine: options.machine,
      hub,
      vncSocket: options.paths.vncSocket,
      log: options.log,
    }).catch((error: Error) => {
      void new Promise<void>((resolve) => (socket ? socket.close(() => resolve()) : resolve()));
      throw new Error(`CONSOLE_PORT=${options.console!.port}: cannot listen: ${error.message}`);
    });
    options.log(`consoles: http://<this container>:${options.console.port}/ (serial console and screen)`);
    // Printed once, and only when generated: a token the user gave is never echoed.
    if (options.console.token === undefined) {
      options.log(`consoles: no CONSOLE_TOKEN given; generated one for this run: ${token}`);
      options.log(`consoles: open http://<published address>/?token=${token}`);
    }
  }
  return {
    onSerialData: (data) => hub.output(data),
    attach: (running) => {
      supervisor = running;
    },
    close: async () => {
      await server?.close();
      await new Promise<void>((resolve) => (socket ? socket.close(() => resolve()) : resolve()));
    },
  };
}
