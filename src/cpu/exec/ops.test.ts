/**
 * 32-bit arithmetic helpers against slow BigInt references (the SST vectors cover 8/16 bits only):
 * 64-bit multiply, 64/32 divide, shifts and rotates of every size with their defined flags.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { Cpu } from "../cpu.ts";
import { F } from "../state.ts";
import { PhysMem } from "../../mem/PhysMem.ts";
import { IoPortSpace } from "../../pdm/IoPortSpace.ts";
import { IrqRouter } from "../../pdm/IrqLine.ts";
import { ManualClock } from "../../tm/VirtualClock.ts";
import { div64, divQ, divR, idiv64, imul32, mul32, mulHi, mulLo, shift } from "./ops.ts";

const u = (v: number): bigint => BigInt(v >>> 0);
const s = (v: number): bigint => BigInt(v | 0);

test("mul32/imul32 give the exact 64-bit product", () => {
  fc.assert(
    fc.property(fc.integer(), fc.integer(), (a, b) => {
      mul32(a, b);
      const p = u(a) * u(b);
      assert.equal((u(mulHi) << 32n) | u(mulLo), p);
      imul32(a, b);
      const q = BigInt.asUintN(64, s(a) * s(b));
      assert.equal((u(mulHi) << 32n) | u(mulLo), q);
    }),
    { numRuns: 20000, seed: 32 },
  );
  for (const [a, b] of [
    [-1, -1],
    [0x80000000, 0x80000000],
    [0x80000000, -1],
    [0x7fffffff, 0x7fffffff],
  ] as const) {
    imul32(a, b);
    assert.equal((u(mulHi) << 32n) | u(mulLo), BigInt.asUintN(64, s(a) * s(b)));
  }
});

test("div64/idiv64 match BigInt division, with #DE on overflow and zero", () => {
  fc.assert(
    fc.property(fc.integer(), fc.integer(), fc.integer(), (hi, lo, d) => {
      const n = (u(hi) << 32n) | u(lo);
      const ok = div64(hi, lo, d);
      if (d === 0 || n / u(d) > 0xffffffffn) assert.equal(ok, false);
      else {
        assert.equal(ok, true);
        assert.equal(u(divQ), n / u(d));
        assert.equal(u(divR), n % u(d));
      }
      const sn = BigInt.asIntN(64, n);
      const iok = idiv64(hi, lo, d);
      if (d === 0) assert.equal(iok, false);
      else {
        const q = sn / s(d); // BigInt division truncates toward zero, like IDIV
        if (q > 0x7fffffffn || q < -0x80000000n) assert.equal(iok, false);
        else {
          assert.equal(iok, true);
          assert.equal(s(divQ), q);
          assert.equal(s(divR), sn % s(d));
        }
      }
    }),
    { numRuns: 20000, seed: 64 },
  );
  // small dividends (hi = sign extension) exercise the non-overflow path much more
  fc.assert(
    fc.property(fc.integer(), fc.integer(), (lo, d) => {
      const hi = lo < 0 ? -1 : 0;
      if (!idiv64(hi, lo, d)) {
        assert.ok(d === 0 || (lo === -0x80000000 && d === -1));
        return;
      }
      assert.equal(s(divQ), s(lo) / s(d));
      assert.equal(s(divR), s(lo) % s(d));
    }),
    { numRuns: 20000, seed: 65 },
  );
});

function cpu(): Cpu {
  return new Cpu({
    mem: new PhysMem(1 << 20),
    io: new IoPortSpace(),
    irqs: new IrqRouter(),
    clock: new ManualClock(),
    onTripleFault: () => undefined,
  });
}

/** Reference shift/rotate: result, CF, and OF where defined (count 1), for 8/16/32 bits. */
function refShift(
  k: number,
  bits: number,
  v: bigint,
  count: number,
  cf: bigint,
): { r: bigint; cf: bigint; of: bigint | null } {
  const mask = (1n << BigInt(bits)) - 1n;
  const msb = (x: bigint): bigint => (x >> BigInt(bits - 1)) & 1n;
  let r = v;
  let c = cf;
  switch (k) {
    case 0: // ROL
      for (let i = 0; i < count; i++) r = ((r << 1n) | msb(r)) & mask;
      c = r & 1n;
      return { r, cf: c, of: count === 1 ? msb(r) ^ c : null };
    case 1: // ROR
      for (let i = 0; i < count; i++) r = (r >> 1n) | ((r & 1n) << BigInt(bits - 1));
      c = msb(r);
      return { r, cf: c, of: count === 1 ? msb(r) ^ ((r >> BigInt(bits - 2)) & 1n) : null };
    case 2: // RCL
      for (let i = 0; i < count; i++) {
        const out = msb(r);
        r = ((r << 1n) | c) & mask;
        c = out;
      }
      return { r, cf: c, of: count === 1 ? msb(r) ^ c : null };
    case 3: // RCR
      for (let i = 0; i < count; i++) {
        const out = r & 1n;
        r = (r >> 1n) | (c << BigInt(bits - 1));
        c = out;
      }
      return { r, cf: c, of: count === 1 ? msb(r) ^ ((r >> BigInt(bits - 2)) & 1n) : null };
    case 4:
    case 6: // SHL
      for (let i = 0; i < count; i++) {
        c = msb(r);
        r = (r << 1n) & mask;
      }
      return { r, cf: count <= bits ? c : -1n, of: count === 1 ? msb(r) ^ c : null };
    case 5: // SHR
      for (let i = 0; i < count; i++) {
        c = r & 1n;
        r >>= 1n;
      }
      return { r, cf: count <= bits ? c : -1n, of: count === 1 ? msb(v) : null };
    default: {
      // SAR
      const sign = msb(v);
      for (let i = 0; i < count; i++) {
        c = r & 1n;
        r = (r >> 1n) | (sign << BigInt(bits - 1));
      }
      return { r, cf: c, of: count === 1 ? 0n : null };
    }
  }
}

test("shifts and rotates of 8/16/32 bits: result, CF and (count 1) OF", () => {
  const c = cpu();
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 7 }),
      fc.integer({ min: 0, max: 2 }),
      fc.integer(),
      fc.integer({ min: 1, max: 31 }),
      fc.boolean(),
      (k, sz, v, count, cin) => {
        const bits = sz === 0 ? 8 : sz === 1 ? 16 : 32;
        const m = sz === 2 ? -1 : (1 << bits) - 1;
        v &= m;
        c.setFlags(cin ? F.CF : 0);
        const r = shift(c, k, sz, v, count);
        const ref = refShift(k, bits, u(v) & ((1n << BigInt(bits)) - 1n), count, cin ? 1n : 0n);
        assert.equal(
          u(r) & ((1n << BigInt(bits)) - 1n),
          ref.r,
          `k=${String(k)} bits=${String(bits)} v=${String(v)} n=${String(count)}`,
        );
        const f = c.getFlags();
        if (ref.cf >= 0n) assert.equal(BigInt(f & F.CF), ref.cf, "CF");
        if (ref.of !== null) assert.equal((f & F.OF) !== 0 ? 1n : 0n, ref.of, "OF");
        if (k >= 4) {
          const res = u(r) & ((1n << BigInt(bits)) - 1n);
          assert.equal((f & F.ZF) !== 0, res === 0n, "ZF");
          assert.equal((f & F.SF) !== 0, ((res >> BigInt(bits - 1)) & 1n) === 1n, "SF");
        }
      },
    ),
    { numRuns: 30000, seed: 99 },
  );
});
