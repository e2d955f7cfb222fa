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
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import Mustache from "mustache";
import { cryptPassword } from "../config/passwordCrypt.js";
import type { LauncherConfig } from "../config/schema.js";

/** What the launcher watches for on the serial console; cloud-init prints it when it has finished. */
export const READY_MARKER = "DEVMACHINES_READY";

export interface CloudInitFiles {
  metaData: string;
  userData: string;
  networkConfig: string;
  instanceId: string;
}

const TEMPLATES = fileURLToPath(new URL("../../templates/", import.meta.url));

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
      hashedPassword: user.passwordHash
        ? yamlValue(user.passwordHash)
        : user.password && yamlValue(cryptPassword(user.name, user.password, saltKey)),
      sudo: user.sudo,
      sshKeys: yamlValue(user.sshKeys),
    })),
    finalMessage: yamlValue(`${READY_MARKER} cloud-init $VERSION finished after $UPTIME s`),
  };
  return Mustache.render(template("user-data"), view);
}

/**
 * Joins the launcher's cloud-config with the user's USER_DATA as a MIME
 * multipart, which cloud-init merges: the user's lists append to ours, and our
 * keys (users, final_message) keep their values.
 */
function withUserData(ours: string, config: LauncherConfig): string {
  const extra = config.userData;
  if (!extra) return ours;
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
    part("text/cloud-config", "devmachines.yaml", ours),
    extra.kind === "script"
      ? part("text/x-shellscript", "user-script.sh", extra.text)
      : part("text/cloud-config", "user-data.yaml", extra.text, ["Merge-Type: list(append)+dict(no_replace,recurse_list)+str()"]),
    `--${boundary}--`,
    "",
  ].join("\n");
}

/**
 * Renders the seed. The instance-id is a hash of what the guest receives, so
 * a changed configuration is applied at the next boot while an unchanged one
 * keeps the same instance (and its SSH host keys).
 */
export function planCloudInit(config: LauncherConfig, networkConfig: object, saltKey: string): CloudInitFiles {
  const userData = withUserData(renderCloudConfig(config, saltKey), config);
  const networkText = Mustache.render(template("network-config"), {
    networkConfigJson: JSON.stringify(networkConfig, null, 2),
  });
  const instanceId = `devmachines-${createHash("sha256").update(userData).update("\0").update(networkText).update("\0").update(config.hostname).digest("hex").slice(0, 16)}`;
  const metaData = Mustache.render(template("meta-data"), {
    instanceId: yamlValue(instanceId),
    hostname: yamlValue(config.hostname),
  });
  return { metaData, userData, networkConfig: networkText, instanceId };
}
