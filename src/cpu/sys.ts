/**
 * System instructions: control and debug registers, CLTS, LMSW, LGDT/LIDT, INVLPG, MSRs, RDTSC,
 * CPUID, SYSENTER/SYSEXIT, and the I/O permission check.
 * References: Intel SDM Vol. 3A ch. 2.5 (control registers), 17.2 (debug registers), Vol. 2 MOV CR,
 * MOV DR, RDMSR/WRMSR, RDTSC, CPUID (leaves 0, 1, 2; unknown leaves return the highest basic leaf),
 * SYSENTER/SYSEXIT; Vol. 1 ch. 18.5 (I/O permission bit map).
 */
import type { Cpu } from "./cpu.ts";
import { CR0, CR4, F, SReg, Slot, Vec } from "./state.ts";
import { ATTR_UNUSABLE } from "./seg.ts";

/** CR0 bits a write may set (others are ignored); ET reads as 1 (P6). */
const CR0_WRITABLE = CR0.PE | CR0.MP | CR0.EM | CR0.TS | CR0.NE | CR0.WP | CR0.AM | CR0.NW | CR0.CD | CR0.PG;
/** CR4 bits this CPU has (a write setting any other bit is #GP(0)). No PAE. */
export const CR4_SUPPORTED = CR4.VME | CR4.PVI | CR4.TSD | CR4.DE | CR4.PSE | CR4.MCE | CR4.PGE | CR4.PCE;
/** CR4 bits whose change invalidates translations. */
const CR4_PAGING = CR4.PSE | CR4.PGE | CR4.PAE;

/** DR6 bits that read as 1 on a P6 (4..11, 16..31); DR7 bit 10 reads as 1. */
const DR6_ONES = 0xffff0ff0 | 0;
const DR7_ONES = 0x400;

/** True (after raising #GP(0)) when CPL is not 0 (vm86 is CPL 3). */
function notRing0(cpu: Cpu): boolean {
  if ((cpu.pmode || cpu.vm86) && cpu.i32[Slot.CPL] !== 0) {
    cpu.raise(Vec.GP, 0);
    return true;
  }
  return false;
}

/** MOV CRn, r32. */
export function movToCr(cpu: Cpu, n: number, v: number): void {
  if (notRing0(cpu)) return;
  const st = cpu.i32;
  switch (n) {
    case 0: {
      const nv = (v & CR0_WRITABLE) | CR0.ET;
      if ((nv & CR0.PG) !== 0 && (nv & CR0.PE) === 0) {
        cpu.raise(Vec.GP, 0);
        return;
      }
      if ((nv & CR0.NW) !== 0 && (nv & CR0.CD) === 0) {
        cpu.raise(Vec.GP, 0);
        return;
      }
      const old = st[Slot.CR0]!;
      st[Slot.CR0] = nv;
      if (((old ^ nv) & (CR0.PG | CR0.WP | CR0.PE)) !== 0) {
        cpu.mmu.flush(true);
        cpu.pagingChanged();
      }
      if (((old ^ nv) & CR0.PE) !== 0) cpu.modeChanged();
      return;
    }
    case 2:
      st[Slot.CR2] = v;
      return;
    case 3:
      st[Slot.CR3] = v & ~0xfe7; // PDB 31..12, PCD, PWT
      cpu.mmu.flush(false);
      cpu.pagingChanged();
      return;
    case 4: {
      if ((v & ~CR4_SUPPORTED) !== 0) {
        cpu.raise(Vec.GP, 0);
        return;
      }
      const old = st[Slot.CR4]!;
      st[Slot.CR4] = v;
      if (((old ^ v) & CR4_PAGING) !== 0) {
        cpu.mmu.flush(true);
        cpu.pagingChanged();
      }
      return;
    }
    default:
      cpu.raise(Vec.UD);
  }
}

