/**
 * System control port A at 0x92 (PS/2 "fast A20 and fast reset" port, as on the PIIX3).
 *
 * References: IBM PS/2 Hardware Interface Technical Reference, "System Control Port A";
 * Intel 82371SB (PIIX3) datasheet, port 92h; OSDev wiki "A20 Line" (fast A20 gate).
 *
 *   bit 0 fast reset: writing 1 (from 0) pulses the CPU reset line
 *   bit 1 A20 gate: 1 = A20 enabled (reads the machine's current A20 state)
 *   bits 7:2 held as written (bit 3 is the power-on password lock on some boards; no effect)
 *
 * The guest's view: Linux's a20 code (arch/x86/boot/a20.c) tries 0x92 bit 1 ("fast A20") and
 * reads back; reboot=bios/acpi fallbacks may write bit 0.
 */
import type { CfgmNode } from "../../cfgm/CfgmNode.ts";
import type { DevIns } from "../../pdm/DevIns.ts";
import { registerDevice } from "../../pdm/Pdm.ts";
import type { Device, InfoWriter } from "../../pdm/types.ts";
import type { SsmUnitReader, SsmUnitWriter } from "../../ssm/unit.ts";
import type { StamCounter } from "../../stam/Stam.ts";
import { checkVersion } from "../ssmutil.ts";

/** Current saved-state layout. */
const SSM_VERSION = 1;
/** Oldest layout loadState accepts. */
const SSM_MIN_VERSION = 1;

const FAST_RESET = 0x01;
const FAST_A20 = 0x02;

/** Port 0x92 as a PDM device. */
export class Port92 implements Device {
  readonly #ins: DevIns;
  /** The register as written, bits 7:2 and bit 0 (bit 1 reads the live A20 state). */
  value = 0;
  readonly #stat: { resets: StamCounter; a20: StamCounter };

  constructor(ins: DevIns, _cfg: CfgmNode) {
    this.#ins = ins;
    this.#stat = {
      resets: ins.counter("FastResets", "Resets requested through bit 0"),
      a20: ins.counter("A20Changes", "A20 gate changes through bit 1"),
    };
    ins.ioPorts.map(
      0x92,
      1,
      { read: () => this.#read(), write: (_o, v) => this.#write(v) },
      { sizes: [1], name: "port92" },
    );
    this.reset();
  }

  reset(): void {
    this.value = 0;
  }

  #read(): number {
    return (this.value & ~FAST_A20) | (this.#ins.machine.getA20() ? FAST_A20 : 0);
  }

  #write(v: number): void {
    const a20 = (v & FAST_A20) !== 0;
    if (a20 !== this.#ins.machine.getA20()) {
      this.#stat.a20.value++;
      this.#ins.machine.setA20(a20);
    }
    const rising = (v & FAST_RESET) !== 0 && (this.value & FAST_RESET) === 0;
    this.value = v & ~FAST_A20;
    if (rising) {
      this.#stat.resets.value++;
      this.#ins.machine.requestReset("port92");
    }
  }

  saveState(w: SsmUnitWriter): void {
    // No config part. A20 itself is machine state (saved with memory), not ours.
    w.putU8(this.value);
  }

  loadState(r: SsmUnitReader, version: number): void {
    checkVersion(r, version, SSM_MIN_VERSION, SSM_VERSION);
    this.value = r.getU8() & ~FAST_A20;
  }

  info(out: InfoWriter): void {
    out.line(`port92=0x${this.#read().toString(16)}`);
  }
}

registerDevice({
  name: "port92",
  description: "System control port A (0x92): fast A20 and fast reset",
  ssmVersion: SSM_VERSION,
  ssmMinVersion: SSM_MIN_VERSION,
  configKeys: [],
  maxInstances: 1,
  construct: (ins, cfg) => new Port92(ins, cfg),
});
