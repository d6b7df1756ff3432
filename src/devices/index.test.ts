import { test } from "node:test";
import assert from "node:assert/strict";
import { findDevice } from "../pdm/Pdm.ts";
import { SsmUnitReader } from "../ssm/unit.ts";
import { FakeMachine, fuzzPorts, saveUnit } from "./testing.ts";
import { pcDevices } from "./index.ts";

function pc(): FakeMachine {
  const m = new FakeMachine({ ramSize: 16 * 1024 * 1024, backends: ["serial0", "serial1"] });
  for (const d of pcDevices) m.add(d.name, d.config, d.instance);
  return m;
}

test("the default PC: every listed device is registered, the interrupt controller comes first", () => {
  assert.equal(pcDevices[0]?.name, "i8259");
  for (const d of pcDevices) assert.ok(findDevice(d.name), d.name);
});

test("the default PC constructs without port conflicts and registers the PIC with the router", () => {
  const m = pc();
  assert.equal(m.pdm.instances().length, pcDevices.length);
  assert.ok(m.irqs.controller);
  const names = m.io.ranges().map((r) => r.name);
  for (const n of ["i8259-master", "i8254", "mc146818", "i8042-data", "pci-host", "port92", "postcode", "ferr"])
    assert.ok(names.includes(n), n);
});

test("the default PC: reset, fuzz over every chipset port, then save and restore every unit into a fresh PC", () => {
  const m = pc();
  m.pdm.reset();
  const ports = m.io.ranges().flatMap((r) => Array.from({ length: r.count }, (_, i) => r.base + i)); // reset requests (0x64, 0x92, 0xCF9) are only recorded by the fake machine
  fuzzPorts(m, ports, 5000, 42);
  const units = m.pdm.instances().map((d) => saveUnit(d));
  const b = pc();
  b.clock.set(m.clock.now());
  b.pdm.instances().forEach((d, i) => b.pdm.load(d, new SsmUnitReader(units[i]!, d.reg.name), d.reg.ssmVersion));
  assert.deepEqual(
    b.pdm.instances().map((d) => saveUnit(d)),
    units,
  );
  assert.equal(b.irqs.hasInterrupt(), m.irqs.hasInterrupt());
});

test("info() of every default device writes lines and does not throw", () => {
  const m = pc();
  for (const d of m.pdm.instances()) {
    const lines: string[] = [];
    d.dev.info?.({ line: (t) => lines.push(t) });
    if (d.reg.name !== "isa-debug-exit") assert.ok(lines.length > 0, d.reg.name);
  }
});
