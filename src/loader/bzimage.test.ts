import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { PhysMem } from "../mem/PhysMem.ts";
import { CR0, F, Reg, SReg, Slot } from "../cpu/state.ts";
import { u16, u32, u64, u8 } from "./bytes.ts";
import { BP, LINUX_LAYOUT, SETUP_RNG_SEED, loadLinux, parseSetupHeader, runtimeRange } from "./bzimage.ts";
import { ATTR_CODE32, ATTR_DATA32 } from "./pmode.ts";
import { FakeCpu, fakeBzImage } from "./testkit.ts";
import { findDebianGuest } from "../cli/commands/image.ts";

const MiB = 1024 * 1024;

test("parseSetupHeader reads the fields of a 2.15 header", () => {
  const img = fakeBzImage({ setupSects: 0, kernel: new Uint8Array(100) });
  const h = parseSetupHeader(img);
  assert.equal(h.version, 0x20f);
  assert.equal(h.setupSects, 4, "setup_sects 0 means 4");
  assert.equal(h.kernelOffset, 5 * 512);
  assert.equal(h.kernelSize, 112, "syssize paragraphs");
  assert.equal(h.headerEnd, 0x268);
  assert.equal(h.prefAddress, 0x1000000);
  assert.equal(h.initSize, 0x100c000);
  assert.equal(h.cmdlineSize, 0x7ff);
  assert.equal(h.relocatable, true);
});

test("parseSetupHeader refuses what it cannot boot, saying why", () => {
  assert.throws(() => parseSetupHeader(new Uint8Array(4096)), /HdrS/);
  assert.throws(() => parseSetupHeader(fakeBzImage({ version: 0x204 })), /2\.04 is too old/);
  assert.throws(() => parseSetupHeader(fakeBzImage({ loadflags: 0 })), /LOADED_HIGH/);
  const truncated = fakeBzImage().subarray(0, 5 * 512 + 100);
  assert.throws(() => parseSetupHeader(truncated), /Truncated/);
});

