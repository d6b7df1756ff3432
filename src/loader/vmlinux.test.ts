import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { cfgmFromObject } from "../cfgm/CfgmNode.ts";
import { CR0, F, Reg, SReg, Slot } from "../cpu/state.ts";
import { PhysMem } from "../mem/PhysMem.ts";
import { bootMachine } from "./boot.ts";
import { BP, LINUX_LAYOUT, loadLinux } from "./bzimage.ts";
import { ATTR_CODE32, ATTR_DATA32 } from "./pmode.ts";
import { FakeCpu, fakeBzImage, fakeElf, xzStored } from "./testkit.ts";
import { findPayload, payloadFormat } from "./vmlinux.ts";
import { u32 } from "./bytes.ts";
import { findDebianGuest } from "../cli/commands/image.ts";

const MiB = 1024 * 1024;

/** A kernel ELF like i386 vmlinux: text at 16 MiB (the entry), data + BSS after it, relocations after the ELF. */
function fakeVmlinux(): { elf: Uint8Array; text: Uint8Array; data: Uint8Array } {
  const text = Uint8Array.from({ length: 10000 }, (_, i) => (i * 5 + 1) & 0xff);
  const data = Uint8Array.from({ length: 3000 }, (_, i) => (i * 3 + 7) & 0xff);
  const elf = fakeElf(0x1000000, [
    { paddr: 0x1000000, vaddr: 0xc1000000, data: text },
    { paddr: 0x1100000, vaddr: 0xc1100000, data, memsz: 0x5000 },
  ]);
  // vmlinux.bin is followed by the relocation table in a 32-bit relocatable kernel's payload
  const withRelocs = new Uint8Array(elf.length + 64).fill(0xee);
  withRelocs.set(elf);
  return { elf: withRelocs, text, data };
}

function xzKernel(o: { initSize?: number } = {}): { img: Uint8Array; text: Uint8Array; data: Uint8Array } {
  const k = fakeVmlinux();
  const img = fakeBzImage({ payload: xzStored(k.elf, true), initSize: o.initSize ?? 0x200000 });
  return { img, text: k.text, data: k.data };
}

test("findPayload and payloadFormat read payload_offset/payload_length and the magic", () => {
  const { img } = xzKernel();
  const p = findPayload(img, 0x20f, 5 * 512, img.length - 5 * 512);
  assert.equal(p?.format, "xz");
  assert.equal(findPayload(img, 0x207, 5 * 512, img.length - 5 * 512), null, "no payload fields before 2.08");
  assert.equal(payloadFormat(Uint8Array.of(0x1f, 0x8b, 8)), "gzip");
  assert.equal(payloadFormat(Uint8Array.of(0x28, 0xb5, 0x2f, 0xfd)), "zstd");
  assert.equal(payloadFormat(Uint8Array.of(1, 2, 3, 4)), "unknown");
});

test("an XZ payload is decompressed on the host: segments at p_paddr, BSS cleared, entry at e_entry", () => {
  const { img, text, data } = xzKernel();
  const mem = new PhysMem(64 * MiB);
  // junk where the kernel goes, as after a reset
  mem.writeBytes(0x1100000, new Uint8Array(0x6000).fill(0xcc));
  const cpu = new FakeCpu();
  const initrd = new Uint8Array(8192).fill(3);
  const info = loadLinux(mem, cpu, { kernel: img, initrd, cmdline: "console=ttyS0" });
  assert.equal(info.payload.format, "xz");
  assert.equal(info.payload.hostDecompressed, true);
  assert.equal(info.payload.error, undefined);
  assert.deepEqual(mem.readBytes(0x1000000, text.length), text);
  assert.deepEqual(mem.readBytes(0x1100000, data.length), data);
  assert.ok(
    mem.readBytes(0x1100000 + data.length, 0x5000 - data.length).every((b) => b === 0),
    "BSS zeroed",
  );
  assert.equal(mem.read8(0x1105000), 0xcc, "nothing written past p_memsz");
  assert.equal(mem.read8(0x100000), 0, "the compressed kernel is not loaded");
  assert.deepEqual(info.segments, [
    { start: 0x1000000, end: 0x1000000 + text.length },
    { start: 0x1100000, end: 0x1105000 },
  ]);
  // CPU: flat 32-bit protected mode at the ELF entry, ESI = boot_params, interrupts off
  const s = cpu.s;
  assert.equal(s.i32[Slot.EIP], 0x1000000);
  assert.equal(info.entry, 0x1000000);
  assert.equal(s.r32[Reg.ESI], LINUX_LAYOUT.zeroPage);
  assert.equal(s.r32[Reg.EBX], 0);
  assert.equal(s.r32[Reg.EBP], 0);
  assert.equal(s.r32[Reg.EDI], 0);
  assert.equal(s.i32[Slot.EFLAGS]! & F.IF, 0);
  assert.equal(s.i32[Slot.CR0]! & (CR0.PE | CR0.PG), CR0.PE);
  assert.equal(s.segSel[SReg.CS], 0x10);
  assert.equal(s.segAttr[SReg.CS], ATTR_CODE32);
  for (const seg of [SReg.DS, SReg.ES, SReg.SS, SReg.FS, SReg.GS]) {
    assert.equal(s.segSel[seg], 0x18);
    assert.equal(s.segAttr[seg], ATTR_DATA32);
  }
  // the initrd stays above what the kernel needs
  assert.ok(info.initrdAddr >= info.runtime.end);
  assert.deepEqual(mem.readBytes(info.initrdAddr, 8192), initrd);
});

