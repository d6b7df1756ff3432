/**
 * The EMT (emulation thread): one worker thread per VM. EmtVM builds the machine (RAM over the
 * VM's shared buffer, I/O ports, IRQ router, timers on the virtual clock, STAM, the devices of
 * the /Devices node, the CPU), runs the execution loop, and is the `vm` a request function or
 * a device-side caller of the faithful API receives on the EMT.
 *
 * The loop (VirtualBox's EM loop, reduced):
 *   1. forced actions: drain the request ports (VMR3ReqProcess), then a pending reset or power off
 *      asked for by a device or a triple fault;
 *   2. RUNNING: run due timers, then `cpu.run(budget)` with the budget cut to the next timer
 *      deadline and to about 1 ms; HLT → VMR3WaitHalted until an IRQ change, a deadline or a
 *      forced action;
 *   3. not RUNNING: VMR3Wait until a forced action.
 * Any exception escaping the machine moves a RUNNING VM to GURU_MEDITATION with an error report;
 * the thread (and the host process) lives on.
 */
import { receiveMessageOnPort, type MessagePort } from "node:worker_threads";
import { CfgmNode } from "../cfgm/CfgmNode.ts";
import { Cpu } from "../cpu/cpu.ts";
import { CpuExit, type CpuCore } from "../cpu/types.ts";
import { bootMachine } from "../loader/boot.ts";
import { PhysMem } from "../mem/PhysMem.ts";
import type { DevIns } from "../pdm/DevIns.ts";
import { IoPortSpace } from "../pdm/IoPortSpace.ts";
import { IrqRouter } from "../pdm/IrqLine.ts";
import { Pdm } from "../pdm/Pdm.ts";
import type { CharBackend, MachineServices } from "../pdm/types.ts";
import { lookupAsync, lookupSync, type RequestFn } from "../req/registry.ts";
import { Cl, Ctl, FF_NOTIFY, FF_REQUEST, type EmtOp, type ErrorReport, type FromEmt, type ToEmt } from "../req/shared.ts";
import { SsmUnitReader, SsmUnitWriter } from "../ssm/unit.ts";
import { Stam, type StamCounter } from "../stam/Stam.ts";
import { TimerScheduler } from "../tm/Timer.ts";
import { VirtualClock, hostNs } from "../tm/VirtualClock.ts";
import { RT_FAILURE, Status, VBoxError } from "./err.ts";
import { formatMessage } from "./format.ts";
import { VMREQFLAGS, VMSTATE, vmStateName, type SrcPos } from "./types.ts";
import { canonicalConfig, validateRootConfig } from "./config.ts";

/** FNVMATRESET: a device's reset callback. */
export type AtResetDevFn = (devIns: DevIns, user: unknown) => number | void;
/** FNVMATRESETINT: an internal component's reset callback. */
export type AtResetIntFn = (vm: EmtVM, user: unknown) => number | void;
/** A relocation handler (VMR3Relocate). */
export type RelocateFn = (vm: EmtVM, offDelta: number) => void;

interface AtResetEntry {
  kind: "dev" | "int";
  devIns: DevIns | null;
  fn: AtResetDevFn | AtResetIntFn;
  user: unknown;
  desc: string;
}

interface Client {
  port: MessagePort;
  cl: Int32Array;
}

type Msg = { client: Client; m: ToEmt };

/** The most instructions one cpu.run() call is given. */
const MAX_SLICE_INSTRUCTIONS = 1_000_000;
/**
 * The host time one slice aims at (ns): forced actions (requests) are looked at least this often,
 * so it bounds the request latency while the guest runs.
 */
const SLICE_NS = 200_000;
/**
 * Instruction-counted virtual time (src/tm/VirtualClock.ts): the ns one guest instruction counts
 * for starts here and is retuned after every slice, within these bounds, so that virtual time
 * follows the real-time reference. LAG_CATCHUP_NS is the host time over which a lag is made up
 * (by counting instructions a little longer); beyond MAX_LAG_NS a lag is dropped, not made up.
 */
const INITIAL_NS_PER_INSN = 20;
const MIN_NS_PER_INSN = 0.25;
const MAX_NS_PER_INSN = 500;
const LAG_CATCHUP_NS = 100_000_000;
const MAX_LAG_NS = 1_000_000_000;
/** The longest single sleep (ms); the loop re-checks everything after it. */
const MAX_SLEEP_MS = 50;
/**
 * How often (ns) the loop lets the thread's event loop turn (timers, async I/O of backends, an
 * uncaught exception of a callback): the loop itself never blocks on a promise otherwise.
 */
const YIELD_NS = 10_000_000;

/** Resolves in the check phase of the event loop. */
function immediate(): Promise<void> {
  return new Promise((r) => setImmediate(r));
}

