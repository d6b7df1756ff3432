/**
 * Machine boot: what happens at power-on and reset after the devices are reset — load a BIOS ROM,
 * a Linux bzImage + initrd, or a multiboot kernel, as the configuration's /Boot node says, and set
 * the CPU's entry state. SHELL: the loader's owner fills this in.
 */
import type { CfgmNode } from "../cfgm/CfgmNode.ts";
import type { Cpu } from "../cpu/cpu.ts";
import type { PhysMem } from "../mem/PhysMem.ts";

/** What the boot code works on. */
export interface BootContext {
  /** The root of the VM's configuration (reads /Boot). */
  cfg: CfgmNode;
  mem: PhysMem;
  cpu: Cpu;
}

/** Keys accepted under /Boot. */
export const bootConfigKeys: readonly string[] = [];

/** Called by the EMT at power-on and after every reset. */
export function bootMachine(ctx: BootContext): void {
  void ctx;
}
