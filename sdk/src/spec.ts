/**
 * The one plain description of a DevMachine container. `containerSpec` is pure:
 * settings in, description out, validated with the runtime's own rules. The
 * Pulumi component turns the description into `docker.Container` arguments
 * (container.ts), and `runContainerSpec` (run.ts) runs the very same object
 * with the Docker CLI, which is how the conformance tests prove it boots.
 */
import { DEFAULTS as RUNTIME_DEFAULTS, formatIssues, parseConfig, type ConfigIssue } from "@devmachines/runtime/config";
import type * as pulumi from "@pulumi/pulumi";
import type { Accel, DevMachineArgs, NetworkMode, Protocol, RestartPolicy } from "./args.js";

/** The settings of one machine with every `Input` resolved. */
export type MachineSettings = pulumi.Unwrap<DevMachineArgs>;

export const DEFAULT_IMAGE = "devmachines/debian:13";
/** Where the image keeps the VM's disks; the volume is mounted here (the runtime's DISKS_DIR default). */
export const DISKS_DIR: string = RUNTIME_DEFAULTS.disksDir;
/** Where the component uploads secrets; the launcher reads them through *_FILE variables. */
export const SECRETS_DIR = "/run/secrets/devmachines";
/** The launcher reads extra user data from here when USER_DATA is not set (the runtime's default). */
export const USER_DATA_PATH: string = RUNTIME_DEFAULTS.userDataFile;
export const LABEL_PREFIX = "dev.devmachines";
/**
 * The component's defaults: the one place they are written. Those the launcher has itself
 * (network, accel, grace period) come from the runtime; CPU, MEMORY, STORAGE and USER have
 * no runtime default (the container requires them), so the component's live here.
 */
export const DEFAULTS = {
  cpu: 2,
  memory: "2G",
  storage: "20G",
  user: "dev",
  network: RUNTIME_DEFAULTS.network as NetworkMode,
  accel: RUNTIME_DEFAULTS.accel as Accel,
  restart: "unless-stopped" as RestartPolicy,
  graceSeconds: RUNTIME_DEFAULTS.graceSeconds as number,
  /** Docker's stop timeout beyond the guest's grace period: the launcher needs a moment after the kill. */
  stopMarginSeconds: 30,
  readyTimeoutSeconds: 600,
  sshHost: "127.0.0.1",
} as const;

/** A file placed into the container before it starts. */
export interface SpecFile {
  /** Absolute path inside the container. */
  path: string;
  content: string;
  /** Octal permission bits, e.g. "0600". */
  mode: string;
  /** Contains a secret (a password, a hash, or a setting that was a Pulumi secret): Pulumi keeps it secret, the CLI run writes it to a private temp dir only. */
  secret: boolean;
}

/**
 * Which parts of the description hold values of settings that were Pulumi secrets, so the
 * component keeps those parts secret (files say it each, in `files[].secret`).
 */
export interface SpecSecrets {
  /** The environment: Pulumi keeps `envs` secret (`docker inspect` still shows them: secrets belong in files). */
  env: boolean;
  /** Every other container argument (name, labels, ports, networks, ...) and the SSH outputs. */
  other: boolean;
}

/** A container port published on the Docker host. */
export interface PublishedPort {
  containerPort: number;
  /** Undefined: Docker picks a free port. */
  hostPort?: number;
  /** Undefined: every address. */
  hostIp?: string;
  protocol: Protocol;
}

export interface SpecVolume {
  /** Docker volume name. */
  name: string;
  containerPath: string;
  /** Leave the volume in place when the machine is destroyed. */
  keep: boolean;
  labels: Record<string, string>;
}

export interface SpecNetwork {
  name: string;
  aliases: string[];
}

/** One DevMachine container, as plain data. */
export interface ContainerSpec {
  /** Container name (unique per Docker host). */
  name: string;
  image: string;
  hostname: string;
  env: Record<string, string>;
  files: SpecFile[];
  devices: string[];
  capAdd: string[];
  ports: PublishedPort[];
  volumes: SpecVolume[];
  labels: Record<string, string>;
  secrets: SpecSecrets;
  // No healthcheck here: the image's own HEALTHCHECK (Dockerfile: `--health`, 600 s start period)
  // is inherited, so `docker run`, compose and Pulumi all wait on the same check.
  stopSignal: "SIGTERM";
  stopTimeoutSeconds: number;
  restart: RestartPolicy;
  networks: SpecNetwork[];
  /** How long to wait for `healthy` (the image's health check). */
  readyTimeoutSeconds: number;
  /** What users need to log in; not part of the container, used for outputs. */
  access: MachineAccess;
}

