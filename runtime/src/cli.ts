#!/usr/bin/env node
/**
 * `devmachines`: commands for inside a running DevMachine container.
 *
 *   devmachines console   attach this terminal to the guest's serial console
 *                         (docker exec -it NAME devmachines console); Ctrl-] detaches
 */
import { connect } from "node:net";
import { runPaths } from "./plan/qemu.js";

const RUN_DIR = process.env.DEVMACHINES_RUN_DIR ?? "/run/devmachines";
/** Ctrl-]: telnet's and virsh's detach key; the guest never sees it. */
const DETACH = 0x1d;

const USAGE = `Usage: devmachines console
  console   attach to the guest's serial console (run with docker exec -it); Ctrl-] detaches`;

function attachConsole(): Promise<number> {
  const path = runPaths(RUN_DIR).serialSocket;
  return new Promise((resolve) => {
    const socket = connect(path);
    const stdin = process.stdin;
    const restore = () => {
      if (stdin.isTTY) stdin.setRawMode(false);
      stdin.pause();
    };
    socket.on("connect", () => {
      process.stderr.write(`devmachines: attached to the serial console (${path}); Ctrl-] detaches\r\n`);
      if (stdin.isTTY) stdin.setRawMode(true);
      else process.stderr.write("devmachines: stdin is not a terminal (use docker exec -it); typing goes through line by line\n");
      stdin.on("data", (data: Buffer) => {
        const at = data.indexOf(DETACH);
        if (at >= 0) {
          if (at > 0) socket.write(data.subarray(0, at));
          process.stderr.write("\r\ndevmachines: detached\r\n");
          socket.end();
          restore();
          return resolve(0);
        }
        socket.write(data);
      });
      stdin.on("end", () => socket.end());
    });
    socket.on("data", (data) => process.stdout.write(data));
    socket.on("error", (error: NodeJS.ErrnoException) => {
      restore();
      const why =
        error.code === "ENOENT" || error.code === "ECONNREFUSED"
          ? "no serial console here: is the launcher running in this container (docker exec into a DevMachine)?"
          : error.message;
      process.stderr.write(`devmachines: cannot attach to ${path}: ${why}\n`);
      resolve(1);
    });
    socket.on("close", () => {
      restore();
      resolve(0);
    });
  });
}

async function main(argv: string[]): Promise<number> {
  if (argv[0] === "--help" || argv[0] === "-h" || argv[0] === "help") {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (argv.length === 1 && argv[0] === "console") return attachConsole();
  process.stderr.write(`${USAGE}\n`);
  return 2;
}

main(process.argv.slice(2)).then((code) => process.exit(code));
