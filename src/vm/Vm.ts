/**
 * The idiomatic VM API (API side): `VM` with Promise methods that throw VBoxError.
 *
 * A VM is a worker thread (the EMT, see EmtVM.ts) plus, on the API side, one or more handles:
 * the one VM.create() returns and any made by VM.attach() in another thread from a
 * VM.share() descriptor. A handle talks to the EMT over its own MessagePort (requests out,
 * completions and events in, FIFO) with wake-ups through Atomics on shared memory; the VM's
 * state, forced-action flags and exit status sit in a shared state block any thread can read.
 * Events (state changes, errors, resets, console output) reach every handle in order; each
 * handle calls its own callbacks.
 */
import { MessageChannel, Worker, receiveMessageOnPort, type MessagePort } from "node:worker_threads";
import { CfgmNode } from "../cfgm/CfgmNode.ts";
import { pcDevices } from "../devices/index.ts";
import { checkReqFunction, moduleUrl } from "../req/registry.ts";
import {
  CLIENT_BYTES,
  CTL_BYTES,
  Cl,
  Ctl,
  FF_NOTIFY,
  FF_REQUEST,
  type EmtInit,
  type EmtOp,
  type FromEmt,
  type ReqFunction,
  type ToEmt,
} from "../req/shared.ts";
import type { StamSnapshotEntry } from "../stam/Stam.ts";
import { applyDefaultMachine, configFromJson, validateRootConfig, DEFAULT_RAM_SIZE } from "./config.ts";
import { RT_FAILURE, Status, VBoxError, statusName } from "./err.ts";
import { formatMessage } from "./format.ts";
import {
  RT_INDEFINITE_WAIT,
  VMREQFLAGS,
  VMREQSTATE,
  VMREQTYPE,
  VMSTATE,
  vmStateName,
  type SrcPos,
} from "./types.ts";

export type { ReqFunction } from "../req/shared.ts";

/** FNVMATERROR: `message` is `fmt` formatted with `args`. `vm` is null when creation failed. */
export type ErrorCallback = (
  vm: VM | null,
  user: unknown,
  rc: number,
  pos: SrcPos,
  fmt: string,
  args: unknown[],
  message: string,
) => void;
/** FNVMATSTATE. */
export type StateCallback = (vm: VM, state: VMSTATE, oldState: VMSTATE, user: unknown) => void;
/** FNVMATRESETEXT: called on the API side during a reset. */
export type ResetExternalCallback = (user: unknown) => void;
/** FNVMATDTOR. */
export type DtorCallback = (vm: VM, user: unknown) => void;
/** FNCFGMCONSTRUCTOR: fills the configuration tree; a failure status (or a throw) fails the creation. */
export type CfgmConstructor = (vm: VM, root: CfgmNode, user: unknown) => number | void;
/** FNVMPROGRESS: a failure status cancels the operation, which then fails with that status. */
export type ProgressCallback = (vm: VM, percent: number, user: unknown) => number;

/** Options of VM.create(). */
export interface VMCreateOptions {
  /** A JSON config file path or an object, mapped onto the CFGM tree. Without "Devices", the default PC's devices. */
  config?: string | object;
  /** Called with the root node after the config and defaults are in (VirtualBox's pfnCFGMConstructor). */
  configure?: CfgmConstructor | null;
  /** The user argument of `configure`. */
  configureUser?: unknown;
  /** An error callback registered before anything can fail (VMR3Create's pfnVMAtError). */
  onError?: ErrorCallback | null;
  /** The user argument of `onError`. */
  onErrorUser?: unknown;
  /** Modules the EMT imports before building the machine (device models, request functions). */
  modules?: string[];
}

/** A handle of a VM that another thread can attach to (VM.attach). Pass `transfer` as the transfer list. */
export interface VMShareDescriptor {
  port: MessagePort;
  ctl: SharedArrayBuffer;
  ram: SharedArrayBuffer;
  client: SharedArrayBuffer;
  ramSize: number;
  /** The objects to list in postMessage's transfer list. */
  transfer: MessagePort[];
}

/** One console (a char backend of the EMT) as the API side sees it. */
export interface VMConsole {
  /** Receives guest output (batched); returns a function that removes the listener. */
  onData(cb: (bytes: Uint8Array) => void): () => void;
  /** Sends bytes to the guest device. */
  write(bytes: Uint8Array | string): void;
}

interface Pending {
  id: number;
  done: boolean;
  rc: number;
  value: unknown;
  msg: string | undefined;
  waiters: Set<() => void>;
  req: VMReq | null;
}

/**
 * A request packet (VMREQ) as the API side sees it, with the header's field names. `value` is
 * what the function returned (structured clone), an addition of boxvm.
 */
