/**
 * The CPU as the rest of the VM sees it: what the EMT loop calls and what the CPU calls back.
 * The implementation (state, decoder, executor, MMU, x87) lives beside this file; see DESIGN.md.
 */
import type { PhysMem } from "../mem/PhysMem.ts";
import type { IoPortSpace } from "../pdm/IoPortSpace.ts";
import type { IrqRouter } from "../pdm/IrqLine.ts";
import type { SsmUnitReader, SsmUnitWriter } from "../ssm/unit.ts";
import type { Clock } from "../tm/VirtualClock.ts";

/** What the CPU is connected to. */
export interface CpuBus {
  /** Guest physical memory (RAM fast path through mem.ram, the rest through read8/write8...). */
  mem: PhysMem;
  /** I/O ports (IN/OUT/INS/OUTS). */
  io: IoPortSpace;
  /** INTR (irqs.hasInterrupt()) and INTA (irqs.controller!.acknowledge()). */
  irqs: IrqRouter;
  /** The virtual clock; RDTSC counts its nanoseconds (a 1 GHz TSC). */
  clock: Clock;
  /** Called on a triple fault (shutdown); the machine resets, as a PC does. */
  onTripleFault(): void;
  /**
   * Optional: a shared word (`flags[index]`) that another thread makes non-zero when a forced action
   * (a request) is pending; run() then returns EXIT_REQUESTED at its next interrupt poll, at most
   * 64 instructions later, so requests need not wait for the end of a CPU slice.
   */
  forcedActions?: { flags: Int32Array; index: number };
}

/** Why run() returned. */
export const CpuExit = {
  /** The instruction budget ran out. */
  BUDGET: 0,
  /** The CPU executed HLT and waits for an interrupt (the EMT sleeps in VMR3WaitHalted). */
  HALTED: 1,
  /** requestExit() was called (a forced action: request, suspend, timer). */
  EXIT_REQUESTED: 2,
  /** A triple fault happened; bus.onTripleFault() was called. */
  TRIPLE_FAULT: 3,
} as const;
export type CpuExit = (typeof CpuExit)[keyof typeof CpuExit];

/** The CPU interface the EMT loop drives. */
export interface CpuCore {
  /** Power-on/reset state (real mode, CS:IP = F000:FFF0 with CS base FFFF0000). */
  reset(): void;
  /**
   * Executes instructions until `maxInstructions` have retired, HLT, a triple fault or
   * requestExit(). Checks INTR between instructions when IF=1. Never throws for guest behaviour.
   */
  run(maxInstructions: number): CpuExit;
  /** Makes run() return at the next instruction boundary (thread-local; any caller on the EMT). */
  requestExit(): void;
  /** True while halted (HLT with no interrupt yet). An interrupt (INTR with IF=1, NMI) clears it. */
  readonly halted: boolean;
  /** Instructions retired since construction. */
  readonly instructionCount: number;
  /** The saved-state unit version saveState() writes. */
  readonly ssmVersion: number;
  saveState(w: SsmUnitWriter): void;
  loadState(r: SsmUnitReader, version: number): void;
}
