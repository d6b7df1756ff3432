/**
 * Intel 8259A programmable interrupt controller, as the PC pair: master at 0x20/0x21 (IRQ 0–7),
 * slave at 0xA0/0xA1 (IRQ 8–15) cascaded on the master's IR2, plus the PIIX3 edge/level control
 * registers (ELCR) at 0x4D0/0x4D1.
 *
 * References: Intel 8259A datasheet (order 231468): ICW1–ICW4, OCW1–OCW3, priority resolution,
 * special mask mode, poll command, spurious IR7; OSDev wiki "8259 PIC"; Intel 82371SB (PIIX3)
 * datasheet §4.1.4 ELCR1/ELCR2.
 *
 * The guest driver's view (Linux arch/x86/kernel/i8259.c, init_8259A): ICW1=0x11 to both chips,
 * ICW2 = vector base (0x30/0x38 in Linux), ICW3 = 0x04 to the master (slave on IR2) and 0x02 to
 * the slave (its id), ICW4 = 0x01 (8086 mode, normal EOI); then OCW1 masks, OCW2 0x60+n specific
 * EOI to the master for IR n, OCW3 0x0A/0x0B to read IRR/ISR (spurious-IRQ checks).
 */
import type { CfgmNode } from "../../cfgm/CfgmNode.ts";
import type { DevIns } from "../../pdm/DevIns.ts";
import { registerDevice } from "../../pdm/Pdm.ts";
import type { Device, InfoWriter } from "../../pdm/types.ts";
import type { SsmUnitReader, SsmUnitWriter } from "../../ssm/unit.ts";
import type { StamCounter } from "../../stam/Stam.ts";
import { badState, checkVersion, getU8Max } from "../ssmutil.ts";

/** Current saved-state layout. */
const SSM_VERSION = 1;
/** Oldest layout loadState accepts. */
const SSM_MIN_VERSION = 1;

// ICW1 (A0=0, bit 4 set)
//   bit 0 IC4   ICW4 follows
//   bit 1 SNGL  single chip (no ICW3)
//   bit 2 ADI   call address interval (MCS-80 only; ignored)
//   bit 3 LTIM  level-triggered mode for every input
const ICW1_IC4 = 0x01;
const ICW1_SNGL = 0x02;
const ICW1_LTIM = 0x08;
// ICW4
//   bit 0 uPM   8086 mode (we always deliver 8086-style vectors)
//   bit 1 AEOI  automatic end of interrupt
//   bit 4 SFNM  special fully nested mode
const ICW4_AEOI = 0x02;
const ICW4_SFNM = 0x10;
// OCW3 (A0=0, bits 4:3 = 01)
//   bit 0 RIS   read ISR (1) / IRR (0), effective when RR = 1
//   bit 1 RR    read register command
//   bit 2 P     poll command
//   bit 5 SMM   special mask mode value, effective when ESMM = 1
//   bit 6 ESMM  enable special mask mode change
const OCW3_RIS = 0x01;
const OCW3_RR = 0x02;
const OCW3_P = 0x04;
const OCW3_SMM = 0x20;
const OCW3_ESMM = 0x40;

/** The master's input the slave's INT output is wired to on the PC. */
const CASCADE_IR = 2;
/** ELCR bits that must stay edge: IRQ 0, 1, 2 on the master and 8, 13 on the slave (PIIX3). */
const ELCR_MASK = [0xf8, 0xde] as const;

/** Where a chip is in its initialization sequence. */
const InitStep = { READY: 0, ICW2: 1, ICW3: 2, ICW4: 3 } as const;
type InitStep = (typeof InitStep)[keyof typeof InitStep];