/** How to reach the machine over SSH. */
export interface MachineAccess {
  user: string;
  network: NetworkMode;
  /** Docker host address for NAT; undefined in BRIDGE mode (the container's IP is only known once it runs). */
  sshHost?: string;
  /** Published host port, or 22 in BRIDGE mode; undefined when Docker picks it. */
  sshPort?: number;
}

/** Where a group or the caller wants extra context in the description. */
export interface SpecContext {
  /** Group name, recorded in a label. */
  group?: string;
  /** Host name within the group's hosts, recorded in a label. */
  hostName?: string;
  /** More names on the Docker network (a group adds the machine's short name). */
  aliases?: string[];
  /** The settings (field names) that arrived as Pulumi secrets: what they flow into is kept secret. */
  secretSettings?: readonly string[];
}

/** Settings that reach the container's environment. */
const ENV_SETTINGS = ["cpu", "memory", "storage", "network", "accel", "hostname", "containerName", "graceSeconds", "user", "sshKeys", "ports", "vnc"];
/**
 * Settings that reach other container arguments or the SSH outputs. The names in `users` are
 * not among them: `users` secrecy covers its file (passwords, hashes, keys), while the first
 * user's name still labels the container and is the SSH user.
 */
const OTHER_SETTINGS = [
  "containerName", "image", "hostname", "labels", "ports", "sshPort", "sshHostIp", "restart", "dockerNetwork",
  "graceSeconds", "readyTimeoutSeconds", "user", "network", "sshHost",
];

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

/** The component argument behind each container variable the runtime reports. */
const ARGUMENT_OF: Record<string, string> = {
  CPU: "cpu",
  MEMORY: "memory",
  STORAGE: "storage",
  USER: "user",
  PASSWORD: "password",
  PASSWORD_FILE: "password",
  PASSWORD_HASH: "passwordHash",
  SSH_KEYS: "sshKeys",
  SSH_KEYS_FILE: "sshKeys",
  USERS: "users",
  USERS_FILE: "users",
  NETWORK: "network",
  PORTS: "ports",
  VNC: "vnc",
  ACCEL: "accel",
  USER_DATA: "userData",
  USER_DATA_FILE: "userData",
  HOSTNAME: "hostname",
  GRACE_SECONDS: "graceSeconds",
};

