/**
 * Segmentation: segment register loads in every mode, descriptor fetches from the GDT/LDT, the
 * descriptor-cache format, and LAR/LSL/VERR/VERW/LLDT/LTR.
 * References: Intel SDM Vol. 3A ch. 3.4-3.5 (selectors, descriptors), ch. 5 (protection checks),
 * Vol. 2 MOV/POP (segment loads), LAR, LSL, VERR/VERW, LLDT, LTR.
 *
 * Descriptor (two dwords lo, hi as in memory):
 *   lo  bits 0..15 limit 15:0        bits 16..31 base 15:0
 *   hi  bits 0..7  base 23:16        bits 8..11 type  12 S  13..14 DPL  15 P
 *       bits 16..19 limit 19:16      20 AVL  22 D/B  23 G  24..31 base 31:24
 * The cached attribute (state.ts) is hi bits 8..23 shifted down by 8, with the limit nibble
 * (attr bits 8..11) cleared, plus ATTR_UNUSABLE (bit 16) for a null selector in protected mode.
 */
import type { Cpu } from "./cpu.ts";
import { SReg, Slot, Vec } from "./state.ts";

/** Attribute bit: the register holds a null selector (protected mode) and may not be used. */
export const ATTR_UNUSABLE = 1 << 16;
/** Attribute bits. */
export const ATTR_S = 1 << 4;
export const ATTR_P = 1 << 7;
export const ATTR_DB = 1 << 14;
export const ATTR_G = 1 << 15;
/** Attributes of a vm86 segment: present, DPL 3, read/write data, accessed. */
export const ATTR_VM86 = 0xf3;

/**
 * The last descriptor read by fetchDesc (module state instead of an allocated object).
 * `addr` is the linear address of the descriptor.
 */
export const desc = { lo: 0, hi: 0, addr: 0 };

/** Linear base of a descriptor. */
export function descBase(lo: number, hi: number): number {
  return ((lo >>> 16) | ((hi & 0xff) << 16) | (hi & 0xff000000)) | 0;
}

/** Byte-granular limit of a descriptor (G=1 expands to 4 KiB units). */
export function descLimit(lo: number, hi: number): number {
  const l = (lo & 0xffff) | (hi & 0xf0000);
  return (hi & (1 << 23)) !== 0 ? ((l << 12) | 0xfff) | 0 : l;
}

/** Cached attribute form of a descriptor. */
export function descAttr(hi: number): number {
  return (hi >>> 8) & 0xf0ff;
}

/** DPL of a descriptor. */
export function descDpl(hi: number): number {
  return (hi >>> 13) & 3;
}

/** Type nibble + S bit (0x10 = code/data, below = system). */
export function descType(hi: number): number {
  return (hi >>> 8) & 0x1f;
}

/** True when the S=1 type is a code segment. */
export function isCode(hi: number): boolean {
  return (hi & 0x1800) === 0x1800;
}

/** True when the descriptor is present. */
export function isPresent(hi: number): boolean {
  return (hi & 0x8000) !== 0;
}

/**
 * Reads the descriptor for `sel` from the GDT or LDT into `desc`.
 * Returns 1 when read, 0 when the selector is beyond the table limit (or the LDT is unusable),
 * -1 when a page fault was raised reading the table.
 */
export function fetchDesc(cpu: Cpu, sel: number): number {
  const st = cpu.i32;
  let base: number;
  let limit: number;
  if ((sel & 4) !== 0) {
    if ((cpu.s.segAttr[SReg.LDTR]! & ATTR_UNUSABLE) !== 0) return 0;
    base = cpu.s.segBase[SReg.LDTR]!;
    limit = cpu.s.segLimit[SReg.LDTR]!;
  } else {
    base = st[Slot.GDTR_BASE]!;
    limit = st[Slot.GDTR_LIMIT]!;
  }
  const idx = sel & 0xfff8;
  if ((idx | 7) >>> 0 > limit >>> 0) return 0;
  const addr = (base + idx) | 0;
  const lo = cpu.mmu.readSys32(addr);
  if (cpu.faulted) return -1;
  const hi = cpu.mmu.readSys32((addr + 4) | 0);
  if (cpu.faulted) return -1;
  desc.lo = lo;
  desc.hi = hi;
  desc.addr = addr;
  return 1;
}

