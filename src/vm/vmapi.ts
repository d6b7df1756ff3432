/**
 * The faithful VM API (package export `boxvm/vmapi`): every function of VirtualBox's vmapi.h under
 * its own name, returning status codes instead of throwing, as /work/shared/API.md fixes it.
 * It is a thin layer over the idiomatic API (Vm.ts on the API side, EmtVM.ts on the EMT): each
 * function checks its arguments, calls the idiomatic method, and turns a VBoxError into its rc.
 *
 * `PVM` is either the API-side handle (`VM`) or, inside the EMT (request functions, devices), the
 * `EmtVM` a request function receives. Functions marked EMT in the header return
 * VERR_VM_THREAD_NOT_EMT when given an API-side handle.
 */
import type { CfgmNode } from "../cfgm/CfgmNode.ts";
import type { DevIns } from "../pdm/DevIns.ts";
import { lookupAsync, lookupSync, type RequestFn } from "../req/registry.ts";
import { EmtVM, type AtResetDevFn, type AtResetIntFn } from "./EmtVM.ts";
import { RT_FAILURE, RT_SUCCESS, Status, VBoxError, statusName } from "./err.ts";
import { formatMessage } from "./format.ts";
import {
  RT_INDEFINITE_WAIT,
  RT_SRC_POS,
  VMREQFLAGS,
  VMREQSTATE,
  VMREQTYPE,
  VMSTATE,
  vmStateName,
  type Out,
  type SrcPos,
} from "./types.ts";
import {
  MAX_REQ_ARGS,
  VM,
  VMReq,
  type CfgmConstructor,
  type DtorCallback,
  type ErrorCallback,
  type ProgressCallback,
  type ReqFunction,
  type ResetExternalCallback,
  type StateCallback,
} from "./Vm.ts";

export * from "./types.ts";
export { Status, RT_SUCCESS, RT_FAILURE, statusName, VBoxError } from "./err.ts";
export { VM, VMReq, EmtVM };
export type { ReqFunction, ErrorCallback, StateCallback, DtorCallback, ResetExternalCallback, ProgressCallback, CfgmConstructor };

/** Every status code as a named constant (VINF_SUCCESS, VERR_TIMEOUT, ...). */
export const {
  VINF_SUCCESS,
  VERR_GENERAL_FAILURE,
  VERR_INVALID_PARAMETER,
  VERR_INVALID_HANDLE,
  VERR_INVALID_POINTER,
  VERR_NOT_IMPLEMENTED,
  VERR_INVALID_FLAGS,
  VERR_NOT_SUPPORTED,
  VERR_INTERRUPTED,
  VERR_TIMEOUT,
  VERR_CANCELLED,
  VERR_NOT_FOUND,
  VERR_INTERNAL_ERROR,
  VERR_FILE_NOT_FOUND,
  VERR_EM_INTERNAL_ERROR,
  VERR_VM_ATRESET_NOT_FOUND,
  VERR_VM_REQUEST_INVALID_TYPE,
  VERR_VM_REQUEST_STATE,
  VERR_VM_REQUEST_INVALID_PACKAGE,
  VERR_VM_REQUEST_STATUS_STILL_PENDING,
  VERR_VM_REQUEST_STATUS_FREED,
  VERR_VM_THREAD_NOT_EMT,
  VERR_VM_INVALID_VM_STATE,
  VERR_VM_THREAD_IS_EMT,
  VERR_VM_REQUEST_KILLED,
  VERR_SSM_CANCELLED,
} = Status;

/** A VM handle as the header's PVM: the API-side VM or, on the EMT, the EmtVM. */
export type PVM = VM | EmtVM;
/** A request packet (PVMREQ). */
export type PVMREQ = VMReq;

/** The status of any thrown value (VBoxError → its rc, anything else → VERR_INTERNAL_ERROR). */
function rcOf(e: unknown): number {
  return e instanceof VBoxError ? e.rc : Status.VERR_INTERNAL_ERROR;
}

async function wrap(fn: () => Promise<unknown>): Promise<number> {
  try {
    await fn();
    return Status.VINF_SUCCESS;
  } catch (e) {
    return rcOf(e);
  }
}

