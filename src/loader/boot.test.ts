import { test } from "node:test";
import assert from "node:assert/strict";
import { cfgmFromObject } from "../cfgm/CfgmNode.ts";
import { PhysMem } from "../mem/PhysMem.ts";
import { VBoxError } from "../vm/err.ts";
import { Reg, Slot } from "../cpu/state.ts";
import { bootConfigKeys, bootMachine, detectKernelFormat } from "./boot.ts";
import { BP, LINUX_LAYOUT } from "./bzimage.ts";
import { FakeCpu, fakeBzImage, fakeElf, multibootHeader } from "./testkit.ts";

const MiB = 1024 * 1024;

function files(map: Record<string, Uint8Array>): (p: string) => Uint8Array {
  return (p) => {
    const f = map[p];
    if (!f) throw new Error(`Cannot read ${p}`);
    return f;
  };
}

test("no /Boot node: nothing is loaded and the CPU is untouched", () => {
  const cpu = new FakeCpu();
  const r = bootMachine({ cfg: cfgmFromObject({}), mem: new PhysMem(4 * MiB), cpu });
  assert.equal(r.kind, "none");
  assert.equal(cpu.modeChangedCalls, 0);
});

test("/Boot with a bzImage, initrd and command line boots Linux", () => {
  const cpu = new FakeCpu();
  const mem = new PhysMem(64 * MiB);
  const cfg = cfgmFromObject({ Boot: { Kernel: "/k", Initrd: "/i", Cmdline: "console=ttyS0" } });
  const lines: string[] = [];
  const r = bootMachine({
    cfg,
    mem,
    cpu,
    readFile: files({ "/k": fakeBzImage(), "/i": new Uint8Array(4096).fill(7) }),
    log: (l) => lines.push(l),
  });
  assert.equal(r.kind, "linux");
  assert.equal(cpu.s.r32[Reg.ESI], LINUX_LAYOUT.zeroPage);
  assert.equal(cpu.s.i32[Slot.EIP], 0x100000);
  assert.match(lines.join("\n"), /protocol 2\.15/);
});

test("/Boot with a multiboot ELF boots it; KernelFormat forces a format", () => {
  const elf = fakeElf(0x100000, [{ paddr: 0x100000, data: new Uint8Array(64) }], multibootHeader(2));
  assert.equal(detectKernelFormat(elf), "multiboot");
  assert.equal(detectKernelFormat(fakeBzImage()), "linux");
  assert.throws(() => detectKernelFormat(new Uint8Array(9000)), /neither/);
  const cpu = new FakeCpu();
  const r = bootMachine({
    cfg: cfgmFromObject({ Boot: { Kernel: "/mb" } }),
    mem: new PhysMem(8 * MiB),
    cpu,
    readFile: files({ "/mb": elf }),
  });
  assert.equal(r.kind, "multiboot");
  assert.equal(cpu.s.r32[Reg.EAX]! >>> 0, 0x2badb002);
  assert.throws(
    () =>
      bootMachine({
        cfg: cfgmFromObject({ Boot: { Kernel: "/mb", KernelFormat: "linux" } }),
        mem: new PhysMem(8 * MiB),
        cpu: new FakeCpu(),
        readFile: files({ "/mb": elf }),
      }),
    /HdrS/,
  );
});

test("/Boot with only a BIOS maps it and leaves the CPU at reset", () => {
  const cpu = new FakeCpu();
  const mem = new PhysMem(4 * MiB);
  const rom = new Uint8Array(65536).fill(0xf4);
  const r = bootMachine({
    cfg: cfgmFromObject({ Boot: { Bios: "/bios" } }),
    mem,
    cpu,
    readFile: files({ "/bios": rom }),
  });
  assert.equal(r.kind, "bios");
  assert.equal(cpu.modeChangedCalls, 0);
  assert.equal(mem.read8(0xffff0), 0xf4);
});

test("unknown keys and bad values are refused with their path", () => {
  const ctx = { mem: new PhysMem(4 * MiB), cpu: new FakeCpu(), readFile: files({}) };
  assert.throws(() => bootMachine({ ...ctx, cfg: cfgmFromObject({ Boot: { Kernal: "/k" } }) }), /\/Boot\/Kernal/);
  assert.throws(
    () => bootMachine({ ...ctx, cfg: cfgmFromObject({ Boot: { Kernel: "/k", KernelFormat: "pe" } }) }),
    /KernelFormat/,
  );
  assert.throws(() => bootMachine({ ...ctx, cfg: cfgmFromObject({ Boot: { Initrd: "/i" } }) }), /without/);
  assert.throws(
    () => bootMachine({ ...ctx, cfg: cfgmFromObject({ Boot: { Kernel: "/nope" } }) }),
    /Cannot read \/nope/,
  );
  assert.deepEqual([...bootConfigKeys].sort(), [
    "Bios",
    "Cmdline",
    "HostDecompress",
    "Initrd",
    "Kernel",
    "KernelFormat",
    "RngSeed",
  ]);
});

test("failures are VBoxErrors with a status: file not found, not bootable, not enough memory", () => {
  const code = (fn: () => unknown): string => {
    try {
      fn();
    } catch (e) {
      return e instanceof VBoxError ? e.code : `not a VBoxError: ${String(e)}`;
    }
    return "no error";
  };
  const mem = new PhysMem(16 * MiB);
  assert.equal(
    code(() =>
      bootMachine({ cfg: cfgmFromObject({ Boot: { Kernel: "/nonexistent/boxvm-kernel" } }), mem, cpu: new FakeCpu() }),
    ),
    "VERR_FILE_NOT_FOUND",
  );
  const ctx = { mem, cpu: new FakeCpu() };
  assert.equal(
    code(() =>
      bootMachine({
        ...ctx,
        cfg: cfgmFromObject({ Boot: { Kernel: "/k" } }),
        readFile: files({ "/k": new Uint8Array(100) }),
      }),
    ),
    "VERR_NOT_SUPPORTED",
  );
  assert.equal(
    code(() =>
      bootMachine({
        ...ctx,
        cfg: cfgmFromObject({ Boot: { Kernel: "/k" } }),
        readFile: files({ "/k": fakeBzImage() }),
      }),
    ),
    "VERR_NO_MEMORY",
  );
});

test("/Boot/RngSeed: a fresh host seed per boot by default, none with 0", () => {
  const seedOf = (boot: Record<string, unknown>): Uint8Array | null => {
    const mem = new PhysMem(64 * MiB);
    bootMachine({
      cfg: cfgmFromObject({ Boot: { Kernel: "/k", ...boot } }),
      mem,
      cpu: new FakeCpu(),
      readFile: files({ "/k": fakeBzImage() }),
    });
    const ptr =
      mem.ram[LINUX_LAYOUT.zeroPage + BP.SETUP_DATA]! |
      (mem.ram[LINUX_LAYOUT.zeroPage + BP.SETUP_DATA + 1]! << 8) |
      (mem.ram[LINUX_LAYOUT.zeroPage + BP.SETUP_DATA + 2]! << 16);
    return ptr === 0 ? null : mem.ram.slice(ptr + 16, ptr + 48);
  };
  const a = seedOf({});
  const b = seedOf({ RngSeed: 1 });
  assert.ok(a && b);
  assert.notDeepEqual(a, b, "each boot gets its own seed");
  assert.ok(a.some((x) => x !== 0));
  assert.equal(seedOf({ RngSeed: 0 }), null);
});
