import { test } from "node:test";
import assert from "node:assert/strict";
import { FakeMachine, checkConformance, checkFixture, fuzzPorts } from "../testing.ts";

test("isa-debug-exit: writing v powers off with status (v << 1) | 1 at any width", () => {
  const m = new FakeMachine();
  m.add("isa-debug-exit");
  m.outb(0xf4, 0x00);
  m.outb(0xf4, 0x10);
  m.outl(0xf4, 0x31);
  assert.deepEqual(m.powerOffs, [
    { source: "debugexit", status: 1 },
    { source: "debugexit", status: 0x21 },
    { source: "debugexit", status: 0x63 },
  ]);
  assert.equal(m.inb(0xf4), 0xff);
  assert.equal(m.stat("/Devices/isa-debug-exit/BadReads"), 1);
});

test("isa-debug-exit: IOBase/IOSize from Config (QEMU's default 0x501/2)", () => {
  const m = new FakeMachine();
  m.add("isa-debug-exit", { IOBase: 0x501, IOSize: 2 });
  m.outb(0xf4, 1);
  assert.deepEqual(m.powerOffs, []);
  m.outw(0x501, 3);
  assert.deepEqual(m.powerOffs, [{ source: "debugexit", status: 7 }]);
  fuzzPorts(m, [0x501, 0x502], 200, 2);
});

test("isa-debug-exit is not in the default PC", async () => {
  const { pcDevices } = await import("../index.ts");
  assert.equal(
    pcDevices.some((d) => d.name === "isa-debug-exit"),
    false,
  );
});

test("isa-debug-exit saved-state conformance (a stateless device: config part only)", () => {
  checkConformance({ name: "isa-debug-exit", mismatchConfig: { IOBase: 0x501 } });
});

test("saved-state fixture of version 1 still loads (and saves back unchanged while current)", () => {
  checkFixture(
    { name: "isa-debug-exit" },
    {
      version: 1,
      hex: "f40004",
    },
  );
});
