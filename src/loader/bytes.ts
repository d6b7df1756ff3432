/**
 * Little-endian field access over byte arrays, for the loaders' headers and the structures they
 * build in guest memory (boot_params, multiboot info, ELF headers, cpio).
 */

/** A DataView over exactly the bytes of `b`. */
function view(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

/** Reads an unsigned byte; RangeError past the end. */
export function u8(b: Uint8Array, off: number): number {
  return view(b).getUint8(off);
}

/** Reads an unsigned 16-bit little-endian value; RangeError past the end. */
export function u16(b: Uint8Array, off: number): number {
  return view(b).getUint16(off, true);
}

/** Reads an unsigned 32-bit little-endian value; RangeError past the end. */
export function u32(b: Uint8Array, off: number): number {
  return view(b).getUint32(off, true);
}

/** Reads an unsigned 64-bit little-endian value as a number (exact up to 2^53). */
export function u64(b: Uint8Array, off: number): number {
  const v = view(b);
  return v.getUint32(off, true) + v.getUint32(off + 4, true) * 0x1_0000_0000;
}

/** Writes a byte. */
export function put8(b: Uint8Array, off: number, value: number): void {
  view(b).setUint8(off, value & 0xff);
}

/** Writes 16 bits little-endian. */
export function put16(b: Uint8Array, off: number, value: number): void {
  view(b).setUint16(off, value & 0xffff, true);
}

/** Writes 32 bits little-endian (value taken modulo 2^32). */
export function put32(b: Uint8Array, off: number, value: number): void {
  view(b).setUint32(off, value >>> 0, true);
}

/** Writes 64 bits little-endian from a non-negative safe integer. */
export function put64(b: Uint8Array, off: number, value: number): void {
  const v = view(b);
  v.setUint32(off, value % 0x1_0000_0000, true);
  v.setUint32(off + 4, Math.floor(value / 0x1_0000_0000), true);
}

/** ASCII/UTF-8 bytes of a string followed by a NUL. */
export function cString(s: string): Uint8Array {
  const enc = new TextEncoder().encode(s);
  const out = new Uint8Array(enc.length + 1);
  out.set(enc);
  return out;
}

/** Rounds up to a multiple of `align` (a power of two or any positive integer). */
export function alignUp(v: number, align: number): number {
  return Math.ceil(v / align) * align;
}

/** Rounds down to a multiple of `align`. */
export function alignDown(v: number, align: number): number {
  return Math.floor(v / align) * align;
}

/** "0x…" formatting for messages. */
export function hex(v: number): string {
  return `0x${v.toString(16)}`;
}
