/**
 * MMU: linear → physical translation (i386 two-level paging with 4 KiB pages, 4 MiB pages under
 * CR4.PSE, global pages under CR4.PGE, CR0.WP), a software TLB, and linear-address memory access.
 * References: Intel SDM Vol. 3A ch. 4 (32-bit paging, access rights, A/D bits, #PF error code),
 * ch. 4.10 (TLBs, INVLPG, CR3 loads and global pages).
 *
 * TLB: one entry per 4 KiB linear page (2^20 entries) in one Int32Array, so that an access loads
 * one word: tlb[page] = physical page base (bits 31..12, already A20-masked; RAM pages index
 * `mem.ram` directly) | what the cached translation allows (bits 7..0; 0 = no entry):
 *     bit 0  T_RS  supervisor read          bit 1  T_RU  user read
 *     bit 2  T_WS  supervisor write         bit 3  T_WU  user write
 *                  (write bits are set only once the dirty bit is set in the paging entry)
 *     bit 4  T_FR  reads may go straight to `mem.ram` (RAM, or ROM shadowed in RAM)
 *     bit 5  T_FW  writes may go straight to `mem.ram` (RAM)
 *     bit 6  T_G   global (kept by a CR3 load)
 *     bit 7  T_L   part of a 4 MiB page (INVLPG drops the whole 4 MiB range)
 * A fast access checks `(flags & need) === need` with need = access bit | fast bit. Everything else
 * (misses, MMIO, ROM, unassigned, page-crossing) takes the slow path, which walks the tables.
 * With paging off the TLB holds identity entries, so both modes share the fast path.
 * Paging structures are read and their A/D bits written through physical memory (RAM or not).
 * XXX(approx): no PAT/PCD/PWT effects (caching is not modelled); no PSE-36 (bits 21..13 of a 4 MiB
 * PDE are reserved and fault with RSVD, as on a CPU without PSE-36).
 * Filled pages are listed (global and non-global apart) so that a flush touches only them.
 */
import type { Cpu } from "./cpu.ts";
import type { PhysMem } from "../mem/PhysMem.ts";
import { CR0, CR4, Slot } from "./state.ts";

const T_RS = 1;
const T_RU = 2;
const T_WS = 4;
const T_WU = 8;
const T_FR = 16;
const T_FW = 32;
const T_G = 64;
const T_L = 128;
const T_ALL = T_RS | T_RU | T_WS | T_WU;

/** Page-map kinds of PhysMem (bits 31..28 of a page map entry). */
const KIND_RAM = 1;
const KIND_ROM = 2;

/** Pages remembered for a targeted flush; beyond that the flush clears everything. */
const LIST_MAX = 16384;

/** #PF error code bits. */
export const PF_P = 1;
export const PF_W = 2;
export const PF_U = 4;
export const PF_RSVD = 8;

/** Page table entry bits. */
const PTE_P = 1;
const PTE_W = 2;
const PTE_U = 4;
const PTE_A = 0x20;
const PTE_D = 0x40;
const PTE_PS = 0x80;
const PTE_G = 0x100;

/** The core's self-modifying-code hooks (optional until the core defines them). */
interface CodeHooks {
  codePages?: Uint8Array;
  codeWritten?(phys: number, len: number): void;
}

/** A page map that says "no code here" until the core's codePages exists. */
const NO_CODE = new Uint8Array(1 << 20);

/** Linear → physical translation and linear memory access for one CPU. */
export class Mmu {
  readonly cpu: Cpu;
  /** Cached translations, see the layout above. */
  readonly tlb = new Int32Array(1 << 20);
  readonly #st: Int32Array;
  readonly #mem: PhysMem;
  readonly #ram: Uint8Array;
  readonly #ram16: Uint16Array;
  readonly #ram32: Int32Array;
  readonly #pageMap: Uint32Array;
  readonly #ramPages: number;
  /** Pages holding non-global entries (cleared by every flush). */
  readonly #listN = new Int32Array(LIST_MAX);
  #countN = 0;
  #overflowN = false;
  /** Pages holding global entries (cleared only by a global flush). */
  readonly #listG = new Int32Array(LIST_MAX);
  #countG = 0;
  #overflowG = false;
  #codePages: Uint8Array = NO_CODE;
  /** TLB misses (walks), for statistics. */
  walks = 0;

