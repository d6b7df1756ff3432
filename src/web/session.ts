/**
 * One VM as `boxvm serve` holds it: the VM handle, its console's scrollback, its error reports,
 * the progress of a save or load, and the tabs watching it. The server's side of the page's
 * protocol (protocol.ts) per VM.
 *
 * The console is read from the moment the VM exists, whether a tab is open or not, so a closed
 * tab loses nothing: its output waits in the scrollback for the next tab. Operations from several
 * tabs run one after the other, in the order they came.
 */
import { existsSync, mkdirSync } from "node:fs";
import { dirname } from "node:path";
import type { StamSnapshotEntry } from "../stam/Stam.ts";
import { statusName } from "../vm/err.ts";
import { VM, toVBoxError, type VMCreateOptions } from "../vm/Vm.ts";
import { vmStateName } from "../vm/types.ts";
import type { ErrorReport, Op, Progress, ServerMessage, StateName, StatRow, VmDetail, VmSummary } from "./protocol.ts";
import { opAllowed } from "./protocol.ts";
import { Scrollback } from "./scrollback.ts";

/** How to make a VM (again, for "recreate"). */
export interface VmSpec {
  name: string;
  /** What it boots, in words (shown on the page). */
  what: string;
  create: VMCreateOptions;
  /** Where Save writes and Load reads. */
  stateFile: string;
  /** Load stateFile as soon as the VM exists (serve --load). */
  loadAtStart?: boolean;
}

/** The name of the serial console the page shows. */
export const CONSOLE_NAME = "serial0";
/** Error reports kept per VM (older ones are dropped). */
export const MAX_ERRORS = 100;

/** A tab's listener: gets every message about the VM. */
export type Listener = (m: ServerMessage) => void;

/** One VM served to the page. */
export class VmSession {
  readonly id: number;
  readonly spec: VmSpec;
  readonly scrollback: Scrollback;
  #vm: VM;
  readonly #listeners = new Set<Listener>();
  readonly #stateObservers = new Set<() => void>();
  /** The terminal size the last tab reported (the serial line has no way to tell the guest). */
  size: { cols: number; rows: number } | null = null;
  readonly #errors: ErrorReport[] = [];
  #progress: Progress | null = null;
  /** The chain operations are queued on. */
  #queue: Promise<unknown> = Promise.resolve();
  #closed = false;

  private constructor(id: number, spec: VmSpec, vm: VM, scrollbackBytes: number) {
    this.id = id;
    this.spec = spec;
    this.#vm = vm;
    this.scrollback = new Scrollback(scrollbackBytes);
    this.#bind(vm);
  }

  /** Creates the VM (state CREATED) and its session. Errors during creation are thrown (VBoxError). */
  static async create(id: number, spec: VmSpec, scrollbackBytes: number): Promise<VmSession> {
    const vm = await VM.create(spec.create);
    return new VmSession(id, spec, vm, scrollbackBytes);
  }

  /** The VM handle (changes on "recreate"). */
  get vm(): VM {
    return this.#vm;
  }