/** Sets the accessed bit of the descriptor last fetched (if clear). */
export function setAccessed(cpu: Cpu): void {
  if ((desc.hi & 0x100) === 0) {
    desc.hi |= 0x100;
    cpu.mmu.writeSys8((desc.addr + 5) | 0, (desc.hi >>> 8) & 0xff);
  }
}

/** Loads a segment register's cache from a descriptor. */
export function setSeg(cpu: Cpu, sreg: number, sel: number, lo: number, hi: number): void {
  const s = cpu.s;
  s.segSel[sreg] = sel & 0xffff;
  s.segBase[sreg] = descBase(lo, hi);
  s.segLimit[sreg] = descLimit(lo, hi);
  s.segAttr[sreg] = descAttr(hi);
}

/** Loads a null selector (protected mode): the register becomes unusable. */
export function setNullSeg(cpu: Cpu, sreg: number, sel: number): void {
  const s = cpu.s;
  s.segSel[sreg] = sel & 0xffff;
  s.segBase[sreg] = 0;
  s.segLimit[sreg] = 0;
  s.segAttr[sreg] = ATTR_UNUSABLE;
}

/** Real-mode load: selector and base only; limit and attributes are kept (unreal mode works). */
export function setRealSeg(cpu: Cpu, sreg: number, sel: number): void {
  const s = cpu.s;
  sel &= 0xffff;
  s.segSel[sreg] = sel;
  s.segBase[sreg] = sel << 4;
  s.segAttr[sreg]! &= ~ATTR_UNUSABLE;
}

/** vm86 load: base = sel << 4, limit 0xFFFF, DPL 3 read/write data. */
export function setVm86Seg(cpu: Cpu, sreg: number, sel: number): void {
  const s = cpu.s;
  sel &= 0xffff;
  s.segSel[sreg] = sel;
  s.segBase[sreg] = sel << 4;
  s.segLimit[sreg] = 0xffff;
  s.segAttr[sreg] = ATTR_VM86;
}

/**
 * True when `off..off+size-1` is inside a segment with this cached limit and attribute
 * (expand-down data segments are valid above the limit, up to 0xFFFF or 0xFFFFFFFF by the B bit).
 */
export function segOk(attr: number, limit: number, off: number, size: number): boolean {
  const last = (off + size - 1) >>> 0;
  if ((attr & 0x1c) === 0x14) {
    // expand-down data
    const top = (attr & ATTR_DB) !== 0 ? 0xffffffff : 0xffff;
    return off >>> 0 > limit >>> 0 && last <= top && last >= off >>> 0;
  }
  return last <= limit >>> 0 && last >= off >>> 0;
}

/**
 * MOV/POP/LDS.. to a segment register (ES, SS, DS, FS, GS; CS only in real/vm86 mode).
 * Protected mode: SDM MOV checks. Returns false with the fault raised.
 */
