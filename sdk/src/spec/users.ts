/**
 * The guest's users as the launcher reads them: one user in the short form (USER,
 * SSH_KEYS, and the password or its hash as PASSWORD_FILE / PASSWORD_HASH_FILE), more in
 * USERS_FILE. Passwords and hashes travel in secret files only, never in the environment
 * where `docker inspect` shows them.
 */
import type { ConfigIssue } from "@devmachines/runtime/config";
import { DEFAULTS, SECRETS_DIR } from "../defaults.js";
import type { MachineSettings, SpecFile } from "../description.js";
import type { Secrecy } from "./secrecy.js";

export interface UsersPart {
  env: Record<string, string>;
  files: SpecFile[];
  /** What the runtime cannot see: it reads the environment, not the arguments it came from. */
  issues: ConfigIssue[];
  /** The user to log in as (the first one), who also labels the container. */
  loginUser: string;
}

export function usersPart(settings: MachineSettings, secrecy: Secrecy): UsersPart {
  const env: Record<string, string> = {};
  const files: SpecFile[] = [];
  const issues: ConfigIssue[] = [];
  const secretFile = (variable: string, name: string, content: string) => {
    env[variable] = `${SECRETS_DIR}/${name}`;
    files.push({ path: env[variable], content, mode: "0400", secret: true });
  };

  const users = settings.users ?? [];
  const user = settings.user ?? (users.length === 0 ? DEFAULTS.user : undefined);
  if (user !== undefined) {
    env.USER = user;
    if (settings.password !== undefined) secretFile("PASSWORD_FILE", "password", settings.password);
    if (settings.passwordHash !== undefined) secretFile("PASSWORD_HASH_FILE", "password-hash", settings.passwordHash);
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
    files.push({ path: env.USERS_FILE, content: JSON.stringify(users), mode: "0400", secret: secrecy.of("users") || users.some(hasPassword) });
  }
  return { env, files, issues, loginUser: user ?? users[0]?.name ?? "" };
}

function hasPassword(user: { password?: string | undefined; passwordHash?: string | undefined }): boolean {
  return user.password !== undefined || user.passwordHash !== undefined;
}
