/**
 * The launcher's whole configuration, read from the container's environment.
 * Every problem is collected (never just the first), each naming its variable
 * and the rule it broke; nothing is created or changed before this passes.
 */
import { hostname as osHostname } from "node:os";
import { z } from "zod";
import type { Arch } from "../plan/arch.js";
import {
  accelField,
  archField,
  booleanField,
  dnsField,
  cpuField,
  hostnameField,
  hostPathField,
  memoryField,
  networkField,
  onStopField,
  snapshotField,
  passwordField,
  passwordHashField,
  portsField,
  secondsField,
  sshKeyField,
  storageField,
  userEntryField,
  userNameField,
  vncField,
} from "./fields.js";
import { consolePortField, consoleTokenField, type ConsoleConfig } from "./console.js";
import { parsePortList, type PortForward } from "./ports.js";
import { splitSshKeys } from "./sshKeys.js";
import { parseVnc, vncTcpPorts, type VncSpec } from "./vnc.js";
import { parseUserData, type UserData } from "./userData.js";

export interface UserConfig {
  name: string;
  password?: string;
  passwordHash?: string;
  sshKeys: string[];
  sudo: boolean;
}

export interface LauncherConfig {
  cpu: number;
  memoryBytes: number;
  storageBytes: number;
  users: UserConfig[];
  network: "NAT" | "BRIDGE";
  /** Forwards from the container into the guest (NAT only); SSH's container:22 -> guest:22 comes first. */
  ports: PortForward[];
  vnc?: VncSpec;
  /** The browser consoles' HTTP server (CONSOLE_PORT); off when absent. */
  console?: ConsoleConfig;
  /** Resolvers for the guest instead of the ones discovered from the container (empty: discovered). */
  dns: string[];
  accel: "auto" | "kvm" | "tcg";
  /** ARCH when set; otherwise the base image's own (plan/arch.ts), else x86_64. */
  arch?: Arch;
  userData?: UserData;
  hostname: string;
  /** BASE_IMAGE when set; otherwise chosen at start from the mounts (locations/plan.ts). */
  baseImage?: string;
  /** DISKS_DIR when set; otherwise chosen at start from the mounts (locations/plan.ts). */
  disksDir?: string;
  ephemeral: boolean;
  graceSeconds: number;
  /**
   * ON_STOP: `poweroff` asks the guest to power off on SIGTERM; `suspend` saves its whole state
   * beside the disk instead, and the next start resumes it (see supervise/suspend.ts).
   */
  onStop: "poweroff" | "suspend";
  /**
   * SNAPSHOT: `auto` lets a new machine whose size and hardware match start from the machine
   * image's captured ready state and be resealed (plan/clone.ts); `off` always cold-boots.
   */
  snapshot: "auto" | "off";
  /** How long the guest may take to become ready before the health check turns unhealthy. */
  readyTimeoutSeconds: number;
}

/**
 * Where things live in the runtime image, unless the environment or the upstream project's
 * mounts (/disks, /image: see locations/plan.ts) say otherwise.
 */
export const DEFAULTS = {
  baseImage: "/images/base.qcow2",
  disksDir: "/var/lib/devmachines",
  userDataFile: "/etc/devmachines/user-data",
  network: "NAT",
  accel: "auto",
  onStop: "poweroff",
  snapshot: "auto",
  /**
   * Seconds between SIGTERM and killing QEMU. It must fit inside the container's stop timeout
   * (Docker's and compose's default: 10 s), with room for QEMU's quit (immediate in practice,
   * 3 s at worst) and the launcher's exit, so that the launcher, not Docker's SIGKILL, ends the
   * machine. An idle host's guest powers off in 2-3 s, a busy one's took more than 6 s (TCG
   * guests on two loaded cores): 8 s is the most that still fits 10 s. Set a longer
   * GRACE_SECONDS together with a longer stop timeout.
   */
  graceSeconds: 8,
  /** READY_TIMEOUT: ten times a TCG boot (40-60 s), since a busy two-core host can take minutes; the image's HEALTHCHECK start period is the same. */
  readyTimeoutSeconds: 600,
  /** The guest's SSH port, forwarded from the same container port in NAT mode. */
  sshPort: 22,
} as const;

/** Variables that can also be read from a file named by `NAME_FILE` (Docker-secrets convention). */
const FROM_FILE = new Set(["PASSWORD", "PASSWORD_HASH", "SSH_KEYS", "USERS", "CONSOLE_TOKEN"]);

