/**
 * The non-last filters boxvm's XZ decoder undoes, in place over one block's output:
 *
 * x86 BCJ (filter 0x04): the encoder rewrote the 32-bit relative operand of CALL (E8) and JMP
 * (E9) instructions into an absolute address (operand + address of the next instruction) so that
 * repeated calls to one function compress better; decoding subtracts again. Only operands whose
 * most significant byte is 0x00 or 0xFF (a near target) are touched. Because E8/E9 bytes also
 * occur inside other instructions' operands, the filter remembers which of the last three bytes
 * were E8/E9 bytes that it left alone (a 3-bit mask) and uses it both to skip candidates that
 * cannot be opcodes and, where such a byte falls inside the operand being converted, to fold the
 * value again until that byte is not 0x00/0xFF, so that encoding is reversible. Positions count
 * from the start of the block plus the filter's start offset (property, default 0); the last four
 * bytes of a block can never start a conversion.
 *
 * Delta (filter 0x03): out[i] += out[i - distance], distance 1..256, per block.
 */
import { fail } from "./errors.ts";

/** For a mask of recent untouched E8/E9 bytes: may a candidate still be converted. */
const MASK_OK = [true, true, true, false, true, false, false, false];
/** For a mask: which byte of the operand (counted from its most significant) to test. */
const MASK_BYTE = [0, 1, 2, 2, 3, 3, 3, 3];

function isNearByte(b: number): boolean {
  return b === 0x00 || b === 0xff;
}

/** Undoes the x86 BCJ filter over buf[start, end); `startOffset` is the filter's property. */
export function x86Decode(buf: Uint8Array, start: number, end: number, startOffset: number): void {
  const size = end - start;
  if (size < 5) return;
  let mask = 0;
  let last = -1; // index (relative to start) of the last E8/E9 byte looked at
  let i = 0;
  const stop = size - 4;
  while (i < stop) {
    const op = buf[start + i]!;
    if ((op & 0xfe) !== 0xe8) {
      i++;
      continue;
    }
    const gap = i - last;
    if (gap > 3) {
      mask = 0;
    } else {
      mask = (mask << (gap - 1)) & 7;
      if (mask !== 0) {
        const probe = buf[start + i + 4 - MASK_BYTE[mask]!]!;
        if (!MASK_OK[mask] || isNearByte(probe)) {
          last = i;
          mask = ((mask << 1) & 7) | 1;
          i++;
          continue;
        }
      }
    }
    last = i;
    const o = start + i;
    if (!isNearByte(buf[o + 4]!)) {
      mask = ((mask << 1) & 7) | 1;
      i++;
      continue;
    }
    let value = (buf[o + 1]! | (buf[o + 2]! << 8) | (buf[o + 3]! << 16) | (buf[o + 4]! << 24)) >>> 0;
    const next = (startOffset + i + 5) >>> 0;
    let rel: number;
    for (;;) {
      rel = (value - next) >>> 0;
      if (mask === 0) break;
      const shift = 24 - MASK_BYTE[mask]! * 8;
      if (!isNearByte((rel >>> shift) & 0xff)) break;
      value = (rel ^ (2 ** (shift + 8) - 1)) >>> 0;
    }
    buf[o + 1] = rel & 0xff;
    buf[o + 2] = (rel >>> 8) & 0xff;
    buf[o + 3] = (rel >>> 16) & 0xff;
    buf[o + 4] = (rel >>> 24) & 1 ? 0xff : 0x00;
    i += 5;
  }
}

/** Undoes the Delta filter over buf[start, end) with the given distance (1..256). */
export function deltaDecode(buf: Uint8Array, start: number, end: number, distance: number): void {
  if (distance < 1 || distance > 256) fail(`XZ: invalid Delta distance ${String(distance)}`);
  for (let i = start + distance; i < end; i++) buf[i] = (buf[i]! + buf[i - distance]!) & 0xff;
}
