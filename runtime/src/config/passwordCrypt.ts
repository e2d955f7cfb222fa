/**
 * Plaintext passwords (PASSWORD, PASSWORD_FILE, USERS[].password) never reach
 * the guest, the dry run or a log as given: they become a SHA-512 crypt hash
 * (`$6$salt$...`, the format /etc/shadow and cloud-init's `hashed_passwd`
 * take), computed by unixcrypt, which implements Drepper's SHA-crypt
 * specification (tested against its vectors in passwordCrypt.test.ts).
 */
import { createHash } from "node:crypto";
import { encrypt } from "unixcrypt";

/** The characters crypt(3) allows in a salt. */
const SALT_ALPHABET = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/**
 * The salt is derived, not random: SHA-256 of "devmachines", the user name and
 * the password (NUL-separated), mapped to 16 salt characters (the most SHA-crypt
 * uses). The instance-id is a hash of the rendered user-data, so the same user
 * and password must render the same hash at every start, or each restart would
 * look like a new instance to cloud-init. Two users with the same password
 * still get different hashes, and a changed password changes the salt too.
 */
export function passwordSalt(user: string, password: string): string {
  const digest = createHash("sha256").update("devmachines").update("\0").update(user).update("\0").update(password).digest();
  return Array.from(digest.subarray(0, 16), (byte) => SALT_ALPHABET[byte & 63]).join("");
}

/** SHA-512 crypt of `password` for `user` with the deterministic salt above (5000 rounds, the default). */
export function cryptPassword(user: string, password: string): string {
  return encrypt(password, `$6$${passwordSalt(user, password)}`);
}
