/**
 * TM: timers and the scheduler. A timer has a deadline on the virtual clock; the EMT loop asks the
 * scheduler for the earliest deadline (to bound CPU slices and halted sleeps) and runs what is due
 * (Halfix pc.c: the minimum over device deadlines).
 */
import type { Clock } from "./VirtualClock.ts";

/** A virtual-clock timer owned by a device or component. */
export class Timer {
  /** Absolute deadline in virtual ns, or -1 when stopped. */
  deadline = -1;
  readonly name: string;
  readonly scheduler: TimerScheduler;
  readonly callback: (now: number) => void;
  constructor(name: string, scheduler: TimerScheduler, callback: (now: number) => void) {
    this.name = name;
    this.scheduler = scheduler;
    this.callback = callback;
  }

  /** Arms the timer at an absolute virtual time. */
  setDeadline(ns: number): void {
    this.deadline = ns;
    this.scheduler.changed();
  }

  /** Arms the timer `ns` from now. */
  setRelative(ns: number): void {
    this.setDeadline(this.scheduler.clock.now() + ns);
  }

  /** Disarms the timer. */
  stop(): void {
    this.deadline = -1;
    this.scheduler.changed();
  }

  /** True while armed. */
  get active(): boolean {
    return this.deadline >= 0;
  }
}

/** The set of timers of one VM, on one clock. */
export class TimerScheduler {
  readonly #timers: Timer[] = [];
  #next = -1;
  #dirty = true;
  /** Called when a deadline changes (the EMT uses it to cut a CPU slice short). */
  onChange: (() => void) | null = null;

  readonly clock: Clock;
  constructor(clock: Clock) {
    this.clock = clock;
  }

  /** Creates a timer (stopped). */
  create(name: string, callback: (now: number) => void): Timer {
    const t = new Timer(name, this, callback);
    this.#timers.push(t);
    return t;
  }

  /** Removes a timer. */
  destroy(t: Timer): void {
    const i = this.#timers.indexOf(t);
    if (i >= 0) this.#timers.splice(i, 1);
    this.changed();
  }

  /** All timers (for saved state and info). */
  list(): readonly Timer[] {
    return this.#timers;
  }

  /** Marks the cached next deadline stale. */
  changed(): void {
    this.#dirty = true;
    this.onChange?.();
  }

  /** The earliest armed deadline in virtual ns, or -1 when none is armed. */
  nextDeadline(): number {
    if (this.#dirty) {
      let next = -1;
      for (const t of this.#timers) if (t.deadline >= 0 && (next < 0 || t.deadline < next)) next = t.deadline;
      this.#next = next;
      this.#dirty = false;
    }
    return this.#next;
  }

  /**
   * Runs every timer whose deadline is <= now, earliest first. A timer is disarmed before its
   * callback runs; the callback may re-arm it. Returns how many callbacks ran.
   */
  runDue(now = this.clock.now()): number {
    let ran = 0;
    for (let guard = 0; guard < 10000; guard++) {
      const next = this.nextDeadline();
      if (next < 0 || next > now) break;
      let due: Timer | null = null;
      for (const t of this.#timers)
        if (t.deadline >= 0 && t.deadline <= now && (!due || t.deadline < due.deadline)) due = t;
      if (!due) break;
      due.deadline = -1;
      this.#dirty = true;
      due.callback(now);
      ran++;
    }
    return ran;
  }
}
