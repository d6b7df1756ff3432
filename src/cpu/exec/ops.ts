/**
 * Operand access and arithmetic helpers shared by the executor: ModRM register/memory operands by
 * size, ALU with lazy flags, shifts/rotates, multiply/divide, near jumps.
 *
 * Size codes: 0 = 8 bits, 1 = 16 bits, 2 = 32 bits. Values of 8/16-bit operands are unsigned;
 * 32-bit values are int32 (use >>> 0 for unsigned).
 */
import type { Cpu } from "../cpu.ts";
import {
  ALL_ARITH,
  LZ_A,
  LZ_ADD,
  LZ_B,
  LZ_KIND,
  LZ_LOGIC,
  LZ_MASK,
  LZ_RES,
  LZ_SUB,
  RES_FLAGS,
  flushFlags,
  getCF,
  setLazy,
} from "../flags.ts";
import { F, R8, SReg, Slot, Vec } from "../state.ts";

/** Operand size code of a v-sized operand. */
export function vsz(cpu: Cpu): number {
  return cpu.o32 ? 2 : 1;
}

/** Reads general register n of a size. */
export function getReg(cpu: Cpu, sz: number, n: number): number {
  if (sz === 0) return cpu.r8[R8[n]!]!;
  if (sz === 1) return cpu.r16[n << 1]!;
  return cpu.r32[n]!;
}

/** Writes general register n of a size (8/16-bit writes keep the rest of the register). */
export function setReg(cpu: Cpu, sz: number, n: number, v: number): void {
  if (sz === 0) cpu.r8[R8[n]!] = v;
  else if (sz === 1) cpu.r16[n << 1] = v;
  else cpu.r32[n] = v;
}

/** Reads memory of a size at seg:off. */
export function readMem(cpu: Cpu, sz: number, seg: number, off: number): number {
  if (sz === 0) return cpu.read8(seg, off);
  if (sz === 1) return cpu.read16(seg, off);
  return cpu.read32(seg, off);
}

/** Writes memory of a size at seg:off. */
export function writeMem(cpu: Cpu, sz: number, seg: number, off: number, v: number): void {
  if (sz === 0) cpu.write8(seg, off, v);
  else if (sz === 1) cpu.write16(seg, off, v);
  else cpu.write32(seg, off, v);
}

/** Reads the ModRM r/m operand. */
export function readRm(cpu: Cpu, sz: number): number {
  if (cpu.modrm >= 0xc0) return getReg(cpu, sz, cpu.modrm & 7);
  return readMem(cpu, sz, cpu.seg, cpu.ea);
}

/** Writes the ModRM r/m operand. */
export function writeRm(cpu: Cpu, sz: number, v: number): void {
  if (cpu.modrm >= 0xc0) setReg(cpu, sz, cpu.modrm & 7, v);
  else writeMem(cpu, sz, cpu.seg, cpu.ea, v);
}

/** Mask of a size. */
export function szMask(sz: number): number {
  return sz === 0 ? 0xff : sz === 1 ? 0xffff : -1;
}

/** Bits of a size. */
export function szBits(sz: number): number {
  return sz === 0 ? 8 : sz === 1 ? 16 : 32;
}

/**
 * The eight ALU operations (ADD OR ADC SBB AND SUB XOR CMP) on a, b of size sz; records flags.
 * Returns the (masked) result; CMP returns it too (the caller does not write it).
 */
export function alu(cpu: Cpu, k: number, sz: number, a: number, b: number): number {
  const i32 = cpu.i32;
  const m = szMask(sz);
  a &= m;
  b &= m;
  let r: number;
  switch (k) {
    case 0:
      r = (a + b) | 0;
      setLazy(i32, LZ_ADD | sz, r, a, b, ALL_ARITH);
      break;
    case 1:
      r = a | b;
      setLazy(i32, LZ_LOGIC | sz, r, a, b, ALL_ARITH);
      break;
    case 2:
      r = (a + b + getCF(i32)) | 0;
      setLazy(i32, LZ_ADD | sz, r, a, b, ALL_ARITH);
      break;
    case 3:
      r = (a - b - getCF(i32)) | 0;
      setLazy(i32, LZ_SUB | sz, r, a, b, ALL_ARITH);
      break;
    case 4:
      r = a & b;
      setLazy(i32, LZ_LOGIC | sz, r, a, b, ALL_ARITH);
      break;
    case 6:
      r = a ^ b;
      setLazy(i32, LZ_LOGIC | sz, r, a, b, ALL_ARITH);
      break;
    default: // 5 SUB, 7 CMP
      r = (a - b) | 0;
      setLazy(i32, LZ_SUB | sz, r, a, b, ALL_ARITH);
      break;
  }
  return r & m;
}

