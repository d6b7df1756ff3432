/**
 * The i686 CPU: execution core. Run loop, code fetch through a per-physical-page decoded-instruction
 * cache, segment-relative memory access with limit/type checks, the stack, exception recording.
 * The instructions themselves are in exec/, the decoder in decode/, lazy flags in flags.ts.
 * DESIGN.md is the contract with the MMU/system (mmu.ts, seg.ts, intr.ts, sys.ts) and x87 (fpu.ts) parts.
 *
 * Decode cache: a physical code page that is executed gets a DecodeBlock of 4096 entries indexed by
 * the page offset (struct of arrays: no objects per instruction). `codePages[page]` is 1 while a page
 * has a block; the MMU calls codeWritten() for writes to such pages, which drops the decoded entries
 * the write overlaps (the whole block for large writes). Instructions that cross a page boundary are
 * decoded each time into a scratch entry, never cached. Up to MAX_CODE_SLOTS pages are cached; the
 * oldest slot is recycled round-robin. A fetch on the same linear page as the previous one with an
 * entry already decoded takes the fast path (no translation, no lookup).
 *
 * Run loop: between instructions STATE_INHIBIT_IRQ (one instruction after STI/MOV SS), then NMI, then
 * INTR (IF=1, bus.irqs.hasInterrupt(), INTA via controller.acknowledge()). A faulting instruction
 * restores EIP from instrStart and deliverException() (intr.ts) takes over. TF traps after the
 * instruction (#DB, DR6.BS). REP string instructions run in chunks (exec/string.ts).
 *
 * Speed: between INTR poll points run() hands the instructions to #batch(), a tight loop that
 * stops after any instruction that changed what the run loop looks at (TF, a STATE bit, pollIrq,
 * IF with INTR pending; requestExit() and tripleFault() set pollIrq too), and after any fault.
 * #batch() inlines the fetch fast path and gives the decoded entry's words straight to
 * exec/fast.ts, which executes the frequent forms without loading the per-instruction fields (op,
 * modrm, ea...) and without instrStart (set only when such an instruction faults); everything else
 * loads the fields and goes through execute(). #batch() keeps EIP and a "fetch window" (the current
 * code page's decoded entries, the EIP of its first byte, its bytes within the CS limit) in
 * locals; a jump to another page that is cached and in the MMU's TLB moves the window without the
 * slow fetch (#rewindow), and an instruction fetched the slow way may still take a fast form.
 * step() (used with TF set) always takes the general path, which the differential test
 * exec/fast.test.ts compares with the fast one.
 */
import { Fpu } from "./fpu.ts";
import { Mmu } from "./mmu.ts";
import {
  CpuState,
  F,
  SReg,
  Slot,
  STATE_HALTED,
  STATE_IN_NMI,
  STATE_INHIBIT_IRQ,
  STATE_NMI_PENDING,
  Vec,
} from "./state.ts";
import { CpuExit, type CpuBus, type CpuCore } from "./types.ts";
import type { SsmUnitReader, SsmUnitWriter } from "../ssm/unit.ts";
import { flushFlags, readFlags, LZ_MASK } from "./flags.ts";
import {
  DEC_MORE,
  DEC_TOOLONG,
  DecodeBlock,
  ENTRY_WORDS,
  PF_A32,
  PF_CS32,
  PF_MEM,
  PF_O32,
  PF_SEG_SHIFT,
  decode,
} from "./decode/decoder.ts";
import { execute } from "./exec/exec.ts";
import { execFast } from "./exec/fast.ts";
import { IntKind, deliverException, interrupt, resetMsrs } from "./exec/sysapi.ts";

/** run() stop reasons (bits of #stop). */
const STOP_EXIT = 1;
const STOP_SHUTDOWN = 2;
/** INTR is polled at least every IRQ_POLL_MASK + 1 instructions (MMIO-raised interrupts). */
const IRQ_POLL_MASK = 63;

if (ENTRY_WORDS !== 5 || PF_CS32 !== 0x80 || PF_O32 !== 1 || PF_A32 !== 2 || PF_SEG_SHIFT !== 8 || SReg.CS !== 1) {
  throw new Error("cpu.ts: the inlined fetch path assumes the decoder's entry layout");
}
const F_TF = F.TF;
const F_IF = F.IF;
const S_EIP = Slot.EIP;
const S_EFLAGS = Slot.EFLAGS;
const S_STATE = Slot.STATE;

/** Maximum number of cached code pages (each holds 4096 decoded entries, 80 KiB, allocated on use). */
const MAX_CODE_SLOTS = 512;

/**
 * Fast-path access rights per (attr & 0x1f) | (unusable ? 0x20 : 0): bit 0 read, bit 1 write.
 * Only plain expand-up data and readable code qualify; everything else goes to the slow check.
 */
const RIGHTS = new Uint8Array(64);
for (let t = 16; t < 32; t++) {
  const type = t & 15;
  if ((type & 8) === 0) {
    // data: expand-down (bit 2) takes the slow path
    if ((type & 4) === 0) RIGHTS[t] = (type & 2) !== 0 ? 3 : 1;
  } else if ((type & 2) !== 0) {
    RIGHTS[t] = 1; // readable code
  }
}

