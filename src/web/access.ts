/**
 * Who may talk to `boxvm serve`: every request must carry the access token the server printed
 * (as Jupyter's notebook server does), in the URL (`?token=`), in an `Authorization: token …`
 * header, or in the cookie the server sets when a page was opened with the token.
 *
 * DNS rebinding: a page from evil.example whose name is made to resolve to 127.0.0.1 reaches a
 * loopback server with `Host: evil.example` and `Origin: http://evil.example`. So while the
 * server is bound to a loopback address, the Host must name a loopback host, and an Origin, when
 * there is one, must be a loopback origin too. On any binding an Origin must name the same host
 * and port as the Host (no cross-site page may drive the VM with a tab's cookie).
 */
import { randomBytes, timingSafeEqual } from "node:crypto";
import { isIPv4, isIPv6 } from "node:net";

/** A new random access token (48 hex digits, 192 bits). */
export function newToken(): string {
  return randomBytes(24).toString("hex");
}

/** The name of the cookie holding the token; per port, as cookies are shared between a host's ports. */
export function tokenCookieName(port: number): string {
  return `boxvm-token-${String(port)}`;
}

/** True for an address or host name that only reaches this machine. */
export function isLoopbackHost(host: string): boolean {
  let h = host.toLowerCase();
  if (h.startsWith("[") && h.endsWith("]")) h = h.slice(1, -1);
  if (h === "localhost" || h.endsWith(".localhost")) return true;
  if (isIPv4(h)) return h.startsWith("127.");
  if (isIPv6(h)) {
    if (h === "::1" || h === "0:0:0:0:0:0:0:1") return true;
    const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(h);
    return m !== null && m[1] !== undefined && m[1].startsWith("127.");
  }
  return false;
}

/** Splits a Host header ("127.0.0.1:8080", "[::1]:80", "localhost") into host and port (null: none). */
export function splitHostPort(hostHeader: string): { host: string; port: number | null } | null {
  const m = /^(\[[0-9a-fA-F:.]+\]|[^:[\]]+)(?::(\d{1,5}))?$/.exec(hostHeader.trim());
  if (!m || m[1] === undefined) return null;
  const port = m[2] === undefined ? null : Number(m[2]);
  if (port !== null && port > 65535) return null;
  return { host: m[1], port };
}

/** What the access check needs to know about the server. */
export interface AccessPolicy {
  token: string;
  /** The address the server listens on ("127.0.0.1", "::1", "0.0.0.0", …). */
  bindHost: string;
  /** The port it listens on (for the cookie's name). */
  port: number;
}

/** The parts of a request the check reads. */
export interface RequestFacts {
  /** The request target ("/metrics?token=…"). */
  url: string;
  headers: Readonly<Record<string, string | string[] | undefined>>;
}

/** The verdict: allowed, or the HTTP status to refuse with and why. */
export type AccessVerdict = { ok: true; viaQuery: boolean } | { ok: false; status: 401 | 403; reason: string };

function header(f: RequestFacts, name: string): string | undefined {
  const v = f.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function sameToken(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** The token a request carries (query, Authorization header, or cookie), and where it was. */
export function presentedToken(f: RequestFacts, port: number): { token: string; viaQuery: boolean } | null {
  const q = new URL(f.url, "http://x").searchParams.get("token");
  if (q !== null) return { token: q, viaQuery: true };
  const auth = header(f, "authorization");
  if (auth !== undefined) {
    const m = /^(?:token|bearer)\s+(\S+)$/i.exec(auth.trim());
    if (m?.[1] !== undefined) return { token: m[1], viaQuery: false };
  }
  const cookie = header(f, "cookie");
  if (cookie !== undefined) {
    const want = tokenCookieName(port);
    for (const part of cookie.split(";")) {
      const eq = part.indexOf("=");
      if (eq > 0 && part.slice(0, eq).trim() === want)
        return { token: decodeURIComponent(part.slice(eq + 1).trim()), viaQuery: false };
    }
  }
  return null;
}

/**
 * Decides whether a request (HTTP or a WebSocket upgrade) may proceed. Host and Origin are checked
 * before the token (403), so a rebinding page learns nothing about the token; then the token (401).
 */
export function checkAccess(f: RequestFacts, p: AccessPolicy): AccessVerdict {
  const loopbackBound = isLoopbackHost(p.bindHost);
  const hostHeader = header(f, "host");
  const host = hostHeader === undefined ? null : splitHostPort(hostHeader);
  if (host === null) return { ok: false, status: 403, reason: "Missing or malformed Host header" };
  if (loopbackBound && !isLoopbackHost(host.host)) {
    return {
      ok: false,
      status: 403,
      reason: `Host ${hostHeader ?? ""} is not a loopback name while the server listens on ${p.bindHost}`,
    };
  }
  const origin = header(f, "origin");
  if (origin !== undefined) {
    let o: URL;
    try {
      o = new URL(origin);
    } catch {
      return { ok: false, status: 403, reason: `Malformed Origin: ${origin}` };
    }
    if (o.protocol !== "http:" && o.protocol !== "https:")
      return { ok: false, status: 403, reason: `Origin ${origin} is not http(s)` };
    if (loopbackBound && !isLoopbackHost(o.hostname)) {
      return {
        ok: false,
        status: 403,
        reason: `Origin ${origin} is not a loopback origin while the server listens on ${p.bindHost}`,
      };
    }
    const oPort = o.port === "" ? (o.protocol === "https:" ? 443 : 80) : Number(o.port);
    const hPort = host.port ?? 80;
    if (o.hostname.toLowerCase() !== host.host.toLowerCase() || oPort !== hPort) {
      return { ok: false, status: 403, reason: `Origin ${origin} does not match Host ${hostHeader ?? ""}` };
    }
  }
  const t = presentedToken(f, p.port);
  if (t === null) return { ok: false, status: 401, reason: "No access token: open the URL boxvm serve printed" };
  if (!sameToken(t.token, p.token)) return { ok: false, status: 401, reason: "Wrong access token" };
  return { ok: true, viaQuery: t.viaQuery };
}