/** MOV r32, CRn. */
export function movFromCr(cpu: Cpu, n: number): number {
  if (notRing0(cpu)) return 0;
  const st = cpu.i32;
  switch (n) {
    case 0:
      return st[Slot.CR0]! | CR0.ET;
    case 2:
      return st[Slot.CR2]!;
    case 3:
      return st[Slot.CR3]!;
    case 4:
      return st[Slot.CR4]!;
    default:
      cpu.raise(Vec.UD);
      return 0;
  }
}

/** DR4/DR5 alias DR6/DR7 while CR4.DE is clear; with DE set they are #UD. -1 = faulted. */
function drIndex(cpu: Cpu, n: number): number {
  if (n === 4 || n === 5) {
    if ((cpu.i32[Slot.CR4]! & CR4.DE) !== 0) {
      cpu.raise(Vec.UD);
      return -1;
    }
    return n + 2;
  }
  return n & 7;
}

/**
 * DR7.GD (general detect): any MOV DR faults with #DB, DR6.BD set and GD cleared so that the
 * handler can use the debug registers. True when the fault was raised.
 */
function generalDetect(cpu: Cpu): boolean {
  const st = cpu.i32;
  const dr7 = st[Slot.DR0 + 7]!;
  if ((dr7 & DR7_GD) === 0) return false;
  st[Slot.DR0 + 7] = dr7 & ~DR7_GD;
  st[Slot.DR0 + 6] = st[Slot.DR0 + 6]! | DR6_BD;
  cpu.raise(Vec.DB);
  return true;
}
const DR7_GD = 1 << 13;
const DR6_BD = 1 << 13;

/**
 * MOV DRn, r32. The registers are held.
 * XXX(approx): breakpoint conditions (DR0-3 with DR7) never trigger; only DR7.GD is emulated.
 */
export function movToDr(cpu: Cpu, n: number, v: number): void {
  if (notRing0(cpu)) return;
  const i = drIndex(cpu, n);
  if (i < 0) return;
  if (generalDetect(cpu)) return;
  let val = v;
  if (i === 6) val = (v & 0x0000e00f) | DR6_ONES;
  else if (i === 7) val = (v & ~0xd800) | DR7_ONES;
  cpu.i32[Slot.DR0 + i] = val;
}

/** MOV r32, DRn. */
export function movFromDr(cpu: Cpu, n: number): number {
  if (notRing0(cpu)) return 0;
  const i = drIndex(cpu, n);
  if (i < 0) return 0;
  if (generalDetect(cpu)) return 0;
  const v = cpu.i32[Slot.DR0 + i]!;
  if (i === 6) return v | DR6_ONES;
  if (i === 7) return v | DR7_ONES;
  return v;
}

/** CLTS. */
export function clts(cpu: Cpu): void {
  if (notRing0(cpu)) return;
  cpu.i32[Slot.CR0] = cpu.i32[Slot.CR0]! & ~CR0.TS;
}

/** LMSW: loads PE, MP, EM, TS (PE cannot be cleared this way). */
export function lmsw(cpu: Cpu, v: number): void {
  if (notRing0(cpu)) return;
  const st = cpu.i32;
  const old = st[Slot.CR0]!;
  const nv = (old & ~0xe) | (v & 0xf) | (old & CR0.PE);
  st[Slot.CR0] = nv;
  if (((old ^ nv) & CR0.PE) !== 0) {
    cpu.mmu.flush(true);
    cpu.pagingChanged();
    cpu.modeChanged();
  }
}

/** LGDT (the core reads the operand; with a 16-bit operand it passes base & 0xFFFFFF). */
export function lgdt(cpu: Cpu, base: number, limit: number): void {
  if (notRing0(cpu)) return;
  cpu.i32[Slot.GDTR_BASE] = base;
  cpu.i32[Slot.GDTR_LIMIT] = limit & 0xffff;
}

/** LIDT. */
export function lidt(cpu: Cpu, base: number, limit: number): void {
  if (notRing0(cpu)) return;
  cpu.i32[Slot.IDTR_BASE] = base;
  cpu.i32[Slot.IDTR_LIMIT] = limit & 0xffff;
}