export class VMReq {
  /** Not used (the EMT's queues are MessagePorts); always null. */
  readonly pNext: null = null;
  /** The VM the packet belongs to. */
  readonly pVM: VM;
  /** Event semaphore: not used in boxvm (waits use Atomics); always null. */
  readonly EventSem: null = null;
  /** Set while nobody waits on the packet. */
  fEventSemClear = true;
  /** VMREQFLAGS. */
  fFlags: number = VMREQFLAGS.VBOX_STATUS;
  /** VMREQTYPE. */
  enmType: VMREQTYPE;
  /** The function's status once COMPLETED; VERR_VM_REQUEST_STATUS_STILL_PENDING before. */
  iStatus: number = Status.VERR_VM_REQUEST_STATUS_STILL_PENDING;
  /** The request data (VMREQTYPE_INTERNAL). */
  readonly u: { Internal: { pfn: ReqFunction | null; cArgs: number; aArgs: unknown[] } } = {
    Internal: { pfn: null, cArgs: 0, aArgs: [] },
  };
  /** What the function returned. */
  value: unknown = undefined;
  /** The error text when the function failed with an exception. */
  message: string | undefined;
  /** @internal request id on the handle's port (0 until queued). */
  id = 0;
  /** @internal */
  stateRaw: VMREQSTATE = VMREQSTATE.ALLOCATED;
  /** @internal the handle's client block, to show PROCESSING. */
  clientBlock: Int32Array | null = null;

  constructor(vm: VM, type: VMREQTYPE) {
    this.pVM = vm;
    this.enmType = type;
  }

  /** VMREQSTATE: ALLOCATED, QUEUED, PROCESSING (read live from the EMT), COMPLETED or FREE. */
  get enmState(): VMREQSTATE {
    if (this.stateRaw === VMREQSTATE.QUEUED && this.clientBlock && Atomics.load(this.clientBlock, Cl.PROCESSING) === this.id) {
      return VMREQSTATE.PROCESSING;
    }
    return this.stateRaw;
  }
}

const liveVMs: VM[] = [];
const dtorCallbacks: { fn: DtorCallback; user: unknown }[] = [];
let emtInlineHook: ((vm: unknown) => boolean) | null = null;

/** The most arguments a request may have (aArgs[64]). */
export const MAX_REQ_ARGS = 64;

