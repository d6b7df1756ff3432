import { test } from "node:test";
import assert from "node:assert/strict";
import { FakeMachine, checkConformance, checkFixture, fuzzPorts } from "../testing.ts";

const COM1 = 0x3f8;
const THR = COM1,
  IER = COM1 + 1,
  IIR = COM1 + 2,
  FCR = COM1 + 2,
  LCR = COM1 + 3,
  MCR = COM1 + 4,
  LSR = COM1 + 5,
  MSR = COM1 + 6,
  SCR = COM1 + 7;

function machine(): FakeMachine {
  const m = new FakeMachine({ backends: ["serial0", "serial1"] });
  m.add("serial", { IOBase: COM1, IRQ: 4, Backend: "serial0" });
  return m;
}
const backend = (m: FakeMachine, name = "serial0") => m.backends.get(name)!;

test("Linux 8250 autoconfig probes identify a 16550A", () => {
  const m = machine();
  // Scratch register.
  m.outb(SCR, 0x55);
  assert.equal(m.inb(SCR), 0x55);
  // IER test: 0 then 0x0F read back (low nibble).
  m.outb(IER, 0);
  assert.equal(m.inb(IER) & 0x0f, 0);
  m.outb(IER, 0x0f);
  assert.equal(m.inb(IER) & 0x0f, 0x0f);
  m.outb(IER, 0);
  // Loopback: MCR = LOOP | OUT2 | RTS → MSR high nibble 0x90 (DCD, CTS).
  m.outb(MCR, 0x1a);
  assert.equal(m.inb(MSR) & 0xf0, 0x90);
  m.outb(MCR, 0);
  // EFR write through LCR=0xBF, then FIFO detection.
  m.outb(LCR, 0xbf);
  m.outb(COM1 + 2, 0);
  m.outb(LCR, 0);
  m.outb(FCR, 0x01);
  assert.equal(m.inb(IIR) >> 6, 3, "FIFO bits: 16550A");
  // No EFR: IIR seen through LCR=0x80/0xBF is not zero.
  m.outb(LCR, 0x80);
  assert.notEqual(m.inb(COM1 + 2), 0);
  m.outb(LCR, 0xbf);
  assert.notEqual(m.inb(COM1 + 2), 0);
  // Not a TI16750: IIR bit 5 stays clear with FCR bit 5 set, with or without DLAB.
  m.outb(LCR, 0);
  m.outb(FCR, 0x21);
  const s1 = m.inb(IIR) >> 5;
  m.outb(FCR, 0x01);
  m.outb(LCR, 0x80);
  m.outb(FCR, 0x21);
  const s2 = m.inb(IIR) >> 5;
  m.outb(FCR, 0x01);
  m.outb(LCR, 0);
  assert.deepEqual([s1, s2], [6, 6]);
  // IER bit 6 (XScale UUE) is not writable.
  m.outb(IER, 0x40);
  assert.equal(m.inb(IER), 0);
  // FCR=0xE7 (Linux's later setup) keeps FIFOs on with trigger 14.
  m.outb(FCR, 0xe7);
  assert.equal(m.inb(IIR) & 0xc0, 0xc0);
});

test("transmit drains instantly to the backend; LSR shows THRE and TEMT", () => {
  const m = machine();
  assert.equal(m.inb(LSR), 0x60);
  for (const c of "Linux") m.outb(THR, c.charCodeAt(0));
  assert.equal(backend(m).text(), "Linux");
  assert.equal(m.inb(LSR), 0x60);
  assert.equal(m.stat("/Devices/serial/TxBytes"), 5);
});

test("THRE interrupt: raised when enabled, cleared by reading IIR, raised again by a THR write; gated by OUT2", () => {
  const m = machine();
  m.outb(IER, 0x02);
  assert.equal(m.irqs.levels[4], 0, "OUT2 clear: no IRQ");
  m.outb(MCR, 0x08);
  assert.equal(m.irqs.levels[4], 1);
  assert.equal(m.inb(IIR), 0x02);
  assert.equal(m.irqs.levels[4], 0);
  assert.equal(m.inb(IIR), 0x01);
  m.outb(THR, 0x41);
  assert.equal(m.irqs.levels[4], 1);
  m.outb(IER, 0);
  assert.equal(m.irqs.levels[4], 0);
  m.outb(IER, 0x02);
  assert.equal(m.inb(IIR), 0x02, "re-enabling ETBEI re-raises THRE");
});

test("receive: RDA at the trigger level, character timeout below it, LSR DR", () => {
  const m = machine();
  m.outb(FCR, 0x87); // FIFO on, clear, trigger 8
  m.outb(IER, 0x01);
  m.outb(MCR, 0x0b);
  backend(m).send("abc");
  assert.equal(m.inb(LSR) & 1, 1);
  assert.equal(m.inb(IIR), 0xc1, "3 bytes < trigger 8: nothing yet");
  m.step(400_000); // > 4 character times at 115200 8N1 (~347 µs)
  assert.equal(m.inb(IIR), 0xcc, "character timeout");
  assert.equal(m.irqs.levels[4], 1);
  assert.equal(String.fromCharCode(m.inb(THR), m.inb(THR), m.inb(THR)), "abc");
  assert.equal(m.inb(IIR), 0xc1);
  assert.equal(m.inb(LSR) & 1, 0);
  backend(m).send("0123456789");
  assert.equal(m.inb(IIR), 0xc4, "10 bytes >= trigger 8: RDA");
});

