/**
 * OpenSSH public keys (`type base64 [comment]`). A key is checked the way sshd
 * would read it: a known type, valid base64, and a blob whose embedded type
 * name matches the declared one (catches truncated or pasted-wrong keys early).
 */
export const SSH_KEY_TYPES = [
  "ssh-ed25519",
  "ssh-rsa",
  "ecdsa-sha2-nistp256",
  "ecdsa-sha2-nistp384",
  "ecdsa-sha2-nistp521",
  "sk-ssh-ed25519@openssh.com",
  "sk-ecdsa-sha2-nistp256@openssh.com",
] as const;

/** Returns why the key is refused, or undefined when it is a well-formed public key. */
export function sshKeyProblem(key: string): string | undefined {
  const [type, data, ...rest] = key.trim().split(/\s+/);
  if (!type || !data) return "is not an OpenSSH public key (expected \"TYPE BASE64 [comment]\")";
  if (type === "ssh-dss") return "uses ssh-dss (DSA), which current OpenSSH refuses";
  if (!(SSH_KEY_TYPES as readonly string[]).includes(type)) {
    return `has unknown key type "${type}" (known: ${SSH_KEY_TYPES.join(", ")})`;
  }
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(data) || data.length % 4 !== 0) return "has invalid base64 key data";
  const blob = Buffer.from(data, "base64");
  const nameLength = blob.length >= 4 ? blob.readUInt32BE(0) : -1;
  const embedded = nameLength > 0 && nameLength + 4 <= blob.length ? blob.subarray(4, 4 + nameLength).toString("latin1") : "";
  if (embedded !== type) return `has key data that is not a ${type} key`;
  if (rest.some((word) => /[\r\n]/.test(word))) return "contains a line break";
  return undefined;
}

/** Splits `SSH_KEYS` (comma-separated) or a keys file (one per line, `#` comments). */
export function splitSshKeys(text: string, separator: "," | "\n"): string[] {
  return text
    .split(separator === "," ? /,/ : /\r?\n/)
    .map((key) => key.trim())
    .filter((key) => key !== "" && !key.startsWith("#"));
}