  constructor(cpu: Cpu) {
    this.cpu = cpu;
    this.#st = cpu.s.i32;
    const mem = cpu.bus.mem;
    this.#mem = mem;
    this.#ram = mem.ram;
    this.#ram16 = mem.ram16;
    this.#ram32 = mem.ram32;
    this.#pageMap = mem.pageMap;
    this.#ramPages = mem.ramSize >>> 12;
    mem.onA20Change = () => {
      this.flush(true);
      this.cpu.pagingChanged();
    };
    this.#hookCode();
  }

  #hookCode(): void {
    const cp = (this.cpu as unknown as CodeHooks).codePages;
    if (cp !== undefined) this.#codePages = cp;
  }

  /** True when the current privilege is user (CPL 3). */
  #user(): boolean {
    return this.#st[Slot.CPL] === 3;
  }

  // ---- Linear accesses with the current privilege ----

  // The fast paths below use literal constants (module-level consts are loaded at run time):
  // 64 = Slot.CPL; 17/18 = T_RS|T_FR / T_RU|T_FR; 36/40 = T_WS|T_FW / T_WU|T_FW; -4096 = ~0xfff.

  read8(lin: number): number {
    const e = this.tlb[lin >>> 12]!;
    const need = this.#st[64] === 3 ? 18 : 17;
    if ((e & need) === need) return this.#ram[(e & -4096) | (lin & 0xfff)]!;
    return this.#slowRead(lin, 1, this.#user());
  }

  read16(lin: number): number {
    const e = this.tlb[lin >>> 12]!;
    const need = this.#st[64] === 3 ? 18 : 17;
    if ((e & need) === need && (lin & 0xfff) !== 0xfff) {
      const a = (e & -4096) | (lin & 0xfff);
      return (a & 1) === 0 ? this.#ram16[a >>> 1]! : this.#ram[a]! | (this.#ram[a + 1]! << 8);
    }
    return this.#slowRead(lin, 2, this.#user());
  }

  read32(lin: number): number {
    const e = this.tlb[lin >>> 12]!;
    const need = this.#st[64] === 3 ? 18 : 17;
    if ((e & need) === need && (lin & 0xfff) <= 0xffc) {
      const a = (e & -4096) | (lin & 0xfff);
      if ((a & 3) === 0) return this.#ram32[a >>> 2]!;
      const r = this.#ram;
      return r[a]! | (r[a + 1]! << 8) | (r[a + 2]! << 16) | (r[a + 3]! << 24);
    }
    return this.#slowRead(lin, 4, this.#user());
  }

  write8(lin: number, v: number): void {
    const e = this.tlb[lin >>> 12]!;
    const need = this.#st[64] === 3 ? 40 : 36;
    if ((e & need) === need) {
      const a = (e & -4096) | (lin & 0xfff);
      this.#ram[a] = v;
      if (this.#codePages[a >>> 12] !== 0) this.#codeWritten(a, 1);
      return;
    }
    this.#slowWrite(lin, 1, v, this.#user());
  }

  write16(lin: number, v: number): void {
    const e = this.tlb[lin >>> 12]!;
    const need = this.#st[64] === 3 ? 40 : 36;
    if ((e & need) === need && (lin & 0xfff) !== 0xfff) {
      const a = (e & -4096) | (lin & 0xfff);
      if ((a & 1) === 0) this.#ram16[a >>> 1] = v;
      else {
        this.#ram[a] = v;
        this.#ram[a + 1] = v >>> 8;
      }
      if (this.#codePages[a >>> 12] !== 0) this.#codeWritten(a, 2);
      return;
    }
    this.#slowWrite(lin, 2, v, this.#user());
  }

  write32(lin: number, v: number): void {
    const e = this.tlb[lin >>> 12]!;
    const need = this.#st[64] === 3 ? 40 : 36;
    if ((e & need) === need && (lin & 0xfff) <= 0xffc) {
      const a = (e & -4096) | (lin & 0xfff);
      if ((a & 3) === 0) this.#ram32[a >>> 2] = v;
      else {
        const r = this.#ram;
        r[a] = v;
        r[a + 1] = v >>> 8;
        r[a + 2] = v >>> 16;
        r[a + 3] = v >>> 24;
      }
      if (this.#codePages[a >>> 12] !== 0) this.#codeWritten(a, 4);
      return;
    }
    this.#slowWrite(lin, 4, v, this.#user());
  }

  // ---- Supervisor accesses (descriptor tables, TSS, IDT) ----

  readSys8(lin: number): number {
    return this.#slowRead(lin, 1, false);
  }
  readSys16(lin: number): number {
    return this.#slowRead(lin, 2, false);
  }
  readSys32(lin: number): number {
    return this.#slowRead(lin, 4, false);
  }
  writeSys8(lin: number, v: number): void {
    this.#slowWrite(lin, 1, v, false);
  }
  writeSys16(lin: number, v: number): void {
    this.#slowWrite(lin, 2, v, false);
  }
  writeSys32(lin: number, v: number): void {
    this.#slowWrite(lin, 4, v, false);
  }

  /** Reads 1, 2 or 4 bytes with an explicit privilege (stack switches write at the new CPL). */
  readAs(lin: number, size: number, user: boolean): number {
    return this.#slowRead(lin, size, user);
  }
  /** Writes 1, 2 or 4 bytes with an explicit privilege. */
  writeAs(lin: number, size: number, v: number, user: boolean): void {
    this.#slowWrite(lin, size, v, user);
  }

  /**
   * Checks that [lin, lin+size) may be written with the given privilege (walking and setting the
   * dirty bits like the write would) without writing; false with the #PF raised otherwise.
   */
  probeWrite(lin: number, size: number, user: boolean): boolean {
    if (this.translate(lin, true, user) < 0) return false;
    const last = (lin + size - 1) | 0;
    if ((last ^ lin) >>> 12 !== 0 && this.translate(last, true, user) < 0) return false;
    return true;
  }

  // ---- Translation ----

  /**
   * Translates a linear address for an access; returns the physical address (unsigned), or -1
   * after raising #PF (CR2 = lin).
   */
  translate(lin: number, write: boolean, user: boolean): number {
    const p = lin >>> 12;
    const need = write ? (user ? T_WU : T_WS) : user ? T_RU : T_RS;
    const e = this.tlb[p]!;
    if ((e & need) !== 0) return ((e & -4096) | (lin & 0xfff)) >>> 0;
    return this.#walk(lin, write, user);
  }

  /**
   * Drops cached translations; global ones too when `global` (CR3 loads keep them, SDM 4.10.4).
   * Non-global and global entries are listed apart, so that a CR3 load touches only the
   * non-global ones; after a list overflow the flush scans the whole TLB.
   */
  flush(global: boolean): void {
    this.#hookCode();
    const f = this.tlb;
    if (global) {
      if (this.#overflowN || this.#overflowG) f.fill(0);
      else {
        this.#clearList(this.#listN, this.#countN);
        this.#clearList(this.#listG, this.#countG);
      }
      this.#countN = 0;
      this.#countG = 0;
      this.#overflowN = false;
      this.#overflowG = false;
      return;
    }
    if (this.#overflowN) {
      for (let p = 0; p < 1 << 20; p++) if ((f[p]! & T_G) === 0) f[p] = 0;
      this.#overflowN = false;
    } else {
      const list = this.#listN;
      const n = this.#countN;
      for (let i = 0; i < n; i++) {
        const p = list[i]!;
        if ((f[p]! & T_G) === 0) f[p] = 0;
      }
    }
    this.#countN = 0;
  }

  #clearList(list: Int32Array, n: number): void {
    const f = this.tlb;
    for (let i = 0; i < n; i++) f[list[i]!] = 0;
  }

  /** INVLPG: drops the translation of the page holding `lin` (all of it for a 4 MiB page). */
  invlpg(lin: number): void {
    const p = lin >>> 12;
    const f = this.tlb;
    f[p] = 0;
    // Entries that came from a 4 MiB page anywhere in this 4 MiB range go too.
    const base = p & ~0x3ff;
    for (let q = base; q < base + 0x400; q++) if ((f[q]! & T_L) !== 0) f[q] = 0;
  }

  /** Lists a page whose entry becomes valid (or turns from global to non-global). */
  #remember(p: number, global: boolean): void {
    if (global) {
      if (this.#countG < LIST_MAX) this.#listG[this.#countG++] = p;
      else this.#overflowG = true;
    } else if (this.#countN < LIST_MAX) this.#listN[this.#countN++] = p;
    else this.#overflowN = true;
  }

  #fill(p: number, physPage: number, perm: number): void {
    const pg = physPage >>> 12;
    const kind = this.#pageMap[pg]! >>> 28;
    let fast = 0;
    if (kind === KIND_RAM) fast = T_FR | T_FW;
    else if (kind === KIND_ROM && pg < this.#ramPages) fast = T_FR;
    const old = this.tlb[p]! & 0xff;
    if (old === 0 || ((old & T_G) !== 0 && (perm & T_G) === 0)) this.#remember(p, (perm & T_G) !== 0);
    this.tlb[p] = (physPage & -4096) | perm | fast;
  }

  /** Raises #PF for lin with error code err; returns -1. */
  #pf(lin: number, err: number): number {
    this.#st[Slot.CR2] = lin;
    this.cpu.raise(14, err);
    return -1;
  }

  /** The page walk (SDM 4.3); fills the TLB on success. */
  #walk(lin: number, write: boolean, user: boolean): number {
    this.walks++;
    if (this.#codePages === NO_CODE) this.#hookCode();
    const st = this.#st;
    const cr0 = st[Slot.CR0]!;
    const a20 = this.#mem.a20Mask;
    if ((cr0 & CR0.PG) === 0) {
      const phys = lin & a20;
      this.#fill(lin >>> 12, phys & ~0xfff, T_ALL);
      return phys >>> 0;
    }
    const cr4 = st[Slot.CR4]!;
    const err = (write ? PF_W : 0) | (user ? PF_U : 0);
    const pdeAddr = ((st[Slot.CR3]! & ~0xfff) | ((lin >>> 20) & 0xffc)) & a20;
    const pde = this.#phys32(pdeAddr);
    if ((pde & PTE_P) === 0) return this.#pf(lin, err);
    let perm: number;
    let phys: number;
    let dirty: boolean;
    let extra: number;
    if ((pde & PTE_PS) !== 0 && (cr4 & CR4.PSE) !== 0) {
      // 4 MiB page. Without PSE-36, bits 21..13 are reserved.
      if ((pde & 0x003fe000) !== 0) return this.#pf(lin, err | PF_P | PF_RSVD);
      perm = pde;
      if (!this.#allowed(perm, write, user, cr0)) return this.#pf(lin, err | PF_P);
      const nv = pde | PTE_A | (write ? PTE_D : 0);
      if (nv !== pde) this.#physWrite32(pdeAddr, nv);
      dirty = (nv & PTE_D) !== 0;
      phys = (pde & 0xffc00000) | (lin & 0x003ff000);
      extra = T_L | ((pde & PTE_G) !== 0 && (cr4 & CR4.PGE) !== 0 ? T_G : 0);
    } else {
      const pteAddr = ((pde & ~0xfff) | ((lin >>> 10) & 0xffc)) & a20;
      const pte = this.#phys32(pteAddr);
      if ((pte & PTE_P) === 0) return this.#pf(lin, err);
      perm = pde & pte;
      if (!this.#allowed(perm, write, user, cr0)) return this.#pf(lin, err | PF_P);
      // Accessed bits only on a successful translation; dirty only on a write.
      if ((pde & PTE_A) === 0) this.#physWrite32(pdeAddr, pde | PTE_A);
      const nv = pte | PTE_A | (write ? PTE_D : 0);
      if (nv !== pte) this.#physWrite32(pteAddr, nv);
      dirty = (nv & PTE_D) !== 0;
      phys = pte & ~0xfff;
      extra = (pte & PTE_G) !== 0 && (cr4 & CR4.PGE) !== 0 ? T_G : 0;
    }
    const u = (perm & PTE_U) !== 0;
    const w = (perm & PTE_W) !== 0;
    let flags = T_RS | (u ? T_RU : 0) | extra;
    if (dirty) {
      if (w || (cr0 & CR0.WP) === 0) flags |= T_WS;
      if (u && w) flags |= T_WU;
    }
    phys &= a20;
    this.#fill(lin >>> 12, phys, flags);
    return (phys | (lin & 0xfff)) >>> 0;
  }

  /** Access rights (SDM 4.6): user needs U (and W to write); supervisor writes need W when CR0.WP. */
  #allowed(perm: number, write: boolean, user: boolean, cr0: number): boolean {
    if (user) return (perm & PTE_U) !== 0 && (!write || (perm & PTE_W) !== 0);
    return !write || (perm & PTE_W) !== 0 || (cr0 & CR0.WP) === 0;
  }

  // ---- Slow paths ----

  #slowRead(lin: number, size: number, user: boolean): number {
    const off = lin & 0xfff;
    if (off + size > 0x1000) {
      const a = this.translate(lin, false, user);
      if (a < 0) return 0;
      const b = this.translate((lin | 0xfff) + 1, false, user);
      if (b < 0) return 0;
      const n1 = 0x1000 - off;
      let v = 0;
      for (let i = 0; i < size; i++) v |= this.#physRead8(i < n1 ? a + i : b + i - n1) << (i << 3);
      return size === 4 ? v | 0 : v;
    }
    const a = this.translate(lin, false, user);
    if (a < 0) return 0;
    return this.physRead(a, size);
  }

  #slowWrite(lin: number, size: number, v: number, user: boolean): void {
    const off = lin & 0xfff;
    if (off + size > 0x1000) {
      // Both pages are checked before either is written.
      const a = this.translate(lin, true, user);
      if (a < 0) return;
      const b = this.translate((lin | 0xfff) + 1, true, user);
      if (b < 0) return;
      const n1 = 0x1000 - off;
      for (let i = 0; i < size; i++) this.#physWrite8(i < n1 ? a + i : b + i - n1, (v >>> (i << 3)) & 0xff);
      return;
    }
    const a = this.translate(lin, true, user);
    if (a < 0) return;
    this.physWrite(a, size, v);
  }

  #isRam(phys: number): boolean {
    return this.#pageMap[phys >>> 12]! >>> 28 === KIND_RAM;
  }

  #physRead8(a: number): number {
    return this.#isRam(a) ? this.#ram[a]! : this.#mem.read8(a);
  }

  #physWrite8(a: number, v: number): void {
    if (this.#isRam(a)) {
      this.#ram[a] = v;
      if (this.#codePages[a >>> 12] !== 0) this.#codeWritten(a, 1);
    } else this.#mem.write8(a, v);
  }

  /** Reads 1, 2 or 4 bytes at a physical address that does not cross a page (32 bits: signed). */
  physRead(a: number, size: number): number {
    a = (a & this.#mem.a20Mask) >>> 0;
    if (this.#isRam(a)) {
      const r = this.#ram;
      if (size === 1) return r[a]!;
      if (size === 2) return (a & 1) === 0 ? this.#ram16[a >>> 1]! : r[a]! | (r[a + 1]! << 8);
      if ((a & 3) === 0) return this.#ram32[a >>> 2]!;
      return r[a]! | (r[a + 1]! << 8) | (r[a + 2]! << 16) | (r[a + 3]! << 24);
    }
    if (size === 1) return this.#mem.read8(a);
    if (size === 2) return this.#mem.read16(a);
    return this.#mem.read32(a) | 0;
  }

  /** Writes 1, 2 or 4 bytes at a physical address that does not cross a page. */
  physWrite(a: number, size: number, v: number): void {
    a = (a & this.#mem.a20Mask) >>> 0;
    if (this.#isRam(a)) {
      const r = this.#ram;
      if (size === 1) r[a] = v;
      else if (size === 2) {
        if ((a & 1) === 0) this.#ram16[a >>> 1] = v;
        else {
          r[a] = v;
          r[a + 1] = v >>> 8;
        }
      } else if ((a & 3) === 0) this.#ram32[a >>> 2] = v;
      else {
        r[a] = v;
        r[a + 1] = v >>> 8;
        r[a + 2] = v >>> 16;
        r[a + 3] = v >>> 24;
      }
      if (this.#codePages[a >>> 12] !== 0) this.#codeWritten(a, size);
      return;
    }
    if (size === 1) this.#mem.write8(a, v & 0xff);
    else if (size === 2) this.#mem.write16(a, v & 0xffff);
    else this.#mem.write32(a, v);
  }

  #phys32(a: number): number {
    return this.physRead(a, 4);
  }

  #physWrite32(a: number, v: number): void {
    this.physWrite(a, 4, v);
  }

  #codeWritten(phys: number, len: number): void {
    (this.cpu as unknown as CodeHooks).codeWritten?.(phys, len);
  }
}
