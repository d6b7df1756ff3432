/**
 * x87 tests: exec() driven directly with memory operands in guest RAM (flat DS, paging off).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { Cpu } from "./cpu.ts";
import { CR0, F, SReg, Slot, Vec } from "./state.ts";
import { PhysMem } from "../mem/PhysMem.ts";
import { IoPortSpace } from "../pdm/IoPortSpace.ts";
import { IrqRouter } from "../pdm/IrqLine.ts";
import { ManualClock } from "../tm/VirtualClock.ts";

const DS = SReg.DS;
const A = 0x1000; // scratch operand
const A2 = 0x2000; // second scratch area (FSAVE images)

interface Box {
  cpu: Cpu;
  mem: PhysMem;
  irqs: IrqRouter;
  dv: DataView;
}

function box(): Box {
  const mem = new PhysMem(1 << 20, new ArrayBuffer(1 << 20));
  const irqs = new IrqRouter();
  const cpu = new Cpu({ mem, io: new IoPortSpace(), irqs, clock: new ManualClock(0), onTripleFault: () => {} });
  cpu.s.segBase[DS] = 0;
  cpu.s.segLimit[DS] = 0xfffff;
  cpu.i32[Slot.CR0] = CR0.ET | CR0.NE;
  cpu.faulted = false;
  return { cpu, mem, irqs, dv: new DataView(mem.ram.buffer, mem.ram.byteOffset, mem.ram.byteLength) };
}

/** Register form. */
function r(b: Box, op: number, modrm: number): void {
  b.cpu.fpu.exec(op, modrm, -1, 0);
}
/** Memory form with /reg at address a. */
function m(b: Box, op: number, reg: number, a = A): void {
  b.cpu.fpu.exec(op, (reg << 3) | 6, DS, a);
}
const sw = (b: Box): number => b.cpu.fpu.sw;
const top = (b: Box): number => (sw(b) >>> 11) & 7;

function ld(b: Box, x: number): void {
  b.dv.setFloat64(A, x, true);
  m(b, 0xdd, 0);
}
function st(b: Box): number {
  m(b, 0xdd, 3);
  return b.dv.getFloat64(A, true);
}
function ld80(b: Box, se: number, hi: number, lo: number): void {
  b.dv.setUint32(A, lo >>> 0, true);
  b.dv.setUint32(A + 4, hi >>> 0, true);
  b.dv.setUint16(A + 8, se, true);
  m(b, 0xdb, 5);
}
function st80(b: Box): [number, number, number] {
  m(b, 0xdb, 7);
  return [b.dv.getUint16(A + 8, true), b.dv.getUint32(A + 4, true), b.dv.getUint32(A, true)];
}
function setCw(b: Box, cw: number): void {
  b.dv.setUint16(A + 64, cw, true);
  m(b, 0xd9, 5, A + 64);
}
/** Rounding-control values in CW bits 10..11 with PC = 53 bits and all exceptions masked. */
const CW53 = 0x027f;
const RCS = [0, 0x400, 0x800, 0xc00] as const; // nearest, down, up, chop

function nextUp(x: number): number {
  const dv = new DataView(new ArrayBuffer(8));
  if (x === 0) return Number.MIN_VALUE;
  dv.setFloat64(0, x);
  const big = dv.getBigUint64(0);
  dv.setBigUint64(0, x > 0 ? big + 1n : big - 1n);
  return dv.getFloat64(0);
}
function nextDown(x: number): number {
  return -nextUp(-x);
}

test("reset/FNINIT state: CW 037F, SW 0, all tags empty, pointers 0", () => {
  const b = box();
  m(b, 0xd9, 7);
  assert.equal(b.dv.getUint16(A, true), 0x037f);
  m(b, 0xdd, 7);
  assert.equal(b.dv.getUint16(A, true), 0);
  assert.equal(b.cpu.fpu.tw, 0xffff);
  ld(b, 1);
  setCw(b, 0);
  r(b, 0xdb, 0xe3); // FNINIT
  m(b, 0xd9, 7);
  assert.equal(b.dv.getUint16(A, true), 0x037f);
  assert.equal(b.cpu.fpu.tw, 0xffff);
  assert.equal(top(b), 0);
  // FLDCW keeps bit 6 set, as a P6 does.
  setCw(b, 0);
  m(b, 0xd9, 7);
  assert.equal(b.dv.getUint16(A, true), 0x0040);
});

test("FLD/FSTP m32 and m64 round trips keep bits (zeros, denormals, infinities, QNaNs)", () => {
  const b = box();
  const f32 = [
    0, 0x80000000, 0x3f800000, 0x00000001, 0x807fffff, 0x7f7fffff, 0x7f800000, 0xff800000, 0x7fc00000, 0xffc12345,
    0x00800000,
  ];
  for (const bits of f32) {
    b.dv.setUint32(A, bits, true);
    m(b, 0xd9, 0);
    b.dv.setUint32(A, 0xdeadbeef, true);
    m(b, 0xd9, 3);
    assert.equal(b.dv.getUint32(A, true), bits, `m32 ${bits.toString(16)}`);
  }
  const f64: [number, number][] = [
    [0, 0],
    [0x80000000, 0],
    [0x3ff00000, 1],
    [0, 1],
    [0x800fffff, 0xffffffff],
    [0x7fefffff, 0xffffffff],
    [0x7ff00000, 0],
    [0xfff80000, 0x1234],
    [0x00100000, 0],
  ];
  for (const [hi, lo] of f64) {
    b.dv.setUint32(A, lo, true);
    b.dv.setUint32(A + 4, hi, true);
    m(b, 0xdd, 0);
    b.dv.setFloat64(A, 42, true);
    m(b, 0xdd, 3);
    assert.equal(b.dv.getUint32(A + 4, true), hi, `m64 hi ${hi.toString(16)}`);
    assert.equal(b.dv.getUint32(A, true), lo);
  }
  assert.equal(top(b), 0);
  assert.equal(sw(b) & 0x3f, 0x02, "denormal loads set DE only");
});

test("loads convert exactly to 80 bits; SNaN loads signal IE and quieten", () => {
  const b = box();
  b.dv.setUint32(A, 0x00000001, true); // smallest float denormal = 2^-149
  m(b, 0xd9, 0);
  assert.deepEqual(st80(b), [0x3fff - 149, 0x80000000, 0]);
  assert.equal(sw(b) & 2, 2, "DE");
  b.dv.setFloat64(A, -1.5, true);
  m(b, 0xdd, 0);
  assert.deepEqual(st80(b), [0xbfff, 0xc0000000, 0]);
  b.dv.setUint32(A, 0x7fa00001, true); // float SNaN
  m(b, 0xd9, 0);
  assert.equal(sw(b) & 1, 1, "IE");
  assert.deepEqual(st80(b), [0x7fff, 0xe0000100, 0]);
  r(b, 0xdb, 0xe2); // FNCLEX
  // FLD m80 of an SNaN copies it without signalling
  ld80(b, 0x7fff, 0xa0000000, 5);
  assert.equal(sw(b) & 1, 0);
  assert.deepEqual(st80(b), [0x7fff, 0xa0000000, 5]);
});

test("FLD/FSTP m80 is bit exact for any encoding (64-bit mantissas, unnormals, denormals)", () => {
  const b = box();
  const vals: [number, number, number][] = [
    [0x3fff, 0x80000000, 0x00000001],
    [0x4abc, 0xffffffff, 0xffffffff],
    [0x0000, 0x00000001, 0x00000000],
    [0x1234, 0x12345678, 0x9abcdef0], // unnormal
    [0x8000, 0, 0],
    [0xffff, 0xc0000000, 0],
  ];
  for (const v of vals) {
    ld80(b, ...v);
    assert.deepEqual(st80(b), v);
  }
});