test("receive: more than 16 bytes wait in the backlog and arrive in order, without overrun", () => {
  const m = machine();
  m.outb(FCR, 0xc1); // trigger 14
  const text = "The quick brown fox jumps over the lazy dog";
  backend(m).send(text);
  let got = "";
  while (m.inb(LSR) & 1) got += String.fromCharCode(m.inb(THR));
  assert.equal(got, text);
  assert.equal(m.inb(LSR) & 0x02, 0);
});

test("loopback: THR to RBR, MSR follows MCR with delta bits and an MSR interrupt", () => {
  const m = machine();
  m.outb(MCR, 0x10);
  m.inb(MSR);
  m.outb(THR, 0x5a);
  assert.equal(m.inb(LSR) & 1, 1);
  assert.equal(m.inb(THR), 0x5a);
  assert.deepEqual(backend(m).written, [], "nothing reaches the line");
  m.outb(IER, 0x08);
  m.outb(MCR, 0x10 | 0x01 | 0x02); // DTR, RTS
  assert.equal(m.inb(IIR), 0x00, "modem status interrupt");
  assert.equal(m.inb(MSR), 0x30 | 0x03);
  assert.equal(m.inb(MSR), 0x30, "deltas cleared by the read");
  m.outb(MCR, 0x10 | 0x04);
  m.outb(MCR, 0x10);
  assert.equal(m.inb(MSR) & 0x04, 0x04, "TERI on the trailing edge of RI");
});

test("loopback overrun with FIFOs off: LSR OE and the line status interrupt", () => {
  const m = machine();
  m.outb(MCR, 0x10);
  m.outb(IER, 0x04);
  m.outb(THR, 1);
  m.outb(THR, 2);
  assert.equal(m.inb(IIR), 0x06);
  assert.equal(m.inb(LSR) & 0x03, 0x03);
  assert.equal(m.inb(LSR) & 0x02, 0, "OE cleared by reading LSR");
  assert.equal(m.inb(IIR), 0x01);
  assert.equal(m.inb(THR), 1);
});

test("divisor latch behind DLAB", () => {
  const m = machine();
  m.outb(IER, 0x05);
  m.outb(LCR, 0x83);
  m.outb(COM1, 0x0c);
  m.outb(COM1 + 1, 0x00);
  assert.equal(m.inb(COM1), 0x0c);
  assert.equal(m.inb(COM1 + 1), 0x00);
  m.outb(LCR, 0x03);
  assert.equal(m.inb(IER), 0x05);
  assert.equal(m.inb(LCR), 0x03);
});

test("COM2 defaults: instance 1 at 0x2F8 on IRQ 3 with backend serial1", () => {
  const m = new FakeMachine({ backends: ["serial0", "serial1"] });
  m.add("serial", {}, 0);
  m.add("serial", {}, 1);
  m.outb(0x2f8 + 1, 0x02);
  m.outb(0x2f8 + 4, 0x08);
  assert.equal(m.irqs.levels[3], 1);
  m.outb(0x2f8, 0x42);
  assert.deepEqual(backend(m, "serial1").written, [0x42]);
  assert.deepEqual(backend(m, "serial0").written, []);
});

test("IIR priorities: line status over received data over THRE; the timeout clears on a read", () => {
  const m = machine();
  m.outb(FCR, 0xc1); // trigger 14
  m.outb(MCR, 0x18); // loopback (IRQ pin off), for overrun
  m.outb(IER, 0x07);
  assert.equal(m.inb(IIR), 0xc2, "THRE alone");
  for (let i = 0; i < 17; i++) m.outb(THR, 0x30 + i); // 16 fit, the 17th overruns
  assert.equal(m.inb(IIR), 0xc6, "RLS first");
  m.inb(LSR);
  assert.equal(m.inb(IIR), 0xc4, "then RDA (16 >= 14)");
  for (let i = 0; i < 14; i++) m.inb(THR);
  assert.equal(m.inb(IIR) & 0x0f, 0x02, "2 bytes below the trigger, no timeout yet: THRE");
  m.step(1_000_000);
  assert.equal(m.inb(IIR), 0xcc, "character timeout");
  m.inb(THR);
  assert.notEqual(m.inb(IIR) & 0x0f, 0x0c, "reading a byte clears the timeout");
});

test("random register writes never throw (with and without a backend)", () => {
  const m = machine();
  const ports = Array.from({ length: 8 }, (_, i) => COM1 + i);
  for (let seed = 1; seed <= 5; seed++) {
    fuzzPorts(m, ports, 3000, seed);
    backend(m).send([seed, 0xff, 0]);
  }
  const bare = new FakeMachine();
  bare.add("serial");
  fuzzPorts(bare, ports, 3000, 9);
});

test("saved-state conformance", () => {
  checkConformance({
    name: "serial",
    backends: ["serial0"],
    config: { IOBase: COM1, IRQ: 4 },
    setup: (m) => {
      m.outb(FCR, 0x81);
      m.outb(IER, 0x03);
      m.outb(MCR, 0x0b);
      m.backends.get("serial0")!.send("hello, this is more than sixteen bytes");
    },
    mutate: (m) => {
      m.inb(THR);
      m.outb(SCR, 0x99);
    },
    mismatchConfig: { IOBase: COM1, IRQ: 3 },
  });
});

test("saved-state fixture of version 1 still loads (and saves back unchanged while current)", () => {
  checkFixture(
    { name: "serial", config: { IOBase: COM1, IRQ: 4 }, backends: ["serial0"] },
    {
      version: 1,
      hex:
        "f8030403000b00010001021000000068656c6c6f2c2074686973206973206d160000006f7265207468616e20736978746565" +
        "6e206279746573000100000170b5030000000000",
    },
  );
});
