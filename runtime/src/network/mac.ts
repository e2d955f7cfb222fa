/** MAC address helpers: deterministic, locally administered addresses. */
import { createHash } from "node:crypto";

/** QEMU's documented default NIC address (OUI 52:54:00, locally administered). */
export const QEMU_DEFAULT_MAC = "52:54:00:12:34:56";

const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

/** Lower-case `aa:bb:cc:dd:ee:ff`, or undefined when `text` is no MAC-48 address. */
export function normalizeMac(text: string): string | undefined {
  const mac = text.trim().toLowerCase().replace(/-/g, ":");
  return MAC.test(mac) ? mac : undefined;
}

/**
 * A unicast, locally administered MAC derived from `seed` and `purpose`:
 * the same inputs always give the same address, different purposes differ.
 * `avoid` lists addresses it must not equal (e.g. the original MAC).
 */
export function derivedMac(seed: string, purpose: string, avoid: string[] = []): string {
  for (let attempt = 0; ; attempt++) {
    const digest = createHash("sha256").update(`${purpose}\0${seed}\0${attempt}`).digest();
    // Set the locally administered bit, clear the multicast bit.
    digest[0] = (digest[0]! | 0x02) & 0xfe;
    const mac = Array.from(digest.subarray(0, 6), (byte) => byte.toString(16).padStart(2, "0")).join(":");
    if (!avoid.includes(mac)) return mac;
  }
}
