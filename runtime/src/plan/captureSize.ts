/**
 * The size of a captured ready state other than the default (`npm run images -- --capture-size
 * 1x256Mx4G`). A state restores only into a machine of the very size it was captured at
 * (plan/clone.ts compares clone.json's recorded size), so each size is its own capture and its
 * own variant of the machine image, tagged `<tag>-<size>`. Pure: parsed with the launcher's own
 * CPU, MEMORY and STORAGE rules, so a size the launcher would refuse is refused here first.
 */
import { cpuField, memoryField, storageField } from "../config/fields.js";

export interface CaptureSize {
  cpu: number;
  memoryBytes: number;
  storageBytes: number;
  /** Canonical `CPUxMEMORYxSTORAGE` (e.g. `1x256Mx4G`): the cache key's and the image tag's part. */
  label: string;
  /** The launcher's environment for this size. */
  env: { CPU: string; MEMORY: string; STORAGE: string };
}

/** `1x256Mx4G` for 1 vCPU, 256 MiB of memory and a 4 GiB disk; throws a message naming the rule. */
export function parseCaptureSize(text: string): CaptureSize {
  const parts = text.trim().split(/x/i);
  if (parts.length !== 3) {
    throw new Error(`"${text}" must be CPUxMEMORYxSTORAGE, e.g. 1x256Mx4G (CPU, MEMORY and STORAGE as the machine's settings take them)`);
  }
  const fields = [["CPU", cpuField], ["MEMORY", memoryField], ["STORAGE", storageField]] as const;
  const values = fields.map(([name, field], i) => {
    const parsed = field.safeParse(parts[i]);
    if (!parsed.success) throw new Error(`"${text}": ${name} ${parsed.error.issues.map((issue) => issue.message).join("; ")}`);
    return parsed.data;
  });
  const [cpu, memoryBytes, storageBytes] = values as [number, number, number];
  const memory = compactSize(memoryBytes);
  const storage = compactSize(storageBytes);
  return { cpu, memoryBytes, storageBytes, label: `${cpu}x${memory}x${storage}`, env: { CPU: String(cpu), MEMORY: memory, STORAGE: storage } };
}

/** The largest binary unit that divides the size exactly: 256M, 4G, 1536M (never a fraction). */
function compactSize(bytes: number): string {
  for (const [unit, factor] of [["T", 2 ** 40], ["G", 2 ** 30], ["M", 2 ** 20], ["K", 2 ** 10]] as const) {
    if (bytes % factor === 0) return `${bytes / factor}${unit}`;
  }
  return String(bytes);
}

/** The machine image variant that carries a capture of this size: `devmachines/debian:13` -> `devmachines/debian:13-1x256Mx4G`. */
export function captureVariantImage(image: string, size: CaptureSize): string {
  const colon = image.lastIndexOf(":");
  const [name, tag] = colon > image.lastIndexOf("/") ? [image.slice(0, colon), image.slice(colon + 1)] : [image, "latest"];
  return `${name}:${tag}-${size.label}`;
}