/** Variables whose values are secret: never echoed in messages. */
const SECRET = new Set(["PASSWORD", "PASSWORD_FILE", "PASSWORD_HASH", "PASSWORD_HASH_FILE", "USERS", "USERS_FILE", "CONSOLE_TOKEN"]);

export interface ConfigIssue {
  /** The variable, with a path inside it for JSON values (`USERS[0].name`). */
  variable: string;
  /** The offending value as given, when it is not secret. */
  value?: string;
  /** What is wrong, worded as the rule. */
  message: string;
}

export type ParseResult =
  | { ok: true; config: LauncherConfig; warnings: string[] }
  | { ok: false; issues: ConfigIssue[] };

/** Reads a file named by a `*_FILE` variable; undefined when it does not exist. */
/** Reads a `*_FILE`: its bytes (checked to be UTF-8 here) or text, undefined when it cannot be read. */
export type FileReader = (path: string) => string | Uint8Array | undefined;

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** The file's text, or undefined when its bytes are not UTF-8 (a binary file named by mistake). */
function fileText(content: string | Uint8Array): string | undefined {
  if (typeof content === "string") return content;
  try {
    return utf8.decode(content);
  } catch {
    return undefined;
  }
}

const required = (variable: string, rule: string) => ({ message: `is required: ${rule}` , variable });

const envSchema = z.object({
  CPU: cpuField,
  MEMORY: memoryField,
  STORAGE: storageField,
  USER: userNameField.optional(),
  PASSWORD: passwordField.optional(),
  PASSWORD_HASH: passwordHashField.optional(),
  SSH_KEYS: z.array(sshKeyField).optional(),
  USERS: z.array(userEntryField).optional(),
  NETWORK: networkField.default(DEFAULTS.network),
  PORTS: portsField.optional(),
  VNC: vncField.optional(),
  CONSOLE_PORT: consolePortField.optional(),
  CONSOLE_TOKEN: consoleTokenField.optional(),
  DNS: dnsField.optional(),
  ACCEL: accelField.default(DEFAULTS.accel),
  ARCH: archField.optional(),
  HOSTNAME: hostnameField.optional(),
  BASE_IMAGE: hostPathField.optional(),
  DISKS_DIR: hostPathField.optional(),
  EPHEMERAL: booleanField.optional(),
  GRACE_SECONDS: secondsField.optional(),
  ON_STOP: onStopField.default(DEFAULTS.onStop),
  SNAPSHOT: snapshotField.default(DEFAULTS.snapshot),
  READY_TIMEOUT: secondsField.refine((seconds) => seconds > 0, "must be at least 1 second").optional(),
});

/**
 * Turns the environment into a configuration, or into the full list of problems.
 * `readFile` resolves the `*_FILE` variables (Docker-secrets convention).
 */
