import { test } from "node:test";
import assert from "node:assert/strict";
import { FakeMachine, checkConformance, checkFixture, fuzzPorts, loadUnit, saveUnit } from "../testing.ts";
import { PIT_HZ, ticksBetween, ticksToNs } from "./Pit8254.ts";

/** PIC (Linux layout, vectors 0x30) + PIT. */
function machine(): FakeMachine {
  const m = new FakeMachine();
  m.add("i8259");
  m.add("i8254");
  for (const [p, v] of [
    [0x20, 0x11],
    [0x21, 0x30],
    [0x21, 4],
    [0x21, 1],
    [0xa0, 0x11],
    [0xa1, 0x38],
    [0xa1, 2],
    [0xa1, 1],
    [0x21, 0],
    [0xa1, 0],
  ] as const)
    m.outb(p, v);
  return m;
}

/** Takes every pending IRQ 0 (INTA + EOI) and returns how many there were. */
function drainIrq0(m: FakeMachine): number {
  let n = 0;
  while (m.irqs.hasInterrupt()) {
    assert.equal(m.irqs.controller!.acknowledge(), 0x30);
    m.outb(0x20, 0x60);
    n++;
  }
  return n;
}

const readCount = (m: FakeMachine, port: number): number => m.inb(port) | (m.inb(port) << 8);

test("tick conversions are exact and inverse over long spans", () => {
  assert.equal(ticksBetween(0, 1e9), PIT_HZ);
  assert.equal(ticksBetween(5, 5 + 3600e9), 3600 * PIT_HZ);
  for (const k of [1, 2, 1193, 65536, PIT_HZ - 1, PIT_HZ * 7200 + 12345]) {
    assert.equal(ticksBetween(0, ticksToNs(k)), k);
    assert.equal(ticksBetween(0, ticksToNs(k) - 1), k - 1);
  }
});

test("mode 2 on channel 0 raises IRQ 0 once per period, on the virtual clock only", () => {
  const m = machine();
  m.outb(0x43, 0x34);
  m.outb(0x40, 1193 & 0xff);
  m.outb(0x40, 1193 >> 8);
  let irqs = 0;
  for (let i = 0; i < 100; i++) {
    m.step(ticksToNs(1193) / 4);
    irqs += drainIrq0(m);
  }
  // 100 quarter periods = 25 periods.
  assert.equal(irqs, 25);
  assert.equal(m.stat("/Devices/i8254/Irq0"), 25);
  // Nothing happens without virtual time moving.
  assert.equal(drainIrq0(m), 0);
  m.timers.runDue();
  assert.equal(drainIrq0(m), 0);
});

test("counter latch freezes the value read LSB then MSB while counting continues", () => {
  const m = machine();
  m.outb(0x43, 0x34);
  m.outb(0x40, 1000 & 0xff);
  m.outb(0x40, 1000 >> 8);
  m.step(ticksToNs(100));
  m.outb(0x43, 0x00); // latch channel 0
  m.step(ticksToNs(50));
  assert.equal(readCount(m, 0x40), 900);
  assert.equal(readCount(m, 0x40), 850, "unlatched reads are live");
});

test("channel 2 mode 0 with the gate on port 0x61: OUT2 rises at terminal count (TSC calibration path)", () => {
  const m = machine();
  m.outb(0x61, (m.inb(0x61) & ~0x02) | 0x01);
  m.outb(0x43, 0xb0);
  m.outb(0x42, 0xff);
  m.outb(0x42, 0xff);
  assert.equal(m.inb(0x61) & 0x20, 0, "OUT2 low while counting");
  let lastMsb = 0x100;
  for (let i = 0; i < 20; i++) {
    m.step(ticksToNs(256 * 3));
    m.inb(0x42);
    const msb = m.inb(0x42);
    assert.ok(msb < lastMsb, "the MSB keeps decreasing");
    lastMsb = msb;
  }
  m.step(ticksToNs(0x10000));
  assert.equal(m.inb(0x61) & 0x20, 0x20, "OUT2 high after terminal count");
});