test("FST m32/m64 round the exact 80-bit value in every rounding mode", () => {
  const b = box();
  // 1 + 2^-53 + 2^-60: just above the double halfway point
  const hi = 0x80000000;
  const lo = (1 << 10) | (1 << 3);
  const one = 1;
  const up = 1 + 2 ** -52;
  const cases: [number, number][] = [
    [RCS[0], up],
    [RCS[1], one],
    [RCS[2], up],
    [RCS[3], one],
  ];
  for (const [rc, want] of cases) {
    setCw(b, 0x037f | rc);
    ld80(b, 0x3fff, hi, lo);
    assert.equal(st(b), want, `rc ${rc}`);
    assert.equal(sw(b) & 0x20, 0x20, "PE");
  }
  // Exactly halfway: ties to even.
  setCw(b, 0x037f);
  ld80(b, 0x3fff, hi, 1 << 10);
  assert.equal(st(b), 1);
  ld80(b, 0x3fff, hi, 3 << 10);
  assert.equal(st(b), 1 + 2 ** -51);
  // C1 reports rounding up.
  ld80(b, 0x3fff, hi, lo);
  m(b, 0xdd, 3);
  assert.equal(sw(b) & 0x200, 0x200);
  // m32 from a double: 1 + 2^-30
  for (const [rc, want] of [
    [RCS[0], 1],
    [RCS[1], 1],
    [RCS[2], 1 + 2 ** -23],
    [RCS[3], 1],
  ] as const) {
    setCw(b, 0x037f | rc);
    ld(b, -(1 + 2 ** -30));
    m(b, 0xd9, 3);
    const got = b.dv.getFloat32(A, true);
    const exp = rc === RCS[1] ? -(1 + 2 ** -23) : -1;
    assert.equal(got, exp, `neg rc ${rc}`);
    ld(b, 1 + 2 ** -30);
    m(b, 0xd9, 3);
    assert.equal(b.dv.getFloat32(A, true), want);
  }
  // Overflow to m32: masked → infinity (nearest), max float (chop); OE and PE.
  setCw(b, 0x037f);
  r(b, 0xdb, 0xe2);
  ld(b, 1e300);
  m(b, 0xd9, 3);
  assert.equal(b.dv.getFloat32(A, true), Infinity);
  assert.equal(sw(b) & 0x28, 0x28);
  setCw(b, 0x037f | RCS[3]);
  ld(b, -1e300);
  m(b, 0xd9, 3);
  assert.equal(b.dv.getFloat32(A, true), -3.4028234663852886e38);
  // Underflow to a float denormal, masked: UE|PE and the denormal.
  setCw(b, 0x037f);
  r(b, 0xdb, 0xe2);
  ld(b, 3 * 2 ** -150);
  m(b, 0xd9, 3);
  assert.equal(b.dv.getUint32(A, true), 2); // 1.5 * 2^-149 rounds to even 2 * 2^-149
  assert.equal(sw(b) & 0x30, 0x30);
});

test("FILD/FIST(P) m16/m32/m64 exact, including the int64 extremes", () => {
  const b = box();
  const i64: [number, number][] = [
    [0x80000000, 0], // -2^63
    [0x7fffffff, 0xffffffff], // 2^63-1
    [0x12345678, 0x9abcdef1],
    [0xffffffff, 0xffffffff], // -1
    [0, 0],
  ];
  for (const [hi, lo] of i64) {
    b.dv.setUint32(A, lo, true);
    b.dv.setUint32(A + 4, hi, true);
    m(b, 0xdf, 5);
    b.dv.setUint32(A, 0, true);
    b.dv.setUint32(A + 4, 0, true);
    m(b, 0xdf, 7);
    assert.equal(b.dv.getUint32(A + 4, true), hi);
    assert.equal(b.dv.getUint32(A, true), lo);
  }
  for (const v of [-32768, 32767, -1, 0, 1234]) {
    b.dv.setInt16(A, v, true);
    m(b, 0xdf, 0);
    m(b, 0xdf, 3);
    assert.equal(b.dv.getInt16(A, true), v);
  }
  for (const v of [-2147483648, 2147483647, -7, 99999]) {
    b.dv.setInt32(A, v, true);
    m(b, 0xdb, 0);
    m(b, 0xdb, 3);
    assert.equal(b.dv.getInt32(A, true), v);
  }
  assert.equal(sw(b) & 0x3f, 0);
  // Rounding modes.
  const want: Record<number, number[]> = {
    [RCS[0]]: [2, -2, 4, -4, 3],
    [RCS[1]]: [2, -3, 3, -4, 2],
    [RCS[2]]: [3, -2, 4, -3, 3],
    [RCS[3]]: [2, -2, 3, -3, 2],
  };
  for (const rc of RCS) {
    setCw(b, 0x037f | rc);
    const got = [2.5, -2.5, 3.5, -3.5, 2.75].map((x) => {
      ld(b, x);
      m(b, 0xdb, 3);
      return b.dv.getInt32(A, true);
    });
    assert.deepEqual(got, want[rc], `rc ${rc}`);
  }
  // Out of range → integer indefinite with IE (masked).
  setCw(b, 0x037f);
  r(b, 0xdb, 0xe2);
  ld(b, 32768);
  m(b, 0xdf, 3);
  assert.equal(b.dv.getUint16(A, true), 0x8000);
  assert.equal(sw(b) & 1, 1);
  ld(b, -32768.4);
  m(b, 0xdf, 3);
  assert.equal(b.dv.getInt16(A, true), -32768);
  ld(b, NaN);
  m(b, 0xdb, 3);
  assert.equal(b.dv.getUint32(A, true), 0x80000000);
  ld(b, 2 ** 63);
  m(b, 0xdf, 7);
  assert.equal(b.dv.getUint32(A + 4, true), 0x80000000);
  assert.equal(b.dv.getUint32(A, true), 0);
  ld(b, -(2 ** 63));
  r(b, 0xdb, 0xe2);
  m(b, 0xdf, 7);
  assert.equal(sw(b) & 1, 0, "-2^63 fits");
  // Unmasked IE: no store, no pop.
  setCw(b, 0x037e);
  ld(b, 1e10);
  b.dv.setUint32(A + 16, 0x11111111, true);
  m(b, 0xdb, 3, A + 16);
  assert.equal(b.dv.getUint32(A + 16, true), 0x11111111);
  assert.equal(b.cpu.fpu.stDouble(0), 1e10);
  assert.equal(sw(b) & 0x81, 0x81);
});

test("FBLD/FBSTP: 18 BCD digits, sign, rounding, overflow → BCD indefinite", () => {
  const b = box();
  // -123456789012345678
  const bytes = [0x78, 0x56, 0x34, 0x12, 0x90, 0x78, 0x56, 0x34, 0x12, 0x80];
  bytes.forEach((v, i) => b.dv.setUint8(A + i, v));
  m(b, 0xdf, 4);
  assert.equal(b.cpu.fpu.stDouble(0), -123456789012345678);
  for (let i = 0; i < 10; i++) b.dv.setUint8(A + i, 0);
  m(b, 0xdf, 6);
  assert.deepEqual(
    Array.from({ length: 10 }, (_, i) => b.dv.getUint8(A + i)),
    bytes,
  );
  ld(b, 42.5);
  m(b, 0xdf, 6);
  assert.deepEqual(
    Array.from({ length: 10 }, (_, i) => b.dv.getUint8(A + i)),
    [0x42, 0, 0, 0, 0, 0, 0, 0, 0, 0],
  );
  ld(b, 1e18);
  m(b, 0xdf, 6);
  assert.deepEqual(
    Array.from({ length: 10 }, (_, i) => b.dv.getUint8(A + i)),
    [0, 0, 0, 0, 0, 0, 0, 0xc0, 0xff, 0xff],
  );
  assert.equal(sw(b) & 1, 1);
});

test("arithmetic at PC=53 equals IEEE double arithmetic; directed modes bracket it", () => {
  const b = box();
  let seed = 12345;
  const rnd = (): number => {
    seed = (Math.imul(seed, 1103515245) + 12345) | 0;
    return (seed >>> 0) / 2 ** 32;
  };
  const val = (): number => (rnd() - 0.5) * 2 ** Math.floor(rnd() * 80 - 40);
  const ops: [number, (x: number, y: number) => number][] = [
    [0, (x, y) => x + y],
    [4, (x, y) => x - y],
    [5, (x, y) => y - x],
    [1, (x, y) => x * y],
    [6, (x, y) => x / y],
    [7, (x, y) => y / x],
  ];
  for (let k = 0; k < 400; k++) {
    const x = val();
    const y = k % 7 === 0 ? x * (1 + 2 ** -40) : val();
    for (const [reg, f] of ops) {
      const res: number[] = [];
      for (const rc of RCS) {
        setCw(b, CW53 | rc);
        ld(b, x);
        b.dv.setFloat64(A + 32, y, true);
        m(b, 0xdc, reg, A + 32);
        res.push(st(b));
      }
      const want = f(x, y);
      assert.equal(res[0], want, `nearest ${String(x)} op${String(reg)} ${String(y)}`);
      const [, dn, upv, ch] = res as [number, number, number, number];
      assert.ok(dn === want || dn === nextDown(want), "down");
      assert.ok(upv === want || upv === nextUp(want), "up");
      assert.ok(dn === upv || nextUp(dn) === upv, "down/up adjacent");
      assert.equal(ch, want >= 0 ? dn : upv, "chop");
    }
    setCw(b, CW53);
    ld(b, Math.abs(x));
    r(b, 0xd9, 0xfa);
    assert.equal(st(b), Math.sqrt(Math.abs(x)), "fsqrt");
  }
});

