/**
 * TM: the virtual clock. Time is in nanoseconds as a JS number (2^53 ns is about 104 days).
 *
 * Two clocks live here:
 * - the *real-time reference* (`realNow()`): host monotonic time that stands still while the VM is
 *   suspended (VirtualBox's TMVirtual);
 * - the *virtual time* (`now()`) the devices, timers and the TSC see. Without an instruction counter
 *   it is the real-time reference. With one (`attachCounter`, what the EMT does) it is counted in
 *   guest instructions, like QEMU's `-icount`: now = base + (instructions - countBase) × nsPerInsn.
 *   Inside a CPU slice time then moves with the guest's own progress, not with the host's, so the
 *   PIT, the RTC and the TSC agree to the instruction and no timer tick is ever lost however slow
 *   the interpreter or busy the host. The EMT keeps virtual time close to the real-time reference:
 *   it retunes nsPerInsn after each slice from the measured host speed and the lag
 *   (`realNow() - now()`), and while the guest halts it moves virtual time forward to the next
 *   deadline, but never past the real-time reference (it sleeps until the host catches up).
 *
 * Tests use ManualClock and step it by hand (QEMU qtest).
 */

/** A source of virtual time. */
export interface Clock {
  /** Current virtual time in ns. */
  now(): number;
}

/** The virtual clock of a VM: real-time reference plus (optionally) instruction-counted time. */
export class VirtualClock implements Clock {
  /** Reference ns at the moment of the last resume (or while paused, the frozen value). */
  #realBase = 0;
  /** Host ns at the last resume, or -1 while paused. */
  #hostAtResume = -1;
  /** Instruction-counted time: virtual ns at instruction count #countBase. */
  #base = 0;
  #countBase = 0;
  #nsPerInsn = 1;
  #counter: (() => number) | null = null;

  /** Current virtual time in ns. */
  now(): number {
    const c = this.#counter;
    if (c === null) return this.realNow();
    return this.#base + (c() - this.#countBase) * this.#nsPerInsn;
  }

  /** The real-time reference: host ns while running, frozen while paused. */
  realNow(): number {
    if (this.#hostAtResume < 0) return this.#realBase;
    return this.#realBase + (hostNs() - this.#hostAtResume);
  }

  /** How far virtual time is behind the real-time reference (ns; negative: ahead). */
  get lagNs(): number {
    return this.realNow() - this.now();
  }

  /** Virtual ns one instruction counts for (instruction-counted mode). */
  get nsPerInsn(): number {
    return this.#nsPerInsn;
  }

  /** True while the clock runs. */
  get running(): boolean {
    return this.#hostAtResume >= 0;
  }

  /**
   * Counts virtual time in instructions from now on: `counter` returns the CPU's retired
   * instruction count (exact whenever a device or RDTSC reads the clock).
   */
  attachCounter(counter: () => number, nsPerInsn: number): void {
    const t = this.now();
    this.#counter = counter;
    this.#base = t;
    this.#countBase = counter();
    this.#nsPerInsn = nsPerInsn;
  }

  /** Changes the ns per instruction from this instant on (time stays continuous). */
  setNsPerInsn(ns: number): void {
    const c = this.#counter;
    if (c === null || !(ns > 0)) return;
    this.#base = this.now();
    this.#countBase = c();
    this.#nsPerInsn = ns;
  }

  /**
   * Moves instruction-counted time forward to `ns` (an idle CPU: time passes without
   * instructions). Never moves it back. No-op without a counter.
   */
  advanceTo(ns: number): void {
    const c = this.#counter;
    if (c === null || ns <= this.now()) return;
    this.#base = ns;
    this.#countBase = c();
  }

  /**
   * Forgets lag beyond `maxNs`: the real-time reference is moved back so that virtual time is at
   * most `maxNs` behind it (a guest that cannot keep up then runs slow instead of racing through
   * timer ticks later to catch up). Returns the ns dropped.
   */
  limitLag(maxNs: number): number {
    const lag = this.lagNs;
    if (this.#counter === null || lag <= maxNs) return 0;
    this.#realBase -= lag - maxNs;
    return lag - maxNs;
  }

  /** Starts the clock (power on, resume). */
  resume(): void {
    if (this.#hostAtResume < 0) this.#hostAtResume = hostNs();
  }

  /** Freezes the clock (suspend). */
  pause(): void {
    if (this.#hostAtResume >= 0) {
      this.#realBase = this.realNow();
      this.#hostAtResume = -1;
    }
  }

  /** Sets the virtual time and the real-time reference (load of a saved state). Keeps running if it was. */
  set(ns: number): void {
    const wasRunning = this.running;
    this.#realBase = ns;
    this.#hostAtResume = wasRunning ? hostNs() : -1;
    this.#base = ns;
    if (this.#counter !== null) this.#countBase = this.#counter();
  }
}

/** A clock that moves only when told to: for device tests. */
export class ManualClock implements Clock {
  #now = 0;
  constructor(start = 0) {
    this.#now = start;
  }
  now(): number {
    return this.#now;
  }
  /** Moves time forward by ns. */
  step(ns: number): void {
    this.#now += ns;
  }
  /** Sets the time. */
  set(ns: number): void {
    this.#now = ns;
  }
}

const hr = process.hrtime.bigint;
const t0 = hr();
/** Host monotonic time in ns since module load (a safe integer for centuries). */
export function hostNs(): number {
  return Number(hr() - t0);
}
