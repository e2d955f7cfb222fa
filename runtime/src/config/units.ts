/**
 * Sizes as Docker reads them: go-units `RAMInBytes`.
 * A decimal number, an optional space, an optional unit k/m/g/t/p (binary
 * multiples), an optional `i` and an optional `b`, case-insensitive.
 * Docker truncates fractional bytes toward zero, and so do we.
 */
const SIZE = /^(\d+(?:\.\d+)*) ?([kmgtp])?i?b?$/i;

const MULTIPLIER: Record<string, number> = {
  k: 1024,
  m: 1024 ** 2,
  g: 1024 ** 3,
  t: 1024 ** 4,
  p: 1024 ** 5,
};

/** Parses a size like `4G`, `512mb`, `1.5GiB`; returns bytes, or undefined when Docker would refuse it. */
export function parseRamInBytes(text: string): number | undefined {
  const match = SIZE.exec(text);
  if (!match) return undefined;
  const [, number, unit] = match;
  // Go's ParseFloat refuses "1.2.3", which the regular expression lets through.
  if (!/^\d+(\.\d+)?$/.test(number!)) return undefined;
  const value = Number(number) * (unit ? MULTIPLIER[unit.toLowerCase()]! : 1);
  return Math.trunc(value);
}

/** Formats bytes the way a person reads them (`1 GiB`, `1.5 MiB`), for messages. */
export function formatBytes(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let value = bytes;
  let index = 0;
  while (value >= 1024 && index < units.length - 1) {
    value /= 1024;
    index++;
  }
  return `${Number(value.toFixed(2))} ${units[index]}`;
}

export const MiB = 1024 ** 2;
export const GiB = 1024 ** 3;
export const TiB = 1024 ** 4;
export const PiB = 1024 ** 5;
