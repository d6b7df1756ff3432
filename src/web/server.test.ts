/**
 * The server with real VMs (no guest code needed: the console is fed by a request function on
 * the EMT) and real HTTP/WebSocket clients.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { request } from "node:http";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { WebSocket } from "ws";
import type { ServerMessage } from "./protocol.ts";
import { WebServer } from "./server.ts";
import { VmSession } from "./session.ts";
import { parsePrometheusText } from "./testing/promtext.ts";

const FNS = new URL("../vm/testing/reqfns.ts", import.meta.url).href;
const dir = mkdtempSync(join(tmpdir(), "boxvm-web-"));
let sessions: VmSession[] = [];
let server: WebServer;

before(async () => {
  for (const i of [0, 1]) {
    sessions.push(
      await VmSession.create(
        i,
        {
          name: `vm${String(i)}`,
          what: "a test machine",
          create: { modules: [FNS], config: { RamSize: 4 << 20 } },
          stateFile: join(dir, `vm${String(i)}.sav`),
        },
        64,
      ),
    );
  }
  server = await WebServer.start(sessions, { scrollbackBytes: 64 });
});

after(async () => {
  await server.close();
  for (const s of sessions) await s.close();
  sessions = [];
  rmSync(dir, { recursive: true, force: true });
});

function httpGet(
  path: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: "127.0.0.1", port: server.port, path, headers: { host: `127.0.0.1:${String(server.port)}`, ...headers } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () =>
          resolve({
            status: res.statusCode ?? 0,
            type: String(res.headers["content-type"] ?? ""),
            body: Buffer.concat(chunks).toString("utf8"),
          }),
        );
      },
    );
    req.on("error", reject);
    req.end();
  });
}

/** Tries a WebSocket; resolves with the refusal's status, or "open". */
function wsStatus(path: string, headers: Record<string, string> = {}): Promise<number | "open"> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${String(server.port)}${path}`, { headers });
    ws.on("open", () => {
      ws.terminate();
      resolve("open");
    });
    ws.on("unexpected-response", (_req, res) => {
      resolve(res.statusCode ?? 0);
      ws.terminate();
    });
    ws.on("error", (e) => reject(e));
  });
}

/** A tab: a WebSocket with its received messages and a way to wait for one. */
class Tab {
  readonly ws: WebSocket;
  readonly got: ServerMessage[] = [];
  #waiters: (() => void)[] = [];
  constructor() {
    this.ws = new WebSocket(`ws://127.0.0.1:${String(server.port)}/ws?token=${server.token}`, {
      origin: `http://127.0.0.1:${String(server.port)}`,
    });
    this.ws.on("message", (d: Buffer) => {
      this.got.push(JSON.parse(d.toString("utf8")) as ServerMessage);
      for (const w of this.#waiters.splice(0)) w();
    });
  }
  send(m: object): void {
    this.ws.send(JSON.stringify(m));
  }
  /** Waits (up to 10 s) until a received message satisfies pred; returns it. */
  async waitFor<T extends ServerMessage>(pred: (m: ServerMessage) => m is T, what: string): Promise<T>;
  async waitFor(pred: (m: ServerMessage) => boolean, what: string): Promise<ServerMessage>;
  async waitFor(pred: (m: ServerMessage) => boolean, what: string): Promise<ServerMessage> {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const m = this.got.find(pred);
      if (m) return m;
      if (Date.now() > deadline)
        throw new Error(`Tab never got ${what}; got ${JSON.stringify(this.got).slice(0, 2000)}`);
      await new Promise<void>((r) => {
        this.#waiters.push(r);
        setTimeout(r, 100);
      });
    }
  }
  /** Console text received so far (after the last reset). */
  consoleText(vm: number): string {
    let s = "";
    for (const m of this.got) {
      if (m.t !== "console" || m.vm !== vm) continue;
      if (m.reset) s = "";
      s += Buffer.from(m.data, "base64").toString("utf8");
    }
    return s;
  }
  async opened(): Promise<void> {
    if (this.ws.readyState === WebSocket.OPEN) return;
    await new Promise((r, j) => {
      this.ws.once("open", r);
      this.ws.once("error", j);
    });
  }
  async op(id: number, op: string): Promise<{ ok: boolean; message: string }> {
    this.send({ t: "op", id, op });
    const r = await this.waitFor((m) => m.t === "result" && m.id === id, `the result of ${op}`);
    return r as { ok: boolean; message: string };
  }
  close(): void {
    this.ws.close();
  }
}

