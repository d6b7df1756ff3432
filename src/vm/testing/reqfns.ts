/**
 * Request functions and device models for tests and benchmarks (imported by the EMT through
 * VM.create's `modules` option, or named as `{ module, export }`). Not part of the machine.
 */
import type { DevIns } from "../../pdm/DevIns.ts";
import { registerDevice } from "../../pdm/Pdm.ts";
import type { Device } from "../../pdm/types.ts";
import { registerRequestFunction } from "../../req/registry.ts";
import type { SsmUnitReader, SsmUnitWriter } from "../../ssm/unit.ts";
import type { EmtVM } from "../EmtVM.ts";
import { Status, VBoxError } from "../err.ts";
import {
  VMR3AtResetDeregister,
  VMR3AtResetDeregisterInternal,
  VMR3AtResetRegister,
  VMR3AtResetRegisterInternal,
  VMR3ReqAlloc,
  VMR3ReqCall,
  VMR3ReqFree,
  VMR3ReqProcess,
  VMR3ReqQueue,
  VMR3Wait,
  VMR3WaitHalted, VMSetError, type Out, type VMReq } from "../vmapi.ts";

/** Returns its argument. */
export function echo(_vm: EmtVM, x: unknown): unknown {
  return x;
}

/** Returns a + b (a status-like number). */
export function add(_vm: EmtVM, a: number, b: number): number {
  return a + b;
}

/** Returns how many arguments it got and their sum. */
export function countArgs(_vm: EmtVM, ...args: number[]): { n: number; sum: number } {
  return { n: args.length, sum: args.reduce((s, x) => s + x, 0) };
}

/** Busy-waits on the EMT for `ms` milliseconds, then returns `rc`. */
export function spin(_vm: EmtVM, ms: number, rc = 0): number {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    /* busy */
  }
  return rc;
}

/** Throws a plain Error: an emulator fault. */
export function crash(_vm: EmtVM, text: string): never {
  throw new Error(text);
}

/** Ends the EMT thread (as a fatal bug outside the loop would). */
export function exitThread(): void {
  process.exit(3);
}

/** Throws from a timer outside the execution loop: an uncaught exception in the EMT thread. */
export function throwLater(): void {
  setTimeout(() => {
    throw new Error("uncaught in the EMT");
  }, 0);
}

/** Throws a VBoxError: a failure status the function meant. */
export function fail(_vm: EmtVM, rc: number): never {
  throw new VBoxError(rc, `Failed on purpose: ${String(rc)}`);
}

/** The EMT's state and whether it runs in a worker thread. */
export function whereAmI(vm: EmtVM): { state: number; isMainThread: boolean } {
  return { state: vm.state, isMainThread: (globalThis as { process?: { threadId?: number } }).process?.threadId === 0 };
}

/** Raises an error on the EMT with VMSetError (formatted). */
export function raiseError(vm: EmtVM, rc: number, fmt: string, ...args: unknown[]): number {
  return VMSetError(vm, rc, { file: "reqfns.ts", line: 42, func: "raiseError" }, fmt, ...args);
}

/** Records an error on the EMT without delivering it (VMR3SetErrorWorker delivers it). */
export function recordError(vm: EmtVM, rc: number, msg: string): void {
  vm.recordError(rc, { file: "reqfns.ts", line: 7, func: "recordError" }, "%s", [msg]);
}

/** A request made on the EMT runs at once: returns [rc, iStatus, state-after]. */
export async function nested(vm: EmtVM, a: number, b: number): Promise<number[]> {
  const out: Out<VMReq> = { value: null };
  const rc = await VMR3ReqCall(vm, out, 0, "add", 2, a, b);
  return [rc, out.value?.iStatus ?? -1, out.value?.enmState ?? -1];
}

/** VMR3ReqAlloc + VMR3ReqQueue on the EMT: the packet runs at once. Returns [rc, iStatus, state]. */
export async function allocQueue(vm: EmtVM, a: number, b: number): Promise<number[]> {
  const out: Out<VMReq> = { value: null };
  const rc0 = VMR3ReqAlloc(vm, out, 1);
  const req = out.value!;
  req.u.Internal.pfn = "add";
  req.u.Internal.cArgs = 2;
  req.u.Internal.aArgs = [a, b];
  const rc = await VMR3ReqQueue(req, 0);
  return [rc0, rc, req.iStatus, req.enmState, VMR3ReqFree(req), await VMR3ReqQueue(req, 0)];
}

const resetLog: string[] = [];
const onResetInt = (_v: EmtVM, user: unknown): void => {
  resetLog.push(`int:${String(user)}`);
};
const onResetDev = (d: DevIns, user: unknown): void => {
  resetLog.push(`dev:${d.name}:${String(user)}`);
};
/** Registers an internal and a device at-reset callback; resets append to a log. */
export function hookReset(vm: EmtVM): number[] {
  const rc1 = VMR3AtResetRegisterInternal(vm, onResetInt, "u1", "test internal");
  const dev = vm.pdm.instances()[0];
  const rc2 = dev ? VMR3AtResetRegister(vm, dev.ins, onResetDev, "u2", "test device") : Status.VERR_NOT_FOUND;
  return [rc1, rc2];
}
/** Deregisters what hookReset registered: [internal rc, device rc]. */
export function unhookReset(vm: EmtVM): number[] {
  const dev = vm.pdm.instances()[0];
  return [
    VMR3AtResetDeregisterInternal(vm, onResetInt),
    dev ? VMR3AtResetDeregister(vm, dev.ins, onResetDev) : Status.VERR_NOT_FOUND,
  ];
}
/** The reset log. */
export function getResetLog(): string[] {
  return resetLog;
}

