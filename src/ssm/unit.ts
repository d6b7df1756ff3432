/**
 * SSM unit data: what a component writes into and reads from its saved-state unit. The file format
 * around the units (header, unit framing, CRCs, RAM compression, streaming) lives in SsmFile.ts.
 *
 * All integers little-endian. u64 values are JS numbers up to 2^53 (or bigint through putU64Big).
 * Reading past the unit's end throws VERR_SSM_LOADED_TOO_MUCH; the loader checks that a unit's
 * reader ended exactly at its end (VERR_SSM_LOADED_TOO_LITTLE otherwise).
 */
import { VBoxError, Status } from "../vm/err.ts";

/** What a component's saveState() writes into. */
export class SsmUnitWriter {
  #buf = new Uint8Array(256);
  #dv = new DataView(this.#buf.buffer);
  #len = 0;

  #ensure(n: number): void {
    if (this.#len + n <= this.#buf.length) return;
    let cap = this.#buf.length * 2;
    while (cap < this.#len + n) cap *= 2;
    const nb = new Uint8Array(cap);
    nb.set(this.#buf.subarray(0, this.#len));
    this.#buf = nb;
    this.#dv = new DataView(nb.buffer);
  }
  putU8(v: number): void {
    this.#ensure(1);
    this.#buf[this.#len++] = v;
  }
  putBool(v: boolean): void {
    this.putU8(v ? 1 : 0);
  }
  putU16(v: number): void {
    this.#ensure(2);
    this.#dv.setUint16(this.#len, v, true);
    this.#len += 2;
  }
  putU32(v: number): void {
    this.#ensure(4);
    this.#dv.setUint32(this.#len, v >>> 0, true);
    this.#len += 4;
  }
  putI32(v: number): void {
    this.#ensure(4);
    this.#dv.setInt32(this.#len, v | 0, true);
    this.#len += 4;
  }
  /** A non-negative integer up to 2^53 as 8 bytes. */
  putU64(v: number): void {
    if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`putU64: not a safe unsigned integer: ${String(v)}`);
    this.putU64Big(BigInt(v));
  }
  putU64Big(v: bigint): void {
    this.#ensure(8);
    this.#dv.setBigUint64(this.#len, BigInt.asUintN(64, v), true);
    this.#len += 8;
  }
  putF64(v: number): void {
    this.#ensure(8);
    this.#dv.setFloat64(this.#len, v, true);
    this.#len += 8;
  }
  /** Bytes with a u32 length prefix. */
  putBytes(b: Uint8Array): void {
    this.putU32(b.length);
    this.putRaw(b);
  }
  /** Bytes with no length prefix (the reader must know the length). */
  putRaw(b: Uint8Array): void {
    this.#ensure(b.length);
    this.#buf.set(b, this.#len);
    this.#len += b.length;
  }
  /** A UTF-8 string with a u32 length prefix. */
  putString(s: string): void {
    this.putBytes(new TextEncoder().encode(s));
  }
  /** Bytes written so far. */
  get length(): number {
    return this.#len;
  }
  /** The unit's data (a copy). */
  finish(): Uint8Array {
    return this.#buf.slice(0, this.#len);
  }
}

/** What a component's loadState() reads from. */
export class SsmUnitReader {
  readonly #dv: DataView;
  #off = 0;
  /** The unit's bytes. */
  readonly data: Uint8Array;
  /** The unit name, for messages. */
  readonly unit: string;
  constructor(data: Uint8Array, unit = "unit") {
    this.data = data;
    this.unit = unit;
    this.#dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  }
  #need(n: number): number {
    if (this.#off + n > this.data.length) {
      throw new VBoxError(
        Status.VERR_SSM_LOADED_TOO_MUCH,
        `Saved state unit '${this.unit}': read past the end of the unit (offset ${String(this.#off)}, ${String(n)} bytes wanted, ${String(this.data.length)} in the unit)`,
      );
    }
    const o = this.#off;
    this.#off += n;
    return o;
  }
  getU8(): number {
    return this.data[this.#need(1)]!;
  }
  getBool(): boolean {
    const v = this.getU8();
    if (v > 1)
      throw new VBoxError(
        Status.VERR_SSM_DATA_UNIT_FORMAT_CHANGED,
        `Saved state unit '${this.unit}': bad boolean ${String(v)}`,
      );
    return v === 1;
  }
  getU16(): number {
    return this.#dv.getUint16(this.#need(2), true);
  }
  getU32(): number {
    return this.#dv.getUint32(this.#need(4), true);
  }
  getI32(): number {
    return this.#dv.getInt32(this.#need(4), true);
  }
  getU64(): number {
    const v = this.getU64Big();
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw new VBoxError(
        Status.VERR_SSM_DATA_UNIT_FORMAT_CHANGED,
        `Saved state unit '${this.unit}': u64 value too large`,
      );
    }
    return Number(v);
  }
  getU64Big(): bigint {
    return this.#dv.getBigUint64(this.#need(8), true);
  }
  getF64(): number {
    return this.#dv.getFloat64(this.#need(8), true);
  }
  /** Bytes written by putBytes (length-prefixed); maxLen guards against corrupt lengths. */
  getBytes(maxLen = this.remaining): Uint8Array {
    const n = this.getU32();
    if (n > maxLen) {
      throw new VBoxError(
        Status.VERR_SSM_DATA_UNIT_FORMAT_CHANGED,
        `Saved state unit '${this.unit}': byte string of ${String(n)} exceeds ${String(maxLen)}`,
      );
    }
    return this.getRaw(n);
  }
  /** n raw bytes (a copy). */
  getRaw(n: number): Uint8Array {
    const o = this.#need(n);
    return this.data.slice(o, o + n);
  }
  getString(maxLen = 65536): string {
    return new TextDecoder().decode(this.getBytes(maxLen));
  }
  /** Bytes left in the unit. */
  get remaining(): number {
    return this.data.length - this.#off;
  }
  /** Throws VERR_SSM_LOADED_TOO_LITTLE unless every byte was read. */
  expectEnd(): void {
    if (this.remaining !== 0) {
      throw new VBoxError(
        Status.VERR_SSM_LOADED_TOO_LITTLE,
        `Saved state unit '${this.unit}': ${String(this.remaining)} bytes left unread`,
      );
    }
  }
}