test("PC=24 rounds arithmetic to single precision; extended range has no overflow at 1e308", () => {
  const b = box();
  setCw(b, 0x007f);
  ld(b, 1);
  ld(b, 3);
  r(b, 0xde, 0xf9); // FDIVP: ST1 = ST1 / ST0
  assert.equal(st(b), Math.fround(1 / 3));
  setCw(b, 0x037f);
  ld(b, 1e300);
  ld(b, 1e300);
  r(b, 0xde, 0xc9); // FMULP → 1e600
  assert.equal(sw(b) & 0x08, 0, "no OE in the extended range");
  ld(b, 1e300);
  r(b, 0xde, 0xf9); // FDIVP → 1e300 (both roundings at 53 bits)
  assert.ok(Math.abs(st(b) / 1e300 - 1) < 1e-15);
  // Storing 1e600 to m64 overflows.
  ld(b, 1e300);
  ld(b, 1e300);
  r(b, 0xde, 0xc9);
  assert.equal(st(b), Infinity);
  assert.equal(sw(b) & 0x08, 0x08);
});

test("special operands: x/0 → ZE ∞, 0/0 and ∞-∞ → IE indefinite, NaN propagation", () => {
  const b = box();
  ld(b, 0);
  ld(b, -5);
  r(b, 0xd8, 0xf1); // FDIV ST0, ST1 → -5/0
  assert.equal(sw(b) & 0x04, 0x04);
  assert.equal(b.cpu.fpu.stDouble(0), -Infinity);
  r(b, 0xdb, 0xe3);
  ld(b, 0);
  ld(b, 0);
  r(b, 0xde, 0xf9);
  assert.equal(sw(b) & 1, 1);
  assert.deepEqual(st80(b), [0xffff, 0xc0000000, 0]);
  r(b, 0xdb, 0xe3);
  ld(b, Infinity);
  ld(b, Infinity);
  r(b, 0xde, 0xe9); // FSUBP
  assert.equal(sw(b) & 1, 1);
  r(b, 0xdb, 0xe3);
  // QNaN + 1 → the QNaN, no IE; larger significand wins between two NaNs.
  ld80(b, 0x7fff, 0xc0000000, 7);
  ld(b, 1);
  r(b, 0xde, 0xc1);
  assert.equal(sw(b) & 1, 0);
  assert.deepEqual(st80(b), [0x7fff, 0xc0000000, 7]);
  ld80(b, 0x7fff, 0xc0000000, 7);
  ld80(b, 0xffff, 0xc0000000, 9);
  r(b, 0xde, 0xc1);
  assert.deepEqual(st80(b), [0xffff, 0xc0000000, 9]);
});

test("FCOM/FUCOM/FTST/FICOM condition codes; FCOMI/FUCOMI EFLAGS; FXAM classes", () => {
  const b = box();
  const cc = (): number => sw(b) & 0x4500;
  ld(b, 2);
  ld(b, 1);
  r(b, 0xd8, 0xd1); // FCOM ST1: 1 < 2
  assert.equal(cc(), 0x0100);
  r(b, 0xd9, 0xc9); // FXCH
  r(b, 0xd8, 0xd1); // 2 > 1
  assert.equal(cc(), 0);
  b.dv.setFloat32(A, 2, true);
  m(b, 0xd8, 2); // FCOM m32: 2 == 2
  assert.equal(cc(), 0x4000);
  b.dv.setInt16(A, 3, true);
  m(b, 0xde, 2); // FICOM m16: 2 < 3
  assert.equal(cc(), 0x0100);
  r(b, 0xde, 0xd9); // FCOMPP
  assert.equal(top(b), 0);
  assert.equal(b.cpu.fpu.tw, 0xffff);
  // Unordered: FUCOM with a QNaN → no IE; FCOM → IE.
  ld(b, NaN);
  ld(b, 1);
  r(b, 0xdd, 0xe1);
  assert.equal(cc(), 0x4500);
  assert.equal(sw(b) & 1, 0);
  r(b, 0xd8, 0xd1);
  assert.equal(sw(b) & 1, 1);
  r(b, 0xdb, 0xe3);
  // FTST
  ld(b, -0.5);
  r(b, 0xd9, 0xe4);
  assert.equal(cc(), 0x0100);
  ld(b, -0);
  r(b, 0xd9, 0xe4);
  assert.equal(cc(), 0x4000);
  r(b, 0xdb, 0xe3);
  // FCOMI / FUCOMIP set ZF PF CF, clear OF SF AF.
  b.cpu.setFlags(F.OF | F.SF | F.AF | F.CF);
  ld(b, 5);
  ld(b, 5);
  r(b, 0xdb, 0xf1);
  assert.equal(b.cpu.getFlags() & (F.ZF | F.PF | F.CF | F.OF | F.SF | F.AF), F.ZF);
  ld(b, 7);
  r(b, 0xdf, 0xe9); // FUCOMIP 7 vs 5
  assert.equal(b.cpu.getFlags() & (F.ZF | F.PF | F.CF), 0);
  ld(b, 1);
  r(b, 0xdb, 0xf1); // 1 < 5
  assert.equal(b.cpu.getFlags() & (F.ZF | F.PF | F.CF), F.CF);
  ld(b, NaN);
  r(b, 0xdb, 0xe9); // FUCOMI unordered
  assert.equal(b.cpu.getFlags() & (F.ZF | F.PF | F.CF), F.ZF | F.PF | F.CF);
  // FXAM
  const xam = (): number => sw(b) & 0x4700;
  r(b, 0xdb, 0xe3);
  r(b, 0xd9, 0xe5);
  assert.equal(xam() & 0x4500, 0x4100, "empty");
  const classes: [number, number][] = [
    [1, 0x0400],
    [-1, 0x0600],
    [0, 0x4000],
    [Infinity, 0x0500],
    [NaN, 0x0100],
    [5e-324, 0x0400], // a double denormal is normal in the extended format
  ];
  for (const [v, want] of classes) {
    ld(b, v);
    r(b, 0xd9, 0xe5);
    assert.equal(xam(), want, `fxam ${String(v)}`);
  }
  ld80(b, 0x0000, 0x40000000, 0);
  r(b, 0xd9, 0xe5);
  assert.equal(xam(), 0x4400, "denormal");
  ld80(b, 0x1234, 0x40000000, 0);
  r(b, 0xd9, 0xe5);
  assert.equal(xam(), 0, "unsupported");
});

test("stack overflow and underflow: IE|SF, C1, masked indefinite; unmasked leaves the stack", () => {
  const b = box();
  for (let k = 0; k < 8; k++) ld(b, k);
  ld(b, 99);
  assert.equal(sw(b) & 0x241, 0x241, "IE SF C1=1");
  assert.deepEqual(st80(b), [0xffff, 0xc0000000, 0]);
  r(b, 0xdb, 0xe3);
  r(b, 0xd8, 0xc1); // FADD with empty registers
  assert.equal(sw(b) & 0x241, 0x041, "IE SF C1=0");
  assert.equal(b.cpu.fpu.tw & 3, 2, "ST0 holds the indefinite (tag special)");
  // Unmasked: nothing pushed.
  r(b, 0xdb, 0xe3);
  setCw(b, 0x037e);
  for (let k = 0; k < 8; k++) ld(b, k);
  ld(b, 99);
  assert.equal(b.cpu.fpu.stDouble(0), 7);
  assert.equal(sw(b) & 0x80c1, 0x80c1);
});