/** The CPU. */
export class Cpu implements CpuCore {
  /** Architectural state (see state.ts). */
  readonly s = new CpuState();
  readonly i32 = this.s.i32;
  readonly r32 = this.s.r32;
  readonly r16 = this.s.r16;
  readonly r8 = this.s.r8;
  readonly segBase = this.s.segBase;
  readonly segLimit = this.s.segLimit;
  readonly segAttr = this.s.segAttr;
  readonly segSel = this.s.segSel;
  /** Paging, TLB and linear memory access (mmu.ts). */
  readonly mmu: Mmu;
  /** The x87 unit (fpu.ts). */
  readonly fpu: Fpu;

  // --- Per-instruction state (contract) ---
  /** EIP of the instruction being executed (faults restart here). */
  instrStart = 0;
  /** Set by raise(): the current instruction must stop and change no more state. */
  faulted = false;
  /** The pending exception's vector and error code (-1: none). */
  excVector = 0;
  excError = -1;

  // --- The decoded instruction being executed (exec/ reads these) ---
  /** Opcode (0..FF, 0x100|b for 0F b, OP_UD). */
  op = 0;
  /** Prefix/shape bits (decoder PF_*). */
  pfx = 0;
  modrm = 0;
  /** Encoded memory operand (decoder `ea` field). */
  eaBits = 0;
  disp = 0;
  imm = 0;
  imm2 = 0;
  /** Effective address (offset) of the memory operand, computed before execute when PF_MEM. */
  ea = 0;
  /** Segment of the memory operand (override or default). */
  seg = 3;
  /** Operand size is 32 bits. */
  o32 = false;
  /** Address size is 32 bits. */
  a32 = false;

  // --- Mode cache, recomputed by modeChanged() (contract) ---
  /** CR0.PE set and EFLAGS.VM clear. */
  pmode = false;
  /** EFLAGS.VM set (and CR0.PE). */
  vm86 = false;
  /** CS default operand/address size is 32 bits. */
  cs32 = false;
  /** SS B bit: ESP (not SP) is the stack pointer. */
  ss32 = false;
  /** PF_CS32 when cs32, else 0 (compared with decoded entries). */
  #cs32Bit = 0;
  /** 3 outside protected mode (no access-rights checks), 0 in protected mode. */
  #rightsAll = 3;

  instructionCount = 0;
  /** Statistics: instructions decoded (cache misses), code pages evicted from the decode cache. */
  decodeCount = 0;
  codeEvictions = 0;
  readonly ssmVersion = 1;
  /** Why run() must stop at the next boundary: 0 none, STOP_EXIT requestExit(), STOP_SHUTDOWN triple fault. */
  #stop = 0;
  /**
   * INTR as last polled. Devices change it only when the CPU calls into them (I/O instructions:
   * exec sets `pollIrq`; MMIO: caught by the periodic poll) or outside run() (timers), so run()
   * polls at entry, after I/O, after each INTA and every IRQ_POLL_MASK+1 instructions.
   */
  #intr = false;
  /** Set by I/O instructions: poll INTR at the next boundary. */
  pollIrq = false;
  /** Set by exec for INT n/INT3/INTO/INT1 so that TF does not add a single-step trap. */
  noSingleStep = false;

  // --- Decode cache ---
  /** 1 for each physical page that has cached decoded code (contract: the MMU reads it). */
  readonly codePages = new Uint8Array(1 << 20);
  /** Physical page → slot index + 1. */
  readonly #pageSlot = new Uint16Array(1 << 20);
  readonly #slots: DecodeBlock[] = [];
  readonly #slotPage = new Int32Array(MAX_CODE_SLOTS).fill(-1);
  readonly #freeSlots = new Int32Array(MAX_CODE_SLOTS);
  #freeCount = 0;
  #nextEvict = 0;
  readonly #scratch = new DecodeBlock(1);
  readonly #fbuf = new Uint8Array(16);
  /** Fetch TLB: linear page of the last code fetch and its physical page base (-1: none). */
  #fetchLinPage = -1;
  #fetchPhysBase = 0;
  /**
   * Fast fetch: the decode block of the linear code page #fetchLinPage (null: look it up).
   * Dropped with the fetch TLB and whenever a block is dropped.
   */
  #curBlk: DecodeBlock | null = null;

  readonly bus: CpuBus;

  /** The forced-action word (bus.forcedActions), checked at every interrupt poll; null: none. */
  readonly #ffFlags: Int32Array | null;
  readonly #ffIndex: number;

  constructor(bus: CpuBus) {
    this.bus = bus;
    this.#ffFlags = bus.forcedActions?.flags ?? null;
    this.#ffIndex = bus.forcedActions?.index ?? 0;
    this.mmu = new Mmu(this);
    this.fpu = new Fpu(this);
    this.reset();
  }

  /** Records an exception; the instruction returns early and run() delivers it. */
  raise(vector: number, errorCode = -1): void {
    if (this.faulted) return; // the first fault of an instruction wins
    this.faulted = true;
    this.excVector = vector;
    this.excError = errorCode;
  }

  /** Called by exception delivery on a triple fault: the machine shuts down and run() returns. */
  tripleFault(): void {
    this.#stop |= STOP_SHUTDOWN;
    this.pollIrq = true;
    this.bus.onTripleFault();
  }

  /** EFLAGS with the lazy arithmetic flags materialized. */
  getFlags(): number {
    return readFlags(this.i32) | 2;
  }

  /** Sets every EFLAGS bit (arithmetic flags included). Whoever changes VM calls modeChanged(). */
  setFlags(v: number): void {
    this.i32[LZ_MASK] = 0;
    this.i32[Slot.EFLAGS] = (v & 0x3f7fd5) | 2;
  }

