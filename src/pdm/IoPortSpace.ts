/**
 * The 64 KiB I/O port space. Devices map handlers over port ranges; the bus splits or merges
 * accesses of widths the handler did not declare (QEMU's .impl, Halfix io_default_readw).
 * Unmapped ports read all ones and count as guest misuse; nothing a guest does here throws.
 */
import type { IoHandler } from "./types.ts";

/** Options of a port mapping. */
export interface IoPortMapOptions {
  /** The access widths the handler implements; others are split into bytes. Default [1, 2, 4]. */
  sizes?: readonly (1 | 2 | 4)[];
  /** A name for info and conflicts. */
  name?: string;
}

interface Range {
  base: number;
  count: number;
  handler: IoHandler;
  sizes: number; // bit mask: 1 | 2 | 4
  name: string;
}

const ONES = [0, 0xff, 0xffff, 0, 0xffffffff] as const;

/** The port space of one machine. */
export class IoPortSpace {
  /** Per port: index+1 into #ranges, 0 when unmapped. */
  readonly #map = new Uint16Array(0x10000);
  readonly #ranges: Range[] = [];
  /** Reads of unmapped ports. */
  unassignedReads = 0;
  /** Writes to unmapped ports. */
  unassignedWrites = 0;
  /** Optional trace of every access (debugging). */
  trace: ((dir: "in" | "out", port: number, size: number, value: number) => void) | null = null;

  /** Maps a handler over [base, base+count). Throws on overlap (a configuration error, not guest misuse). */
  map(base: number, count: number, handler: IoHandler, opts: IoPortMapOptions = {}): void {
    if (base < 0 || count <= 0 || base + count > 0x10000)
      throw new RangeError(`I/O port range out of bounds: 0x${base.toString(16)}+${String(count)}`);
    const name = opts.name ?? "io";
    for (let p = base; p < base + count; p++) {
      const cur = this.#map[p]!;
      if (cur !== 0) {
        throw new RangeError(`I/O port conflict at 0x${p.toString(16)}: ${name} and ${this.#ranges[cur - 1]!.name}`);
      }
    }
    let sizes = 0;
    for (const s of opts.sizes ?? [1, 2, 4]) sizes |= s;
    this.#ranges.push({ base, count, handler, sizes, name });
    const idx = this.#ranges.length;
    for (let p = base; p < base + count; p++) this.#map[p] = idx;
  }

  /** Removes the mapping that starts at base. */
  unmap(base: number): void {
    const idx = this.#map[base]!;
    if (idx === 0) return;
    const r = this.#ranges[idx - 1]!;
    for (let p = r.base; p < r.base + r.count; p++) if (this.#map[p] === idx) this.#map[p] = 0;
  }

  /** IN: reads `size` bytes at a port. Returns an unsigned value. */
  read(port: number, size: 1 | 2 | 4): number {
    port &= 0xffff;
    const idx = this.#map[port]!;
    let v: number;
    if (idx === 0) {
      if (size === 1) {
        this.unassignedReads++;
        v = 0xff;
      } else v = this.#splitRead(port, size);
    } else {
      const r = this.#ranges[idx - 1]!;
      if (r.sizes & size && port + size <= r.base + r.count) v = r.handler.read(port - r.base, size);
      else if (size === 1) v = r.handler.read(port - r.base, 1);
      else v = this.#splitRead(port, size);
    }
    v = size === 4 ? v >>> 0 : v & ONES[size];
    this.trace?.("in", port, size, v);
    return v;
  }

  /** OUT: writes `size` bytes at a port. */
  write(port: number, value: number, size: 1 | 2 | 4): void {
    port &= 0xffff;
    value = size === 4 ? value >>> 0 : value & ONES[size];
    this.trace?.("out", port, size, value);
    const idx = this.#map[port]!;
    if (idx === 0) {
      if (size === 1) this.unassignedWrites++;
      else this.#splitWrite(port, value, size);
      return;
    }
    const r = this.#ranges[idx - 1]!;
    if (r.sizes & size && port + size <= r.base + r.count) r.handler.write(port - r.base, value, size);
    else if (size === 1) r.handler.write(port - r.base, value, 1);
    else this.#splitWrite(port, value, size);
  }

  #splitRead(port: number, size: 2 | 4): number {
    let v = 0;
    for (let i = 0; i < size; i++) v |= this.read((port + i) & 0xffff, 1) << (8 * i);
    return v >>> 0;
  }

  #splitWrite(port: number, value: number, size: 2 | 4): void {
    for (let i = 0; i < size; i++) this.write((port + i) & 0xffff, (value >>> (8 * i)) & 0xff, 1);
  }

  /** The mapped ranges (for info). */
  ranges(): readonly { base: number; count: number; name: string }[] {
    return this.#ranges;
  }
}