test("FSAVE/FRSTOR round trip (32- and 16-bit), FNSAVE reinitializes", () => {
  for (const o32 of [true, false]) {
    const b = box();
    (b.cpu as unknown as { o32: boolean }).o32 = o32;
    b.cpu.cs32 = o32;
    b.cpu.pmode = true;
    b.cpu.s.segSel[SReg.CS] = 0x08;
    b.cpu.s.segSel[DS] = 0x10;
    setCw(b, 0x0b7f);
    ld(b, Math.PI);
    ld80(b, 0x4005, 0x87654321, 0x12345678);
    ld(b, -0);
    b.cpu.instrStart = 0x1234;
    ld(b, Infinity);
    r(b, 0xd9, 0xf7); // FINCSTP: tags kept, TOP moves
    const size = o32 ? 108 : 94;
    m(b, 0xdd, 6, A2);
    assert.equal(b.cpu.faulted, false);
    const img = new Uint8Array(b.mem.ram.slice(A2, A2 + size));
    assert.equal(b.cpu.fpu.cw, 0x037f, "FNSAVE does FNINIT");
    assert.equal(b.cpu.fpu.tw, 0xffff);
    m(b, 0xdd, 4, A2);
    m(b, 0xdd, 6, A2 + 0x200);
    assert.deepEqual(new Uint8Array(b.mem.ram.slice(A2 + 0x200, A2 + 0x200 + size)), img);
    // Layout spot checks: tag word and ST(7) (the Infinity, physically below TOP after FINCSTP).
    const dv = b.dv;
    if (o32) {
      assert.equal(dv.getUint16(A2, true), 0x0b7f);
      assert.equal((dv.getUint16(A2 + 4, true) >>> 11) & 7, 5);
      // physical 7..4 hold pi, x, -0, inf: tags 00 (valid), 00, 01, 10; 0..3 empty
      assert.equal(dv.getUint16(A2 + 8, true), 0x06ff);
      assert.equal(dv.getUint32(A2 + 12, true), 0x1234);
      assert.equal(dv.getUint16(A2 + 16, true), 0x08);
      assert.equal(dv.getUint16(A2 + 18, true), 0x01f7, "FOP of FINCSTP");
      assert.equal(dv.getUint32(A2 + 20, true), A);
      assert.equal(dv.getUint16(A2 + 24, true), 0x10);
      assert.equal(dv.getUint16(A2 + 28 + 70 + 8, true), 0x7fff, "ST(7) = inf");
    } else {
      assert.equal(dv.getUint16(A2 + 6, true), 0x1234);
      assert.equal(dv.getUint16(A2 + 8, true), 0x08);
      assert.equal(dv.getUint16(A2 + 10, true), A);
      assert.equal(dv.getUint16(A2 + 14 + 8, true), 0x8000, "ST(0) = -0");
    }
    m(b, 0xdd, 4, A2);
    assert.equal(b.cpu.fpu.stDouble(0), -0);
    assert.equal(b.cpu.fpu.stDouble(2), Math.PI);
  }
});

test("FNSTENV/FLDENV real-mode layouts store linear pointers; FNSTENV masks exceptions", () => {
  const b = box();
  (b.cpu as unknown as { o32: boolean }).o32 = true;
  b.cpu.pmode = false;
  b.cpu.s.segSel[SReg.CS] = 0x1234;
  b.cpu.s.segSel[DS] = 0x2000;
  b.cpu.instrStart = 0x5678;
  ld(b, 1);
  m(b, 0xd9, 6, A2);
  const dv = b.dv;
  const ip = 0x12340 + 0x5678;
  assert.equal(dv.getUint16(A2 + 12, true), ip & 0xffff);
  assert.equal(dv.getUint32(A2 + 16, true), ((ip >>> 16) << 12) | 0x506);
  const dp = 0x20000 + A;
  assert.equal(dv.getUint16(A2 + 20, true), dp & 0xffff);
  assert.equal(dv.getUint32(A2 + 24, true), (dp >>> 16) << 12);
  assert.equal(b.cpu.fpu.cw & 0x3f, 0x3f);
  // 16-bit real layout
  (b.cpu as unknown as { o32: boolean }).o32 = false;
  m(b, 0xd9, 6, A2 + 0x100);
  assert.equal(dv.getUint16(A2 + 0x100 + 6, true), ip & 0xffff);
  assert.equal(dv.getUint16(A2 + 0x100 + 8, true), ((ip >>> 16) << 12) | 0x506);
  // FLDENV of the 16-bit image restores the same pointers.
  r(b, 0xdb, 0xe3);
  m(b, 0xd9, 4, A2 + 0x100);
  m(b, 0xd9, 6, A2 + 0x180);
  assert.deepEqual(
    new Uint8Array(b.mem.ram.slice(A2 + 0x180, A2 + 0x180 + 14)),
    new Uint8Array(b.mem.ram.slice(A2 + 0x100, A2 + 0x100 + 14)),
  );
});

test("unmasked exception: #MF at the next waiting instruction (CR0.NE=1), IRQ 13 with NE=0", () => {
  const b = box();
  setCw(b, 0x037b); // ZE unmasked
  ld(b, 0);
  ld(b, 1);
  r(b, 0xd8, 0xf1); // 1/0
  assert.equal(sw(b) & 0x8084, 0x8084, "ZE ES B");
  assert.equal(b.cpu.fpu.stDouble(0), 1, "destination unchanged");
  assert.equal(b.cpu.faulted, false);
  const before = b.cpu.s.fpuBytes.slice(0, 160);
  r(b, 0xd8, 0xc1);
  assert.equal(b.cpu.faulted, true);
  assert.equal(b.cpu.excVector, Vec.MF);
  assert.deepEqual(b.cpu.s.fpuBytes.slice(0, 160), before, "no state change");
  b.cpu.faulted = false;
  b.cpu.fpu.wait();
  assert.equal(b.cpu.excVector, Vec.MF);
  b.cpu.faulted = false;
  m(b, 0xdd, 7); // FNSTSW does not wait
  assert.equal(b.cpu.faulted, false);
  r(b, 0xdf, 0xe0); // FNSTSW AX
  assert.equal(b.cpu.r16[0], sw(b));
  r(b, 0xdb, 0xe2); // FNCLEX
  assert.equal(sw(b) & 0x80ff, 0);
  b.cpu.fpu.wait();
  assert.equal(b.cpu.faulted, false);
  assert.equal(b.irqs.levels[13], 0);
  // NE = 0: FERR# → IRQ 13, no #MF.
  b.cpu.i32[Slot.CR0] = CR0.ET;
  r(b, 0xd8, 0xf1);
  assert.equal(b.irqs.levels[13], 1);
  r(b, 0xd8, 0xc1);
  assert.equal(b.cpu.faulted, false);
  // Wired FERR#: the hook is called instead of the IRQ router.
  let ferr = 0;
  b.cpu.fpu.onFerr = () => {
    ferr++;
  };
  r(b, 0xdb, 0xe2);
  r(b, 0xd8, 0xf1);
  assert.equal(ferr, 1);
  // FLDCW unmasking an already-set flag makes it pending.
  const c = box();
  ld(c, 1);
  ld(c, 0);
  r(c, 0xde, 0xf9); // 1/0 masked
  setCw(c, 0x037b);
  assert.equal(sw(c) & 0x80, 0x80);
});

test("#NM: CR0.EM or TS for escapes; WAIT only with TS and MP", () => {
  const b = box();
  b.cpu.i32[Slot.CR0] = CR0.EM | CR0.NE;
  r(b, 0xd9, 0xe8);
  assert.equal(b.cpu.excVector, Vec.NM);
  b.cpu.faulted = false;
  b.cpu.fpu.wait();
  assert.equal(b.cpu.faulted, false, "WAIT ignores EM");
  b.cpu.i32[Slot.CR0] = CR0.TS | CR0.NE;
  r(b, 0xd9, 0xe8);
  assert.equal(b.cpu.faulted, true);
  b.cpu.faulted = false;
  b.cpu.fpu.wait();
  assert.equal(b.cpu.faulted, false);
  b.cpu.i32[Slot.CR0] = CR0.TS | CR0.MP | CR0.NE;
  b.cpu.fpu.wait();
  assert.equal(b.cpu.excVector, Vec.NM);
  assert.equal(b.cpu.fpu.tw, 0xffff, "nothing executed");
});

test("a faulting memory operand leaves the x87 state unchanged", () => {
  const b = box();
  ld(b, 2);
  const before = b.cpu.s.fpuBytes.slice(0, 160);
  b.cpu.fpu.exec(0xdd, 0x06, DS, 0xffffc); // beyond the DS limit
  assert.equal(b.cpu.faulted, true);
  assert.equal(b.cpu.excVector, Vec.GP);
  assert.deepEqual(b.cpu.s.fpuBytes.slice(0, 160), before);
  b.cpu.faulted = false;
  b.cpu.fpu.exec(0xdd, 0x1e, DS, 0xffffc); // FSTP m64 beyond the limit
  assert.equal(b.cpu.faulted, true);
  assert.deepEqual(b.cpu.s.fpuBytes.slice(0, 160), before);
});