  /** Materializes lazy flags into the stored EFLAGS (for code that reads i32[EFLAGS] directly). */
  flushFlags(): void {
    flushFlags(this.i32);
  }

  /** Recomputes pmode/vm86/cs32/ss32 after CR0, EFLAGS.VM, CS or SS changed. */
  modeChanged(): void {
    const cr0 = this.i32[Slot.CR0]!;
    const vm = (this.i32[Slot.EFLAGS]! & F.VM) !== 0;
    this.pmode = (cr0 & 1) !== 0 && !vm;
    this.vm86 = (cr0 & 1) !== 0 && vm;
    this.cs32 = (this.segAttr[SReg.CS]! & (1 << 14)) !== 0;
    this.#cs32Bit = this.cs32 ? PF_CS32 : 0;
    this.ss32 = (this.segAttr[SReg.SS]! & (1 << 14)) !== 0;
    this.#rightsAll = this.pmode ? 0 : 3;
    this.#fetchLinPage = -1;
    this.#curBlk = null;
  }

  /** Called after CR0.PG/WP, CR3, CR4, INVLPG or A20 changes (drops cached translations). */
  pagingChanged(): void {
    // Decoded code is keyed by physical address and stays valid; only the fetch TLB goes.
    this.#fetchLinPage = -1;
    this.#curBlk = null;
  }

  // ---------------------------------------------------------------------------------------------
  // Segment-relative memory access