test("gate low suspends mode 0 counting on channel 2", () => {
  const m = machine();
  m.outb(0x61, 0x01);
  m.outb(0x43, 0xb0);
  m.outb(0x42, 0x00);
  m.outb(0x42, 0x10); // 0x1000
  m.step(ticksToNs(0x100));
  m.outb(0x61, 0x00);
  m.step(ticksToNs(0x800));
  m.outb(0x43, 0x80);
  assert.equal(readCount(m, 0x42), 0x0f00);
  m.outb(0x61, 0x01);
  m.step(ticksToNs(0x100));
  assert.equal(readCount(m, 0x42), 0x0e00);
});

test("read-back returns status (OUT, null count, RW, mode, BCD) and count", () => {
  const m = machine();
  m.outb(0x43, 0xb4); // ch2 lobyte/hibyte mode 2
  m.outb(0x43, 0xe8); // read-back status of channel 2
  assert.equal(m.inb(0x42), 0x80 | 0x40 | 0x34, "OUT high, null count, RW=3, mode 2");
  m.outb(0x61, 0x01);
  m.outb(0x42, 100);
  m.outb(0x42, 0);
  m.step(ticksToNs(10));
  m.outb(0x43, 0xc8); // count and status
  assert.equal(m.inb(0x42), 0x80 | 0x34, "status first, null count clear");
  assert.equal(readCount(m, 0x42), 90);
});

test("BCD counting, LSB-only and MSB-only access", () => {
  const m = machine();
  m.outb(0x61, 0x01);
  m.outb(0x43, 0xb1); // ch2, lobyte/hibyte, mode 0, BCD
  m.outb(0x42, 0x00);
  m.outb(0x42, 0x10); // 1000 decimal
  m.step(ticksToNs(1));
  assert.equal(readCount(m, 0x42), 0x0999);
  m.outb(0x43, 0x90); // LSB only
  m.outb(0x42, 0x50);
  m.step(ticksToNs(0x10));
  assert.equal(m.inb(0x42), 0x40);
  assert.equal(m.inb(0x42), 0x40, "LSB-only reads do not toggle");
  m.outb(0x43, 0xa0); // MSB only: count 0x2000
  m.outb(0x42, 0x20);
  m.step(ticksToNs(0x100));
  assert.equal(m.inb(0x42), 0x1f);
});

test("mode 4 one-shot on channel 0: one IRQ 0 after count+1 ticks, then none", () => {
  const m = machine();
  m.outb(0x43, 0x38);
  m.outb(0x40, 100);
  m.outb(0x40, 0);
  m.step(ticksToNs(100));
  assert.equal(drainIrq0(m), 0);
  m.step(ticksToNs(1));
  assert.equal(drainIrq0(m), 1);
  m.step(ticksToNs(0x30000));
  assert.equal(drainIrq0(m), 0);
  m.outb(0x40, 50);
  m.outb(0x40, 0);
  m.step(ticksToNs(51));
  assert.equal(drainIrq0(m), 1, "a new count re-arms the one-shot");
});

test("mode 0 on channel 0: IRQ 0 at terminal count; mode 3 square wave on OUT2", () => {
  const m = machine();
  m.outb(0x43, 0x30);
  m.outb(0x40, 200);
  m.outb(0x40, 0);
  m.step(ticksToNs(199));
  assert.equal(drainIrq0(m), 0);
  m.step(ticksToNs(1));
  assert.equal(drainIrq0(m), 1);
  m.outb(0x61, 0x01);
  m.outb(0x43, 0xb6); // ch2 mode 3
  m.outb(0x42, 100);
  m.outb(0x42, 0);
  m.step(ticksToNs(10));
  assert.equal(m.inb(0x61) & 0x20, 0x20);
  m.step(ticksToNs(50));
  assert.equal(m.inb(0x61) & 0x20, 0);
  m.step(ticksToNs(50));
  assert.equal(m.inb(0x61) & 0x20, 0x20);
});

test("port 0x61 refresh bit toggles with virtual time and low bits read back", () => {
  const m = machine();
  m.outb(0x61, 0x0e);
  const a = m.inb(0x61);
  assert.equal(a & 0x0f, 0x0e);
  m.step(15_085);
  assert.notEqual(m.inb(0x61) & 0x10, a & 0x10);
});

