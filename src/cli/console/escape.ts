/**
 * The Ctrl-A escape of `boxvm run`'s console (as `qemu -nographic` has it): Ctrl-A followed by a
 * command key acts on the VM instead of reaching the guest; Ctrl-A Ctrl-A sends one Ctrl-A.
 *
 *   Ctrl-A x   power off and exit          Ctrl-A s   suspend, save the state, exit
 *   Ctrl-A r   reset the machine           Ctrl-A p   pause / continue
 *   Ctrl-A h   this help                   Ctrl-A Ctrl-A   a literal Ctrl-A
 * Any other key after Ctrl-A is dropped (with the help shown), as QEMU does with unknown commands.
 */

/** The escape byte (Ctrl-A). */
export const ESCAPE = 0x01;

/** Console commands. */
export type EscapeCommand = "exit" | "save" | "reset" | "pause" | "help";

/** The keys (case-insensitive) and what they do. */
export const ESCAPE_KEYS: Readonly<Record<string, EscapeCommand>> = {
  x: "exit",
  s: "save",
  r: "reset",
  p: "pause",
  h: "help",
  "?": "help",
};

/** The help text (lines). */
export const ESCAPE_HELP = [
  "Ctrl-A x    power off the VM and exit",
  "Ctrl-A s    suspend, save the state to a file (printed), exit; resume with boxvm run --load <file>",
  "Ctrl-A r    reset the machine",
  "Ctrl-A p    pause / continue the VM",
  "Ctrl-A h    this help",
  "Ctrl-A Ctrl-A  send Ctrl-A to the guest",
];

/** One piece of a filtered input stream. */
export type EscapeEvent = { kind: "data"; bytes: Uint8Array } | { kind: "command"; command: EscapeCommand } | { kind: "unknown"; key: number };

/**
 * Splits terminal input into guest bytes and console commands. Keeps the Ctrl-A state across
 * calls (a Ctrl-A at the end of one chunk applies to the first byte of the next).
 */
export class EscapeFilter {
  #pending = false;

  /** The events of one chunk of input, in order. */
  push(input: Uint8Array): EscapeEvent[] {
    const out: EscapeEvent[] = [];
    let run: number[] = [];
    const flush = (): void => {
      if (run.length > 0) out.push({ kind: "data", bytes: Uint8Array.from(run) });
      run = [];
    };
    for (const b of input) {
      if (this.#pending) {
        this.#pending = false;
        if (b === ESCAPE) {
          run.push(ESCAPE);
          continue;
        }
        flush();
        const cmd = ESCAPE_KEYS[String.fromCharCode(b).toLowerCase()];
        out.push(cmd ? { kind: "command", command: cmd } : { kind: "unknown", key: b });
        continue;
      }
      if (b === ESCAPE) {
        this.#pending = true;
        continue;
      }
      run.push(b);
    }
    flush();
    return out;
  }
}