const host = (): Record<string, string> => ({ host: `127.0.0.1:${String(server.port)}` });

test("HTTP requests without the token are refused (401), with it they pass", async () => {
  for (const path of [
    "/",
    "/metrics",
    "/api/vms",
    "/app.js",
    "/nope",
    `/metrics?token=${server.token.slice(0, -1)}x`,
  ]) {
    const r = await httpGet(path);
    assert.equal(r.status, 401, path);
    assert.doesNotMatch(r.body, new RegExp(server.token), "the refusal must not leak the token");
  }
  assert.equal((await httpGet("/metrics", { authorization: `token ${server.token}` })).status, 200);
  assert.equal((await httpGet(`/api/vms?token=${server.token}`)).status, 200);
  assert.equal((await httpGet(`/nope?token=${server.token}`)).status, 404);
});

test("HTTP requests with a foreign Host or Origin are refused (403) while bound to loopback", async () => {
  const q = `/metrics?token=${server.token}`;
  assert.equal((await httpGet(q, { host: `evil.example:${String(server.port)}` })).status, 403);
  assert.equal((await httpGet(q, { origin: "http://evil.example" })).status, 403);
  assert.equal((await httpGet(q, { origin: `http://127.0.0.1:${String(server.port)}` })).status, 200);
});

test("WebSocket upgrades without the token, or from a foreign origin, are refused", async () => {
  const port = String(server.port);
  const origin = `http://127.0.0.1:${port}`;
  assert.equal(await wsStatus("/ws", { origin }), 401);
  assert.equal(await wsStatus("/ws?token=wrong", { origin }), 401);
  assert.equal(await wsStatus(`/ws?token=${server.token}`, { origin: "http://evil.example" }), 403);
  assert.equal(await wsStatus(`/ws?token=${server.token}`, { origin, host: `evil.example:${port}` }), 403);
  assert.equal(await wsStatus(`/elsewhere?token=${server.token}`, { origin }), 404);
  assert.equal(await wsStatus(`/ws?token=${server.token}`, { origin }), "open");
});

test("/metrics parses as Prometheus text and holds every VM's STAM", async () => {
  const r = await httpGet("/metrics", { authorization: `token ${server.token}` });
  assert.match(r.type, /^text\/plain; version=0\.0\.4/);
  const fams = parsePrometheusText(r.body);
  const states = fams.get("boxvm_vm_state")?.samples.map((s) => s.labels["vm"]);
  assert.deepEqual(states, ["vm0", "vm1"]);
  const stam = await sessions[0]!.rawStats("*");
  assert.ok(stam.length > 0);
  // Every STAM sample of the VM is in the scrape, labelled with the VM.
  const helps = [...fams.values()].map((f) => f.help ?? "").join("\n");
  for (const s of stam) assert.ok(helps.includes(`STAM ${s.name},`), s.name);
  const requests = [...fams.values()].find((f) => (f.help ?? "").includes("STAM /VM/EMT/Requests,"));
  assert.ok(requests && requests.samples.some((x) => x.labels["vm"] === "vm0"));
});

