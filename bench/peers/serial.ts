/**
 * The guest side of a boot benchmark, the same for every VMM: a serial console (bytes out of the
 * guest, bytes into it), a watcher that waits for text in what the guest printed, and the fixed
 * workload (phases typed at the busybox prompt, each ending on a marker the guest echoes).
 */

/** A running guest's serial console, as each VMM adapter exposes it. */
export interface SerialPort {
  onData(cb: (bytes: Uint8Array) => void): void;
  write(text: string): void;
}

/** A guest started by a VMM adapter. `t0` is the power-on instant (performance.now()). */
export interface GuestRun {
  serial: SerialPort;
  t0: number;
  /** CPU seconds (user + system) used so far by what runs the guest (all its threads). */
  cpuSeconds(): number;
  /** cpuSeconds() at t0. */
  cpu0: number;
  /** Stops the guest and frees what the adapter started (idempotent). */
  stop(): Promise<void>;
}

/** This process's CPU seconds, all threads (for VMMs running in-process: boxvm's EMT, v86). */
export function processCpuSeconds(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

interface Waiter {
  text: string;
  from: number;
  /** Called with the offset just past the text. */
  resolve: (end: number) => void;
}

/** Collects a console's output as latin1 text and waits for text to appear in it. */
export class OutputWatch {
  #text = "";
  #pending: Waiter[] = [];

  constructor(port: SerialPort) {
    port.onData((bytes) => {
      this.#text += Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("latin1");
      this.#check();
    });
  }

  /** Everything received so far. */
  get text(): string {
    return this.#text;
  }

  #check(): void {
    const still: Waiter[] = [];
    for (const p of this.#pending) {
      const i = this.#text.indexOf(p.text, p.from);
      if (i >= 0) {
        // Resolved from the data callback itself: the time is taken as the bytes arrive.
        p.resolve(i + p.text.length);
      } else {
        still.push(p);
      }
    }
    this.#pending = still;
  }

  /**
   * Resolves with { end, at } when `text` occurs at or after offset `from`: end is the offset just
   * past it, at the performance.now() of the output chunk that completed it. Rejects after `ms`.
   */
  waitFor(text: string, from: number, ms: number): Promise<{ end: number; at: number }> {
    return new Promise((resolve, reject) => {
      const i = this.#text.indexOf(text, from);
      if (i >= 0) {
        resolve({ end: i + text.length, at: performance.now() });
        return;
      }
      const entry: Waiter = {
        text,
        from,
        resolve: (end: number): void => {
          clearTimeout(timer);
          resolve({ end, at: performance.now() });
        },
      };
      const timer = setTimeout(() => {
        this.#pending = this.#pending.filter((p) => p !== entry);
        const tail = this.#text.slice(-600);
        reject(
          new Error(
            `timed out after ${(ms / 1000).toFixed(0)} s waiting for ${JSON.stringify(text)}; the console ends with:\n${tail}`,
          ),
        );
      }, ms);
      this.#pending.push(entry);
    });
  }
}

/** The shell prompt of the initramfs (PS1='\w # ' in /). */
export const PROMPT = "/ # ";

/** One timed step of the workload: a command line typed at the prompt. */
export interface Phase {
  name: string;
  /** The command line (without the final CR). Its marker is printed by `echo DONE-$((n))`, so the echoed line never contains the marker itself. */
  line: string;
  /** The marker the guest prints when the phase is done. */
  marker: string;
  /** Checks what the guest printed between the line and the marker; returns a problem or null. */
  check(out: string): string | null;
}

/** md5 of 4 MiB of zero bytes. */
const ZERO_4M_MD5 = "b5cfa9d6c8febd618f91ac2843d50a1c";
/** The sum of i*i for i from 0 to 199999 (exact in a double, as busybox awk prints it). */
const AWK_SUM = "2666646666700000";

/** The fixed workload after the prompt, in order. */
export const PHASES: Phase[] = [
  {
    name: "md5sum 8 x 4 MiB",
    line: "for i in 1 2 3 4 5 6 7 8; do dd if=/dev/zero bs=1M count=4 2>/dev/null | md5sum; done; echo DONE-$((1))",
    marker: "DONE-1\r",
    check: (out) => {
      const n = out.split(ZERO_4M_MD5).length - 1;
      return n === 8 ? null : `expected 8 lines of ${ZERO_4M_MD5}, got ${String(n)}`;
    },
  },
  {
    name: "awk loop 200000",
    line: "awk 'BEGIN{s=0; for(i=0;i<200000;i++) s+=i*i; print s}'; echo DONE-$((2))",
    marker: "DONE-2\r",
    check: (out) => (out.includes(AWK_SUM) ? null : `expected ${AWK_SUM} in the output`),
  },
];

/** What one boot + workload measured (seconds; null where the run did not get), and problems seen. */
export interface RunResult {
  bootS: number | null;
  /** One per phase of PHASES. */
  phaseS: (number | null)[];
  /** CPU seconds of the VMM in the same intervals. */
  bootCpuS: number | null;
  phaseCpuS: (number | null)[];
  /** Wrong guest output (the times still count) and the error that ended the run early, if any. */
  problems: string[];
  error: string | null;
}

/**
 * Waits for the first prompt (boot time from `run.t0`), then runs each phase: the line is written
 * at once and timed until its marker is printed. A timeout ends the run with what was measured.
 */
export async function measureRun(run: GuestRun, bootMs: number, phaseMs: number, bootOnly = false): Promise<RunResult> {
  const r: RunResult = {
    bootS: null,
    phaseS: PHASES.map(() => null),
    bootCpuS: null,
    phaseCpuS: PHASES.map(() => null),
    problems: [],
    error: null,
  };
  const watch = new OutputWatch(run.serial);
  try {
    const boot = await watch.waitFor(PROMPT, 0, bootMs);
    r.bootS = (boot.at - run.t0) / 1000;
    r.bootCpuS = run.cpuSeconds() - run.cpu0;
    let pos = boot.end;
    for (const [i, p] of PHASES.entries()) {
      if (bootOnly) break;
      const from = watch.text.length;
      const c = run.cpuSeconds();
      const t = performance.now();
      run.serial.write(`${p.line}\r`);
      const done = await watch.waitFor(p.marker, Math.max(from, pos), phaseMs);
      r.phaseS[i] = (done.at - t) / 1000;
      r.phaseCpuS[i] = run.cpuSeconds() - c;
      const problem = p.check(watch.text.slice(from, done.end));
      if (problem !== null) r.problems.push(`${p.name}: ${problem}`);
      pos = (await watch.waitFor(PROMPT, done.end, phaseMs)).end;
    }
  } catch (e) {
    r.error = e instanceof Error ? e.message : String(e);
  }
  return r;
}
