/**
 * One zod schema per setting. The launcher reads them from the environment
 * (schema.ts); the Pulumi components validate their arguments with the very
 * same rules, so a bad value fails at preview with the message the container
 * would print.
 */
import { isIP } from "node:net";
import { z } from "zod";
import { parsePortSpecs, PortSpecError } from "./ports.js";
import { sshKeyProblem } from "./sshKeys.js";
import { formatBytes, MiB, parseRamInBytes } from "./units.js";
import { ARCHES, normaliseArch } from "../plan/arch.js";

export const MIN_MEMORY_BYTES = 128 * MiB;

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

/** A Docker go-units size (RAMInBytes) of at least `min` bytes. */
export function sizeField(min: number) {
  return z.string().transform((text, ctx) => {
    const bytes = parseRamInBytes(text);
    if (bytes === undefined) {
      ctx.addIssue({
        code: "custom",
        message: "must be a size like 512M, 4G or 1.5GiB (a number, then an optional unit K, M, G, T or P, binary multiples, case-insensitive, optional i and b)",
      });
      return z.NEVER;
    }
    if (bytes < min) {
      ctx.addIssue({ code: "custom", message: `must be at least ${formatBytes(min)} (is ${formatBytes(bytes)})` });
      return z.NEVER;
    }
    return bytes;
  });
}

export const memoryField = sizeField(MIN_MEMORY_BYTES);
export const storageField = sizeField(1);

export const userNameField = z
  .string()
  .regex(/^[a-z_][a-z0-9_-]{0,31}$/, "must be a Linux user name: a lowercase letter or _, then up to 31 of a-z 0-9 _ -")
  .refine((name) => name !== "root", "must not be root (log in as a user with sudo instead)");

export const passwordField = z
  .string()
  .min(1, "must not be empty")
  .refine((password) => !/[\r\n]/.test(password), "must not contain line breaks");

/** A crypt(3) hash as /etc/shadow holds it: yescrypt, SHA-512, SHA-256, bcrypt or MD5. */
export const passwordHashField = z
  .string()
  .regex(/^\$(y|gy|7|6|5|2[abxy]?|1)\$[./A-Za-z0-9$=]+$/, "must be a crypt(3) hash such as $6$salt$... (from mkpasswd -m sha-512) or $y$... (yescrypt)");

export const sshKeyField = z.string().superRefine((key, ctx) => {
  const problem = sshKeyProblem(key);
  if (problem) ctx.addIssue({ code: "custom", message: `key "${abbreviate(key)}" ${problem}` });
});

export const networkField = z.enum(["NAT", "BRIDGE"], { message: "must be NAT or BRIDGE" });

export const accelField = z.enum(["auto", "kvm", "tcg"], { message: "must be auto, kvm or tcg" });

/** ON_STOP: what SIGTERM (docker stop) does to the guest. */
export const onStopField = z.enum(["poweroff", "suspend"], { message: "must be poweroff or suspend" });

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
  try {
    return parsePortSpecs(text);
  } catch (error) {
    if (!(error instanceof PortSpecError)) throw error;
    ctx.addIssue({
      code: "custom",
      message: `${error.message}; each entry is [ip:][containerPort:]guestPort[/tcp|udp], ranges allowed, comma-separated`,
    });
    return z.NEVER;
  }
});

/** QEMU's `-vnc` argument: `[host]:display[,options]`, `unix:path[,options]` or `none`. */
export const vncField = z
  .string()
  .regex(/^(none|unix:[^\s,]+(,\S*)?|(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]*):\d{1,5}(,\S*)?)$/, "must be a QEMU -vnc argument such as :0, 0.0.0.0:1, unix:/run/vnc.sock or none");

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
  .max(253, "must be at most 253 characters")
  .regex(/^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/, "must be a host name: labels of letters, digits and inner hyphens, separated by dots");

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

function abbreviate(key: string): string {
  const trimmed = key.trim();
  return trimmed.length > 40 ? `${trimmed.slice(0, 30)}...${trimmed.slice(-6)}` : trimmed;
}
