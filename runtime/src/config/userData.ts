/**
 * Extra user data (`USER_DATA`, `USER_DATA_FILE` or the documented file):
 * a cloud-config document, or a shell script starting with `#!`. It reaches
 * the guest as a second part beside the launcher's own cloud-config, merged
 * by cloud-init, so the user's lists (packages, runcmd, write_files) add to ours.
 */
import { parseDocument } from "yaml";

export type UserData = { kind: "cloud-config"; text: string } | { kind: "script"; text: string };

export type UserDataResult = { ok: true; userData: UserData } | { ok: false; problem: string };

export function parseUserData(text: string): UserDataResult {
  if (text.startsWith("#!")) return { ok: true, userData: { kind: "script", text } };
  const document = parseDocument(text);
  if (document.errors.length > 0) {
    const first = document.errors[0]!;
    return { ok: false, problem: `is not valid YAML: ${first.message.split("\n")[0]} (cloud-config YAML, or a script starting with #!)` };
  }
  const content = document.toJS() as unknown;
  if (content === null || typeof content !== "object" || Array.isArray(content)) {
    return { ok: false, problem: "must be a cloud-config mapping (keys such as packages, write_files, runcmd) or a script starting with #!" };
  }
  const body = text.startsWith("#cloud-config") ? text : `#cloud-config\n${text}`;
  return { ok: true, userData: { kind: "cloud-config", text: body } };
}