test("loadLinux builds boot_params, places kernel, initrd, command line and enters 32-bit mode", () => {
  const mem = new PhysMem(64 * MiB);
  const cpu = new FakeCpu();
  const kernel = Uint8Array.from({ length: 8192 }, (_, i) => (i * 13 + 1) & 0xff);
  const img = fakeBzImage({ kernel });
  const initrd = Uint8Array.from({ length: 10000 }, (_, i) => i & 0xff);
  const info = loadLinux(mem, cpu, { kernel: img, initrd, cmdline: "console=ttyS0 quiet" });

  // kernel at 1 MiB
  assert.deepEqual(mem.readBytes(0x100000, kernel.length), kernel);
  // initrd page aligned, as high as RAM allows, intact
  assert.equal(info.initrdAddr, Math.floor((64 * MiB - 10000) / 4096) * 4096);
  assert.ok(info.initrdAddr + 10000 <= 64 * MiB);
  assert.deepEqual(mem.readBytes(info.initrdAddr, 10000), initrd);

  const zp = mem.readBytes(LINUX_LAYOUT.zeroPage, 4096);
  // header copied up to 0x202 + byte at 0x201, and not beyond
  assert.equal(u32(zp, BP.HEADER), 0x53726448);
  assert.equal(u8(zp, 0x267), 0xa5);
  assert.equal(u8(zp, 0x268), 0);
  assert.equal(u8(zp, BP.SENTINEL), 0, "sentinel stays zero");
  assert.equal(u8(zp, BP.TYPE_OF_LOADER), 0xff);
  assert.equal(u8(zp, BP.LOADFLAGS) & 0x01, 0x01, "LOADED_HIGH kept");
  assert.equal(u8(zp, BP.LOADFLAGS) & 0x80, 0x80, "CAN_USE_HEAP");
  assert.equal(u16(zp, BP.HEAP_END_PTR), 0xde00);
  assert.equal(u32(zp, BP.CMD_LINE_PTR), LINUX_LAYOUT.cmdline);
  assert.equal(u32(zp, BP.RAMDISK_IMAGE), info.initrdAddr);
  assert.equal(u32(zp, BP.RAMDISK_SIZE), 10000);
  assert.equal(u32(zp, BP.CODE32_START), 0x100000);
  assert.equal(u8(zp, BP.ORIG_VIDEO_ISVGA), 0);
  assert.equal(u32(zp, BP.ALT_MEM_K), 63 * 1024);
  // e820
  assert.equal(u8(zp, BP.E820_ENTRIES), 3);
  const e = (i: number): [number, number, number] => [
    u64(zp, BP.E820_TABLE + i * 20),
    u64(zp, BP.E820_TABLE + i * 20 + 8),
    u32(zp, BP.E820_TABLE + i * 20 + 16),
  ];
  assert.deepEqual(e(0), [0, 0x9fc00, 1]);
  assert.deepEqual(e(1), [0x9fc00, 0x100000 - 0x9fc00, 2]);
  assert.deepEqual(e(2), [0x100000, 63 * MiB, 1]);
  assert.deepEqual(e(3), [0, 0, 0]);
  // command line, NUL terminated
  const cl = mem.readBytes(LINUX_LAYOUT.cmdline, 20);
  assert.equal(new TextDecoder().decode(cl.subarray(0, 19)), "console=ttyS0 quiet");
  assert.equal(cl[19], 0);

  // CPU: 32-bit protocol entry state
  const s = cpu.s;
  assert.equal(s.i32[Slot.EIP], 0x100000);
  assert.equal(s.r32[Reg.ESI], LINUX_LAYOUT.zeroPage);
  assert.equal(s.r32[Reg.EBP], 0);
  assert.equal(s.r32[Reg.EDI], 0);
  assert.equal(s.r32[Reg.EBX], 0);
  assert.equal(s.i32[Slot.EFLAGS]! & F.IF, 0, "interrupts off");
  assert.equal(s.i32[Slot.CR0]! & CR0.PE, CR0.PE);
  assert.equal(s.i32[Slot.CR0]! & CR0.PG, 0);
  assert.equal(s.segSel[SReg.CS], 0x10);
  assert.equal(s.segAttr[SReg.CS], ATTR_CODE32);
  for (const seg of [SReg.DS, SReg.ES, SReg.SS]) {
    assert.equal(s.segSel[seg], 0x18);
    assert.equal(s.segBase[seg], 0);
    assert.equal(s.segLimit[seg]! >>> 0, 0xffffffff);
    assert.equal(s.segAttr[seg], ATTR_DATA32);
  }
  assert.equal(s.i32[Slot.CPL], 0);
  assert.equal(cpu.modeChangedCalls, 1);
  // The GDT the GDTR points at has the flat descriptors at 0x10 and 0x18.
  const gdt = mem.readBytes(s.i32[Slot.GDTR_BASE]!, 32);
  assert.equal(s.i32[Slot.GDTR_LIMIT], 31);
  assert.deepEqual([...gdt.subarray(0x10, 0x18)], [0xff, 0xff, 0, 0, 0, 0x9b, 0xcf, 0]);
  assert.deepEqual([...gdt.subarray(0x18, 0x20)], [0xff, 0xff, 0, 0, 0, 0x93, 0xcf, 0]);
});

test("the initrd respects initrd_addr_max", () => {
  const mem = new PhysMem(128 * MiB);
  const info = loadLinux(mem, new FakeCpu(), {
    kernel: fakeBzImage({
      initrdAddrMax: 0x37ffffff,
      initSize: 0x10000,
      prefAddress: 0x100000,
      kernelAlignment: 0x100000,
    }),
    initrd: new Uint8Array(5000),
  });
  assert.ok(info.initrdAddr + 5000 <= 0x38000000);
  assert.equal(info.initrdAddr % 4096, 0);
  const low = loadLinux(new PhysMem(128 * MiB), new FakeCpu(), {
    kernel: fakeBzImage({
      initrdAddrMax: 0x3fffff,
      initSize: 0x10000,
      prefAddress: 0x100000,
      kernelAlignment: 0x100000,
    }),
    initrd: new Uint8Array(5000),
  });
  assert.equal(low.initrdAddr, 0x400000 - 8192);
});

