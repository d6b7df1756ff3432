/**
 * A one-line progress bar for long CLI steps (image fetch): on a terminal it redraws in place
 * ("[#########-----------]  45%  downloading linux-image… 23.4/51.9 MB"), elsewhere it prints one
 * line per step so logs stay readable.
 */

/** Where the bar draws (stderr by default). */
export interface ProgressSink {
  write(s: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

/** Formats a byte count as "51.9 MB" (decimal, as apt prints sizes). */
export function formatBytes(n: number): string {
  if (n < 1000) return `${String(n)} B`;
  if (n < 1e6) return `${(n / 1e3).toFixed(1)} kB`;
  if (n < 1e9) return `${(n / 1e6).toFixed(1)} MB`;
  return `${(n / 1e9).toFixed(2)} GB`;
}

/** The bar text for a fraction 0..1 (no ANSI codes). */
export function renderBar(fraction: number, label: string, width = 24): string {
  const f = Math.min(1, Math.max(0, Number.isFinite(fraction) ? fraction : 0));
  const full = Math.round(f * width);
  return `[${"#".repeat(full)}${"-".repeat(width - full)}] ${String(Math.floor(f * 100)).padStart(3)}%  ${label}`;
}

/** A progress bar over a sequence of labelled steps, each with an optional sub-fraction. */
export class ProgressBar {
  readonly #out: ProgressSink;
  readonly #tty: boolean;
  #label = "";
  #lastDraw = 0;
  #drawn = false;

  constructor(out: ProgressSink = process.stderr) {
    this.#out = out;
    this.#tty = out.isTTY === true;
  }

  /** Starts a step: on a terminal redraws, elsewhere prints the label. */
  step(fraction: number, label: string): void {
    this.#label = label;
    if (this.#tty) this.#draw(fraction, label, true);
    else this.#out.write(`${label}\n`);
  }

  /** Updates the current step (terminal only; at most ~10 redraws a second). */
  update(fraction: number, detail = ""): void {
    if (!this.#tty) return;
    this.#draw(fraction, detail ? `${this.#label} ${detail}` : this.#label, false);
  }

  /** Ends the bar: a final 100% line on a terminal. */
  done(label: string): void {
    if (this.#tty) {
      this.#draw(1, label, true);
      this.#out.write("\n");
      this.#drawn = false;
    } else {
      this.#out.write(`${label}\n`);
    }
  }

  /** Clears the bar line (before printing an error). */
  clear(): void {
    if (this.#tty && this.#drawn) this.#out.write("\r\x1b[K");
    this.#drawn = false;
  }

  #draw(fraction: number, label: string, force: boolean): void {
    const now = Date.now();
    if (!force && now - this.#lastDraw < 100) return;
    this.#lastDraw = now;
    const cols = this.#out.columns ?? 80;
    let text = renderBar(fraction, label);
    if (text.length > cols - 1) text = text.slice(0, cols - 2) + "…";
    this.#out.write(`\r\x1b[K${text}`);
    this.#drawn = true;
  }
}
