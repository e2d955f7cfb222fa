/**
 * The one plain description of a DevMachine container, as types: what `containerSpec`
 * (spec/) builds, what the Pulumi component turns into `docker.Container` arguments
 * (container.ts) and what `runContainerSpec` (run.ts) runs with the Docker CLI.
 */
import type * as pulumi from "@pulumi/pulumi";
import type { DevMachineArgs, NetworkMode, Protocol, RestartPolicy } from "./args.js";

/** The settings of one machine with every `Input` resolved. */
export type MachineSettings = pulumi.Unwrap<DevMachineArgs>;

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
  /** With `consoles`: the console server's container port, and its host port when fixed. */
  console?: { containerPort: number; hostPort?: number };
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

/** The environment as Docker wants it: `NAME=value` lines, in a stable order. */
export function envList(env: Record<string, string>): string[] {
  return Object.keys(env)
    .sort()
    .map((key) => `${key}=${env[key]}`);
}