function wrapSync(fn: () => void): number {
  try {
    fn();
    return Status.VINF_SUCCESS;
  } catch (e) {
    return rcOf(e);
  }
}

function isVM(vm: unknown): vm is VM {
  return vm instanceof VM;
}

function isEmt(vm: unknown): vm is EmtVM {
  return vm instanceof EmtVM;
}

// A VM handle used on its own EMT is not possible (the EMT has no API-side handle of itself), so
// the hook only recognises EmtVM objects passed where an API-side handle is expected.
VM.setEmtInlineHook((vm) => isEmt(vm));

// ------------------------------------------------------------------------ errors

/**
 * VMSetError: formats `fmt` with `args` and hands the error to the VM's error callbacks (on the
 * EMT: records it and delivers it to the API side, VMR3SetErrorWorker). Returns rc.
 */
export function VMSetError(vm: PVM, rc: number, pos: SrcPos, fmt: string, ...args: unknown[]): number {
  return VMSetErrorV(vm, rc, pos, fmt, args);
}

/** VMSetErrorV: VMSetError with the arguments as an array (va_list). Returns rc. */
export function VMSetErrorV(vm: PVM, rc: number, pos: SrcPos, fmt: string, args: readonly unknown[]): number {
  if (isEmt(vm)) return vm.setError(rc, pos, fmt, ...args);
  if (isVM(vm) && vm.alive) vm.setError(rc, pos, fmt, ...args);
  return rc;
}

/** VM_SET_ERROR: VMSetError with the caller's position and a plain message (no directives). Returns rc. */
export function VM_SET_ERROR(vm: PVM, rc: number, msg: string): number {
  return VMSetErrorV(vm, rc, RT_SRC_POS(1), "%s", [msg]);
}

/** VMR3SetErrorWorker (EMT): delivers the error recorded on the EMT to the API side's error callbacks. */
export function VMR3SetErrorWorker(vm: PVM): void {
  if (isEmt(vm)) vm.setErrorWorker();
}

/** VMR3AtErrorRegister. */
export function VMR3AtErrorRegister(vm: PVM, fn: ErrorCallback, user: unknown): number {
  if (!isVM(vm)) return isEmt(vm) ? Status.VERR_VM_THREAD_IS_EMT : Status.VERR_INVALID_HANDLE;
  if (typeof fn !== "function") return Status.VERR_INVALID_POINTER;
  return wrapSync(() => vm.onError(fn, user));
}

/** VMR3AtErrorDeregister: VERR_NOT_FOUND when fn/user was not registered. */
export function VMR3AtErrorDeregister(vm: PVM, fn: ErrorCallback, user: unknown): number {
  if (!isVM(vm)) return isEmt(vm) ? Status.VERR_VM_THREAD_IS_EMT : Status.VERR_INVALID_HANDLE;
  return vm.offError(fn, user) ? Status.VINF_SUCCESS : Status.VERR_NOT_FOUND;
}

// ------------------------------------------------------------------------ lifecycle

/** The constructor callback's type in the faithful layer (FNCFGMCONSTRUCTOR with the root node). */
export type PFNCFGMCONSTRUCTOR = CfgmConstructor;

/**
 * VMR3Create: builds the configuration (a null constructor builds the default machine), starts the
 * EMT and stores the handle in ppVM (null on failure, after pfnVMAtError was called).
 */
export async function VMR3Create(
  pfnVMAtError: ErrorCallback | null,
  pvUserVM: unknown,
  pfnCFGMConstructor: CfgmConstructor | null,
  pvUserCFGM: unknown,
  ppVM: Out<VM>,
): Promise<number> {
  if (!ppVM || typeof ppVM !== "object") return Status.VERR_INVALID_POINTER;
  ppVM.value = null;
  try {
    ppVM.value = await VM.create({
      onError: pfnVMAtError,
      onErrorUser: pvUserVM,
      configure: pfnCFGMConstructor,
      configureUser: pvUserCFGM,
    });
    return Status.VINF_SUCCESS;
  } catch (e) {
    return rcOf(e);
  }
}

