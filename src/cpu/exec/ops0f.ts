/**
 * The 0F opcode map of an i686: system groups (dispatched to the system part), Jcc rel16/32,
 * SETcc, CMOVcc, bit operations, SHLD/SHRD, IMUL r,rm, CMPXCHG/CMPXCHG8B, XADD, BSWAP, MOVZX/MOVSX,
 * PUSH/POP FS/GS, LSS/LFS/LGS, CPUID/RDTSC/RDMSR/WRMSR/RDPMC/SYSENTER/SYSEXIT, UD2.
 * Reference: Intel SDM Vol. 2, two-byte opcode map (Appendix A.3).
 */
import type { Cpu } from "../cpu.ts";
import { ALL_ARITH, LZ_ADD, setLazy, testCC } from "../flags.ts";
import { CR4, F, SReg, Slot, Vec } from "../state.ts";
import { imul3, loadFar, popSeg } from "./exec.ts";
import {
  alu,
  getReg,
  jumpNear,
  readMem,
  readRm,
  relTarget,
  resultFlags,
  setArith,
  setReg,
  vsz,
  writeMem,
  writeRm,
} from "./ops.ts";
import {
  clts,
  cpuid,
  invlpg,
  lar,
  lgdt,
  lidt,
  lldt,
  lmsw,
  lsl,
  ltr,
  movFromCr,
  movFromDr,
  movToCr,
  movToDr,
  rdmsr,
  rdtsc,
  sysenter,
  sysexit,
  verr,
  verw,
  wrmsr,
} from "./sysapi.ts";

/** #GP(0) unless CPL 0 (real mode counts as CPL 0; vm86 as 3). Returns false on a fault. */
function needCpl0(cpu: Cpu): boolean {
  if (cpu.vm86 || (cpu.pmode && cpu.i32[Slot.CPL] !== 0)) {
    cpu.raise(Vec.GP, 0);
    return false;
  }
  return true;
}

/** Offset + delta wrapped to the address size. */
function eaPlus(cpu: Cpu, delta: number): number {
  return cpu.a32 ? (cpu.ea + delta) >>> 0 : (cpu.ea + delta) & 0xffff;
}

