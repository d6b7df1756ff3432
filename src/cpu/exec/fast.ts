/**
 * Fast paths for the most frequent instruction forms (32-bit operand size): MOV, the ALU block,
 * group 1 with immediates, LEA, INC/DEC, PUSH/POP, PUSH imm, MOV r32 imm, MOV eAX/moffs, Jcc,
 * CALL/RET/JMP near, LEAVE, CDQ, XCHG, MOVZX, MOVSX, IMUL, shifts and rotates (ROL/ROR), group 3
 * but DIV/IDIV, BT/BTS/BTR/BTC with imm8, and the byte forms (ALU, TEST, MOV) of any operand size.
 * It is a small function so that the JIT can inline the operand accesses that the big executor
 * (exec.ts) calls out of line. Every form here behaves exactly as in exec.ts/ops0f.ts (same
 * faults, same order of checks); anything else returns 0 before any side effect and the caller
 * runs the general executor. None of them reads time or does port I/O.
 *
 * JIT notes: effective addresses are summed with `| 0` at every step (a `+=` of int32s is typed
 * as a double by TurboFan and costs conversions and checks on every memory operand).
 */
import type { Cpu } from "../cpu.ts";
import * as fl from "../flags.ts";
import * as ops from "./ops.ts";
import * as st from "../state.ts";

const { getCF, setLazy, testCC, PARITY } = fl;
const { shift, resultFlags, alu, mul32, imul32 } = ops;

const LZ_KIND = fl.LZ_KIND;
const LZ_RES = fl.LZ_RES;
const LZ_A = fl.LZ_A;
const LZ_B = fl.LZ_B;
const LZ_MASK = fl.LZ_MASK;
const LZ_ADD = fl.LZ_ADD;
const LZ_SUB = fl.LZ_SUB;
const LZ_LOGIC = fl.LZ_LOGIC;
const ALL_ARITH = fl.ALL_ARITH;
const NO_CF = fl.NO_CF;
const RES_FLAGS = fl.RES_FLAGS;
const S_EIP = st.Slot.EIP;
const S_EFLAGS = st.Slot.EFLAGS;
const F_CF = st.F.CF;
const F_OF = st.F.OF;
const CS = st.SReg.CS;
const SS = st.SReg.SS;
const GP = st.Vec.GP;
const R8 = st.R8;

/** Condition code `cc` (Jcc low nibble); the common case (all six flags lazy) without calls. */
function cond(i32: Int32Array, cc: number): boolean {
  if (i32[LZ_MASK] !== ALL_ARITH) return testCC(i32, cc);
  const kind = i32[LZ_KIND]!;
  const size = kind & 3;
  const sh = size === 0 ? 24 : size === 1 ? 16 : 0;
  const r = i32[LZ_RES]!;
  const rs = r << sh;
  const op = kind & ~3;
  let t: boolean;
  switch (cc >> 1) {
    case 2: // Z
      t = rs === 0;
      break;
    case 4: // S
      t = rs < 0;
      break;
    case 5: // P
      t = PARITY[r & 0xff]! !== 0;
      break;
    default: {
      const a = i32[LZ_A]!;
      const b = i32[LZ_B]!;
      let cf = false;
      let of = false;
      if (op === LZ_ADD) {
        cf = ((a & b) | ((a | b) & ~r)) << sh < 0;
        of = ((a ^ r) & (b ^ r)) << sh < 0;
      } else if (op === LZ_SUB) {
        cf = ((~a & b) | ((~a | b) & r)) << sh < 0;
        of = ((a ^ b) & (a ^ r)) << sh < 0;
      }
      switch (cc >> 1) {
        case 0:
          t = of;
          break;
        case 1:
          t = cf;
          break;
        case 3:
          t = cf || rs === 0;
          break;
        case 6:
          t = rs < 0 !== of;
          break;
        default:
          t = rs === 0 || rs < 0 !== of;
          break;
      }
    }
  }
  return (cc & 1) === 0 ? t : !t;
}

/**
 * SHL/SAL (k = 4, 6), SHR (5), SAR (7) of a 32-bit value by count 1..31, as ops.shift() does it
 * (CF = last bit out; OF from the result's sign and CF for SHL, the old sign for SHR, 0 for SAR).
 */
function shift32(i32: Int32Array, k: number, v: number, count: number): number {
  let r: number;
  let cf: boolean;
  let of: boolean;
  if (k === 5) {
    r = v >>> count;
    cf = ((v >>> (count - 1)) & 1) !== 0;
    of = v < 0;
  } else if (k === 7) {
    r = v >> count;
    cf = ((v >> (count - 1)) & 1) !== 0;
    of = false;
  } else {
    r = v << count;
    cf = ((v >>> (32 - count)) & 1) !== 0;
    of = r < 0 !== cf;
  }
  // as ops.resultFlags(cpu, 2, r, cf, of)
  if (cf || of) i32[S_EFLAGS] = (i32[S_EFLAGS]! & ~ALL_ARITH) | (cf ? F_CF : 0) | (of ? F_OF : 0);
  i32[LZ_KIND] = LZ_LOGIC | 2;
  i32[LZ_RES] = r;
  i32[LZ_A] = 0;
  i32[LZ_B] = 0;
  i32[LZ_MASK] = cf || of ? RES_FLAGS : ALL_ARITH;
  return r;
}

