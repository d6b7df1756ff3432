import { test } from "node:test";
import assert from "node:assert/strict";
import { cfgmFromObject } from "../cfgm/CfgmNode.ts";
import { PhysMem } from "../mem/PhysMem.ts";
import { SsmUnitReader, SsmUnitWriter } from "../ssm/unit.ts";
import { Stam } from "../stam/Stam.ts";
import { TimerScheduler } from "../tm/Timer.ts";
import { ManualClock } from "../tm/VirtualClock.ts";
import { Status, VBoxError } from "../vm/err.ts";
import { IoPortSpace } from "./IoPortSpace.ts";
import { IrqRouter } from "./IrqLine.ts";
import { Pdm, registerDevice } from "./Pdm.ts";
import type { Device, MachineServices } from "./types.ts";

/** A latch device: one byte register at Config/Port; raises its IRQ while the register is odd. */
class Latch implements Device {
  value = 0;
  readonly ins;
  readonly irq;
  constructor(ins: import("./DevIns.ts").DevIns, port: number) {
    this.ins = ins;
    this.irq = ins.irq(ins.cfg.queryU8Def("Irq", 5));
    ins.ioPorts.map(port, 1, {
      read: () => this.value,
      write: (_o, v) => {
        this.value = v;
        this.irq.set((v & 1) === 1);
      },
    });
  }
  reset(): void {
    this.value = 0;
    this.irq.lower();
  }
  saveState(w: SsmUnitWriter): void {
    w.putU8(this.value);
  }
  loadState(r: SsmUnitReader): void {
    this.value = r.getU8();
    this.irq.set((this.value & 1) === 1);
  }
}

registerDevice({
  name: "testlatch",
  description: "Test latch",
  ssmVersion: 2,
  ssmMinVersion: 1,
  configKeys: ["Port", "Irq"],
  maxInstances: 2,
  construct: (ins, cfg) => new Latch(ins, cfg.queryU16Def("Port", 0x300)),
});

function machine(): { pdm: Pdm; io: IoPortSpace; irqs: IrqRouter } {
  const services: MachineServices = {
    requestReset: () => undefined,
    requestPowerOff: () => undefined,
    setA20: () => undefined,
    getA20: () => true,
    charBackend: () => null,
  };
  const io = new IoPortSpace();
  const irqs = new IrqRouter();
  const pdm = new Pdm({
    mem: new PhysMem(4096),
    io,
    irqs,
    timers: new TimerScheduler(new ManualClock()),
    stam: new Stam(),
    machine: services,
  });
  return { pdm, io, irqs };
}

test("devices are constructed from /Devices with their Config and wired to ports and IRQs", () => {
  const { pdm, io, irqs } = machine();
  const cfg = cfgmFromObject({ Devices: { testlatch: { "0": { Config: { Port: 0x310, Irq: 7 } }, "1": {} } } });
  pdm.constructAll(cfg.getChild("Devices")!);
  assert.equal(pdm.instances().length, 2);
  io.write(0x310, 3, 1);
  assert.equal(io.read(0x310, 1), 3);
  assert.equal(irqs.levels[7], 1);
  assert.equal(io.read(0x300, 1), 0, "instance 1 on the default port");
  pdm.reset();
  assert.equal(irqs.levels[7], 0);
});

test("unknown config keys, unknown devices and too many instances are named errors", () => {
  const { pdm } = machine();
  const bad = cfgmFromObject({ Devices: { testlatch: { "0": { Config: { Prot: 1 } } } } });
  assert.throws(
    () => pdm.constructAll(bad.getChild("Devices")!),
    /Unknown configuration value: \/Devices\/testlatch\/0\/Config\/Prot/,
  );
  const unk = cfgmFromObject({ Devices: { nosuch: { "0": {} } } });
  assert.throws(
    () => machine().pdm.constructAll(unk.getChild("Devices")!),
    (e: unknown) => e instanceof VBoxError && e.rc === Status.VERR_PDM_DEVICE_NOT_FOUND && /nosuch/.test(e.message),
  );
  const many = cfgmFromObject({
    Devices: { testlatch: { "0": {}, "1": { Config: { Port: 0x301 } }, "2": { Config: { Port: 0x302 } } } },
  });
  assert.throws(() => machine().pdm.constructAll(many.getChild("Devices")!), /Too many instances/);
});

test("saved state units: versions outside the range and short units are refused", () => {
  const { pdm, io, irqs } = machine();
  pdm.constructAll(cfgmFromObject({ Devices: { testlatch: { "0": {} } } }).getChild("Devices")!);
  const d = pdm.find("testlatch")!;
  io.write(0x300, 9, 1);
  const w = new SsmUnitWriter();
  pdm.save(d, w);
  const data = w.finish();
  pdm.reset();
  pdm.load(d, new SsmUnitReader(data, "testlatch"), 2);
  assert.equal(io.read(0x300, 1), 9);
  assert.equal(irqs.levels[5], 1, "IRQ level re-derived on load");
  assert.throws(
    () => pdm.load(d, new SsmUnitReader(data, "testlatch"), 3),
    (e: unknown) => e instanceof VBoxError && e.rc === Status.VERR_SSM_UNSUPPORTED_DATA_UNIT_VERSION,
  );
  const longer = Uint8Array.of(1, 2);
  assert.throws(
    () => pdm.load(d, new SsmUnitReader(longer, "testlatch"), 1),
    (e: unknown) => e instanceof VBoxError && e.rc === Status.VERR_SSM_LOADED_TOO_LITTLE,
  );
});