/** Requests a reset or power off from the machine as a device would. */
export function machineAction(vm: EmtVM, what: "reset" | "poweroff", status = 0): void {
  if (what === "reset") vm.machine.requestReset("test");
  else vm.machine.requestPowerOff("test", status);
}

/**
 * Sleeps in VMR3Wait until a forced action is pending (VMR3NotifyFF from the API side) or 3 s
 * passed; returns [ms slept, rc of the last VMR3Wait, rc of a nested VMR3ReqProcess].
 */
export function waitForNotify(vm: EmtVM): number[] {
  const t0 = performance.now();
  let rc = -1;
  while (vm.forcedActions === 0 && performance.now() - t0 < 3000) rc = VMR3Wait(vm);
  return [performance.now() - t0, rc, VMR3ReqProcess(vm)];
}

/** VMR3WaitHalted with a timer due in `ms` (interrupts ignored): returns [ms slept, rc]. */
export function haltFor(vm: EmtVM, ms: number): number[] {
  const t = vm.timers.create("test-halt", () => undefined);
  t.setRelative(ms * 1e6);
  const t0 = performance.now();
  const rc = VMR3WaitHalted(vm, true);
  const slept = performance.now() - t0;
  vm.timers.destroy(t);
  return [slept, rc];
}

/** Signals a triple fault as the CPU does (bus.onTripleFault), then makes the CPU slice end. */
export function tripleFault(vm: EmtVM): void {
  (vm.cpu as unknown as { bus: { onTripleFault(): void } }).bus.onTripleFault();
  vm.cpu.requestExit();
}

/** Writes guest output to a char backend as a UART would. */
export function consoleOut(vm: EmtVM, name: string, text: string): void {
  vm.machine.charBackend(name)?.write(new TextEncoder().encode(text));
}

let echoed: string[] = [];
/** Installs a receiver on a char backend that records input. */
export function consoleListen(vm: EmtVM, name: string): void {
  echoed = [];
  vm.machine.charBackend(name)?.setReceiver((b) => echoed.push(new TextDecoder().decode(b)));
}
/** The recorded console input. */
export function consoleHeard(): string {
  return echoed.join("");
}

// Ordering ledger for the concurrency test: per requester, the next index expected.
const ledger = new Map<number, { next: number; bad: number }>();
let global = 0;
/** Records request i of requester w; returns the global order number. */
export function ledgerPut(_vm: EmtVM, w: number, i: number): number {
  let e = ledger.get(w);
  if (!e) {
    e = { next: 0, bad: 0 };
    ledger.set(w, e);
  }
  if (i !== e.next) e.bad++;
  e.next = i + 1;
  return ++global;
}
/** The ledger: per requester, requests seen and out-of-order/duplicate count. */
export function ledgerGet(): { w: number; next: number; bad: number; total: number }[] {
  return [...ledger].map(([w, e]) => ({ w, next: e.next, bad: e.bad, total: global }));
}

for (const [name, fn] of Object.entries({
  echo,
  add,
  countArgs,
  spin,
  crash,
  exitThread,
  throwLater,
  fail,
  whereAmI,
  raiseError,
  recordError,
  nested,
  allocQueue,
  hookReset,
  unhookReset,
  getResetLog,
  machineAction,
  tripleFault,
  waitForNotify,
  haltFor,
  consoleOut,
  consoleListen,
  consoleHeard,
  ledgerPut,
  ledgerGet,
})) {
  registerRequestFunction(name, fn as (vm: never) => unknown);
}

/**
 * "test-busy": keeps the EMT busy (the CPU may not run guest code yet): a timer whose callback
 * spins for Config/BusyUs µs and re-arms itself Config/PeriodUs µs later.
 */
class BusyDevice implements Device {
  readonly busyUs: number;
  constructor(ins: DevIns, busyUs: number, periodUs: number) {
    this.busyUs = busyUs;
    const t = ins.timer("busy", () => {
      const end = performance.now() + this.busyUs / 1000;
      while (performance.now() < end) {
        /* busy */
      }
      t.setRelative(periodUs * 1000);
    });
    t.setRelative(0);
  }
  reset(): void {}
  saveState(w: SsmUnitWriter): void {
    w.putU32(this.busyUs);
  }
  loadState(r: SsmUnitReader): void {
    r.getU32();
  }
}
registerDevice({
  name: "test-busy",
  description: "Test: keeps the EMT busy",
  ssmVersion: 1,
  ssmMinVersion: 1,
  configKeys: ["BusyUs", "PeriodUs"],
  maxInstances: 1,
  construct: (ins, cfg) => new BusyDevice(ins, cfg.queryU32Def("BusyUs", 1000), cfg.queryU32Def("PeriodUs", 0)),
});

/** "test-fault": a device whose timer throws Config/AfterMs ms after power on (an emulator fault). */
class FaultDevice implements Device {
  constructor(ins: DevIns, afterMs: number) {
    const t = ins.timer("fault", () => {
      throw new Error("test-fault device failed on purpose");
    });
    t.setRelative(afterMs * 1e6);
  }
  reset(): void {}
  saveState(): void {}
  loadState(): void {}
}
registerDevice({
  name: "test-fault",
  description: "Test: throws from a timer",
  ssmVersion: 1,
  ssmMinVersion: 1,
  configKeys: ["AfterMs"],
  maxInstances: 1,
  construct: (ins, cfg) => new FaultDevice(ins, cfg.queryU32Def("AfterMs", 10)),
});