function lifecycle(vm: PVM, call: (v: VM) => Promise<void>): Promise<number> {
  if (isEmt(vm)) return Promise.resolve(Status.VERR_VM_THREAD_IS_EMT);
  if (!isVM(vm)) return Promise.resolve(Status.VERR_INVALID_HANDLE);
  return wrap(() => call(vm));
}

/** VMR3PowerOn: CREATED → RUNNING. */
export function VMR3PowerOn(vm: PVM): Promise<number> {
  return lifecycle(vm, (v) => v.powerOn());
}
/** VMR3Suspend: RUNNING → SUSPENDED. */
export function VMR3Suspend(vm: PVM): Promise<number> {
  return lifecycle(vm, (v) => v.suspend());
}
/** VMR3Resume: SUSPENDED → RUNNING. */
export function VMR3Resume(vm: PVM): Promise<number> {
  return lifecycle(vm, (v) => v.resume());
}
/** VMR3Reset: RUNNING/SUSPENDED → RESETTING → the same state. */
export function VMR3Reset(vm: PVM): Promise<number> {
  return lifecycle(vm, (v) => v.reset());
}
/** VMR3PowerOff: RUNNING/SUSPENDED/LOAD_FAILURE/GURU_MEDITATION → OFF. */
export function VMR3PowerOff(vm: PVM): Promise<number> {
  return lifecycle(vm, (v) => v.powerOff());
}
/** VMR3Destroy: OFF/CREATED → TERMINATED; VERR_INVALID_HANDLE afterwards; not on the EMT. */
export function VMR3Destroy(vm: PVM): Promise<number> {
  return lifecycle(vm, (v) => v.destroy());
}

/** FNVMPROGRESS in the faithful layer. */
export type PFNVMPROGRESS = ProgressCallback;

/** VMR3Save: SUSPENDED → SAVING → SUSPENDED; a progress callback returning a failure cancels with it. */
export function VMR3Save(vm: PVM, filename: string, pfnProgress: ProgressCallback | null, pvUser: unknown): Promise<number> {
  if (typeof filename !== "string" || filename.length === 0) return Promise.resolve(Status.VERR_INVALID_PARAMETER);
  return lifecycle(vm, (v) => v.save(filename, pfnProgress, pvUser));
}

/** VMR3Load: CREATED/SUSPENDED → LOADING → SUSPENDED (LOAD_FAILURE on a bad file). */
export function VMR3Load(vm: PVM, filename: string, pfnProgress: ProgressCallback | null, pvUser: unknown): Promise<number> {
  if (typeof filename !== "string" || filename.length === 0) return Promise.resolve(Status.VERR_INVALID_PARAMETER);
  return lifecycle(vm, (v) => v.load(filename, pfnProgress, pvUser));
}

/** VMR3Relocate (EMT): calls every component's relocation handler with offDelta. */
export function VMR3Relocate(vm: PVM, offDelta: number): void {
  if (isEmt(vm)) vm.relocate(offDelta);
}

/** VMR3EnumVMs: the next VM handle of this thread after prev (null: the first), or null at the end. */
export function VMR3EnumVMs(prev: VM | null): VM | null {
  const list = VM.list();
  if (prev === null) return list[0] ?? null;
  const i = list.indexOf(prev);
  return i < 0 ? null : (list[i + 1] ?? null);
}

/** VMR3AtDtorRegister: a process-wide (this thread's) callback for every VM destroyed. */
export function VMR3AtDtorRegister(fn: DtorCallback, user?: unknown): number {
  if (typeof fn !== "function") return Status.VERR_INVALID_POINTER;
  VM.onDestroy(fn, user);
  return Status.VINF_SUCCESS;
}

/** VMR3AtDtorDeregister: VERR_NOT_FOUND when fn was not registered. */
export function VMR3AtDtorDeregister(fn: DtorCallback): number {
  return VM.offDestroy(fn) ? Status.VINF_SUCCESS : Status.VERR_NOT_FOUND;
}

// ------------------------------------------------------------------------ reset callbacks

