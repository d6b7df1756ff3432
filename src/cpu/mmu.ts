/**
 * MMU: paging, TLB and linear-address memory access. SHELL: paging off, A20 honoured, slow path
 * only. The MMU's owner replaces this with the real thing (DESIGN.md has the contract).
 */
import type { Cpu } from "./cpu.ts";

/** Linear → physical translation and linear memory access for one CPU. */
export class Mmu {
  readonly cpu: Cpu;
  constructor(cpu: Cpu) {
    this.cpu = cpu;
  }
  read8(lin: number): number {
    return this.cpu.bus.mem.read8(lin >>> 0);
  }
  read16(lin: number): number {
    return this.cpu.bus.mem.read16(lin >>> 0);
  }
  read32(lin: number): number {
    return this.cpu.bus.mem.read32(lin >>> 0);
  }
  write8(lin: number, v: number): void {
    this.cpu.bus.mem.write8(lin >>> 0, v);
  }
  write16(lin: number, v: number): void {
    this.cpu.bus.mem.write16(lin >>> 0, v);
  }
  write32(lin: number, v: number): void {
    this.cpu.bus.mem.write32(lin >>> 0, v);
  }
  /** Drops cached translations (global ones too when `global`). */
  flush(global: boolean): void {
    void global;
  }
}
