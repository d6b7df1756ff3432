import { test } from "node:test";
import assert from "node:assert/strict";
import { FakeMachine, checkConformance, checkFixture, fuzzPorts } from "../testing.ts";
import type { I8042 } from "./I8042.ts";

function machine(): FakeMachine {
  const m = new FakeMachine();
  m.add("i8042");
  return m;
}

/** Reads everything in the output buffer as [byte, aux] pairs. */
function drain(m: FakeMachine): [number, boolean][] {
  const out: [number, boolean][] = [];
  for (let i = 0; i < 100 && m.inb(0x64) & 1; i++) {
    const aux = (m.inb(0x64) & 0x20) !== 0;
    out.push([m.inb(0x60), aux]);
  }
  return out;
}
const bytes = (m: FakeMachine): number[] => drain(m).map(([b]) => b);
const cmd = (m: FakeMachine, c: number, data?: number): void => {
  m.outb(0x64, c);
  if (data !== undefined) m.outb(0x60, data);
};

test("Linux i8042 controller probe: CTR read/write, self test 0x55, keyboard interface test", () => {
  const m = machine();
  assert.deepEqual(bytes(m), [], "flush finds nothing");
  assert.equal(m.inb(0x64) & 0x14, 0x14, "SYS flag and not inhibited");
  cmd(m, 0x20);
  assert.deepEqual(bytes(m), [0x45]);
  cmd(m, 0xaa);
  assert.deepEqual(bytes(m), [0x55]);
  cmd(m, 0x60, 0x47);
  cmd(m, 0x20);
  assert.deepEqual(bytes(m), [0x47]);
  cmd(m, 0xab);
  assert.deepEqual(bytes(m), [0x00]);
  assert.equal(m.inb(0x64) & 0x08, 0x08, "A2: last write was a command");
});

test("aux port checks: 0xD3 loop with IRQ 12, 0xA7/0xA8 toggle CTR bit 5, 0xA9 OK, 0xD4 answered resend", () => {
  const m = machine();
  cmd(m, 0xd3, 0x5a);
  assert.equal(m.inb(0x64) & 0x21, 0x21, "OBF + AUXB");
  assert.deepEqual(drain(m), [[0x5a, true]]);
  cmd(m, 0xa7);
  cmd(m, 0x20);
  assert.equal(m.inb(0x60) & 0x20, 0x20);
  cmd(m, 0xa8);
  cmd(m, 0x20);
  assert.equal(m.inb(0x60) & 0x20, 0x00);
  cmd(m, 0xa9);
  assert.deepEqual(bytes(m), [0x00]);
  cmd(m, 0x60, 0x47); // IRQ 12 on
  cmd(m, 0xd3, 0xa5);
  assert.equal(m.irqs.levels[12], 1);
  assert.equal(m.irqs.levels[1], 0);
  m.inb(0x60);
  assert.equal(m.irqs.levels[12], 0);
  cmd(m, 0xd4, 0xff);
  assert.deepEqual(drain(m), [[0xfe, true]]);
});

test("keyboard commands: reset, identify, LEDs, scan set, enable, echo, unknown", () => {
  const m = machine();
  m.outb(0x60, 0xff);
  assert.deepEqual(bytes(m), [0xfa, 0xaa]);
  m.outb(0x60, 0xf2);
  assert.deepEqual(bytes(m), [0xfa, 0xab, 0x41], "translated MF2 id");
  m.outb(0x60, 0xed);
  m.outb(0x60, 0x07);
  assert.deepEqual(bytes(m), [0xfa, 0xfa]);
  m.outb(0x60, 0xf0);
  m.outb(0x60, 0x00);
  assert.deepEqual(bytes(m), [0xfa, 0xfa, 0x02]);
  m.outb(0x60, 0xf5);
  m.outb(0x60, 0xf4);
  m.outb(0x60, 0xee);
  m.outb(0x60, 0x01);
  assert.deepEqual(bytes(m), [0xfa, 0xfa, 0xee, 0xfe]);
  cmd(m, 0x60, 0x05); // translation off
  m.outb(0x60, 0xf2);
  assert.deepEqual(bytes(m), [0xfa, 0xab, 0x83]);
});

test("each output byte is a fresh IRQ 1 edge; disabled in the command byte, no IRQ", () => {
  const m = machine();
  let edges = 0;
  let last = 0;
  m.irqs.registerController({ hasInterrupt: () => false, acknowledge: () => 0 }, (irq, level) => {
    if (irq === 1 && level && !last) edges++;
    if (irq === 1) last = level ? 1 : 0;
  });
  m.outb(0x60, 0xff);
  assert.equal(edges, 1);
  m.inb(0x60);
  assert.equal(edges, 2, "the second byte makes a new edge");
  m.inb(0x60);
  assert.equal(last, 0);
  cmd(m, 0x60, 0x44);
  m.outb(0x60, 0xee);
  assert.equal(last, 0);
  assert.equal(m.inb(0x64) & 1, 1);
});

test("output port: A20 through 0xD1, read back with 0xD0; 0xFE pulses reset", () => {
  const m = machine();
  cmd(m, 0xd1, 0xdd);
  assert.equal(m.a20, false);
  cmd(m, 0xd0);
  assert.equal(m.inb(0x60) & 0x03, 0x01);
  cmd(m, 0xd1, 0xdf);
  assert.equal(m.a20, true);
  assert.deepEqual(m.resets, []);
  cmd(m, 0xfe);
  assert.deepEqual(m.resets, ["i8042"]);
  cmd(m, 0xff);
  assert.equal(m.resets.length, 1, "0xFF pulses nothing");
  cmd(m, 0xd2, 0x1c);
  assert.deepEqual(drain(m), [[0x1c, false]]);
});

test("host scan codes (set 2) are translated to set 1 with the break prefix", () => {
  const m = machine();
  const dev = m.pdm.find("i8042")!.dev as I8042;
  dev.sendScancodes([0x1c, 0xf0, 0x1c, 0x5a]);
  assert.deepEqual(bytes(m), [0x1e, 0x9e, 0x1c]);
  m.outb(0x60, 0xf5);
  bytes(m);
  dev.sendScancodes([0x1c]);
  assert.deepEqual(bytes(m), [], "not scanning");
});

test("random register writes never throw", () => {
  const m = machine();
  for (let seed = 1; seed <= 5; seed++) fuzzPorts(m, [0x60, 0x64], 3000, seed);
});

test("saved-state conformance", () => {
  checkConformance({
    name: "i8042",
    setup: (m) => {
      m.outb(0x60, 0xff);
      m.outb(0x64, 0xd1);
    },
    mutate: (m) => {
      m.inb(0x60);
      m.outb(0x64, 0xa7);
    },
  });
});

test("saved-state fixture of version 1 still loads (and saves back unchanged while current)", () => {
  checkFixture(
    { name: "i8042" },
    {
      version: 1,
      hex: "02fa00aa004500000000000000000000000000000000000000000000000000000000000000030102000001002b02aa00",
    },
  );
});
