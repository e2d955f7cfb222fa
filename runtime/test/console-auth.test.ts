/** The consoles' token and Origin rules, without a server. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { authenticate, cookieName, generateToken, originAllowed, parseCookies, tokenRedirect, tokensEqual } from "../src/console/auth.js";

const TOKEN = "s3cret-token-0123456789";
const req = (url: string, headers: Record<string, string> = {}) => ({ url, headers: { host: "127.0.0.1:8080", ...headers } });

test("the token is accepted as a bearer header, a ?token= query or a console cookie, and nothing else", () => {
  assert.deepEqual(authenticate(req("/", { authorization: `Bearer ${TOKEN}` }), TOKEN), { ok: true, via: "bearer" });
  assert.deepEqual(authenticate(req("/", { authorization: `bearer  ${TOKEN} ` }), TOKEN), { ok: true, via: "bearer" });
  assert.deepEqual(authenticate(req(`/serial?token=${TOKEN}`), TOKEN), { ok: true, via: "query" });
  assert.deepEqual(authenticate(req("/", { cookie: `other=1; devmachines-console-8080=${TOKEN}` }), TOKEN), { ok: true, via: "cookie" });
  for (const bad of [
    req("/"),
    req("/", { authorization: `Bearer ${TOKEN}x` }),
    req("/", { authorization: `Basic ${Buffer.from(`x:${TOKEN}`).toString("base64")}` }),
    req("/?token="),
    req(`/?token=${TOKEN.slice(0, -1)}`),
    req("/", { cookie: `devmachines-console-8080=${TOKEN.toUpperCase()}` }),
    req("/", { cookie: `session=${TOKEN}` }), // only the console's own cookies count
    // a wrong header is not rescued by a right cookie
    req("/", { authorization: "Bearer wrong", cookie: `devmachines-console=${TOKEN}` }),
  ]) {
    const result = authenticate(bad, TOKEN);
    assert.equal(result.ok, false, JSON.stringify(bad));
    assert.ok(!result.ok && result.reason.length > 0);
  }
});

test("tokens compare equal only when identical, whatever their lengths", () => {
  assert.ok(tokensEqual(TOKEN, TOKEN));
  assert.ok(!tokensEqual(TOKEN, `${TOKEN}0`));
  assert.ok(!tokensEqual("", TOKEN));
  const generated = generateToken();
  assert.match(generated, /^[A-Za-z0-9_-]{43}$/);
  assert.notEqual(generated, generateToken());
});

test("Origin must be the server's own: scheme http(s), host and port as the request's Host", () => {
  assert.ok(originAllowed(req("/")), "no Origin: not a browser page");
  assert.ok(originAllowed(req("/", { origin: "http://127.0.0.1:8080" })));
  assert.ok(originAllowed(req("/", { origin: "https://127.0.0.1:8080" })), "behind a TLS proxy");
  assert.ok(originAllowed({ url: "/", headers: { host: "Console.Example:443", origin: "https://console.example:443" } }));
  for (const origin of ["http://evil.example", "http://127.0.0.1:8081", "http://127.0.0.1", "null", "file://", "chrome-extension://abc", "http://127.0.0.1:8080.evil.example"]) {
    assert.equal(originAllowed(req("/", { origin })), false, origin);
  }
  assert.equal(originAllowed({ url: "/", headers: { origin: "http://127.0.0.1:8080" } }), false, "no Host to compare with");
});

test("?token= becomes an HttpOnly cookie named for the port, and the redirect drops it from the address", () => {
  const redirect = tokenRedirect(req(`/serial?a=1&token=${TOKEN}&b=2`), TOKEN);
  assert.equal(redirect.location, "/serial?a=1&b=2");
  assert.equal(redirect.cookie, `devmachines-console-8080=${TOKEN}; Path=/; HttpOnly; SameSite=Lax`);
  assert.equal(tokenRedirect(req(`/?token=${TOKEN}`), TOKEN).location, "/");
  assert.match(tokenRedirect(req(`/?token=${TOKEN}`, { "x-forwarded-proto": "https" }), TOKEN).cookie, /; Secure$/);
  assert.equal(cookieName("example.com"), "devmachines-console");
  assert.deepEqual([...parseCookies("a=1; b = 2;c=x=y; a=3; junk")], [["a", "1"], ["b", "2"], ["c", "x=y"]]);
});