/** INC (dec = false) or DEC of a value; CF is kept. */
export function incDec(cpu: Cpu, sz: number, a: number, dec: boolean): number {
  const m = szMask(sz);
  a &= m;
  const r = dec ? (a - 1) | 0 : (a + 1) | 0;
  setLazy(cpu.i32, (dec ? LZ_SUB : LZ_ADD) | sz, r, a, 1, ALL_ARITH & ~F.CF);
  return r & m;
}

/** Sets the stored arithmetic flags in `mask` to the bits of `v` (materializing first). */
export function setArith(cpu: Cpu, mask: number, v: number): void {
  const f = flushFlags(cpu.i32);
  cpu.i32[Slot.EFLAGS] = (f & ~mask) | (v & mask);
}

/** Result flags (PF ZF SF from r, AF cleared) with CF and OF given. */
export function resultFlags(cpu: Cpu, sz: number, r: number, cf: boolean, of: boolean): void {
  const i32 = cpu.i32;
  if (!cf && !of) {
    // a logic record defines all six: CF = OF = AF = 0
    setLazy(i32, LZ_LOGIC | sz, r, 0, 0, ALL_ARITH);
    return;
  }
  // CF/OF stored, PF/ZF/SF/AF lazy: nothing else of the arithmetic flags is visible, no flush needed
  i32[Slot.EFLAGS] = (i32[Slot.EFLAGS]! & ~ALL_ARITH) | (cf ? F.CF : 0) | (of ? F.OF : 0);
  i32[LZ_KIND] = LZ_LOGIC | sz;
  i32[LZ_RES] = r;
  i32[LZ_A] = 0;
  i32[LZ_B] = 0;
  i32[LZ_MASK] = RES_FLAGS;
}

/**
 * Group 2: ROL ROR RCL RCR SHL SHR SAL SHR SAR (k = ModRM.reg) of v (size sz) by count (already
 * masked to 5 bits). Returns the result; count 0 changes nothing.
 */
export function shift(cpu: Cpu, k: number, sz: number, v: number, count: number): number {
  if (count === 0) return v;
  const bits = szBits(sz);
  const m = szMask(sz);
  const sign = sz === 2 ? 0x80000000 | 0 : 1 << (bits - 1);
  v &= m;
  let r: number;
  let cf: boolean;
  let of: boolean;
  switch (k) {
    case 0: {
      // ROL
      const n = count & (bits - 1);
      r = n === 0 ? v : ((v << n) | (v >>> (bits - n))) & m;
      cf = (r & 1) !== 0;
      of = ((r & sign) !== 0) !== cf;
      setArith(cpu, F.CF | F.OF, (cf ? F.CF : 0) | (of ? F.OF : 0));
      return r;
    }
    case 1: {
      // ROR
      const n = count & (bits - 1);
      r = n === 0 ? v : ((v >>> n) | (v << (bits - n))) & m;
      cf = (r & sign) !== 0;
      of = cf !== ((r & (sign >>> 1)) !== 0);
      setArith(cpu, F.CF | F.OF, (cf ? F.CF : 0) | (of ? F.OF : 0));
      return r;
    }
    case 2: {
      // RCL: rotate through CF, (bits+1)-bit rotation
      const n = count % (bits + 1);
      let c = getCF(cpu.i32);
      r = v;
      for (let i = 0; i < n; i++) {
        const out = (r & sign) !== 0 ? 1 : 0;
        r = ((r << 1) | c) & m;
        c = out;
      }
      cf = c !== 0;
      of = ((r & sign) !== 0) !== cf;
      setArith(cpu, F.CF | F.OF, (cf ? F.CF : 0) | (of ? F.OF : 0));
      return r;
    }
    case 3: {
      // RCR
      const n = count % (bits + 1);
      let c = getCF(cpu.i32);
      r = v;
      for (let i = 0; i < n; i++) {
        const out = r & 1;
        r = ((r >>> 1) | (c !== 0 ? sign : 0)) & m;
        c = out;
      }
      cf = c !== 0;
      of = ((r & sign) !== 0) !== ((r & (sign >>> 1)) !== 0);
      setArith(cpu, F.CF | F.OF, (cf ? F.CF : 0) | (of ? F.OF : 0));
      return r;
    }
    case 4:
    case 6: {
      // SHL/SAL
      if (count < bits) {
        r = (v << count) & m;
        cf = ((v >>> (bits - count)) & 1) !== 0;
      } else {
        r = 0;
        cf = count === bits ? (v & 1) !== 0 : false;
      }
      of = ((r & sign) !== 0) !== cf;
      resultFlags(cpu, sz, r, cf, of);
      return r;
    }
    case 5: {
      // SHR
      if (count < bits) {
        r = v >>> count;
        cf = ((v >>> (count - 1)) & 1) !== 0;
      } else {
        r = 0;
        cf = count === bits ? (v & sign) !== 0 : false;
      }
      of = (v & sign) !== 0;
      resultFlags(cpu, sz, r, cf, of);
      return r;
    }
    default: {
      // SAR
      const sv = sz === 0 ? (v << 24) >> 24 : sz === 1 ? (v << 16) >> 16 : v | 0;
      const n = count < bits ? count : bits - 1;
      r = (sv >> n) & m;
      cf = ((sv >> (count - 1 < bits ? count - 1 : bits - 1)) & 1) !== 0;
      resultFlags(cpu, sz, r, cf, false);
      return r;
    }
  }
}

