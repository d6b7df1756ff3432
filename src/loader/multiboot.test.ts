import { test } from "node:test";
import assert from "node:assert/strict";
import { PhysMem } from "../mem/PhysMem.ts";
import { CR0, Reg, SReg, Slot } from "../cpu/state.ts";
import { u32, u64 } from "./bytes.ts";
import { findMultibootHeader, loadMultiboot, MBI } from "./multiboot.ts";
import { FakeCpu, fakeElf, multibootHeader } from "./testkit.ts";

const MiB = 1024 * 1024;

test("the header is found only 32-bit aligned, with a valid checksum, in the first 8 KiB", () => {
  const img = new Uint8Array(16384);
  img.set(multibootHeader(0), 8192); // too late
  assert.equal(findMultibootHeader(img), null);
  img.set(multibootHeader(0), 102); // misaligned
  assert.equal(findMultibootHeader(img), null);
  const bad = multibootHeader(3);
  bad[8] = bad[8]! ^ 1; // checksum off by one
  img.set(bad, 200);
  assert.equal(findMultibootHeader(img), null);
  img.set(multibootHeader(3), 296);
  assert.equal(findMultibootHeader(img)?.offset, 296);
  assert.equal(findMultibootHeader(img)?.flags, 3);
});

test("an ELF multiboot kernel: segments at p_paddr, bss zeroed, info struct, modules, entry state", () => {
  const mem = new PhysMem(32 * MiB);
  mem.ram.fill(0xcc, 0x100000, 0x110000); // garbage where the bss goes
  const text = Uint8Array.from({ length: 300 }, (_, i) => (i * 5) & 0xff);
  const data = Uint8Array.from([1, 2, 3, 4]);
  const img = fakeElf(
    0x100010,
    [
      { paddr: 0x100000, vaddr: 0xc0100000, data: text },
      { paddr: 0x101000, data, memsz: 0x2000 },
    ],
    multibootHeader(0x3),
  );
  const cpu = new FakeCpu();
  const mod = Uint8Array.from({ length: 5000 }, (_, i) => (i * 3) & 0xff);
  const info = loadMultiboot(mem, cpu, {
    kernel: img,
    cmdline: "hello world",
    modules: [{ data: mod, string: "initrd.img" }],
  });
  assert.deepEqual(mem.readBytes(0x100000, 300), text);
  assert.deepEqual([...mem.readBytes(0x101000, 6)], [1, 2, 3, 4, 0, 0]);
  assert.ok(mem.readBytes(0x101004, 0x2000 - 4).every((b) => b === 0), "bss zeroed");

  const s = cpu.s;
  assert.equal(s.r32[Reg.EAX]! >>> 0, 0x2badb002);
  assert.equal(s.r32[Reg.EBX], info.infoAddr);
  assert.equal(s.i32[Slot.EIP], 0x100010);
  assert.equal(s.i32[Slot.CR0]! & CR0.PE, CR0.PE);
  assert.equal(s.segSel[SReg.CS], 0x10);
  assert.equal(s.segLimit[SReg.SS]! >>> 0, 0xffffffff);

  const mbi = mem.readBytes(info.infoAddr, 88);
  const flags = u32(mbi, 0);
  for (const bit of [MBI.MEM, MBI.CMDLINE, MBI.MODS, MBI.MMAP, MBI.LOADER_NAME]) assert.ok(flags & bit);
  assert.equal(u32(mbi, 4), 639);
  assert.equal(u32(mbi, 8), 31 * 1024);
  const str = (addr: number): string => {
    const b = mem.readBytes(addr, 64);
    return new TextDecoder().decode(b.subarray(0, b.indexOf(0)));
  };
  assert.equal(str(u32(mbi, 16)), "hello world");
  assert.equal(str(u32(mbi, 64)), "boxvm");
  // module: page aligned above the kernel (which ends at 0x103000)
  assert.equal(u32(mbi, 20), 1);
  const m = mem.readBytes(u32(mbi, 24), 16);
  assert.equal(u32(m, 0), 0x103000);
  assert.equal(u32(m, 4), 0x103000 + 5000);
  assert.equal(str(u32(m, 8)), "initrd.img");
  assert.deepEqual(mem.readBytes(0x103000, 5000), mod);
  // mmap: size field 20 before each entry, three entries
  assert.equal(u32(mbi, 44), 72);
  const mm = mem.readBytes(u32(mbi, 48), 72);
  assert.deepEqual([u32(mm, 0), u64(mm, 4), u64(mm, 12), u32(mm, 20)], [20, 0, 0x9fc00, 1]);
  assert.deepEqual([u32(mm, 48), u64(mm, 52), u64(mm, 60), u32(mm, 68)], [20, 0x100000, 31 * MiB, 1]);
});

test("the a.out kludge (flag 16): load_addr..load_end_addr from the file, bss to bss_end_addr", () => {
  // File: 0x40 bytes of code, then the header at file offset 0x40 = address 0x200040.
  const img = new Uint8Array(0x200);
  img.fill(0x90, 0, 0x40);
  img.set(
    multibootHeader(0x10000, { header: 0x200040, load: 0x200000, loadEnd: 0x200100, bssEnd: 0x200400, entry: 0x200004 }),
    0x40,
  );
  img.fill(0x77, 0x100); // past load_end_addr: must not be loaded
  const mem = new PhysMem(8 * MiB);
  mem.ram.fill(0xee, 0x200000, 0x201000);
  const cpu = new FakeCpu();
  loadMultiboot(mem, cpu, { kernel: img });
  assert.deepEqual(mem.readBytes(0x200000, 0x100), img.subarray(0, 0x100));
  assert.ok(mem.readBytes(0x200100, 0x300).every((b) => b === 0));
  assert.equal(mem.ram[0x200400], 0xee, "nothing past bss_end_addr");
  assert.equal(cpu.s.i32[Slot.EIP], 0x200004);
});

test("refusals name the reason", () => {
  const mem = new PhysMem(8 * MiB);
  assert.throws(() => loadMultiboot(mem, new FakeCpu(), { kernel: new Uint8Array(100) }), /No Multiboot header/);
  const req = new Uint8Array(64);
  req.set(multibootHeader(1 << 5));
  assert.throws(() => loadMultiboot(mem, new FakeCpu(), { kernel: req }), /requires features/);
  const notElf = new Uint8Array(64);
  notElf.set(multibootHeader(0));
  assert.throws(() => loadMultiboot(mem, new FakeCpu(), { kernel: notElf }), /not ELF/);
  const tooHigh = fakeElf(0x900000, [{ paddr: 0x900000, data: new Uint8Array(16) }], multibootHeader(0));
  assert.throws(() => loadMultiboot(mem, new FakeCpu(), { kernel: tooHigh }), /beyond the VM's RAM/);
  const low = fakeElf(0x8000, [{ paddr: 0x8000, data: new Uint8Array(16) }], multibootHeader(0));
  assert.throws(() => loadMultiboot(mem, new FakeCpu(), { kernel: low }), /overlaps the loader's area/);
});
