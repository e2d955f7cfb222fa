/** The guest's default host name, derived from the container name. */

/**
 * A host name from a container name: RFC 1123 labels of a-z, 0-9 and inner hyphens
 * (other characters become hyphens), at most 63 characters in all. Trimmed after the
 * cut, so the result never ends in `-` or `.`; empty labels (`..`) are dropped.
 */
export function defaultHostname(name: string): string {
  const labels = (text: string) =>
    text
      .split(".")
      .map((label) => label.replace(/^-+|-+$/g, ""))
      .filter(Boolean)
      .join(".");
  const cleaned = labels(labels(name.toLowerCase().replace(/[^a-z0-9.-]/g, "-")).slice(0, 63));
  return cleaned || "devmachine";
}
