/**
 * `consoles`: the launcher's console server on container port 6080 (CONSOLE_PORT), published
 * like SSH (at `sshHostIp`), its token in a secret file (CONSOLE_TOKEN_FILE). NAT only: in
 * BRIDGE mode the VM owns the container's address, so a published port reaches the VM.
 */
import type { ConfigIssue } from "@devmachines/runtime/config";
import type { NetworkMode } from "../args.js";
import { CONSOLE_CONTAINER_PORT, SECRETS_DIR } from "../defaults.js";
import type { MachineAccess, MachineSettings, PublishedPort, SpecFile } from "../description.js";

export interface ConsolesPart {
  env: Record<string, string>;
  files: SpecFile[];
  published: PublishedPort[];
  issues: ConfigIssue[];
  access?: MachineAccess["console"];
}

export function consolesPart(settings: MachineSettings, network: NetworkMode): ConsolesPart {
  const part: ConsolesPart = { env: {}, files: [], published: [], issues: [] };
  const consoles = settings.consoles;
  if (consoles === undefined) return part;
  if (network !== "NAT") {
    part.issues.push({ variable: "consoles", message: "need network NAT: in BRIDGE mode the VM owns the container's address, so the console server cannot be published" });
    return part;
  }
  if (consoles.port !== undefined && (!Number.isInteger(consoles.port) || consoles.port < 1 || consoles.port > 65535)) {
    part.issues.push({ variable: "consoles.port", value: String(consoles.port), message: "must be a port number 1-65535" });
  }
  part.env.CONSOLE_PORT = String(CONSOLE_CONTAINER_PORT);
  part.published.push({
    containerPort: CONSOLE_CONTAINER_PORT,
    protocol: "tcp",
    ...(consoles.port !== undefined && { hostPort: consoles.port }),
    ...(settings.sshHostIp && { hostIp: settings.sshHostIp }),
  });
  if (consoles.token !== undefined) {
    part.env.CONSOLE_TOKEN_FILE = `${SECRETS_DIR}/console-token`;
    part.files.push({ path: part.env.CONSOLE_TOKEN_FILE, content: consoles.token, mode: "0400", secret: true });
  }
  part.access = { containerPort: CONSOLE_CONTAINER_PORT, ...(consoles.port !== undefined && { hostPort: consoles.port }) };
  return part;
}
