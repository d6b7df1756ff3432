/// <reference lib="dom" />
/// <reference lib="dom.iterable" />
/**
 * boxvm serve's page: the selected VM's serial console in an xterm.js terminal, its controls,
 * progress of a save or load, statistics and error reports, and the list of VMs. Everything goes
 * over one WebSocket (protocol.ts); the page reconnects when it drops and gets the console's
 * scrollback again.
 *
 * (The two references above give this file the DOM when the root tsconfig compiles it; its own
 * tsconfig, beside it, has the DOM lib anyway.)
 */
import { Terminal } from "@xterm/xterm";
import {
  OPS,
  opAllowed,
  type ClientMessage,
  type ErrorReport,
  type Op,
  type Progress,
  type ServerMessage,
  type StateName,
  type StatRow,
  type VmDetail,
  type VmSummary,
} from "../protocol.ts";

/** How often the statistics refresh (ms). */
const STATS_PERIOD = 1000;

function $<T extends HTMLElement>(sel: string): T {
  const el = document.querySelector<T>(sel);
  if (!el) throw new Error(`The page lacks ${sel}`);
  return el;
}

const el = {
  vmName: $<HTMLSpanElement>("#vm-name"),
  state: $<HTMLSpanElement>("#state"),
  link: $<HTMLSpanElement>("#link"),
  vmList: $<HTMLUListElement>("#vm-list"),
  what: $<HTMLParagraphElement>("#vm-what"),
  status: $<HTMLParagraphElement>("#status"),
  terminal: $<HTMLDivElement>("#terminal"),
  progressBox: $<HTMLSpanElement>("#progress-box"),
  progress: $<HTMLProgressElement>("#progress"),
  progressLabel: $<HTMLLabelElement>("#progress-label"),
  progressText: $<HTMLSpanElement>("#progress-text"),
  statsPattern: $<HTMLInputElement>("#stats-pattern"),
  statsNonZero: $<HTMLInputElement>("#stats-nonzero"),
  statsBody: $<HTMLTableSectionElement>("#stats tbody"),
  errors: $<HTMLOListElement>("#errors"),
  errorCount: $<HTMLSpanElement>("#error-count"),
};
const buttons = new Map<Op, HTMLButtonElement>();
for (const op of OPS) buttons.set(op, $<HTMLButtonElement>(`button[data-op="${op}"]`));

// ------------------------------------------------------------------ state of the page

let vms: VmSummary[] = [];
let current: VmDetail | null = null;
/** The VM this tab wants (from the URL's #vm=N, else the first). */
let wanted: number | null = readWanted();
/** Operations sent and not answered yet. */
const inFlight = new Map<number, Op>();
let nextOpId = 1;
let socket: WebSocket | null = null;
let reconnectDelay = 250;
let errorCount = 0;
/** The last statistics, for the per-second rates. */
let lastStats: { at: number; values: Map<string, number> } | null = null;

function readWanted(): number | null {
  const m = /(?:^#|&)vm=(\d+)/.exec(location.hash);
  return m?.[1] === undefined ? null : Number(m[1]);
}

// ------------------------------------------------------------------ terminal

const term = new Terminal({
  convertEol: false,
  cursorBlink: true,
  fontFamily: "ui-monospace, 'DejaVu Sans Mono', Menlo, Consolas, monospace",
  fontSize: 14,
  scrollback: 5000,
  theme: { background: "#000000" },
});
term.open(el.terminal);
term.onData((data) => send({ t: "input", data }));
term.onResize(({ cols, rows }) => send({ t: "resize", cols, rows }));

/** Fits the terminal to its box: the cell size is read off the rendered screen (cols × rows cells). */
function fit(): void {
  const screen = el.terminal.querySelector<HTMLElement>(".xterm-screen");
  if (!screen || term.cols === 0 || term.rows === 0) return;
  const cellW = screen.clientWidth / term.cols;
  const cellH = screen.clientHeight / term.rows;
  if (!(cellW > 0) || !(cellH > 0)) return;
  const style = getComputedStyle(el.terminal);
  const w = el.terminal.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight) - 14; // the scroll bar
  const h = el.terminal.clientHeight - parseFloat(style.paddingTop) - parseFloat(style.paddingBottom);
  const cols = Math.max(20, Math.floor(w / cellW));
  const rows = Math.max(5, Math.floor(h / cellH));
  if (cols !== term.cols || rows !== term.rows) term.resize(cols, rows);
}
new ResizeObserver(() => fit()).observe(el.terminal);

function base64Bytes(s: string): Uint8Array {
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

// ------------------------------------------------------------------ connection

function send(m: ClientMessage): void {
  if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(m));
}

