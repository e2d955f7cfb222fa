import assert from "node:assert/strict";
import { test } from "node:test";
import { parseRamInBytes } from "../src/config/units.js";

const KiB = 1024, MiB = KiB ** 2, GiB = KiB ** 3, TiB = KiB ** 4, PiB = KiB ** 5;

// The cases of go-units' TestRAMInBytes, which is what Docker uses for --memory.
test("sizes Docker accepts parse to the same byte counts", () => {
  const cases: Array<[string, number]> = [
    ["32", 32], ["32b", 32], ["32B", 32],
    ["32k", 32 * KiB], ["32K", 32 * KiB], ["32kb", 32 * KiB], ["32Kb", 32 * KiB], ["32Kib", 32 * KiB], ["32KIB", 32 * KiB],
    ["32Mb", 32 * MiB], ["32Gb", 32 * GiB], ["32Tb", 32 * TiB], ["32Pb", 32 * PiB], ["32PB", 32 * PiB], ["32P", 32 * PiB],
    ["32.3", 32], ["32.3 mb", Math.trunc(32.3 * MiB)], ["0.3MB", Math.trunc(0.3 * MiB)],
    ["32 ", 32], ["32 G", 32 * GiB], ["4G", 4 * GiB], ["1.5GiB", 1.5 * GiB], ["512m", 512 * MiB], ["32ib", 32],
  ];
  for (const [text, bytes] of cases) assert.equal(parseRamInBytes(text), bytes, text);
});

test("sizes Docker refuses are refused", () => {
  for (const text of ["", "hello", "-32", " 32 ", "32m b", "32bm", ".3kB", "1.2.3G", "32x", "G", "32GG", "32gbi"]) {
    assert.equal(parseRamInBytes(text), undefined, JSON.stringify(text));
  }
});