/** A char backend on the EMT: guest bytes go to the API side in batches, API-side bytes to the device. */
class EmtCharBackend implements CharBackend {
  readonly name: string;
  readonly #vm: EmtVM;
  pending: Uint8Array[] = [];
  pendingBytes = 0;
  receiver: ((bytes: Uint8Array) => void) | null = null;
  constructor(vm: EmtVM, name: string) {
    this.#vm = vm;
    this.name = name;
  }
  write(bytes: Uint8Array): void {
    this.pending.push(new Uint8Array(bytes));
    this.pendingBytes += bytes.length;
    if (this.pendingBytes >= 4096) this.#vm.flushConsoles();
  }
  setReceiver(fn: ((bytes: Uint8Array) => void) | null): void {
    this.receiver = fn;
  }
}

/** The VM as code running on the EMT sees it. */
export class EmtVM {
  /** The VM's configuration tree. */
  readonly cfg: CfgmNode;
  readonly mem: PhysMem;
  readonly io: IoPortSpace;
  readonly irqs: IrqRouter;
  readonly clock: VirtualClock;
  readonly timers: TimerScheduler;
  readonly stam: Stam;
  readonly pdm: Pdm;
  readonly cpu: CpuCore;
  /** The services devices get (reset, power off, A20, char backends). */
  readonly machine: MachineServices;

  readonly #ctl: Int32Array;
  readonly #clients: Client[] = [];
  readonly #queue: Msg[] = [];
  #processing = false;
  #state: number = VMSTATE.CREATING;
  #pendingReset: string | null = null;
  #pendingPowerOff: { source: string; status: number } | null = null;
  readonly #atReset: AtResetEntry[] = [];
  readonly #relocators: { name: string; fn: RelocateFn }[] = [];
  #pendingError: ErrorReport | null = null;
  readonly #backends = new Map<string, EmtCharBackend>();
  #terminated = false;
  #irqChanged = false;
  #inRun = false;
  /** Virtual time at which the current slice's budget runs out (a timer armed earlier cuts it). */
  #sliceEndNs = 0;
  /** Estimated host ns per guest instruction (adapted after every slice). */
  #nsPerInstr = 200;
  /** Host time of the last request processed (for the spin before sleeping). */
  #lastRequestNs = -1e12;
  /**
   * How long (ns) the EMT polls for the next request before sleeping, right after a request (only
   * within 1 ms of one, so an idle EMT does not spin). A futex wake-up of a sleeping thread costs
   * tens of µs on an idle host; polling keeps back-to-back requests near 10 µs (npm run bench).
   */
  #spinNs = 200_000;
  /** The sum of all relocation deltas applied (VMR3Relocate). */
  relocationDelta = 0;

  readonly #cRequests: StamCounter;
  readonly #cHalts: StamCounter;
  readonly #cSlices: StamCounter;
  readonly #cWakeups: StamCounter;
  readonly #cResets: StamCounter;
  readonly #cTimers: StamCounter;
  readonly #cIdle: StamCounter;
  readonly #cDropped: StamCounter;
  readonly #cLagDropped: StamCounter;

