/**
 * The VM's shared state block and the messages between the API side and the EMT.
 *
 * Shared state block (Int32Array over a SharedArrayBuffer, created on the API side, seen by the
 * EMT and by every thread holding the VM handle). Index = dword:
 *   0  STATE      the VMSTATE value (written by the EMT only, read by anyone at any time)
 *   1  FF         forced-action flags (FF_* below), set by any thread, cleared by the EMT
 *   2  WAKE       wake sequence: bumped with Atomics.notify to wake a sleeping EMT
 *   3  SLEEPING   1 while the EMT sleeps in VMR3Wait/VMR3WaitHalted
 *   4  EXIT       the guest's power-off exit status (-1: none)
 *   5  CLIENTS    attached handles (for info)
 *   6..15         reserved
 *
 * Per-client block (Int32Array on its own SharedArrayBuffer, one per handle):
 *   0  DONE       completion sequence: bumped (with Atomics.notify) after each completion message
 *   1  PROCESSING the id of the request of this client the EMT is running now (0: none)
 *
 * Every handle owns one MessagePort to the EMT. Over it go requests (API side → EMT) and
 * completions and events (EMT → API side), each direction FIFO, so a client's results and the
 * events they caused arrive in order. The EMT drains the ports synchronously
 * (receiveMessageOnPort) after it sees FF_REQUEST; the API side drains synchronously after it
 * sees DONE move (Atomics.waitAsync).
 */
import type { MessagePort } from "node:worker_threads";
import type { CfgmPlain } from "../cfgm/CfgmNode.ts";
import type { SrcPos } from "../vm/types.ts";

/** Dword indexes of the shared state block. */
export const Ctl = { STATE: 0, FF: 1, WAKE: 2, SLEEPING: 3, EXIT: 4, CLIENTS: 5 } as const;
/** Size of the shared state block in bytes. */
export const CTL_BYTES = 64;
/** Dword indexes of a client block. */
export const Cl = { DONE: 0, PROCESSING: 1 } as const;
/** Size of a client block in bytes. */
export const CLIENT_BYTES = 16;

/** Forced-action flag: a client port has messages. */
export const FF_REQUEST = 1 << 0;
/** Forced-action flag: VMR3NotifyFF was called (wake and re-check). */
export const FF_NOTIFY = 1 << 1;

/** A function the EMT can call: a registered name, or a module and its export. */
export type ReqFunction = string | { module: string; export: string };

/** The internal operations of the VM (lifecycle and helpers), run on the EMT. */
export type EmtOp =
  | "powerOn"
  | "suspend"
  | "resume"
  | "reset"
  | "powerOff"
  | "destroy"
  | "stats"
  | "saveBegin"
  | "saveEnd"
  | "loadBegin"
  | "loadApply"
  | "loadFail"
  | "relocate";

/** API side → EMT. */
export type ToEmt =
  | { t: "r"; id: number; fn: ReqFunction; args: unknown[]; flags: number }
  | { t: "op"; id: number; op: EmtOp; arg?: unknown }
  | { t: "in"; name: string; bytes: Uint8Array }
  | { t: "attach"; port: MessagePort; client: SharedArrayBuffer }
  | { t: "bye" };

/** An error report as it crosses the thread boundary. */
export interface ErrorReport {
  rc: number;
  pos: SrcPos;
  fmt: string;
  args: unknown[];
  msg: string;
}

/** EMT → API side. */
export type FromEmt =
  | { t: "c"; id: number; rc: number; v?: unknown; msg?: string }
  | { t: "s"; s: number; o: number }
  | ({ t: "e" } & ErrorReport)
  | { t: "x" }
  | { t: "o"; name: string; bytes: Uint8Array }
  | { t: "p"; status: number }
  | { t: "ready"; rc: number; msg?: string };

/** What the EMT worker starts from. */
export interface EmtInit {
  cfg: CfgmPlain;
  ram: SharedArrayBuffer;
  ctl: SharedArrayBuffer;
  client: SharedArrayBuffer;
  port: MessagePort;
  modules: string[];
}