/** INVLPG m. */
export function invlpg(cpu: Cpu, lin: number): void {
  if (notRing0(cpu)) return;
  cpu.mmu.invlpg(lin);
  cpu.pagingChanged();
}

// ---- Time stamp counter: TSC = virtual clock ns + offset (a 1 GHz TSC), 64-bit ----

const TWO32 = 4294967296;

/** Current TSC as [lo, hi] in TSC_OUT (u32 halves). */
const TSC_OUT = new Uint32Array(2);
function readTsc(cpu: Cpu): void {
  const ns = Math.max(0, Math.floor(cpu.bus.clock.now()));
  const nsLo = ns % TWO32;
  const nsHi = Math.floor(ns / TWO32);
  const lo = nsLo + (cpu.i32[Slot.TSC_OFFSET_LO]! >>> 0);
  const carry = lo >= TWO32 ? 1 : 0;
  TSC_OUT[0] = lo - carry * TWO32;
  TSC_OUT[1] = (nsHi + (cpu.i32[Slot.TSC_OFFSET_HI]! >>> 0) + carry) % TWO32;
}

/** Sets the TSC to hi:lo (WRMSR 0x10): offset = value - clock ns (mod 2^64). */
function writeTsc(cpu: Cpu, lo: number, hi: number): void {
  const ns = Math.max(0, Math.floor(cpu.bus.clock.now()));
  const nsLo = ns % TWO32;
  const nsHi = Math.floor(ns / TWO32);
  let oLo = (lo >>> 0) - nsLo;
  let borrow = 0;
  if (oLo < 0) {
    oLo += TWO32;
    borrow = 1;
  }
  const oHi = ((((hi >>> 0) - nsHi - borrow) % TWO32) + TWO32) % TWO32;
  cpu.i32[Slot.TSC_OFFSET_LO] = oLo | 0;
  cpu.i32[Slot.TSC_OFFSET_HI] = oHi | 0;
}

/** RDTSC: #GP(0) when CR4.TSD and CPL > 0 (protected mode). */
export function rdtsc(cpu: Cpu): void {
  if ((cpu.i32[Slot.CR4]! & CR4.TSD) !== 0 && (cpu.pmode || cpu.vm86) && cpu.i32[Slot.CPL] !== 0) {
    cpu.raise(Vec.GP, 0);
    return;
  }
  readTsc(cpu);
  cpu.r32[0] = TSC_OUT[0]! | 0;
  cpu.r32[2] = TSC_OUT[1]! | 0;
}

/** MSR numbers. */
export const Msr = {
  TSC: 0x10,
  PLATFORM_ID: 0x17,
  APIC_BASE: 0x1b,
  BIOS_SIGN_ID: 0x8b,
  SYSENTER_CS: 0x174,
  SYSENTER_ESP: 0x175,
  SYSENTER_EIP: 0x176,
} as const;

/** RDMSR: EDX:EAX = MSR[ECX]; unknown MSR → #GP(0). */
export function rdmsr(cpu: Cpu): void {
  if (notRing0(cpu)) return;
  const st = cpu.i32;
  let lo = 0;
  let hi = 0;
  switch (cpu.r32[1]! >>> 0) {
    case Msr.TSC:
      readTsc(cpu);
      lo = TSC_OUT[0]! | 0;
      hi = TSC_OUT[1]! | 0;
      break;
    case Msr.PLATFORM_ID:
    case Msr.BIOS_SIGN_ID:
      break; // no microcode update loaded, platform 0
    case Msr.APIC_BASE:
      lo = st[Slot.APIC_BASE]!;
      break;
    case Msr.SYSENTER_CS:
      lo = st[Slot.SYSENTER_CS]!;
      break;
    case Msr.SYSENTER_ESP:
      lo = st[Slot.SYSENTER_ESP]!;
      break;
    case Msr.SYSENTER_EIP:
      lo = st[Slot.SYSENTER_EIP]!;
      break;
    default:
      cpu.raise(Vec.GP, 0);
      return;
  }
  cpu.r32[0] = lo;
  cpu.r32[2] = hi;
}