/** Executes 0F b. */
export function exec0f(cpu: Cpu, b: number): void {
  const r32 = cpu.r32;
  const i32 = cpu.i32;
  const reg = (cpu.modrm >> 3) & 7;
  switch (b) {
    case 0x00:
      group6(cpu, reg);
      return;
    case 0x01:
      group7(cpu, reg);
      return;
    case 0x02:
    case 0x03: {
      // LAR / LSL
      if (!cpu.pmode) {
        cpu.raise(Vec.UD);
        return;
      }
      const sel = readRm(cpu, 1);
      if (cpu.faulted) return;
      const v = b === 0x02 ? lar(cpu, sel) : lsl(cpu, sel);
      if (cpu.faulted) return;
      if (v === -1) {
        setArith(cpu, F.ZF, 0);
        return;
      }
      setArith(cpu, F.ZF, F.ZF);
      if (cpu.o32) r32[reg] = v;
      else cpu.r16[reg << 1] = b === 0x02 ? v & 0xff00 : v;
      return;
    }
    case 0x06:
      clts(cpu);
      return;
    case 0x08:
    case 0x09:
      // INVD / WBINVD: no caches to maintain
      needCpl0(cpu);
      return;
    case 0x0b:
      cpu.raise(Vec.UD);
      return;
    case 0x18:
    case 0x19:
    case 0x1a:
    case 0x1b:
    case 0x1c:
    case 0x1d:
    case 0x1e:
    case 0x1f:
      // hint NOPs (NOP Ev): no memory access
      return;
    case 0x20: {
      const v = movFromCr(cpu, reg);
      if (!cpu.faulted) r32[cpu.modrm & 7] = v;
      return;
    }
    case 0x21: {
      const v = movFromDr(cpu, reg);
      if (!cpu.faulted) r32[cpu.modrm & 7] = v;
      return;
    }
    case 0x22:
      movToCr(cpu, reg, r32[cpu.modrm & 7]!);
      return;
    case 0x23:
      movToDr(cpu, reg, r32[cpu.modrm & 7]!);
      return;
    case 0x30:
      wrmsr(cpu);
      return;
    case 0x31:
      rdtsc(cpu);
      return;
    case 0x32:
      rdmsr(cpu);
      return;
    case 0x33:
      // RDPMC: no performance counters are modelled; counters read as 0
      if ((i32[Slot.CR4]! & CR4.PCE) === 0 && !needCpl0(cpu)) return;
      if (r32[1]! >>> 0 > 1) {
        cpu.raise(Vec.GP, 0);
        return;
      }
      r32[0] = 0;
      r32[2] = 0;
      return;
    case 0x34:
      sysenter(cpu);
      return;
    case 0x35:
      sysexit(cpu);
      return;
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
      const sz = vsz(cpu);
      const v = readRm(cpu, sz);
      if (cpu.faulted) return;
      if (testCC(i32, b & 15)) setReg(cpu, sz, reg, v);
      return;
    }
    case 0x80:
    case 0x81:
    case 0x82:
    case 0x83:
    case 0x84:
    case 0x85:
    case 0x86:
    case 0x87:
    case 0x88:
    case 0x89:
    case 0x8a:
    case 0x8b:
    case 0x8c:
    case 0x8d:
    case 0x8e:
    case 0x8f:
      if (testCC(i32, b & 15)) jumpNear(cpu, relTarget(cpu, cpu.imm));
      return;
    case 0x90:
    case 0x91:
    case 0x92:
    case 0x93:
    case 0x94:
    case 0x95:
    case 0x96:
    case 0x97:
    case 0x98:
    case 0x99:
    case 0x9a:
    case 0x9b:
    case 0x9c:
    case 0x9d:
    case 0x9e:
    case 0x9f:
      writeRm(cpu, 0, testCC(i32, b & 15) ? 1 : 0);
      return;
    case 0xa0:
    case 0xa8: {
      const v = cpu.segSel[b === 0xa0 ? SReg.FS : SReg.GS]! & 0xffff;
      if (cpu.o32) cpu.push32(v);
      else cpu.push16(v);
      return;
    }
    case 0xa1:
    case 0xa9:
      popSeg(cpu, b === 0xa1 ? SReg.FS : SReg.GS);
      return;
    case 0xa2:
      cpuid(cpu);
      return;
    case 0xa3:
    case 0xab:
    case 0xb3:
    case 0xbb:
      bitOp(cpu, b === 0xa3 ? 0 : b === 0xab ? 1 : b === 0xb3 ? 2 : 3, getReg(cpu, vsz(cpu), reg), true);
      return;
    case 0xba:
      if (reg < 4) {
        cpu.raise(Vec.UD);
        return;
      }
      bitOp(cpu, reg - 4, cpu.imm & 0xff, false);
      return;
    case 0xa4:
    case 0xa5:
    case 0xac:
    case 0xad:
      shiftDouble(cpu, b >= 0xac, (b & 1) === 0 ? cpu.imm & 31 : cpu.r8[4]! & 31);
      return;
    case 0xaf: {
      const sz = vsz(cpu);
      const v = readRm(cpu, sz);
      if (cpu.faulted) return;
      setReg(cpu, sz, reg, imul3(cpu, sz, getReg(cpu, sz, reg), v));
      return;
    }
    case 0xb0:
    case 0xb1: {
      // CMPXCHG
      const sz = b === 0xb0 ? 0 : vsz(cpu);
      const d = readRm(cpu, sz);
      if (cpu.faulted) return;
      const acc = getReg(cpu, sz, 0);
      const m = sz === 0 ? 0xff : sz === 1 ? 0xffff : -1;
      if ((acc & m) === (d & m)) {
        writeRm(cpu, sz, getReg(cpu, sz, reg));
        if (cpu.faulted) return;
      } else {
        if (cpu.modrm < 0xc0) {
          writeRm(cpu, sz, d); // the locked cycle writes the old value back
          if (cpu.faulted) return;
        }
        setReg(cpu, sz, 0, d);
      }
      alu(cpu, 7, sz, acc, d);
      return;
    }
    case 0xb2:
      loadFar(cpu, SReg.SS);
      return;
    case 0xb4:
      loadFar(cpu, SReg.FS);
      return;
    case 0xb5:
      loadFar(cpu, SReg.GS);
      return;
    case 0xb6:
    case 0xb7:
    case 0xbe:
    case 0xbf: {
      // MOVZX / MOVSX
      const ssz = (b & 1) === 0 ? 0 : 1;
      let v = readRm(cpu, ssz);
      if (cpu.faulted) return;
      if (b >= 0xbe) v = ssz === 0 ? (v << 24) >> 24 : (v << 16) >> 16;
      setReg(cpu, vsz(cpu), reg, v);
      return;
    }
    case 0xbc:
    case 0xbd: {
      // BSF / BSR
      const sz = vsz(cpu);
      const v = readRm(cpu, sz) & (sz === 1 ? 0xffff : -1);
      if (cpu.faulted) return;
      if (v === 0) {
        setArith(cpu, F.ZF, F.ZF);
        return;
      }
      const idx = b === 0xbc ? 31 - Math.clz32(v & -v) : 31 - Math.clz32(v);
      setReg(cpu, sz, reg, idx);
      setArith(cpu, F.ZF, 0);
      return;
    }
    case 0xc0:
    case 0xc1: {
      // XADD
      const sz = b === 0xc0 ? 0 : vsz(cpu);
      const d = readRm(cpu, sz);
      if (cpu.faulted) return;
      const s = getReg(cpu, sz, reg);
      const m = sz === 0 ? 0xff : sz === 1 ? 0xffff : -1;
      const sum = (d + s) | 0;
      if (cpu.modrm < 0xc0) {
        writeRm(cpu, sz, sum & m);
        if (cpu.faulted) return;
        setReg(cpu, sz, reg, d);
      } else {
        setReg(cpu, sz, reg, d);
        writeRm(cpu, sz, sum & m);
      }
      setLazy(i32, LZ_ADD | sz, sum, d & m, s & m, ALL_ARITH);
      return;
    }
    case 0xc7: {
      // CMPXCHG8B m64
      if (reg !== 1 || cpu.modrm >= 0xc0) {
        cpu.raise(Vec.UD);
        return;
      }
      const lo = cpu.read32(cpu.seg, cpu.ea);
      const hi = cpu.read32(cpu.seg, eaPlus(cpu, 4));
      if (cpu.faulted) return;
      // both halves must be writable before either is written
      if (!cpu.checkSeg(cpu.seg, cpu.ea, 8, true)) return;
      if (lo === r32[0] && hi === r32[2]) {
        cpu.write32(cpu.seg, cpu.ea, r32[3]!);
        cpu.write32(cpu.seg, eaPlus(cpu, 4), r32[1]!);
        if (cpu.faulted) return;
        setArith(cpu, F.ZF, F.ZF);
      } else {
        cpu.write32(cpu.seg, cpu.ea, lo);
        cpu.write32(cpu.seg, eaPlus(cpu, 4), hi);
        if (cpu.faulted) return;
        r32[0] = lo;
        r32[2] = hi;
        setArith(cpu, F.ZF, 0);
      }
      return;
    }
    case 0xc8:
    case 0xc9:
    case 0xca:
    case 0xcb:
    case 0xcc:
    case 0xcd:
    case 0xce:
    case 0xcf: {
      const n = b & 7;
      if (!cpu.o32) {
        // BSWAP r16 is undefined; the P6 family clears the low word
        cpu.r16[n << 1] = 0;
        return;
      }
      const v = r32[n]!;
      r32[n] = (v >>> 24) | ((v >>> 8) & 0xff00) | ((v & 0xff00) << 8) | (v << 24) | 0;
      return;
    }
    default:
      cpu.raise(Vec.UD);
      return;
  }
}