test("constants honour rounding control", () => {
  const b = box();
  const k: [number, number][] = [
    [0xe8, 1],
    [0xe9, Math.log2(10)],
    [0xea, Math.LOG2E],
    [0xeb, Math.PI],
    [0xec, Math.log10(2)],
    [0xed, Math.LN2],
    [0xee, 0],
  ];
  for (const [op, v] of k) {
    r(b, 0xd9, op);
    assert.equal(st(b), v, op.toString(16));
  }
  r(b, 0xd9, 0xeb);
  const near = st80(b);
  setCw(b, 0x037f | RCS[1]);
  r(b, 0xd9, 0xeb);
  const down = st80(b);
  assert.deepEqual(near, [0x4000, 0xc90fdaa2, 0x2168c235]);
  assert.deepEqual(down, [0x4000, 0xc90fdaa2, 0x2168c234]);
});

test("FXCH, FCHS, FABS, FFREE, FINCSTP/FDECSTP, FST ST(i), FCMOVcc", () => {
  const b = box();
  ld(b, 1);
  ld(b, -2);
  r(b, 0xd9, 0xc9);
  assert.equal(b.cpu.fpu.stDouble(0), 1);
  assert.equal(b.cpu.fpu.stDouble(1), -2);
  r(b, 0xd9, 0xe0);
  assert.equal(b.cpu.fpu.stDouble(0), -1);
  r(b, 0xd9, 0xc9);
  r(b, 0xd9, 0xe1);
  assert.equal(b.cpu.fpu.stDouble(0), 2);
  r(b, 0xdd, 0xd1); // FST ST1
  assert.equal(b.cpu.fpu.stDouble(1), 2);
  ld(b, 7);
  b.cpu.setFlags(F.ZF);
  r(b, 0xda, 0xc9); // FCMOVE ST0, ST1
  assert.equal(b.cpu.fpu.stDouble(0), 2);
  ld(b, 9);
  r(b, 0xdb, 0xc9); // FCMOVNE: not taken
  assert.equal(b.cpu.fpu.stDouble(0), 9);
  r(b, 0xda, 0xc1); // FCMOVB: CF clear, not taken
  assert.equal(b.cpu.fpu.stDouble(0), 9);
  const t = top(b);
  r(b, 0xd9, 0xf7);
  assert.equal(top(b), (t + 1) & 7);
  r(b, 0xd9, 0xf6);
  assert.equal(top(b), t);
  r(b, 0xdd, 0xc0); // FFREE ST0
  assert.equal(b.cpu.fpu.isEmpty(b.cpu.fpu.phys(0)), true);
  r(b, 0xdf, 0xc1); // FFREEP ST1
  assert.equal(top(b), (t + 1) & 7);
  // invalid encodings → #UD
  r(b, 0xd9, 0xd1);
  assert.equal(b.cpu.excVector, Vec.UD);
});

test("FRNDINT, FSCALE, FXTRACT", () => {
  const b = box();
  for (const [rc, x, want] of [
    [RCS[0], 2.5, 2],
    [RCS[0], 3.5, 4],
    [RCS[1], -2.5, -3],
    [RCS[2], 2.1, 3],
    [RCS[3], -2.9, -2],
    [RCS[0], 0.3, 0],
    [RCS[2], 1e-300, 1],
  ] as const) {
    setCw(b, 0x037f | rc);
    ld(b, x);
    r(b, 0xd9, 0xfc);
    assert.equal(st(b), want, `frndint ${String(x)} rc ${String(rc)}`);
  }
  setCw(b, 0x037f);
  // FRNDINT is exact on 64-bit mantissas: 2^62 + 1.5 → 2^62 + 2
  ld80(b, 0x3fff + 62, 0x80000000, 3);
  r(b, 0xd9, 0xfc);
  assert.deepEqual(st80(b), [0x3fff + 62, 0x80000000, 4]);
  ld(b, 3.7);
  ld(b, 1.5);
  r(b, 0xd9, 0xc9); // ST0 = 3.7, ST1 = 1.5
  r(b, 0xd9, 0xfd); // FSCALE: 3.7 * 2^trunc(1.5)
  assert.equal(b.cpu.fpu.stDouble(0), 7.4);
  r(b, 0xdb, 0xe3);
  ld(b, 16000);
  ld(b, 1);
  r(b, 0xd9, 0xfd); // 2^16000: fine in the extended range
  r(b, 0xd9, 0xc0); // FLD ST0
  assert.deepEqual(st80(b), [0x3fff + 16000, 0x80000000, 0]);
  assert.equal(sw(b) & 0x08, 0);
  r(b, 0xd9, 0xfd); // 2^32000 overflows: masked OE → infinity
  assert.deepEqual(st80(b), [0x7fff, 0x80000000, 0]);
  assert.equal(sw(b) & 0x28, 0x28);
  r(b, 0xdb, 0xe3);
  ld(b, -16400);
  ld(b, 1);
  r(b, 0xd9, 0xfd); // 2^-16400: an exact extended denormal (no UE when exact)
  assert.deepEqual(st80(b), [0, 0x2000, 0]);
  assert.equal(sw(b) & 0x3f, 0);
  r(b, 0xdb, 0xe3);
  ld(b, -10);
  ld(b, 12);
  r(b, 0xd9, 0xf4); // FXTRACT 12 = 1.5 * 2^3
  assert.equal(b.cpu.fpu.stDouble(0), 1.5);
  assert.equal(b.cpu.fpu.stDouble(1), 3);
  assert.equal(b.cpu.fpu.stDouble(2), -10);
});

test("FPREM equals fmod and FPREM1 the IEEE remainder (exact); quotient bits in C0 C3 C1", () => {
  const b = box();
  const run = (x: number, y: number, ieee: boolean): [number, number] => {
    r(b, 0xdb, 0xe3);
    ld(b, y);
    ld(b, x);
    let guard = 0;
    do r(b, 0xd9, ieee ? 0xf5 : 0xf8);
    while ((sw(b) & 0x400) !== 0 && ++guard < 1000);
    return [b.cpu.fpu.stDouble(0), sw(b)];
  };
  const ieeeRem = (x: number, y: number): number => {
    // exact: fmod (JS %) and the quotient's parity from fmod by 2|y|
    const ay = Math.abs(y);
    const rr = x % ay;
    const odd = Math.abs(x % (2 * ay)) >= ay;
    const a = Math.abs(rr);
    if (a > ay / 2 || (a === ay / 2 && odd)) return rr - Math.sign(rr) * ay;
    return rr;
  };
  const pairs: [number, number][] = [
    [5.3, 2],
    [-5.3, 2],
    [7, 2],
    [1e300, 3],
    [-1e300, 7.25],
    [1e-300, 3e-301],
    [123.456, -0.1],
    [2 ** 70 + 2 ** 20, 3],
  ];
  for (const [x, y] of pairs) {
    assert.equal(run(x, y, false)[0], x % y, `fprem ${String(x)} ${String(y)}`);
  }
  for (const [x, y] of [
    [5.3, 2],
    [7, 2],
    [5, 2],
    [-11, 4],
    [1.75, 1],
    [0.75, 1],
    [-0.75, 1],
    [0.5, 1],
    [0.3, 1],
    [1e300, 3],
    [2 ** 70 + 2 ** 20, 3],
  ] as const) {
    assert.equal(run(x, y, true)[0], ieeeRem(x, y), `fprem1 ${String(x)} ${String(y)}`);
  }
  // 7 / 2: quotient 3 → C0 = 0, C3 = 1, C1 = 1
  const s = run(7, 2, false)[1];
  assert.equal(s & 0x4700, 0x4200);
  // 13 / 2: quotient 6 → C0 = 1, C3 = 1, C1 = 0
  assert.equal(run(13, 2, false)[1] & 0x4700, 0x4100);
});