function connect(): void {
  const token = new URLSearchParams(location.search).get("token");
  const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws${token ? `?token=${encodeURIComponent(token)}` : ""}`;
  const ws = new WebSocket(url);
  socket = ws;
  ws.onopen = () => {
    reconnectDelay = 250;
    el.link.textContent = "connected";
    el.link.dataset["up"] = "true";
  };
  ws.onmessage = (ev: MessageEvent<string>) => {
    let m: ServerMessage;
    try {
      m = JSON.parse(ev.data) as ServerMessage;
    } catch {
      return;
    }
    receive(m);
  };
  ws.onclose = () => {
    if (socket !== ws) return;
    socket = null;
    el.link.textContent = "offline: reconnecting";
    el.link.dataset["up"] = "false";
    for (const [, op] of inFlight) setStatus(`${label(op)}: the connection dropped before the answer`, true);
    inFlight.clear();
    renderButtons();
    setTimeout(connect, reconnectDelay);
    reconnectDelay = Math.min(reconnectDelay * 2, 5000);
  };
}

function receive(m: ServerMessage): void {
  switch (m.t) {
    case "hello":
      vms = m.vms;
      renderList();
      select(wanted !== null && vms.some((v) => v.id === wanted) ? wanted : (vms[0]?.id ?? null));
      return;
    case "vms":
      vms = m.vms;
      renderList();
      return;
    case "vm":
      if (wanted !== m.vm.id) return;
      current = m.vm;
      errorCount = 0;
      el.errors.replaceChildren();
      for (const e of m.vm.errors) showError(e);
      showProgress(m.vm.progress);
      lastStats = null;
      el.statsBody.replaceChildren();
      renderVm();
      return;
    case "state":
      if (!current || current.id !== m.vm) return;
      current.state = m.state;
      current.hasSavedState = m.hasSavedState;
      renderVm();
      return;
    case "console":
      if (!current || current.id !== m.vm) return;
      if (m.reset) term.reset();
      term.write(base64Bytes(m.data));
      return;
    case "error":
      if (!current || current.id !== m.vm) return;
      current.errors.push(m.error);
      showError(m.error);
      return;
    case "progress":
      if (!current || current.id !== m.vm) return;
      current.progress = m.progress;
      showProgress(m.progress);
      return;
    case "stats":
      if (current && current.id === m.vm) showStats(m.rows);
      return;
    case "result": {
      const op = inFlight.get(m.id);
      inFlight.delete(m.id);
      if (op !== undefined) setStatus(m.ok ? `${label(op)}: done` : `${label(op)} failed: ${m.message}`, !m.ok);
      renderButtons();
      return;
    }
  }
}

function select(id: number | null): void {
  wanted = id;
  current = null;
  term.reset();
  if (id === null) {
    renderVm();
    return;
  }
  history.replaceState(null, "", `#vm=${String(id)}`);
  send({ t: "select", vm: id });
  send({ t: "resize", cols: term.cols, rows: term.rows });
  renderList();
}

// ------------------------------------------------------------------ rendering

function label(op: Op): string {
  return buttons.get(op)?.textContent ?? op;
}

function setStatus(text: string, bad: boolean): void {
  el.status.textContent = text;
  el.status.dataset["kind"] = bad ? "bad" : "ok";
}

function renderList(): void {
  el.vmList.replaceChildren(
    ...vms.map((v) => {
      const li = document.createElement("li");
      const b = document.createElement("button");
      b.type = "button";
      b.dataset["vm"] = String(v.id);
      b.setAttribute("aria-current", String(v.id === wanted));
      const name = document.createElement("span");
      name.textContent = v.name;
      const st = document.createElement("span");
      st.className = "mini";
      st.textContent = v.state;
      b.append(name, st);
      b.addEventListener("click", () => select(v.id));
      li.append(b);
      return li;
    }),
  );
}

function renderVm(): void {
  const state: StateName | "" = current?.state ?? "";
  el.vmName.textContent = current?.name ?? "";
  el.state.textContent = state === "" ? (socket ? "no VM" : "connecting") : state;
  el.state.dataset["state"] = state;
  el.what.textContent = current ? `${current.what}. Save/Load: ${current.stateFile}` : "";
  el.terminal.dataset["frozen"] = String(state === "SUSPENDED");
  document.title = current ? `${current.name} (${state}) - boxvm` : "boxvm";
  const entry = vms.find((v) => v.id === current?.id);
  if (entry && current) entry.state = current.state;
  renderList();
  renderButtons();
}