/**
 * ROL (k = 0) / ROR (1) of a 32-bit value by count 1..31, as ops.shift() does it. Only CF and OF
 * change: they are stored and taken out of the lazy mask, which leaves the other four flags as
 * they were (the same EFLAGS as ops.setArith's flush-then-set, without the flush).
 */
function rotate32(i32: Int32Array, k: number, v: number, count: number): number {
  let r: number;
  let cf: boolean;
  let of: boolean;
  if (k === 0) {
    r = (v << count) | (v >>> (32 - count));
    cf = (r & 1) !== 0;
    of = r < 0 !== cf;
  } else {
    r = (v >>> count) | (v << (32 - count));
    cf = r < 0;
    of = cf !== ((r & 0x40000000) !== 0);
  }
  i32[S_EFLAGS] = (i32[S_EFLAGS]! & ~(F_CF | F_OF)) | (cf ? F_CF : 0) | (of ? F_OF : 0);
  i32[LZ_MASK] = i32[LZ_MASK]! & ~(F_CF | F_OF);
  return r;
}

/** cpu.push32(v), with a 32-bit stack written out. */
function push32(cpu: Cpu, v: number): void {
  if (!cpu.ss32) {
    cpu.push32(v);
    return;
  }
  const sp = (cpu.r32[4]! - 4) | 0;
  cpu.write32(SS, sp, v);
  if (!cpu.faulted) cpu.r32[4] = sp;
}

/** 32-bit ALU operation k on a, b (int32); records the flags; returns the result. */
function alu32(i32: Int32Array, k: number, a: number, b: number): number {
  let r: number;
  let kind: number;
  switch (k) {
    case 0:
      r = (a + b) | 0;
      kind = LZ_ADD | 2;
      break;
    case 1:
      r = a | b;
      kind = LZ_LOGIC | 2;
      break;
    case 2:
      r = (a + b + getCF(i32)) | 0;
      kind = LZ_ADD | 2;
      break;
    case 3:
      r = (a - b - getCF(i32)) | 0;
      kind = LZ_SUB | 2;
      break;
    case 4:
      r = a & b;
      kind = LZ_LOGIC | 2;
      break;
    case 6:
      r = a ^ b;
      kind = LZ_LOGIC | 2;
      break;
    default:
      r = (a - b) | 0;
      kind = LZ_SUB | 2;
      break;
  }
  i32[LZ_KIND] = kind;
  i32[LZ_RES] = r;
  i32[LZ_A] = a;
  i32[LZ_B] = b;
  i32[LZ_MASK] = ALL_ARITH;
  return r;
}

/** The effective address of a decoded memory operand (as Cpu.calcEa, from the entry's words; 32-bit ones as int32). */
function eaOf(cpu: Cpu, w1: number, disp: number): number {
  const e = w1 >>> 16;
  const base = e & 15;
  const index = (e >> 4) & 15;
  let v = disp | 0;
  if ((w1 & 2) !== 0) {
    if (base !== 15) v = (v + cpu.r32[base]!) | 0;
    if (index !== 15) v = (v + (cpu.r32[index]! << ((e >> 8) & 3))) | 0;
    // int32 (not >>> 0): the accessors take offsets modulo 2^32 and no heap number is made
    return v;
  }
  if (base !== 15) v = (v + cpu.r16[base << 1]!) | 0;
  if (index !== 15) v = (v + cpu.r16[index << 1]!) | 0;
  return v & 0xffff;
}

/**
 * Executes a decoded instruction (entry words w0, w1, disp, imm: see decoder.ts) when it is one of
 * the fast forms. Returns 0: not handled, nothing done (the caller loads the Cpu's per-instruction
 * fields and runs the executor); 1: done, EIP is the next instruction's (as the caller set it before
 * the call) unless the instruction faulted; 2: done, EIP may have been changed (a branch). The fast
 * forms read none of the per-instruction fields.
 */
