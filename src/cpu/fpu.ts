/**
 * x87 FPU. SHELL: the x87 owner replaces this (DESIGN.md has the contract).
 */
import type { Cpu } from "./cpu.ts";
import { Vec } from "./state.ts";

/** The x87 unit of one CPU; its state lives in the CPU state buffer's x87 area. */
export class Fpu {
  readonly cpu: Cpu;
  constructor(cpu: Cpu) {
    this.cpu = cpu;
  }
  /** FNINIT state (also at CPU reset). */
  reset(): void {
    /* nothing yet */
  }
  /**
   * Executes one escape instruction. `op` is 0xD8..0xDF, `modrm` the ModRM byte; for memory
   * forms `seg`/`off` are the effective address (segment index, offset), for register forms seg = -1.
   */
  exec(op: number, modrm: number, seg: number, off: number): void {
    void op;
    void modrm;
    void seg;
    void off;
    this.cpu.raise(Vec.NM);
  }
  /** FWAIT/WAIT (9B): delivers a pending unmasked x87 exception. */
  wait(): void {
    /* nothing yet */
  }
}