/** WRMSR: MSR[ECX] = EDX:EAX; unknown MSR → #GP(0). */
export function wrmsr(cpu: Cpu): void {
  if (notRing0(cpu)) return;
  const st = cpu.i32;
  const lo = cpu.r32[0]!;
  const hi = cpu.r32[2]!;
  switch (cpu.r32[1]! >>> 0) {
    case Msr.TSC:
      writeTsc(cpu, lo, hi);
      return;
    case Msr.BIOS_SIGN_ID:
      return; // writing 0 before CPUID is how microcode revision is read; nothing to hold
    case Msr.APIC_BASE:
      st[Slot.APIC_BASE] = lo;
      return;
    case Msr.SYSENTER_CS:
      st[Slot.SYSENTER_CS] = lo & 0xffff;
      return;
    case Msr.SYSENTER_ESP:
      st[Slot.SYSENTER_ESP] = lo;
      return;
    case Msr.SYSENTER_EIP:
      st[Slot.SYSENTER_EIP] = lo;
      return;
    default:
      cpu.raise(Vec.GP, 0);
  }
}

/** Power-on MSR values the system part owns (called by whoever resets the CPU; see NEEDS.md). */
export function resetMsrs(cpu: Cpu): void {
  cpu.i32[Slot.APIC_BASE] = 0xfee00900 | 0; // BSP, enabled, default base (held only: no APIC)
}

// ---- CPUID ----

/** "GenuineIntel" as EBX, EDX, ECX. */
const VENDOR_EBX = 0x756e6547; // "Genu"
const VENDOR_EDX = 0x49656e69; // "ineI"
const VENDOR_ECX = 0x6c65746e; // "ntel"
/** Family 6, model 3, stepping 3 (Pentium II "Klamath"). */
export const CPUID_SIGNATURE = 0x0633;
/** EDX features: FPU VME DE PSE TSC MSR CX8 SEP PGE CMOV. */
export const CPUID_FEATURES = (1 << 0) | (1 << 1) | (1 << 2) | (1 << 3) | (1 << 4) | (1 << 5) | (1 << 8) | (1 << 11) | (1 << 13) | (1 << 15);
/** Highest basic leaf. */
const MAX_LEAF = 2;

/** CPUID: leaf EAX; leaves beyond the maximum (basic or extended) return the highest basic leaf. */
export function cpuid(cpu: Cpu): void {
  const r = cpu.r32;
  let leaf = r[0]! >>> 0;
  if (leaf > MAX_LEAF) leaf = MAX_LEAF;
  switch (leaf) {
    case 0:
      r[0] = MAX_LEAF;
      r[3] = VENDOR_EBX;
      r[2] = VENDOR_EDX;
      r[1] = VENDOR_ECX;
      return;
    case 1:
      r[0] = CPUID_SIGNATURE;
      r[3] = 0;
      r[1] = 0;
      r[2] = CPUID_FEATURES;
      return;
    default:
      // Cache/TLB descriptors of a Pentium II: 01 02 03 04 08 0C 43 (one iteration).
      r[0] = 0x03020101;
      r[3] = 0;
      r[1] = 0;
      r[2] = 0x0c040843;
  }
}

// ---- SYSENTER / SYSEXIT ----

/** Flat 4 GiB ring-0 code/data and ring-3 code/data attributes (G, D/B, P, DPL, S, type). */
const FLAT_CODE0 = 0xc09b;
const FLAT_DATA0 = 0xc093;
const FLAT_CODE3 = 0xc0fb;
const FLAT_DATA3 = 0xc0f3;

