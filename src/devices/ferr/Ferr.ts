/**
 * The AT's x87 error latch: FERR# from the coprocessor drives IRQ 13; a write to port 0xF0
 * clears the latch (lowers IRQ 13). Port 0xF1 (coprocessor reset on the AT) is accepted and
 * does nothing.
 *
 * References: IBM PC/AT Technical Reference, math coprocessor ports F0h/F1h; Intel 80387
 * datasheet (FERR# and the PC/AT "DOS-compatible" error reporting); Linux arch/x86/kernel/irqinit.c
 * (the FPU irq handler writes 0 to port 0xF0).
 *
 * The x87 raises the latch through `setFerr(true)` on this device (find it with
 * pdm.find("ferr")); nothing else should drive IRQ 13.
 */
import type { CfgmNode } from "../../cfgm/CfgmNode.ts";
import type { DevIns } from "../../pdm/DevIns.ts";
import type { IrqLine } from "../../pdm/IrqLine.ts";
import { registerDevice } from "../../pdm/Pdm.ts";
import type { Device, InfoWriter } from "../../pdm/types.ts";
import type { SsmUnitReader, SsmUnitWriter } from "../../ssm/unit.ts";
import type { StamCounter } from "../../stam/Stam.ts";
import { checkVersion } from "../ssmutil.ts";

/** Current saved-state layout. */
const SSM_VERSION = 1;
/** Oldest layout loadState accepts. */
const SSM_MIN_VERSION = 1;

/** The FERR latch / IRQ 13 and port 0xF0. */
export class Ferr implements Device {
  readonly #irq: IrqLine;
  /** The latch: IRQ 13 asserted. */
  latched = false;
  readonly #stat: { raised: StamCounter; cleared: StamCounter; bad: StamCounter };

  constructor(ins: DevIns, _cfg: CfgmNode) {
    this.#irq = ins.irq(13);
    this.#stat = {
      raised: ins.counter("Raised", "FERR# assertions (IRQ 13 raised)"),
      cleared: ins.counter("Cleared", "Writes to port 0xF0"),
      bad: ins.counter("BadReads", "Reads of the write-only ports 0xF0/0xF1"),
    };
    ins.ioPorts.map(
      0xf0,
      2,
      {
        read: () => {
          this.#stat.bad.value++;
          return 0xff;
        },
        write: (off) => {
          if (off === 0) {
            this.#stat.cleared.value++;
            this.setFerr(false);
          }
        },
      },
      { sizes: [1], name: "ferr" },
    );
  }

  /** FERR# from the x87: true latches IRQ 13, false clears it. */
  setFerr(level: boolean): void {
    if (level && !this.latched) this.#stat.raised.value++;
    this.latched = level;
    this.#irq.set(level);
  }

  reset(): void {
    this.setFerr(false);
  }

  saveState(w: SsmUnitWriter): void {
    w.putBool(this.latched);
  }

  loadState(r: SsmUnitReader, version: number): void {
    checkVersion(r, version, SSM_MIN_VERSION, SSM_VERSION);
    this.latched = r.getBool();
    this.#irq.set(this.latched);
  }

  info(out: InfoWriter): void {
    out.line(`FERR latch ${this.latched ? "set (IRQ 13 high)" : "clear"}`);
  }
}

registerDevice({
  name: "ferr",
  description: "x87 FERR latch on IRQ 13, cleared by port 0xF0",
  ssmVersion: SSM_VERSION,
  ssmMinVersion: SSM_MIN_VERSION,
  configKeys: [],
  maxInstances: 1,
  construct: (ins, cfg) => new Ferr(ins, cfg),
});