export function execFast(cpu: Cpu, w0: number, w1: number, disp: number, imm: number): number {
  const op = w0 & 0x3ff;
  const modrm = (w0 >>> 16) & 0xff;
  const seg = (w1 >> 8) & 7;
  // eaOf() written out (it is not inlined otherwise). Every step is int32 (| 0), so that the JIT
  // keeps the sum in an integer register (a plain `+=` of int32s makes it a double).
  let ea = 0;
  if ((w1 & 0x20) !== 0) {
    const e = w1 >>> 16;
    const base = e & 15;
    const index = (e >> 4) & 15;
    ea = disp | 0;
    if ((w1 & 2) !== 0) {
      if (base !== 15) ea = (ea + cpu.r32[base]!) | 0;
      if (index !== 15) ea = (ea + (cpu.r32[index]! << ((e >> 8) & 3))) | 0;
    } else {
      if (base !== 15) ea = (ea + cpu.r16[base << 1]!) | 0;
      if (index !== 15) ea = (ea + cpu.r16[index << 1]!) | 0;
      ea &= 0xffff;
    }
  }
  if ((w1 & 1) === 0) return execFast16(cpu, op, modrm, seg, ea, imm);
  const r32 = cpu.r32;
  const i32 = cpu.i32;
  switch (op) {
    case 0x90:
      return 1;
    case 0x88:
    case 0x8a:
    case 0x38:
    case 0x3a:
    case 0x84:
    case 0x80:
    case 0x3c:
    case 0xc6:
    case 0x00:
    case 0x08:
    case 0x10:
    case 0x18:
    case 0x20:
    case 0x28:
    case 0x30:
    case 0x02:
    case 0x0a:
    case 0x12:
    case 0x1a:
    case 0x22:
    case 0x2a:
    case 0x32:
    case 0x04:
    case 0x0c:
    case 0x14:
    case 0x1c:
    case 0x24:
    case 0x2c:
    case 0x34:
    case 0xa0:
    case 0xa2:
    case 0xa8:
    case 0xb0:
    case 0xb1:
    case 0xb2:
    case 0xb3:
    case 0xb4:
    case 0xb5:
    case 0xb6:
    case 0xb7:
    case 0xf6:
      return execByte(cpu, op, modrm, seg, ea, imm);
    case 0xa1: {
      // MOV eAX, moffs
      const v = cpu.read32(seg, ea);
      if (!cpu.faulted) r32[0] = v;
      return 1;
    }
    case 0xa3:
      cpu.write32(seg, ea, r32[0]!);
      return 1;
    case 0xa9:
      alu32(i32, 4, r32[0]!, imm);
      return 1;
    case 0x68:
    case 0x6a:
      // PUSH imm (imm8 sign-extended by the decoder)
      push32(cpu, imm);
      return 1;
    case 0x99:
      r32[2] = r32[0]! >> 31;
      return 1;
    case 0xc9: {
      // LEAVE
      const bp = cpu.ss32 ? r32[5]! >>> 0 : cpu.r16[10]!;
      const v = cpu.read32(SS, bp);
      if (cpu.faulted) return 1;
      cpu.setSp(cpu.ss32 ? (bp + 4) | 0 : (bp + 4) & 0xffff);
      r32[5] = v;
      return 1;
    }
    case 0x87: {
      // XCHG Ev, Gv
      const reg = (modrm >> 3) & 7;
      let a: number;
      if (modrm >= 0xc0) a = r32[modrm & 7]!;
      else {
        a = cpu.read32(seg, ea);
        if (cpu.faulted) return 1;
      }
      const b = r32[reg]!;
      if (modrm >= 0xc0) r32[modrm & 7] = b;
      else {
        cpu.write32(seg, ea, b);
        if (cpu.faulted) return 1;
      }
      r32[reg] = a;
      return 1;
    }
    case 0xf7: {
      // group 3: TEST, NOT, NEG, MUL, IMUL (DIV and IDIV go to the executor)
      const k = (modrm >> 3) & 7;
      if (k >= 6) return 0;
      let v: number;
      if (modrm >= 0xc0) v = r32[modrm & 7]!;
      else {
        v = cpu.read32(seg, ea);
        if (cpu.faulted) return 1;
      }
      switch (k) {
        case 0:
        case 1:
          alu32(i32, 4, v, imm);
          return 1;
        case 2:
          if (modrm >= 0xc0) r32[modrm & 7] = ~v;
          else cpu.write32(seg, ea, ~v);
          return 1;
        case 3: {
          const r = (0 - v) | 0;
          if (modrm >= 0xc0) r32[modrm & 7] = r;
          else {
            cpu.write32(seg, ea, r);
            if (cpu.faulted) return 1;
          }
          setLazy(i32, LZ_SUB | 2, r, 0, v, ALL_ARITH);
          return 1;
        }
        case 4: {
          mul32(r32[0]!, v);
          const lo = ops.mulLo;
          const hi = ops.mulHi;
          r32[0] = lo;
          r32[2] = hi;
          resultFlags(cpu, 2, lo, hi !== 0, hi !== 0);
          return 1;
        }
        default: {
          imul32(r32[0]!, v);
          const lo = ops.mulLo;
          const hi = ops.mulHi;
          r32[0] = lo;
          r32[2] = hi;
          const ov = hi !== lo >> 31;
          resultFlags(cpu, 2, lo, ov, ov);
          return 1;
        }
      }
    }
    case 0x1be:
    case 0x1bf: {
      // MOVSX Gv, Eb/Ew
      let v: number;
      if (modrm >= 0xc0) v = op === 0x1be ? cpu.r8[R8[modrm & 7]!]! : cpu.r16[(modrm & 7) << 1]!;
      else {
        v = op === 0x1be ? cpu.read8(seg, ea) : cpu.read16(seg, ea);
        if (cpu.faulted) return 1;
      }
      r32[(modrm >> 3) & 7] = op === 0x1be ? (v << 24) >> 24 : (v << 16) >> 16;
      return 1;
    }
    case 0x1ba: {
      // BT/BTS/BTR/BTC Ev, imm8 (/0../3 are #UD: the executor)
      const k = (modrm >> 3) & 7;
      if (k < 4) return 0;
      const bit = imm & 31;
      let v: number;
      if (modrm >= 0xc0) v = r32[modrm & 7]!;
      else {
        v = cpu.read32(seg, ea);
        if (cpu.faulted) return 1;
      }
      const cf = (v >>> bit) & 1;
      if (k !== 4) {
        const m = 1 << bit;
        const nv = k === 5 ? v | m : k === 6 ? v & ~m : v ^ m;
        if (modrm >= 0xc0) r32[modrm & 7] = nv;
        else {
          cpu.write32(seg, ea, nv);
          if (cpu.faulted) return 1;
        }
      }
      // only CF changes: stored, and taken out of the lazy mask (as setArith, without its flush)
      i32[S_EFLAGS] = (i32[S_EFLAGS]! & ~F_CF) | (cf !== 0 ? F_CF : 0);
      i32[LZ_MASK] = i32[LZ_MASK]! & ~F_CF;
      return 1;
    }
    case 0xc7: {
      if ((modrm & 0x38) !== 0) return 0;
      if (modrm >= 0xc0) r32[modrm & 7] = imm;
      else cpu.write32(seg, ea, imm);
      return 1;
    }
    case 0xff: {
      // group 5: INC, DEC, CALL near, JMP near, PUSH (far forms and /7 go to the executor)
      const k = (modrm >> 3) & 7;
      if (k === 3 || k === 5 || k === 7) return 0;
      let v: number;
      if (modrm >= 0xc0) v = r32[modrm & 7]!;
      else {
        v = cpu.read32(seg, ea);
        if (cpu.faulted) return 1;
      }
      switch (k) {
        case 0:
        case 1: {
          const r = k === 1 ? (v - 1) | 0 : (v + 1) | 0;
          setLazy(i32, k === 1 ? LZ_SUB | 2 : LZ_ADD | 2, r, v, 1, NO_CF);
          if (modrm >= 0xc0) r32[modrm & 7] = r;
          else cpu.write32(seg, ea, r);
          return 1;
        }
        case 2:
          if (v >>> 0 > cpu.segLimit[CS]! >>> 0) {
            cpu.raise(GP, 0);
            return 1;
          }
          push32(cpu, i32[S_EIP]!);
          if (!cpu.faulted) i32[S_EIP] = v;
          return 2;
        case 4:
          if (v >>> 0 > cpu.segLimit[CS]! >>> 0) {
            cpu.raise(GP, 0);
            return 1;
          }
          i32[S_EIP] = v;
          return 2;
        default:
          push32(cpu, v);
          return 1;
      }
    }
    case 0x190:
    case 0x191:
    case 0x192:
    case 0x193:
    case 0x194:
    case 0x195:
    case 0x196:
    case 0x197:
    case 0x198:
    case 0x199:
    case 0x19a:
    case 0x19b:
    case 0x19c:
    case 0x19d:
    case 0x19e:
    case 0x19f: {
      // SETcc Eb
      const v = cond(i32, op & 15) ? 1 : 0;
      if (modrm >= 0xc0) cpu.r8[R8[modrm & 7]!] = v;
      else cpu.write8(seg, ea, v);
      return 1;
    }
    case 0x140:
    case 0x141:
    case 0x142:
    case 0x143:
    case 0x144:
    case 0x145:
    case 0x146:
    case 0x147:
    case 0x148:
    case 0x149:
    case 0x14a:
    case 0x14b:
    case 0x14c:
    case 0x14d:
    case 0x14e:
    case 0x14f: {
      // CMOVcc Gv, Ev (the source is read whether or not the move happens)
      let v: number;
      if (modrm >= 0xc0) v = r32[modrm & 7]!;
      else {
        v = cpu.read32(seg, ea);
        if (cpu.faulted) return 1;
      }
      if (cond(i32, op & 15)) r32[(modrm >> 3) & 7] = v;
      return 1;
    }
    case 0x01:
    case 0x09:
    case 0x11:
    case 0x19:
    case 0x21:
    case 0x29:
    case 0x31:
    case 0x39:
    case 0x85: {
      // ALU Ev, Gv (and TEST Ev, Gv)
      const k = op === 0x85 ? 4 : op >> 3;
      const b = r32[(modrm >> 3) & 7]!;
      if (modrm >= 0xc0) {
        // alu32(k, ...) written out: this is the hottest path
        const ia = r32[modrm & 7]!;
        const ib = b;
        let r: number;
        let ik: number;
        switch (k) {
          case 0:
            r = (ia + ib) | 0;
            ik = LZ_ADD | 2;
            break;
          case 1:
            r = ia | ib;
            ik = LZ_LOGIC | 2;
            break;
          case 2:
            r = (ia + ib + getCF(i32)) | 0;
            ik = LZ_ADD | 2;
            break;
          case 3:
            r = (ia - ib - getCF(i32)) | 0;
            ik = LZ_SUB | 2;
            break;
          case 4:
            r = ia & ib;
            ik = LZ_LOGIC | 2;
            break;
          case 6:
            r = ia ^ ib;
            ik = LZ_LOGIC | 2;
            break;
          default:
            r = (ia - ib) | 0;
            ik = LZ_SUB | 2;
            break;
        }
        i32[LZ_KIND] = ik;
        i32[LZ_RES] = r;
        i32[LZ_A] = ia;
        i32[LZ_B] = ib;
        i32[LZ_MASK] = ALL_ARITH;
        if (k !== 7 && op !== 0x85) r32[modrm & 7] = r;
        return 1;
      }
      const a = cpu.read32(seg, ea);
      if (cpu.faulted) return 1;
      const r = alu32(i32, k, a, b);
      if (k !== 7 && op !== 0x85) cpu.write32(seg, ea, r);
      return 1;
    }
    case 0x03:
    case 0x0b:
    case 0x13:
    case 0x1b:
    case 0x23:
    case 0x2b:
    case 0x33:
    case 0x3b: {
      // ALU Gv, Ev
      const reg = (modrm >> 3) & 7;
      let b: number;
      if (modrm >= 0xc0) b = r32[modrm & 7]!;
      else {
        b = cpu.read32(seg, ea);
        if (cpu.faulted) return 1;
      }
      const kk = op >> 3;
      // alu32(kk, ...) written out: this is the hottest path
      const ia = r32[reg]!;
      const ib = b;
      let r: number;
      let ik: number;
      switch (kk) {
        case 0:
          r = (ia + ib) | 0;
          ik = LZ_ADD | 2;
          break;
        case 1:
          r = ia | ib;
          ik = LZ_LOGIC | 2;
          break;
        case 2:
          r = (ia + ib + getCF(i32)) | 0;
          ik = LZ_ADD | 2;
          break;
        case 3:
          r = (ia - ib - getCF(i32)) | 0;
          ik = LZ_SUB | 2;
          break;
        case 4:
          r = ia & ib;
          ik = LZ_LOGIC | 2;
          break;
        case 6:
          r = ia ^ ib;
          ik = LZ_LOGIC | 2;
          break;
        default:
          r = (ia - ib) | 0;
          ik = LZ_SUB | 2;
          break;
      }
      i32[LZ_KIND] = ik;
      i32[LZ_RES] = r;
      i32[LZ_A] = ia;
      i32[LZ_B] = ib;
      i32[LZ_MASK] = ALL_ARITH;
      if (op !== 0x3b) r32[reg] = r;
      return 1;
    }
    case 0x05:
    case 0x0d:
    case 0x15:
    case 0x1d:
    case 0x25:
    case 0x2d:
    case 0x35:
    case 0x3d: {
      const r = alu32(i32, op >> 3, r32[0]!, imm);
      if (op !== 0x3d) r32[0] = r;
      return 1;
    }
    case 0x81:
    case 0x83: {
      const k = (modrm >> 3) & 7;
      if (modrm >= 0xc0) {
        // alu32(k, ...) written out: this is the hottest path
        const ia = r32[modrm & 7]!;
        const ib = imm;
        let r: number;
        let ik: number;
        switch (k) {
          case 0:
            r = (ia + ib) | 0;
            ik = LZ_ADD | 2;
            break;
          case 1:
            r = ia | ib;
            ik = LZ_LOGIC | 2;
            break;
          case 2:
            r = (ia + ib + getCF(i32)) | 0;
            ik = LZ_ADD | 2;
            break;
          case 3:
            r = (ia - ib - getCF(i32)) | 0;
            ik = LZ_SUB | 2;
            break;
          case 4:
            r = ia & ib;
            ik = LZ_LOGIC | 2;
            break;
          case 6:
            r = ia ^ ib;
            ik = LZ_LOGIC | 2;
            break;
          default:
            r = (ia - ib) | 0;
            ik = LZ_SUB | 2;
            break;
        }
        i32[LZ_KIND] = ik;
        i32[LZ_RES] = r;
        i32[LZ_A] = ia;
        i32[LZ_B] = ib;
        i32[LZ_MASK] = ALL_ARITH;
        if (k !== 7) r32[modrm & 7] = r;
        return 1;
      }
      const a = cpu.read32(seg, ea);
      if (cpu.faulted) return 1;
      const r = alu32(i32, k, a, imm);
      if (k !== 7) cpu.write32(seg, ea, r);
      return 1;
    }
    case 0x89: {
      const v = r32[(modrm >> 3) & 7]!;
      if (modrm >= 0xc0) r32[modrm & 7] = v;
      else cpu.write32(seg, ea, v);
      return 1;
    }
    case 0x8b: {
      if (modrm >= 0xc0) {
        r32[(modrm >> 3) & 7] = r32[modrm & 7]!;
        return 1;
      }
      const v = cpu.read32(seg, ea);
      if (!cpu.faulted) r32[(modrm >> 3) & 7] = v;
      return 1;
    }
    case 0x8d: {
      if (modrm >= 0xc0) return 0;
      r32[(modrm >> 3) & 7] = ea;
      return 1;
    }
    case 0x40:
    case 0x41:
    case 0x42:
    case 0x43:
    case 0x44:
    case 0x45:
    case 0x46:
    case 0x47:
    case 0x48:
    case 0x49:
    case 0x4a:
    case 0x4b:
    case 0x4c:
    case 0x4d:
    case 0x4e:
    case 0x4f: {
      const n = op & 7;
      const a = r32[n]!;
      const dec = op >= 0x48;
      const r = dec ? (a - 1) | 0 : (a + 1) | 0;
      setLazy(i32, dec ? LZ_SUB | 2 : LZ_ADD | 2, r, a, 1, NO_CF);
      r32[n] = r;
      return 1;
    }
    case 0x50:
    case 0x51:
    case 0x52:
    case 0x53:
    case 0x54:
    case 0x55:
    case 0x56:
    case 0x57:
      push32(cpu, r32[op & 7]!);
      return 1;
    case 0x58:
    case 0x59:
    case 0x5a:
    case 0x5b:
    case 0x5c:
    case 0x5d:
    case 0x5e:
    case 0x5f: {
      if (cpu.ss32) {
        // cpu.pop32() written out for a 32-bit stack
        const sp = r32[4]!;
        const v = cpu.read32(SS, sp);
        if (!cpu.faulted) {
          r32[4] = (sp + 4) | 0;
          r32[op & 7] = v;
        }
        return 1;
      }
      const v = cpu.pop32();
      if (!cpu.faulted) r32[op & 7] = v;
      return 1;
    }
    case 0xb8:
    case 0xb9:
    case 0xba:
    case 0xbb:
    case 0xbc:
    case 0xbd:
    case 0xbe:
    case 0xbf:
      r32[op & 7] = imm;
      return 1;
    case 0x70:
    case 0x71:
    case 0x72:
    case 0x73:
    case 0x74:
    case 0x75:
    case 0x76:
    case 0x77:
    case 0x78:
    case 0x79:
    case 0x7a:
    case 0x7b:
    case 0x7c:
    case 0x7d:
    case 0x7e:
    case 0x7f:
    case 0x180:
    case 0x181:
    case 0x182:
    case 0x183:
    case 0x184:
    case 0x185:
    case 0x186:
    case 0x187:
    case 0x188:
    case 0x189:
    case 0x18a:
    case 0x18b:
    case 0x18c:
    case 0x18d:
    case 0x18e:
    case 0x18f:
    case 0xe9:
    case 0xeb: {
      if (op !== 0xe9 && op !== 0xeb) {
        // cond() written out for the usual case: all six flags lazy from a 32-bit ALU record
        const cc = op & 15;
        let t: boolean;
        const kind = i32[LZ_KIND]!;
        if (i32[LZ_MASK] === ALL_ARITH && (kind & 3) === 2) {
          const r = i32[LZ_RES]!;
          const a = i32[LZ_A]!;
          const b = i32[LZ_B]!;
          const kop = kind & ~3;
          switch (cc >> 1) {
            case 2: // Z
              t = r === 0;
              break;
            case 1: // B
              t = kop === LZ_SUB ? ((~a & b) | ((~a | b) & r)) < 0 : kop === LZ_ADD ? ((a & b) | ((a | b) & ~r)) < 0 : false;
              break;
            case 3: // BE
              t =
                r === 0 ||
                (kop === LZ_SUB ? ((~a & b) | ((~a | b) & r)) < 0 : kop === LZ_ADD ? ((a & b) | ((a | b) & ~r)) < 0 : false);
              break;
            case 4: // S
              t = r < 0;
              break;
            default:
              t = cond(i32, cc & ~1);
              break;
          }
        } else {
          t = cond(i32, cc & ~1);
        }
        if (t === ((cc & 1) !== 0)) return 1;
      }
      const t = (i32[S_EIP]! + imm) | 0;
      if (t >>> 0 > cpu.segLimit[CS]! >>> 0) {
        cpu.raise(GP, 0);
        return 1;
      }
      i32[S_EIP] = t;
      return 2;
    }
    case 0xe2: {
      // LOOP: the count register by address size
      const a32 = (w1 & 2) !== 0;
      const cnt = a32 ? (r32[1]! - 1) | 0 : (cpu.r16[2]! - 1) & 0xffff;
      if (cnt !== 0) {
        const t = (i32[S_EIP]! + imm) | 0;
        if (t >>> 0 > cpu.segLimit[CS]! >>> 0) {
          cpu.raise(GP, 0);
          return 1;
        }
        i32[S_EIP] = t;
      }
      if (a32) r32[1] = cnt;
      else cpu.r16[2] = cnt;
      return cnt !== 0 ? 2 : 1;
    }
    case 0xe8: {
      const t = (i32[S_EIP]! + imm) | 0;
      if (t >>> 0 > cpu.segLimit[CS]! >>> 0) {
        cpu.raise(GP, 0);
        return 1;
      }
      push32(cpu, i32[S_EIP]!);
      if (!cpu.faulted) i32[S_EIP] = t;
      return 2;
    }
    case 0xc3: {
      // cpu.stackOff()/setSp() written out for a 32-bit stack
      const ss32 = cpu.ss32;
      const sp = ss32 ? r32[4]! : cpu.r16[8]!;
      const t = cpu.read32(SS, sp);
      if (cpu.faulted) return 1;
      if (t >>> 0 > cpu.segLimit[CS]! >>> 0) {
        cpu.raise(GP, 0);
        return 1;
      }
      i32[S_EIP] = t;
      if (ss32) r32[4] = (sp + 4) | 0;
      else cpu.r16[8] = sp + 4;
      return 2;
    }
    case 0x1b6:
    case 0x1b7: {
      let v: number;
      if (modrm >= 0xc0) v = op === 0x1b6 ? cpu.r8[R8[modrm & 7]!]! : cpu.r16[(modrm & 7) << 1]!;
      else {
        v = op === 0x1b6 ? cpu.read8(seg, ea) : cpu.read16(seg, ea);
        if (cpu.faulted) return 1;
      }
      r32[(modrm >> 3) & 7] = v;
      return 1;
    }
    case 0x1af: {
      let v: number;
      if (modrm >= 0xc0) v = r32[modrm & 7]!;
      else {
        v = cpu.read32(seg, ea);
        if (cpu.faulted) return 1;
      }
      const reg = (modrm >> 3) & 7;
      const a = r32[reg]!;
      const r = Math.imul(a, v);
      // the exact product equals the truncated one only when it fits (a rounded big product never does)
      const ov = a * v !== r;
      resultFlags(cpu, 2, r, ov, ov);
      r32[reg] = r;
      return 1;
    }
    case 0xc1:
    case 0xd1:
    case 0xd3: {
      const count = (op === 0xc1 ? imm : op === 0xd1 ? 1 : cpu.r8[4]!) & 0x1f;
      if (modrm >= 0xc0) {
        if (count === 0) return 1;
        const n = modrm & 7;
        const k = (modrm >> 3) & 7;
        if (k >= 4) {
          r32[n] = shift32(i32, k, r32[n]!, count);
          return 1;
        }
        if (k < 2) {
          r32[n] = rotate32(i32, k, r32[n]!, count);
          return 1;
        }
        r32[n] = shift(cpu, k, 2, r32[n]!, count);
        return 1;
      }
      const v = cpu.read32(seg, ea);
      if (cpu.faulted || count === 0) return 1;
      const r = shift(cpu, (modrm >> 3) & 7, 2, v, count);
      cpu.write32(seg, ea, r);
      return 1;
    }
    default:
      return 0;
  }
}

