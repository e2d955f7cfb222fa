/**
 * OpenSSH public keys (`type base64 [comment]`), one per line of
 * `authorized_keys`. A key is checked the way sshd would read it: exactly one
 * line, fields separated by ASCII spaces or tabs, a known type, valid base64,
 * and a blob that parses completely as a key of that type (catches truncated
 * or pasted-wrong keys early). Problems never quote the key: a file given by
 * mistake (a private key, a password) must not end up in a log.
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

/** Bytes of an uncompressed EC point (0x04 || X || Y) per curve. */
const EC_POINT_BYTES: Record<string, number> = { nistp256: 65, nistp384: 97, nistp521: 133 };

/** OpenSSH refuses RSA keys below this many bits (SSH_RSA_MINIMUM_MODULUS_SIZE). */
const RSA_MIN_BITS = 1024;

/** Characters that would end the authorized_keys line or hide what follows: C0/C1 controls, DEL, Unicode line separators. */
const LINE_BREAKING = /[\u0000-\u0008\u000a-\u001f\u007f-\u009f\u2028\u2029]/;

/** Reads SSH wire-format strings (uint32 length, then bytes) from a key blob. */
class BlobReader {
  private offset = 0;
  constructor(private readonly blob: Buffer) {}
  string(): Buffer | undefined {
    if (this.offset + 4 > this.blob.length) return undefined;
    const length = this.blob.readUInt32BE(this.offset);
    if (this.offset + 4 + length > this.blob.length) return undefined;
    const value = this.blob.subarray(this.offset + 4, this.offset + 4 + length);
    this.offset += 4 + length;
    return value;
  }
  get done(): boolean {
    return this.offset === this.blob.length;
  }
}

/** Why the blob is not a complete public key of `type`, or undefined when it is. */
function blobProblem(type: string, blob: Buffer): string | undefined {
  const reader = new BlobReader(blob);
  const embedded = reader.string();
  if (embedded === undefined || embedded.toString("latin1") !== type) return `has key data that is not a ${type} key`;
  const truncated = `has truncated or damaged ${type} key data (copy the whole line of the .pub file)`;
  if (type === "ssh-ed25519" || type === "sk-ssh-ed25519@openssh.com") {
    if (reader.string()?.length !== 32) return truncated;
  } else if (type === "ssh-rsa") {
    const exponent = reader.string();
    const modulus = reader.string();
    if (!exponent?.length || !modulus?.length) return truncated;
    const bits = (modulus.length - (modulus[0] === 0 ? 1 : 0)) * 8;
    if (bits < RSA_MIN_BITS) return `is an RSA key of under ${RSA_MIN_BITS} bits, which OpenSSH refuses`;
  } else {
    const curve = type.match(/nistp\d+/)![0];
    if (reader.string()?.toString("latin1") !== curve) return truncated;
    if (reader.string()?.length !== EC_POINT_BYTES[curve]) return truncated;
  }
  // Security keys name their application (usually "ssh:") after the key itself.
  if (type.startsWith("sk-") && reader.string() === undefined) return truncated;
  if (!reader.done) return `has extra bytes after the ${type} key data`;
  return undefined;
}

/** Returns why the key is refused, or undefined when it is exactly one well-formed public key line. */
export function sshKeyProblem(key: string): string | undefined {
  if (LINE_BREAKING.test(key)) return "contains a line break or another control character: give exactly one key line";
  // sshd separates fields by ASCII space or tab only; other (Unicode) white space is part of a field.
  const [type, data] = key.replace(/^[ \t]+|[ \t]+$/g, "").split(/[ \t]+/);
  if (/PRIVATE KEY/.test(key)) return "looks like a private key: give the public key (the .pub file)";
  if (!type || !data) {
    return "is not an OpenSSH public key (expected \"TYPE BASE64 [comment]\")";
  }
  if (type === "ssh-dss") return "uses ssh-dss (DSA), which current OpenSSH refuses";
  if (!(SSH_KEY_TYPES as readonly string[]).includes(type)) {
    // The unknown word is not quoted: it may be an option prefix, a certificate, or a secret pasted by mistake.
    return `does not start with a known key type (known: ${SSH_KEY_TYPES.join(", ")}; options and certificates are not accepted)`;
  }
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(data) || data.length % 4 !== 0) return "has invalid base64 key data";
  return blobProblem(type, Buffer.from(data, "base64"));
}

/** Splits `SSH_KEYS` (comma-separated) or a keys file (one per line, `#` comments). */
export function splitSshKeys(text: string, separator: "," | "\n"): string[] {
  return text
    .split(separator === "," ? /,/ : /\r?\n/)
    .map((key) => key.replace(/^[ \t]+|[ \t]+$/g, ""))
    .filter((key) => key !== "" && !key.startsWith("#"));
}
