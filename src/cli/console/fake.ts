/** A guest console stand-in for the console tests: records what the guest received, emits output. */
import type { GuestConsole } from "./terminal.ts";

export class FakeGuestConsole implements GuestConsole {
  readonly received: number[] = [];
  readonly #listeners = new Set<(b: Uint8Array) => void>();
  onData(cb: (bytes: Uint8Array) => void): () => void {
    this.#listeners.add(cb);
    return () => this.#listeners.delete(cb);
  }
  write(bytes: Uint8Array): void {
    this.received.push(...bytes);
  }
  /** The guest prints. */
  emit(s: string | Uint8Array): void {
    const b = typeof s === "string" ? new TextEncoder().encode(s) : s;
    for (const l of this.#listeners) l(b);
  }
  get listeners(): number {
    return this.#listeners.size;
  }
  get text(): string {
    return String.fromCharCode(...this.received);
  }
}
