/**
 * Builds the container description of one machine, once: settings in, description out,
 * checked with the runtime's own parser on the very environment and files it deploys.
 * Pure; the parts (users, ports) are built by their own modules, this one adds what is
 * left and assembles them.
 */
import { parseConfig, type ConfigIssue } from "@devmachines/runtime/config";
import { DEFAULT_IMAGES, DEFAULTS, DISKS_DIR, GUEST_SSH_PORT, LABEL_PREFIX, UPSTREAM_LABEL, USER_DATA_PATH } from "../defaults.js";
import type { ContainerSpec, MachineSettings, SpecContext, SpecFile, SpecVolume } from "../description.js";
import { consolesPart } from "./consoles.js";
import { DevMachineConfigError } from "./errors.js";
import { defaultHostname } from "./hostname.js";
import { portsPart } from "./ports.js";
import { secrecy as secrecyOf } from "./secrecy.js";
import { usersPart } from "./users.js";

/** Numbers the runtime never sees (or sees after the component used them): checked here. */
const NUMBER_RULES = [
  { argument: "graceSeconds", min: 0, max: Infinity, rule: "must be a whole number of seconds" },
  { argument: "readyTimeoutSeconds", min: 1, max: Infinity, rule: "must be a whole number of seconds" },
  { argument: "sshPort", min: 1, max: 65535, rule: "must be a port number 1-65535" },
] as const satisfies readonly { argument: keyof MachineSettings; min: number; max: number; rule: string }[];

/**
 * Builds the container description of one machine, or throws
 * `DevMachineConfigError` with the messages the container itself would print.
 */
export function containerSpec(name: string, settings: MachineSettings, context: SpecContext = {}): ContainerSpec {
  const containerName = settings.containerName ?? name;
  const network = settings.network ?? DEFAULTS.network;
  const graceSeconds = settings.graceSeconds ?? DEFAULTS.graceSeconds;
  const secrecy = secrecyOf(context.secretSettings);
  const users = usersPart(settings, secrecy);
  const ports = portsPart(settings, network);
  const consoles = consolesPart(settings, network);

  const env: Record<string, string> = {
    CPU: String(settings.cpu ?? DEFAULTS.cpu),
    MEMORY: settings.memory ?? DEFAULTS.memory,
    STORAGE: settings.storage ?? DEFAULTS.storage,
    NETWORK: network,
    ACCEL: settings.accel ?? DEFAULTS.accel,
    HOSTNAME: settings.hostname ?? defaultHostname(containerName),
    GRACE_SECONDS: String(graceSeconds),
    ...users.env,
    ...ports.env,
    ...consoles.env,
    ...(settings.vnc !== undefined && { VNC: settings.vnc }),
    ...(settings.onStop !== undefined && { ON_STOP: settings.onStop }),
    ...(settings.snapshot !== undefined && { SNAPSHOT: settings.snapshot }),
    // Only when given: unset, the launcher follows the image's own architecture.
    ...(settings.arch !== undefined && { ARCH: settings.arch }),
  };
  const files: SpecFile[] = [...users.files, ...consoles.files];
  if (settings.userData !== undefined) {
    const secret = secrecy.of("userData");
    files.push({ path: USER_DATA_PATH, content: settings.userData, mode: secret ? "0400" : "0444", secret });
  }

  // The runtime's own parser is the judge: same rules, same messages as the container.
  const issues: ConfigIssue[] = [...users.issues, ...ports.issues, ...consoles.issues];
  const fileContent = new Map(files.map((file) => [file.path, file.content]));
  const parsed = parseConfig(env, (path) => fileContent.get(path));
  if (!parsed.ok) issues.push(...parsed.issues);
  for (const { argument, min, max, rule } of NUMBER_RULES) {
    const value = settings[argument];
    if (value !== undefined && (!Number.isInteger(value) || value < min || value > max)) issues.push({ variable: argument, value: String(value), message: rule });
  }
  if (issues.length > 0) throw new DevMachineConfigError(name, issues);

  const labels: Record<string, string> = {};
  for (const { label, value } of settings.labels ?? []) labels[label] = value;
  Object.assign(labels, {
    [UPSTREAM_LABEL]: "true",
    [`${LABEL_PREFIX}.machine`]: name,
    [`${LABEL_PREFIX}.network`]: network,
    [`${LABEL_PREFIX}.user`]: users.loginUser,
    ...(context.group !== undefined && { [`${LABEL_PREFIX}.group`]: context.group }),
    ...(context.hostName !== undefined && { [`${LABEL_PREFIX}.host`]: context.hostName }),
  });
  const volumes: SpecVolume[] =
    settings.persistent === false
      ? []
      : [{ name: `${containerName}-disk`, containerPath: DISKS_DIR, keep: settings.keepDisk ?? false, labels: { [`${LABEL_PREFIX}.machine`]: name } }];

  return {
    name: containerName,
    image: settings.image ?? DEFAULT_IMAGES[parsed.ok && parsed.config.arch ? parsed.config.arch : "x86_64"],
    hostname: env.HOSTNAME!,
    env,
    files,
    // /dev/kvm for speed (the launcher falls back to TCG when it does not work), /dev/net/tun for BRIDGE's TAP.
    devices: ["/dev/kvm", "/dev/net/tun"],
    // NET_ADMIN and nothing broader: enough for the bridge, the TAP and the address move.
    capAdd: ["NET_ADMIN"],
    ports: [...ports.published, ...consoles.published],
    volumes,
    labels,
    secrets: secrecy.parts,
    stopSignal: "SIGTERM",
    stopTimeoutSeconds: graceSeconds + DEFAULTS.stopMarginSeconds,
    restart: settings.restart ?? DEFAULTS.restart,
    networks: settings.dockerNetwork ? [{ name: settings.dockerNetwork, aliases: [name, env.HOSTNAME!, ...(context.aliases ?? [])].filter(unique) }] : [],
    readyTimeoutSeconds: settings.readyTimeoutSeconds ?? DEFAULTS.readyTimeoutSeconds,
    access: {
      user: users.loginUser,
      network,
      ...(network === "NAT" && { sshHost: settings.sshHost ?? DEFAULTS.sshHost }),
      ...(network === "NAT" ? settings.sshPort !== undefined && { sshPort: settings.sshPort } : { sshPort: GUEST_SSH_PORT }),
      ...(consoles.access && { console: consoles.access }),
    },
  };
}

function unique(value: string, index: number, all: string[]): boolean {
  return all.indexOf(value) === index;
}
