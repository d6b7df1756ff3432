import { test } from "node:test";
import assert from "node:assert/strict";
import { FakeMachine, checkConformance, checkFixture, fuzzPorts } from "../testing.ts";

test("port 0x92: bit 1 drives A20 and reads it back; bit 0 rising edge requests a reset", () => {
  const m = new FakeMachine();
  m.add("port92");
  m.a20 = false;
  assert.equal(m.inb(0x92) & 2, 0);
  m.outb(0x92, 0x02);
  assert.equal(m.a20, true);
  assert.equal(m.inb(0x92), 0x02);
  m.a20 = false; // changed elsewhere (keyboard controller): the port reads the live state
  assert.equal(m.inb(0x92) & 2, 0);
  assert.deepEqual(m.resets, []);
  m.outb(0x92, 0x03);
  assert.deepEqual(m.resets, ["port92"]);
  m.outb(0x92, 0x03);
  assert.equal(m.resets.length, 1, "only a 0→1 transition resets");
  m.outb(0x92, 0x02);
  m.outb(0x92, 0x03);
  assert.equal(m.resets.length, 2);
  assert.equal(m.stat("/Devices/port92/FastResets"), 2);
});

test("port 0x92 fuzz", () => {
  const m = new FakeMachine();
  m.add("port92");
  fuzzPorts(m, [0x92], 2000, 3);
});

test("port 0x92 saved-state conformance", () => {
  checkConformance({ name: "port92", setup: (m) => m.outb(0x92, 0x0a), mutate: (m) => m.outb(0x92, 0x31) });
});

test("saved-state fixture of version 1 still loads (and saves back unchanged while current)", () => {
  checkFixture(
    { name: "port92" },
    {
      version: 1,
      hex: "08",
    },
  );
});
