/**
 * The HTTP and WebSocket server of `boxvm serve`.
 *
 *   GET /            the page (index.html); opened with ?token=… it also sets the token cookie
 *   GET /app.js      the page's script, GET /app.css its style sheet (bundle.ts)
 *   GET /metrics     STAM of every VM in Prometheus's text format (prometheus.ts)
 *   GET /api/vms     the VM list as JSON (VMR3EnumVMs order)
 *   GET /ws          the WebSocket of a tab (protocol.ts)
 *
 * Every request, WebSocket upgrades included, passes access.ts's check first: without the token
 * it gets 401, with a foreign Host or Origin 403. Nothing else is served.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Duplex } from "node:stream";
import { WebSocketServer, type WebSocket } from "ws";
import { VMR3EnumVMs } from "../vm/vmapi.ts";
import { checkAccess, newToken, tokenCookieName, type AccessPolicy } from "./access.ts";
import { buildPage, type PageAssets } from "./bundle.ts";
import { formatPrometheus, PROMETHEUS_CONTENT_TYPE } from "./prometheus.ts";
import { parseClientMessage, type ServerMessage, type VmSummary } from "./protocol.ts";
import type { VmSession } from "./session.ts";

/** Options of the server. */
export interface WebServerOptions {
  /** Address to listen on (default 127.0.0.1). */
  host?: string;
  /** Port (default 0: any free port). */
  port?: number;
  /** The access token (default: a new random one). */
  token?: string;
  /** Bytes of console scrollback each VM keeps (reported to tabs). */
  scrollbackBytes?: number;
  /** Whether to bundle and serve the page (tests of the API side may skip the bundling). */
  page?: boolean;
}

/** A tab whose socket holds more than this much unsent data is dropped (it reconnects and gets the scrollback). */
const MAX_BUFFERED = 8 * 1024 * 1024;

const SECURITY_HEADERS: Record<string, string> = {
  "Cache-Control": "no-store",
  "Referrer-Policy": "no-referrer",
  "X-Content-Type-Options": "nosniff",
  // xterm.js adds <style> elements and inline styles; everything else comes from this server.
  "Content-Security-Policy":
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; font-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
};

/** The running server. */
export class WebServer {
  readonly token: string;
  readonly host: string;
  readonly port: number;
  readonly #http: Server;
  readonly #wss: WebSocketServer;
  readonly #sessions: VmSession[];
  readonly #assets: PageAssets | null;
  readonly #policy: AccessPolicy;
  readonly #scrollbackBytes: number;
  readonly #tabs = new Set<WebSocket>();
  readonly #unobserve: (() => void)[] = [];

