/**
 * One zod schema per setting. The launcher reads them from the environment
 * (schema.ts); the Pulumi components validate their arguments with the very
 * same rules, so a bad value fails at preview with the message the container
 * would print.
 */
import { isIP } from "node:net";
import { posix } from "node:path";
import { z } from "zod";
import { parsePortList } from "./ports.js";
import { sshKeyProblem } from "./sshKeys.js";
import { parseVnc } from "./vnc.js";
import { formatBytes, MiB, parseRamInBytes, PiB, TiB } from "./units.js";
import { ARCHES, normaliseArch } from "../plan/arch.js";

export const MIN_MEMORY_BYTES = 128 * MiB;

/**
 * The most guest memory: 1 TiB, a sanity bound far above any DevMachine. It is about what
 * QEMU's TCG CPU addresses with its default 40 physical address bits (not tried here: this
 * host cannot reserve that much), so ACCEL=auto's fallback could not start much more; and it
 * keeps absurd values (hundreds of digits, `1P`) from reaching QEMU's `-m` as `InfinityM`.
 */
export const MAX_MEMORY_BYTES = TiB;

/** The largest disk: 1 PiB. qcow2 with its default 64 KiB clusters ends just under 2 PiB (qemu-img refuses 4P). */
export const MAX_STORAGE_BYTES = PiB;

/**
 * The most vCPUs the launcher's QEMU command line can start: q35 without an
 * IOMMU has no interrupt remapping, so QEMU refuses more than 255 CPUs unless
 * KVM provides x2APIC ("current -smp configuration requires kernel irqchip and
 * X2APIC API support"), and an ACCEL=auto start must still work under TCG.
 */
export const MAX_CPUS = 255;

export const cpuField = z
  .string()
  .trim()
  .regex(/^[1-9]\d*$/, "must be a whole number of virtual CPUs, at least 1 (e.g. 2)")
  .transform(Number)
  .refine((cpus) => cpus <= MAX_CPUS, `must be at most ${MAX_CPUS}: QEMU's q35 machine starts at most ${MAX_CPUS} vCPUs without an IOMMU`);

/** A Docker go-units size (RAMInBytes) from `min` to `max` bytes. */
export function sizeField(min: number, max: number) {
  return z.string().transform((text, ctx) => {
    const bytes = parseRamInBytes(text);
    if (bytes === undefined) {
      ctx.addIssue({
        code: "custom",
        message: "must be a size like 512M, 4G or 1.5GiB (a number, then an optional unit K, M, G, T or P, binary multiples, case-insensitive, optional i and b)",
      });
      return z.NEVER;
    }
    // Checked first: a value of hundreds of digits is Infinity, which no other rule should describe.
    if (bytes > max) {
      ctx.addIssue({ code: "custom", message: `must be at most ${formatBytes(max)}` });
      return z.NEVER;
    }
    if (bytes < min) {
      ctx.addIssue({ code: "custom", message: `must be at least ${formatBytes(min)} (is ${formatBytes(bytes)})` });
      return z.NEVER;
    }
    return bytes;
  });
}

export const memoryField = sizeField(MIN_MEMORY_BYTES, MAX_MEMORY_BYTES);
export const storageField = sizeField(1, MAX_STORAGE_BYTES);

/**
 * Users and groups the guest already has (Debian's base-passwd, and the services of a
 * Debian cloud image such as sshd, systemd-*, _chrony, ...). cloud-init cannot create a user
 * of one of these names: it would fail, or change a system account, and nobody could log in.
 */
export const SYSTEM_ACCOUNTS = new Set([
  "daemon", "bin", "sys", "sync", "games", "man", "lp", "mail", "news", "uucp", "proxy", "www-data", "backup", "list", "irc",
  "gnats", "nobody", "nogroup", "_apt", "messagebus", "sshd", "polkitd", "tss", "uuidd", "_chrony", "chrony", "tcpdump",
  "dnsmasq", "avahi", "syslog", "ntp", "ntpsec", "_rpc", "statd", "dhcpcd", "_ssh", "ssh",
  "adm", "tty", "disk", "kmem", "dialout", "fax", "voice", "cdrom", "floppy", "tape", "sudo", "audio", "dip", "operator",
  "src", "shadow", "utmp", "video", "sasl", "plugdev", "staff", "users", "input", "sgx", "kvm", "render", "crontab", "netdev",
]);

