/**
 * TM: the virtual clock. Time is in nanoseconds as a JS number (2^53 ns is about 104 days).
 *
 * The virtual clock runs with host monotonic time while the VM runs and stands still while it is
 * suspended (VirtualBox's TMVirtual). Tests use ManualClock and step it by hand (QEMU qtest).
 */

/** A source of virtual time. */
export interface Clock {
  /** Current virtual time in ns. */
  now(): number;
}

/** Host-time-driven virtual clock that can be paused (suspend) and set (load). */
export class VirtualClock implements Clock {
  /** Virtual ns at the moment of the last resume (or while paused, the frozen value). */
  #base = 0;
  /** Host ns at the last resume, or -1 while paused. */
  #hostAtResume = -1;

  /** Current virtual time in ns. */
  now(): number {
    if (this.#hostAtResume < 0) return this.#base;
    return this.#base + (hostNs() - this.#hostAtResume);
  }

  /** True while the clock runs. */
  get running(): boolean {
    return this.#hostAtResume >= 0;
  }

  /** Starts the clock (power on, resume). */
  resume(): void {
    if (this.#hostAtResume < 0) this.#hostAtResume = hostNs();
  }

  /** Freezes the clock (suspend). */
  pause(): void {
    if (this.#hostAtResume >= 0) {
      this.#base = this.now();
      this.#hostAtResume = -1;
    }
  }

  /** Sets the virtual time (load of a saved state). Keeps running if it was. */
  set(ns: number): void {
    const wasRunning = this.running;
    this.#base = ns;
    this.#hostAtResume = wasRunning ? hostNs() : -1;
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