  private constructor(
    http: Server,
    sessions: VmSession[],
    assets: PageAssets | null,
    token: string,
    host: string,
    port: number,
    scrollbackBytes: number,
  ) {
    this.#http = http;
    this.#sessions = sessions;
    this.#assets = assets;
    this.token = token;
    this.host = host;
    this.port = port;
    this.#scrollbackBytes = scrollbackBytes;
    this.#policy = { token, bindHost: host, port };
    this.#wss = new WebSocketServer({ noServer: true, maxPayload: 1024 * 1024 });
    http.on("request", (req, res) => this.#request(req, res));
    http.on("upgrade", (req, socket, head) => this.#upgrade(req, socket, head));
    for (const s of sessions) this.#unobserve.push(s.onStateChange(() => this.#broadcastList()));
  }

  /** Bundles the page (unless `page: false`) and listens. */
  static async start(sessions: VmSession[], opts: WebServerOptions = {}): Promise<WebServer> {
    const host = opts.host ?? "127.0.0.1";
    const assets = opts.page === false ? null : await buildPage();
    const http = createServer();
    await new Promise<void>((resolve, reject) => {
      http.once("error", reject);
      http.listen(opts.port ?? 0, host, () => {
        http.off("error", reject);
        resolve();
      });
    });
    const port = (http.address() as AddressInfo).port;
    return new WebServer(http, sessions, assets, opts.token ?? newToken(), host, port, opts.scrollbackBytes ?? 0);
  }

  /** The URL to open, with the token (a host that a browser reaches for wildcard bindings). */
  get url(): string {
    let h = this.host;
    if (h === "0.0.0.0") h = "127.0.0.1";
    else if (h === "::") h = "[::1]";
    else if (h.includes(":")) h = `[${h}]`;
    return `http://${h}:${String(this.port)}/?token=${this.token}`;
  }

  /** The VMs in VMR3EnumVMs order (those this server serves). */
  vmList(): VmSummary[] {
    const out: VmSummary[] = [];
    for (let vm = VMR3EnumVMs(null); vm !== null; vm = VMR3EnumVMs(vm)) {
      const s = this.#sessions.find((x) => x.vm === vm);
      if (s) out.push(s.summary());
    }
    // A VM being recreated is briefly not in the process's list; keep it visible.
    for (const s of this.#sessions) if (!out.some((v) => v.id === s.id)) out.push(s.summary());
    return out;
  }

  /** Stops listening, closes the tabs (the VMs are the caller's). */
  async close(): Promise<void> {
    for (const u of this.#unobserve) u();
    for (const ws of this.#tabs) ws.terminate();
    this.#wss.close();
    this.#http.closeAllConnections();
    await new Promise<void>((resolve) => this.#http.close(() => resolve()));
  }

  // ------------------------------------------------------------------ HTTP

  #request(req: IncomingMessage, res: ServerResponse): void {
    const verdict = checkAccess({ url: req.url ?? "/", headers: req.headers }, this.#policy);
    if (!verdict.ok) {
      this.#send(res, verdict.status, "text/plain; charset=utf-8", `${String(verdict.status)} ${verdict.reason}\n`);
      return;
    }
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.setHeader("Allow", "GET, HEAD");
      this.#send(res, 405, "text/plain; charset=utf-8", "405 Method not allowed\n");
      return;
    }
    const path = new URL(req.url ?? "/", "http://x").pathname;
    if (path === "/" || path === "/index.html") {
      if (!this.#assets)
        return this.#send(res, 404, "text/plain; charset=utf-8", "404 The page is not built in this server\n");
      if (verdict.viaQuery) {
        res.setHeader("Set-Cookie", `${tokenCookieName(this.port)}=${this.token}; Path=/; HttpOnly; SameSite=Strict`);
      }
      this.#send(res, 200, "text/html; charset=utf-8", this.#assets.html);
    } else if (path === "/app.js" && this.#assets) {
      this.#send(res, 200, "text/javascript; charset=utf-8", this.#assets.js);
    } else if (path === "/app.css" && this.#assets) {
      this.#send(res, 200, "text/css; charset=utf-8", this.#assets.css);
    } else if (path === "/metrics") {
      void this.metrics().then(
        (text) => this.#send(res, 200, PROMETHEUS_CONTENT_TYPE, text),
        (e: unknown) => this.#send(res, 500, "text/plain; charset=utf-8", `500 ${(e as Error).message}\n`),
      );
    } else if (path === "/api/vms") {
      this.#send(res, 200, "application/json", JSON.stringify(this.vmList()));
    } else {
      this.#send(res, 404, "text/plain; charset=utf-8", "404 Not found\n");
    }
  }

  /** The /metrics text. */
  async metrics(): Promise<string> {
    const list = this.vmList();
    const parts = await Promise.all(
      list.map(async (v) => {
        const s = this.#sessions.find((x) => x.id === v.id);
        return { id: v.id, name: v.name, state: v.state, stats: s ? await s.rawStats("*") : [] };
      }),
    );
    return formatPrometheus(parts);
  }

  #send(res: ServerResponse, status: number, type: string, body: string | Uint8Array): void {
    for (const [k, v] of Object.entries(SECURITY_HEADERS)) res.setHeader(k, v);
    res.writeHead(status, {
      "Content-Type": type,
      "Content-Length": String(typeof body === "string" ? Buffer.byteLength(body) : body.length),
    });
    res.end(res.req.method === "HEAD" ? undefined : body);
  }

  // ------------------------------------------------------------------ WebSocket

  #upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const refuse = (status: number, text: string, reason: string): void => {
      socket.end(
        `HTTP/1.1 ${String(status)} ${text}\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: ${String(Buffer.byteLength(reason))}\r\n\r\n${reason}`,
      );
      socket.destroy();
    };
    const verdict = checkAccess({ url: req.url ?? "/", headers: req.headers }, this.#policy);
    if (!verdict.ok)
      return refuse(verdict.status, verdict.status === 401 ? "Unauthorized" : "Forbidden", verdict.reason);
    if (new URL(req.url ?? "/", "http://x").pathname !== "/ws") return refuse(404, "Not Found", "No WebSocket here");
    this.#wss.handleUpgrade(req, socket, head, (ws) => this.#tab(ws));
  }

  /** Serves one tab. */
  #tab(ws: WebSocket): void {
    this.#tabs.add(ws);
    let unwatch: (() => void) | null = null;
    let session: VmSession | null = null;
    const send = (m: ServerMessage): void => {
      if (ws.readyState !== ws.OPEN) return;
      if (ws.bufferedAmount > MAX_BUFFERED) {
        ws.close(1013, "The tab falls behind the console; reconnect");
        return;
      }
      ws.send(JSON.stringify(m));
    };
    send({ t: "hello", vms: this.vmList(), scrollbackBytes: this.#scrollbackBytes });
    ws.on("message", (data, isBinary) => {
      if (isBinary) return;
      const m = parseClientMessage(
        Buffer.isBuffer(data) ? data.toString("utf8") : Buffer.concat(data as Buffer[]).toString("utf8"),
      );
      if (!m) return;
      switch (m.t) {
        case "select": {
          const s = this.#sessions.find((x) => x.id === m.vm);
          if (!s) return;
          unwatch?.();
          session = s;
          unwatch = s.watch(send);
          return;
        }
        case "input":
          session?.input(m.data);
          return;
        case "resize":
          if (session) session.size = { cols: m.cols, rows: m.rows };
          return;
        case "op": {
          const s = session;
          if (!s) {
            send({ t: "result", id: m.id, ok: false, message: "No VM selected" });
            return;
          }
          void s.run(m.op).then((err) => send({ t: "result", id: m.id, ok: err === null, message: err ?? "" }));
          return;
        }
        case "stats": {
          const s = session;
          if (!s) return;
          void s.stats(m.pattern).then((rows) => send({ t: "stats", vm: s.id, rows }));
          return;
        }
      }
    });
    ws.on("close", () => {
      unwatch?.();
      this.#tabs.delete(ws);
    });
    ws.on("error", () => ws.terminate());
  }

  #broadcastList(): void {
    const msg = JSON.stringify({ t: "vms", vms: this.vmList() } satisfies ServerMessage);
    for (const ws of this.#tabs) if (ws.readyState === ws.OPEN) ws.send(msg);
  }
}