/** One 8259A. All masks are 8-bit, bit n = input IRn. */
class Chip {
  /** Interrupt request register. */
  irr = 0;
  /** In-service register. */
  isr = 0;
  /** Interrupt mask register (OCW1). */
  imr = 0;
  /** Current level of each input line (for edge detection and level mode). */
  lines = 0;
  /** Edge/level control (ELCR): bit set = level triggered. */
  elcr = 0;
  /** Vector base from ICW2 (low 3 bits zero). */
  base = 0;
  /** ICW1 and ICW3/ICW4 as written. */
  icw1 = 0;
  icw3 = 0;
  icw4 = 0;
  init: InitStep = InitStep.READY;
  /** The input with the lowest priority (7 after init; moved by the rotate commands). */
  lowest = 7;
  /** OCW3 RR/RIS: next read of A0=0 returns ISR when true, IRR otherwise. */
  readIsr = false;
  /** A poll command is pending: the next read of A0=0 is the poll byte. */
  poll = false;
  /** Special mask mode. */
  smm = false;
  /** Rotate in automatic EOI mode (OCW2 R=1 SL=0 EOI=0). */
  rotateAeoi = false;

  reset(): void {
    this.irr = 0;
    this.isr = 0;
    this.imr = 0;
    this.base = 0;
    this.icw1 = 0;
    this.icw3 = 0;
    this.icw4 = 0;
    this.init = InitStep.READY;
    this.lowest = 7;
    this.readIsr = false;
    this.poll = false;
    this.smm = false;
    this.rotateAeoi = false;
    // The input lines keep their levels; level-triggered inputs show in IRR at once.
    this.irr = this.lines & this.levelMask();
  }

  /** Inputs in level-triggered mode (LTIM for all, or per-input ELCR). */
  levelMask(): number {
    return this.icw1 & ICW1_LTIM ? 0xff : this.elcr;
  }

  /** Drives input n to a level: a rising edge (or a high level in level mode) requests. */
  setLine(n: number, level: boolean): void {
    const bit = 1 << n;
    const was = (this.lines & bit) !== 0;
    if (level) {
      this.lines |= bit;
      if (!was || this.levelMask() & bit) this.irr |= bit;
    } else {
      this.lines &= ~bit;
      // A request withdrawn before INTA is lost (edge mode: the datasheet requires the input to
      // stay high until the first INTA; level mode: IRR follows the line).
      this.irr &= ~bit;
    }
  }

  /** The highest-priority input set in mask, or -1. Priority starts just after `lowest`. */
  highest(mask: number): number {
    if ((mask & 0xff) === 0) return -1;
    for (let i = 1; i <= 8; i++) {
      const n = (this.lowest + i) & 7;
      if (mask & (1 << n)) return n;
    }
    return -1;
  }

  /**
   * The input this chip would present to the CPU now, or -1. A request is blocked by an
   * in-service input of higher or equal priority, except in special mask mode (only its own ISR
   * bit blocks it) and for the cascade input in special fully nested mode (only higher blocks).
   */
  pending(cascadeIr: number): number {
    const req = this.irr & ~this.imr & 0xff;
    const n = this.highest(req);
    if (n < 0) return -1;
    // Special mask mode: every unmasked level not itself in service may interrupt.
    if (this.smm) return this.highest(req & ~this.isr);
    const s = this.highest(this.isr);
    if (s < 0) return n;
    const prioN = (n - this.lowest - 1) & 7;
    const prioS = (s - this.lowest - 1) & 7;
    if (prioN < prioS) return n;
    if (prioN === prioS && n === cascadeIr && this.icw4 & ICW4_SFNM) return n;
    return -1;
  }

  /** Clears the highest-priority ISR bit (non-specific EOI); returns it or -1. */
  nonSpecificEoi(): number {
    const n = this.highest(this.smm ? this.isr & ~this.imr : this.isr);
    if (n >= 0) this.isr &= ~(1 << n);
    return n;
  }

  /** The INTA cycle on this chip for input n: IRR → ISR (unless AEOI), level inputs keep IRR. */
  ack(n: number): void {
    const bit = 1 << n;
    if (!(this.levelMask() & bit)) this.irr &= ~bit;
    if (this.icw4 & ICW4_AEOI) {
      if (this.rotateAeoi) this.lowest = n;
    } else this.isr |= bit;
  }
}