test("boot_params, command line and initrd are byte for byte the same with and without host decompression", () => {
  const { img } = xzKernel();
  const initrd = new Uint8Array(20000).fill(9);
  const run = (hostDecompress: boolean): { zp: Uint8Array; cl: Uint8Array; initrdAddr: number; eip: number } => {
    const mem = new PhysMem(64 * MiB);
    const cpu = new FakeCpu();
    const info = loadLinux(mem, cpu, {
      kernel: img,
      initrd,
      cmdline: "console=ttyS0 cryptomgr.notests=1",
      hostDecompress,
    });
    assert.equal(info.payload.hostDecompressed, hostDecompress);
    return {
      zp: mem.readBytes(LINUX_LAYOUT.zeroPage, 4096),
      cl: mem.readBytes(LINUX_LAYOUT.cmdline, 64),
      initrdAddr: info.initrdAddr,
      eip: cpu.s.i32[Slot.EIP]!,
    };
  };
  const host = run(true);
  const guest = run(false);
  assert.deepEqual(host.zp, guest.zp);
  assert.deepEqual(host.cl, guest.cl);
  assert.equal(host.initrdAddr, guest.initrdAddr);
  assert.equal(u32(host.zp, BP.CODE32_START), 0x100000);
  assert.equal(host.eip, 0x1000000);
  assert.equal(guest.eip, 0x100000, "the guest path enters the compressed kernel's startup_32");
});

test("other payload formats and broken XZ payloads keep the in-guest decompressor", () => {
  const gz = fakeBzImage({ payload: Uint8Array.of(0x1f, 0x8b, 8, 0, 1, 2, 3, 4, 5, 6, 7, 8) });
  const a = loadLinux(new PhysMem(64 * MiB), new FakeCpu(), { kernel: gz });
  assert.deepEqual(a.payload, { format: "gzip", hostDecompressed: false });
  assert.equal(a.entry, 0x100000);

  const { img } = xzKernel();
  const broken = img.slice();
  broken[broken.length - 40]! ^= 0xff; // inside the compressed stream's tail (index/footer)
  const cpu = new FakeCpu();
  const mem = new PhysMem(64 * MiB);
  const b = loadLinux(mem, cpu, { kernel: broken });
  assert.equal(b.payload.hostDecompressed, false);
  assert.match(b.payload.error ?? "", /^XZ: /);
  assert.equal(cpu.s.i32[Slot.EIP], 0x100000);
  assert.equal(mem.read8(0x100000 + 64), 0xfd, "the compressed kernel is at 1 MiB");

  // a payload that decompresses to something that is not a kernel ELF
  const notElf = fakeBzImage({ payload: xzStored(new Uint8Array(100).fill(1), true) });
  const c = loadLinux(new PhysMem(64 * MiB), new FakeCpu(), { kernel: notElf });
  assert.match(c.payload.error ?? "", /ELF/);
  // a wrong size trailer
  const wrong = xzStored(fakeVmlinux().elf, true);
  wrong[wrong.length - 1] = 0x7f;
  const d = loadLinux(new PhysMem(64 * MiB), new FakeCpu(), { kernel: fakeBzImage({ payload: wrong }) });
  assert.match(d.payload.error ?? "", /bzImage says/);
});