test("tabs: same console for all, scrollback for late ones, input, controls, progress, errors", async () => {
  const s0 = sessions[0]!;
  const a = new Tab();
  await a.opened();
  const hello = await a.waitFor((m) => m.t === "hello", "hello");
  assert.deepEqual(hello.t === "hello" && hello.vms.map((v) => v.name), ["vm0", "vm1"]);
  a.send({ t: "select", vm: 0 });
  await a.waitFor((m) => m.t === "vm" && m.vm.id === 0 && m.vm.state === "CREATED", "the VM's detail");

  // The VM API refuses an illegal transition; the tab gets its status and message.
  const refused = await a.op(1, "suspend");
  assert.equal(refused.ok, false);
  assert.match(refused.message, /^VERR_VM_INVALID_VM_STATE: Cannot suspend a VM in state CREATED/);
  const refusedSave = await a.op(11, "save");
  assert.equal(refusedSave.message, "VERR_VM_INVALID_VM_STATE: Cannot save a VM in state CREATED");
  assert.ok(!a.got.some((m) => m.t === "progress"), "a refused save shows no progress");
  assert.equal((await a.op(2, "powerOn")).ok, true);
  await a.waitFor((m) => m.t === "state" && m.vm === 0 && m.state === "RUNNING", "RUNNING");
  await a.waitFor((m) => m.t === "vms" && m.vms[0]?.state === "RUNNING", "the list with RUNNING");

  // Guest output reaches the open tab.
  await s0.vm.call("consoleOut", "serial0", "first line\r\n");
  await a.waitFor(() => a.consoleText(0).includes("first line"), "the first line");

  // A second tab opened later gets it from the scrollback, then both get new output.
  const b = new Tab();
  await b.opened();
  b.send({ t: "select", vm: 0 });
  await b.waitFor(() => b.consoleText(0) === "first line\r\n", "the scrollback");
  await s0.vm.call("consoleOut", "serial0", "second\r\n");
  await a.waitFor(() => a.consoleText(0).endsWith("second\r\n"), "second on a");
  await b.waitFor(() => b.consoleText(0).endsWith("second\r\n"), "second on b");

  // Closing a tab loses nothing: output while no tab is open waits in the scrollback.
  a.close();
  b.close();
  await new Promise((r) => setTimeout(r, 50));
  await s0.vm.call("consoleOut", "serial0", "while away\r\n");
  const c = new Tab();
  await c.opened();
  c.send({ t: "select", vm: 0 });
  await c.waitFor(() => c.consoleText(0).endsWith("while away\r\n"), "output made while no tab was open");
  // The scrollback is 64 bytes here: older output falls off the start, never the end.
  await s0.vm.call("consoleOut", "serial0", `${"x".repeat(70)}END`);
  await c.waitFor(() => c.consoleText(0).endsWith("END"), "END");
  const d = new Tab();
  await d.opened();
  d.send({ t: "select", vm: 0 });
  await d.waitFor(() => d.consoleText(0).length === 64 && d.consoleText(0).endsWith("xxxEND"), "the last 64 bytes");
  d.close();

  // Typed input reaches the guest's serial port.
  await s0.vm.call("consoleListen", "serial0");
  c.send({ t: "input", data: "typed\r" });
  const deadline = Date.now() + 10_000;
  while ((await s0.vm.call("consoleHeard")) !== "typed\r" && Date.now() < deadline)
    await new Promise((r) => setTimeout(r, 20));
  assert.equal(await s0.vm.call("consoleHeard"), "typed\r");

  // Stats for the panel.
  c.send({ t: "stats", pattern: "/VM/EMT/*" });
  const st = await c.waitFor((m) => m.t === "stats", "stats");
  assert.ok(
    st.t === "stats" &&
      st.rows.some((r) => r.name === "/VM/EMT/Requests") &&
      st.rows.every((r) => r.name.startsWith("/VM/EMT/")),
  );

  // Suspend, save with progress to 100 %, load, resume.
  assert.equal((await c.op(3, "suspend")).ok, true);
  await c.waitFor((m) => m.t === "state" && m.state === "SUSPENDED", "SUSPENDED");
  assert.equal(existsSync(s0.spec.stateFile), false);
  assert.equal((await c.op(4, "save")).ok, true);
  const progress = c.got.flatMap((m) => (m.t === "progress" ? [m.progress] : []));
  assert.ok(progress.length >= 2, "several progress reports");
  assert.deepEqual(progress[progress.length - 1], { op: "save", percent: 100, done: true, ok: true });
  for (let i = 1; i < progress.length; i++)
    assert.ok(progress[i]!.percent >= progress[i - 1]!.percent, "progress never goes back");
  assert.ok(
    c.got.some((m) => m.t === "state" && m.state === "SAVING"),
    "SAVING was shown",
  );
  assert.ok(existsSync(s0.spec.stateFile));
  assert.equal((await c.op(5, "load")).ok, true);
  assert.equal((await c.op(6, "resume")).ok, true);

  // An error reported through the at-error callbacks reaches the tab as it comes.
  s0.vm.setError(-2, { file: "test.ts", line: 7, func: "here" }, "Something broke: %s", "detail");
  const e = await c.waitFor((m) => m.t === "error", "the error report");
  assert.ok(e.t === "error");
  assert.equal(e.error.code, "VERR_INVALID_PARAMETER");
  assert.equal(e.error.message, "Something broke: detail");
  assert.equal(e.error.where, "test.ts:7 here");

  // Power off, then a new VM from the same configuration.
  assert.equal((await c.op(7, "powerOff")).ok, true);
  const old = s0.vm;
  assert.equal((await c.op(8, "recreate")).ok, true);
  assert.notEqual(s0.vm, old);
  assert.equal(old.alive, false);
  assert.equal(s0.state, "CREATED");
  await c.waitFor(
    (m) => m.t === "vms" && m.vms.find((v) => v.id === 0)?.state === "CREATED",
    "the list after recreate",
  );
  assert.deepEqual(
    server
      .vmList()
      .map((v) => v.id)
      .sort(),
    [0, 1],
  );
  c.close();
});

