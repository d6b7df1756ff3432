/**
 * The i686 CPU: execution core. THIS FILE IS A SHELL laid down so that the MMU/system, x87 and
 * core work can proceed in parallel against one contract (DESIGN.md). The members below are the
 * contract; the core's owner fills in the bodies and may add anything else.
 */
import { Fpu } from "./fpu.ts";
import { Mmu } from "./mmu.ts";
import { CpuState, SReg, Slot, STATE_HALTED } from "./state.ts";
import { CpuExit, type CpuBus, type CpuCore } from "./types.ts";
import type { SsmUnitReader, SsmUnitWriter } from "../ssm/unit.ts";

/** The CPU. */
export class Cpu implements CpuCore {
  /** Architectural state (see state.ts). */
  readonly s = new CpuState();
  readonly i32 = this.s.i32;
  readonly r32 = this.s.r32;
  readonly r16 = this.s.r16;
  readonly r8 = this.s.r8;
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

  // --- Mode cache, recomputed by modeChanged() (contract) ---
  /** CR0.PE set and EFLAGS.VM clear. */
  pmode = false;
  /** EFLAGS.VM set (and CR0.PE). */
  vm86 = false;
  /** CS default operand/address size is 32 bits. */
  cs32 = false;
  /** SS B bit: ESP (not SP) is the stack pointer. */
  ss32 = false;

  instructionCount = 0;
  readonly ssmVersion = 1;
  #exitRequested = false;

  readonly bus: CpuBus;

  constructor(bus: CpuBus) {
    this.bus = bus;
    this.mmu = new Mmu(this);
    this.fpu = new Fpu(this);
    this.reset();
  }

  /** Records an exception; the instruction returns early and run() delivers it. */
  raise(vector: number, errorCode = -1): void {
    this.faulted = true;
    this.excVector = vector;
    this.excError = errorCode;
  }

  /** EFLAGS with the lazy arithmetic flags materialized. */
  getFlags(): number {
    return this.i32[Slot.EFLAGS]! | 2;
  }

  /** Sets every EFLAGS bit (arithmetic flags included); recomputes the mode cache if VM changed. */
  setFlags(v: number): void {
    this.i32[Slot.EFLAGS] = v | 2;
  }

  /** Recomputes pmode/vm86/cs32/ss32 after CR0, EFLAGS.VM, CS or SS changed. */
  modeChanged(): void {
    const cr0 = this.i32[Slot.CR0]!;
    const vm = (this.i32[Slot.EFLAGS]! & (1 << 17)) !== 0;
    this.pmode = (cr0 & 1) !== 0 && !vm;
    this.vm86 = (cr0 & 1) !== 0 && vm;
    this.cs32 = (this.s.segAttr[SReg.CS]! & (1 << 14)) !== 0;
    this.ss32 = (this.s.segAttr[SReg.SS]! & (1 << 14)) !== 0;
  }

  /** Called after CR0.PG/WP, CR3, CR4, INVLPG or A20 changes (drops cached translations/decodes). */
  pagingChanged(): void {
    /* the core drops its decode cache here */
  }

  /** Segment-relative reads: limit/type checks, then mmu (paging). On a fault: raise, return 0. */
  read8(seg: number, off: number): number {
    return this.mmu.read8((this.s.segBase[seg]! + off) | 0);
  }
  read16(seg: number, off: number): number {
    return this.mmu.read16((this.s.segBase[seg]! + off) | 0);
  }
  read32(seg: number, off: number): number {
    return this.mmu.read32((this.s.segBase[seg]! + off) | 0);
  }
  /** Segment-relative writes. On a fault: raise, write nothing. */
  write8(seg: number, off: number, v: number): void {
    this.mmu.write8((this.s.segBase[seg]! + off) | 0, v);
  }
  write16(seg: number, off: number, v: number): void {
    this.mmu.write16((this.s.segBase[seg]! + off) | 0, v);
  }
  write32(seg: number, off: number, v: number): void {
    this.mmu.write32((this.s.segBase[seg]! + off) | 0, v);
  }

  get halted(): boolean {
    return (this.i32[Slot.STATE]! & STATE_HALTED) !== 0;
  }

  reset(): void {
    this.s.i32.fill(0);
    this.fpu.reset();
    this.modeChanged();
  }

  run(maxInstructions: number): CpuExit {
    void maxInstructions;
    if (this.#exitRequested) {
      this.#exitRequested = false;
      return CpuExit.EXIT_REQUESTED;
    }
    return CpuExit.BUDGET;
  }

  requestExit(): void {
    this.#exitRequested = true;
  }

  saveState(w: SsmUnitWriter): void {
    w.putRaw(this.s.snapshot());
  }

  loadState(r: SsmUnitReader, version: number): void {
    void version;
    this.s.restore(r.getRaw(this.s.buffer.byteLength));
    this.modeChanged();
    this.pagingChanged();
  }
}