  /**
   * Slow segment check: null/unusable selector, access rights, expand-down limits.
   * Raises #GP(0) (#SS(0) for SS) and returns false when the access is not allowed.
   */
  #segCheck(seg: number, o: number, size: number, write: boolean): boolean {
    const attr = this.segAttr[seg]!;
    const lim = this.segLimit[seg]! >>> 0;
    const vec = seg === SReg.SS ? Vec.SS : Vec.GP;
    if (this.pmode) {
      if ((attr & 0x10000) !== 0 || (attr & 0x10) === 0) {
        this.raise(vec, 0);
        return false;
      }
      const type = attr & 15;
      if ((type & 8) !== 0) {
        if (write || (type & 2) === 0) {
          this.raise(vec, 0);
          return false;
        }
      } else {
        if (write && (type & 2) === 0) {
          this.raise(vec, 0);
          return false;
        }
        if ((type & 4) !== 0) {
          // expand-down: valid offsets are limit+1 .. 0xFFFF or 0xFFFFFFFF (B bit)
          const top = (attr & (1 << 14)) !== 0 ? 0xffffffff : 0xffff;
          if (o <= lim || o + size - 1 > top) {
            this.raise(vec, 0);
            return false;
          }
          return true;
        }
      }
    }
    if (o + size - 1 > lim) {
      this.raise(vec, 0);
      return false;
    }
    return true;
  }

  #rights(seg: number): number {
    const a = this.segAttr[seg]!;
    return RIGHTS[(a & 0x1f) | ((a >>> 11) & 0x20)]! | this.#rightsAll;
  }

  /** Segment-relative reads: limit/type checks, then mmu (paging). On a fault: raise, return 0. */
  read8(seg: number, off: number): number {
    const o = off >>> 0;
    if (o > this.segLimit[seg]! >>> 0 || (this.#rights(seg) & 1) === 0) {
      if (!this.#segCheck(seg, o, 1, false)) return 0;
    }
    return this.mmu.read8((this.segBase[seg]! + o) | 0);
  }
  read16(seg: number, off: number): number {
    const o = off >>> 0;
    const e = ((off | 0) + 1) >>> 0; // the last byte; e < o when the access wraps past 4 GiB
    if (e > this.segLimit[seg]! >>> 0 || e < o || (this.#rights(seg) & 1) === 0) {
      if (!this.#segCheck(seg, o, 2, false)) return 0;
    }
    return this.mmu.read16((this.segBase[seg]! + o) | 0);
  }
  read32(seg: number, off: number): number {
    const o = off >>> 0;
    const e = ((off | 0) + 3) >>> 0; // the last byte; e < o when the access wraps past 4 GiB
    if (e > this.segLimit[seg]! >>> 0 || e < o || (this.#rights(seg) & 1) === 0) {
      if (!this.#segCheck(seg, o, 4, false)) return 0;
    }
    return this.mmu.read32((this.segBase[seg]! + o) | 0);
  }
  /** Segment-relative writes. On a fault: raise, write nothing. */
  write8(seg: number, off: number, v: number): void {
    const o = off >>> 0;
    if (o > this.segLimit[seg]! >>> 0 || (this.#rights(seg) & 2) === 0) {
      if (!this.#segCheck(seg, o, 1, true)) return;
    }
    this.mmu.write8((this.segBase[seg]! + o) | 0, v);
  }
  write16(seg: number, off: number, v: number): void {
    const o = off >>> 0;
    const e = ((off | 0) + 1) >>> 0; // the last byte; e < o when the access wraps past 4 GiB
    if (e > this.segLimit[seg]! >>> 0 || e < o || (this.#rights(seg) & 2) === 0) {
      if (!this.#segCheck(seg, o, 2, true)) return;
    }
    this.mmu.write16((this.segBase[seg]! + o) | 0, v);
  }
  write32(seg: number, off: number, v: number): void {
    const o = off >>> 0;
    const e = ((off | 0) + 3) >>> 0; // the last byte; e < o when the access wraps past 4 GiB
    if (e > this.segLimit[seg]! >>> 0 || e < o || (this.#rights(seg) & 2) === 0) {
      if (!this.#segCheck(seg, o, 4, true)) return;
    }
    this.mmu.write32((this.segBase[seg]! + o) | 0, v);
  }

  /**
   * Checks that [off, off+size) of a segment may be accessed (read or write) without accessing it.
   * Raises like read/write would and returns false on a fault. Paging is not checked.
   */
  checkSeg(seg: number, off: number, size: number, write: boolean): boolean {
    const o = off >>> 0;
    if (o + size - 1 > this.segLimit[seg]! >>> 0 || (this.#rights(seg) & (write ? 2 : 1)) === 0) {
      return this.#segCheck(seg, o, size, write);
    }
    return true;
  }

  /**
   * Fast-path probe for bulk accesses (REP string instructions): true when [off, off+len) of the
   * segment is accessible without any check that could fault (plain expand-up segment, inside the
   * limit). Never raises; false means "take the per-element path".
   */
  spanOk(seg: number, off: number, len: number, write: boolean): boolean {
    const o = off >>> 0;
    return o + len - 1 <= this.segLimit[seg]! >>> 0 && (this.#rights(seg) & (write ? 2 : 1)) !== 0;
  }

  /**
   * Physical address of a linear address for a bulk data access in RAM, or -1 when the page is not
   * plain RAM (the caller takes the per-element path). A #PF is raised (and -1 returned, with
   * `faulted` set) exactly as the access itself would raise it.
   */
  ramAddr(lin: number, write: boolean): number {
    let phys: number;
    if (this.i32[Slot.CR0]! < 0) {
      phys = this.mmu.translate(lin, write, this.i32[Slot.CPL] === 3);
      if (phys < 0 || this.faulted) return -1;
    } else {
      phys = lin >>> 0;
    }
    phys = (phys & this.bus.mem.a20Mask) >>> 0;
    const mem = this.bus.mem;
    if (phys >= mem.ramSize || !mem.isRamPage(phys >>> 12)) return -1;
    return phys;
  }

  // ---------------------------------------------------------------------------------------------
  // Stack

  /** The stack offset delta bytes from ESP/SP (wrapping at 16 bits for a 16-bit stack). */
  stackOff(delta: number): number {
    return this.ss32 ? (this.r32[4]! + delta) >>> 0 : (this.r16[8]! + delta) & 0xffff;
  }
  /** Sets ESP (32-bit stack) or SP (16-bit stack, upper half kept) to a stack offset. */
  setSp(off: number): void {
    if (this.ss32) this.r32[4] = off;
    else this.r16[8] = off;
  }
  push16(v: number): void {
    const sp = this.stackOff(-2);
    this.write16(SReg.SS, sp, v);
    if (!this.faulted) this.setSp(sp);
  }
  push32(v: number): void {
    const sp = this.stackOff(-4);
    this.write32(SReg.SS, sp, v);
    if (!this.faulted) this.setSp(sp);
  }
  pop16(): number {
    const sp = this.stackOff(0);
    const v = this.read16(SReg.SS, sp);
    if (!this.faulted) this.setSp(this.stackOff(2));
    return v;
  }
  pop32(): number {
    const sp = this.stackOff(0);
    const v = this.read32(SReg.SS, sp);
    if (!this.faulted) this.setSp(this.stackOff(4));
    return v;
  }

  // ---------------------------------------------------------------------------------------------
  // Code fetch and decode cache

  /** Reads one byte of physical memory for code fetch. */
  #physByte(phys: number): number {
    const mem = this.bus.mem;
    return phys < mem.ramSize && mem.isRamPage(phys >>> 12) ? mem.ram[phys]! : mem.read8(phys);
  }

  /** Linear → physical for code fetch; -1 on a fault (raised). */
  #codePhys(lin: number): number {
    const page = lin >>> 12;
    if (page === this.#fetchLinPage) return this.#fetchPhysBase | (lin & 0xfff);
    let phys: number;
    if (this.i32[Slot.CR0]! < 0) {
      phys = this.mmu.translate(lin, false, this.i32[Slot.CPL] === 3);
      if (phys < 0 || this.faulted) return -1;
    } else {
      phys = lin >>> 0;
    }
    phys = (phys & this.bus.mem.a20Mask) >>> 0;
    this.#fetchLinPage = page;
    this.#fetchPhysBase = (phys & ~0xfff) >>> 0;
    this.#curBlk = null;
    return phys;
  }

  /** A cache block for a physical page (allocating or evicting), or null when not cacheable. */
  #blockFor(page: number): DecodeBlock | null {
    const k = this.bus.mem.kindAt(page << 12);
    if (k !== 1 && k !== 2) return null; // RAM or ROM only
    let idx: number;
    if (this.#freeCount > 0) {
      idx = this.#freeSlots[--this.#freeCount]!;
    } else if (this.#slots.length < MAX_CODE_SLOTS) {
      idx = this.#slots.length;
      this.#slots.push(new DecodeBlock(4096));
    } else {
      idx = this.#nextEvict;
      this.#nextEvict = (this.#nextEvict + 1) % MAX_CODE_SLOTS;
      this.codeEvictions++;
      this.#dropSlot(idx);
      this.#freeCount--; // #dropSlot pushed it on the free list; take it back
    }
    this.#slotPage[idx] = page;
    this.#pageSlot[page] = idx + 1;
    this.codePages[page] = 1;
    return this.#slots[idx]!;
  }

  #dropSlot(idx: number): void {
    const page = this.#slotPage[idx]!;
    if (page < 0) return;
    this.#slots[idx]!.d.fill(0);
    this.#pageSlot[page] = 0;
    this.codePages[page] = 0;
    this.#slotPage[idx] = -1;
    this.#freeSlots[this.#freeCount++] = idx;
    this.#curBlk = null;
  }

  /** Guest code in [phys, phys+len) was written: drops the decoded instructions of those pages. */
  codeWritten(phys: number, len: number): void {
    phys >>>= 0;
    if (len <= 0) len = 1;
    const first = phys >>> 12;
    const last = ((phys + len - 1) >>> 12) & 0xfffff;
    for (let p = first; p <= last; p++) {
      const s = this.#pageSlot[p]!;
      if (s === 0) continue;
      if (len >= 1024) {
        this.#dropSlot(s - 1);
        continue;
      }
      // Drop only the entries whose bytes overlap the write: instructions start at most 14 bytes
      // before it (cached instructions never cross the page end).
      const blk = this.#slots[s - 1]!;
      const pageBase = p * 4096;
      const start = phys > pageBase ? phys - pageBase : 0;
      const end = phys + len - pageBase < 4096 ? phys + len - pageBase : 4096;
      const d = blk.d;
      for (let o = start > 14 ? start - 14 : 0; o < end; o++) {
        const l = (d[o * ENTRY_WORDS]! >> 10) & 15;
        if (l !== 0 && o + l > start) d[o * ENTRY_WORDS] = 0;
      }
    }
  }

  /** Drops the whole decode cache. */
  flushCodeCache(): void {
    for (let i = 0; i < this.#slots.length; i++) this.#dropSlot(i);
  }

  /**
   * Fetches and decodes the instruction at CS:EIP into the per-instruction fields.
   * Returns false when fetching faulted (#GP for CS limit or length, #PF).
   */
  #fetch(): boolean {
    const eip = this.i32[S_EIP]!;
    const lin = (this.segBase[1]! + eip) | 0;
    // Fast path: same linear code page as the last fetch, instruction already decoded.
    const cur = this.#curBlk;
    if (cur !== null && lin >>> 12 === this.#fetchLinPage) {
      const d = cur.d;
      const w = (lin & 0xfff) * 5;
      const w0 = d[w]!;
      const w1 = d[w + 1]!;
      const len = (w0 >> 10) & 15;
      if (len !== 0 && (w1 & 0x80) === this.#cs32Bit && (eip >>> 0) + len - 1 <= this.segLimit[1]! >>> 0) {
        this.#loadFields(d, w);
        const next = (eip + len) | 0;
        // IP wraps at 64 KiB in a 16-bit code segment
        this.i32[S_EIP] = (w1 & 0x80) !== 0 ? next : next & 0xffff;
        return true;
      }
    }
    return this.#fetchSlow();
  }

  /** The rest of #fetch: page changes, decode-cache misses, decoding, fetch faults. */
  #fetchSlow(): boolean {
    const eip = this.i32[Slot.EIP]! >>> 0;
    const limit = this.segLimit[SReg.CS]! >>> 0;
    const lin = (this.segBase[SReg.CS]! + eip) | 0;
    if (eip > limit) {
      this.raise(Vec.GP, 0);
      return false;
    }
    const phys = this.#codePhys(lin);
    if (phys < 0) return false;
    const page = phys >>> 12;
    const off = phys & 0xfff;
    const cs32 = this.cs32;
    const slot = this.#pageSlot[page]!;
    let blk: DecodeBlock | null;
    let i = off;
    if (slot !== 0) {
      blk = this.#slots[slot - 1]!;
      this.#curBlk = blk;
      const len = (blk.d[off * ENTRY_WORDS]! >> 10) & 15;
      if (len !== 0 && (blk.d[off * ENTRY_WORDS + 1]! & PF_CS32) === this.#cs32Bit) {
        if (eip + len - 1 > limit) {
          this.raise(Vec.GP, 0);
          return false;
        }
        this.#load(blk, off);
        return true;
      }
    } else {
      blk = this.#blockFor(page);
      this.#curBlk = blk;
    }
    // Decode: bytes up to the page end and the CS limit first.
    const fb = this.#fbuf;
    let n = 4096 - off;
    if (n > 16) n = 16;
    if (limit - eip + 1 < n) n = limit - eip + 1;
    for (let k = 0; k < n; k++) fb[k] = this.#physByte(phys + k);
    if (blk === null) {
      blk = this.#scratch;
      i = 0;
    }
    this.decodeCount++;
    let r = decode(fb, 0, n, cs32, blk, i);
    if (r === DEC_MORE) {
      if (blk !== this.#scratch) blk.d[i * ENTRY_WORDS] = 0;
      let m = 16;
      if (limit - eip + 1 < m) m = limit - eip + 1;
      if (n < m && off + n === 4096) {
        // The instruction crosses into the next page: fetch the rest from there, never cache.
        const phys2 = this.#codePhys((lin + n) | 0);
        if (phys2 < 0) return false;
        for (let k = n; k < m; k++) fb[k] = this.#physByte(phys2 + k - n);
        blk = this.#scratch;
        i = 0;
        r = decode(fb, 0, m, cs32, blk, 0);
      }
      if (r === DEC_MORE) {
        this.raise(Vec.GP, 0); // runs past the CS limit
        return false;
      }
    }
    if (r === DEC_TOOLONG) {
      if (blk !== this.#scratch) blk.d[i * ENTRY_WORDS] = 0;
      this.raise(Vec.GP, 0);
      return false;
    }
    this.#load(blk, i);
    return true;
  }

  #load(blk: DecodeBlock, i: number): void {
    const d = blk.d;
    const w = i * ENTRY_WORDS;
    this.#loadFields(d, w);
    const next = (this.i32[Slot.EIP]! + ((d[w]! >> 10) & 15)) | 0;
    // IP wraps at 64 KiB in a 16-bit code segment
    this.i32[Slot.EIP] = (this.pfx & PF_CS32) !== 0 ? next : next & 0xffff;
  }

  /** Loads the per-instruction fields (op, modrm, prefixes, EA form, operands) from entry word `w`. */
  #loadFields(d: Int32Array, w: number): void {
    const w0 = d[w]!;
    const pfx = d[w + 1]! & 0xffff;
    this.op = w0 & 0x3ff;
    this.modrm = (w0 >>> 16) & 0xff;
    this.pfx = pfx;
    this.eaBits = d[w + 1]! >>> 16;
    this.seg = (pfx >> PF_SEG_SHIFT) & 7;
    this.o32 = (pfx & PF_O32) !== 0;
    this.a32 = (pfx & PF_A32) !== 0;
    this.disp = d[w + 2]!;
    this.imm = d[w + 3]!;
    this.imm2 = d[w + 4]!;
  }

  /** Computes the effective address (offset) of the decoded memory operand. */
  calcEa(): number {
    const e = this.eaBits;
    const base = e & 15;
    const index = (e >> 4) & 15;
    // int32 steps (| 0) keep the sum in an integer register
    let v = this.disp | 0;
    if (this.a32) {
      if (base !== 15) v = (v + this.r32[base]!) | 0;
      if (index !== 15) v = (v + (this.r32[index]! << ((e >> 8) & 3))) | 0;
      return v >>> 0;
    }
    if (base !== 15) v = (v + this.r16[base << 1]!) | 0;
    if (index !== 15) v = (v + this.r16[index << 1]!) | 0;
    return v & 0xffff;
  }

  // ---------------------------------------------------------------------------------------------
  // Run loop

  get halted(): boolean {
    return (this.i32[Slot.STATE]! & STATE_HALTED) !== 0;
  }

  /** The documented i686 power-on/reset state. */
  reset(): void {
    const i32 = this.i32;
    i32.fill(0);
    i32[Slot.EFLAGS] = 2;
    i32[Slot.EIP] = 0xfff0;
    for (let sr = 0; sr < 6; sr++) {
      this.segSel[sr] = 0;
      this.segBase[sr] = 0;
      this.segLimit[sr] = 0xffff;
      this.segAttr[sr] = 0x93; // present, data, read/write, accessed
    }
    this.segSel[SReg.CS] = 0xf000;
    this.segBase[SReg.CS] = 0xffff0000 | 0;
    this.segAttr[SReg.CS] = 0x9b; // present, code, readable, accessed
    this.segLimit[SReg.LDTR] = 0xffff;
    this.segAttr[SReg.LDTR] = 0x82;
    this.segLimit[SReg.TR] = 0xffff;
    this.segAttr[SReg.TR] = 0x8b;
    i32[Slot.GDTR_LIMIT] = 0xffff;
    i32[Slot.IDTR_LIMIT] = 0xffff;
    i32[Slot.CR0] = 0x60000010;
    i32[Slot.DR0 + 6] = 0xffff0ff0 | 0;
    i32[Slot.DR0 + 7] = 0x400;
    // EDX: processor signature, family 6 model 3 stepping 3 (Pentium II, as CPUID reports).
    this.r32[2] = 0x0633;
    resetMsrs(this);
    this.mmu.flush(true);
    this.fpu.reset();
    this.faulted = false;
    this.modeChanged();
    this.flushCodeCache();
  }

  /** Delivers the recorded exception of the current instruction (EIP back to its start). */
  #deliverFault(): void {
    const vec = this.excVector;
    const err = this.excError;
    this.faulted = false;
    this.i32[Slot.EIP] = this.instrStart;
    deliverException(this, vec, err); // handles #DF and the triple fault (STATE_SHUTDOWN)
    this.faulted = false;
  }

  /** Delivers an external interrupt or NMI (faults during delivery become exceptions). */
  #deliverInterrupt(vector: number): void {
    this.faulted = false;
    this.instrStart = this.i32[Slot.EIP]!;
    interrupt(this, vector, IntKind.HW, -1);
    if (this.faulted) this.#deliverFault();
  }

  /** Executes one instruction (fetch, execute, fault delivery, single-step trap). */
  step(): void {
    const i32 = this.i32;
    this.instrStart = i32[Slot.EIP]!;
    this.faulted = false;
    const tf = i32[Slot.EFLAGS]! & F.TF;
    if (!this.#fetch()) {
      this.#deliverFault();
      return;
    }
    if ((this.pfx & 0x20) !== 0) this.ea = this.calcEa();
    if (tf !== 0) this.noSingleStep = false;
    execute(this);
    this.instructionCount++;
    if (this.faulted) {
      this.#deliverFault();
      return;
    }
    if (tf !== 0 && !this.noSingleStep) {
      i32[Slot.DR0 + 6] = i32[Slot.DR0 + 6]! | 0x4000; // DR6.BS
      this.instrStart = i32[Slot.EIP]!;
      interrupt(this, Vec.DB, IntKind.EXC, -1);
      if (this.faulted) this.#deliverFault();
    }
  }

  run(maxInstructions: number): CpuExit {
    const i32 = this.i32;
    const irqs = this.bus.irqs;
    let n = 0;
    this.#intr = irqs.hasInterrupt();
    for (;;) {
      if (this.#stop !== 0) {
        const stop = this.#stop;
        if ((stop & STOP_SHUTDOWN) !== 0) {
          this.#stop = stop & ~STOP_SHUTDOWN;
          return CpuExit.TRIPLE_FAULT;
        }
        this.#stop = 0;
        return CpuExit.EXIT_REQUESTED;
      }
      if (n >= maxInstructions) return (i32[Slot.STATE]! & STATE_HALTED) !== 0 ? CpuExit.HALTED : CpuExit.BUDGET;
      if (this.pollIrq || (n & IRQ_POLL_MASK) === 0) {
        this.pollIrq = false;
        this.#intr = irqs.hasInterrupt();
        // A request from another thread: leave at this boundary (after some progress).
        const ff = this.#ffFlags;
        if (ff !== null && n !== 0 && ff[this.#ffIndex] !== 0) return CpuExit.EXIT_REQUESTED;
      }
      const st = i32[Slot.STATE]!;
      if (st !== 0) {
        if ((st & STATE_INHIBIT_IRQ) !== 0) {
          // the instruction after STI / MOV SS runs before interrupts are looked at
          i32[Slot.STATE] = st & ~STATE_INHIBIT_IRQ;
          this.step();
          n++;
          continue;
        }
        if ((st & STATE_NMI_PENDING) !== 0 && (st & STATE_IN_NMI) === 0) {
          i32[Slot.STATE] = (st & ~(STATE_NMI_PENDING | STATE_HALTED)) | STATE_IN_NMI;
          this.#deliverInterrupt(Vec.NMI);
          continue;
        }
      }
      if (this.#intr && (i32[Slot.EFLAGS]! & F.IF) !== 0) {
        this.#intr = false;
        if (irqs.hasInterrupt()) {
          const vector = irqs.controller!.acknowledge();
          i32[Slot.STATE] = i32[Slot.STATE]! & ~STATE_HALTED;
          this.#deliverInterrupt(vector & 0xff);
          this.#intr = irqs.hasInterrupt();
          continue;
        }
      }
      if ((st & STATE_HALTED) !== 0) {
        // Halted: wait for INTR (polled now, as nothing else runs devices inside run()).
        if ((i32[Slot.EFLAGS]! & F.IF) !== 0 && irqs.hasInterrupt()) {
          this.#intr = true;
          continue;
        }
        return CpuExit.HALTED;
      }
      if ((i32[Slot.EFLAGS]! & F.TF) !== 0) {
        this.step();
        n++;
        continue;
      }
      // Up to the next INTR poll point (or the budget), nothing but instructions happens: run them
      // in a tight loop that stops as soon as one of them needs the checks above.
      let lim = maxInstructions - n;
      const toPoll = IRQ_POLL_MASK + 1 - (n & IRQ_POLL_MASK);
      if (toPoll < lim) lim = toPoll;
      n += this.#batch(lim);
    }
  }

  /**
   * Executes 1..lim instructions with TF clear (as step() would), stopping after an instruction
   * that set TF, a STATE bit, pollIrq or a stop reason, or IF while INTR is pending. Returns the
   * number of instructions run (faulted ones included, as run() counts them).
   */
  #batch(lim: number): number {
    const i32 = this.i32;
    const stopFlags = this.#intr ? F_TF | F_IF : F_TF;
    const cs32Bit = this.#cs32Bit;
    let k = 0;
    let retired = 0;
    // The fetch window, in locals: the decoded entries of the current linear code page (#curBlk),
    // the EIP of that page's first byte and how many of its bytes lie within the CS limit (0: no
    // window). An instruction at `eip` is in the window when 0 <= eip - wBase and
    // eip - wBase + len <= wSpan, which is the same page and the same CS limit check as #fetch().
    // Only the general path and fault delivery change CS, paging or the current block; after
    // them the window is recomputed. (A dropped block is zero-filled, so a stale window misses.)
    let wd: Int32Array = this.#scratch.d;
    let wBase = 0;
    let wSpan = 0;
    if (this.#curBlk !== null) {
      wd = this.#curBlk.d;
      wBase = ((this.#fetchLinPage << 12) - this.segBase[1]!) | 0;
      wSpan = this.#windowSpan(wBase);
    }
    // EIP, kept in a local while fast forms run (execFast says when it changed EIP itself)
    let eip = i32[S_EIP]!;
    while (k < lim) {
      k++;
      this.faulted = false;
      // The fast path of #fetch, inlined (keep the two in step).
      let off = (eip - wBase) | 0;
      let w = 0;
      let w0 = 0;
      let w1 = 0;
      let len = 0;
      if (off >= 0 && off < wSpan) {
        w = off * 5;
        w0 = wd[w]!;
        w1 = wd[w + 1]!;
        len = (w0 >> 10) & 15;
        if (off + len > wSpan || (w1 & 0x80) !== cs32Bit) len = 0;
      }
      if (len === 0 && this.#rewindow(eip)) {
        // another code page that is cached and in the TLB: move the window there
        wd = this.#curBlk!.d;
        wBase = ((this.#fetchLinPage << 12) - this.segBase[1]!) | 0;
        wSpan = this.#windowSpan(wBase);
        off = (eip - wBase) | 0;
        if (off >= 0 && off < wSpan) {
          w = off * 5;
          w0 = wd[w]!;
          w1 = wd[w + 1]!;
          len = (w0 >> 10) & 15;
          if (off + len > wSpan || (w1 & 0x80) !== cs32Bit) len = 0;
        }
      }
      let fetched = false;
      if (len !== 0) {
        const next = (w1 & 0x80) !== 0 ? (eip + len) | 0 : (eip + len) & 0xffff;
        i32[S_EIP] = next;
        const r = execFast(this, w0, w1, wd[w + 2]!, wd[w + 3]!);
        if (r !== 0) {
          retired++;
          if (this.faulted) {
            // the fast forms do not read instrStart: it is set only for the fault's delivery
            this.instrStart = eip;
            this.#deliverFault();
            break;
          }
          // requestExit() and tripleFault() set pollIrq too
          if (((i32[S_EFLAGS]! & stopFlags) | i32[S_STATE]!) !== 0 || this.pollIrq) break;
          eip = r === 1 ? next : i32[S_EIP]!;
          continue;
        }
        this.#loadFields(wd, w);
        fetched = true;
      }
      this.instrStart = eip;
      // The general path (I/O, RDTSC, MMIO) may read the clock, which counts instructions: make
      // instructionCount exact before it runs (the fast forms never look at time).
      this.instructionCount += retired;
      retired = 0;
      if (!fetched) {
        // Not decoded yet, or a page change the window could not follow: fetch the slow way, which
        // moves the window to this page; an instruction now cached there may still take a fast form.
        if (!this.#fetchSlow()) {
          this.#deliverFault();
          break;
        }
        const cur = this.#curBlk;
        if (cur !== null) {
          wd = cur.d;
          wBase = ((this.#fetchLinPage << 12) - this.segBase[1]!) | 0;
          wSpan = this.#windowSpan(wBase);
          const o = (eip - wBase) | 0;
          if (o >= 0 && o < wSpan) {
            const x = o * 5;
            const x0 = wd[x]!;
            const x1 = wd[x + 1]!;
            const n = (x0 >> 10) & 15;
            if (n !== 0 && o + n <= wSpan && (x1 & 0x80) === cs32Bit) {
              // #fetchSlow loaded this very entry and advanced EIP past it
              const r = execFast(this, x0, x1, wd[x + 2]!, wd[x + 3]!);
              if (r !== 0) {
                retired++;
                if (this.faulted) {
                  this.#deliverFault();
                  break;
                }
                if (((i32[S_EFLAGS]! & stopFlags) | i32[S_STATE]!) !== 0 || this.pollIrq) break;
                eip = i32[S_EIP]!;
                continue;
              }
            }
          }
        } else {
          wSpan = 0;
        }
      }
      if ((this.pfx & PF_MEM) !== 0) this.ea = this.calcEa();
      execute(this);
      retired++;
      if (this.faulted) {
        this.#deliverFault();
        break;
      }
      // requestExit() and tripleFault() set pollIrq too
      if (((i32[S_EFLAGS]! & stopFlags) | i32[S_STATE]!) !== 0 || this.pollIrq) break;
      // CS, the mode, paging or the current block may have changed: recompute the window.
      if (this.#cs32Bit !== cs32Bit) break;
      eip = i32[S_EIP]!;
      const cur = this.#curBlk;
      if (cur !== null) {
        wd = cur.d;
        wBase = ((this.#fetchLinPage << 12) - this.segBase[1]!) | 0;
        wSpan = this.#windowSpan(wBase);
      } else {
        wSpan = 0;
      }
    }
    this.instructionCount += retired;
    return k;
  }

  /**
   * Moves the fetch TLB (#fetchLinPage, #fetchPhysBase, #curBlk) to the code page holding EIP `eip`
   * when that is cheap: its translation is in the MMU's TLB (as #codePhys would find it) and its
   * physical page has a decode block. False: nothing changed (#fetchSlow does the full work).
   */
  #rewindow(eip: number): boolean {
    const lin = (this.segBase[1]! + eip) | 0;
    const e = this.mmu.tlb[lin >>> 12]!;
    // read permission at the current privilege: T_RU (2) at CPL 3, else T_RS (1); 64 = Slot.CPL
    if ((e & (this.i32[64] === 3 ? 2 : 1)) === 0) return false;
    const slot = this.#pageSlot[e >>> 12]!;
    if (slot === 0) return false;
    this.#fetchLinPage = lin >>> 12;
    this.#fetchPhysBase = (e & -4096) >>> 0;
    this.#curBlk = this.#slots[slot - 1]!;
    return true;
  }

  /** How many bytes of the code page whose first byte is at EIP `base` are within the CS limit. */
  #windowSpan(base: number): number {
    const b = base >>> 0;
    const lim = this.segLimit[1]! >>> 0;
    if (b > lim) return 0;
    const n = lim - b;
    // an int32 result (| 0), so that the window test in #batch stays integer arithmetic
    return n >= 4095 ? 4096 : (n + 1) | 0;
  }

  requestExit(): void {
    this.#stop |= STOP_EXIT;
    this.pollIrq = true;
  }

  saveState(w: SsmUnitWriter): void {
    flushFlags(this.i32);
    w.putRaw(this.s.snapshot());
  }

  loadState(r: SsmUnitReader, version: number): void {
    void version;
    this.s.restore(r.getRaw(this.s.buffer.byteLength));
    this.modeChanged();
    this.mmu.flush(true);
    this.pagingChanged();
    this.flushCodeCache();
  }
}
