/**
 * Refusals in the component's words: the runtime names the container variable
 * (`MEMORY="12" must be at least 128 MiB`), the user wrote an argument (`memory`),
 * so each line says both.
 */
import { formatIssues, type ConfigIssue } from "@devmachines/runtime/config";
import type { DevMachineArgs } from "../args.js";

/** The component argument behind each container variable the runtime reports. */
const ARGUMENT_OF: Readonly<Record<string, keyof DevMachineArgs>> = {
  CPU: "cpu",
  MEMORY: "memory",
  STORAGE: "storage",
  USER: "user",
  PASSWORD: "password",
  PASSWORD_FILE: "password",
  PASSWORD_HASH: "passwordHash",
  PASSWORD_HASH_FILE: "passwordHash",
  SSH_KEYS: "sshKeys",
  SSH_KEYS_FILE: "sshKeys",
  USERS: "users",
  USERS_FILE: "users",
  NETWORK: "network",
  PORTS: "ports",
  VNC: "vnc",
  ACCEL: "accel",
  ARCH: "arch",
  USER_DATA: "userData",
  USER_DATA_FILE: "userData",
  HOSTNAME: "hostname",
  GRACE_SECONDS: "graceSeconds",
  CONSOLE_PORT: "consoles",
  CONSOLE_TOKEN: "consoles",
  CONSOLE_TOKEN_FILE: "consoles",
};

/** The runtime refused the settings; `issues` name the container variable, the message says which argument. */
export class DevMachineConfigError extends Error {
  constructor(
    readonly machine: string,
    readonly issues: ConfigIssue[],
  ) {
    super(`DevMachine "${machine}" has an invalid configuration:\n${issues.map(describeIssue).join("\n")}`);
    this.name = "DevMachineConfigError";
  }
}

/** `  memory: MEMORY="12" must be at least 128 MiB (is 12 B)`: the argument, then the runtime's own line. */
function describeIssue(issue: ConfigIssue): string {
  const argument = ARGUMENT_OF[issue.variable.split(/[.[]/)[0]!];
  return `  ${argument ? `${argument}: ` : ""}${formatIssues([issue]).trim()}`;
}
