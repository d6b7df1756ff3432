import { test } from "node:test";
import assert from "node:assert/strict";
import { FakeMachine, checkConformance, checkFixture, fuzzPorts } from "../testing.ts";

/** A machine with the PIC initialized the way Linux's init_8259A does (vectors 0x30/0x38). */
function linuxPic(icw4 = 0x01): FakeMachine {
  const m = new FakeMachine();
  m.add("i8259");
  m.outb(0x21, 0xff);
  m.outb(0xa1, 0xff);
  m.outb(0x20, 0x11); // ICW1: edge, cascade, ICW4 needed
  m.outb(0x21, 0x30); // ICW2: vector base
  m.outb(0x21, 0x04); // ICW3: slave on IR2
  m.outb(0x21, icw4); // ICW4
  m.outb(0xa0, 0x11);
  m.outb(0xa1, 0x38);
  m.outb(0xa1, 0x02); // slave id
  m.outb(0xa1, icw4);
  m.outb(0x21, 0x00); // unmask all
  m.outb(0xa1, 0x00);
  return m;
}

const readIsr = (m: FakeMachine, port: number): number => {
  m.outb(port, 0x0b);
  return m.inb(port);
};
const readIrr = (m: FakeMachine, port: number): number => {
  m.outb(port, 0x0a);
  return m.inb(port);
};

test("ICW sequence: IMR cleared by ICW1, vector base from ICW2, IMR readable", () => {
  const m = linuxPic();
  assert.equal(m.inb(0x21), 0x00);
  m.outb(0x21, 0xfb);
  assert.equal(m.inb(0x21), 0xfb);
  m.outb(0x20, 0x11); // re-init clears the mask
  assert.equal(m.inb(0x21), 0x00);
  assert.equal(m.irqs.hasInterrupt(), false);
});

test("edge-triggered IRQ 0: request, INTA vector, ISR set, specific EOI clears; no re-trigger while high", () => {
  const m = linuxPic();
  m.irqs.setIrq(0, true);
  assert.equal(readIrr(m, 0x20) & 1, 1);
  assert.equal(m.irqs.hasInterrupt(), true);
  assert.equal(m.irqs.controller!.acknowledge(), 0x30);
  assert.equal(readIsr(m, 0x20), 0x01);
  assert.equal(readIrr(m, 0x20) & 1, 0);
  assert.equal(m.irqs.hasInterrupt(), false);
  m.outb(0x20, 0x60); // specific EOI for IR0
  assert.equal(readIsr(m, 0x20), 0x00);
  assert.equal(m.irqs.hasInterrupt(), false, "line still high: no new edge");
  m.irqs.setIrq(0, false);
  m.irqs.setIrq(0, true);
  assert.equal(m.irqs.hasInterrupt(), true, "a new rising edge requests again");
  assert.equal(m.stat("/Devices/i8259/Irq0"), 1);
});

test("slave IRQ 12 through the cascade: slave vector, ISR on both chips, EOI both", () => {
  const m = linuxPic();
  m.irqs.setIrq(12, true);
  assert.equal(m.irqs.hasInterrupt(), true);
  assert.equal(m.irqs.controller!.acknowledge(), 0x38 + 4);
  assert.equal(readIsr(m, 0x20), 0x04);
  assert.equal(readIsr(m, 0xa0), 0x10);
  m.outb(0xa0, 0x20); // non-specific EOI to the slave
  m.outb(0x20, 0x62); // specific EOI for the cascade
  assert.equal(readIsr(m, 0x20), 0);
  assert.equal(readIsr(m, 0xa0), 0);
  m.irqs.setIrq(12, false);
  assert.equal(m.irqs.hasInterrupt(), false);
});

test("fully nested priority: a higher request interrupts an in-service lower one, a lower waits", () => {
  const m = linuxPic();
  m.irqs.setIrq(3, true);
  m.irqs.setIrq(4, true);
  assert.equal(m.irqs.controller!.acknowledge(), 0x33);
  assert.equal(m.irqs.hasInterrupt(), false, "IR4 is blocked by IR3 in service");
  m.irqs.setIrq(1, true);
  assert.equal(m.irqs.hasInterrupt(), true);
  assert.equal(m.irqs.controller!.acknowledge(), 0x31);
  assert.equal(readIsr(m, 0x20), 0x0a);
  m.outb(0x20, 0x20); // non-specific EOI: clears IR1 (highest in service)
  assert.equal(readIsr(m, 0x20), 0x08);
  m.outb(0x20, 0x20);
  assert.equal(m.irqs.controller!.acknowledge(), 0x34);
});

test("masked requests stay in IRR and interrupt when unmasked", () => {
  const m = linuxPic();
  m.outb(0x21, 0x20);
  m.irqs.setIrq(5, true);
  assert.equal(m.irqs.hasInterrupt(), false);
  assert.equal(readIrr(m, 0x20) & 0x20, 0x20);
  m.outb(0x21, 0x00);
  assert.equal(m.irqs.hasInterrupt(), true);
  assert.equal(m.irqs.controller!.acknowledge(), 0x35);
});

test("level-triggered via ELCR: re-requests after EOI while high; ELCR keeps IRQ 0/1/2/8/13 edge", () => {
  const m = linuxPic();
  m.outb(0x4d0, 0xff);
  m.outb(0x4d1, 0xff);
  assert.equal(m.inb(0x4d0), 0xf8);
  assert.equal(m.inb(0x4d1), 0xde);
  m.irqs.setIrq(10, true);
  assert.equal(m.irqs.controller!.acknowledge(), 0x3a);
  m.outb(0xa0, 0x20);
  m.outb(0x20, 0x20);
  assert.equal(m.irqs.hasInterrupt(), true, "level still high: requests again");
  assert.equal(m.irqs.controller!.acknowledge(), 0x3a);
  m.outb(0xa0, 0x20);
  m.outb(0x20, 0x20);
  m.irqs.setIrq(10, false);
  assert.equal(m.irqs.hasInterrupt(), false);
});

