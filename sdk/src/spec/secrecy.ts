/**
 * Which parts of the description a setting given as a Pulumi secret flows into, so that
 * the component keeps exactly those parts secret (container.ts) and leaves the rest
 * readable in previews.
 */
import type { DevMachineArgs } from "../args.js";
import type { SpecSecrets } from "../description.js";

/** A part of the description: the environment, an uploaded file, or any other container argument or SSH output. */
type Part = "env" | "file" | "other";

/**
 * Where each argument's value ends up. Typed against the arguments: a new or renamed
 * argument does not compile until it is placed here. The names in `users` reach no other
 * part: `users` secrecy covers its file (passwords, hashes, keys), while the first user's
 * name still labels the container and is the SSH user.
 */
const REACHES = {
  cpu: ["env"],
  memory: ["env"],
  storage: ["env"],
  user: ["env", "other"],
  password: ["file"],
  passwordHash: ["file"],
  sshKeys: ["env"],
  users: ["file"],
  network: ["env", "other"],
  ports: ["env", "other"],
  sshPort: ["other"],
  sshHostIp: ["other"],
  image: ["other"],
  // Plain booleans, decided before anything resolves: never secret.
  persistent: [],
  keepDisk: [],
  userData: ["file"],
  hostname: ["env", "other"],
  vnc: ["env"],
  accel: ["env"],
  // The ARCH variable, and the default image it picks.
  arch: ["env", "other"],
  labels: ["other"],
  restart: ["other"],
  dockerNetwork: ["other"],
  graceSeconds: ["env", "other"],
  onStop: ["env"],
  snapshot: ["env"],
  readyTimeoutSeconds: ["other"],
  sshHost: ["other"],
  // The token reaches only its file, which is always secret; the port is plain (a secret port
  // would make every container argument secret for a number).
  consoles: ["file"],
  // The default host name (HOSTNAME) derives from it.
  containerName: ["env", "other"],
} as const satisfies Record<keyof DevMachineArgs, readonly Part[]>;

/** What the settings that arrived as Pulumi secrets make secret. */
export interface Secrecy {
  /** The environment and the other arguments (files say it each). */
  parts: SpecSecrets;
  /** This argument arrived as a Pulumi secret (so the file it fills is secret). */
  of(argument: keyof DevMachineArgs): boolean;
}

/** The secrecy of a description whose `secretSettings` (argument names) arrived as Pulumi secrets. */
export function secrecy(secretSettings: readonly string[] = []): Secrecy {
  const secret = new Set(secretSettings);
  const reached = (part: Part) => Object.entries(REACHES).some(([argument, parts]) => secret.has(argument) && (parts as readonly Part[]).includes(part));
  return { parts: { env: reached("env"), other: reached("other") }, of: (argument) => secret.has(argument) };
}
