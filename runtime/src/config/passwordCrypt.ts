/**
 * Plaintext passwords (PASSWORD, PASSWORD_FILE, USERS[].password) never reach
 * the guest, the dry run or a log as given: they become a SHA-512 crypt hash
 * (`$6$salt$...`, the format /etc/shadow and cloud-init's `hashed_passwd`
 * take), computed by unixcrypt, which implements Drepper's SHA-crypt
 * specification (tested against its vectors in passwordCrypt.test.ts).
 */
import { createHmac, randomBytes } from "node:crypto";
import { encrypt } from "unixcrypt";

/** The characters crypt(3) allows in a salt. */
const SALT_ALPHABET = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/** A new salt key: 32 random bytes, hex. The launcher keeps one per disk (apply/saltKey.ts). */
export function newSaltKey(): string {
  return randomBytes(32).toString("hex");
}

/**
 * The salt is HMAC-SHA256(salt key, user name), mapped to 16 salt characters
 * (the most SHA-crypt uses). It says nothing about the password: testing a
 * guess against a hash from the seed or a dry run costs a full SHA-crypt
 * (5000 rounds), as for any /etc/shadow entry. The salt key is random and kept
 * beside the disk, so the same user and password render the same hash at every
 * start, and the instance-id (a hash of the rendered user-data) stays the same:
 * cloud-init does not take a restart for a new instance. Two users with the
 * same password still get different hashes.
 */
export function passwordSalt(user: string, saltKey: string): string {
  const digest = createHmac("sha256", saltKey).update("devmachines password salt\0").update(user).digest();
  return Array.from(digest.subarray(0, 16), (byte) => SALT_ALPHABET[byte & 63]).join("");
}

/** SHA-512 crypt of `password` for `user`, salted as above (5000 rounds, the default). */
export function cryptPassword(user: string, password: string, saltKey: string): string {
  return encrypt(password, `$6$${passwordSalt(user, saltKey)}`);
}

/** The crypt hash a user's password reaches the guest as: the given hash, else the password's own; none for a user without one. */
export function userPasswordHash(user: { name: string; password?: string; passwordHash?: string }, saltKey: string): string | undefined {
  return user.passwordHash || (user.password ? cryptPassword(user.name, user.password, saltKey) : undefined);
}