/** The PC's 8259A pair as one PDM device. */
export class Pic8259 implements Device {
  readonly #ins: DevIns;
  /** [master, slave]. */
  readonly chips = [new Chip(), new Chip()] as const;
  readonly #stat: {
    acks: StamCounter;
    spurious: StamCounter;
    spuriousSlave: StamCounter;
    eoi: StamCounter;
    perIrq: StamCounter[];
  };

  constructor(ins: DevIns, _cfg: CfgmNode) {
    this.#ins = ins;
    this.#stat = {
      acks: ins.counter("Acks", "Interrupts acknowledged by the CPU (INTA cycles)"),
      spurious: ins.counter("SpuriousIrq7", "INTA with nothing pending on the master (vector of IR7)"),
      spuriousSlave: ins.counter("SpuriousIrq15", "INTA through the cascade with nothing pending on the slave"),
      eoi: ins.counter("Eoi", "EOI commands (OCW2)"),
      perIrq: Array.from({ length: 16 }, (_, i) => ins.counter(`Irq${String(i)}`, `IRQ ${String(i)} delivered`)),
    };
    ins.ioPorts.map(0x20, 2, this.#chipHandler(0), { sizes: [1], name: "i8259-master" });
    ins.ioPorts.map(0xa0, 2, this.#chipHandler(1), { sizes: [1], name: "i8259-slave" });
    ins.ioPorts.map(
      0x4d0,
      2,
      {
        read: (off) => this.chips[(off & 1) as 0 | 1].elcr,
        write: (off, v) => {
          const i = (off & 1) as 0 | 1;
          const c = this.chips[i];
          c.elcr = v & ELCR_MASK[i];
          // Inputs now level-triggered show their current level in IRR.
          const lm = c.levelMask();
          c.irr = (c.irr & ~lm) | (c.lines & lm);
          this.#update();
        },
      },
      { sizes: [1], name: "i8259-elcr" },
    );
    const router = ins.irqRouter;
    router.registerController(
      { hasInterrupt: () => this.hasInterrupt(), acknowledge: () => this.acknowledge() },
      (irq, level) => this.#setIrq(irq, level),
    );
    this.reset();
    // Lines raised before we registered (none when the PIC is constructed first) are taken over.
    for (let i = 0; i < 16; i++) if (router.levels[i]) this.#setIrq(i, true);
  }

  #chipHandler(idx: 0 | 1): { read(off: number): number; write(off: number, v: number): void } {
    return {
      read: (off) => this.#read(idx, off),
      write: (off, v) => {
        this.#write(idx, off, v);
        this.#update();
      },
    };
  }

  reset(): void {
    for (const c of this.chips) {
      c.elcr = 0;
      c.reset();
    }
    this.#update();
  }

  /** ISA IRQ line input from the router (IRQ 0–15; 16+ belong to an I/O APIC). */
  #setIrq(irq: number, level: boolean): void {
    if (irq < 0 || irq > 15) return;
    // IRQ 2 on the ISA bus is wired to the slave's IR1 (IRQ 9) on the AT; the master's IR2 is the cascade.
    if (irq === 2) irq = 9;
    this.chips[(irq >> 3) as 0 | 1].setLine(irq & 7, level);
    this.#cascade();
  }

  /** Propagates the slave's INT output to the master's cascade input. */
  #cascade(): void {
    const slaveInt = this.chips[1].pending(-1) >= 0;
    const m = this.chips[0];
    if (slaveInt !== ((m.lines & (1 << CASCADE_IR)) !== 0)) m.setLine(CASCADE_IR, slaveInt);
  }

  /** Recomputes the cascade and tells the CPU side to look at INTR again. */
  #update(): void {
    this.#cascade();
    this.#ins.irqRouter.onChange?.();
  }

  /** True when the master asserts INTR. */
  hasInterrupt(): boolean {
    return this.chips[0].pending(CASCADE_IR) >= 0;
  }

  /**
   * The CPU's INTA cycle. Returns the vector: the highest-priority request of the master, or of
   * the slave through the cascade; the spurious vector (IR7 of the chip) when the request went away.
   */
  acknowledge(): number {
    const m = this.chips[0];
    const s = this.chips[1];
    this.#stat.acks.value++;
    const n = m.pending(CASCADE_IR);
    if (n < 0) {
      this.#stat.spurious.value++;
      return (m.base | 7) & 0xff;
    }
    let vector: number;
    if (n === CASCADE_IR && !(m.icw1 & ICW1_SNGL)) {
      const sn = s.pending(-1);
      m.ack(n);
      if (sn < 0) {
        // The master's ISR bit 2 stays set: the guest's spurious-IRQ15 handler EOIs the master.
        this.#stat.spuriousSlave.value++;
        vector = s.base | 7;
      } else {
        s.ack(sn);
        this.#stat.perIrq[8 + sn]!.value++;
        vector = s.base + sn;
      }
    } else {
      m.ack(n);
      this.#stat.perIrq[n]!.value++;
      vector = m.base + n;
    }
    this.#update();
    return vector & 0xff;
  }

  #read(idx: 0 | 1, off: number): number {
    const c = this.chips[idx];
    if (off & 1) return c.imr;
    if (c.poll) {
      c.poll = false;
      return this.#pollRead(idx);
    }
    return c.readIsr ? c.isr : c.irr;
  }

  /**
   * The poll byte: bit 7 = request pending, bits 2:0 = its level; the request is acknowledged.
   * XXX(approx): polling the master when the cascade input wins acknowledges IR2 on the master
   * only (the guest is expected to poll the slave next, as a polled-mode driver does).
   */
  #pollRead(idx: 0 | 1): number {
    const c = this.chips[idx];
    const n = c.pending(idx === 0 ? CASCADE_IR : -1);
    if (n < 0) return 0;
    c.ack(n);
    this.#update();
    return 0x80 | n;
  }

  #write(idx: 0 | 1, off: number, v: number): void {
    const c = this.chips[idx];
    if ((off & 1) === 0) {
      if (v & 0x10) {
        // ICW1: start of initialization. IMR and ISR clear, IR7 lowest, status read = IRR,
        // special mask mode off, and the edge-sense latches reset (a new edge is needed).
        c.icw1 = v;
        c.init = InitStep.ICW2;
        c.imr = 0;
        c.isr = 0;
        c.irr = c.lines & c.levelMask();
        c.lowest = 7;
        c.readIsr = false;
        c.poll = false;
        c.smm = false;
        c.rotateAeoi = false;
        if (!(v & ICW1_IC4)) c.icw4 = 0;
      } else if (v & 0x08) this.#ocw3(c, v);
      else this.#ocw2(c, v);
      return;
    }
    switch (c.init) {
      case InitStep.ICW2:
        c.base = v & 0xf8;
        c.init = c.icw1 & ICW1_SNGL ? (c.icw1 & ICW1_IC4 ? InitStep.ICW4 : InitStep.READY) : InitStep.ICW3;
        return;
      case InitStep.ICW3:
        c.icw3 = v;
        c.init = c.icw1 & ICW1_IC4 ? InitStep.ICW4 : InitStep.READY;
        return;
      case InitStep.ICW4:
        c.icw4 = v & 0x1f;
        c.init = InitStep.READY;
        return;
      default:
        c.imr = v; // OCW1
    }
  }

  /**
   * OCW2 (bits 7:5 = R SL EOI): 001 non-specific EOI, 011 specific EOI, 101 rotate on
   * non-specific EOI, 111 rotate on specific EOI, 110 set priority, 100/000 set/clear rotate in
   * AEOI mode, 010 no operation. Bits 2:0 = level for the specific forms.
   */
  #ocw2(c: Chip, v: number): void {
    const level = v & 7;
    switch (v >> 5) {
      case 0b001:
        this.#stat.eoi.value++;
        c.nonSpecificEoi();
        break;
      case 0b011:
        this.#stat.eoi.value++;
        c.isr &= ~(1 << level);
        break;
      case 0b101: {
        this.#stat.eoi.value++;
        const n = c.nonSpecificEoi();
        if (n >= 0) c.lowest = n;
        break;
      }
      case 0b111:
        this.#stat.eoi.value++;
        c.isr &= ~(1 << level);
        c.lowest = level;
        break;
      case 0b110:
        c.lowest = level;
        break;
      case 0b100:
        c.rotateAeoi = true;
        break;
      case 0b000:
        c.rotateAeoi = false;
        break;
      default:
        break;
    }
  }

  /** OCW3: special mask mode, poll command, read register select. */
  #ocw3(c: Chip, v: number): void {
    if (v & OCW3_ESMM) c.smm = (v & OCW3_SMM) !== 0;
    if (v & OCW3_P) c.poll = true;
    if (v & OCW3_RR) c.readIsr = (v & OCW3_RIS) !== 0;
  }

  /**
   * Unit layout (version 1), no config part: per chip (master, slave) u8 IRR, ISR, IMR, input
   * levels, ELCR, vector base, ICW1, ICW3, ICW4, init step, lowest-priority input; bool read-ISR,
   * poll pending, special mask mode, rotate-in-AEOI.
   */
  saveState(w: SsmUnitWriter): void {
    // No config part: the PC's PIC pair has no configuration.
    for (const c of this.chips) {
      w.putU8(c.irr);
      w.putU8(c.isr);
      w.putU8(c.imr);
      w.putU8(c.lines);
      w.putU8(c.elcr);
      w.putU8(c.base);
      w.putU8(c.icw1);
      w.putU8(c.icw3);
      w.putU8(c.icw4);
      w.putU8(c.init);
      w.putU8(c.lowest);
      w.putBool(c.readIsr);
      w.putBool(c.poll);
      w.putBool(c.smm);
      w.putBool(c.rotateAeoi);
    }
  }

  loadState(r: SsmUnitReader, version: number): void {
    checkVersion(r, version, SSM_MIN_VERSION, SSM_VERSION);
    for (let i = 0; i < 2; i++) {
      const c = this.chips[i as 0 | 1];
      c.irr = r.getU8();
      c.isr = r.getU8();
      c.imr = r.getU8();
      const savedLines = r.getU8();
      const elcr = r.getU8();
      if (elcr & ~ELCR_MASK[i as 0 | 1])
        throw badState(r, `ELCR${String(i + 1)} has edge-only bits set: 0x${elcr.toString(16)}`);
      c.elcr = elcr;
      const base = r.getU8();
      if (base & 7) throw badState(r, `vector base not 8-aligned: 0x${base.toString(16)}`);
      c.base = base;
      c.icw1 = r.getU8();
      c.icw3 = r.getU8();
      c.icw4 = r.getU8();
      c.init = getU8Max(r, "init step", InitStep.ICW4) as InitStep;
      c.lowest = getU8Max(r, "lowest priority", 7);
      c.readIsr = r.getBool();
      c.poll = r.getBool();
      c.smm = r.getBool();
      c.rotateAeoi = r.getBool();
      // The input levels are restored as saved: the other devices restore their IrqLine levels
      // after us, and only a real change of level reaches setLine (no phantom edge on load).
      c.lines = savedLines;
    }
    this.#update();
  }

  info(out: InfoWriter): void {
    const h = (v: number): string => v.toString(16).padStart(2, "0");
    ["master", "slave"].forEach((name, i) => {
      const c = this.chips[i as 0 | 1];
      out.line(
        `${name}: base=${h(c.base)} irr=${h(c.irr)} isr=${h(c.isr)} imr=${h(c.imr)} elcr=${h(c.elcr)} lines=${h(c.lines)} lowest=${String(c.lowest)} aeoi=${String((c.icw4 & ICW4_AEOI) !== 0)} smm=${String(c.smm)} init=${String(c.init)}`,
      );
    });
  }
}

registerDevice({
  name: "i8259",
  description: "Intel 8259A PIC pair (master 0x20, slave 0xA0, cascade on IR2) with PIIX3 ELCR",
  ssmVersion: SSM_VERSION,
  ssmMinVersion: SSM_MIN_VERSION,
  configKeys: [],
  maxInstances: 1,
  construct: (ins, cfg) => new Pic8259(ins, cfg),
});
