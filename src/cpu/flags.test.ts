/**
 * Lazy flags against a slow reference (BigInt arithmetic on the exact sums), for ADD/ADC/SUB/SBB,
 * INC/DEC and logic results of every size, plus the condition codes built on them.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { ALL_ARITH, LZ_ADD, LZ_LOGIC, LZ_SUB, NO_CF, flushFlags, readFlags, setLazy, testCC } from "./flags.ts";
import { F, Slot } from "./state.ts";

const BITS = [8, 16, 32] as const;

/** Reference flags of a + b + cin (sub: a - b - cin) in `bits` bits. */
function reference(op: "add" | "sub" | "logic", bits: number, a: number, b: number, cin: number, r: number): number {
  const mask = (1n << BigInt(bits)) - 1n;
  const A = BigInt(a >>> 0) & mask;
  const B = BigInt(b >>> 0) & mask;
  const C = BigInt(cin);
  const sign = 1n << BigInt(bits - 1);
  let res: bigint;
  let f = 0;
  if (op === "logic") {
    res = BigInt(r >>> 0) & mask;
  } else if (op === "add") {
    const full = A + B + C;
    res = full & mask;
    if (full > mask) f |= F.CF;
    const sa = A >= sign ? A - (1n << BigInt(bits)) : A;
    const sb = B >= sign ? B - (1n << BigInt(bits)) : B;
    const sr = sa + sb + C;
    if (sr >= sign || sr < -sign) f |= F.OF;
    if (((A & 15n) + (B & 15n) + C) & 16n) f |= F.AF;
  } else {
    const full = A - B - C;
    res = full & mask;
    if (full < 0n) f |= F.CF;
    const sa = A >= sign ? A - (1n << BigInt(bits)) : A;
    const sb = B >= sign ? B - (1n << BigInt(bits)) : B;
    const sr = sa - sb - C;
    if (sr >= sign || sr < -sign) f |= F.OF;
    if ((A & 15n) - (B & 15n) - C < 0n) f |= F.AF;
  }
  if (res === 0n) f |= F.ZF;
  if (res & sign) f |= F.SF;
  let p = Number(res & 0xffn);
  p ^= p >> 4;
  p ^= p >> 2;
  p ^= p >> 1;
  if ((p & 1) === 0) f |= F.PF;
  return f;
}

function state(): Int32Array {
  const i32 = new Int32Array(128);
  i32[Slot.EFLAGS] = 2;
  return i32;
}

test("lazy ADD/ADC/SUB/SBB flags match the reference for 8/16/32 bits", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 2 }),
      fc.integer(),
      fc.integer(),
      fc.boolean(),
      fc.boolean(),
      (size, a, b, carry, sub) => {
        const bits = BITS[size]!;
        const m = bits === 32 ? -1 : (1 << bits) - 1;
        a &= m;
        b &= m;
        const c = carry ? 1 : 0;
        const r = sub ? (a - b - c) | 0 : (a + b + c) | 0;
        const i32 = state();
        setLazy(i32, (sub ? LZ_SUB : LZ_ADD) | size, r, a, b, ALL_ARITH);
        const want = reference(sub ? "sub" : "add", bits, a, b, c, r);
        assert.equal(
          readFlags(i32) & ALL_ARITH,
          want,
          `${sub ? "sub" : "add"}${String(bits)} ${String(a)} ${String(b)} c=${String(c)}`,
        );
      },
    ),
    { numRuns: 20000, seed: 686 },
  );
});

test("edge operands (0, 1, sign boundaries, all ones) for every size and carry", () => {
  for (let size = 0; size < 3; size++) {
    const bits = BITS[size]!;
    const m = bits === 32 ? -1 : (1 << bits) - 1;
    const sign = bits === 32 ? 0x80000000 | 0 : 1 << (bits - 1);
    const vals = [0, 1, 2, 0xf, 0x10, sign - 1, sign, sign + 1, m - 1, m].map((v) => v & m);
    for (const a of vals)
      for (const b of vals)
        for (const c of [0, 1])
          for (const sub of [false, true]) {
            const r = sub ? (a - b - c) | 0 : (a + b + c) | 0;
            const i32 = state();
            setLazy(i32, (sub ? LZ_SUB : LZ_ADD) | size, r, a, b, ALL_ARITH);
            assert.equal(readFlags(i32) & ALL_ARITH, reference(sub ? "sub" : "add", bits, a, b, c, r));
          }
  }
});

test("INC/DEC keep CF; logic results clear CF/OF/AF; flushFlags materializes", () => {
  const i32 = state();
  i32[Slot.EFLAGS] = 2 | F.CF;
  setLazy(i32, LZ_ADD | 0, 0x100, 0xff, 1, NO_CF); // inc al from 0xff
  assert.equal(readFlags(i32) & ALL_ARITH, F.CF | F.ZF | F.AF | F.PF);
  setLazy(i32, LZ_LOGIC | 2, 0x80000000 | 0, 0, 0, ALL_ARITH);
  assert.equal(readFlags(i32) & ALL_ARITH, F.SF | F.PF);
  const v = flushFlags(i32);
  assert.equal(i32[Slot.EFLAGS], v);
  assert.equal(readFlags(i32), v);
});

test("condition codes agree with the materialized flags", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 2 }),
      fc.integer(),
      fc.integer(),
      fc.boolean(),
      fc.integer({ min: 0, max: 15 }),
      (size, a, b, sub, cc) => {
        const bits = BITS[size]!;
        const m = bits === 32 ? -1 : (1 << bits) - 1;
        a &= m;
        b &= m;
        const i32 = state();
        setLazy(i32, (sub ? LZ_SUB : LZ_ADD) | size, sub ? (a - b) | 0 : (a + b) | 0, a, b, ALL_ARITH);
        const f = readFlags(i32);
        const cf = (f & F.CF) !== 0;
        const zf = (f & F.ZF) !== 0;
        const sf = (f & F.SF) !== 0;
        const of = (f & F.OF) !== 0;
        const pf = (f & F.PF) !== 0;
        const base = [of, cf, zf, cf || zf, sf, pf, sf !== of, zf || sf !== of][cc >> 1]!;
        assert.equal(testCC(i32, cc), (cc & 1) === 0 ? base : !base);
      },
    ),
    { numRuns: 5000, seed: 6 },
  );
});
