/**
 * Interrupt lines. A device raises and lowers its ISA IRQ line; the router passes the level to the
 * interrupt controller registered by the PIC device (and later an I/O APIC), and tells the CPU to
 * look at INTR again.
 */
import type { InterruptController } from "./types.ts";

/** Routes ISA IRQ levels to the interrupt controller and wakes the CPU. */
export class IrqRouter {
  /** The PIC (or APIC) device's input: setIrq(irq, level). */
  #sink: ((irq: number, level: boolean) => void) | null = null;
  /** What the CPU asks for INTR and INTA. */
  controller: InterruptController | null = null;
  /** Called whenever an IRQ level changes (the EMT re-checks INTR, wakes from HLT). */
  onChange: (() => void) | null = null;
  /** Current level per ISA IRQ line (0..23), for info and for a controller registered late. */
  readonly levels = new Uint8Array(24);

  /** The interrupt controller device registers here. */
  registerController(ctrl: InterruptController, setIrq: (irq: number, level: boolean) => void): void {
    this.controller = ctrl;
    this.#sink = setIrq;
  }

  /** Sets the level of an ISA IRQ line. */
  setIrq(irq: number, level: boolean): void {
    if (irq < 0 || irq >= 24) return;
    this.levels[irq] = level ? 1 : 0;
    this.#sink?.(irq, level);
    this.onChange?.();
  }

  /** True when the controller asserts INTR. */
  hasInterrupt(): boolean {
    return this.controller !== null && this.controller.hasInterrupt();
  }
}

/** A device's handle on one IRQ line. */
export class IrqLine {
  #level = false;
  readonly router: IrqRouter;
  readonly irq: number;
  constructor(router: IrqRouter, irq: number) {
    this.router = router;
    this.irq = irq;
  }
  /** Sets the level. */
  set(level: boolean): void {
    if (level === this.#level) return;
    this.#level = level;
    this.router.setIrq(this.irq, level);
  }
  raise(): void {
    this.set(true);
  }
  lower(): void {
    this.set(false);
  }
  /** A rising then falling edge. */
  pulse(): void {
    this.#level = true;
    this.router.setIrq(this.irq, true);
    this.#level = false;
    this.router.setIrq(this.irq, false);
  }
  get level(): boolean {
    return this.#level;
  }
}