/** VMR3AtResetRegister (EMT): a device's reset callback. */
export function VMR3AtResetRegister(vm: PVM, devIns: DevIns, fn: AtResetDevFn, user: unknown, desc?: string): number {
  if (!isEmt(vm)) return isVM(vm) ? Status.VERR_VM_THREAD_NOT_EMT : Status.VERR_INVALID_HANDLE;
  if (typeof fn !== "function" || !devIns) return Status.VERR_INVALID_PARAMETER;
  vm.atResetRegister(devIns, fn, user, desc ?? "");
  return Status.VINF_SUCCESS;
}

/** VMR3AtResetRegisterInternal (EMT): an internal component's reset callback. */
export function VMR3AtResetRegisterInternal(vm: PVM, fn: AtResetIntFn, user: unknown, desc?: string): number {
  if (!isEmt(vm)) return isVM(vm) ? Status.VERR_VM_THREAD_NOT_EMT : Status.VERR_INVALID_HANDLE;
  if (typeof fn !== "function") return Status.VERR_INVALID_PARAMETER;
  vm.atResetRegisterInternal(fn, user, desc ?? "");
  return Status.VINF_SUCCESS;
}

/** VMR3AtResetRegisterExternal: a reset callback run on the API side. */
export function VMR3AtResetRegisterExternal(vm: PVM, fn: ResetExternalCallback, user: unknown, desc?: string): number {
  if (!isVM(vm)) return isEmt(vm) ? Status.VERR_VM_THREAD_IS_EMT : Status.VERR_INVALID_HANDLE;
  if (typeof fn !== "function") return Status.VERR_INVALID_PARAMETER;
  return wrapSync(() => vm.onReset(fn, user, desc ?? ""));
}

/** VMR3AtResetDeregister (EMT): VERR_VM_ATRESET_NOT_FOUND when nothing matched. */
export function VMR3AtResetDeregister(vm: PVM, devIns: DevIns, fn: AtResetDevFn): number {
  if (!isEmt(vm)) return isVM(vm) ? Status.VERR_VM_THREAD_NOT_EMT : Status.VERR_INVALID_HANDLE;
  return vm.atResetDeregister(devIns, fn) ? Status.VINF_SUCCESS : Status.VERR_VM_ATRESET_NOT_FOUND;
}

/** VMR3AtResetDeregisterInternal (EMT): VERR_VM_ATRESET_NOT_FOUND when nothing matched. */
export function VMR3AtResetDeregisterInternal(vm: PVM, fn: AtResetIntFn): number {
  if (!isEmt(vm)) return isVM(vm) ? Status.VERR_VM_THREAD_NOT_EMT : Status.VERR_INVALID_HANDLE;
  return vm.atResetDeregisterInternal(fn) ? Status.VINF_SUCCESS : Status.VERR_VM_ATRESET_NOT_FOUND;
}

/** VMR3AtResetDeregisterExternal: VERR_VM_ATRESET_NOT_FOUND when nothing matched. */
export function VMR3AtResetDeregisterExternal(vm: PVM, fn: ResetExternalCallback): number {
  if (!isVM(vm)) return isEmt(vm) ? Status.VERR_VM_THREAD_IS_EMT : Status.VERR_INVALID_HANDLE;
  return vm.offReset(fn) ? Status.VINF_SUCCESS : Status.VERR_VM_ATRESET_NOT_FOUND;
}

// ------------------------------------------------------------------------ state

/** VMR3AtStateRegister. */
export function VMR3AtStateRegister(vm: PVM, fn: StateCallback, user: unknown): number {
  if (!isVM(vm)) return isEmt(vm) ? Status.VERR_VM_THREAD_IS_EMT : Status.VERR_INVALID_HANDLE;
  if (typeof fn !== "function") return Status.VERR_INVALID_POINTER;
  return wrapSync(() => vm.onState(fn, user));
}

/** VMR3AtStateDeregister: matches fn and user; VERR_NOT_FOUND when none. */
export function VMR3AtStateDeregister(vm: PVM, fn: StateCallback, user: unknown): number {
  if (!isVM(vm)) return isEmt(vm) ? Status.VERR_VM_THREAD_IS_EMT : Status.VERR_INVALID_HANDLE;
  return vm.offState(fn, user) ? Status.VINF_SUCCESS : Status.VERR_NOT_FOUND;
}