export const userNameField = z
  .string()
  .regex(/^[a-z_][a-z0-9_-]{0,31}$/, "must be a Linux user name: a lowercase letter or _, then up to 31 of a-z 0-9 _ -")
  .refine((name) => name !== "root", "must not be root (log in as a user with sudo instead)")
  .refine(
    (name) => name === "root" || !(SYSTEM_ACCOUNTS.has(name) || name.startsWith("systemd-")),
    "must not be a system user or group of the guest (daemon, sshd, sudo, users, systemd-*, ...): cloud-init cannot create it as a login user",
  );

export const passwordField = z
  .string()
  .min(1, "must not be empty")
  // crypt(3) stops at a NUL (the rest would be ignored), and a console cannot type the others.
  .refine((password) => !/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/.test(password), "must not contain line breaks or other control characters (NUL, tab, escape, ...)")
  .refine((password) => !password.includes("\ufffd"), "must be valid UTF-8 text (it contains U+FFFD, the mark of undecodable bytes)")
  .refine((password) => password.length <= 1024, "must be at most 1024 characters");

/**
 * A crypt(3) hash as /etc/shadow holds it, each scheme with its exact shape (libxcrypt's):
 * a hash that does not match is one the guest's login would never accept, so nobody could
 * log in with it; better to say so now.
 */
const B64 = "[./0-9A-Za-z]";
const HASH_SHAPES = [
  new RegExp(`^\\$6\\$(rounds=[1-9]\\d{3,8}\\$)?${B64}{1,16}\\$${B64}{86}$`), // SHA-512
  new RegExp(`^\\$5\\$(rounds=[1-9]\\d{3,8}\\$)?${B64}{1,16}\\$${B64}{43}$`), // SHA-256
  new RegExp(`^\\$(y|gy)\\$${B64}+\\$${B64}+\\$${B64}{43}$`), // yescrypt, gost-yescrypt
  new RegExp(`^\\$7\\$${B64}{14,}\\$${B64}{43}$`), // scrypt
  new RegExp(`^\\$2[abxy]\\$(0[4-9]|[12]\\d|3[01])\\$${B64}{53}$`), // bcrypt
  new RegExp(`^\\$1\\$${B64}{1,8}\\$${B64}{22}$`), // MD5
];

export const passwordHashField = z
  .string()
  .refine(
    (hash) => HASH_SHAPES.some((shape) => shape.test(hash)),
    "must be a crypt(3) hash, complete: $6$salt$ then 86 characters (mkpasswd -m sha-512), $y$params$salt$ then 43 (yescrypt), $5$, $7$, $2b$NN$ or $1$",
  );

export const sshKeyField = z.string().superRefine((key, ctx) => {
  const problem = sshKeyProblem(key);
  // The problem never quotes the key: SSH_KEYS_FILE may name a file that holds a secret by mistake.
  if (problem) ctx.addIssue({ code: "custom", message: problem });
});

export const networkField = z.enum(["NAT", "BRIDGE"], { message: "must be NAT or BRIDGE" });

export const accelField = z.enum(["auto", "kvm", "tcg"], { message: "must be auto, kvm or tcg" });

/** ON_STOP: what SIGTERM (docker stop) does to the guest. */
export const onStopField = z.enum(["poweroff", "suspend"], { message: "must be poweroff or suspend" });

/** SNAPSHOT: whether a new machine may start from the machine image's captured ready state (plan/clone.ts). */
export const snapshotField = z.enum(["auto", "off"], { message: "must be auto or off" });

/** ARCH: the guest's architecture, uname -m names; Debian's amd64/arm64 are accepted too. */
export const archField = z
  .string()
  .trim()
  .transform((text, ctx) => {
    const arch = normaliseArch(text);
    if (!arch) {
      ctx.addIssue({ code: "custom", message: `must be ${ARCHES.join(" or ")} (or amd64, arm64); other architectures (riscv64) are not supported yet` });
      return z.NEVER;
    }
    return arch;
  });