/**
 * BT/BTS/BTR/BTC (k = 0..3). With a register bit offset and a memory operand the offset is
 * signed and selects a word/dword relative to the effective address.
 */
function bitOp(cpu: Cpu, k: number, offset: number, regOffset: boolean): void {
  const sz = vsz(cpu);
  const bits = sz === 2 ? 32 : 16;
  let seg = cpu.seg;
  let ea = cpu.ea;
  let bit: number;
  let v: number;
  const mem = cpu.modrm < 0xc0;
  if (mem && regOffset) {
    const off = sz === 2 ? offset | 0 : (offset << 16) >> 16;
    const delta = (off >> (sz === 2 ? 5 : 4)) * (bits >> 3);
    ea = cpu.a32 ? (ea + delta) >>> 0 : (ea + delta) & 0xffff;
    bit = off & (bits - 1);
  } else {
    bit = offset & (bits - 1);
  }
  if (mem) {
    v = readMem(cpu, sz, seg, ea);
    if (cpu.faulted) return;
  } else {
    v = getReg(cpu, sz, cpu.modrm & 7);
    seg = -1;
  }
  const cf = (v >>> bit) & 1;
  if (k !== 0) {
    const m = 1 << bit;
    const nv = k === 1 ? v | m : k === 2 ? v & ~m : v ^ m;
    if (mem) writeMem(cpu, sz, seg, ea, nv);
    else setReg(cpu, sz, cpu.modrm & 7, nv);
    if (cpu.faulted) return;
  }
  setArith(cpu, F.CF, cf !== 0 ? F.CF : 0);
}

