import { test } from "node:test";
import assert from "node:assert/strict";
import { PhysMem, PageKind } from "./PhysMem.ts";

test("RAM reads and writes little-endian through the slow path", () => {
  const m = new PhysMem(64 * 1024);
  m.write32(0x100, 0x11223344);
  assert.equal(m.ram[0x100], 0x44);
  assert.equal(m.ram[0x103], 0x11);
  assert.equal(m.read16(0x101), 0x2233);
  assert.equal(m.read32(0x100) >>> 0, 0x11223344);
  m.write16(0x1fff, 0xabcd); // page-crossing
  assert.equal(m.read8(0x1fff), 0xcd);
  assert.equal(m.read8(0x2000), 0xab);
});

test("unassigned addresses read all ones, drop writes and count", () => {
  const m = new PhysMem(4096);
  assert.equal(m.kindAt(0x10000), PageKind.UNASSIGNED);
  assert.equal(m.read8(0x10000), 0xff);
  assert.equal(m.read32(0x10000) >>> 0, 0xffffffff);
  m.write8(0x10000, 1);
  assert.ok(m.unassignedAccesses >= 6);
});

test("ROM below the top of RAM shadows RAM read-only; high ROM is separate", () => {
  const m = new PhysMem(1024 * 1024);
  const rom = new Uint8Array(8192).map((_, i) => i & 0xff);
  m.mapRom(0xfe000, rom);
  assert.equal(m.kindAt(0xfe000), PageKind.ROM);
  assert.equal(m.read8(0xfe005), 5);
  assert.equal(m.ram[0xfe005], 5, "shadow copy in RAM for the fast path");
  m.write8(0xfe005, 0x99);
  assert.equal(m.read8(0xfe005), 5, "ROM writes are dropped");
  m.mapRom(0xfffe0000, rom);
  assert.equal(m.read8(0xfffe0003), 3);
  m.write8(0xfffe0003, 7);
  assert.equal(m.read8(0xfffe0003), 3);
});

test("MMIO handlers see offsets and widths; conflicts are refused", () => {
  const m = new PhysMem(4096);
  const seen: string[] = [];
  m.mapMmio(0xfee00000, 4096, {
    read: (off, size) => {
      seen.push(`r${String(size)}@${off.toString(16)}`);
      return 0x12345678;
    },
    write: (off, v, size) => {
      seen.push(`w${String(size)}@${off.toString(16)}=${v.toString(16)}`);
    },
  });
  assert.equal(m.read32(0xfee00020) >>> 0, 0x12345678);
  m.write32(0xfee000b0, 0xdeadbeef);
  m.write8(0xfee00001, 0x1ff);
  assert.deepEqual(seen, ["r4@20", "w4@b0=deadbeef", "w1@1=ff"]);
  assert.throws(() => m.mapMmio(0xfee00000, 4096, { read: () => 0, write: () => undefined }), /conflict/);
});

test("A20 gate wraps addresses at 1 MiB when closed and notifies", () => {
  const m = new PhysMem(2 * 1024 * 1024);
  let flushes = 0;
  m.onA20Change = () => flushes++;
  m.write8(0x100005, 0xaa);
  m.write8(0x000005, 0x55);
  assert.equal(m.read8(0x100005), 0xaa);
  m.setA20(false);
  assert.equal(m.read8(0x100005), 0x55);
  m.setA20(false);
  m.setA20(true);
  assert.equal(m.read8(0x100005), 0xaa);
  assert.equal(flushes, 2);
});

test("writeBytes/readBytes copy and notify external writes", () => {
  const m = new PhysMem(16384);
  const notes: [number, number][] = [];
  m.onExternalWrite = (a, l) => notes.push([a, l]);
  m.writeBytes(0x1ffe, Uint8Array.of(1, 2, 3, 4));
  assert.deepEqual([...m.readBytes(0x1ffe, 4)], [1, 2, 3, 4]);
  assert.deepEqual(notes, [[0x1ffe, 4]]);
  assert.throws(() => new PhysMem(1000), /Invalid RAM size/);
});
