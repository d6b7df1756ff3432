/**
 * CRC-32 (ISO-HDLC: reflected polynomial 0xEDB88320, init and final xor 0xFFFFFFFF), the one zlib,
 * PNG and gzip use. The bulk work is Node's native `zlib.crc32`; this file adds `crc32Combine`, which
 * gives the CRC of a concatenation A‖B from crc(A), crc(B) and |B| without touching the bytes again.
 * That lets the saved-state writer and reader keep a CRC over the whole file while hashing each RAM
 * payload only once.
 *
 * Why combining works: the CRC register is linear over GF(2). With the register starting at s and the
 * message M, the final register is s·x^(8|M|) ⊕ L(M) (mod P), L linear. Both the 0xFFFFFFFF preset and
 * the final xor cancel out, so crc(A‖B) = crc(A)·x^(8|B|) ⊕ crc(B) (mod P).
 *
 * Representation: a 32-bit word holds a polynomial of degree < 32 bit-reflected, i.e. bit 31 is the
 * coefficient of x^0 and bit 0 the coefficient of x^31 (the order in which a reflected CRC shifts).
 */
import { crc32 as zlibCrc32 } from "node:zlib";

/** The generator polynomial without its x^32 term, reflected. */
const POLY_REFLECTED = 0xedb88320;
/** x^0 in the reflected representation. */
const ONE = 0x80000000;

/** CRC-32 of `data`, continuing from `prev` (the CRC of the bytes before it; 0 to start). */
export function crc32(data: Uint8Array, prev = 0): number {
  return zlibCrc32(data, prev) >>> 0;
}

/** a·b mod P, both reflected. */
function mulModP(a: number, b: number): number {
  let product = 0;
  // Walk a's terms from x^0 (bit 31) up to x^31 (bit 0), keeping bx = b·x^i mod P.
  let bx = b >>> 0;
  for (let bit = ONE; bit !== 0; bit >>>= 1) {
    if ((a & bit) !== 0) product ^= bx;
    // bx·x: shifting right raises every power by one; the x^31 term (bit 0) becomes x^32 ≡ POLY.
    bx = (bx & 1) !== 0 ? (bx >>> 1) ^ POLY_REFLECTED : bx >>> 1;
  }
  return product >>> 0;
}

/** X2K[k] = x^(2^k) mod P, for k = 0..63 (enough for any length below 2^61 bits). */
const X2K: number[] = [];
{
  let p = ONE >>> 1; // x^1
  for (let k = 0; k < 64; k++) {
    X2K.push(p);
    p = mulModP(p, p);
  }
}

/** x^(8·n) mod P: the factor that shifts a CRC over n bytes. */
export function xPow8n(n: number): number {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`xPow8n: bad length ${String(n)}`);
  let result = ONE;
  // 8n = n·2^3: square-and-multiply over the bits of n, starting at x^(2^3).
  let k = 3;
  let m = n;
  while (m > 0) {
    if (m % 2 === 1) result = mulModP(result, X2K[k]!);
    m = Math.floor(m / 2);
    k++;
  }
  return result;
}

/** The CRC-32 of A‖B, given crcA = crc32(A), crcB = crc32(B) and lenB = |B| in bytes. */
export function crc32Combine(crcA: number, crcB: number, lenB: number): number {
  if (lenB === 0) return crcA >>> 0;
  return (mulModP(crcA >>> 0, xPow8n(lenB)) ^ crcB) >>> 0;
}

/** A running CRC over a byte sequence that may be fed whole buffers or (crc, length) pairs. */
export class RunningCrc {
  #crc = 0;
  #length = 0;
  /** Hashes `data` and appends it. */
  update(data: Uint8Array): void {
    this.#crc = crc32(data, this.#crc);
    this.#length += data.length;
  }
  /** Appends a span whose CRC is already known (no bytes are read). */
  append(crc: number, length: number): void {
    this.#crc = crc32Combine(this.#crc, crc, length);
    this.#length += length;
  }
  /** The CRC of everything so far. */
  get value(): number {
    return this.#crc >>> 0;
  }
  /** The number of bytes so far. */
  get length(): number {
    return this.#length;
  }
}