test("spurious IRQ 7: a request withdrawn before INTA yields IR7's vector and no ISR bit", () => {
  const m = linuxPic();
  m.irqs.setIrq(5, true);
  assert.equal(m.irqs.hasInterrupt(), true);
  m.irqs.setIrq(5, false);
  assert.equal(m.irqs.controller!.acknowledge(), 0x37);
  assert.equal(readIsr(m, 0x20), 0);
  assert.equal(m.stat("/Devices/i8259/SpuriousIrq7"), 1);
});

test("auto-EOI mode leaves ISR clear", () => {
  const m = linuxPic(0x03);
  m.irqs.setIrq(1, true);
  assert.equal(m.irqs.controller!.acknowledge(), 0x31);
  assert.equal(readIsr(m, 0x20), 0);
});

test("rotate on non-specific EOI makes the serviced level lowest; set priority command", () => {
  const m = linuxPic();
  m.irqs.setIrq(1, true);
  assert.equal(m.irqs.controller!.acknowledge(), 0x31);
  m.outb(0x20, 0xa0); // rotate on non-specific EOI: IR1 becomes lowest, IR2 highest
  m.irqs.setIrq(1, false);
  m.irqs.setIrq(1, true);
  m.irqs.setIrq(3, true);
  assert.equal(m.irqs.controller!.acknowledge(), 0x33, "IR3 now outranks IR1");
  m.outb(0x20, 0x63);
  m.outb(0x20, 0xc0 | 0); // set priority: IR0 lowest, IR1 highest
  assert.equal(m.irqs.controller!.acknowledge(), 0x31);
});

test("special mask mode lets a lower level interrupt while a masked higher one is in service", () => {
  const m = linuxPic();
  m.irqs.setIrq(1, true);
  assert.equal(m.irqs.controller!.acknowledge(), 0x31);
  m.irqs.setIrq(3, true);
  assert.equal(m.irqs.hasInterrupt(), false);
  m.outb(0x21, 0x02); // mask IR1
  m.outb(0x20, 0x68); // OCW3: set special mask mode
  assert.equal(m.irqs.hasInterrupt(), true);
  assert.equal(m.irqs.controller!.acknowledge(), 0x33);
  m.outb(0x20, 0x48); // clear special mask mode
  m.outb(0x20, 0x63);
  m.outb(0x20, 0x61);
  assert.equal(readIsr(m, 0x20), 0);
});

test("poll command returns 0x80|level and acknowledges; 0 when nothing is pending", () => {
  const m = linuxPic();
  m.outb(0x20, 0x0c);
  assert.equal(m.inb(0x20), 0x00);
  m.irqs.setIrq(6, true);
  m.outb(0x20, 0x0c);
  assert.equal(m.inb(0x20), 0x86);
  assert.equal(readIsr(m, 0x20), 0x40);
});

test("ELCR switched to level with the line high requests at once; LTIM makes every input level", () => {
  const m = linuxPic();
  m.outb(0x21, 0x20); // mask IR5
  m.irqs.setIrq(5, true);
  assert.equal(m.irqs.controller!.acknowledge(), 0x37, "masked: spurious");
  m.outb(0x21, 0x00);
  assert.equal(m.irqs.controller!.acknowledge(), 0x35, "edge latched while masked");
  m.outb(0x20, 0x65);
  assert.equal(m.irqs.hasInterrupt(), false);
  m.outb(0x4d0, 0x20);
  assert.equal(m.irqs.hasInterrupt(), true, "level mode sees the high line");
  m.outb(0x4d0, 0x00);
  // ICW1 with LTIM: level-triggered for all inputs of the chip.
  m.outb(0x20, 0x19);
  m.outb(0x21, 0x30);
  m.outb(0x21, 0x04);
  m.outb(0x21, 0x01);
  assert.equal(m.irqs.controller!.acknowledge(), 0x35);
  m.outb(0x20, 0x20);
  assert.equal(m.irqs.controller!.acknowledge(), 0x35, "still high: requested again after EOI");
});

test("random register writes never throw", () => {
  const m = linuxPic();
  for (let seed = 1; seed <= 5; seed++) {
    fuzzPorts(m, [0x20, 0x21, 0xa0, 0xa1, 0x4d0, 0x4d1], 3000, seed);
    for (let i = 0; i < 16; i++) m.irqs.setIrq(i, ((seed * 7 + i) & 3) === 0);
  }
});

test("saved-state conformance", () => {
  checkConformance({
    name: "i8259",
    setup: (m) => {
      for (const [p, v] of [
        [0x20, 0x11],
        [0x21, 0x30],
        [0x21, 4],
        [0x21, 1],
        [0xa0, 0x11],
        [0xa1, 0x38],
        [0xa1, 2],
        [0xa1, 1],
      ] as const)
        m.outb(p, v);
      m.irqs.setIrq(4, true);
      m.irqs.controller!.acknowledge();
    },
    mutate: (m) => {
      m.irqs.setIrq(9, true);
      m.outb(0x21, 0x55);
    },
  });
});

test("saved-state fixture of version 1 still loads (and saves back unchanged while current)", () => {
  checkFixture(
    { name: "i8259" },
    {
      version: 1,
      hex: "041000140030110401000700000000040000040c38110201000700000000",
    },
  );
});