test("transcendentals agree with Math.* within 4 ulp of a double", () => {
  const b = box();
  const close = (got: number, want: number, what: string): void => {
    const tol = 4 * Math.abs(want) * 2 ** -52 + 1e-300;
    assert.ok(Math.abs(got - want) <= tol, `${what}: ${String(got)} vs ${String(want)}`);
  };
  for (const x of [0.5, -1.25, 3, 100, 1e-5]) {
    r(b, 0xdb, 0xe3);
    ld(b, x);
    r(b, 0xd9, 0xfe);
    close(st(b), Math.sin(x), `sin ${String(x)}`);
    ld(b, x);
    r(b, 0xd9, 0xff);
    close(st(b), Math.cos(x), `cos ${String(x)}`);
    ld(b, x);
    r(b, 0xd9, 0xf2); // FPTAN
    assert.equal(st(b), 1);
    close(st(b), Math.tan(x), `tan ${String(x)}`);
    ld(b, x);
    r(b, 0xd9, 0xfb); // FSINCOS
    close(st(b), Math.cos(x), "sincos cos");
    close(st(b), Math.sin(x), "sincos sin");
    ld(b, x);
    ld(b, 2);
    r(b, 0xd9, 0xf3); // FPATAN: atan2(x, 2)
    close(st(b), Math.atan2(x, 2), "fpatan");
    ld(b, 1.5);
    ld(b, Math.abs(x));
    r(b, 0xd9, 0xf1); // FYL2X
    close(st(b), 1.5 * Math.log2(Math.abs(x)), "fyl2x");
    ld(b, 3);
    ld(b, x / 1000);
    r(b, 0xd9, 0xf9); // FYL2XP1
    close(st(b), (3 * Math.log1p(x / 1000)) / Math.LN2, "fyl2xp1");
    const y = Math.max(-1, Math.min(1, x));
    ld(b, y);
    r(b, 0xd9, 0xf0);
    const f = st(b);
    assert.ok(Math.abs(f - (2 ** y - 1)) <= 1e-15, `f2xm1 ${String(y)}`);
    assert.equal(top(b), 0, "stack balanced");
  }
  ld(b, 2 ** 63);
  r(b, 0xd9, 0xfe);
  assert.equal(sw(b) & 0x400, 0x400, "C2: out of range");
  assert.equal(st(b), 2 ** 63, "operand unchanged");
  ld(b, -1);
  ld(b, -2);
  r(b, 0xd9, 0xf1); // log of a negative number
  assert.equal(sw(b) & 1, 1);
});

test("FOP/FIP/FDP: control instructions do not update them", () => {
  const b = box();
  b.cpu.instrStart = 0x111;
  ld(b, 1);
  b.cpu.instrStart = 0x222;
  m(b, 0xd9, 7, A2); // FNSTCW
  r(b, 0xdb, 0xe2); // FNCLEX
  (b.cpu as unknown as { o32: boolean }).o32 = true;
  b.cpu.pmode = true;
  m(b, 0xd9, 6, A2);
  assert.equal(b.dv.getUint32(A2 + 12, true), 0x111);
  assert.equal(b.dv.getUint32(A2 + 20, true), A);
  b.cpu.instrStart = 0x333;
  r(b, 0xd8, 0xc0);
  m(b, 0xd9, 6, A2);
  assert.equal(b.dv.getUint32(A2 + 12, true), 0x333);
  assert.equal(b.dv.getUint16(A2 + 18, true), 0x0c0);
  assert.equal(b.dv.getUint32(A2 + 20, true), A, "register forms keep FDP");
});

test("operand order of every arithmetic form (D8/DC/DE register, integer memory forms)", () => {
  const b = box();
  const forms: [number, number, number, boolean][] = [
    // op, modrm, expected result read from ST(0) after the instruction (and a pop for P forms), pops
    [0xd8, 0xe1, 2 - 8, false], // FSUB ST0, ST1
    [0xd8, 0xe9, 8 - 2, false], // FSUBR ST0, ST1
    [0xd8, 0xf1, 2 / 8, false], // FDIV ST0, ST1
    [0xd8, 0xf9, 8 / 2, false], // FDIVR ST0, ST1
    [0xdc, 0xe9, 8 - 2, false], // FSUB ST1, ST0 (ST1 checked)
    [0xdc, 0xe1, 2 - 8, false], // FSUBR ST1, ST0
    [0xdc, 0xf9, 8 / 2, false], // FDIV ST1, ST0
    [0xdc, 0xf1, 2 / 8, false], // FDIVR ST1, ST0
    [0xde, 0xe9, 8 - 2, true], // FSUBP
    [0xde, 0xe1, 2 - 8, true], // FSUBRP
    [0xde, 0xf9, 8 / 2, true], // FDIVP
    [0xde, 0xf1, 2 / 8, true], // FDIVRP
    [0xde, 0xc1, 10, true], // FADDP
    [0xde, 0xc9, 16, true], // FMULP
  ];
  for (const [op, modrm, want, pops] of forms) {
    r(b, 0xdb, 0xe3);
    ld(b, 8);
    ld(b, 2);
    r(b, op, modrm);
    const at = op === 0xd8 || pops ? 0 : 1;
    assert.equal(b.cpu.fpu.stDouble(at), want, `${op.toString(16)} ${modrm.toString(16)}`);
    assert.equal(top(b), pops ? 7 : 6);
  }
  const mem: [number, number, number, (x: number) => void, number][] = [
    [0xda, 0, 10, (v) => b.dv.setInt32(A, v, true), 7], // FIADD m32: 3 + 7
    [0xde, 5, 4, (v) => b.dv.setInt16(A, v, true), 7], // FISUBR m16: 7 - 3
    [0xde, 4, -4, (v) => b.dv.setInt16(A, v, true), 7], // FISUB m16: 3 - 7
    [0xda, 6, 3 / -6, (v) => b.dv.setInt32(A, v, true), -6], // FIDIV m32
    [0xda, 7, -6 / 3, (v) => b.dv.setInt32(A, v, true), -6], // FIDIVR m32
    [0xde, 1, 3 * -32768, (v) => b.dv.setInt16(A, v, true), -32768], // FIMUL m16
    [0xd8, 5, 0.5 - 3, (v) => b.dv.setFloat32(A, v, true), 0.5], // FSUBR m32
    [0xdc, 7, 0.25 / 3, (v) => b.dv.setFloat64(A, v, true), 0.25], // FDIVR m64
  ];
  for (const [op, reg, want, put, v] of mem) {
    r(b, 0xdb, 0xe3);
    ld(b, 3);
    put(v);
    m(b, op, reg);
    assert.equal(b.cpu.fpu.stDouble(0), want, `${op.toString(16)} /${String(reg)}`);
  }
});

test("unmasked overflow with a register destination stores the result scaled by 2^-24576", () => {
  const b = box();
  setCw(b, 0x0377); // OE unmasked
  ld(b, 16000);
  ld(b, 1);
  r(b, 0xd9, 0xfd);
  r(b, 0xd9, 0xfd); // 2^32000
  assert.equal(sw(b) & 0x8088, 0x8088);
  b.cpu.i32[Slot.CR0] = CR0.ET; // NE = 0 so that the store below does not wait for #MF
  assert.deepEqual(st80(b), [0x3fff + 32000 - 24576, 0x80000000, 0]);
});

test("the x87 state is in the CPU state buffer: snapshot/restore carries it", () => {
  const b = box();
  ld(b, 1.25);
  setCw(b, 0x0c7f);
  const snap = b.cpu.s.snapshot();
  r(b, 0xdb, 0xe3);
  ld(b, 99);
  b.cpu.s.restore(snap);
  assert.equal(b.cpu.fpu.stDouble(0), 1.25);
  assert.equal(b.cpu.fpu.cw, 0x0c7f);
  assert.equal(top(b), 7);
});

// ---------------------------------------------------------------------------------------------
// Exact extended arithmetic against a BigInt reference (tests only: BigInt is fine here).

/** Rounds sign * (N * 2^E + sticky) to `bits` significant bits → 80-bit [se, hi, lo]. */
function refRound(
  sign: number,
  N: bigint,
  E: number,
  sticky: boolean,
  bits: number,
  rc: number,
): [number, number, number] {
  const L = N.toString(2).length;
  const shift = L - bits;
  let keep: bigint;
  let cmp: number; // -1 below half, 0 exactly half, 1 above half
  let inexact: boolean;
  if (shift > 0) {
    keep = N >> BigInt(shift);
    const rem = N & ((1n << BigInt(shift)) - 1n);
    const half = 1n << BigInt(shift - 1);
    cmp = rem > half || (rem === half && sticky) ? 1 : rem === half ? 0 : -1;
    inexact = rem !== 0n || sticky;
  } else {
    keep = N << BigInt(-shift);
    cmp = -1;
    inexact = sticky;
  }
  let up = false;
  if (inexact) {
    if (rc === 0) up = cmp > 0 || (cmp === 0 && (keep & 1n) === 1n);
    else if (rc === 1) up = sign === 1;
    else if (rc === 2) up = sign === 0;
  }
  let top = E + L - 1;
  if (up) keep += 1n;
  if (keep === 1n << BigInt(bits)) {
    keep >>= 1n;
    top++;
  }
  const m = keep << BigInt(64 - bits);
  return [(sign << 15) | (top + 16383), Number(m >> 32n), Number(m & 0xffffffffn)];
}

