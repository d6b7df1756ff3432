/**
 * isa-debug-exit: a test device that powers the machine off with an exit status chosen by the
 * guest. Compatible with QEMU's device of that name as used with iobase=0xf4: a write of value v
 * (any width) requests power off with exit status (v << 1) | 1, so a status of 0 or 1 cannot be
 * faked by the guest and tells "exited through the device" from a normal power off.
 *
 * Config: IOBase (default 0xF4), IOSize (default 4). Not in the default PC; add it to
 * /Devices/isa-debug-exit/0 for test guests.
 *
 * Reads return all ones (the device has no readable register) and count in STAM.
 */
import type { CfgmNode } from "../../cfgm/CfgmNode.ts";
import type { DevIns } from "../../pdm/DevIns.ts";
import { registerDevice } from "../../pdm/Pdm.ts";
import type { Device } from "../../pdm/types.ts";
import type { SsmUnitReader, SsmUnitWriter } from "../../ssm/unit.ts";
import { checkConfig, checkVersion } from "../ssmutil.ts";

/** Current saved-state layout (config part only: the device has no state). */
const SSM_VERSION = 1;
/** Oldest layout loadState accepts. */
const SSM_MIN_VERSION = 1;

/** The exit device. */
export class DebugExit implements Device {
  readonly #base: number;
  readonly #size: number;

  constructor(ins: DevIns, cfg: CfgmNode) {
    this.#base = cfg.queryU16Def("IOBase", 0xf4);
    this.#size = cfg.queryIntegerDef("IOSize", 4, 1, 4);
    const writes = ins.counter("Exits", "Power-off requests");
    const reads = ins.counter("BadReads", "Reads (the device is write-only)");
    ins.ioPorts.map(
      this.#base,
      this.#size,
      {
        read: () => {
          reads.value++;
          return 0xffffffff;
        },
        write: (_o, v) => {
          writes.value++;
          ins.machine.requestPowerOff("debugexit", ((v << 1) | 1) >>> 0);
        },
      },
      { name: "isa-debug-exit" },
    );
  }

  reset(): void {
    /* no state */
  }

  saveState(w: SsmUnitWriter): void {
    w.putU16(this.#base);
    w.putU8(this.#size);
  }

  loadState(r: SsmUnitReader, version: number): void {
    checkVersion(r, version, SSM_MIN_VERSION, SSM_VERSION);
    checkConfig(r, "IOBase", r.getU16(), this.#base);
    checkConfig(r, "IOSize", r.getU8(), this.#size);
  }
}

registerDevice({
  name: "isa-debug-exit",
  description: "QEMU-compatible debug exit port (write v: power off with status (v << 1) | 1)",
  ssmVersion: SSM_VERSION,
  ssmMinVersion: SSM_MIN_VERSION,
  configKeys: ["IOBase", "IOSize"],
  maxInstances: 1,
  construct: (ins, cfg) => new DebugExit(ins, cfg),
});