export const portsField = z.string().transform((text, ctx) => {
  const { forwards, problems } = parsePortList(text);
  for (const problem of problems) {
    ctx.addIssue({
      code: "custom",
      message: `${problem}; each entry is [ip:][containerPort:]guestPort[/tcp|udp], ranges allowed, comma-separated`,
    });
  }
  return problems.length > 0 ? z.NEVER : forwards;
});

/** `VNC`: see vnc.ts for the forms and options allowed. */
export const vncField = z.string().transform((text, ctx) => {
  const result = parseVnc(text);
  if (result.ok) return result.spec;
  for (const problem of result.problems) ctx.addIssue({ code: "custom", message: problem });
  return z.NEVER;
});

/** Comma-separated IPv4 resolver addresses for the guest. */
export const dnsField = z.string().transform((text, ctx) => {
  const servers = text.split(",").map((item) => item.trim()).filter((item) => item !== "");
  const wrong = servers.filter((server) => isIP(server) !== 4);
  if (servers.length === 0 || wrong.length > 0) {
    ctx.addIssue({ code: "custom", message: "must list IPv4 addresses of DNS servers, comma-separated (e.g. 1.1.1.1,9.9.9.9)" });
    return z.NEVER;
  }
  return servers;
});

/** RFC 1123 host name, the rule Docker and systemd apply. */
export const hostnameField = z
  .string()
  // Linux's HOST_NAME_MAX: sethostname() refuses longer names, and the guest would keep its old one.
  .max(64, "must be at most 64 characters (Linux's limit for a host name)")
  .regex(/^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/, "must be a host name: labels of letters, digits and inner hyphens, separated by dots");

/**
 * An absolute path outside the kernel's file systems: under /proc, /sys or /dev a "file"
 * is a device or a live view (reading /dev/zero or a FIFO never ends, mkdir there fails
 * oddly), so a disk image or the disks folder never belongs there.
 */
export function inKernelFileSystem(path: string): boolean {
  const normal = posix.normalize(path);
  // /dev/shm is an ordinary tmpfs (a fast home for an EPHEMERAL disk).
  return /^\/(proc|sys|dev)(\/|$)/.test(normal) && !/^\/dev\/shm(\/|$)/.test(normal);
}

export const hostPathField = z
  .string()
  .startsWith("/", "must be an absolute path")
  .refine((path) => !inKernelFileSystem(path), "must not be under /proc, /sys or /dev (kernel file systems, not files; /dev/shm is fine)");

export const booleanField = z
  .string()
  .trim()
  .toLowerCase()
  .refine((text) => ["1", "0", "true", "false", "yes", "no", "on", "off"].includes(text), "must be true or false (also 1/0, yes/no, on/off)")
  .transform((text) => ["1", "true", "yes", "on"].includes(text));

/**
 * The longest grace period: one hour. Far beyond any clean shutdown, and far
 * below Node's timer limit (2^31-1 ms, about 24.8 days), past which setTimeout
 * fires after 1 ms and would kill the guest at once.
 */
export const MAX_GRACE_SECONDS = 3600;

export const secondsField = z
  .string()
  .trim()
  .regex(/^\d+$/, "must be a whole number of seconds")
  .transform(Number)
  .refine((seconds) => seconds <= MAX_GRACE_SECONDS, `must be at most ${MAX_GRACE_SECONDS} seconds (one hour)`);

/** One entry of `USERS`, and the shape of a Pulumi `users` item. */
export const userEntryField = z
  .object({
    name: userNameField,
    password: passwordField.optional(),
    passwordHash: passwordHashField.optional(),
    sshKeys: z.array(sshKeyField).optional(),
    sudo: z.boolean({ message: "must be true or false" }).optional(),
  })
  .strict()
  .refine((user) => !(user.password && user.passwordHash), "give password or passwordHash, not both");