// ---- 32x32 → 64 multiply and 64/32 divide without BigInt ----

/** High and low halves of the last mul32/imul32 (module state, no allocation). */
export let mulHi = 0;
export let mulLo = 0;

/** Unsigned 32x32 → 64 (mulHi:mulLo). */
export function mul32(a: number, b: number): void {
  a >>>= 0;
  b >>>= 0;
  const al = a & 0xffff;
  const ah = a >>> 16;
  const bl = b & 0xffff;
  const bh = b >>> 16;
  const ll = al * bl;
  const lh = al * bh;
  const hl = ah * bl;
  const hh = ah * bh;
  const mid = (ll >>> 16) + (lh & 0xffff) + (hl & 0xffff);
  mulLo = (mid << 16) | (ll & 0xffff) | 0;
  mulHi = (hh + (lh >>> 16) + (hl >>> 16) + Math.floor(mid / 65536)) | 0;
}

/** Signed 32x32 → 64 (mulHi:mulLo). */
export function imul32(a: number, b: number): void {
  mul32(a, b);
  // unsigned product minus the sign corrections: hi -= (a<0 ? b : 0) + (b<0 ? a : 0)
  let hi = mulHi;
  if ((a | 0) < 0) hi = (hi - (b | 0)) | 0;
  if ((b | 0) < 0) hi = (hi - (a | 0)) | 0;
  mulHi = hi;
}

/** Quotient and remainder of the last div64 (module state). */
export let divQ = 0;
export let divR = 0;

/** Unsigned (hi:lo) / d for hi < d (the quotient fits in 32 bits). d, hi, lo unsigned numbers. */
function div64u(hi: number, lo: number, d: number): void {
  let r = hi;
  r = r * 65536 + (lo >>> 16);
  const q1 = Math.floor(r / d);
  r -= q1 * d;
  r = r * 65536 + (lo & 0xffff);
  const q0 = Math.floor(r / d);
  r -= q0 * d;
  divQ = q1 * 65536 + q0;
  divR = r;
}

/** DIV: EDX:EAX / src (unsigned). False (#DE) on divide by zero or overflow. */
export function div64(hi: number, lo: number, d: number): boolean {
  hi >>>= 0;
  lo >>>= 0;
  d >>>= 0;
  if (d === 0 || hi >= d) return false;
  div64u(hi, lo, d);
  return true;
}

/** IDIV: EDX:EAX / src (signed). False (#DE) on divide by zero or overflow. */
export function idiv64(hi: number, lo: number, d: number): boolean {
  d |= 0;
  if (d === 0) return false;
  const neg = (hi | 0) < 0;
  let h = hi >>> 0;
  let l = lo >>> 0;
  if (neg) {
    // 64-bit negate
    l = (~l + 1) >>> 0;
    h = (~h + (l === 0 ? 1 : 0)) >>> 0;
  }
  const dn = d < 0;
  const da = dn ? -d : d; // up to 2^31 as a positive number
  if (h >= da) return false;
  div64u(h, l, da);
  const qneg = neg !== dn;
  if (qneg ? divQ > 0x80000000 : divQ > 0x7fffffff) return false;
  divQ = qneg ? -divQ | 0 : divQ | 0;
  divR = neg ? -divR | 0 : divR | 0;
  return true;
}

/**
 * Near jump to `target` (already masked to the operand size): #GP(0) beyond the CS limit.
 * Returns false on a fault.
 */
export function jumpNear(cpu: Cpu, target: number): boolean {
  if (target >>> 0 > cpu.segLimit[SReg.CS]! >>> 0) {
    cpu.raise(Vec.GP, 0);
    return false;
  }
  cpu.i32[Slot.EIP] = target;
  return true;
}

/** EIP + rel masked to the operand size. */
export function relTarget(cpu: Cpu, rel: number): number {
  const t = (cpu.i32[Slot.EIP]! + rel) | 0;
  return cpu.o32 ? t : t & 0xffff;
}