export function parseConfig(env: Record<string, string | undefined>, readFile: FileReader): ParseResult {
  const issues: ConfigIssue[] = [];
  const warnings: string[] = [];
  const value = (name: string) => {
    const text = env[name];
    return text === undefined || text === "" ? undefined : text;
  };

  /** The variable a value came from: `NAME_FILE` when that is set, else `NAME`. */
  const sourceOf = (name: string) => (value(`${name}_FILE`) === undefined ? name : `${name}_FILE`);
  const fromFile = (name: string): string | undefined => {
    const path = value(`${name}_FILE`);
    const direct = value(name);
    if (path === undefined) return direct;
    if (direct !== undefined) {
      issues.push({ variable: `${name}_FILE`, message: `is set together with ${name}: give one of them` });
      return undefined;
    }
    const content = readFile(path);
    if (content === undefined) {
      issues.push({ variable: `${name}_FILE`, message: `names ${path}, which does not exist, is not a regular file or cannot be read (mount it into the container)` });
      return undefined;
    }
    const text = fileText(content);
    if (text === undefined) issues.push({ variable: `${name}_FILE`, message: `names ${path}, which is not UTF-8 text` });
    return text;
  };

  const password = fromFile("PASSWORD")?.replace(/\r?\n$/, "");
  // A hash holds no whitespace, so the file may end in a line break or not (`mkpasswd > file`).
  const passwordHash = fromFile("PASSWORD_HASH")?.trim();
  const sshKeysText = fromFile("SSH_KEYS");
  const sshKeys = sshKeysText === undefined ? undefined : splitSshKeys(sshKeysText, value("SSH_KEYS_FILE") ? "\n" : ",");
  let usersJson: unknown;
  const usersText = fromFile("USERS");
  if (usersText !== undefined) {
    try {
      usersJson = JSON.parse(usersText);
    } catch {
      issues.push({ variable: sourceOf("USERS"), message: "is not valid JSON: expected [{\"name\": ..., \"sshKeys\": [...], \"password\"?: ..., \"sudo\"?: true}]" });
    }
  }
  const consoleToken = fromFile("CONSOLE_TOKEN")?.replace(/\r?\n$/, "");
  const defaultUserData = value("USER_DATA_FILE") || value("USER_DATA") ? undefined : readFile(DEFAULTS.userDataFile);
  const userDataText = value("USER_DATA_FILE") || value("USER_DATA") ? fromFile("USER_DATA") : defaultUserData === undefined ? undefined : fileText(defaultUserData);
  if (defaultUserData !== undefined && userDataText === undefined) {
    issues.push({ variable: "USER_DATA", message: `(the image's ${DEFAULTS.userDataFile}) is not UTF-8 text` });
  }

  const raw = {
    CPU: value("CPU"),
    MEMORY: value("MEMORY"),
    STORAGE: value("STORAGE"),
    USER: value("USER"),
    PASSWORD: password,
    PASSWORD_HASH: passwordHash,
    SSH_KEYS: sshKeys,
    USERS: usersJson,
    NETWORK: value("NETWORK")?.toUpperCase(),
    PORTS: value("PORTS"),
    VNC: value("VNC"),
    CONSOLE_PORT: value("CONSOLE_PORT"),
    CONSOLE_TOKEN: consoleToken,
    DNS: value("DNS"),
    ACCEL: value("ACCEL")?.toLowerCase(),
    ARCH: value("ARCH"),
    HOSTNAME: value("HOSTNAME"),
    BASE_IMAGE: value("BASE_IMAGE"),
    DISKS_DIR: value("DISKS_DIR"),
    EPHEMERAL: value("EPHEMERAL"),
    GRACE_SECONDS: value("GRACE_SECONDS"),
    ON_STOP: value("ON_STOP")?.toLowerCase(),
    SNAPSHOT: value("SNAPSHOT")?.toLowerCase(),
    READY_TIMEOUT: value("READY_TIMEOUT"),
  };

  for (const [variable, rule] of [
    ["CPU", "the number of virtual CPUs, e.g. CPU=2"],
    ["MEMORY", "the guest's memory, e.g. MEMORY=2G"],
    ["STORAGE", "the guest's disk size, e.g. STORAGE=20G"],
  ] as const) {
    if (raw[variable] === undefined) issues.push(required(variable, rule));
  }
  if (raw.USER === undefined && usersText === undefined) {
    issues.push(required("USER", "the guest user's name, e.g. USER=dev (or several users in USERS)"));
  }

  const parsed = envSchema.safeParse(raw);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      const [variable, ...rest] = issue.path.map(String);
      // Missing required values were reported above with their own wording.
      if (issue.code === "invalid_type" && raw[variable as keyof typeof raw] === undefined) continue;
      // A value read from NAME_FILE is reported as NAME_FILE, with the path inside it (SSH_KEYS_FILE[0]).
      const source = FROM_FILE.has(variable!) ? sourceOf(variable!) : variable!;
      const where = source + rest.map((part) => (/^\d+$/.test(part) ? `[${part}]` : `.${part}`)).join("");
      const given = raw[variable as keyof typeof raw];
      const shown = SECRET.has(variable!) || typeof given !== "string" ? {} : { value: given };
      issues.push({ variable: where, ...shown, message: issue.message });
    }
  }

  if ([value("PASSWORD") ?? value("PASSWORD_FILE"), value("PASSWORD_HASH") ?? value("PASSWORD_HASH_FILE")].filter(Boolean).length > 1) {
    issues.push({ variable: sourceOf("PASSWORD_HASH"), message: `is set together with ${sourceOf("PASSWORD")}: give one of them` });
  }
  if (value("USER") === undefined && (raw.PASSWORD || raw.PASSWORD_HASH || raw.SSH_KEYS)) {
    issues.push({ variable: "USER", message: "is required when PASSWORD, PASSWORD_HASH or SSH_KEYS is set: they belong to that user" });
  }

  const listedUsers = Array.isArray(usersJson) ? (usersJson as Record<string, unknown>[]) : [];
  // A password or keys that were given count even when they were refused for another reason
  // (reported on their own): "no user could log in" would only repeat that problem.
  const someoneCanLogIn =
    Boolean(password || raw.PASSWORD_HASH || sshKeys?.length || ["PASSWORD", "PASSWORD_FILE", "PASSWORD_HASH_FILE", "SSH_KEYS", "SSH_KEYS_FILE"].some((name) => value(name))) ||
    listedUsers.some((user) => user?.password || user?.passwordHash || (Array.isArray(user?.sshKeys) && user.sshKeys.length > 0));
  const usersUnreadable = usersText !== undefined && !Array.isArray(usersJson);
  if (!someoneCanLogIn && !usersUnreadable) {
    issues.push({
      variable: "SSH_KEYS",
      message: "or a password is required: no user could log in (set SSH_KEYS, SSH_KEYS_FILE, PASSWORD, PASSWORD_FILE, PASSWORD_HASH or PASSWORD_HASH_FILE, or sshKeys/password in USERS)",
    });
  }

  let userData: UserData | undefined;
  if (userDataText !== undefined) {
    const result = parseUserData(userDataText);
    if (result.ok) userData = result.userData;
    else issues.push({ variable: sourceOf("USER_DATA"), message: result.problem });
  }

  // Checks across values run whenever the values they need parsed, whatever else
  // is wrong, so that every problem is reported at once.
  const names: string[] = [];
  const userName = userNameField.safeParse(raw.USER);
  if (raw.USER !== undefined && userName.success) names.push(userName.data);
  for (const entry of listedUsers) {
    const name = userNameField.safeParse((entry as { name?: unknown } | null)?.name);
    if (name.success) names.push(name.data);
  }
  const seen = new Set<string>();
  for (const name of names) {
    if (seen.has(name)) issues.push({ variable: sourceOf("USERS"), message: `names the user "${name}" twice (USER counts too)` });
    seen.add(name);
  }

  // The good entries of PORTS are compared even when others are bad.
  const ports = raw.PORTS === undefined ? [] : parsePortList(raw.PORTS).forwards;
  {
    const taken = new Set<string>();
    const reported = new Set<string>();
    for (const forward of [{ protocol: "tcp", containerPort: DEFAULTS.sshPort }, ...ports]) {
      const key = `${forward.protocol}/${forward.containerPort}`;
      if (taken.has(key) && !reported.has(key)) {
        reported.add(key);
        issues.push({ variable: "PORTS", message: `forwards container port ${key} twice${forward.containerPort === DEFAULTS.sshPort ? " (tcp/22 is taken by the SSH forward)" : ""}` });
      }
      taken.add(key);
    }
  }

  const consolePort = consolePortField.optional().safeParse(raw.CONSOLE_PORT);
  if (consolePort.success && consolePort.data !== undefined) {
    if (consolePort.data === DEFAULTS.sshPort || ports.some((forward) => forward.protocol === "tcp" && forward.containerPort === consolePort.data)) {
      issues.push({ variable: "CONSOLE_PORT", value: raw.CONSOLE_PORT!, message: `is container port tcp/${consolePort.data}, which already forwards into the guest (SSH or PORTS)` });
    }
  } else if (raw.CONSOLE_TOKEN !== undefined && consolePort.success) {
    issues.push({ variable: sourceOf("CONSOLE_TOKEN"), message: "is set without CONSOLE_PORT: the console server is off, so the token would protect nothing" });
  }

  // A raw VNC display listens on container ports of its own: none may be one that SSH, PORTS
  // or the console server binds, or QEMU (or the console) would fail after the disk was made.
  const vnc = raw.VNC === undefined ? undefined : parseVnc(raw.VNC);
  const vncPorts = vnc?.ok ? vncTcpPorts(vnc.spec) : undefined;
  if (vncPorts) {
    const taken = [
      { port: DEFAULTS.sshPort, by: "the SSH forward" },
      ...ports.filter((forward) => forward.protocol === "tcp").map((forward) => ({ port: forward.containerPort, by: "PORTS" })),
      ...(consolePort.success && consolePort.data !== undefined ? [{ port: consolePort.data, by: "CONSOLE_PORT" }] : []),
    ];
    const clash = taken.find(({ port }) => port >= vncPorts.first && port <= vncPorts.last);
    if (clash) {
      const range = vncPorts.last > vncPorts.first ? `s tcp/${vncPorts.first}-${vncPorts.last}` : ` tcp/${vncPorts.first}`;
      issues.push({ variable: "VNC", value: raw.VNC!, message: `listens on container port${range} (5900 + display), but tcp/${clash.port} is taken by ${clash.by}` });
    }
  }
  if (raw.ON_STOP === "suspend" && booleanField.optional().safeParse(raw.EPHEMERAL).data === true) {
    issues.push({ variable: "ON_STOP", value: value("ON_STOP")!, message: "cannot be suspend with EPHEMERAL=true: an ephemeral disk is made anew at every start, so a saved state would have nothing to resume onto" });
  }

  if (!parsed.success || issues.length > 0) return { ok: false, issues };
  const env2 = parsed.data;

  const users: UserConfig[] = [];
  if (env2.USER !== undefined) {
    users.push({
      name: env2.USER,
      ...(env2.PASSWORD !== undefined && { password: env2.PASSWORD }),
      ...(env2.PASSWORD_HASH !== undefined && { passwordHash: env2.PASSWORD_HASH }),
      sshKeys: env2.SSH_KEYS ?? [],
      sudo: true,
    });
  }
  for (const user of env2.USERS ?? []) {
    users.push({
      name: user.name,
      ...(user.password !== undefined && { password: user.password }),
      ...(user.passwordHash !== undefined && { passwordHash: user.passwordHash }),
      sshKeys: user.sshKeys ?? [],
      sudo: user.sudo ?? true,
    });
  }
  if (env2.NETWORK === "BRIDGE" && env2.CONSOLE_PORT !== undefined) {
    warnings.push("CONSOLE_PORT with NETWORK=BRIDGE: the VM owns the container's address, so a published port reaches the VM, not the console server; use docker exec NAME devmachines console, or NAT");
  }
  if (env2.NETWORK === "BRIDGE" && ports.length > 0) {
    warnings.push("PORTS has no effect with NETWORK=BRIDGE: the VM owns the container's address, so every port of the VM is reachable there directly");
  }

  return {
    ok: true,
    warnings,
    config: {
      cpu: env2.CPU,
      memoryBytes: env2.MEMORY,
      storageBytes: env2.STORAGE,
      users,
      network: env2.NETWORK,
      ports,
      ...(env2.VNC !== undefined && { vnc: env2.VNC }),
      ...(env2.CONSOLE_PORT !== undefined && {
        console: { port: env2.CONSOLE_PORT, ...(env2.CONSOLE_TOKEN !== undefined && { token: env2.CONSOLE_TOKEN }) },
      }),
      dns: env2.DNS ?? [],
      accel: env2.ACCEL,
      ...(env2.ARCH !== undefined && { arch: env2.ARCH }),
      ...(userData !== undefined && { userData }),
      hostname: env2.HOSTNAME ?? osHostname(),
      ...(env2.BASE_IMAGE !== undefined && { baseImage: env2.BASE_IMAGE }),
      ...(env2.DISKS_DIR !== undefined && { disksDir: env2.DISKS_DIR }),
      ephemeral: env2.EPHEMERAL ?? false,
      graceSeconds: env2.GRACE_SECONDS ?? DEFAULTS.graceSeconds,
      onStop: env2.ON_STOP,
      snapshot: env2.SNAPSHOT,
      readyTimeoutSeconds: env2.READY_TIMEOUT ?? DEFAULTS.readyTimeoutSeconds,
    },
  };
}

/** Values are shown up to this many characters: a huge PORTS must not flood the log once per problem. */
const SHOWN_VALUE_CHARS = 200;

/** One line per problem, as the container prints them. */
export function formatIssues(issues: ConfigIssue[]): string {
  const shown = (value: string) =>
    value.length > SHOWN_VALUE_CHARS ? `${JSON.stringify(value.slice(0, SHOWN_VALUE_CHARS))}... (${value.length} characters)` : JSON.stringify(value);
  return issues.map((issue) => `  ${issue.variable}${issue.value === undefined ? "" : `=${shown(issue.value)}`} ${issue.message}`).join("\n");
}
