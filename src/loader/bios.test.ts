import { test } from "node:test";
import assert from "node:assert/strict";
import { PhysMem } from "../mem/PhysMem.ts";
import { mapBios } from "./bios.ts";

test("a 256 KiB ROM ends at 4 GiB, and its last 128 KiB at 1 MiB", () => {
  const mem = new PhysMem(16 * 1024 * 1024);
  const rom = Uint8Array.from({ length: 256 * 1024 }, (_, i) => (i ^ (i >> 8)) & 0xff);
  const m = mapBios(mem, rom);
  assert.equal(m.highBase, 0x100000000 - 0x40000);
  assert.equal(m.lowBase, 0xe0000);
  // the reset vector reads the ROM's last 16 bytes
  for (let i = 0; i < 16; i++) assert.equal(mem.read8(0xfffffff0 + i), rom[rom.length - 16 + i]);
  assert.equal(mem.read8(0xfffc0000), rom[0]);
  // F000:FFF0 in real mode = 0xFFFF0
  for (let i = 0; i < 16; i++) assert.equal(mem.read8(0xffff0 + i), rom[rom.length - 16 + i]);
  assert.equal(mem.read8(0xe0000), rom[128 * 1024]);
  // read-only
  mem.write8(0xffff0, 0x12);
  assert.equal(mem.read8(0xffff0), rom[rom.length - 16]);
});

test("a small ROM is padded at the front so that its last byte is at the top", () => {
  const mem = new PhysMem(4 * 1024 * 1024);
  const rom = Uint8Array.from([0xea, 0x5b, 0xe0, 0x00, 0xf0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x99]);
  const m = mapBios(mem, rom);
  assert.equal(m.lowBase, 0xff000);
  assert.equal(mem.read8(0xffff0), 0xea);
  assert.equal(mem.read8(0xfffff), 0x99);
  assert.equal(mem.read8(0xfffffff0), 0xea);
  assert.equal(mem.read8(0xfffff000), 0xff, "padding");
});

test("empty and oversized ROMs are refused", () => {
  const mem = new PhysMem(4096 * 256);
  assert.throws(() => mapBios(mem, new Uint8Array(0)), /empty/);
  assert.throws(() => mapBios(mem, new Uint8Array(17 * 1024 * 1024)), /at most/);
});
