import { test } from "node:test";
import assert from "node:assert/strict";
import { FakeMachine, checkConformance, checkFixture, fuzzPorts } from "../testing.ts";
import type { PciHost } from "./Pci.ts";
import { PciFunction, pciBusOf, pciDevfn } from "./PciFunction.ts";

function machine(): FakeMachine {
  const m = new FakeMachine({ ramSize: 32 * 1024 * 1024 });
  m.add("pci");
  return m;
}
const addr = (dev: number, fn: number, reg: number, bus = 0): number =>
  (0x80000000 | (bus << 16) | (dev << 11) | (fn << 8) | reg) >>> 0;
function cfgRead(m: FakeMachine, dev: number, fn: number, reg: number, size: 1 | 2 | 4 = 4, bus = 0): number {
  m.outl(0xcf8, addr(dev, fn, reg & 0xfc, bus));
  return m.io.read(0xcfc + (reg & 3), size);
}
function cfgWrite(m: FakeMachine, dev: number, fn: number, reg: number, v: number, size: 1 | 2 | 4 = 4): void {
  m.outl(0xcf8, addr(dev, fn, reg & 0xfc));
  m.io.write(0xcfc + (reg & 3), v, size);
}

test("Linux pci_check_type1: a byte to 0xCFB leaves CONFIG_ADDRESS alone; the dword reads back", () => {
  const m = machine();
  m.outb(0xcfb, 0x01);
  const saved = m.inl(0xcf8);
  m.outl(0xcf8, 0x80000000);
  assert.equal(m.inl(0xcf8), 0x80000000);
  m.outl(0xcf8, saved);
  assert.equal(m.inl(0xcf8), saved);
  m.outl(0xcf8, 0xffffffff);
  assert.equal(m.inl(0xcf8), 0x80fffffc, "reserved bits read zero");
});

test("i440FX at 00:00.0 and PIIX3 at 00:01.0 identities", () => {
  const m = machine();
  assert.equal(cfgRead(m, 0, 0, 0x00), 0x12378086);
  assert.equal(cfgRead(m, 0, 0, 0x08), 0x06000002, "class 06 00 00, revision 02");
  assert.equal(cfgRead(m, 0, 0, 0x0e, 1), 0x00);
  assert.equal(cfgRead(m, 0, 0, 0x04, 2), 0x0006);
  assert.equal(cfgRead(m, 1, 0, 0x00), 0x70008086);
  assert.equal(cfgRead(m, 1, 0, 0x0a, 2), 0x0601, "ISA bridge");
  assert.equal(cfgRead(m, 1, 0, 0x0e, 1), 0x80, "multi-function");
  assert.equal(cfgRead(m, 1, 0, 0x02, 2), 0x7000, "word at an offset within the dword");
  assert.equal(cfgRead(m, 1, 0, 0x03, 1), 0x70);
});

test("absent functions, other buses and a disabled CONFIG_ADDRESS read all ones", () => {
  const m = machine();
  assert.equal(cfgRead(m, 2, 0, 0), 0xffffffff);
  assert.equal(cfgRead(m, 1, 1, 0, 2), 0xffff);
  assert.equal(cfgRead(m, 0, 0, 0, 4, 1), 0xffffffff);
  m.outl(0xcf8, 0x00000000);
  assert.equal(m.inl(0xcfc), 0xffffffff);
  m.outl(0xcfc, 0); // dropped
  assert.equal(cfgRead(m, 0, 0, 0), 0x12378086);
  cfgWrite(m, 5, 0, 0x3c, 0x0b, 1);
  assert.ok(m.stat("/Devices/pci/AbsentAccesses") >= 4);
});

test("PIIX3 PIRQ route registers 0x60–0x63: default 0x80, held as written (reserved bits 6:4 zero)", () => {
  const m = machine();
  assert.equal(cfgRead(m, 1, 0, 0x60), 0x80808080);
  cfgWrite(m, 1, 0, 0x61, 0x0b, 1);
  cfgWrite(m, 1, 0, 0x62, 0x7a, 1);
  assert.equal(cfgRead(m, 1, 0, 0x60), 0x800a0b80);
  const host = m.pdm.find("pci")!.dev as PciHost;
  assert.deepEqual(
    [0, 1, 2, 3].map((i) => host.pirqRoute(i)),
    [-1, 11, 10, -1],
  );
});