/** SHLD (right = false) / SHRD Ev, Gv, count. */
function shiftDouble(cpu: Cpu, right: boolean, count: number): void {
  const sz = vsz(cpu);
  const d = readRm(cpu, sz);
  if (cpu.faulted || count === 0) return;
  const s = getReg(cpu, sz, (cpu.modrm >> 3) & 7);
  let r: number;
  let cf: boolean;
  if (sz === 2) {
    if (right) {
      r = (d >>> count) | (s << (32 - count));
      cf = ((d >>> (count - 1)) & 1) !== 0;
    } else {
      r = (d << count) | (s >>> (32 - count));
      cf = ((d >>> (32 - count)) & 1) !== 0;
    }
    r |= 0;
  } else {
    // 16 bits: shift the 32-bit pair (counts above 16 are undefined; this gives the P6 pattern
    // of shifting through the concatenation)
    if (right) {
      const pair = ((s & 0xffff) << 16) | (d & 0xffff);
      const big = count <= 16 ? pair >>> count : (((d & 0xffff) << 16) | (s & 0xffff)) >>> (count - 16);
      r = big & 0xffff;
      cf = count <= 16 ? ((pair >>> (count - 1)) & 1) !== 0 : ((s >>> (count - 17)) & 1) !== 0;
    } else {
      const pair = ((d & 0xffff) << 16) | (s & 0xffff);
      const big = count <= 16 ? pair << count : (((s & 0xffff) << 16) | (d & 0xffff)) << (count - 16);
      r = (big >>> 16) & 0xffff;
      cf = count <= 16 ? ((pair >>> (32 - count)) & 1) !== 0 : ((s >>> (32 - (count - 16))) & 1) !== 0;
    }
  }
  writeRm(cpu, sz, r);
  if (cpu.faulted) return;
  const sign = sz === 2 ? 0x80000000 | 0 : 0x8000;
  const of = ((r ^ d) & sign) !== 0;
  resultFlags(cpu, sz, r, cf, of);
}

/** 0F 00: SLDT STR LLDT LTR VERR VERW (protected mode only). */
function group6(cpu: Cpu, reg: number): void {
  if (!cpu.pmode) {
    cpu.raise(Vec.UD);
    return;
  }
  switch (reg) {
    case 0:
    case 1: {
      const v = cpu.segSel[reg === 0 ? SReg.LDTR : SReg.TR]! & 0xffff;
      if (cpu.modrm >= 0xc0) setReg(cpu, vsz(cpu), cpu.modrm & 7, v);
      else cpu.write16(cpu.seg, cpu.ea, v);
      return;
    }
    case 2:
    case 3: {
      const sel = readRm(cpu, 1);
      if (cpu.faulted) return;
      if (reg === 2) lldt(cpu, sel);
      else ltr(cpu, sel);
      return;
    }
    case 4:
    case 5: {
      const sel = readRm(cpu, 1);
      if (cpu.faulted) return;
      const ok = reg === 4 ? verr(cpu, sel) : verw(cpu, sel);
      if (cpu.faulted) return;
      setArith(cpu, F.ZF, ok ? F.ZF : 0);
      return;
    }
    default:
      cpu.raise(Vec.UD);
      return;
  }
}

/** 0F 01: SGDT SIDT LGDT LIDT SMSW LMSW INVLPG. */
function group7(cpu: Cpu, reg: number): void {
  const i32 = cpu.i32;
  const mem = cpu.modrm < 0xc0;
  switch (reg) {
    case 0:
    case 1: {
      if (!mem) {
        cpu.raise(Vec.UD);
        return;
      }
      const base = i32[reg === 0 ? Slot.GDTR_BASE : Slot.IDTR_BASE]!;
      const limit = i32[reg === 0 ? Slot.GDTR_LIMIT : Slot.IDTR_LIMIT]!;
      if (!cpu.checkSeg(cpu.seg, cpu.ea, 6, true)) return;
      cpu.write16(cpu.seg, cpu.ea, limit & 0xffff);
      cpu.write32(cpu.seg, eaPlus(cpu, 2), cpu.o32 ? base : base & 0xffffff);
      return;
    }
    case 2:
    case 3: {
      if (!mem) {
        cpu.raise(Vec.UD);
        return;
      }
      if (!needCpl0(cpu)) return;
      const limit = cpu.read16(cpu.seg, cpu.ea);
      let base = cpu.read32(cpu.seg, eaPlus(cpu, 2));
      if (cpu.faulted) return;
      if (!cpu.o32) base &= 0xffffff;
      if (reg === 2) lgdt(cpu, base, limit);
      else lidt(cpu, base, limit);
      return;
    }
    case 4: {
      const cr0 = i32[Slot.CR0]!;
      if (mem) cpu.write16(cpu.seg, cpu.ea, cr0 & 0xffff);
      else setReg(cpu, vsz(cpu), cpu.modrm & 7, cr0);
      return;
    }
    case 6: {
      const v = readRm(cpu, 1);
      if (cpu.faulted) return;
      lmsw(cpu, v);
      return;
    }
    case 7:
      if (!mem) {
        cpu.raise(Vec.UD);
        return;
      }
      invlpg(cpu, (cpu.segBase[cpu.seg]! + cpu.ea) | 0);
      return;
    default:
      cpu.raise(Vec.UD);
      return;
  }
}
