/**
 * Who may use the consoles: pure decisions on a request's headers and URL, so they are
 * unit-tested without a server. Whoever holds the token may type into the guest as root
 * could at its console, so every request is checked, pages, assets and WebSockets alike.
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";

/** The cookie `?token=` sets; its name carries the port, so consoles on one host do not overwrite each other. */
export const COOKIE_PREFIX = "devmachines-console";

/** What {@link authenticate} looks at. Header names in lower case, as Node gives them. */
export interface RequestFacts {
  /** The request target: path and query (`/serial?token=...`). */
  url: string;
  headers: Record<string, string | string[] | undefined>;
}

export type AuthResult =
  | { ok: true; via: "bearer" | "query" | "cookie" }
  | { ok: false; reason: string };

/** A new random token: 32 bytes, URL- and cookie-safe. */
export function generateToken(): string {
  return randomBytes(32).toString("base64url");
}

/**
 * Constant-time comparison. Both sides are hashed first, so neither the length nor the
 * position of the first difference shows in the time taken.
 */
export function tokensEqual(given: string, expected: string): boolean {
  const a = createHash("sha256").update(given, "utf8").digest();
  const b = createHash("sha256").update(expected, "utf8").digest();
  return timingSafeEqual(a, b);
}

const single = (value: string | string[] | undefined) => (Array.isArray(value) ? value[0] : value);

/** Cookie values by name (the first of each name wins). */
export function parseCookies(header: string | undefined): Map<string, string> {
  const cookies = new Map<string, string>();
  for (const part of (header ?? "").split(";")) {
    const at = part.indexOf("=");
    if (at < 0) continue;
    const name = part.slice(0, at).trim();
    if (name && !cookies.has(name)) cookies.set(name, part.slice(at + 1).trim());
  }
  return cookies;
}

/** The token as the request carries it: a bearer header, the `token` query parameter, or a console cookie. */
export function authenticate(request: RequestFacts, token: string): AuthResult {
  const authorization = single(request.headers.authorization);
  if (authorization !== undefined) {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
    if (match && tokensEqual(match[1]!, token)) return { ok: true, via: "bearer" };
    return { ok: false, reason: "the Authorization header does not hold the console token" };
  }
  const query = new URL(request.url, "http://console.invalid").searchParams.get("token");
  if (query !== null) {
    return tokensEqual(query, token) ? { ok: true, via: "query" } : { ok: false, reason: "the token in the URL is wrong" };
  }
  for (const [name, value] of parseCookies(single(request.headers.cookie))) {
    if (name.startsWith(COOKIE_PREFIX) && tokensEqual(value, token)) return { ok: true, via: "cookie" };
  }
  return { ok: false, reason: "no console token (Authorization: Bearer, ?token= or the console cookie)" };
}

/**
 * Whether a request may come from where it says it comes from. Browsers send `Origin` on
 * every WebSocket handshake and on cross-origin requests; it must name this very server (the
 * `Host` the request was sent to), so another site open in the same browser cannot use the
 * cookie. No `Origin` at all means no browser page is involved (curl, a script): allowed,
 * since such a client has to present the token itself.
 */
export function originAllowed(request: RequestFacts): boolean {
  const origin = single(request.headers.origin);
  if (origin === undefined) return true;
  const host = single(request.headers.host);
  if (!host) return false;
  let parsed: URL;
  try {
    parsed = new URL(origin);
  } catch {
    return false; // includes "null" (sandboxed frames, file: pages)
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") return false;
  try {
    // Read Host the same way, so a default port written out (`:443`) compares equal.
    return parsed.host === new URL(`${parsed.protocol}//${host}`).host;
  } catch {
    return false;
  }
}

/** The cookie's name for a server reached as `host` (its port, or the scheme's default). */
export function cookieName(host: string | undefined): string {
  const port = /:(\d+)$/.exec(host ?? "")?.[1];
  return port ? `${COOKIE_PREFIX}-${port}` : COOKIE_PREFIX;
}

/**
 * The redirect that drops `?token=` from the address bar: the same path and other query
 * parameters, and a cookie that carries the token from now on. HttpOnly keeps it from the
 * page's scripts; SameSite=Lax keeps other sites' requests from carrying it, yet lets a
 * link to the console work.
 */
export function tokenRedirect(request: RequestFacts, token: string): { location: string; cookie: string } {
  const url = new URL(request.url, "http://console.invalid");
  url.searchParams.delete("token");
  const secure = single(request.headers["x-forwarded-proto"]) === "https" ? "; Secure" : "";
  return {
    location: `${url.pathname}${url.search}`,
    cookie: `${cookieName(single(request.headers.host))}=${token}; Path=/; HttpOnly; SameSite=Lax${secure}`,
  };
}