test("read-only identity, writable command bits, write-1-to-clear status", () => {
  const m = machine();
  cfgWrite(m, 0, 0, 0x00, 0);
  assert.equal(cfgRead(m, 0, 0, 0x00), 0x12378086);
  cfgWrite(m, 1, 0, 0x04, 0xffff, 2);
  assert.equal(cfgRead(m, 1, 0, 0x04, 2), 0x0547);
  const host = m.pdm.find("pci")!.dev as PciHost;
  host.piix3.setU16(0x06, 0x3200);
  cfgWrite(m, 1, 0, 0x06, 0x1000, 2);
  assert.equal(cfgRead(m, 1, 0, 0x06, 2), 0x2200);
});

test("0xCF9 reset control: 0x02 then 0x06 resets once", () => {
  const m = machine();
  m.outb(0xcf9, 0x02);
  assert.deepEqual(m.resets, []);
  m.outb(0xcf9, 0x06);
  assert.deepEqual(m.resets, ["pci-cf9"]);
  assert.equal(m.inb(0xcf9), 0x02);
});

test("registration API: a later device's function with a sized BAR", () => {
  const m = machine();
  const d = m.add("serial"); // any DevIns of this machine will do
  const bus = pciBusOf(d.ins)!;
  const fn = new PciFunction("test", { vendorId: 0x1234, deviceId: 0x5678, classCode: 0x010180, interruptPin: 1 });
  fn.defineBar(0, 16, "io");
  fn.defineBar(1, 4096, "mem32");
  const writes: number[] = [];
  fn.onWrite = (off) => writes.push(off);
  bus.register(pciDevfn(3, 0), fn);
  assert.throws(() => bus.register(pciDevfn(3, 0), fn), /taken by test/);
  assert.equal(cfgRead(m, 3, 0, 0), 0x56781234);
  cfgWrite(m, 3, 0, 0x10, 0xffffffff);
  assert.equal(cfgRead(m, 3, 0, 0x10), 0xfffffff1, "I/O BAR sizing");
  cfgWrite(m, 3, 0, 0x14, 0xffffffff);
  assert.equal(cfgRead(m, 3, 0, 0x14), 0xfffff000, "memory BAR sizing");
  cfgWrite(m, 3, 0, 0x10, 0xc001);
  assert.equal(fn.barAddress(0), 0xc000);
  assert.equal(cfgRead(m, 3, 0, 0x3d, 1), 1);
  assert.deepEqual(writes, [0x10, 0x14, 0x10]);
});

test("random configuration accesses never throw", () => {
  const m = machine();
  for (let seed = 1; seed <= 3; seed++) {
    m.outl(0xcf8, 0x80000000 | (seed << 8));
    fuzzPorts(m, [0xcfc, 0xcfd, 0xcfe, 0xcff, 0xcfb], 2000, seed);
  }
  fuzzPorts(m, [0xcf8, 0xcfa, 0xcfc, 0xcff], 2000, 9); // no 0xCF9: it would request resets
});

test("saved-state conformance", () => {
  checkConformance({
    name: "pci",
    setup: (m) => {
      cfgWrite(m, 1, 0, 0x60, 0x0b0a0980);
    },
    mutate: (m) => {
      cfgWrite(m, 0, 0, 0x59, 0x30, 1);
    },
  });
});

test("saved-state fixture of version 1 still loads (and saves back unchanged while current)", () => {
  checkFixture(
    { name: "pci" },
    {
      version: 1,
      hex:
        "0010000000000000600800800086803712060080020200000600000000000000000000000000000000000000000000000000" +
        "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000" +
        "0000000000000000000101010101010101000000000000000000000200000000000000000000000000000000000000000000" +
        "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000" +
        "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000" +
        "0000000000000000000000000000000000000086800070070000020000010600008000000000000000000000000000000000" +
        "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000004d00030000" +
        "00000000000000000000000000000080090a0b0000000000020000000000008080000000000c0c0200000000000000000000" +
        "0000000000000000000000000000000000000000000000000000000000080000000000000000000000000000000000000000" +
        "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000" +
        "00000000000000000000000000000000000000000000000000",
    },
  );
});