/** `  memory: MEMORY="12" must be at least 128 MiB (is 12 B)`: the argument, then the runtime's own line. */
function describeIssue(issue: ConfigIssue): string {
  const argument = ARGUMENT_OF[issue.variable.split(/[.[]/)[0]!];
  return `  ${argument ? `${argument}: ` : ""}${formatIssues([issue]).trim()}`;
}

/**
 * Builds the container description of one machine, or throws
 * `DevMachineConfigError` with the messages the container itself would print.
 */
export function containerSpec(name: string, settings: MachineSettings, context: SpecContext = {}): ContainerSpec {
  const containerName = settings.containerName ?? name;
  const network = settings.network ?? DEFAULTS.network;
  const issues: ConfigIssue[] = [];
  const secretSettings = new Set(context.secretSettings ?? []);
  const secret = (fields: readonly string[]) => fields.some((field) => secretSettings.has(field));

  const env: Record<string, string> = {
    CPU: String(settings.cpu ?? DEFAULTS.cpu),
    MEMORY: settings.memory ?? DEFAULTS.memory,
    STORAGE: settings.storage ?? DEFAULTS.storage,
    NETWORK: network,
    ACCEL: settings.accel ?? DEFAULTS.accel,
    HOSTNAME: settings.hostname ?? defaultHostname(containerName),
    GRACE_SECONDS: String(settings.graceSeconds ?? DEFAULTS.graceSeconds),
  };
  const files: SpecFile[] = [];

  const users = settings.users ?? [];
  const user = settings.user ?? (users.length === 0 ? DEFAULTS.user : undefined);
  if (user !== undefined) {
    env.USER = user;
    if (settings.password !== undefined) {
      env.PASSWORD_FILE = `${SECRETS_DIR}/password`;
      files.push({ path: env.PASSWORD_FILE, content: settings.password, mode: "0400", secret: true });
    }
    if (settings.passwordHash !== undefined) env.PASSWORD_HASH = settings.passwordHash;
    if (settings.sshKeys?.length) {
      if (settings.sshKeys.some((key) => key.includes(","))) {
        issues.push({ variable: "SSH_KEYS", message: "a key contains a comma, which the comma-separated SSH_KEYS cannot carry" });
      }
      env.SSH_KEYS = settings.sshKeys.map((key) => key.trim()).join(",");
    }
  } else if (settings.password !== undefined || settings.passwordHash !== undefined || settings.sshKeys?.length) {
    issues.push({ variable: "USER", message: "is required when password, passwordHash or sshKeys is set: they belong to that user" });
  }
  if (users.length > 0) {
    // A file, like PASSWORD_FILE: passwords and hashes must not show in `docker inspect`.
    env.USERS_FILE = `${SECRETS_DIR}/users.json`;
    files.push({ path: env.USERS_FILE, content: JSON.stringify(users), mode: "0400", secret: secret(["users"]) || users.some(hasPassword) });
  }

  const forwards: string[] = [];
  const ports: PublishedPort[] = [];
  const sshHostIp = settings.sshHostIp;
  if (network === "NAT") {
    ports.push({ containerPort: 22, protocol: "tcp", ...(settings.sshPort !== undefined && { hostPort: settings.sshPort }), ...(sshHostIp && { hostIp: sshHostIp }) });
    for (const port of settings.ports ?? []) {
      const protocol = port.protocol ?? "tcp";
      // Container port = guest port: the launcher forwards it into the guest, Docker publishes it.
      forwards.push(`${port.guestPort}:${port.guestPort}/${protocol}`);
      const hostIp = port.hostIp ?? sshHostIp;
      ports.push({
        containerPort: port.guestPort,
        protocol,
        ...(port.hostPort !== undefined && { hostPort: port.hostPort }),
        ...(hostIp && { hostIp }),
      });
    }
  } else if (settings.ports?.length || settings.sshPort !== undefined) {
    issues.push({ variable: "PORTS", message: "has no effect with NETWORK=BRIDGE: the VM owns the container's address, so reach its ports there (drop ports and sshPort)" });
  }
  if (forwards.length > 0) env.PORTS = forwards.join(",");
  if (settings.vnc !== undefined) env.VNC = settings.vnc;
  if (settings.userData !== undefined) {
    const secretUserData = secret(["userData"]);
    files.push({ path: USER_DATA_PATH, content: settings.userData, mode: secretUserData ? "0400" : "0444", secret: secretUserData });
  }

  // The runtime's own parser is the judge: same rules, same messages as the container.
  const fileContent = new Map(files.map((file) => [file.path, file.content]));
  const parsed = parseConfig(env, (path) => fileContent.get(path));
  if (!parsed.ok) issues.push(...parsed.issues);
  for (const [field, value] of [
    ["graceSeconds", settings.graceSeconds],
    ["readyTimeoutSeconds", settings.readyTimeoutSeconds],
    ["sshPort", settings.sshPort],
  ] as const) {
    if (value !== undefined && (!Number.isInteger(value) || value < (field === "graceSeconds" ? 0 : 1) || (field === "sshPort" && value > 65535))) {
      issues.push({ variable: field, value: String(value), message: field === "sshPort" ? "must be a port number 1-65535" : "must be a whole number of seconds" });
    }
  }
  if (issues.length > 0) throw new DevMachineConfigError(name, issues);
  if (env.PASSWORD_HASH !== undefined) hashIntoUsersFile(env, files);

  const labels: Record<string, string> = {};
  for (const { label, value } of settings.labels ?? []) labels[label] = value;
  Object.assign(labels, {
    [`${LABEL_PREFIX}.machine`]: name,
    [`${LABEL_PREFIX}.network`]: network,
    [`${LABEL_PREFIX}.user`]: user ?? users[0]?.name ?? "",
    ...(context.group !== undefined && { [`${LABEL_PREFIX}.group`]: context.group }),
    ...(context.hostName !== undefined && { [`${LABEL_PREFIX}.host`]: context.hostName }),
  });

  const volumes: SpecVolume[] =
    settings.persistent === false
      ? []
      : [{ name: `${containerName}-disk`, containerPath: DISKS_DIR, keep: settings.keepDisk ?? false, labels: { [`${LABEL_PREFIX}.machine`]: name } }];
  const graceSeconds = settings.graceSeconds ?? DEFAULTS.graceSeconds;

  return {
    name: containerName,
    image: settings.image ?? DEFAULT_IMAGE,
    hostname: env.HOSTNAME!,
    env,
    files,
    // /dev/kvm for speed (the launcher falls back to TCG when it does not work), /dev/net/tun for BRIDGE's TAP.
    devices: ["/dev/kvm", "/dev/net/tun"],
    // NET_ADMIN and nothing broader: enough for the bridge, the TAP and the address move.
    capAdd: ["NET_ADMIN"],
    ports,
    volumes,
    labels,
    secrets: { env: secret(ENV_SETTINGS), other: secret(OTHER_SETTINGS) },
    stopSignal: "SIGTERM",
    stopTimeoutSeconds: graceSeconds + DEFAULTS.stopMarginSeconds,
    restart: settings.restart ?? DEFAULTS.restart,
    networks: settings.dockerNetwork ? [{ name: settings.dockerNetwork, aliases: [name, env.HOSTNAME!, ...(context.aliases ?? [])].filter(unique) }] : [],
    readyTimeoutSeconds: settings.readyTimeoutSeconds ?? DEFAULTS.readyTimeoutSeconds,
    access: {
      user: user ?? users[0]!.name,
      network,
      ...(network === "NAT" && { sshHost: settings.sshHost ?? DEFAULTS.sshHost }),
      ...(network === "NAT" ? settings.sshPort !== undefined && { sshPort: settings.sshPort } : { sshPort: 22 }),
    },
  };
}

function hasPassword(user: { password?: string | undefined; passwordHash?: string | undefined }): boolean {
  return user.password !== undefined || user.passwordHash !== undefined;
}

/**
 * The runtime reads PASSWORD_HASH from the environment only, where `docker inspect` shows it.
 * So once the settings passed the runtime's rules in their short form (USER, PASSWORD_HASH,
 * SSH_KEYS), the user travels as the first entry of USERS_FILE instead: the same user (first,
 * with sudo), read from a secret file.
 */
function hashIntoUsersFile(env: Record<string, string>, files: SpecFile[]): void {
  const entry = {
    name: env.USER!,
    passwordHash: env.PASSWORD_HASH!,
    ...(env.SSH_KEYS !== undefined && { sshKeys: env.SSH_KEYS.split(",") }),
    sudo: true,
  };
  delete env.USER;
  delete env.PASSWORD_HASH;
  delete env.SSH_KEYS;
  const path = `${SECRETS_DIR}/users.json`;
  const existing = files.find((file) => file.path === path);
  const others = existing ? (JSON.parse(existing.content) as unknown[]) : [];
  const file: SpecFile = { path, content: JSON.stringify([entry, ...others]), mode: "0400", secret: true };
  if (existing) files.splice(files.indexOf(existing), 1, file);
  else files.push(file);
  env.USERS_FILE = path;
}

function unique(value: string, index: number, all: string[]): boolean {
  return all.indexOf(value) === index;
}

/**
 * A host name from a container name: RFC 1123 labels of a-z, 0-9 and inner hyphens
 * (other characters become hyphens), at most 63 characters in all. Trimmed after the
 * cut, so the result never ends in `-` or `.`; empty labels (`..`) are dropped.
 */
export function defaultHostname(name: string): string {
  const labels = (text: string) =>
    text
      .split(".")
      .map((label) => label.replace(/^-+|-+$/g, ""))
      .filter(Boolean)
      .join(".");
  const cleaned = labels(labels(name.toLowerCase().replace(/[^a-z0-9.-]/g, "-")).slice(0, 63));
  return cleaned || "devmachine";
}

/** The environment as Docker wants it: `NAME=value` lines, in a stable order. */
export function envList(env: Record<string, string>): string[] {
  return Object.keys(env)
    .sort()
    .map((key) => `${key}=${env[key]}`);
}