test("gate-triggered modes on channel 2: mode 1 one-shot low pulse, mode 5 strobe after the trigger", () => {
  const m = machine();
  m.outb(0x61, 0x00);
  m.outb(0x43, 0xb2); // ch2 mode 1
  m.outb(0x42, 100);
  m.outb(0x42, 0);
  m.step(ticksToNs(500));
  assert.equal(m.inb(0x61) & 0x20, 0x20, "OUT high until triggered");
  m.outb(0x61, 0x01); // gate rising edge: trigger
  m.step(ticksToNs(50));
  assert.equal(m.inb(0x61) & 0x20, 0, "OUT low while counting");
  m.step(ticksToNs(50));
  assert.equal(m.inb(0x61) & 0x20, 0x20, "OUT high at terminal count");
  m.outb(0x61, 0x00);
  m.outb(0x43, 0xba); // ch2 mode 5
  m.outb(0x42, 10);
  m.outb(0x42, 0);
  m.outb(0x61, 0x01);
  m.step(ticksToNs(10));
  assert.equal(m.inb(0x61) & 0x20, 0, "one-tick strobe at terminal count");
  m.step(ticksToNs(1));
  assert.equal(m.inb(0x61) & 0x20, 0x20);
});

test("mode 2 with the gate low stops counting and forces OUT high; the rising edge reloads", () => {
  const m = machine();
  m.outb(0x61, 0x01);
  m.outb(0x43, 0xb4);
  m.outb(0x42, 100);
  m.outb(0x42, 0);
  m.step(ticksToNs(30));
  m.outb(0x61, 0x00);
  m.step(ticksToNs(1000));
  assert.equal(readCount(m, 0x42), 70);
  assert.equal(m.inb(0x61) & 0x20, 0x20);
  m.outb(0x61, 0x01);
  m.step(ticksToNs(5));
  assert.equal(readCount(m, 0x42), 95);
});

test("a save at a fractional virtual time works (bases are whole ns)", () => {
  const m = machine();
  m.step(1000.5);
  m.outb(0x43, 0x34);
  m.outb(0x40, 0x10);
  m.outb(0x40, 0x00);
  const d = m.pdm.find("i8254")!;
  loadUnit(m, d, saveUnit(d));
  assert.equal(readCount(m, 0x40), 0x10);
});

test("random register writes never throw", () => {
  const m = machine();
  for (let seed = 1; seed <= 5; seed++) fuzzPorts(m, [0x40, 0x41, 0x42, 0x43, 0x61, 0x20], 3000, seed);
});

test("saved-state conformance", () => {
  checkConformance({
    name: "i8254",
    before: ["i8259"],
    setup: (m) => {
      m.outb(0x43, 0x34);
      m.outb(0x40, 0x9b);
      m.outb(0x40, 0x2e);
      m.outb(0x61, 1);
      m.outb(0x43, 0xb0);
      m.outb(0x42, 0x34);
      m.step(123456);
    },
    mutate: (m) => {
      m.outb(0x43, 0x80);
      m.outb(0x43, 0x38);
    },
  });
});

test("a restored PIT keeps counting where it was and re-arms its timer", () => {
  const a = machine();
  a.outb(0x43, 0x34);
  a.outb(0x40, 0xe8);
  a.outb(0x40, 0x03); // 1000
  a.step(ticksToNs(300));
  const d = a.pdm.find("i8254")!;
  const data = saveUnit(d);
  const b = machine();
  b.clock.set(a.clock.now());
  loadUnit(b, b.pdm.find("i8254")!, data);
  assert.equal(readCount(b, 0x40), 700);
  b.step(ticksToNs(700));
  assert.equal(drainIrq0(b), 1);
});

test("saved-state fixture of version 1 still loads (and saves back unchanged while current)", () => {
  checkFixture(
    { name: "i8254", before: ["i8259"] },
    {
      version: 1,
      hex:
        "010203009b2e01009b00ffffffff00ffffffff010100000000000000009b2e00000000000001000300000000000000ffffff" +
        "ff00ffffffff01000000000000000000000000000000000001000300000000013400ffffffff00ffffffff01000000000000" +
        "000000000000000000000000",
    },
  );
});