/** Byte forms (independent of the operand size): MOV, CMP, TEST, group 1 with imm8, MOV Eb, Ib. */
function execByte(cpu: Cpu, op: number, modrm: number, seg: number, ea: number, imm: number): number {
  const r8 = cpu.r8;
  switch (op) {
    case 0x88: {
      const v = r8[R8[(modrm >> 3) & 7]!]!;
      if (modrm >= 0xc0) r8[R8[modrm & 7]!] = v;
      else cpu.write8(seg, ea, v);
      return 1;
    }
    case 0x8a: {
      let v: number;
      if (modrm >= 0xc0) v = r8[R8[modrm & 7]!]!;
      else {
        v = cpu.read8(seg, ea);
        if (cpu.faulted) return 1;
      }
      r8[R8[(modrm >> 3) & 7]!] = v;
      return 1;
    }
    case 0x38:
    case 0x84: {
      // CMP Eb, Gb / TEST Eb, Gb
      let a: number;
      if (modrm >= 0xc0) a = r8[R8[modrm & 7]!]!;
      else {
        a = cpu.read8(seg, ea);
        if (cpu.faulted) return 1;
      }
      alu(cpu, op === 0x38 ? 7 : 4, 0, a, r8[R8[(modrm >> 3) & 7]!]!);
      return 1;
    }
    case 0x3a: {
      // CMP Gb, Eb
      let b: number;
      if (modrm >= 0xc0) b = r8[R8[modrm & 7]!]!;
      else {
        b = cpu.read8(seg, ea);
        if (cpu.faulted) return 1;
      }
      alu(cpu, 7, 0, r8[R8[(modrm >> 3) & 7]!]!, b);
      return 1;
    }
    case 0x3c:
      alu(cpu, 7, 0, r8[0]!, imm);
      return 1;
    case 0x80: {
      const k = (modrm >> 3) & 7;
      if (modrm >= 0xc0) {
        const n = R8[modrm & 7]!;
        const r = alu(cpu, k, 0, r8[n]!, imm);
        if (k !== 7) r8[n] = r;
        return 1;
      }
      const a = cpu.read8(seg, ea);
      if (cpu.faulted) return 1;
      const r = alu(cpu, k, 0, a, imm);
      if (k !== 7) cpu.write8(seg, ea, r);
      return 1;
    }
    case 0x00:
    case 0x08:
    case 0x10:
    case 0x18:
    case 0x20:
    case 0x28:
    case 0x30: {
      // ALU Eb, Gb
      const k = op >> 3;
      const b = r8[R8[(modrm >> 3) & 7]!]!;
      if (modrm >= 0xc0) {
        const n = R8[modrm & 7]!;
        r8[n] = alu(cpu, k, 0, r8[n]!, b);
        return 1;
      }
      const a = cpu.read8(seg, ea);
      if (cpu.faulted) return 1;
      const r = alu(cpu, k, 0, a, b);
      cpu.write8(seg, ea, r);
      return 1;
    }
    case 0x02:
    case 0x0a:
    case 0x12:
    case 0x1a:
    case 0x22:
    case 0x2a:
    case 0x32: {
      // ALU Gb, Eb
      let b: number;
      if (modrm >= 0xc0) b = r8[R8[modrm & 7]!]!;
      else {
        b = cpu.read8(seg, ea);
        if (cpu.faulted) return 1;
      }
      const n = R8[(modrm >> 3) & 7]!;
      r8[n] = alu(cpu, op >> 3, 0, r8[n]!, b);
      return 1;
    }
    case 0x04:
    case 0x0c:
    case 0x14:
    case 0x1c:
    case 0x24:
    case 0x2c:
    case 0x34:
      r8[0] = alu(cpu, op >> 3, 0, r8[0]!, imm);
      return 1;
    case 0xa8:
      alu(cpu, 4, 0, r8[0]!, imm);
      return 1;
    case 0xa0: {
      // MOV AL, moffs
      const v = cpu.read8(seg, ea);
      if (!cpu.faulted) r8[0] = v;
      return 1;
    }
    case 0xa2:
      cpu.write8(seg, ea, r8[0]!);
      return 1;
    case 0xb0:
    case 0xb1:
    case 0xb2:
    case 0xb3:
    case 0xb4:
    case 0xb5:
    case 0xb6:
    case 0xb7:
      r8[R8[op & 7]!] = imm;
      return 1;
    case 0xf6: {
      // TEST Eb, Ib (the rest of group 3 goes to the executor)
      if ((modrm & 0x30) !== 0) return 0;
      let a: number;
      if (modrm >= 0xc0) a = r8[R8[modrm & 7]!]!;
      else {
        a = cpu.read8(seg, ea);
        if (cpu.faulted) return 1;
      }
      alu(cpu, 4, 0, a, imm);
      return 1;
    }
    default: {
      // C6 MOV Eb, Ib
      if ((modrm & 0x38) !== 0) return 0;
      if (modrm >= 0xc0) r8[R8[modrm & 7]!] = imm;
      else cpu.write8(seg, ea, imm);
      return 1;
    }
  }
}