/** VMR3GetState: the current state (synchronous, from shared memory). TERMINATED for a dead handle. */
export function VMR3GetState(vm: PVM): VMSTATE {
  if (isEmt(vm)) return vm.state as VMSTATE;
  if (!isVM(vm)) return VMSTATE.TERMINATED;
  return vm.alive ? vm.state : VMSTATE.TERMINATED;
}

/** VMR3GetStateName: "CREATED" ... "TERMINATED". */
export function VMR3GetStateName(state: VMSTATE | number): string {
  return vmStateName(state);
}

// ------------------------------------------------------------------------ requests

function checkOut(ppReq: Out<VMReq> | null | undefined, flags: number): number {
  if ((flags & VMREQFLAGS.NO_WAIT) === 0 && (!ppReq || typeof ppReq !== "object")) return Status.VERR_INVALID_POINTER;
  if (ppReq) ppReq.value = null;
  return Status.VINF_SUCCESS;
}

/** The EmtVM of packets allocated on the EMT (their pVM is null: no API-side handle exists there). */
const emtOwner = new WeakMap<VMReq, EmtVM>();

/** Runs a request at once on the EMT (the caller is the EMT): the header's synchronous case. */
async function callInline(vm: EmtVM, ppReq: Out<VMReq> | null | undefined, flags: number, pfn: ReqFunction, args: unknown[], packet?: VMReq): Promise<number> {
  const req = packet ?? new VMReq(null as unknown as VM, VMREQTYPE.INTERNAL);
  req.fFlags = flags;
  req.u.Internal.pfn = pfn;
  req.u.Internal.cArgs = args.length;
  req.u.Internal.aArgs = args;
  req.stateRaw = VMREQSTATE.PROCESSING;
  try {
    const f: RequestFn = lookupSync(pfn) ?? (await lookupAsync(pfn as { module: string; export: string }));
    let v = (f as (vm: EmtVM, ...a: unknown[]) => unknown)(vm, ...args);
    if (v !== null && typeof v === "object" && typeof (v as { then?: unknown }).then === "function") v = await v;
    req.value = v;
    req.iStatus = (flags & VMREQFLAGS.RETURN_MASK) === VMREQFLAGS.VOID ? Status.VINF_SUCCESS : typeof v === "number" ? v : Status.VINF_SUCCESS;
  } catch (e) {
    req.iStatus = rcOf(e);
    req.message = e instanceof Error ? e.message : String(e);
    if (!(e instanceof VBoxError)) vm.guruMeditation(e, "request function");
  }
  req.stateRaw = VMREQSTATE.COMPLETED;
  if ((flags & VMREQFLAGS.NO_WAIT) !== 0) req.stateRaw = VMREQSTATE.FREE;
  else if (ppReq) ppReq.value = req;
  return Status.VINF_SUCCESS;
}

/**
 * VMR3ReqCallV: queues `pfn(vm, ...args[0..cArgs))` on the EMT and waits up to cMillies. Returns
 * VINF_SUCCESS when it completed (the function's status is ppReq.value.iStatus), VERR_TIMEOUT when
 * the time passed first (the request stays queued; VMR3ReqWait can wait again). With
 * VMREQFLAGS_NO_WAIT, ppReq may be null and stays null and the EMT frees the packet.
 */
export async function VMR3ReqCallV(
  vm: PVM,
  ppReq: Out<VMReq> | null | undefined,
  cMillies: number,
  fFlags: number,
  pfn: ReqFunction,
  cArgs: number,
  args: readonly unknown[],
): Promise<number> {
  const rcOut = checkOut(ppReq, fFlags);
  if (RT_FAILURE(rcOut)) return rcOut;
  if (!Number.isInteger(cArgs) || cArgs < 0 || cArgs > MAX_REQ_ARGS || !Array.isArray(args) || args.length < cArgs) {
    return Status.VERR_INVALID_PARAMETER;
  }
  if ((fFlags & ~(VMREQFLAGS.RETURN_MASK | VMREQFLAGS.NO_WAIT)) !== 0) return Status.VERR_INVALID_FLAGS;
  const list = args.slice(0, cArgs);
  if (isEmt(vm)) return callInline(vm, ppReq, fFlags, pfn, list);
  if (!isVM(vm)) return Status.VERR_INVALID_HANDLE;
  let req: VMReq;
  try {
    req = vm.allocRequest(VMREQTYPE.INTERNAL);
  } catch (e) {
    return rcOf(e);
  }
  req.fFlags = fFlags;
  req.u.Internal.pfn = pfn;
  req.u.Internal.cArgs = cArgs;
  req.u.Internal.aArgs = list;
  if ((fFlags & VMREQFLAGS.NO_WAIT) === 0 && ppReq) ppReq.value = req;
  try {
    return await vm.queueRequest(req, cMillies);
  } catch (e) {
    if (ppReq && req.enmState === VMREQSTATE.ALLOCATED) ppReq.value = null;
    return rcOf(e);
  }
}