function flatSeg(cpu: Cpu, sreg: number, sel: number, attr: number): void {
  cpu.s.segSel[sreg] = sel & 0xffff;
  cpu.s.segBase[sreg] = 0;
  cpu.s.segLimit[sreg] = -1;
  cpu.s.segAttr[sreg] = attr;
}

/** SYSENTER: to ring 0 at SYSENTER_CS:SYSENTER_EIP with SS = CS + 8, ESP = SYSENTER_ESP. */
export function sysenter(cpu: Cpu): void {
  const st = cpu.i32;
  const cs = st[Slot.SYSENTER_CS]! & 0xffff;
  if ((st[Slot.CR0]! & CR0.PE) === 0 || (cs & 0xfffc) === 0) {
    cpu.raise(Vec.GP, 0);
    return;
  }
  cpu.setFlags(cpu.getFlags() & ~(F.VM | F.IF | F.RF));
  flatSeg(cpu, SReg.CS, cs & 0xfffc, FLAT_CODE0);
  flatSeg(cpu, SReg.SS, (cs + 8) & 0xfffc, FLAT_DATA0);
  st[Slot.CPL] = 0;
  cpu.r32[4] = st[Slot.SYSENTER_ESP]!;
  st[Slot.EIP] = st[Slot.SYSENTER_EIP]!;
  cpu.modeChanged();
}

/** SYSEXIT: to ring 3 at (SYSENTER_CS+16)|3 : EDX with SS = (SYSENTER_CS+24)|3, ESP = ECX. */
export function sysexit(cpu: Cpu): void {
  const st = cpu.i32;
  const cs = st[Slot.SYSENTER_CS]! & 0xffff;
  if (!cpu.pmode || st[Slot.CPL] !== 0 || (cs & 0xfffc) === 0) {
    cpu.raise(Vec.GP, 0);
    return;
  }
  flatSeg(cpu, SReg.CS, (cs + 16) | 3, FLAT_CODE3);
  flatSeg(cpu, SReg.SS, (cs + 24) | 3, FLAT_DATA3);
  st[Slot.CPL] = 3;
  cpu.r32[4] = cpu.r32[1]!;
  st[Slot.EIP] = cpu.r32[2]!;
  cpu.modeChanged();
}

// ---- I/O permission ----

/**
 * IN/OUT/INS/OUTS permission (SDM Vol. 1 18.5): allowed in real mode and when CPL <= IOPL;
 * otherwise (and always in vm86) every bit for port..port+size-1 in the TSS I/O bitmap must be
 * clear, the bitmap being inside a 32-bit TSS's limit. Raises #GP(0) and returns false otherwise.
 */
export function ioPermitted(cpu: Cpu, port: number, size: number): boolean {
  if (!cpu.pmode && !cpu.vm86) return true;
  const st = cpu.i32;
  if (!cpu.vm86 && st[Slot.CPL]! <= ((cpu.getFlags() >>> 12) & 3)) return true;
  const s = cpu.s;
  const attr = s.segAttr[SReg.TR]!;
  const limit = s.segLimit[SReg.TR]! >>> 0;
  const type = attr & 0xf;
  if ((attr & ATTR_UNUSABLE) !== 0 || (type !== 9 && type !== 0xb) || limit < 0x67) {
    cpu.raise(Vec.GP, 0);
    return false;
  }
  const base = s.segBase[SReg.TR]!;
  const mapOff = cpu.mmu.readSys16((base + 0x66) | 0);
  if (cpu.faulted) return false;
  const byteOff = mapOff + (port >>> 3);
  if (byteOff + 1 > limit) {
    cpu.raise(Vec.GP, 0);
    return false;
  }
  const bits = cpu.mmu.readSys16((base + byteOff) | 0);
  if (cpu.faulted) return false;
  const mask = ((1 << size) - 1) << (port & 7);
  if ((bits & mask) !== 0) {
    cpu.raise(Vec.GP, 0);
    return false;
  }
  return true;
}