function isqrt(n: bigint): bigint {
  if (n < 2n) return n;
  let x = 1n << BigInt((n.toString(2).length >> 1) + 1); // >= sqrt(n)
  for (;;) {
    const y = (x + n / x) >> 1n;
    if (y >= x) return x; // Newton from above stops at floor(sqrt(n))
    x = y;
  }
}

test("FADD/FSUB/FMUL/FDIV/FSQRT are exact with 64-bit mantissas in every rounding mode and PC", () => {
  const b = box();
  let seed = 987654321;
  const u32 = (): number => {
    seed = (Math.imul(seed, 1664525) + 1013904223) | 0;
    return seed >>> 0;
  };
  const rand80 = (spread: number): [number, number, number] => {
    const exp = 16383 + ((u32() % (2 * spread + 1)) - spread);
    return [((u32() & 1) << 15) | exp, (u32() | 0x80000000) >>> 0, u32()];
  };
  const M = (v: [number, number, number]): bigint => (BigInt(v[1]) << 32n) | BigInt(v[2]);
  const E = (v: [number, number, number]): number => (v[0] & 0x7fff) - 16383;
  const S = (v: [number, number, number]): number => v[0] >>> 15;
  for (let k = 0; k < 300; k++) {
    const spread = k % 3 === 0 ? 120 : 20;
    const y = rand80(spread); // ST1
    const x = rand80(spread); // ST0
    if (k % 5 === 0) {
      // near-cancellation
      x[0] = (y[0] ^ 0x8000) & 0xffff;
      x[1] = y[1];
      x[2] = (y[2] ^ (u32() & 0xff)) >>> 0;
    }
    for (const pcBits of [64, 53, 24]) {
      const pc = pcBits === 64 ? 0x300 : pcBits === 53 ? 0x200 : 0;
      for (let rc = 0; rc < 4; rc++) {
        setCw(b, 0x7f | pc | (rc << 10));
        const run = (modrm: number): [number, number, number] => {
          r(b, 0xdb, 0xe3);
          setCw(b, 0x7f | pc | (rc << 10));
          ld80(b, ...y);
          ld80(b, ...x);
          r(b, 0xd8, modrm);
          return st80(b);
        };
        // x + y, x - y via exact integers
        const emin = Math.min(E(x), E(y));
        const vx = (S(x) ? -1n : 1n) * (M(x) << BigInt(E(x) - emin));
        const vy = (S(y) ? -1n : 1n) * (M(y) << BigInt(E(y) - emin));
        for (const [modrm, sum] of [
          [0xc1, vx + vy],
          [0xe1, vx - vy],
        ] as const) {
          const got = run(modrm);
          if (sum === 0n) assert.deepEqual(got, [rc === 1 ? 0x8000 : 0, 0, 0]);
          else {
            const sg = sum < 0n ? 1 : 0;
            assert.deepEqual(
              got,
              refRound(sg, sg ? -sum : sum, emin - 63, false, pcBits, rc),
              `add/sub k=${String(k)} pc=${String(pcBits)} rc=${String(rc)}`,
            );
          }
        }
        const sg = S(x) ^ S(y);
        assert.deepEqual(
          run(0xc9),
          refRound(sg, M(x) * M(y), E(x) + E(y) - 126, false, pcBits, rc),
          `mul k=${String(k)}`,
        );
        const num = M(x) << 130n;
        const qv = num / M(y);
        assert.deepEqual(
          run(0xf1),
          refRound(sg, qv, E(x) - E(y) - 130, qv * M(y) !== num, pcBits, rc),
          `div k=${String(k)}`,
        );
        // sqrt of |x|
        r(b, 0xdb, 0xe3);
        setCw(b, 0x7f | pc | (rc << 10));
        ld80(b, x[0] & 0x7fff, x[1], x[2]);
        r(b, 0xd9, 0xfa);
        let mm = M(x);
        let kk = E(x) - 63;
        if ((kk & 1) !== 0) {
          mm <<= 1n;
          kk -= 1;
        }
        const rad = mm << 140n;
        const root = isqrt(rad);
        assert.deepEqual(
          st80(b),
          refRound(0, root, kk / 2 - 70, root * root !== rad, pcBits, rc),
          `sqrt k=${String(k)}`,
        );
      }
    }
  }
});

test("denormal results: masked underflow denormalizes with one rounding; unmasked wraps by 2^24576", () => {
  const b = box();
  const x: [number, number, number] = [0x3fff - 16000, 0x80000000, 1]; // (1 + 2^-63) * 2^-16000
  const y: [number, number, number] = [0x3fff - 383, 0x80000000, 0]; // 2^-383
  for (const [rc, lo] of [
    [0, 0],
    [1, 0],
    [2, 1],
    [3, 0],
  ] as const) {
    r(b, 0xdb, 0xe3);
    setCw(b, 0x037f | (rc << 10));
    ld80(b, ...y);
    ld80(b, ...x);
    r(b, 0xd8, 0xc9); // FMUL → (2^62 + 0.5) * 2^-16445: a tie
    assert.deepEqual(st80(b), [0, 0x40000000, lo], `rc ${String(rc)}`);
    assert.equal(sw(b) & 0x30, 0x30, "UE PE");
  }
  // Exact denormal result: no UE.
  r(b, 0xdb, 0xe3);
  ld80(b, 0x3fff - 383, 0xc0000000, 0);
  ld80(b, 0x3fff - 16000, 0x80000000, 0);
  r(b, 0xd8, 0xc9); // 1.5 * 2^-16383
  assert.deepEqual(st80(b), [0, 0x60000000, 0]);
  assert.equal(sw(b) & 0x30, 0);
  // Unmasked UE: the exact result with its exponent + 24576.
  r(b, 0xdb, 0xe3);
  setCw(b, 0x036f);
  ld80(b, ...y);
  ld80(b, ...x);
  r(b, 0xd8, 0xc9);
  assert.equal(sw(b) & 0x80b0, 0x8090, "UE ES B, no PE");
  b.cpu.i32[Slot.CR0] = CR0.ET;
  assert.deepEqual(st80(b), [-16383 + 24576 + 16383, 0x80000000, 1]);
  // Denormal operands signal DE (masked: the operation proceeds exactly).
  b.cpu.i32[Slot.CR0] = CR0.ET | CR0.NE;
  r(b, 0xdb, 0xe3);
  ld80(b, 0x3fff + 100, 0x80000000, 0);
  ld80(b, 0, 0x40000000, 0); // 2^-16383 (denormal)
  r(b, 0xd8, 0xc9);
  assert.equal(sw(b) & 0x02, 0x02);
  assert.deepEqual(st80(b), [0x3fff - 16383 + 100, 0x80000000, 0]);
});

test("tininess is detected after rounding (SDM 4.9.1.5)", () => {
  const b = box();
  const x: [number, number, number] = [1000, 0xffffffff, 0xffffffff]; // (2 - 2^-63) * 2^-15383
  const y: [number, number, number] = [0x3fff - 1000, 0x80000000, 0]; // 2^-1000
  // PC = 53: the unbounded-exponent rounding already reaches 2^-16382 → not tiny: PE only.
  setCw(b, 0x027f);
  ld80(b, ...y);
  ld80(b, ...x);
  r(b, 0xd8, 0xc9);
  assert.deepEqual(st80(b), [1, 0x80000000, 0]);
  assert.equal(sw(b) & 0x30, 0x20);
  // PC = 64: exact below 2^-16382 → tiny; denormalizing rounds up to the smallest normal: UE PE.
  r(b, 0xdb, 0xe3);
  ld80(b, ...y);
  ld80(b, ...x);
  r(b, 0xd8, 0xc9);
  assert.deepEqual(st80(b), [1, 0x80000000, 0]);
  assert.equal(sw(b) & 0x30, 0x30);
});

