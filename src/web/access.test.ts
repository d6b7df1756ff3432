import { test } from "node:test";
import assert from "node:assert/strict";
import {
  checkAccess,
  isLoopbackHost,
  newToken,
  presentedToken,
  splitHostPort,
  tokenCookieName,
  type AccessPolicy,
} from "./access.ts";

const token = "a".repeat(48);
const loop: AccessPolicy = { token, bindHost: "127.0.0.1", port: 7080 };
const wide: AccessPolicy = { token, bindHost: "0.0.0.0", port: 7080 };

function verdict(p: AccessPolicy, url: string, headers: Record<string, string>) {
  return checkAccess({ url, headers }, p);
}

test("loopback names", () => {
  for (const h of [
    "localhost",
    "LOCALHOST",
    "app.localhost",
    "127.0.0.1",
    "127.1.2.3",
    "::1",
    "[::1]",
    "::ffff:127.0.0.1",
  ])
    assert.ok(isLoopbackHost(h), h);
  for (const h of [
    "0.0.0.0",
    "::",
    "10.0.0.1",
    "192.168.1.5",
    "evil.example",
    "localhost.evil.example",
    "127.0.0.1.evil.example",
    "[::2]",
  ]) {
    assert.ok(!isLoopbackHost(h), h);
  }
});

test("Host header parsing", () => {
  assert.deepEqual(splitHostPort("127.0.0.1:7080"), { host: "127.0.0.1", port: 7080 });
  assert.deepEqual(splitHostPort("[::1]:80"), { host: "[::1]", port: 80 });
  assert.deepEqual(splitHostPort("localhost"), { host: "localhost", port: null });
  assert.equal(splitHostPort("a:b:c"), null);
  assert.equal(splitHostPort("host:99999"), null);
  assert.equal(splitHostPort(""), null);
});

test("tokens are random and long", () => {
  const a = newToken();
  assert.match(a, /^[0-9a-f]{48}$/);
  assert.notEqual(a, newToken());
});

test("the token may come in the query, an Authorization header or this port's cookie", () => {
  const h = { host: "127.0.0.1:7080" };
  assert.deepEqual(verdict(loop, `/?token=${token}`, h), { ok: true, viaQuery: true });
  assert.deepEqual(verdict(loop, "/metrics", { ...h, authorization: `token ${token}` }), { ok: true, viaQuery: false });
  assert.deepEqual(verdict(loop, "/metrics", { ...h, authorization: `Bearer ${token}` }), {
    ok: true,
    viaQuery: false,
  });
  assert.deepEqual(verdict(loop, "/app.js", { ...h, cookie: `x=1; ${tokenCookieName(7080)}=${token}` }), {
    ok: true,
    viaQuery: false,
  });
  // Another port's cookie is not ours.
  assert.equal(presentedToken({ url: "/", headers: { cookie: `${tokenCookieName(7081)}=${token}` } }, 7080), null);
});

test("requests without the right token are refused with 401", () => {
  const h = { host: "127.0.0.1:7080" };
  for (const [url, extra] of [
    ["/", {}],
    ["/metrics", {}],
    ["/ws", {}],
    [`/?token=${token.slice(1)}`, {}],
    [`/?token=${token}b`, {}],
    ["/?token=", {}],
    ["/metrics", { authorization: "token wrong" }],
    ["/metrics", { authorization: `Basic ${token}` }],
    ["/", { cookie: `${tokenCookieName(7080)}=nope` }],
  ] as const) {
    const v = verdict(loop, url, { ...h, ...extra });
    assert.equal(v.ok, false, `${url} ${JSON.stringify(extra)}`);
    if (!v.ok) assert.equal(v.status, 401);
  }
});

test("bound to loopback, a foreign Host or Origin is refused with 403 even with the token (DNS rebinding)", () => {
  const url = `/?token=${token}`;
  for (const headers of [
    { host: "evil.example:7080" },
    { host: "evil.example" },
    { host: "192.168.1.5:7080" },
    { host: "127.0.0.1:7080", origin: "http://evil.example:7080" },
    { host: "127.0.0.1:7080", origin: "http://evil.example" },
    { host: "127.0.0.1:7080", origin: "null" },
    { host: "127.0.0.1:7080", origin: "file://" },
    { host: "127.0.0.1:7080", origin: "http://127.0.0.1:9999" },
    { host: "127.0.0.1:7080", origin: "http://localhost:7080" },
    {},
  ]) {
    const v = verdict(loop, url, headers);
    assert.equal(v.ok, false, JSON.stringify(headers));
    if (!v.ok) assert.equal(v.status, 403, JSON.stringify(headers));
  }
  assert.equal(verdict(loop, url, { host: "localhost:7080", origin: "http://localhost:7080" }).ok, true);
  assert.equal(verdict(loop, url, { host: "127.0.0.1:7080", origin: "http://127.0.0.1:7080" }).ok, true);
  assert.equal(
    verdict({ ...loop, bindHost: "::1" }, url, { host: "[::1]:7080", origin: "http://[::1]:7080" }).ok,
    true,
  );
});

test("bound to all interfaces, any Host is fine but the Origin must match it", () => {
  const url = `/?token=${token}`;
  assert.equal(verdict(wide, url, { host: "box.lan:7080" }).ok, true);
  assert.equal(verdict(wide, url, { host: "box.lan:7080", origin: "http://box.lan:7080" }).ok, true);
  const v = verdict(wide, url, { host: "box.lan:7080", origin: "http://evil.example" });
  assert.ok(!v.ok && v.status === 403);
  const w = verdict(wide, "/", { host: "box.lan:7080" });
  assert.ok(!w.ok && w.status === 401);
});
