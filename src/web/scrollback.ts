/**
 * The server-side scrollback of a console: the last `capacity` bytes of guest output, so that a
 * tab opened later (or reopened) starts with what the guest printed before it came.
 */
export class Scrollback {
  readonly capacity: number;
  readonly #buf: Uint8Array;
  /** Index of the next byte written. */
  #head = 0;
  /** Bytes held (≤ capacity). */
  #size = 0;
  /** Bytes ever appended (to tell how much fell off the start). */
  #total = 0;

  constructor(capacity: number) {
    if (!Number.isInteger(capacity) || capacity <= 0)
      throw new RangeError(`Scrollback capacity must be a positive integer: ${String(capacity)}`);
    this.capacity = capacity;
    this.#buf = new Uint8Array(capacity);
  }

  /** Appends bytes; the oldest fall off when it is full. */
  append(bytes: Uint8Array): void {
    let src = bytes;
    if (src.length >= this.capacity) src = src.subarray(src.length - this.capacity);
    this.#total += bytes.length;
    const first = Math.min(src.length, this.capacity - this.#head);
    this.#buf.set(src.subarray(0, first), this.#head);
    if (first < src.length) this.#buf.set(src.subarray(first), 0);
    this.#head = (this.#head + src.length) % this.capacity;
    this.#size = Math.min(this.capacity, this.#size + src.length);
  }

  /** Everything held, oldest first (a copy). */
  contents(): Uint8Array {
    const out = new Uint8Array(this.#size);
    const start = (this.#head - this.#size + this.capacity) % this.capacity;
    const first = Math.min(this.#size, this.capacity - start);
    out.set(this.#buf.subarray(start, start + first), 0);
    if (first < this.#size) out.set(this.#buf.subarray(0, this.#size - first), first);
    return out;
  }

  /** Bytes appended since creation. */
  get total(): number {
    return this.#total;
  }

  /** Bytes lost off the start. */
  get dropped(): number {
    return this.#total - this.#size;
  }

  /** Empties it (a recreated VM starts a new console). */
  clear(): void {
    this.#head = 0;
    this.#size = 0;
  }
}