/** VMR3ReqCall: a request to a function returning a status code. */
export function VMR3ReqCall(vm: PVM, ppReq: Out<VMReq> | null, cMillies: number, pfn: ReqFunction, cArgs: number, ...args: unknown[]): Promise<number> {
  return VMR3ReqCallV(vm, ppReq, cMillies, VMREQFLAGS.VBOX_STATUS, pfn, cArgs, args);
}

/** VMR3ReqCallVoid: a request to a void function (iStatus is VINF_SUCCESS). */
export function VMR3ReqCallVoid(vm: PVM, ppReq: Out<VMReq> | null, cMillies: number, pfn: ReqFunction, cArgs: number, ...args: unknown[]): Promise<number> {
  return VMR3ReqCallV(vm, ppReq, cMillies, VMREQFLAGS.VOID, pfn, cArgs, args);
}

/** VMR3ReqCallEx: a request with VMREQFLAGS. */
export function VMR3ReqCallEx(
  vm: PVM,
  ppReq: Out<VMReq> | null,
  cMillies: number,
  fFlags: number,
  pfn: ReqFunction,
  cArgs: number,
  ...args: unknown[]
): Promise<number> {
  return VMR3ReqCallV(vm, ppReq, cMillies, fFlags, pfn, cArgs, args);
}

/** VMR3ReqAlloc: a packet in state ALLOCATED for the caller to fill (u.Internal) and queue. */
export function VMR3ReqAlloc(vm: PVM, ppReq: Out<VMReq>, enmType: VMREQTYPE | number): number {
  if (!ppReq || typeof ppReq !== "object") return Status.VERR_INVALID_POINTER;
  ppReq.value = null;
  if (enmType <= VMREQTYPE.INVALID || enmType >= VMREQTYPE.MAX) return Status.VERR_VM_REQUEST_INVALID_TYPE;
  if (isEmt(vm)) {
    const req = new VMReq(null as unknown as VM, enmType as VMREQTYPE);
    emtOwner.set(req, vm);
    ppReq.value = req;
    return Status.VINF_SUCCESS;
  }
  if (!isVM(vm)) return Status.VERR_INVALID_HANDLE;
  try {
    ppReq.value = vm.allocRequest(enmType as VMREQTYPE);
    return Status.VINF_SUCCESS;
  } catch (e) {
    return rcOf(e);
  }
}

/** VMR3ReqFree: frees an ALLOCATED or COMPLETED packet; VERR_VM_REQUEST_STATE when queued or processing. */
export function VMR3ReqFree(req: VMReq | null): number {
  if (!req) return Status.VINF_SUCCESS;
  if (!(req instanceof VMReq)) return Status.VERR_INVALID_POINTER;
  const s = req.enmState;
  if (s !== VMREQSTATE.ALLOCATED && s !== VMREQSTATE.COMPLETED) return Status.VERR_VM_REQUEST_STATE;
  req.stateRaw = VMREQSTATE.FREE;
  return Status.VINF_SUCCESS;
}