test("loadLinux explains too little RAM and too long command lines", () => {
  assert.throws(
    () => loadLinux(new PhysMem(16 * MiB), new FakeCpu(), { kernel: fakeBzImage() }),
    /Not enough RAM for this kernel/,
  );
  assert.throws(
    () =>
      loadLinux(new PhysMem(33 * MiB), new FakeCpu(), {
        kernel: fakeBzImage(),
        initrd: new Uint8Array(2 * MiB),
      }),
    /Not enough RAM for the initrd/,
  );
  assert.throws(
    () =>
      loadLinux(new PhysMem(64 * MiB), new FakeCpu(), {
        kernel: fakeBzImage({ cmdlineSize: 10 }),
        cmdline: "x".repeat(11),
      }),
    /11 bytes; this kernel accepts 10/,
  );
});

test("runtimeRange: relocatable kernels run at their aligned load address, not below pref_address", () => {
  const h = parseSetupHeader(fakeBzImage());
  assert.deepEqual(runtimeRange(h, 0x100000), { start: 0x1000000, end: 0x1000000 + 0x100c000 });
  assert.deepEqual(runtimeRange(h, 0x1800000), { start: 0x2000000, end: 0x2000000 + 0x100c000 });
  const fixed = parseSetupHeader(fakeBzImage({ relocatable: false, prefAddress: 0x400000 }));
  assert.equal(runtimeRange(fixed, 0x100000).start, 0x400000);
});

test("Debian's 686 kernel: header and load (skipped until `boxvm image fetch debian` ran)", (t) => {
  const path = findDebianGuest()?.kernel ?? null;
  if (!path) {
    t.skip("no Debian kernel in the boxvm cache");
    return;
  }
  const img = new Uint8Array(readFileSync(path));
  const h = parseSetupHeader(img);
  assert.ok(h.version >= 0x20f, `protocol ${h.version.toString(16)}`);
  assert.equal(h.kernelOffset + h.kernelSize <= img.length, true);
  const mem = new PhysMem(128 * MiB);
  const cpu = new FakeCpu();
  // the compressed kernel at 1 MiB, as for the in-guest decompressor (vmlinux.test.ts: host path)
  const info = loadLinux(mem, cpu, {
    kernel: img,
    initrd: new Uint8Array(1 * MiB),
    cmdline: "console=ttyS0",
    hostDecompress: false,
  });
  assert.deepEqual(mem.readBytes(0x100000, 64), img.subarray(h.kernelOffset, h.kernelOffset + 64));
  assert.ok(info.initrdAddr >= info.runtime.end);
});

test("an RNG seed goes to the kernel as a SETUP_RNG_SEED setup_data entry (protocol 2.09+ only)", () => {
  const seed = Uint8Array.from({ length: 32 }, (_, i) => (i * 37 + 11) & 0xff);
  const opts = { initSize: 0x10000, prefAddress: 0x100000, kernelAlignment: 0x100000 };
  const mem = new PhysMem(64 * MiB);
  loadLinux(mem, new FakeCpu(), { kernel: fakeBzImage(opts), rngSeed: seed });
  const zp = LINUX_LAYOUT.zeroPage;
  const sd = LINUX_LAYOUT.setupData;
  assert.equal(u64(mem.ram, zp + BP.SETUP_DATA), sd);
  assert.equal(u64(mem.ram, sd), 0, "the last entry of the list");
  assert.equal(u32(mem.ram, sd + 8), SETUP_RNG_SEED);
  assert.equal(u32(mem.ram, sd + 12), 32);
  assert.deepEqual(mem.ram.subarray(sd + 16, sd + 48), seed);
  // below e820's first RAM range's end and clear of the command line and zero page
  assert.ok(sd >= LINUX_LAYOUT.cmdline + 0x800 && sd + 48 <= LINUX_LAYOUT.stack - 0x1000);

  const none = new PhysMem(64 * MiB);
  loadLinux(none, new FakeCpu(), { kernel: fakeBzImage(opts) });
  assert.equal(u64(none.ram, zp + BP.SETUP_DATA), 0, "no seed given: no setup_data");
  const old = new PhysMem(64 * MiB);
  loadLinux(old, new FakeCpu(), { kernel: fakeBzImage({ ...opts, version: 0x208 }), rngSeed: seed });
  assert.equal(u64(old.ram, zp + BP.SETUP_DATA), 0, "2.08 has no setup_data field");
  assert.equal(u32(old.ram, sd + 8), 0);
});
