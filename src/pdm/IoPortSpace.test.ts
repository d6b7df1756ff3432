import { test } from "node:test";
import assert from "node:assert/strict";
import { IoPortSpace } from "./IoPortSpace.ts";

test("unmapped ports read all ones at every width and count misuse", () => {
  const io = new IoPortSpace();
  assert.equal(io.read(0x1234, 1), 0xff);
  assert.equal(io.read(0x1234, 2), 0xffff);
  assert.equal(io.read(0x1234, 4), 0xffffffff);
  io.write(0x1234, 5, 1);
  assert.equal(io.unassignedReads, 1 + 2 + 4);
  assert.equal(io.unassignedWrites, 1);
});

test("a byte-only handler sees word and dword accesses split into bytes", () => {
  const io = new IoPortSpace();
  const regs = new Uint8Array(4);
  const log: string[] = [];
  io.map(
    0x70,
    4,
    {
      read: (off, size) => {
        log.push(`r${String(size)}:${String(off)}`);
        return regs[off]!;
      },
      write: (off, v, size) => {
        log.push(`w${String(size)}:${String(off)}`);
        regs[off] = v;
      },
    },
    { sizes: [1], name: "test" },
  );
  io.write(0x70, 0x44332211, 4);
  assert.deepEqual([...regs], [0x11, 0x22, 0x33, 0x44]);
  assert.equal(io.read(0x71, 2), 0x3322);
  assert.deepEqual(log.slice(0, 4), ["w1:0", "w1:1", "w1:2", "w1:3"]);
  // A dword read that runs past the range's end: the part outside reads all ones.
  assert.equal(io.read(0x72, 4), 0xffff4433);
});

test("declared widths pass through whole; overlapping maps are refused", () => {
  const io = new IoPortSpace();
  io.map(0xcf8, 4, { read: (_o, size) => (size === 4 ? 0x80000000 : 0), write: () => undefined }, { sizes: [4], name: "pci" });
  assert.equal(io.read(0xcf8, 4), 0x80000000);
  assert.throws(() => io.map(0xcfa, 2, { read: () => 0, write: () => undefined }, { name: "other" }), /conflict.*other.*pci/);
  io.unmap(0xcf8);
  assert.equal(io.read(0xcf8, 4), 0xffffffff);
});