  /** The VM's state name. */
  get state(): StateName {
    return vmStateName(this.#vm.state) as StateName;
  }

  /** Whether Load has a file to read. */
  get hasSavedState(): boolean {
    return existsSync(this.spec.stateFile);
  }

  /** Id, name and state. */
  summary(): VmSummary {
    return { id: this.id, name: this.spec.name, state: this.state };
  }

  /** Everything a tab shows beside the console. */
  detail(): VmDetail {
    return {
      ...this.summary(),
      errors: [...this.#errors],
      progress: this.#progress,
      hasSavedState: this.hasSavedState,
      stateFile: this.spec.stateFile,
      what: this.spec.what,
    };
  }

  /** The error reports received so far (at most MAX_ERRORS, oldest first). */
  get errors(): readonly ErrorReport[] {
    return this.#errors;
  }

  /**
   * Adds a tab: it first gets the VM's detail and the scrollback, then every message as it comes.
   * (One thread: nothing can come between the snapshot and the subscription.) Returns the remover.
   */
  watch(l: Listener): () => void {
    l({ t: "vm", vm: this.detail() });
    l({ t: "console", vm: this.id, data: Buffer.from(this.scrollback.contents()).toString("base64"), reset: true });
    this.#listeners.add(l);
    return () => this.#listeners.delete(l);
  }

  /** Calls `cb` after every state change (for the VM list); returns the remover. */
  onStateChange(cb: () => void): () => void {
    this.#stateObservers.add(cb);
    return () => this.#stateObservers.delete(cb);
  }

  /** Number of tabs watching. */
  get watchers(): number {
    return this.#listeners.size;
  }

  /** Typed input for the guest's serial port. Ignored (false) when the VM cannot take it. */
  input(data: string): boolean {
    if (!this.#vm.alive) return false;
    this.#vm.console(CONSOLE_NAME).write(data);
    return true;
  }

  /** The statistics matching a STAM pattern, for the panel ([] when the VM is gone). */
  async stats(pattern: string): Promise<StatRow[]> {
    return (await this.rawStats(pattern)).map((s) => ({ name: s.name, unit: s.unit, value: s.value, desc: s.desc }));
  }

  /** The STAM snapshot ([] when the VM is gone). */
  async rawStats(pattern = "*"): Promise<StamSnapshotEntry[]> {
    if (!this.#vm.alive) return [];
    try {
      return await this.#vm.stats(pattern);
    } catch {
      return [];
    }
  }

  /**
   * Runs a control operation after the ones already queued. Resolves with null on success or the
   * failure's message ("VERR_VM_INVALID_VM_STATE: Cannot suspend …").
   */
  run(op: Op): Promise<string | null> {
    const p = this.#queue.then(() => this.#run(op));
    this.#queue = p.catch(() => undefined);
    return p;
  }

  async #run(op: Op): Promise<string | null> {
    if (this.#closed) return "The server is shutting down";
    if (op === "load" && !this.hasSavedState)
      return `VERR_FILE_NOT_FOUND: No saved state to load: ${this.spec.stateFile}`;
    // The lifecycle calls are checked by the VM API itself; save and load are checked here so that
    // a refused one shows no progress bar, and "recreate" is this server's own.
    if ((op === "save" || op === "load" || op === "recreate") && !opAllowed(op, this.state, true)) {
      return `VERR_VM_INVALID_VM_STATE: Cannot ${op} a VM in state ${this.state}`;
    }
    const vm = this.#vm;
    try {
      switch (op) {
        case "powerOn":
          await vm.powerOn();
          break;
        case "suspend":
          await vm.suspend();
          break;
        case "resume":
          await vm.resume();
          break;
        case "reset":
          await vm.reset();
          break;
        case "powerOff":
          await vm.powerOff();
          break;
        case "save":
        case "load":
          await this.#saveOrLoad(op);
          break;
        case "recreate":
          await this.#recreate();
          break;
      }
      return null;
    } catch (e) {
      const err = toVBoxError(e);
      return `${err.code}: ${err.message}`;
    } finally {
      // A failed operation may leave the state as it was: tabs still want to know (e.g. hasSavedState).
      this.#emit({ t: "state", vm: this.id, state: this.state, hasSavedState: this.hasSavedState });
    }
  }

  async #saveOrLoad(op: "save" | "load"): Promise<void> {
    const progress = (percent: number, done: boolean, ok: boolean): void => {
      this.#progress = { op, percent, done, ok };
      this.#emit({ t: "progress", vm: this.id, progress: this.#progress });
    };
    progress(0, false, true);
    const cb = (_vm: VM, percent: number): number => {
      progress(percent, false, true);
      return 0;
    };
    try {
      if (op === "save") {
        mkdirSync(dirname(this.spec.stateFile), { recursive: true });
        await this.#vm.save(this.spec.stateFile, cb);
      } else {
        await this.#vm.load(this.spec.stateFile, cb);
      }
    } catch (e) {
      progress(this.#progress?.percent ?? 0, true, false);
      throw e;
    }
    progress(100, true, true);
  }

  async #recreate(): Promise<void> {
    const old = this.#vm;
    const vm = await VM.create(this.spec.create);
    this.#vm = vm;
    this.#bind(vm);
    if (old.alive) await old.destroy();
    const note = new TextEncoder().encode("\r\n\x1b[2m[boxvm serve: a new VM from the same configuration]\x1b[0m\r\n");
    this.#console(note);
    this.#emit({ t: "vm", vm: this.detail() });
    for (const cb of [...this.#stateObservers]) cb();
  }

  /** Hooks a VM's callbacks and console to the session. */
  #bind(vm: VM): void {
    vm.onState((v, state) => {
      if (v !== this.#vm) return;
      this.#emit({
        t: "state",
        vm: this.id,
        state: vmStateName(state) as StateName,
        hasSavedState: this.hasSavedState,
      });
      for (const cb of [...this.#stateObservers]) cb();
    });
    vm.onError((v, _user, rc, pos, _fmt, _args, message) => {
      if (v !== this.#vm) return;
      const report: ErrorReport = {
        time: Date.now(),
        rc,
        code: statusName(rc),
        message,
        where: pos.file === "" ? "" : `${pos.file}:${String(pos.line)}${pos.func === "" ? "" : ` ${pos.func}`}`,
      };
      this.#errors.push(report);
      if (this.#errors.length > MAX_ERRORS) this.#errors.splice(0, this.#errors.length - MAX_ERRORS);
      this.#emit({ t: "error", vm: this.id, error: report });
    });
    vm.console(CONSOLE_NAME).onData((bytes) => {
      if (vm === this.#vm) this.#console(bytes);
    });
  }

  #console(bytes: Uint8Array): void {
    this.scrollback.append(bytes);
    if (this.#listeners.size > 0)
      this.#emit({ t: "console", vm: this.id, data: Buffer.from(bytes).toString("base64") });
  }

  #emit(m: ServerMessage): void {
    for (const l of [...this.#listeners]) {
      try {
        l(m);
      } catch (e) {
        console.error("boxvm serve: a tab's listener failed:", e);
      }
    }
  }

  /** Powers the VM off (when it runs) and destroys it; for the server's shutdown. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#queue;
    this.#listeners.clear();
    const vm = this.#vm;
    if (!vm.alive) return;
    try {
      if (opAllowed("powerOff", vmStateName(vm.state) as StateName, true)) await vm.powerOff();
      await vm.destroy();
    } catch (e) {
      console.error(`boxvm serve: closing ${this.spec.name}:`, (e as Error).message);
    }
  }
}