/** 16-bit operand size: MOV Ew/Gw, shifts of words, and the byte forms. */
function execFast16(cpu: Cpu, op: number, modrm: number, seg: number, ea: number, imm: number): number {
  const r16 = cpu.r16;
  switch (op) {
    case 0x89: {
      const v = r16[((modrm >> 3) & 7) << 1]!;
      if (modrm >= 0xc0) r16[(modrm & 7) << 1] = v;
      else cpu.write16(seg, ea, v);
      return 1;
    }
    case 0x8b: {
      let v: number;
      if (modrm >= 0xc0) v = r16[(modrm & 7) << 1]!;
      else {
        v = cpu.read16(seg, ea);
        if (cpu.faulted) return 1;
      }
      r16[((modrm >> 3) & 7) << 1] = v;
      return 1;
    }
    case 0xc1:
    case 0xd1:
    case 0xd3: {
      const count = (op === 0xc1 ? imm : op === 0xd1 ? 1 : cpu.r8[4]!) & 0x1f;
      if (modrm >= 0xc0) {
        if (count === 0) return 1;
        const n = (modrm & 7) << 1;
        r16[n] = shift(cpu, (modrm >> 3) & 7, 1, r16[n]!, count);
        return 1;
      }
      const v = cpu.read16(seg, ea);
      if (cpu.faulted || count === 0) return 1;
      const r = shift(cpu, (modrm >> 3) & 7, 1, v, count);
      cpu.write16(seg, ea, r);
      return 1;
    }
    case 0x88:
    case 0x8a:
    case 0x38:
    case 0x3a:
    case 0x84:
    case 0x80:
    case 0x3c:
    case 0xc6:
    case 0x00:
    case 0x08:
    case 0x10:
    case 0x18:
    case 0x20:
    case 0x28:
    case 0x30:
    case 0x02:
    case 0x0a:
    case 0x12:
    case 0x1a:
    case 0x22:
    case 0x2a:
    case 0x32:
    case 0x04:
    case 0x0c:
    case 0x14:
    case 0x1c:
    case 0x24:
    case 0x2c:
    case 0x34:
    case 0xa0:
    case 0xa2:
    case 0xa8:
    case 0xb0:
    case 0xb1:
    case 0xb2:
    case 0xb3:
    case 0xb4:
    case 0xb5:
    case 0xb6:
    case 0xb7:
    case 0xf6:
      return execByte(cpu, op, modrm, seg, ea, imm);
    default:
      return 0;
  }
}