export function loadSeg(cpu: Cpu, sreg: number, sel: number): boolean {
  sel &= 0xffff;
  if (cpu.vm86) {
    setVm86Seg(cpu, sreg, sel);
    if (sreg === SReg.CS || sreg === SReg.SS) cpu.modeChanged();
    return true;
  }
  if (!cpu.pmode) {
    setRealSeg(cpu, sreg, sel);
    return true;
  }
  const cpl = cpu.i32[Slot.CPL]!;
  const rpl = sel & 3;
  if (sreg === SReg.SS) {
    if ((sel & 0xfffc) === 0 || rpl !== cpl) {
      cpu.raise(Vec.GP, sel & 0xfffc);
      return false;
    }
    const r = fetchDesc(cpu, sel);
    if (r < 0) return false;
    const hi = desc.hi;
    // writable data segment with DPL = CPL
    if (r === 0 || (hi & 0x1a00) !== 0x1200 || descDpl(hi) !== cpl) {
      cpu.raise(Vec.GP, sel & 0xfffc);
      return false;
    }
    if (!isPresent(hi)) {
      cpu.raise(Vec.SS, sel & 0xfffc);
      return false;
    }
    setAccessed(cpu);
    if (cpu.faulted) return false;
    setSeg(cpu, SReg.SS, sel, desc.lo, desc.hi);
    cpu.modeChanged();
    return true;
  }
  if (sreg === SReg.CS) {
    cpu.raise(Vec.UD);
    return false;
  }
  if ((sel & 0xfffc) === 0) {
    setNullSeg(cpu, sreg, sel);
    return true;
  }
  const r = fetchDesc(cpu, sel);
  if (r < 0) return false;
  const hi = desc.hi;
  // data, or readable code
  let bad = r === 0 || (hi & 0x1000) === 0 || (hi & 0x0a00) === 0x0800;
  // data and non-conforming code: DPL >= max(CPL, RPL)
  if (!bad && (hi & 0x0c00) !== 0x0c00) {
    const dpl = descDpl(hi);
    if (dpl < cpl || dpl < rpl) bad = true;
  }
  if (bad) {
    cpu.raise(Vec.GP, sel & 0xfffc);
    return false;
  }
  if (!isPresent(hi)) {
    cpu.raise(Vec.NP, sel & 0xfffc);
    return false;
  }
  setAccessed(cpu);
  if (cpu.faulted) return false;
  setSeg(cpu, sreg, sel, desc.lo, desc.hi);
  return true;
}

/** After a return to an outer level: data segments the new CPL may not use become null (SDM RET). */
export function nullInvalidSegs(cpu: Cpu): void {
  const cpl = cpu.i32[Slot.CPL]!;
  const s = cpu.s;
  for (let i = 0; i < OUTER_CHECKED.length; i++) {
    const r = OUTER_CHECKED[i]!;
    const a = s.segAttr[r]!;
    if ((a & ATTR_UNUSABLE) !== 0) continue;
    // data or non-conforming code with DPL < CPL
    const conformingCode = (a & 0x1c) === 0x1c;
    if (!conformingCode && ((a >>> 5) & 3) < cpl) setNullSeg(cpu, r, 0);
  }
}
const OUTER_CHECKED = [SReg.ES, SReg.DS, SReg.FS, SReg.GS] as const;

/** #UD unless in protected mode (LAR, LSL, VERR, VERW, LLDT, LTR, SLDT, STR). */
function needPmode(cpu: Cpu): boolean {
  if (!cpu.pmode) {
    cpu.raise(Vec.UD);
    return false;
  }
  return true;
}

/** DPL check shared by LAR/LSL/VERR/VERW: conforming code passes, others need DPL >= CPL, RPL. */
function visible(cpu: Cpu, sel: number, hi: number): boolean {
  if ((hi & 0x1c00) === 0x1c00) return true;
  const dpl = descDpl(hi);
  return dpl >= cpu.i32[Slot.CPL]! && dpl >= (sel & 3);
}

/** System types LAR accepts: TSS16 avail/busy, LDT, call gate 16, task gate, TSS32 avail/busy, call gate 32. */
const LAR_TYPES = 0b0001101000111110;
/** System types LSL accepts: TSS16 avail/busy, LDT, TSS32 avail/busy. */
const LSL_TYPES = 0b0000101000001110;

/** LAR: the access rights dword (hi & 0x00F0FF00), or -1 (ZF = 0). */
export function lar(cpu: Cpu, sel: number): number {
  if (!needPmode(cpu)) return -1;
  if ((sel & 0xfffc) === 0) return -1;
  const r = fetchDesc(cpu, sel);
  if (r <= 0) return -1;
  const hi = desc.hi;
  if ((hi & 0x1000) === 0 && ((LAR_TYPES >>> ((hi >>> 8) & 0xf)) & 1) === 0) return -1;
  if (!visible(cpu, sel, hi)) return -1;
  return hi & 0x00f0ff00;
}

