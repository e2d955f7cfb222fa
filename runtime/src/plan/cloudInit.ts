/**
 * The cloud-init NoCloud seed: meta-data, user-data and network-config,
 * rendered from the mustache templates in runtime/templates/.
 *
 * Mustache escapes for HTML, which is wrong for YAML, so every value is
 * rendered as JSON (a double-quoted YAML scalar or flow sequence) and put in
 * with triple braces: whatever a value holds (quotes, newlines, `: `, `#`, a
 * leading `-`), the guest reads it back as data, never as structure.
 * Passwords reach the guest only as crypt hashes (`hashed_passwd`), never as
 * plain text.
 */
import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import Mustache from "mustache";
import { parse } from "yaml";
import { userPasswordHash } from "../config/passwordCrypt.js";
import type { LauncherConfig } from "../config/schema.js";

/** What the launcher watches for on the serial console; cloud-init prints it when it has finished. */
export const READY_MARKER = "DEVMACHINES_READY";

export interface CloudInitFiles {
  metaData: string;
  userData: string;
  networkConfig: string;
  instanceId: string;
  /** USER_DATA keys the launcher overrides, in words for the log. */
  warnings: string[];
}

/**
 * runtime/templates/, found upward from this module: tsc's dist/plan/cloudInit.js, the image's
 * bundled launcher (one file, dist/main.js) and the sources under tsx sit at different depths.
 */
const TEMPLATES = ((): string => {
  for (const up of ["../templates/", "../../templates/", "../../../templates/"]) {
    const dir = fileURLToPath(new URL(up, import.meta.url));
    if (existsSync(`${dir}user-data.mustache`)) return dir;
  }
  throw new Error(`the cloud-init templates (runtime/templates/) are not beside the launcher at ${fileURLToPath(import.meta.url)}`);
})();

function template(name: string): string {
  return readFileSync(`${TEMPLATES}${name}.mustache`, "utf8");
}

const yamlValue = (value: unknown): string => JSON.stringify(value);

function renderCloudConfig(config: LauncherConfig, saltKey: string): string {
  const view = {
    hostname: yamlValue(config.hostname),
    sshPasswordAuth: yamlValue(config.users.some((user) => user.password || user.passwordHash)),
    users: config.users.map((user) => ({
      name: yamlValue(user.name),
      lockPassword: yamlValue(!(user.password || user.passwordHash)),
      // A plaintext password is hashed here: only its SHA-512 crypt reaches the seed and the dry run.
      hashedPassword: (user.password || user.passwordHash) && yamlValue(userPasswordHash(user, saltKey)),
      sudo: user.sudo,
      sshKeys: yamlValue(user.sshKeys),
    })),
    finalMessage: yamlValue(`${READY_MARKER} cloud-init $VERSION finished after $UPTIME s`),
  };
  return Mustache.render(template("user-data"), view);
}

/**
 * How the launcher's part is merged over the user's: each of its top-level keys replaces the
 * user's value outright. cloud-init merges the parts in order, each with the merge rules of
 * that part only (its Merge-Type header, after any merge_how inside it), so with the user's
 * part first and ours last nothing in USER_DATA can change how ours lands: users, keys,
 * password login, root login and the readiness message are always the launcher's.
 */
export const LAUNCHER_MERGE_TYPE = "dict(replace)+list()+str()";

/**
 * Joins the user's USER_DATA and the launcher's cloud-config as a MIME multipart: the
 * user's part first, the launcher's last (see LAUNCHER_MERGE_TYPE). Keys of the user's
 * cloud-config that the launcher sets are overridden, each with a warning; the user's
 * other keys (packages, runcmd, write_files, ...) are kept as given.
 */
function withUserData(ours: string, config: LauncherConfig, warnings: string[]): string {
  const extra = config.userData;
  if (!extra) return ours;
  if (extra.kind === "cloud-config") {
    const theirs = parse(extra.text, { version: "1.1", merge: true }) as Record<string, unknown>;
    const launcherKeys = Object.keys(parse(ours) as Record<string, unknown>);
    for (const key of ["merge_how", "merge_type"].filter((key) => key in theirs)) {
      warnings.push(`USER_DATA sets ${key}: it applies within USER_DATA only; the launcher's own keys are merged last and always win`);
    }
    for (const key of launcherKeys.filter((key) => key in theirs)) {
      warnings.push(`USER_DATA sets ${key}, which the launcher sets itself: the launcher's value is used (${OVERRIDE_HINT[key] ?? "see the README's USER_DATA section"})`);
    }
  }
  const boundary = `devmachines-${createHash("sha256").update(ours).update(extra.text).digest("hex").slice(0, 24)}`;
  const part = (type: string, filename: string, body: string, headers: string[] = []) =>
    [
      `--${boundary}`,
      `Content-Type: ${type}; charset="utf-8"`,
      "MIME-Version: 1.0",
      `Content-Disposition: attachment; filename="${filename}"`,
      ...headers,
      "",
      body.endsWith("\n") ? body.slice(0, -1) : body,
    ].join("\n");
  return [
    `Content-Type: multipart/mixed; boundary="${boundary}"`,
    "MIME-Version: 1.0",
    "",
    extra.kind === "script" ? part("text/x-shellscript", "user-script.sh", extra.text) : part("text/cloud-config", "user-data.yaml", extra.text),
    part("text/cloud-config", "devmachines.yaml", ours, [`Merge-Type: ${LAUNCHER_MERGE_TYPE}`]),
    `--${boundary}--`,
    "",
  ].join("\n");
}

/** Where to set instead what USER_DATA tried to. */
const OVERRIDE_HINT: Record<string, string> = {
  users: "give users with USER/USERS",
  ssh_pwauth: "password login is on exactly when a user has a password",
  disable_root: "log in as a user with sudo",
  final_message: "the launcher's readiness signal",
  hostname: "set HOSTNAME",
  fqdn: "set HOSTNAME",
};

/**
 * Renders the seed. The instance-id is a hash of what the guest receives, so
 * a changed configuration is applied at the next boot while an unchanged one
 * keeps the same instance (and its SSH host keys).
 */
export function planCloudInit(config: LauncherConfig, networkConfig: object, saltKey: string): CloudInitFiles {
  const warnings: string[] = [];
  const userData = withUserData(renderCloudConfig(config, saltKey), config, warnings);
  const networkText = Mustache.render(template("network-config"), {
    networkConfigJson: JSON.stringify(networkConfig, null, 2),
  });
  const instanceId = `devmachines-${createHash("sha256").update(userData).update("\0").update(networkText).update("\0").update(config.hostname).digest("hex").slice(0, 16)}`;
  const metaData = Mustache.render(template("meta-data"), {
    instanceId: yamlValue(instanceId),
    hostname: yamlValue(config.hostname),
  });
  return { metaData, userData, networkConfig: networkText, instanceId, warnings };
}