function renderButtons(): void {
  const busy = inFlight.size > 0;
  for (const [op, b] of buttons) {
    b.disabled = busy || socket === null || current === null || !opAllowed(op, current.state, current.hasSavedState);
  }
}

function showProgress(p: Progress | null): void {
  el.progressBox.hidden = p === null;
  if (!p) return;
  const pct = Math.max(0, Math.min(100, Math.round(p.percent)));
  el.progress.value = pct;
  el.progress.dataset["percent"] = String(pct);
  el.progress.dataset["done"] = String(p.done);
  const verb = p.op === "save" ? ["Saving", "Saved", "Save failed"] : ["Loading", "Loaded", "Load failed"];
  el.progressLabel.textContent = !p.done ? (verb[0] ?? "") : p.ok ? (verb[1] ?? "") : (verb[2] ?? "");
  el.progressText.textContent = `${String(pct)}%`;
}

function showError(e: ErrorReport): void {
  const li = document.createElement("li");
  const time = document.createElement("time");
  time.dateTime = new Date(e.time).toISOString();
  time.textContent = new Date(e.time).toLocaleTimeString();
  const code = document.createElement("span");
  code.className = "code";
  code.textContent = ` ${e.code} `;
  const msg = document.createElement("div");
  msg.className = "message";
  msg.textContent = e.message;
  li.append(time, code, msg);
  if (e.where !== "") {
    const where = document.createElement("div");
    where.className = "where";
    where.textContent = e.where;
    li.append(where);
  }
  el.errors.prepend(li);
  errorCount++;
  el.errorCount.textContent = String(errorCount);
}

const compact = new Intl.NumberFormat("en-US", { notation: "compact", maximumFractionDigits: 2 });

/** A value for a narrow column: digits grouped up to a million, compact ("122.38B") beyond. */
function formatValue(v: number): string {
  if (Math.abs(v) >= 1e6) return compact.format(v);
  if (Number.isInteger(v)) return v.toLocaleString("en-US");
  return v.toLocaleString("en-US", { maximumFractionDigits: 2 });
}

function showStats(rows: StatRow[]): void {
  const now = performance.now();
  const prev = lastStats;
  const values = new Map<string, number>();
  for (const r of rows) values.set(r.name, r.value);
  const shown = el.statsNonZero.checked ? rows.filter((r) => r.value !== 0) : rows;
  el.statsBody.replaceChildren(
    ...shown.map((r) => {
      const tr = document.createElement("tr");
      tr.dataset["name"] = r.name;
      const before = prev?.values.get(r.name);
      const rate = prev && before !== undefined && now > prev.at ? ((r.value - before) * 1000) / (now - prev.at) : null;
      if (before !== undefined && before !== r.value) tr.className = "changed";
      const cells = [r.name, formatValue(r.value), rate === null || rate === 0 ? "" : formatValue(rate)];
      const exact = `${r.name} = ${r.value.toLocaleString("en-US")} ${r.unit}: ${r.desc}`;
      tr.title = exact;
      cells.forEach((text, i) => {
        const td = document.createElement("td");
        td.textContent = text;
        if (i > 0) td.className = "num";
        tr.append(td);
      });
      return tr;
    }),
  );
  lastStats = { at: now, values };
}

// ------------------------------------------------------------------ controls

for (const [op, b] of buttons) {
  b.addEventListener("click", () => {
    if (!current) return;
    const id = nextOpId++;
    inFlight.set(id, op);
    setStatus(`${label(op)}…`, false);
    renderButtons();
    send({ t: "op", id, op });
  });
}
el.statsNonZero.addEventListener("change", () => {
  lastStats = null;
  requestStats();
});
el.statsPattern.addEventListener("change", () => {
  lastStats = null;
  requestStats();
});
function requestStats(): void {
  if (current && document.visibilityState === "visible")
    send({ t: "stats", pattern: el.statsPattern.value.trim() || "*" });
}
setInterval(requestStats, STATS_PERIOD);
window.addEventListener("hashchange", () => {
  const id = readWanted();
  if (id !== null && id !== wanted) select(id);
});

/** For tests and the curious: the terminal's buffer as text, one line per row. */
(window as unknown as { boxvm: { text(): string } }).boxvm = {
  text(): string {
    const buf = term.buffer.active;
    const lines: string[] = [];
    for (let i = 0; i < buf.length; i++) lines.push(buf.getLine(i)?.translateToString(true) ?? "");
    while (lines.length > 0 && lines[lines.length - 1] === "") lines.pop();
    return lines.join("\n");
  },
};

renderVm();
fit();
term.focus();
connect();