/** LSL: the byte-granular limit (u32 as a number), or -1 (ZF = 0). */
export function lsl(cpu: Cpu, sel: number): number {
  if (!needPmode(cpu)) return -1;
  if ((sel & 0xfffc) === 0) return -1;
  const r = fetchDesc(cpu, sel);
  if (r <= 0) return -1;
  const hi = desc.hi;
  if ((hi & 0x1000) === 0 && ((LSL_TYPES >>> ((hi >>> 8) & 0xf)) & 1) === 0) return -1;
  if (!visible(cpu, sel, hi)) return -1;
  return descLimit(desc.lo, hi) >>> 0;
}

/** VERR: readable segment visible at CPL/RPL. */
export function verr(cpu: Cpu, sel: number): boolean {
  if (!needPmode(cpu)) return false;
  if ((sel & 0xfffc) === 0) return false;
  if (fetchDesc(cpu, sel) <= 0) return false;
  const hi = desc.hi;
  if ((hi & 0x1000) === 0) return false;
  if ((hi & 0x0a00) === 0x0800) return false; // execute-only code
  return visible(cpu, sel, hi);
}

/** VERW: writable data segment visible at CPL/RPL. */
export function verw(cpu: Cpu, sel: number): boolean {
  if (!needPmode(cpu)) return false;
  if ((sel & 0xfffc) === 0) return false;
  if (fetchDesc(cpu, sel) <= 0) return false;
  const hi = desc.hi;
  if ((hi & 0x1a00) !== 0x1200) return false;
  const dpl = descDpl(hi);
  return dpl >= cpu.i32[Slot.CPL]! && dpl >= (sel & 3);
}

/** LLDT (CPL 0): loads LDTR from a GDT LDT descriptor; a null selector makes LDTR unusable. */
export function lldt(cpu: Cpu, sel: number): void {
  if (!needPmode(cpu)) return;
  if (cpu.i32[Slot.CPL] !== 0) {
    cpu.raise(Vec.GP, 0);
    return;
  }
  sel &= 0xffff;
  if ((sel & 0xfffc) === 0) {
    setNullSeg(cpu, SReg.LDTR, sel);
    return;
  }
  if ((sel & 4) !== 0) {
    cpu.raise(Vec.GP, sel & 0xfffc);
    return;
  }
  const r = fetchDesc(cpu, sel);
  if (r < 0) return;
  if (r === 0 || descType(desc.hi) !== 2) {
    cpu.raise(Vec.GP, sel & 0xfffc);
    return;
  }
  if (!isPresent(desc.hi)) {
    cpu.raise(Vec.NP, sel & 0xfffc);
    return;
  }
  setSeg(cpu, SReg.LDTR, sel, desc.lo, desc.hi);
}

/** LTR (CPL 0): loads TR from an available TSS descriptor in the GDT and marks it busy. */
export function ltr(cpu: Cpu, sel: number): void {
  if (!needPmode(cpu)) return;
  if (cpu.i32[Slot.CPL] !== 0) {
    cpu.raise(Vec.GP, 0);
    return;
  }
  sel &= 0xffff;
  if ((sel & 0xfffc) === 0) {
    cpu.raise(Vec.GP, 0);
    return;
  }
  if ((sel & 4) !== 0) {
    cpu.raise(Vec.GP, sel & 0xfffc);
    return;
  }
  const r = fetchDesc(cpu, sel);
  if (r < 0) return;
  const t = descType(desc.hi);
  if (r === 0 || (t !== 1 && t !== 9)) {
    cpu.raise(Vec.GP, sel & 0xfffc);
    return;
  }
  if (!isPresent(desc.hi)) {
    cpu.raise(Vec.NP, sel & 0xfffc);
    return;
  }
  desc.hi |= 0x200; // busy
  cpu.mmu.writeSys8((desc.addr + 5) | 0, (desc.hi >>> 8) & 0xff);
  if (cpu.faulted) return;
  setSeg(cpu, SReg.TR, sel, desc.lo, desc.hi);
}