test("edge cases: unmasked OE on FST m32 stores nothing, FRSTOR tags, FCOMI with a QNaN, FCOMPP underflow", () => {
  const b = box();
  // Unmasked overflow to m32: no store, no pop, OE + ES.
  setCw(b, 0x0377);
  ld(b, 1e300);
  b.dv.setUint32(A + 16, 0x12345678, true);
  m(b, 0xd9, 3, A + 16);
  assert.equal(b.dv.getUint32(A + 16, true), 0x12345678);
  assert.equal(b.cpu.fpu.stDouble(0), 1e300);
  assert.equal(sw(b) & 0x8088, 0x8088);
  // FRSTOR: a register tagged empty in the image stays empty; others get tags from their contents.
  r(b, 0xdb, 0xe3);
  (b.cpu as unknown as { o32: boolean }).o32 = true;
  b.cpu.pmode = true;
  ld(b, 5);
  m(b, 0xdd, 6, A2);
  b.dv.setUint16(A2 + 8, 0x3fff, true); // physical 7 "valid", 0..6 empty
  b.dv.setUint16(A2 + 28 + 8, 0x0000, true); // ST(0) = physical 7 := +0 in the image
  b.dv.setUint32(A2 + 28, 0, true);
  b.dv.setUint32(A2 + 28 + 4, 0, true);
  m(b, 0xdd, 4, A2);
  assert.equal(b.cpu.fpu.tw, 0x7fff, "zero tag recomputed");
  // FCOMI with a QNaN signals IE (FUCOMI does not); unordered flags.
  r(b, 0xdb, 0xe3);
  ld(b, NaN);
  ld(b, 1);
  r(b, 0xdb, 0xf1);
  assert.equal(sw(b) & 1, 1);
  assert.equal(b.cpu.getFlags() & (F.ZF | F.PF | F.CF), F.ZF | F.PF | F.CF);
  // FCOMPP with empty registers (masked): unordered, both popped.
  r(b, 0xdb, 0xe3);
  r(b, 0xde, 0xd9);
  assert.equal(sw(b) & 0x4541, 0x4541);
  assert.equal(top(b), 2);
  // FUCOMPP pops twice.
  r(b, 0xdb, 0xe3);
  ld(b, 1);
  ld(b, 2);
  r(b, 0xda, 0xe9);
  assert.equal(top(b), 0);
  assert.equal(sw(b) & 0x4500, 0);
  // FPTAN with a full stack: IE|SF, C1 = 1.
  r(b, 0xdb, 0xe3);
  for (let k = 0; k < 8; k++) ld(b, 0.5);
  r(b, 0xd9, 0xf2);
  assert.equal(sw(b) & 0x241, 0x241);
  // FXCH with an empty ST(1), masked: the empty one becomes the indefinite, then the exchange.
  r(b, 0xdb, 0xe3);
  ld(b, 3);
  r(b, 0xd9, 0xc9);
  assert.equal(b.cpu.fpu.stDouble(1), 3);
  assert.deepEqual(st80(b), [0xffff, 0xc0000000, 0]);
  // FIST m16 just outside the range after rounding.
  r(b, 0xdb, 0xe3);
  ld(b, -32768.6);
  m(b, 0xdf, 3);
  assert.equal(b.dv.getUint16(A, true), 0x8000);
  assert.equal(sw(b) & 1, 1);
  // FISTP m64 rounding of a value with a fraction at 2^52.
  r(b, 0xdb, 0xe3);
  ld80(b, 0x3fff + 52, 0x80000000, 0x400); // 2^52 + 0.5: a tie, to even
  m(b, 0xdf, 7);
  assert.equal(b.dv.getUint32(A, true), 0);
  assert.equal(b.dv.getUint32(A + 4, true), 0x100000);
  assert.equal(sw(b) & 0x20, 0x20);
});

test("FPREM/FPREM1 on random doubles (quotients up to 2^600, partial remainders looped)", () => {
  const b = box();
  let seed = 4242;
  const rnd = (): number => {
    seed = (Math.imul(seed, 1103515245) + 12345) | 0;
    return (seed >>> 0) / 2 ** 32;
  };
  for (let k = 0; k < 200; k++) {
    const x = (rnd() - 0.5) * 2 ** Math.floor(rnd() * 600 - 100);
    const y = (rnd() - 0.5) * 2 ** Math.floor(rnd() * 60 - 30);
    for (const ieee of [false, true]) {
      r(b, 0xdb, 0xe3);
      ld(b, y);
      ld(b, x);
      let n = 0;
      do r(b, 0xd9, ieee ? 0xf5 : 0xf8);
      while ((sw(b) & 0x400) !== 0 && ++n < 100);
      const ay = Math.abs(y);
      let want = x % ay;
      if (ieee) {
        const odd = Math.abs(x % (2 * ay)) >= ay;
        const a = Math.abs(want);
        if (a > ay / 2 || (a === ay / 2 && odd)) want -= Math.sign(want) * ay;
      }
      assert.equal(b.cpu.fpu.stDouble(0), want, `${ieee ? "fprem1" : "fprem"} ${String(x)} ${String(y)}`);
    }
  }
});

test("seeded random instruction stream never throws and keeps a consistent state", () => {
  const b = box();
  let seed = 77;
  const u32 = (): number => {
    seed = (Math.imul(seed, 1664525) + 1013904223) | 0;
    return seed >>> 0;
  };
  for (let i = 0; i < 0x4000; i += 4) b.dv.setUint32(0x8000 + i, u32(), true);
  (b.cpu as unknown as { o32: boolean }).o32 = true;
  for (let k = 0; k < 40000; k++) {
    const op = 0xd8 + (u32() & 7);
    const modrm = u32() & 0xff;
    const sel = u32() & 15;
    if (sel === 0) b.cpu.i32[Slot.CR0] = CR0.ET | (u32() & 1 ? CR0.NE : 0);
    if (sel === 1) setCw(b, (u32() & 0x0f3f) | 0x40);
    if (sel === 2) b.cpu.pmode = !b.cpu.pmode;
    if (sel === 3) (b.cpu as unknown as { o32: boolean }).o32 = (u32() & 1) === 1;
    if (sel === 4) b.cpu.fpu.wait();
    if (modrm >= 0xc0) b.cpu.fpu.exec(op, modrm, -1, 0);
    else b.cpu.fpu.exec(op, modrm, DS, 0x8000 + (u32() & 0x3fff));
    b.cpu.faulted = false;
    if ((b.cpu.fpu.sw & 0x80) !== 0 && (u32() & 3) === 0) r(b, 0xdb, 0xe2);
  }
  // Still a working unit afterwards.
  r(b, 0xdb, 0xe3);
  b.cpu.i32[Slot.CR0] = CR0.ET | CR0.NE;
  ld(b, 2);
  r(b, 0xd9, 0xfa);
  assert.equal(st(b), Math.SQRT2);
});

test("special operands of the transcendentals and FXTRACT", () => {
  const b = box();
  const clear = (): void => r(b, 0xdb, 0xe3);
  clear();
  ld(b, Infinity);
  r(b, 0xd9, 0xfe); // FSIN ∞ → IE, indefinite
  assert.equal(sw(b) & 1, 1);
  assert.deepEqual(st80(b), [0xffff, 0xc0000000, 0]);
  clear();
  ld(b, -Infinity);
  r(b, 0xd9, 0xf0); // F2XM1 -∞ = -1
  assert.equal(st(b), -1);
  clear();
  ld(b, 3);
  ld(b, 0);
  r(b, 0xd9, 0xf1); // FYL2X: 3 * log2(0) → ZE, -∞
  assert.equal(sw(b) & 4, 4);
  assert.equal(st(b), -Infinity);
  clear();
  ld(b, -0);
  ld(b, -1);
  r(b, 0xd9, 0xf3); // FPATAN: atan2(-0, -1) = -π
  assert.equal(st(b), -Math.PI);
  clear();
  ld(b, 0);
  r(b, 0xd9, 0xf4); // FXTRACT 0 → ZE: ST1 = -∞, ST0 = 0
  assert.equal(sw(b) & 4, 4);
  assert.equal(st(b), 0);
  assert.equal(st(b), -Infinity);
  clear();
  ld80(b, 0x7fff, 0x80000000, 0); // +∞
  r(b, 0xd9, 0xf4); // FXTRACT ∞ → ST1 = +∞, ST0 = ∞
  assert.equal(st(b), Infinity);
  assert.equal(st(b), Infinity);
  clear();
  ld80(b, 0, 0x00000001, 0); // a tiny denormal: 2^-16413
  r(b, 0xd9, 0xf4);
  assert.equal(sw(b) & 2, 2, "DE");
  assert.equal(st(b), 1);
  assert.equal(st(b), -16413);
  clear();
  ld80(b, 0x7fff, 0xc0000000, 5); // QNaN through FPTAN: both results the NaN
  r(b, 0xd9, 0xf2);
  assert.deepEqual(st80(b), [0x7fff, 0xc0000000, 5]);
  assert.deepEqual(st80(b), [0x7fff, 0xc0000000, 5]);
  assert.equal(sw(b) & 1, 0);
});
