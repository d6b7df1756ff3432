/**
 * POST diagnostic ports 0x80 and 0x190: keep the last byte written (BIOS progress codes; Linux
 * writes 0x80 as an I/O delay in outb_p; some BIOSes and test ROMs use 0x190 instead, as Bochs
 * and QEMU's POST card do). Reads return the last value, as many chipsets do.
 *
 * Config: Report (0/1, default 0): also send each code to the char backend named "post" when
 * the machine has one (a log or a display on the host side); otherwise codes only land in STAM.
 *
 * References: OSDev wiki "I/O Ports" (port 80h POST codes); Linux arch/x86/include/asm/io.h
 * (slow_down_io writes 0x80).
 */
import type { CfgmNode } from "../../cfgm/CfgmNode.ts";
import type { DevIns } from "../../pdm/DevIns.ts";
import { registerDevice } from "../../pdm/Pdm.ts";
import type { CharBackend, Device, InfoWriter } from "../../pdm/types.ts";
import type { SsmUnitReader, SsmUnitWriter } from "../../ssm/unit.ts";
import type { StamCounter } from "../../stam/Stam.ts";
import { checkVersion } from "../ssmutil.ts";

/** Current saved-state layout. */
const SSM_VERSION = 1;
/** Oldest layout loadState accepts. */
const SSM_MIN_VERSION = 1;

/** The ports a POST code may be written to. */
const POST_PORTS = [0x80, 0x190] as const;

/** Ports 0x80 and 0x190 as a PDM device. */
export class PostCode implements Device {
  /** The last code written. */
  last = 0;
  readonly #report: CharBackend | null;
  readonly #writes: StamCounter;

  constructor(ins: DevIns, cfg: CfgmNode) {
    this.#report = cfg.queryBoolDef("Report", false) ? ins.machine.charBackend("post") : null;
    this.#writes = ins.counter("Writes", "Writes to ports 0x80 and 0x190 (POST codes and I/O delays)");
    ins.ctx.stam.callback(`${ins.stamPrefix}/LastCode`, "The last POST code written", "count", () => this.last);
    const port = {
      read: (): number => this.last,
      write: (_o: number, v: number): void => {
        this.last = v;
        this.#writes.value++;
        this.#report?.write(Uint8Array.of(v));
      },
    };
    for (const base of POST_PORTS) ins.ioPorts.map(base, 1, port, { sizes: [1], name: "postcode" });
  }

  /** The last code survives a reset (it is what a POST card would still show). */
  reset(): void {
    /* nothing to reset */
  }

  saveState(w: SsmUnitWriter): void {
    // No config part: Report only selects a host-side backend, which is never saved.
    w.putU8(this.last);
  }

  loadState(r: SsmUnitReader, version: number): void {
    checkVersion(r, version, SSM_MIN_VERSION, SSM_VERSION);
    this.last = r.getU8();
  }

  info(out: InfoWriter): void {
    out.line(`last POST code 0x${this.last.toString(16).padStart(2, "0")}`);
  }
}

registerDevice({
  name: "postcode",
  description: "POST code ports 0x80 and 0x190",
  ssmVersion: SSM_VERSION,
  ssmMinVersion: SSM_MIN_VERSION,
  configKeys: ["Report"],
  maxInstances: 1,
  construct: (ins, cfg) => new PostCode(ins, cfg),
});