/** The VM handle of the idiomatic API. */
export class VM {
  readonly #ctl: Int32Array;
  readonly #cl: Int32Array;
  readonly #port: MessagePort;
  #worker: Worker | null;
  #ram: SharedArrayBuffer;
  readonly #clientSab: SharedArrayBuffer;
  readonly #ctlSab: SharedArrayBuffer;
  #ramSize: number;
  #nextId = 1;
  readonly #pending = new Map<number, Pending>();
  #pumping = false;
  #dead = false;
  #inStateCallback = 0;
  /** State as the callbacks of this handle have seen it. */
  #seenState: VMSTATE = VMSTATE.CREATING;
  readonly #stateCbs: { fn: StateCallback; user: unknown }[] = [];
  readonly #errorCbs: { fn: ErrorCallback; user: unknown }[] = [];
  readonly #resetCbs: { fn: ResetExternalCallback; user: unknown; desc: string }[] = [];
  readonly #consoles = new Map<string, Set<(b: Uint8Array) => void>>();
  #readyResolve: ((m: { rc: number; msg?: string }) => void) | null = null;
  /**
   * The exit status the guest powered off with (null until then). Read from the shared state block,
   * which the EMT writes before it changes the state, so it is set as soon as `state` reads OFF.
   */
  get exitStatus(): number | null {
    const v = Atomics.load(this.#ctl, Ctl.EXIT);
    return v === -1 ? null : v;
  }

  private constructor(
    ctl: SharedArrayBuffer,
    ram: SharedArrayBuffer,
    ramSize: number,
    client: SharedArrayBuffer,
    port: MessagePort,
    worker: Worker | null,
  ) {
    this.#ctlSab = ctl;
    this.#ctl = new Int32Array(ctl);
    this.#ram = ram;
    this.#ramSize = ramSize;
    this.#clientSab = client;
    this.#cl = new Int32Array(client);
    this.#port = port;
    this.#worker = worker;
    port.on("message", (m: FromEmt) => this.#dispatch(m));
    port.unref();
  }

  // ------------------------------------------------------------------ creation

  /**
   * Creates a VM: builds the configuration (JSON config and/or `configure`, else the default PC),
   * starts the EMT, which builds the machine. Resolves in state CREATED; on failure rejects with a
   * VBoxError naming the problem (and calls `onError`), leaving no thread behind.
   */
  static async create(opts: VMCreateOptions = {}): Promise<VM> {
    const report = (e: unknown): VBoxError => {
      const err = e instanceof VBoxError ? e : new VBoxError(Status.VERR_INTERNAL_ERROR, e instanceof Error ? e.message : String(e));
      opts.onError?.(null, opts.onErrorUser, err.rc, { file: "src/vm/Vm.ts", line: 0, func: "VM.create" }, "%s", [err.message], err.message);
      return err;
    };
    let root: CfgmNode;
    try {
      root = new CfgmNode();
      if (opts.config !== undefined) configFromJson(opts.config, root);
      applyDefaultMachine(root, pcDevices);
    } catch (e) {
      throw report(e);
    }
    const ctl = new SharedArrayBuffer(CTL_BYTES);
    new Int32Array(ctl)[Ctl.EXIT] = -1;
    const client = new SharedArrayBuffer(CLIENT_BYTES);
    const { port1, port2 } = new MessageChannel();
    // The handle exists (state CREATING) before the configuration is final: `configure` gets it.
    const real = new VM(ctl, new SharedArrayBuffer(0), 0, client, port1, null);
    if (opts.onError) real.#errorCbs.push({ fn: opts.onError, user: opts.onErrorUser });
    let worker: Worker;
    try {
      if (opts.configure) {
        const rc = opts.configure(real, root, opts.configureUser);
        if (typeof rc === "number" && RT_FAILURE(rc)) {
          throw new VBoxError(rc, `Configuration constructor failed: ${statusName(rc)}`);
        }
      }
      validateRootConfig(root);
      const ram = new SharedArrayBuffer(root.queryIntegerDef("RamSize", DEFAULT_RAM_SIZE));
      real.#ram = ram;
      real.#ramSize = ram.byteLength;
      const init: EmtInit = {
        cfg: root.toPlain(),
        ram,
        ctl,
        client,
        port: port2,
        modules: (opts.modules ?? []).map(moduleUrl),
      };
      worker = new Worker(new URL("./emt-worker.mjs", import.meta.url), { workerData: init, transferList: [port2] });
      real.#worker = worker;
    } catch (e) {
      real.#dead = true;
      port1.close();
      port2.close();
      const err = toVBoxError(e);
      opts.onError?.(null, opts.onErrorUser, err.rc, { file: "src/vm/Vm.ts", line: 0, func: "VM.create" }, "%s", [err.message], err.message);
      throw err;
    }
    port1.ref();
    const ready = await new Promise<{ rc: number; msg?: string }>((resolve) => {
      real.#readyResolve = resolve;
      worker.once("error", (e) => resolve({ rc: Status.VERR_INTERNAL_ERROR, msg: `EMT failed to start: ${e.message}` }));
      worker.once("exit", (code) => resolve({ rc: Status.VERR_INTERNAL_ERROR, msg: `EMT exited during creation (code ${String(code)})` }));
    });
    real.#readyResolve = null;
    if (RT_FAILURE(ready.rc)) {
      real.#dead = true;
      port1.close();
      await worker.terminate();
      const err = new VBoxError(ready.rc, ready.msg ?? statusName(ready.rc));
      opts.onError?.(null, opts.onErrorUser, err.rc, { file: "src/vm/Vm.ts", line: 0, func: "VM.create" }, "%s", [err.message], err.message);
      throw err;
    }
    worker.on("error", (e) => real.#emtDied(e));
    worker.on("exit", () => real.#emtDied(null));
    port1.unref();
    liveVMs.push(real);
    return real;
  }

  /** A descriptor another thread can attach to; transfer `desc.transfer` with it. */
  share(): VMShareDescriptor {
    this.#checkAlive();
    const { port1, port2 } = new MessageChannel();
    const client = new SharedArrayBuffer(CLIENT_BYTES);
    const msg: ToEmt = { t: "attach", port: port1, client };
    this.#port.postMessage(msg, [port1]);
    this.#kick();
    return { port: port2, ctl: this.#ctlSab, ram: this.#ram, client, ramSize: this.ramSize, transfer: [port2] };
  }

  /** A handle on a VM shared from another thread. Each descriptor may be attached once. */
  static attach(desc: VMShareDescriptor): VM {
    const vm = new VM(desc.ctl, desc.ram, desc.ramSize, desc.client, desc.port, null);
    vm.#seenState = Atomics.load(vm.#ctl, Ctl.STATE) as VMSTATE;
    liveVMs.push(vm);
    return vm;
  }

  /** Lets go of an attached handle (the VM lives on). */
  detach(): void {
    if (this.#dead) return;
    if (this.#worker) throw new VBoxError(Status.VERR_INVALID_PARAMETER, "The creating handle cannot detach: destroy the VM instead");
    this.#send({ t: "bye" });
    this.#kill();
  }

  // ------------------------------------------------------------------ state

  /** The current state (read from shared memory: what the EMT last set). */
  get state(): VMSTATE {
    if (this.#dead && this.#worker === null && this.#seenState !== VMSTATE.TERMINATED) return this.#seenState;
    return Atomics.load(this.#ctl, Ctl.STATE) as VMSTATE;
  }

  /** The state's name. */
  get stateName(): string {
    return vmStateName(this.state);
  }

  /** Bytes of guest RAM. */
  get ramSize(): number {
    return this.#ramSize;
  }

  /** False once destroyed (or detached). */
  get alive(): boolean {
    return !this.#dead;
  }

  /** The guest RAM (shared with the EMT): read it only while the VM is not running. */
  get ram(): Uint8Array {
    return new Uint8Array(this.#ram, 0, this.ramSize);
  }

  /** VMR3PowerOn: CREATED → RUNNING. */
  powerOn(): Promise<void> {
    return this.#lifecycle("powerOn");
  }
  /** VMR3Suspend: RUNNING → SUSPENDED. */
  suspend(): Promise<void> {
    return this.#lifecycle("suspend");
  }
  /** VMR3Resume: SUSPENDED → RUNNING. */
  resume(): Promise<void> {
    return this.#lifecycle("resume");
  }
  /** VMR3Reset: RUNNING or SUSPENDED → RESETTING → the same state. */
  reset(): Promise<void> {
    return this.#lifecycle("reset");
  }
  /** VMR3PowerOff: RUNNING, SUSPENDED, LOAD_FAILURE or GURU_MEDITATION → OFF. */
  powerOff(): Promise<void> {
    return this.#lifecycle("powerOff");
  }

  /** VMR3Destroy: OFF or CREATED → DESTROYING → TERMINATED; the handle is dead afterwards. */
  async destroy(): Promise<void> {
    this.#checkAlive();
    if (!this.#worker) throw new VBoxError(Status.VERR_INVALID_PARAMETER, "Only the creating handle can destroy the VM");
    if (emtInlineHook?.(this)) throw new VBoxError(Status.VERR_VM_THREAD_IS_EMT, "VMR3Destroy cannot be called on the EMT");
    await this.#op("destroy");
    this.#kill();
    await this.#worker.terminate();
  }

  /**
   * VMR3Save: SUSPENDED → SAVING → SUSPENDED. The file is written atomically (a failed save leaves
   * an earlier file intact). `progress` returning a failure status cancels.
   */
  async save(file: string, progress?: ProgressCallback | null, user?: unknown): Promise<void> {
    this.#checkStateChange();
    const ssm = await import("../ssm/SsmFile.ts");
    const begin = (await this.#op("saveBegin")) as {
      units: { name: string; instance: number; version: number; data: Uint8Array }[];
      config: string;
    };
    try {
      await ssm.saveStateToFile(
        file,
        { units: begin.units, ram: this.ram, config: begin.config },
        progress ? (p: number) => progress(this, p, user) : undefined,
      );
    } catch (e) {
      await this.#op("saveEnd");
      const err = toVBoxError(e);
      this.#reportLocal(err.rc, "VMR3Save", "Saving to %s failed: %s", file, err.message);
      throw err;
    }
    await this.#op("saveEnd");
  }

  /**
   * VMR3Load: CREATED or SUSPENDED → LOADING → SUSPENDED. A file that does not verify, or units
   * the devices reject, leave the VM in LOAD_FAILURE with the error reported.
   */
  async load(file: string, progress?: ProgressCallback | null, user?: unknown): Promise<void> {
    this.#checkStateChange();
    const ssm = await import("../ssm/SsmFile.ts");
    const info = (await this.#op("loadBegin")) as {
      ramSize: number;
      config: string;
      units: { name: string; instance: number; minVersion: number; maxVersion: number }[];
    };
    let loaded: Awaited<ReturnType<typeof ssm.loadStateFromFile>>;
    try {
      loaded = await ssm.loadStateFromFile(
        file,
        {
          ramSize: info.ramSize,
          config: info.config,
          unit: (name: string, instance: number) => {
            const u = info.units.find((x) => x.name === name && x.instance === instance);
            return u ? { minVersion: u.minVersion, maxVersion: u.maxVersion } : undefined;
          },
        },
        progress ? (p: number) => progress(this, p, user) : undefined,
      );
      loaded.restoreRam(this.ram);
    } catch (e) {
      await this.#op("loadFail");
      const err = toVBoxError(e);
      this.#reportLocal(err.rc, "VMR3Load", "Loading %s failed: %s", file, err.message);
      throw err;
    }
    await this.#op("loadApply", loaded.units);
  }

  /** The statistics whose names match a STAM pattern ("/VM/*", "/Devices|/TM"). */
  async stats(pattern = "*"): Promise<StamSnapshotEntry[]> {
    return (await this.#op("stats", pattern)) as StamSnapshotEntry[];
  }

  /** Asks the EMT to run VMR3Relocate with the delta (a request; VMR3Relocate itself is EMT-only). */
  async relocate(offDelta: number): Promise<void> {
    await this.#op("relocate", offDelta);
  }

  // ------------------------------------------------------------------ requests

  /**
   * Calls `fn(vm, ...args)` on the EMT and resolves with what it returned. A function that throws
   * VBoxError rejects with it; any other exception is an emulator fault (GURU_MEDITATION when
   * running) and rejects with VERR_INTERNAL_ERROR.
   */
  async call(fn: ReqFunction, ...args: unknown[]): Promise<unknown> {
    const req = this.allocRequest(VMREQTYPE.INTERNAL);
    req.u.Internal.pfn = fn;
    req.u.Internal.cArgs = args.length;
    req.u.Internal.aArgs = args;
    const rc = await this.queueRequest(req, RT_INDEFINITE_WAIT);
    if (RT_FAILURE(rc)) throw new VBoxError(rc, `Request failed: ${statusName(rc)}`);
    if (req.message !== undefined) throw new VBoxError(req.iStatus, req.message);
    this.freeRequest(req);
    return req.value;
  }

  /** Queues `fn(vm, ...args)` without waiting (VMREQFLAGS_NO_WAIT): nothing comes back. */
  post(fn: ReqFunction, ...args: unknown[]): void {
    const req = this.allocRequest(VMREQTYPE.INTERNAL);
    req.fFlags = VMREQFLAGS.NO_WAIT;
    req.u.Internal.pfn = fn;
    req.u.Internal.cArgs = args.length;
    req.u.Internal.aArgs = args;
    const bad = this.#validate(req);
    if (bad) throw bad;
    this.#submit(req);
  }

  /** VMR3ReqAlloc: a new packet in state ALLOCATED. */
  allocRequest(type: VMREQTYPE): VMReq {
    this.#checkAlive();
    if (type !== VMREQTYPE.INTERNAL) {
      throw new VBoxError(Status.VERR_VM_REQUEST_INVALID_TYPE, `Invalid request type: ${String(type)} (only VMREQTYPE_INTERNAL)`);
    }
    return new VMReq(this, type);
  }

  #validate(req: VMReq): VBoxError | null {
    if (req.pVM !== this) return new VBoxError(Status.VERR_INVALID_PARAMETER, "The request belongs to another VM handle");
    if (req.stateRaw !== VMREQSTATE.ALLOCATED) {
      return new VBoxError(Status.VERR_VM_REQUEST_STATE, `Request is ${reqStateName(req.enmState)}, not ALLOCATED`);
    }
    if (req.enmType !== VMREQTYPE.INTERNAL) return new VBoxError(Status.VERR_VM_REQUEST_INVALID_TYPE, `Invalid request type: ${String(req.enmType)}`);
    const I = req.u.Internal;
    const shape = checkReqFunction(I.pfn);
    if (shape) return new VBoxError(Status.VERR_INVALID_PARAMETER, shape);
    if (!Number.isInteger(I.cArgs) || I.cArgs < 0 || I.cArgs > MAX_REQ_ARGS) {
      return new VBoxError(Status.VERR_INVALID_PARAMETER, `cArgs must be 0..${String(MAX_REQ_ARGS)}: ${String(I.cArgs)}`);
    }
    if (I.aArgs.length < I.cArgs) {
      return new VBoxError(Status.VERR_INVALID_PARAMETER, `cArgs is ${String(I.cArgs)} but only ${String(I.aArgs.length)} arguments were given`);
    }
    if ((req.fFlags & ~(VMREQFLAGS.RETURN_MASK | VMREQFLAGS.NO_WAIT)) !== 0) {
      return new VBoxError(Status.VERR_INVALID_FLAGS, `Unknown request flags: 0x${req.fFlags.toString(16)}`);
    }
    return null;
  }

  #submit(req: VMReq): Pending | null {
    const I = req.u.Internal;
    const id = this.#nextId++;
    const args = I.aArgs.slice(0, I.cArgs);
    const msg: ToEmt = { t: "r", id, fn: I.pfn!, args, flags: req.fFlags };
    const noWait = (req.fFlags & VMREQFLAGS.NO_WAIT) !== 0;
    let p: Pending | null = null;
    if (!noWait) {
      p = { id, done: false, rc: 0, value: undefined, msg: undefined, waiters: new Set(), req };
      this.#pending.set(id, p);
    }
    try {
      this.#port.postMessage(msg);
    } catch (e) {
      if (p) this.#pending.delete(id);
      throw new VBoxError(Status.VERR_INVALID_PARAMETER, `Request arguments cannot cross threads: ${(e as Error).message}`);
    }
    req.id = id;
    req.clientBlock = this.#cl;
    req.stateRaw = noWait ? VMREQSTATE.FREE : VMREQSTATE.QUEUED;
    this.#kick();
    if (p) this.#startPump();
    return p;
  }

  /**
   * VMR3ReqQueue: queues an ALLOCATED packet and waits up to `cMillies` (RT_INDEFINITE_WAIT: no
   * limit). Resolves VINF_SUCCESS when completed (the function's status is in `req.iStatus`),
   * VERR_TIMEOUT when the time passed first (the request stays queued).
   */
  async queueRequest(req: VMReq, cMillies: number): Promise<number> {
    this.#checkAlive();
    const bad = this.#validate(req);
    if (bad) throw bad;
    const p = this.#submit(req);
    if (!p) return Status.VINF_SUCCESS;
    return this.#waitPending(p, cMillies);
  }

  /** VMR3ReqWait: waits for a QUEUED/PROCESSING/COMPLETED packet; VERR_TIMEOUT leaves it waiting. */
  async waitRequest(req: VMReq, cMillies: number): Promise<number> {
    if (req.stateRaw === VMREQSTATE.COMPLETED) return Status.VINF_SUCCESS;
    if (req.stateRaw !== VMREQSTATE.QUEUED) {
      throw new VBoxError(Status.VERR_VM_REQUEST_STATE, `Cannot wait for a request in state ${reqStateName(req.enmState)}`);
    }
    const p = this.#pending.get(req.id);
    if (!p) throw new VBoxError(Status.VERR_VM_REQUEST_STATE, "Request is not pending on this handle");
    return this.#waitPending(p, cMillies);
  }

  /** VMR3ReqFree: frees an ALLOCATED or COMPLETED packet; VERR_VM_REQUEST_STATE otherwise. */
  freeRequest(req: VMReq): void {
    const s = req.enmState;
    if (s !== VMREQSTATE.ALLOCATED && s !== VMREQSTATE.COMPLETED) {
      throw new VBoxError(Status.VERR_VM_REQUEST_STATE, `Cannot free a request in state ${reqStateName(s)}`);
    }
    req.stateRaw = VMREQSTATE.FREE;
  }

  #waitPending(p: Pending, cMillies: number): Promise<number> {
    if (p.done) return Promise.resolve(Status.VINF_SUCCESS);
    if (cMillies !== 0 && VM.syncWaitMicros > 0) this.#syncWait(p, Math.min(VM.syncWaitMicros, cMillies * 1000));
    if (p.done) return Promise.resolve(Status.VINF_SUCCESS);
    if (cMillies === 0) {
      this.#drainPort();
      return Promise.resolve(p.done ? Status.VINF_SUCCESS : Status.VERR_TIMEOUT);
    }
    return new Promise<number>((resolve) => {
      let timer: NodeJS.Timeout | null = null;
      const w = (): void => {
        if (timer) clearTimeout(timer);
        p.waiters.delete(w);
        if (p.req) p.req.fEventSemClear = p.waiters.size === 0;
        resolve(Status.VINF_SUCCESS);
      };
      p.waiters.add(w);
      if (p.req) p.req.fEventSemClear = false;
      if (cMillies !== RT_INDEFINITE_WAIT && cMillies >= 0) {
        timer = setTimeout(() => {
          p.waiters.delete(w);
          if (p.req) p.req.fEventSemClear = p.waiters.size === 0;
          this.#drainPort();
          resolve(p.done ? Status.VINF_SUCCESS : Status.VERR_TIMEOUT);
        }, cMillies);
      }
    });
  }

  /**
   * The fast path: waits synchronously (Atomics.wait, the thread sleeps) up to `micros` for the
   * completion, then gives up and lets the asynchronous wait take over.
   */
  #syncWait(p: Pending, micros: number): void {
    const end = performance.now() + micros / 1000;
    for (;;) {
      const seq = Atomics.load(this.#cl, Cl.DONE);
      this.#drainPort();
      if (p.done) return;
      const left = end - performance.now();
      if (left <= 0) return;
      Atomics.wait(this.#cl, Cl.DONE, seq, left);
    }
  }

  /**
   * How long (µs) a request waits synchronously for its completion before the wait turns
   * asynchronous. The thread sleeps meanwhile (it blocks its event loop for at most this long);
   * 0 (the default) turns it off: on a loaded machine it did not beat Atomics.waitAsync.
   */
  static syncWaitMicros = 0;

  /** VMR3NotifyFF: wakes a sleeping EMT at once. */
  notify(): void {
    if (this.#dead) return;
    Atomics.or(this.#ctl, Ctl.FF, FF_NOTIFY);
    Atomics.add(this.#ctl, Ctl.WAKE, 1);
    Atomics.notify(this.#ctl, Ctl.WAKE);
  }

  #kick(): void {
    Atomics.or(this.#ctl, Ctl.FF, FF_REQUEST);
    Atomics.add(this.#ctl, Ctl.WAKE, 1);
    if (Atomics.load(this.#ctl, Ctl.SLEEPING) !== 0) Atomics.notify(this.#ctl, Ctl.WAKE);
  }

  #send(msg: ToEmt): void {
    this.#port.postMessage(msg);
    this.#kick();
  }

  /** Receives everything the EMT has sent so far (completions and events), in order. */
  #drainPort(): void {
    for (;;) {
      const r = receiveMessageOnPort(this.#port);
      if (!r) return;
      this.#dispatch(r.message as FromEmt);
    }
  }

  /** Waits for completions while requests are outstanding (Atomics.waitAsync on DONE). */
  #startPump(): void {
    if (this.#pumping) return;
    this.#pumping = true;
    // The creating handle's worker keeps the process alive; an attached handle's thread must be
    // kept alive by its port while it waits.
    const ref = this.#worker === null;
    if (ref) this.#port.ref();
    void (async () => {
      try {
        while (this.#pending.size > 0 && !this.#dead) {
          const seq = Atomics.load(this.#cl, Cl.DONE);
          this.#drainPort();
          if (this.#pending.size === 0) break;
          const w = waitAsync(this.#cl, Cl.DONE, seq, 1000);
          if (w.async) await w.value;
        }
      } finally {
        this.#pumping = false;
        if (ref) this.#port.unref();
        if (this.#pending.size > 0 && !this.#dead) this.#startPump();
      }
    })();
  }

  #dispatch(m: FromEmt): void {
    switch (m.t) {
      case "c": {
        const p = this.#pending.get(m.id);
        if (!p) return;
        this.#pending.delete(m.id);
        p.done = true;
        p.rc = m.rc;
        p.value = m.v;
        p.msg = m.msg;
        if (p.req) {
          p.req.iStatus = m.rc;
          p.req.value = m.v;
          p.req.message = m.msg;
          p.req.stateRaw = VMREQSTATE.COMPLETED;
        }
        for (const w of [...p.waiters]) w();
        return;
      }
      case "s": {
        const old = this.#seenState;
        this.#seenState = m.s as VMSTATE;
        if (m.s === VMSTATE.DESTROYING) {
          for (const d of [...dtorCallbacks]) this.#guard(() => d.fn(this, d.user));
        }
        this.#inStateCallback++;
        try {
          for (const cb of [...this.#stateCbs]) this.#guard(() => cb.fn(this, m.s as VMSTATE, old, cb.user));
        } finally {
          this.#inStateCallback--;
        }
        return;
      }
      case "e":
        for (const cb of [...this.#errorCbs]) this.#guard(() => cb.fn(this, cb.user, m.rc, m.pos, m.fmt, m.args, m.msg));
        return;
      case "x":
        for (const cb of [...this.#resetCbs]) this.#guard(() => cb.fn(cb.user));
        return;
      case "o": {
        const set = this.#consoles.get(m.name);
        if (set) for (const cb of [...set]) this.#guard(() => cb(m.bytes));
        return;
      }
      case "p":
        return; // exitStatus reads the shared block
      case "ready":
        this.#readyResolve?.(m.msg === undefined ? { rc: m.rc } : { rc: m.rc, msg: m.msg });
        return;
    }
  }

  /** Runs a user callback; an exception in it is printed, never propagated into the VM's machinery. */
  #guard(fn: () => void): void {
    try {
      fn();
    } catch (e) {
      console.error("boxvm: exception in a VM callback:", e);
    }
  }

  /**
   * The EMT thread ended without a destroy (an uncaught exception outside the loop, or the thread
   * exited): the error callbacks hear of it, the VM goes to TERMINATED (state callbacks run), and
   * the handle is dead; pending requests complete with VERR_VM_REQUEST_KILLED. The host lives on.
   */
  #emtDied(e: Error | null): void {
    if (this.#dead) return;
    try {
      this.#drainPort();
    } catch {
      /* closed */
    }
    if (this.#dead) return;
    const why = e ? `EMT died: ${e.message}` : "EMT thread exited unexpectedly";
    for (const cb of [...this.#errorCbs]) {
      this.#guard(() => cb.fn(this, cb.user, Status.VERR_INTERNAL_ERROR, { file: "src/vm/Vm.ts", line: 0, func: "EMT" }, "%s", [why], why));
    }
    Atomics.store(this.#ctl, Ctl.STATE, VMSTATE.TERMINATED);
    this.#dispatch({ t: "s", s: VMSTATE.TERMINATED, o: this.#seenState });
    this.#kill();
  }

  #kill(): void {
    this.#dead = true;
    for (const p of this.#pending.values()) {
      p.done = true;
      p.rc = Status.VERR_VM_REQUEST_KILLED;
      p.msg = "The VM went away before the request completed";
      if (p.req) {
        p.req.iStatus = Status.VERR_VM_REQUEST_KILLED;
        p.req.message = p.msg;
        p.req.stateRaw = VMREQSTATE.COMPLETED;
      }
      for (const w of [...p.waiters]) w();
    }
    this.#pending.clear();
    const i = liveVMs.indexOf(this);
    if (i >= 0) liveVMs.splice(i, 1);
    try {
      this.#drainPort();
    } catch {
      /* closed */
    }
    this.#port.close();
  }

  #checkAlive(): void {
    if (this.#dead) throw new VBoxError(Status.VERR_INVALID_HANDLE, "Invalid VM handle: the VM was destroyed or detached");
  }

  #checkStateChange(): void {
    this.#checkAlive();
    if (this.#inStateCallback > 0) {
      throw new VBoxError(Status.VERR_VM_INVALID_VM_STATE, "A state callback may not change the VM state (only VMR3Destroy is allowed)");
    }
  }

  async #lifecycle(op: EmtOp): Promise<void> {
    this.#checkStateChange();
    await this.#op(op);
  }

  /** Runs an internal operation on the EMT and waits for it; throws VBoxError on failure. */
  async #op(op: EmtOp, arg?: unknown): Promise<unknown> {
    this.#checkAlive();
    const id = this.#nextId++;
    const p: Pending = { id, done: false, rc: 0, value: undefined, msg: undefined, waiters: new Set(), req: null };
    this.#pending.set(id, p);
    this.#send(arg === undefined ? { t: "op", id, op } : { t: "op", id, op, arg });
    this.#startPump();
    await this.#waitPending(p, RT_INDEFINITE_WAIT);
    if (RT_FAILURE(p.rc)) throw new VBoxError(p.rc, p.msg ?? statusName(p.rc));
    return p.value;
  }

  // ------------------------------------------------------------------ callbacks

  /** VMR3AtStateRegister. */
  onState(fn: StateCallback, user?: unknown): void {
    this.#checkAlive();
    this.#stateCbs.push({ fn, user });
  }
  /** VMR3AtStateDeregister: removes the first registration matching fn and user; false when none. */
  offState(fn: StateCallback, user?: unknown): boolean {
    return removeFirst(this.#stateCbs, (e) => e.fn === fn && e.user === user);
  }
  /** VMR3AtErrorRegister. */
  onError(fn: ErrorCallback, user?: unknown): void {
    this.#checkAlive();
    this.#errorCbs.push({ fn, user });
  }
  /** VMR3AtErrorDeregister: removes the first registration matching fn and user; false when none. */
  offError(fn: ErrorCallback, user?: unknown): boolean {
    return removeFirst(this.#errorCbs, (e) => e.fn === fn && e.user === user);
  }
  /** VMR3AtResetRegisterExternal: called on the API side during every reset. */
  onReset(fn: ResetExternalCallback, user?: unknown, desc = ""): void {
    this.#checkAlive();
    this.#resetCbs.push({ fn, user, desc });
  }
  /** VMR3AtResetDeregisterExternal: removes every registration of fn; false when none. */
  offReset(fn: ResetExternalCallback): boolean {
    let found = false;
    while (removeFirst(this.#resetCbs, (e) => e.fn === fn)) found = true;
    return found;
  }

  /** VMSetError on the API side: formats and calls this handle's error callbacks; returns rc. */
  setError(rc: number, pos: SrcPos, fmt: string, ...args: unknown[]): number {
    const msg = formatMessage(fmt, args);
    for (const cb of [...this.#errorCbs]) this.#guard(() => cb.fn(this, cb.user, rc, pos, fmt, args, msg));
    return rc;
  }

  #reportLocal(rc: number, func: string, fmt: string, ...args: unknown[]): void {
    this.setError(rc, { file: "src/vm/Vm.ts", line: 0, func }, fmt, ...args);
  }

  /** A console (a char backend of the EMT, e.g. "serial0"). */
  console(name: string): VMConsole {
    return {
      onData: (cb) => {
        let set = this.#consoles.get(name);
        if (!set) {
          set = new Set();
          this.#consoles.set(name, set);
        }
        set.add(cb);
        this.#port.ref();
        return () => {
          set.delete(cb);
          if ([...this.#consoles.values()].every((s) => s.size === 0)) this.#port.unref();
        };
      },
      write: (bytes) => {
        this.#checkAlive();
        const b = typeof bytes === "string" ? new TextEncoder().encode(bytes) : new Uint8Array(bytes);
        this.#send({ t: "in", name, bytes: b });
      },
    };
  }

  // ------------------------------------------------------------------ process-wide

  /** The live VM handles of this thread, in creation order (VMR3EnumVMs). */
  static list(): readonly VM[] {
    return liveVMs;
  }

  /** VMR3AtDtorRegister: called (in this thread) when any VM with a handle here is destroyed. */
  static onDestroy(fn: DtorCallback, user?: unknown): void {
    dtorCallbacks.push({ fn, user });
  }

  /** VMR3AtDtorDeregister: removes every registration of fn; false when none. */
  static offDestroy(fn: DtorCallback): boolean {
    let found = false;
    while (removeFirst(dtorCallbacks, (e) => e.fn === fn)) found = true;
    return found;
  }

  /** @internal lets the EMT side tell whether a VM handle is being used on its own EMT. */
  static setEmtInlineHook(fn: (vm: unknown) => boolean): void {
    emtInlineHook = fn;
  }
}

/** Atomics.waitAsync (Node 20 has it; TypeScript's es2022 lib does not declare it). */
const waitAsync = (Atomics as unknown as {
  waitAsync(ta: Int32Array, index: number, value: number, timeout?: number): { async: boolean; value: Promise<string> | string };
}).waitAsync.bind(Atomics);

function removeFirst<T>(arr: T[], pred: (e: T) => boolean): boolean {
  const i = arr.findIndex(pred);
  if (i < 0) return false;
  arr.splice(i, 1);
  return true;
}

function reqStateName(s: number): string {
  return Object.keys(VMREQSTATE)[s] ?? String(s);
}

/** Any thrown value as a VBoxError. */
export function toVBoxError(e: unknown): VBoxError {
  if (e instanceof VBoxError) return e;
  return new VBoxError(Status.VERR_INTERNAL_ERROR, e instanceof Error ? e.message : String(e));
}