test("segments must lie in usable RAM above 1 MiB and below the initrd", () => {
  const low = fakeElf(0x80000, [{ paddr: 0x80000, data: new Uint8Array(100) }]);
  assert.throws(
    () =>
      loadLinux(new PhysMem(64 * MiB), new FakeCpu(), {
        kernel: fakeBzImage({ payload: xzStored(low, true), initSize: 0x1000 }),
      }),
    /below 1 MiB/,
  );
  // a segment high in RAM that the initrd placement (which follows init_size) would overlap
  const high = fakeElf(0x1000000, [
    { paddr: 0x1000000, data: new Uint8Array(100) },
    { paddr: 0x3ff0000, data: new Uint8Array(100), memsz: 0x8000 },
  ]);
  const kernel = fakeBzImage({ payload: xzStored(high, true), initSize: 0x1000 });
  assert.throws(
    () => loadLinux(new PhysMem(64 * MiB), new FakeCpu(), { kernel, initrd: new Uint8Array(64 * 1024) }),
    /Not enough RAM for the initrd|overlaps the initrd/,
  );
  assert.throws(() => loadLinux(new PhysMem(32 * MiB), new FakeCpu(), { kernel }), /Not enough RAM for this kernel/);
});

test("/Boot/HostDecompress: default on, 0 keeps the guest's decompressor, bad values are refused; failures warn", () => {
  const { img } = xzKernel();
  const files = (p: string): Uint8Array => {
    if (p === "/k") return img;
    throw new Error(`Cannot read ${p}`);
  };
  const boot = (
    extra: Record<string, unknown>,
    warn?: (l: string) => void,
    kernel = files,
  ): { eip: number; lines: string[] } => {
    const cpu = new FakeCpu();
    const lines: string[] = [];
    bootMachine({
      cfg: cfgmFromObject({ Boot: { Kernel: "/k", ...extra } }),
      mem: new PhysMem(64 * MiB),
      cpu,
      readFile: kernel,
      log: (l) => lines.push(l),
      warn: warn ?? ((l) => assert.fail(`unexpected warning ${l}`)),
    });
    return { eip: cpu.s.i32[Slot.EIP]!, lines };
  };
  const d = boot({});
  assert.equal(d.eip, 0x1000000);
  assert.match(d.lines.join("\n"), /decompressed on the host \(XZ/);
  assert.equal(boot({ HostDecompress: true }).eip, 0x1000000);
  const g = boot({ HostDecompress: false });
  assert.equal(g.eip, 0x100000);
  assert.match(g.lines.join("\n"), /xz payload, decompressed in the guest/);
  assert.throws(() => boot({ HostDecompress: 2 }), /HostDecompress/);
  assert.throws(() => boot({ HostDecompress: "yes" }), /HostDecompress/);
  const broken = img.slice();
  broken[broken.length - 40]! ^= 0xff;
  const warnings: string[] = [];
  const b = boot(
    {},
    (l) => warnings.push(l),
    () => broken,
  );
  assert.equal(b.eip, 0x100000);
  assert.equal(warnings.length, 1);
  assert.match(
    warnings[0]!,
    /could not decompress the kernel's XZ payload on the host \(XZ: .*\); the kernel will decompress itself in the guest/,
  );
});

test("Debian's 686 kernel loads decompressed: entry phys_startup_32 at 16 MiB, initrd above it (skipped without the cache)", (t) => {
  const path = findDebianGuest()?.kernel ?? null;
  if (!path) {
    t.skip("no Debian kernel in the boxvm cache");
    return;
  }
  const img = new Uint8Array(readFileSync(path));
  const mem = new PhysMem(128 * MiB);
  const cpu = new FakeCpu();
  const info = loadLinux(mem, cpu, { kernel: img, initrd: new Uint8Array(1 * MiB), cmdline: "console=ttyS0" });
  assert.equal(info.payload.format, "xz");
  assert.equal(info.payload.hostDecompressed, true, info.payload.error);
  assert.equal(info.entry, 0x1000000);
  assert.equal(cpu.s.i32[Slot.EIP], 0x1000000);
  const end = Math.max(...info.segments!.map((r) => r.end));
  assert.ok(end <= info.runtime.end, "the segments fit in init_size");
  assert.ok(info.initrdAddr >= end);
  assert.notEqual(mem.read32(0x1000000), 0, "code at phys_startup_32");
});
