import assert from "node:assert/strict";
import { test } from "node:test";
import { encrypt, verify } from "unixcrypt";
import { createHash } from "node:crypto";
import { cryptPassword, newSaltKey, passwordSalt } from "../src/config/passwordCrypt.js";

// The SHA-512 test vectors from Ulrich Drepper's "Unix crypt using SHA-256 and SHA-512" specification.
const DREPPER_SHA512: Array<[salt: string, password: string, hash: string]> = [
  ["$6$saltstring", "Hello world!",
    "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1"],
  ["$6$rounds=10000$saltstringsaltstring", "Hello world!",
    "$6$rounds=10000$saltstringsaltst$OW1/O6BYHV6BcXZu8QVeXbDWra3Oeqh0sbHbbMCVNSnCM/UrjmM0Dp8vOuZeHBy/YTBmSK6H9qs/y3RnOaw5v."],
  ["$6$rounds=5000$toolongsaltstring", "This is just a test",
    "$6$rounds=5000$toolongsaltstrin$lQ8jolhgVRVhY4b5pZKaysCLi0QBxGoNeKQzQ3glMhwllF7oGDZxUhx1yxdYcz/e1JSbq3y6JMxxl8audkUEm0"],
  ["$6$rounds=1400$anotherlongsaltstring", "a very much longer text to encrypt.  This one even stretches over morethan one line.",
    "$6$rounds=1400$anotherlongsalts$POfYwTEok97VWcjxIiSOjiykti.o/pQs.wPvMxQ6Fm7I6IoYN3CmLs66x9t0oSwbtEW7o7UmJEiDwGqd8p4ur1"],
  ["$6$rounds=77777$short", "we have a short salt string but not a short password",
    "$6$rounds=77777$short$WuQyW2YR.hBNpjjRhpYD/ifIw05xdfeEyQoMxIXbkvr0gge1a1x3yRULJ5CCaUeOxFmtlcGZelFl5CxtgfiAc0"],
  ["$6$rounds=123456$asaltof16chars..", "a short string",
    "$6$rounds=123456$asaltof16chars..$BtCwjqMJGx5hrJhZywWvt0RLE8uZ4oPwcelCjmw2kSYu.Ec6ycULevoBK25fs2xXgMNrCzIMVcgEJAstJeonj1"],
  ["$6$rounds=10$roundstoolow", "the minimum number is still observed",
    "$6$rounds=1000$roundstoolow$kUMsbe306n21p9R.FRkW3IGn.S9NPN0x50YhH1xhLsPuWGsUSklZt58jaTfF4ZEQpyUNGc0dqbpBYYBaHHrsX."],
];

test("the SHA-512 crypt we use reproduces Drepper's specification vectors", () => {
  for (const [salt, password, hash] of DREPPER_SHA512) {
    assert.equal(encrypt(password, salt), hash, `${salt} / ${password}`);
    assert.equal(verify(password, hash), true);
    assert.equal(verify(`${password}x`, hash), false);
  }
});

test("a password becomes a $6$ hash whose salt comes from the disk's salt key and the user, never from the password", () => {
  const key = newSaltKey();
  assert.match(key, /^[0-9a-f]{64}$/);
  const hash = cryptPassword("dev", "s3cret", key);
  assert.match(hash, /^\$6\$[./0-9A-Za-z]{16}\$[./0-9A-Za-z]{86}$/);
  assert.equal(hash.includes("s3cret"), false);
  assert.equal(verify("s3cret", hash), true);
  assert.equal(verify("s3cret!", hash), false);
  assert.equal(cryptPassword("dev", "s3cret", key), hash, "same key, user and password: the same hash (a stable instance-id)");
  assert.equal(hash.split("$")[2], passwordSalt("dev", key));
  assert.equal(cryptPassword("dev", "other", key).split("$")[2], passwordSalt("dev", key), "another password, the same salt: it reveals nothing of the password");
  assert.notEqual(passwordSalt("ops", key), passwordSalt("dev", key), "another user, another salt");
  assert.notEqual(passwordSalt("dev", newSaltKey()), passwordSalt("dev", key), "another disk, another salt");
  for (const password of ["ünïcødé \u2028", "pa\"ss'word: # - x", " "]) {
    assert.equal(verify(password, cryptPassword("dev", password, key)), true, JSON.stringify(password));
  }
});

test("bad-inputs 2: a hash from the seed cannot be tested against guesses more cheaply than SHA-crypt itself", () => {
  // The old salt was SHA-256("devmachines", user, password): a guess could be checked with one
  // SHA-256 against the salt. Now the salt is the same for every password of the user, so it
  // holds no information a guess could be tested against.
  const key = newSaltKey();
  const salts = new Set(["hunter2", "password", "s3cret", "correct horse"].map((password) => cryptPassword("dev", password, key).split("$")[2]));
  assert.equal(salts.size, 1);
  const oldStyle = createHash("sha256").update("devmachines").update("\0").update("dev").update("\0").update("hunter2").digest();
  const oldSalt = Array.from(oldStyle.subarray(0, 16), (byte) => "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"[byte & 63]).join("");
  assert.notEqual(cryptPassword("dev", "hunter2", key).split("$")[2], oldSalt);
});
