/**
 * DevIns: one device instance's view of the machine (VirtualBox's PDMDEVINS + its helpers):
 * its CFGM node, port and MMIO mapping, IRQ lines, timers, statistics and machine services.
 */
import type { CfgmNode } from "../cfgm/CfgmNode.ts";
import type { PhysMem } from "../mem/PhysMem.ts";
import type { Stam, StamCounter, StamProfile, StamUnit } from "../stam/Stam.ts";
import type { Timer, TimerScheduler } from "../tm/Timer.ts";
import type { Clock } from "../tm/VirtualClock.ts";
import type { IoPortSpace, IoPortMapOptions } from "./IoPortSpace.ts";
import { IrqLine, type IrqRouter } from "./IrqLine.ts";
import type { IoHandler, MachineServices } from "./types.ts";

/** The resources a device instance is built from. */
export interface MachineContext {
  mem: PhysMem;
  io: IoPortSpace;
  irqs: IrqRouter;
  timers: TimerScheduler;
  stam: Stam;
  machine: MachineServices;
}

/** A device instance's handle on the machine. */
export class DevIns {
  /** STAM prefix: "/Devices/i8254" for instance 0, "/Devices/serial1" for instance 1 of a multi-instance device. */
  readonly stamPrefix: string;
  readonly #timers: Timer[] = [];

  readonly name: string;
  readonly instance: number;
  readonly cfg: CfgmNode;
  readonly ctx: MachineContext;

  constructor(name: string, instance: number, cfg: CfgmNode, ctx: MachineContext) {
    this.name = name;
    this.instance = instance;
    this.cfg = cfg;
    this.ctx = ctx;
    this.stamPrefix = `/Devices/${name}${instance > 0 ? String(instance) : ""}`;
  }

  /** I/O port mapping. */
  readonly ioPorts = {
    map: (base: number, count: number, handler: IoHandler, opts: IoPortMapOptions = {}): void => {
      this.ctx.io.map(base, count, handler, { ...opts, name: opts.name ?? `${this.name}#${String(this.instance)}` });
    },
  };

  /** MMIO mapping. */
  readonly mmio = {
    map: (gpa: number, size: number, handler: IoHandler): void => {
      this.ctx.mem.mapMmio(gpa, size, handler, `${this.name}#${String(this.instance)}`);
    },
  };

  /** Guest physical memory (for DMA-style access and ROM mapping). */
  get mem(): PhysMem {
    return this.ctx.mem;
  }

  /** The virtual clock. */
  get clock(): Clock {
    return this.ctx.timers.clock;
  }

  /** The machine's services (reset, A20, power off, char backends). */
  get machine(): MachineServices {
    return this.ctx.machine;
  }

  /** A handle on ISA IRQ line n. */
  irq(n: number): IrqLine {
    return new IrqLine(this.ctx.irqs, n);
  }

  /** The IRQ router itself (the interrupt controller device registers with it). */
  get irqRouter(): IrqRouter {
    return this.ctx.irqs;
  }

  /** Creates a virtual-clock timer owned by this instance. */
  timer(name: string, callback: (now: number) => void): Timer {
    const t = this.ctx.timers.create(`${this.name}#${String(this.instance)}/${name}`, callback);
    this.#timers.push(t);
    return t;
  }

  /** The instance's timers. */
  timers(): readonly Timer[] {
    return this.#timers;
  }

  /** A STAM counter under the device's prefix ("Irq" → "/Devices/i8254/Irq"). */
  counter(name: string, desc: string, unit: StamUnit = "count"): StamCounter {
    return this.ctx.stam.counter(`${this.stamPrefix}/${name}`, desc, unit);
  }

  /** A STAM profile under the device's prefix. */
  profile(name: string, desc: string): StamProfile {
    return this.ctx.stam.profile(`${this.stamPrefix}/${name}`, desc);
  }
}
