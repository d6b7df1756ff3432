/**
 * Helpers of the lifecycle tests: the machine they boot (the default PC, 16 MiB, a Multiboot
 * kernel, optionally the exit device), a console collector and state waits. Used by the tests and
 * by the child process of the save/restore test, so both build the same configuration.
 */
import { VM } from "../../src/vm/Vm.ts";
import { VMSTATE } from "../../src/vm/types.ts";

/** The machine's configuration (what the saved state's config check compares). */
export function lifecycleConfig(kernel: string): object {
  return { RamSize: 16 << 20, Boot: { Kernel: kernel } };
}

/** Creates the VM: the default PC plus, when `exitDevice`, isa-debug-exit at 0xF4. */
export async function createMachine(kernel: string, opts: { exitDevice: boolean; modules?: string[] }): Promise<VM> {
  return VM.create({
    config: lifecycleConfig(kernel),
    ...(opts.modules ? { modules: opts.modules } : {}),
    configure: (_vm, root) => {
      if (opts.exitDevice) root.ensureChild("Devices/isa-debug-exit/0/Config");
    },
  });
}

/** Collects a console's bytes as latin1 text and resolves waits on it. */
export class Collector {
  text = "";
  #waiters: (() => void)[] = [];
  constructor(vm: VM, name = "serial0") {
    vm.console(name).onData((b) => {
      this.text += Buffer.from(b).toString("latin1");
      for (const w of [...this.#waiters]) w();
    });
  }
  /** Resolves when the text matches `re` (checked on every arrival); rejects after `ms`. */
  waitFor(re: RegExp, ms: number): Promise<RegExpExecArray> {
    return new Promise((resolve, reject) => {
      const check = (): boolean => {
        const m = re.exec(this.text);
        if (!m) return false;
        clearTimeout(t);
        this.#waiters = this.#waiters.filter((w) => w !== check);
        resolve(m);
        return true;
      };
      const t = setTimeout(() => {
        this.#waiters = this.#waiters.filter((w) => w !== check);
        reject(new Error(`timed out after ${String(ms)} ms waiting for ${String(re)}; output ends with: ${JSON.stringify(this.text.slice(-600))}`));
      }, ms);
    t.unref(); // a wait lost to a race must not hold the process
      if (!check()) this.#waiters.push(check);
    });
  }
}

/**
 * Resolves when a state callback reports `state`; rejects after `ms`. Call it before the action
 * that leads there: it listens to the callbacks (which arrive in order with the exit status and
 * console output), not to `vm.state` (shared memory, which can be ahead of them).
 */
export function watchState(vm: VM, state: number, ms: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const cb = (_v: unknown, s: number): void => {
      if (s !== state) return;
      clearTimeout(t);
      vm.offState(cb);
      resolve();
    };
    const t = setTimeout(() => {
      vm.offState(cb);
      reject(new Error(`timed out after ${String(ms)} ms waiting for state ${String(state)}; state is ${vm.stateName}`));
    }, ms);
    t.unref(); // a wait lost to a race must not hold the process
    vm.onState(cb);
  });
}

/**
 * A promise that rejects when the VM enters GURU_MEDITATION (with the error reports seen so far)
 * and never resolves: race a wait against it to fail at once instead of timing out.
 */
export function guru(vm: VM): Promise<never> {
  const errors: string[] = [];
  vm.onError((_v, _u, _rc, _pos, _fmt, _args, message) => errors.push(message));
  return new Promise((_resolve, reject) => {
    vm.onState((_v, s) => {
      if (s === VMSTATE.GURU_MEDITATION) reject(new Error(`the VM entered GURU_MEDITATION: ${errors.join("; ")}`));
    });
  });
}

/** One STAM value by exact name (undefined when absent). */
export async function stat(vm: VM, name: string): Promise<number | undefined> {
  const all = await vm.stats(name);
  return all.find((e) => e.name === name)?.value;
}

/** Powers off (when not OFF already) and destroys. */
export async function shutdown(vm: VM): Promise<void> {
  if (!vm.alive) return;
  if (vm.state !== VMSTATE.OFF && vm.state !== VMSTATE.CREATED) await vm.powerOff();
  await vm.destroy();
}