/** VMR3ReqQueue: queues an ALLOCATED packet and waits up to cMillies (VERR_TIMEOUT leaves it queued). */
export async function VMR3ReqQueue(req: VMReq, cMillies: number): Promise<number> {
  if (!(req instanceof VMReq)) return Status.VERR_INVALID_POINTER;
  const vm = req.pVM as PVM | null;
  if (vm === null) {
    // A packet allocated on the EMT: it runs at once, here.
    const emt = emtOwner.get(req);
    if (!emt) return Status.VERR_VM_REQUEST_INVALID_PACKAGE;
    if (req.stateRaw !== VMREQSTATE.ALLOCATED) return Status.VERR_VM_REQUEST_STATE;
    const I = req.u.Internal;
    if (I.pfn === null || !Number.isInteger(I.cArgs) || I.cArgs < 0 || I.cArgs > MAX_REQ_ARGS || I.aArgs.length < I.cArgs) {
      return Status.VERR_INVALID_PARAMETER;
    }
    return callInline(emt, null, req.fFlags, I.pfn, I.aArgs.slice(0, I.cArgs), req);
  }
  if (!isVM(vm)) return Status.VERR_INVALID_HANDLE;
  try {
    return await vm.queueRequest(req, cMillies);
  } catch (e) {
    return rcOf(e);
  }
}

/** VMR3ReqWait: waits up to cMillies more for a queued packet; VERR_TIMEOUT leaves it queued. */
export async function VMR3ReqWait(req: VMReq, cMillies: number): Promise<number> {
  if (!(req instanceof VMReq)) return Status.VERR_INVALID_POINTER;
  if (req.stateRaw === VMREQSTATE.COMPLETED) return Status.VINF_SUCCESS;
  const vm = req.pVM as PVM | null;
  if (!isVM(vm)) return Status.VERR_VM_REQUEST_STATE;
  try {
    return await vm.waitRequest(req, cMillies);
  } catch (e) {
    return rcOf(e);
  }
}

/** VMR3ReqProcess (EMT): runs the pending requests; VERR_VM_THREAD_NOT_EMT elsewhere. */
export function VMR3ReqProcess(vm: PVM): number {
  if (!isEmt(vm)) return isVM(vm) ? Status.VERR_VM_THREAD_NOT_EMT : Status.VERR_INVALID_HANDLE;
  try {
    const r = vm.processRequests();
    if (typeof r !== "number") void r.catch(() => undefined);
    return Status.VINF_SUCCESS;
  } catch (e) {
    return rcOf(e);
  }
}

/** VMR3NotifyFF: wakes a halted or waiting EMT at once. fNotifiedREM has no meaning here. */
export function VMR3NotifyFF(vm: PVM, fNotifiedREM: boolean): void {
  void fNotifiedREM;
  if (isVM(vm)) vm.notify();
}

/** VMR3WaitHalted (EMT): sleeps until an interrupt (unless ignored), a timer deadline or a forced action. */
export function VMR3WaitHalted(vm: PVM, fIgnoreInterrupts: boolean): number {
  if (!isEmt(vm)) return isVM(vm) ? Status.VERR_VM_THREAD_NOT_EMT : Status.VERR_INVALID_HANDLE;
  return vm.waitHalted(fIgnoreInterrupts);
}

/** VMR3Wait (EMT): the suspended-state sleep, until a forced action. */
export function VMR3Wait(vm: PVM): number {
  if (!isEmt(vm)) return isVM(vm) ? Status.VERR_VM_THREAD_NOT_EMT : Status.VERR_INVALID_HANDLE;
  return vm.wait();
}

// ------------------------------------------------------------------------ VM structure addresses

/**
 * VM_PHYS_ADDR: the VM structure has no physical address in boxvm (it is not mapped into the
 * guest: there is no raw-mode hypervisor); returns null for every offset. See docs/api.md.
 */
export function VM_PHYS_ADDR(vm: PVM, offInVM: number): number | null {
  void vm;
  void offInVM;
  return null;
}

/**
 * VM_GUEST_ADDR: boxvm has one context (ring 3, JavaScript): an offset into the VM's shared state
 * block is the same in every view of it, so the conversion is the identity on offsets.
 */
export function VM_GUEST_ADDR(vm: PVM, offInVM: number): number {
  void vm;
  return offInVM;
}

/** VM_HOST_ADDR: the identity on offsets into the shared state block (see VM_GUEST_ADDR). */
export function VM_HOST_ADDR(vm: PVM, offInVM: number): number {
  void vm;
  return offInVM;
}

export { RT_INDEFINITE_WAIT, RT_SRC_POS, formatMessage };
export type { CfgmNode };
