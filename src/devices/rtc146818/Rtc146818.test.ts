import { test } from "node:test";
import assert from "node:assert/strict";
import { FakeMachine, checkConformance, checkFixture, fuzzPorts } from "../testing.ts";

const START = "2024-02-29T23:59:58Z";

function machine(config: Record<string, number | string> = {}): FakeMachine {
  const m = new FakeMachine();
  m.add("i8259");
  m.add("mc146818", { StartTime: START, ...config });
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

const cmos = (m: FakeMachine, i: number): number => {
  m.outb(0x70, i);
  return m.inb(0x71);
};
const setCmos = (m: FakeMachine, i: number, v: number): void => {
  m.outb(0x70, i);
  m.outb(0x71, v);
};
const clock = (m: FakeMachine): number[] => [0, 2, 4, 6, 7, 8, 9].map((i) => cmos(m, i));

/** Takes pending IRQ 8s: INTA, read C, EOI slave and master. Returns the C values read. */
function drainIrq8(m: FakeMachine): number[] {
  const cs: number[] = [];
  while (m.irqs.hasInterrupt()) {
    assert.equal(m.irqs.controller!.acknowledge(), 0x38);
    cs.push(cmos(m, 0x0c));
    m.outb(0xa0, 0x20);
    m.outb(0x20, 0x20);
  }
  return cs;
}

test("time registers in BCD/24h from Config StartTime, rolling over a leap day on the virtual clock", () => {
  const m = machine();
  assert.deepEqual(clock(m), [0x58, 0x59, 0x23, 0x05, 0x29, 0x02, 0x24]);
  assert.equal(cmos(m, 0x32), 0x20, "century");
  m.step(2e9);
  assert.deepEqual(clock(m), [0x00, 0x00, 0x00, 0x06, 0x01, 0x03, 0x24]);
  assert.equal(cmos(m, 0x0d), 0x80, "VRT");
});

test("binary and 12-hour modes per register B", () => {
  const m = machine();
  setCmos(m, 0x0b, 0x04); // binary, 12-hour
  assert.deepEqual(clock(m), [58, 59, 0x80 | 11, 5, 29, 2, 24]);
  setCmos(m, 0x0b, 0x06); // binary, 24-hour
  assert.equal(cmos(m, 4), 23);
});

test("setting the time with SET halts updates; clearing SET resumes from the written time", () => {
  const m = machine();
  setCmos(m, 0x0b, 0x82);
  setCmos(m, 0x09, 0x99);
  setCmos(m, 0x08, 0x12);
  setCmos(m, 0x07, 0x31);
  setCmos(m, 0x04, 0x10);
  setCmos(m, 0x02, 0x20);
  setCmos(m, 0x00, 0x30);
  m.step(5e9);
  assert.deepEqual(
    clock(m),
    [0x30, 0x20, 0x10, 0x05, 0x31, 0x12, 0x99],
    "frozen while SET (2099-12-31 is a Thursday: 5)",
  );
  setCmos(m, 0x0b, 0x02);
  m.step(1e9);
  assert.equal(cmos(m, 0), 0x31);
});

test("UIP is set only in the 244 µs before an update", () => {
  const m = machine();
  m.step(500e6);
  assert.equal(cmos(m, 0x0a) & 0x80, 0);
  m.step(500e6 - 100e3);
  assert.equal(cmos(m, 0x0a), 0x80 | 0x26);
  m.step(200e3);
  assert.equal(cmos(m, 0x0a) & 0x80, 0);
});

test("periodic interrupt at 1024 Hz on IRQ 8, acknowledged by reading register C", () => {
  const m = machine();
  m.outb(0x70, 0x0b);
  const b = m.inb(0x71);
  m.outb(0x71, b | 0x40);
  cmos(m, 0x0c);
  drainIrq8(m);
  let n = 0;
  for (let i = 0; i < 100; i++) {
    m.step(100_000);
    for (const c of drainIrq8(m)) {
      assert.equal(c & 0xc0, 0xc0);
      n++;
    }
  }
  assert.equal(n, 10); // 10 ms at 976.5625 µs
  assert.equal(m.irqs.hasInterrupt(), false);
});

test("update-ended interrupt once a second; PF is still reported in C without PIE", () => {
  const m = machine();
  setCmos(m, 0x0b, 0x12);
  cmos(m, 0x0c);
  m.step(999e6);
  assert.deepEqual(drainIrq8(m), []);
  m.step(1e6);
  const cs = drainIrq8(m);
  assert.equal(cs.length, 1);
  assert.equal(cs[0]! & 0x90, 0x90, "IRQF + UF");
  assert.equal(cs[0]! & 0x40, 0x40, "PF set (1024 Hz) though PIE is off");
  assert.equal(cmos(m, 0x0c), 0, "read clears");
});

test("alarm interrupt at the alarm time, with don't-care hours", () => {
  const m = machine();
  setCmos(m, 0x01, 0x02); // seconds 02
  setCmos(m, 0x03, 0x00); // minutes 00
  setCmos(m, 0x05, 0xc0); // any hour
  setCmos(m, 0x0b, 0x22); // AIE
  cmos(m, 0x0c);
  m.step(3e9); // 23:59:58 → 00:00:01
  assert.deepEqual(drainIrq8(m), []);
  m.step(1e9);
  const cs = drainIrq8(m);
  assert.equal(cs.length, 1);
  assert.equal(cs[0]! & 0xa0, 0xa0, "IRQF + AF");
});

test("divider reset stops the clock; leaving it, the first update comes after half a second", () => {
  const m = machine();
  setCmos(m, 0x0a, 0x66);
  m.step(10e9);
  assert.equal(cmos(m, 0), 0x58);
  setCmos(m, 0x0a, 0x26);
  m.step(499e6);
  assert.equal(cmos(m, 0), 0x58);
  m.step(2e6);
  assert.equal(cmos(m, 0), 0x59);
});

test("CMOS memory size fields from RamSize; NVRAM bytes read back; index masks the NMI bit", () => {
  const m = machine({ RamSize: 64 * 1024 * 1024 });
  assert.equal(cmos(m, 0x15) | (cmos(m, 0x16) << 8), 640);
  assert.equal(cmos(m, 0x17) | (cmos(m, 0x18) << 8), 63 * 1024);
  assert.equal(cmos(m, 0x30) | (cmos(m, 0x31) << 8), 63 * 1024);
  assert.equal(cmos(m, 0x34) | (cmos(m, 0x35) << 8), 48 * 16);
  setCmos(m, 0x80 | 0x40, 0x5a);
  assert.equal(cmos(m, 0x40), 0x5a);
  assert.equal(m.inb(0x70), 0xff, "index port is write-only");
});

test("writing hours in 12-hour BCD mode and the century register", () => {
  const m = machine();
  setCmos(m, 0x0b, 0x80); // SET, BCD, 12-hour
  setCmos(m, 0x04, 0x80 | 0x12); // 12 PM = 12:xx
  setCmos(m, 0x32, 0x21); // 21st century → 2124
  setCmos(m, 0x0b, 0x82);
  assert.equal(cmos(m, 0x04), 0x12);
  assert.equal(cmos(m, 0x09), 0x24);
  assert.equal(cmos(m, 0x32), 0x21);
  setCmos(m, 0x0b, 0x80);
  setCmos(m, 0x04, 0x12); // 12 AM = 00:xx
  setCmos(m, 0x0b, 0x02);
  assert.equal(cmos(m, 0x04), 0x00);
});

test("random register writes never throw", () => {
  const m = machine();
  for (let seed = 1; seed <= 5; seed++) fuzzPorts(m, [0x70, 0x71, 0x71, 0x71], 3000, seed);
});

test("saved-state conformance", () => {
  checkConformance({
    name: "mc146818",
    config: { StartTime: START },
    before: ["i8259"],
    setup: (m) => {
      setCmos(m, 0x0b, 0x52);
      setCmos(m, 0x50, 0x77);
      m.step(1_234_567);
    },
    mutate: (m) => {
      setCmos(m, 0x0b, 0x82);
      setCmos(m, 0x04, 0x05);
    },
    mismatchConfig: { StartTime: START, Irq: 9 },
  });
});

test("saved-state fixture of version 1 still loads (and saves back unchanged while current)", () => {
  checkFixture(
    { name: "mc146818", config: { StartTime: START }, before: ["i8259"] },
    {
      version: 1,
      hex:
        "7000080000000000000000000026520080000000000000020400000000000000000000000000000000000000000000000000" +
        "0600002000000000000000000000000000000000000000000000000000000000007700000000000000000000000000000000" +
        "0000000000000000000000000000000000000000000000000000000000000050000000809f4678d941000000000000000000" +
        "00809f4678d941400000000000000000",
    },
  );
});
