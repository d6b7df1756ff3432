/**
 * The messages between `boxvm serve` and its page, over one WebSocket per tab (/ws), as JSON text
 * frames. This file is imported by both sides, so it uses neither Node's nor the DOM's APIs.
 *
 * A tab's conversation:
 *   server → tab   hello (the VM list and the server's limits)
 *   tab → server   select {vm}            watch one VM
 *   server → tab   vm (its state, errors, progress), console {reset: true, data: the scrollback}
 *   …              console {data}         guest output as it comes, in order
 *   tab → server   input {data}           keys typed in the terminal, to the guest's serial port
 *   tab → server   op {id, op}            a control button; answered by result {id, ok, message}
 *   server → tab   state / error / progress / stats / vms, as the VM changes
 */

/** The name of every VM state as VMR3GetStateName spells it. */
export type StateName =
  | "CREATING"
  | "CREATED"
  | "RUNNING"
  | "LOADING"
  | "LOAD_FAILURE"
  | "SAVING"
  | "SUSPENDED"
  | "RESETTING"
  | "GURU_MEDITATION"
  | "OFF"
  | "DESTROYING"
  | "TERMINATED";

/**
 * The control operations a tab may ask for. The first seven are the VM API's lifecycle calls;
 * "recreate" is boxvm serve's own: a VM that is OFF cannot be powered on again (API.md), so the
 * server destroys it and creates a new one from the same configuration, as VirtualBox's frontends
 * do when a powered-off machine is started again.
 */
export const OPS = ["powerOn", "suspend", "resume", "reset", "save", "load", "powerOff", "recreate"] as const;
/** One control operation. */
export type Op = (typeof OPS)[number];

/** The states each operation is legal from (API.md's table; "recreate" from OFF). */
export const LEGAL_FROM: Readonly<Record<Op, readonly StateName[]>> = {
  powerOn: ["CREATED"],
  suspend: ["RUNNING"],
  resume: ["SUSPENDED"],
  reset: ["RUNNING", "SUSPENDED"],
  save: ["SUSPENDED"],
  load: ["CREATED", "SUSPENDED"],
  powerOff: ["RUNNING", "SUSPENDED", "LOAD_FAILURE", "GURU_MEDITATION"],
  recreate: ["OFF"],
};

/** True when `op` is a legal transition from `state` (and, for load, a saved state exists). */
export function opAllowed(op: Op, state: StateName, hasSavedState: boolean): boolean {
  if (op === "load" && !hasSavedState) return false;
  return LEGAL_FROM[op].includes(state);
}

/** True for a string naming an operation. */
export function isOp(s: unknown): s is Op {
  return typeof s === "string" && (OPS as readonly string[]).includes(s);
}

/** One VM in the list (VMR3EnumVMs order). */
export interface VmSummary {
  /** The server's id of the VM (stable while the server runs, also across "recreate"). */
  id: number;
  name: string;
  state: StateName;
}

/** An error report from the at-error callbacks (or a failed operation). */
export interface ErrorReport {
  /** Milliseconds since the epoch, when the server received it. */
  time: number;
  rc: number;
  /** The status name ("VERR_SSM_INTEGRITY_CRC", …) or the number as text when unknown. */
  code: string;
  message: string;
  /** Where it was raised ("src/devices/…:123 fn"), when the report says. */
  where: string;
}

/** A save or load in progress (FNVMPROGRESS), or the last one. */
export interface Progress {
  op: "save" | "load";
  percent: number;
  /** True once the operation ended (successfully or not). */
  done: boolean;
  ok: boolean;
}

/** One statistic as the panel shows it. */
export interface StatRow {
  name: string;
  unit: string;
  value: number;
  desc: string;
}

/** Everything about one VM that a tab shows beside the console. */
export interface VmDetail extends VmSummary {
  errors: ErrorReport[];
  progress: Progress | null;
  /** Whether a saved state exists for Load. */
  hasSavedState: boolean;
  /** Where Save writes and Load reads. */
  stateFile: string;
  /** What the VM boots, in words. */
  what: string;
}

/** Messages from the server. */
export type ServerMessage =
  | { t: "hello"; vms: VmSummary[]; scrollbackBytes: number }
  | { t: "vms"; vms: VmSummary[] }
  | { t: "vm"; vm: VmDetail }
  | { t: "state"; vm: number; state: StateName; hasSavedState: boolean }
  /** Console output as base64 (bytes, not text: a UTF-8 sequence may be split). `reset`: clear the terminal first. */
  | { t: "console"; vm: number; data: string; reset?: true }
  | { t: "error"; vm: number; error: ErrorReport }
  | { t: "progress"; vm: number; progress: Progress }
  | { t: "stats"; vm: number; rows: StatRow[] }
  | { t: "result"; id: number; ok: boolean; message: string };

/** Messages from a tab. */
export type ClientMessage =
  | { t: "select"; vm: number }
  | { t: "input"; data: string }
  | { t: "resize"; cols: number; rows: number }
  | { t: "op"; id: number; op: Op }
  | { t: "stats"; pattern: string };

/** Parses a tab's message; null when it is not one (wrong shape or types). */
export function parseClientMessage(text: string): ClientMessage | null {
  let m: unknown;
  try {
    m = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof m !== "object" || m === null) return null;
  const o = m as Record<string, unknown>;
  const int = (v: unknown, lo: number, hi: number): v is number =>
    Number.isInteger(v) && (v as number) >= lo && (v as number) <= hi;
  switch (o["t"]) {
    case "select":
      return int(o["vm"], 0, 2 ** 31) ? { t: "select", vm: o["vm"] } : null;
    case "input":
      return typeof o["data"] === "string" && o["data"].length <= 65536 ? { t: "input", data: o["data"] } : null;
    case "resize":
      return int(o["cols"], 1, 1000) && int(o["rows"], 1, 1000)
        ? { t: "resize", cols: o["cols"], rows: o["rows"] }
        : null;
    case "op":
      return int(o["id"], 0, 2 ** 53) && isOp(o["op"]) ? { t: "op", id: o["id"], op: o["op"] } : null;
    case "stats":
      return typeof o["pattern"] === "string" && o["pattern"].length <= 1000
        ? { t: "stats", pattern: o["pattern"] }
        : null;
    default:
      return null;
  }
}