  /**
   * Builds the machine. Throws VBoxError naming the configuration path on bad config; the caller
   * reports it and ends the thread (nothing half-built survives: the thread goes away).
   */
  constructor(cfg: CfgmNode, ram: SharedArrayBuffer, ctl: SharedArrayBuffer, port: MessagePort, client: SharedArrayBuffer) {
    this.#ctl = new Int32Array(ctl);
    this.#clients.push({ port, cl: new Int32Array(client) });
    this.cfg = cfg;
    validateRootConfig(cfg);
    const ramSize = cfg.queryIntegerDef("RamSize", ram.byteLength, 4096, 0xc0000000);
    this.mem = new PhysMem(ramSize, ram);
    this.io = new IoPortSpace();
    this.irqs = new IrqRouter();
    this.irqs.onChange = () => {
      this.#irqChanged = true;
    };
    this.clock = new VirtualClock();
    this.timers = new TimerScheduler(this.clock);
    this.timers.onChange = () => {
      if (!this.#inRun) return;
      const next = this.timers.nextDeadline();
      if (next >= 0 && next < this.#sliceEndNs) this.cpu.requestExit();
    };
    this.stam = new Stam();
    const s = this.stam;
    this.#cRequests = s.counter("/VM/EMT/Requests", "Requests processed on the EMT", "calls");
    this.#cHalts = s.counter("/VM/EMT/Halts", "Sleeps in VMR3WaitHalted", "occurrences");
    this.#cSlices = s.counter("/VM/EMT/CpuSlices", "cpu.run() calls", "calls");
    this.#cWakeups = s.counter("/VM/EMT/Wakeups", "Sleeps ended by a forced action", "occurrences");
    this.#cResets = s.counter("/VM/EMT/Resets", "Machine resets", "occurrences");
    this.#cTimers = s.counter("/TM/TimerCallbacks", "Timer callbacks run", "calls");
    this.#cIdle = s.counter("/VM/EMT/IdleSlices", "Slices in which the CPU retired no instruction", "calls");
    this.#cLagDropped = s.counter("/TM/LagDroppedNs", "Virtual-time lag given up (the guest could not keep up)", "ns");
    this.#cDropped = s.counter("/VM/Console/DroppedInput", "Console input bytes for a backend no device reads", "bytes");
    s.callback("/VM/EMT/State", "VM state (VMSTATE)", "count", () => this.#state);
    s.callback("/TM/VirtualNs", "Virtual clock", "ns", () => this.clock.now());
    s.callback("/PGM/UnassignedAccesses", "Physical accesses to unassigned addresses", "count", () => this.mem.unassignedAccesses);
    s.callback("/IOM/UnassignedReads", "Reads of unmapped I/O ports", "count", () => this.io.unassignedReads);
    s.callback("/IOM/UnassignedWrites", "Writes to unmapped I/O ports", "count", () => this.io.unassignedWrites);

    const vm = this;
    this.machine = {
      requestReset(source: string): void {
        vm.#pendingReset ??= source;
        vm.cpu.requestExit();
      },
      requestPowerOff(source: string, status = 0): void {
        vm.#pendingPowerOff ??= { source, status };
        vm.cpu.requestExit();
      },
      setA20(enabled: boolean): void {
        vm.mem.setA20(enabled);
      },
      getA20(): boolean {
        return vm.mem.a20Mask === -1;
      },
      charBackend(name: string): CharBackend | null {
        let b = vm.#backends.get(name);
        if (!b) {
          b = new EmtCharBackend(vm, name);
          vm.#backends.set(name, b);
        }
        return b;
      },
    };

    this.pdm = new Pdm({ mem: this.mem, io: this.io, irqs: this.irqs, timers: this.timers, stam: this.stam, machine: this.machine });
    const devices = cfg.getChild("Devices");
    if (devices) this.pdm.constructAll(devices);
    const cpu = new Cpu({
      mem: this.mem,
      io: this.io,
      irqs: this.irqs,
      clock: this.clock,
      onTripleFault: () => {
        this.#pendingReset ??= "triple fault";
      },
      forcedActions: { flags: this.#ctl, index: Ctl.FF },
    });
    this.cpu = cpu;
    this.clock.attachCounter(() => cpu.instructionCount, INITIAL_NS_PER_INSN);
    s.callback("/TM/LagNs", "Virtual time behind the real-time reference", "ns", () => Math.round(this.clock.lagNs));
    s.callback("/TM/PsPerInstruction", "Virtual time one instruction counts for (ps)", "count", () => Math.round(this.clock.nsPerInsn * 1000));
    // RAM written behind the CPU's back (loaders, saved-state load) drops decoded code of those pages.
    this.mem.onExternalWrite = (gpa, len) => cpu.codeWritten(gpa, len);
    // The x87's FERR# output (CR0.NE=0 error reporting) drives the chipset's IRQ 13 latch, which the
    // guest clears by writing port 0xF0.
    const ferr = this.pdm.find("ferr")?.dev as { setFerr?: (level: boolean) => void } | undefined;
    if (ferr?.setFerr) {
      const setFerr = ferr.setFerr.bind(ferr);
      cpu.fpu.onFerr = () => setFerr(true);
    }
    s.callback("/CPU/Instructions", "Instructions retired", "instructions", () => this.cpu.instructionCount);
    this.atRelocate("EMT", (_vm, d) => {
      this.relocationDelta += d;
    });
  }

  // ---------------------------------------------------------------- state

  /** The current VM state. */
  get state(): number {
    return this.#state;
  }

  /** Changes the state: shared block first, then every handle is told (in order). */
  #setState(s: number): void {
    const old = this.#state;
    this.#state = s;
    Atomics.store(this.#ctl, Ctl.STATE, s);
    this.#broadcast({ t: "s", s, o: old });
  }

  #broadcast(msg: FromEmt): void {
    for (const c of this.#clients) {
      try {
        c.port.postMessage(msg);
      } catch {
        /* a closed port: the handle went away */
      }
    }
  }

  /** Marks the machine built; the API side's VMR3Create returns. */
  ready(): void {
    this.#setState(VMSTATE.CREATED);
  }

  // ---------------------------------------------------------------- requests

  /**
   * VMR3ReqProcess: runs every pending request, in order per requester. Returns how many ran,
   * or a promise when a request needs an import or returned a promise (the loop awaits it).
   * A nested call (from inside a request) returns 0.
   */
  processRequests(): number | Promise<number> {
    if (this.#processing) return 0;
    this.#drain();
    this.#processing = true;
    let n = 0;
    while (this.#queue.length > 0) {
      const item = this.#queue.shift()!;
      let r: Promise<void> | void;
      try {
        r = this.#handle(item);
      } catch (e) {
        this.#processing = false;
        throw e;
      }
      n++;
      if (r) {
        return r.then(
          () => {
            this.#processing = false;
            const more = this.processRequests();
            return typeof more === "number" ? n + more : more.then((k) => n + k);
          },
          (e: unknown) => {
            this.#processing = false;
            throw e;
          },
        );
      }
    }
    this.#processing = false;
    return n;
  }

  #drain(): void {
    Atomics.and(this.#ctl, Ctl.FF, ~(FF_REQUEST | FF_NOTIFY));
    for (let i = 0; i < this.#clients.length; i++) {
      const client = this.#clients[i]!;
      for (;;) {
        const r = receiveMessageOnPort(client.port);
        if (!r) break;
        this.#queue.push({ client, m: r.message as ToEmt });
      }
    }
  }

  /** Handles one message; returns a promise when it must be awaited. */
  #handle(item: Msg): Promise<void> | void {
    const { client, m } = item;
    switch (m.t) {
      case "r":
        return this.#runRequest(client, m.id, m.fn, m.args, m.flags);
      case "op":
        return this.#runOp(client, m.id, m.op, m.arg);
      case "in": {
        const b = this.machine.charBackend(m.name) as EmtCharBackend;
        if (b.receiver) b.receiver(m.bytes);
        else this.#cDropped.add(m.bytes.length);
        return;
      }
      case "attach": {
        m.port.unref?.();
        this.#clients.push({ port: m.port, cl: new Int32Array(m.client) });
        Atomics.add(this.#ctl, Ctl.CLIENTS, 1);
        // The new handle may have queued requests already: drain again on the next round.
        Atomics.or(this.#ctl, Ctl.FF, FF_REQUEST);
        return;
      }
      case "bye": {
        const i = this.#clients.indexOf(client);
        if (i > 0) {
          this.#clients.splice(i, 1);
          client.port.close();
          Atomics.sub(this.#ctl, Ctl.CLIENTS, 1);
        }
        return;
      }
    }
  }

  #complete(client: Client, id: number, rc: number, v?: unknown, msg?: string): void {
    const out: FromEmt = msg === undefined ? { t: "c", id, rc, v } : { t: "c", id, rc, v, msg };
    try {
      client.port.postMessage(out);
    } catch {
      // The value could not be cloned: complete without it.
      try {
        client.port.postMessage({ t: "c", id, rc: RT_FAILURE(rc) ? rc : Status.VERR_INVALID_PARAMETER, msg: "Result could not be passed across threads" });
      } catch {
        /* closed port */
      }
    }
    Atomics.add(client.cl, Cl.DONE, 1);
    Atomics.notify(client.cl, Cl.DONE);
  }

  #runRequest(client: Client, id: number, fn: Parameters<typeof lookupSync>[0], args: unknown[], flags: number): Promise<void> | void {
    this.#cRequests.value++;
    this.#lastRequestNs = hostNs();
    Atomics.store(client.cl, Cl.PROCESSING, id);
    const finish = (rc: number, v?: unknown, msg?: string): void => {
      Atomics.store(client.cl, Cl.PROCESSING, 0);
      if ((flags & VMREQFLAGS.NO_WAIT) === 0) this.#complete(client, id, rc, v, msg);
    };
    const settle = (v: unknown): void => {
      const rc = (flags & VMREQFLAGS.RETURN_MASK) === VMREQFLAGS.VOID ? Status.VINF_SUCCESS : typeof v === "number" ? v : Status.VINF_SUCCESS;
      finish(rc, v);
    };
    const fail = (e: unknown): void => {
      const [rc, msg] = this.#exceptionToStatus(e, "request function");
      finish(rc, undefined, msg);
    };
    try {
      let f: RequestFn | null = lookupSync(fn);
      const call = (fun: RequestFn): Promise<void> | void => {
        const v = (fun as (vm: EmtVM, ...a: unknown[]) => unknown)(this, ...args);
        if (v !== null && typeof v === "object" && typeof (v as { then?: unknown }).then === "function") {
          return (v as Promise<unknown>).then(settle, fail);
        }
        settle(v);
      };
      if (f) return call(f);
      return lookupAsync(fn as { module: string; export: string }).then((g) => {
        f = g;
        return call(g);
      }, fail).catch(fail);
    } catch (e) {
      fail(e);
    }
  }

  /**
   * Turns an exception into a status. A VBoxError is a status the code meant to return; anything
   * else is an emulator fault: a RUNNING VM goes to GURU_MEDITATION, and the error is reported.
   */
  #exceptionToStatus(e: unknown, where: string): [number, string] {
    if (e instanceof VBoxError) return [e.rc, e.message];
    this.guruMeditation(e, where);
    return [Status.VERR_INTERNAL_ERROR, `Exception in ${where}: ${e instanceof Error ? e.message : String(e)}`];
  }

  /** Reports an emulator fault and, when RUNNING, enters GURU_MEDITATION. */
  guruMeditation(e: unknown, where: string): void {
    const text = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
    const stack = e instanceof Error && e.stack ? e.stack.split("\n").slice(1, 4).map((l) => l.trim().replace(/^at /, "")).join(" < ") : "";
    const running = this.#state === VMSTATE.RUNNING || this.#state === VMSTATE.RESETTING;
    this.setError(
      running ? Status.VERR_EM_INTERNAL_ERROR : Status.VERR_INTERNAL_ERROR,
      { file: "src/vm/EmtVM.ts", line: 0, func: where },
      running ? "Guru meditation: exception in %s: %s%s%s" : "Exception in %s: %s%s%s",
      where,
      text,
      stack ? " at " : "",
      stack,
    );
    if (running) {
      this.clock.pause();
      this.#setState(VMSTATE.GURU_MEDITATION);
    }
  }

  #runOp(client: Client, id: number, op: EmtOp, arg: unknown): Promise<void> | void {
    let rc: number = Status.VINF_SUCCESS;
    let v: unknown;
    let msg: string | undefined;
    try {
      v = this.#op(op, arg);
    } catch (e) {
      [rc, msg] = this.#exceptionToStatus(e, `VM operation ${op}`);
      if (e instanceof VBoxError && rc !== Status.VERR_VM_INVALID_VM_STATE) {
        this.setError(rc, { file: "src/vm/EmtVM.ts", line: 0, func: op }, "%s", msg);
      }
    }
    this.#complete(client, id, rc, v, msg);
  }

  #require(op: string, ...allowed: number[]): void {
    if (!allowed.includes(this.#state)) {
      throw new VBoxError(
        Status.VERR_VM_INVALID_VM_STATE,
        `Cannot ${op} a VM in state ${vmStateName(this.#state)} (allowed: ${allowed.map(vmStateName).join(", ")})`,
      );
    }
  }

  #op(op: EmtOp, arg: unknown): unknown {
    const S = VMSTATE;
    switch (op) {
      case "powerOn":
        this.#require("power on", S.CREATED);
        this.pdm.reset();
        this.cpu.reset();
        bootMachine({ cfg: this.cfg, mem: this.mem, cpu: this.cpu as Cpu });
        this.clock.resume();
        this.#setState(S.RUNNING);
        return undefined;
      case "suspend":
        this.#require("suspend", S.RUNNING);
        this.clock.pause();
        this.#setState(S.SUSPENDED);
        return undefined;
      case "resume":
        this.#require("resume", S.SUSPENDED);
        this.clock.resume();
        this.#setState(S.RUNNING);
        return undefined;
      case "reset":
        this.#require("reset", S.RUNNING, S.SUSPENDED);
        this.#reset("VMR3Reset");
        return undefined;
      case "powerOff":
        this.#require("power off", S.RUNNING, S.SUSPENDED, S.LOAD_FAILURE, S.GURU_MEDITATION);
        this.#powerOff();
        return undefined;
      case "destroy":
        this.#require("destroy", S.OFF, S.CREATED);
        this.#setState(S.DESTROYING);
        try {
          this.pdm.destruct();
        } finally {
          this.#setState(S.TERMINATED);
          this.#terminated = true;
        }
        return undefined;
      case "stats":
        return this.stam.snapshot(typeof arg === "string" ? arg : "*");
      case "relocate":
        this.relocate(Number(arg));
        return undefined;
      case "saveBegin":
        this.#require("save", S.SUSPENDED);
        this.#setState(S.SAVING);
        try {
          return { units: this.#saveUnits(), config: canonicalConfig(this.cfg) };
        } catch (e) {
          this.#setState(S.SUSPENDED);
          throw e;
        }
      case "saveEnd":
        if (this.#state === S.SAVING) this.#setState(S.SUSPENDED);
        return undefined;
      case "loadBegin":
        this.#require("load", S.CREATED, S.SUSPENDED);
        this.#setState(S.LOADING);
        return { ramSize: this.mem.ramSize, config: canonicalConfig(this.cfg), units: this.#unitTable() };
      case "loadApply":
        this.#require("apply a saved state to", S.LOADING);
        try {
          this.#loadUnits(arg as { name: string; instance: number; version: number; data: Uint8Array }[]);
        } catch (e) {
          this.#setState(S.LOAD_FAILURE);
          throw e;
        }
        this.#setState(S.SUSPENDED);
        return undefined;
      case "loadFail":
        if (this.#state === S.LOADING) this.#setState(S.LOAD_FAILURE);
        return undefined;
    }
  }

  // ---------------------------------------------------------------- saved state units

  #unitTable(): { name: string; instance: number; minVersion: number; maxVersion: number }[] {
    const t = this.pdm.instances().map((d) => ({
      name: d.reg.name,
      instance: d.ins.instance,
      minVersion: d.reg.ssmMinVersion,
      maxVersion: d.reg.ssmVersion,
    }));
    t.push({ name: "cpu", instance: 0, minVersion: 1, maxVersion: this.cpu.ssmVersion });
    t.push({ name: "tm", instance: 0, minVersion: 1, maxVersion: 1 });
    t.push({ name: "vm", instance: 0, minVersion: 1, maxVersion: 1 });
    return t;
  }

  #saveUnits(): { name: string; instance: number; version: number; data: Uint8Array }[] {
    const out: { name: string; instance: number; version: number; data: Uint8Array }[] = [];
    const vmw = new SsmUnitWriter();
    vmw.putBool(this.mem.a20Mask === -1);
    out.push({ name: "vm", instance: 0, version: 1, data: vmw.finish() });
    const tmw = new SsmUnitWriter();
    tmw.putU64(Math.floor(this.clock.now()));
    out.push({ name: "tm", instance: 0, version: 1, data: tmw.finish() });
    const cw = new SsmUnitWriter();
    this.cpu.saveState(cw);
    out.push({ name: "cpu", instance: 0, version: this.cpu.ssmVersion, data: cw.finish() });
    for (const d of this.pdm.instances()) {
      const w = new SsmUnitWriter();
      this.pdm.save(d, w);
      out.push({ name: d.reg.name, instance: d.ins.instance, version: d.reg.ssmVersion, data: w.finish() });
    }
    return out;
  }

  #loadUnits(units: { name: string; instance: number; version: number; data: Uint8Array }[]): void {
    const find = (name: string, instance: number) => units.find((u) => u.name === name && u.instance === instance);
    const need = (name: string, instance: number) => {
      const u = find(name, instance);
      if (!u) throw new VBoxError(Status.VERR_SSM_UNIT_NOT_FOUND, `Saved state has no unit '${name}' instance ${String(instance)}`);
      return u;
    };
    const vmu = need("vm", 0);
    const vr = new SsmUnitReader(vmu.data, "vm");
    const a20 = vr.getBool();
    vr.expectEnd();
    const tmu = need("tm", 0);
    const tr = new SsmUnitReader(tmu.data, "tm");
    const now = tr.getU64();
    tr.expectEnd();
    this.clock.set(now);
    this.mem.setA20(a20);
    const cu = need("cpu", 0);
    const cr = new SsmUnitReader(cu.data, "cpu");
    this.cpu.loadState(cr, cu.version);
    cr.expectEnd();
    for (const d of this.pdm.instances()) {
      const u = need(d.reg.name, d.ins.instance);
      this.pdm.load(d, new SsmUnitReader(u.data, d.reg.name), u.version);
    }
    this.mem.onExternalWrite?.(0, this.mem.ramSize);
  }

  // ---------------------------------------------------------------- reset, power off

  #reset(source: string): void {
    const prev = this.#state;
    this.#cResets.value++;
    // Per cause: "/VM/EMT/ResetsBy/triple-fault", ".../i8042", ".../port92", ".../api" …
    const cause = source.replace(/[^A-Za-z0-9_.-]+/g, "-") || "unknown";
    this.stam.counter(`/VM/EMT/ResetsBy/${cause}`, `Machine resets caused by ${source}`).value++;
    this.#setState(VMSTATE.RESETTING);
    this.pdm.reset();
    for (const e of [...this.#atReset]) {
      const rc =
        e.kind === "dev"
          ? (e.fn as AtResetDevFn)(e.devIns!, e.user)
          : (e.fn as AtResetIntFn)(this, e.user);
      if (typeof rc === "number" && RT_FAILURE(rc)) {
        this.setError(rc, { file: "src/vm/EmtVM.ts", line: 0, func: "reset" }, "At-reset callback '%s' failed: %Rrc", e.desc, rc);
      }
    }
    this.#broadcast({ t: "x" });
    this.mem.setA20(true);
    this.cpu.reset();
    bootMachine({ cfg: this.cfg, mem: this.mem, cpu: this.cpu as Cpu });
    this.#setState(prev);
  }

  #powerOff(status?: number): void {
    this.clock.pause();
    if (status !== undefined) {
      Atomics.store(this.#ctl, Ctl.EXIT, status);
      this.#broadcast({ t: "p", status });
    }
    this.#setState(VMSTATE.OFF);
  }

  /** Acts on a reset or power off a device asked for (only while RUNNING). */
  #machineActions(): void {
    if (this.#state !== VMSTATE.RUNNING) return;
    if (this.#pendingPowerOff) {
      const p = this.#pendingPowerOff;
      this.#pendingPowerOff = null;
      this.#pendingReset = null;
      this.#powerOff(p.status);
      return;
    }
    if (this.#pendingReset !== null) {
      const src = this.#pendingReset;
      this.#pendingReset = null;
      this.#reset(src);
    }
  }

  // ---------------------------------------------------------------- callbacks (EMT side)

  /** VMR3AtResetRegister: a device's reset callback. */
  atResetRegister(devIns: DevIns, fn: AtResetDevFn, user: unknown, desc = ""): void {
    this.#atReset.push({ kind: "dev", devIns, fn, user, desc });
  }

  /** VMR3AtResetRegisterInternal: an internal component's reset callback. */
  atResetRegisterInternal(fn: AtResetIntFn, user: unknown, desc = ""): void {
    this.#atReset.push({ kind: "int", devIns: null, fn, user, desc });
  }

  /** VMR3AtResetDeregister: removes a device's callbacks matching fn; false when none matched. */
  atResetDeregister(devIns: DevIns, fn: AtResetDevFn): boolean {
    return this.#removeReset((e) => e.kind === "dev" && e.devIns === devIns && e.fn === fn);
  }

  /** VMR3AtResetDeregisterInternal: removes internal callbacks matching fn; false when none matched. */
  atResetDeregisterInternal(fn: AtResetIntFn): boolean {
    return this.#removeReset((e) => e.kind === "int" && e.fn === fn);
  }

  #removeReset(pred: (e: AtResetEntry) => boolean): boolean {
    let found = false;
    for (let i = this.#atReset.length - 1; i >= 0; i--) {
      if (pred(this.#atReset[i]!)) {
        this.#atReset.splice(i, 1);
        found = true;
      }
    }
    return found;
  }

  /** Registers a component's relocation handler (called by VMR3Relocate). */
  atRelocate(name: string, fn: RelocateFn): void {
    this.#relocators.push({ name, fn });
  }

  /** VMR3Relocate: calls every component's relocation handler with the delta. */
  relocate(offDelta: number): void {
    for (const r of this.#relocators) r.fn(this, offDelta);
    for (const d of this.pdm.instances()) {
      const dev = d.dev as { relocate?: (offDelta: number) => void };
      dev.relocate?.(offDelta);
    }
  }

  /**
   * VMSetError on the EMT: records the error (VirtualBox keeps it in VMINT) and delivers it to the
   * API side's error callbacks (VMR3SetErrorWorker). Returns rc.
   */
  setError(rc: number, pos: SrcPos, fmt: string, ...args: unknown[]): number {
    this.recordError(rc, pos, fmt, args);
    this.setErrorWorker();
    return rc;
  }

  /** Records an error without delivering it (the ring-0/GC half of VMSetError). */
  recordError(rc: number, pos: SrcPos, fmt: string, args: unknown[]): void {
    let safeArgs: unknown[];
    try {
      safeArgs = structuredClone(args);
    } catch {
      safeArgs = args.map((a) => String(a));
    }
    this.#pendingError = { rc, pos: { ...pos }, fmt, args: safeArgs, msg: formatMessage(fmt, args) };
  }

  /** VMR3SetErrorWorker: delivers the recorded error (if any) to the API side. */
  setErrorWorker(): void {
    const e = this.#pendingError;
    if (!e) return;
    this.#pendingError = null;
    this.#broadcast({ t: "e", ...e });
  }

  // ---------------------------------------------------------------- console

  /** Sends buffered guest output of every char backend to the API side. */
  flushConsoles(): void {
    for (const b of this.#backends.values()) {
      if (b.pendingBytes === 0) continue;
      const out = new Uint8Array(b.pendingBytes);
      let o = 0;
      for (const chunk of b.pending) {
        out.set(chunk, o);
        o += chunk.length;
      }
      b.pending = [];
      b.pendingBytes = 0;
      this.#broadcast({ t: "o", name: b.name, bytes: out });
    }
  }

  // ---------------------------------------------------------------- sleeping

  #ff(): number {
    return Atomics.load(this.#ctl, Ctl.FF);
  }

  /** The pending forced-action flags (FF_REQUEST, FF_NOTIFY); the loop clears them. */
  get forcedActions(): number {
    return this.#ff();
  }

  #sleep(ms: number): void {
    // Requests tend to come in runs: right after one, poll briefly before paying for a futex
    // sleep and wake-up (the round trip of back-to-back requests stays in the tens of µs).
    if (this.#spinNs > 0 && hostNs() - this.#lastRequestNs < 1_000_000) {
      const end = hostNs() + Math.min(this.#spinNs, ms * 1e6);
      while (this.#ff() === 0 && hostNs() < end) {
        /* spin */
      }
    }
    const seq = Atomics.load(this.#ctl, Ctl.WAKE);
    if (this.#ff() !== 0) return;
    Atomics.store(this.#ctl, Ctl.SLEEPING, 1);
    const r = Atomics.wait(this.#ctl, Ctl.WAKE, seq, Math.max(0, Math.min(ms, MAX_SLEEP_MS)));
    Atomics.store(this.#ctl, Ctl.SLEEPING, 0);
    if (r !== "timed-out") this.#cWakeups.value++;
  }

  /**
   * VMR3WaitHalted: sleeps until an IRQ line changed (unless ignored), the next timer deadline, or
   * a forced action. Returns VINF_SUCCESS.
   */
  waitHalted(ignoreInterrupts: boolean): number {
    this.#cHalts.value++;
    if (!ignoreInterrupts && this.#irqChanged) {
      this.#irqChanged = false;
      return Status.VINF_SUCCESS;
    }
    const clock = this.clock;
    const next = this.timers.nextDeadline();
    if (next >= 0 && next <= clock.now()) return Status.VINF_SUCCESS;
    if (this.#pendingReset !== null || this.#pendingPowerOff) return Status.VINF_SUCCESS;
    // Idle time passes in virtual time up to the next deadline, but never ahead of the real-time
    // reference: a guest that lags (it was busy) reaches its deadline at once, one that is on time
    // sleeps until the host catches up.
    const real = clock.realNow();
    if (next >= 0 && next <= real) {
      clock.advanceTo(next);
      return Status.VINF_SUCCESS;
    }
    this.#sleep(next < 0 ? MAX_SLEEP_MS : (next - real) / 1e6);
    const after = clock.realNow();
    clock.advanceTo(next >= 0 && after > next ? next : after);
    return Status.VINF_SUCCESS;
  }

  /** VMR3Wait: the suspended-state sleep, until a forced action. Returns VINF_SUCCESS. */
  wait(): number {
    this.#sleep(MAX_SLEEP_MS);
    return Status.VINF_SUCCESS;
  }

  // ---------------------------------------------------------------- the loop

  /** Runs the execution loop until the VM is destroyed. */
  async run(): Promise<void> {
    let lastYield = hostNs();
    while (!this.#terminated) {
      if (hostNs() - lastYield > YIELD_NS) {
        // Two turns: the timers phase runs between the two check phases.
        await immediate();
        await immediate();
        lastYield = hostNs();
      }
      try {
        if (this.#ff() !== 0) {
          const p = this.processRequests();
          if (typeof p !== "number") await p;
          if (this.#terminated) break;
        }
        this.#machineActions();
        if (this.#state === VMSTATE.RUNNING) this.#execute();
        else if (this.#ff() === 0) this.wait();
        this.flushConsoles();
      } catch (e) {
        this.guruMeditation(e, "execution loop");
      }
    }
    this.flushConsoles();
    for (const c of this.#clients) c.port.close();
  }

  /** Retunes the ns per instruction so that virtual time follows the real-time reference. */
  #retune(): void {
    const clock = this.clock;
    const dropped = clock.limitLag(MAX_LAG_NS);
    if (dropped > 0) this.#cLagDropped.add(Math.round(dropped));
    const lag = clock.lagNs;
    const ns = this.#nsPerInstr * (1 + lag / LAG_CATCHUP_NS);
    clock.setNsPerInsn(Math.min(MAX_NS_PER_INSN, Math.max(MIN_NS_PER_INSN, ns)));
  }

  #execute(): void {
    const clock = this.clock;
    const now = clock.now();
    const next0 = this.timers.nextDeadline();
    if (next0 >= 0 && next0 <= now) this.#cTimers.add(this.timers.runDue(now));
    this.#machineActions();
    if (this.#state !== VMSTATE.RUNNING) return;
    // A halted CPU with INTR asserted goes back into run(), which delivers the interrupt (when IF
    // allows) and wakes it; only a halted CPU with nothing pending sleeps here.
    if (this.cpu.halted && !this.irqs.hasInterrupt()) {
      this.waitHalted(false);
      return;
    }
    const t0 = hostNs();
    const next = this.timers.nextDeadline();
    const rate = clock.nsPerInsn;
    // The budget: about SLICE_NS of host time (request latency), and no further than the next
    // timer deadline in virtual time (instructions × ns per instruction), so timers fire on time.
    let budget = Math.floor(SLICE_NS / this.#nsPerInstr);
    let toDeadline = false;
    if (next >= 0) {
      const n = Math.ceil((next - now) / rate);
      if (n <= budget) {
        budget = n;
        toDeadline = true;
      }
    }
    budget = Math.max(1, Math.min(MAX_SLICE_INSTRUCTIONS, budget));
    this.#sliceEndNs = now + budget * rate;
    const before = this.cpu.instructionCount;
    this.#inRun = true;
    let exit: CpuExit;
    try {
      exit = this.cpu.run(budget);
    } finally {
      this.#inRun = false;
    }
    this.#cSlices.value++;
    const done = this.cpu.instructionCount - before;
    if (done > 0) {
      const per = (hostNs() - t0) / done;
      this.#nsPerInstr = Math.min(10_000, Math.max(0.5, this.#nsPerInstr * 0.5 + per * 0.5));
      this.#retune();
    }
    // The budget ran out at the deadline: land on it exactly (the product may round below it).
    if (toDeadline && exit === CpuExit.BUDGET && done === budget) clock.advanceTo(next);
    switch (exit) {
      case CpuExit.HALTED:
        this.waitHalted(false);
        break;
      case CpuExit.TRIPLE_FAULT:
        this.#pendingReset ??= "triple fault";
        break;
      case CpuExit.BUDGET:
        // A CPU that retired nothing (no guest code can run) idles like HLT with interrupts
        // ignored: until the next timer deadline or a forced action.
        if (done === 0) {
          this.#cIdle.value++;
          this.waitHalted(true);
        }
        break;
      default:
        break;
    }
  }
}
