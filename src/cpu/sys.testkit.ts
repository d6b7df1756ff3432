/**
 * Test kit for the system part's unit tests (mmu, seg, intr, task, sys): a stand-in CPU that has
 * exactly the contract members of DESIGN.md the system part uses, so those tests do not depend on
 * the core's executor, plus helpers that build descriptors, gates and page tables in guest RAM.
 * End-to-end tests use the real Cpu instead.
 */
import type { Cpu } from "./cpu.ts";
import { Mmu } from "./mmu.ts";
import { CpuState, SReg, Slot } from "./state.ts";
import { PhysMem } from "../mem/PhysMem.ts";
import { IoPortSpace } from "../pdm/IoPortSpace.ts";
import { IrqRouter } from "../pdm/IrqLine.ts";
import { ManualClock } from "../tm/VirtualClock.ts";

/** The stand-in CPU (cast to Cpu for the functions under test). */
export class TestCpu {
  readonly s = new CpuState();
  readonly i32 = this.s.i32;
  readonly r32 = this.s.r32;
  readonly r16 = this.s.r16;
  readonly r8 = this.s.r8;
  readonly codePages = new Uint8Array(1 << 20);
  readonly written: [number, number][] = [];
  readonly clock = new ManualClock(0);
  readonly mem: PhysMem;
  readonly bus;
  readonly mmu: Mmu;
  instrStart = 0;
  faulted = false;
  excVector = 0;
  excError = -1;
  pmode = false;
  vm86 = false;
  cs32 = false;
  ss32 = false;
  triples = 0;
  pagingChanges = 0;

  constructor(ramSize = 4 << 20) {
    this.mem = new PhysMem(ramSize, new ArrayBuffer(ramSize));
    this.bus = {
      mem: this.mem,
      io: new IoPortSpace(),
      irqs: new IrqRouter(),
      clock: this.clock,
      onTripleFault: () => {
        this.triples++;
      },
    };
    this.mmu = new Mmu(this as unknown as Cpu);
    this.s.segLimit.fill(0xffff);
    this.s.segAttr.fill(0x93);
    this.s.segAttr[SReg.CS] = 0x9b;
    this.s.segAttr[SReg.LDTR] = 1 << 16;
    this.i32[Slot.IDTR_LIMIT] = 0x3ff;
    this.i32[Slot.EFLAGS] = 2;
  }

  get cpu(): Cpu {
    return this as unknown as Cpu;
  }
  raise(vector: number, errorCode = -1): void {
    if (this.faulted) return;
    this.faulted = true;
    this.excVector = vector;
    this.excError = errorCode;
  }
  /** The fault raised (and clears it): [vector, error] or null. */
  takeFault(): [number, number] | null {
    if (!this.faulted) return null;
    this.faulted = false;
    return [this.excVector, this.excError];
  }
  tripleFault(): void {
    this.bus.onTripleFault();
  }
  getFlags(): number {
    return this.i32[Slot.EFLAGS]! | 2;
  }
  setFlags(v: number): void {
    this.i32[Slot.EFLAGS] = (v & 0x3f7fd5) | 2;
  }
  modeChanged(): void {
    const cr0 = this.i32[Slot.CR0]!;
    const vm = (this.i32[Slot.EFLAGS]! & (1 << 17)) !== 0;
    this.pmode = (cr0 & 1) !== 0 && !vm;
    this.vm86 = (cr0 & 1) !== 0 && vm;
    this.cs32 = (this.s.segAttr[SReg.CS]! & (1 << 14)) !== 0;
    this.ss32 = (this.s.segAttr[SReg.SS]! & (1 << 14)) !== 0;
  }
  pagingChanged(): void {
    this.pagingChanges++;
  }
  codeWritten(phys: number, len: number): void {
    this.written.push([phys, len]);
  }

  // ---- RAM helpers (physical) ----
  w8(a: number, v: number): void {
    this.mem.write8(a, v);
  }
  w16(a: number, v: number): void {
    this.mem.write16(a, v);
  }
  w32(a: number, v: number): void {
    this.mem.write32(a, v);
  }
  r8p(a: number): number {
    return this.mem.read8(a);
  }
  r16p(a: number): number {
    return this.mem.read16(a);
  }
  r32p(a: number): number {
    return this.mem.read32(a) >>> 0;
  }

  /** Writes a segment descriptor at table + index*8. `access` = P DPL S type byte, `flags` = G D/B nibble. */
  seg(table: number, index: number, base: number, limit: number, access: number, flags = 0xc): void {
    const lo = ((base & 0xffff) << 16) | (limit & 0xffff);
    const hi = (base & 0xff000000) | ((flags & 0xf) << 20) | (limit & 0xf0000) | ((access & 0xff) << 8) | ((base >>> 16) & 0xff);
    this.w32(table + index * 8, lo);
    this.w32(table + index * 8 + 4, hi);
  }

  /** Writes a gate (interrupt/trap/call/task) at table + index*8. `access` = P DPL 0 type. */
  gate(table: number, index: number, sel: number, off: number, access: number, count = 0): void {
    this.w32(table + index * 8, ((sel & 0xffff) << 16) | (off & 0xffff));
    this.w32(table + index * 8 + 4, (off & 0xffff0000) | ((access & 0xff) << 8) | (count & 0x1f));
  }

  /** Enters protected mode at CPL 0 with the GDT at `gdt` (limit), IDT at `idt` (limit). */
  protectedMode(gdt: number, gdtLimit: number, idt: number, idtLimit: number): void {
    this.i32[Slot.GDTR_BASE] = gdt;
    this.i32[Slot.GDTR_LIMIT] = gdtLimit;
    this.i32[Slot.IDTR_BASE] = idt;
    this.i32[Slot.IDTR_LIMIT] = idtLimit;
    this.i32[Slot.CR0] = this.i32[Slot.CR0]! | 1;
    this.modeChanged();
  }

  /** Sets a segment register cache directly (as if loaded). */
  setSegCache(sreg: number, sel: number, base: number, limit: number, attr: number): void {
    this.s.segSel[sreg] = sel;
    this.s.segBase[sreg] = base;
    this.s.segLimit[sreg] = limit;
    this.s.segAttr[sreg] = attr;
    this.modeChanged();
  }
}