test("the page is bundled and served", async () => {
  const s = await WebServer.start([], { port: 0 });
  try {
    const get = (path: string, headers: Record<string, string>) =>
      new Promise<{ status: number; type: string; body: string; cookie: string; csp: string }>((resolve, reject) => {
        const req = request(
          { host: "127.0.0.1", port: s.port, path, headers: { host: `127.0.0.1:${String(s.port)}`, ...headers } },
          (res) => {
            const chunks: Buffer[] = [];
            res.on("data", (ch: Buffer) => chunks.push(ch));
            res.on("end", () =>
              resolve({
                status: res.statusCode ?? 0,
                type: String(res.headers["content-type"]),
                body: Buffer.concat(chunks).toString("utf8"),
                cookie: String(res.headers["set-cookie"] ?? ""),
                csp: String(res.headers["content-security-policy"] ?? ""),
              }),
            );
          },
        );
        req.on("error", reject);
        req.end();
      });
    const page = await get(`/?token=${s.token}`, {});
    assert.equal(page.status, 200);
    assert.match(page.body, /<script type="module" src="app.js">/);
    assert.match(page.csp, /default-src 'none'; script-src 'self'/);
    assert.match(
      page.cookie,
      new RegExp(`boxvm-token-${String(s.port)}=${s.token}; Path=/; HttpOnly; SameSite=Strict`),
    );
    // The cookie alone is enough for the page's script and style sheet.
    const cookie = `boxvm-token-${String(s.port)}=${s.token}`;
    const js = await get("/app.js", { cookie });
    assert.equal(js.status, 200);
    assert.match(js.type, /javascript/);
    assert.match(js.body, /xterm/i);
    const css = await get("/app.css", { cookie });
    assert.equal(css.status, 200);
    assert.match(css.body, /\.xterm/);
    assert.equal((await get("/app.js", {})).status, 401);
  } finally {
    await s.close();
  }
});
