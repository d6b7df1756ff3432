import { test } from "node:test";
import assert from "node:assert/strict";
import { TestCpu } from "./sys.testkit.ts";
import { CR0, CR4, F, SReg, Slot, Vec } from "./state.ts";
import {
  CPUID_FEATURES,
  clts,
  cpuid,
  ioPermitted,
  lmsw,
  movFromCr,
  movFromDr,
  movToCr,
  movToDr,
  rdmsr,
  rdtsc,
  sysenter,
  sysexit,
  wrmsr,
} from "./sys.ts";

function str(...regs: number[]): string {
  return String.fromCharCode(...regs.flatMap((r) => [r & 0xff, (r >>> 8) & 0xff, (r >>> 16) & 0xff, r >>> 24]));
}

test("CPUID: GenuineIntel, family 6 model 3, the feature bits (VME included), unknown leaves = highest basic leaf", () => {
  const t = new TestCpu();
  t.r32[0] = 0;
  cpuid(t.cpu);
  assert.equal(t.r32[0], 2);
  assert.equal(str(t.r32[3]!, t.r32[2]!, t.r32[1]!), "GenuineIntel");
  t.r32[0] = 1;
  cpuid(t.cpu);
  assert.equal((t.r32[0]! >>> 8) & 0xf, 6, "family");
  assert.equal((t.r32[0]! >>> 4) & 0xf, 3, "model");
  const names = ["FPU", "VME", "DE", "PSE", "TSC", "MSR", "PAE", "MCE", "CX8", "APIC", "", "SEP", "MTRR", "PGE", "MCA", "CMOV"];
  const have = names.filter((n, i) => n !== "" && (t.r32[2]! & (1 << i)) !== 0);
  assert.deepEqual(have, ["FPU", "VME", "DE", "PSE", "TSC", "MSR", "CX8", "SEP", "PGE", "CMOV"]);
  assert.equal(t.r32[2], CPUID_FEATURES);
  assert.equal(t.r32[1], 0);
  t.r32[0] = 2;
  cpuid(t.cpu);
  const leaf2 = [t.r32[0], t.r32[3], t.r32[1], t.r32[2]];
  t.r32[0] = 0x80000000 | 0;
  cpuid(t.cpu);
  assert.deepEqual([t.r32[0], t.r32[3], t.r32[1], t.r32[2]], leaf2);
  assert.equal(t.r32[0]! & 0xff, 1, "leaf 2 AL = 1 iteration");
});

test("MSRs: SYSENTER round trip, APIC base held, unknown → #GP(0), CPL 3 → #GP(0)", () => {
  const t = new TestCpu();
  for (const [msr, v] of [
    [0x174, 0x10],
    [0x175, 0xc0001000 | 0],
    [0x176, 0xc0100000 | 0],
    [0x1b, 0xfee00900 | 0],
  ] as const) {
    t.r32[1] = msr;
    t.r32[0] = v;
    t.r32[2] = 0;
    wrmsr(t.cpu);
    t.r32[0] = 0;
    t.r32[2] = -1;
    rdmsr(t.cpu);
    assert.equal(t.takeFault(), null);
    assert.equal(t.r32[0], v, `MSR ${msr.toString(16)}`);
    assert.equal(t.r32[2], 0);
  }
  t.r32[1] = 0x1a0;
  rdmsr(t.cpu);
  assert.deepEqual(t.takeFault(), [Vec.GP, 0]);
  wrmsr(t.cpu);
  assert.deepEqual(t.takeFault(), [Vec.GP, 0]);
  t.i32[Slot.CR0] = 1;
  t.modeChanged();
  t.i32[Slot.CPL] = 3;
  t.r32[1] = 0x174;
  rdmsr(t.cpu);
  assert.deepEqual(t.takeFault(), [Vec.GP, 0]);
});

test("TSC follows the virtual clock; WRMSR 0x10 sets it (64 bits); RDTSC obeys CR4.TSD", () => {
  const t = new TestCpu();
  t.clock.set(5_000_000_123);
  rdtsc(t.cpu);
  assert.equal((t.r32[2]! >>> 0) * 2 ** 32 + (t.r32[0]! >>> 0), 5_000_000_123);
  t.r32[1] = 0x10;
  t.r32[0] = 0xfffffff0 | 0;
  t.r32[2] = 0x12345678;
  wrmsr(t.cpu);
  t.clock.step(0x20);
  rdmsr(t.cpu);
  assert.equal(t.r32[0], 0x10, "low half wraps");
  assert.equal(t.r32[2], 0x12345679, "with the carry");
  t.i32[Slot.CR0] = 1;
  t.modeChanged();
  t.i32[Slot.CPL] = 3;
  rdtsc(t.cpu);
  assert.equal(t.takeFault(), null);
  t.i32[Slot.CR4] = CR4.TSD;
  rdtsc(t.cpu);
  assert.deepEqual(t.takeFault(), [Vec.GP, 0]);
});

test("control registers: reserved/invalid combinations fault, ET reads 1, paging changes flush", () => {
  const t = new TestCpu();
  movToCr(t.cpu, 0, CR0.PG);
  assert.deepEqual(t.takeFault(), [Vec.GP, 0], "PG without PE");
  movToCr(t.cpu, 0, CR0.NW | CR0.PE);
  assert.deepEqual(t.takeFault(), [Vec.GP, 0], "NW without CD");
  movToCr(t.cpu, 4, CR4.PAE);
  assert.deepEqual(t.takeFault(), [Vec.GP, 0], "no PAE");
  movToCr(t.cpu, 4, 1 << 9);
  assert.deepEqual(t.takeFault(), [Vec.GP, 0], "no OSFXSR (no SSE)");
  movToCr(t.cpu, 4, CR4.VME | CR4.PVI);
  assert.equal(t.takeFault(), null);
  movToCr(t.cpu, 4, CR4.PSE | CR4.PGE | CR4.TSD | CR4.DE);
  assert.equal(t.takeFault(), null);
  assert.equal(movFromCr(t.cpu, 4), CR4.PSE | CR4.PGE | CR4.TSD | CR4.DE);
  movToCr(t.cpu, 0, CR0.PE);
  assert.equal(t.pmode, true);
  assert.equal(movFromCr(t.cpu, 0), CR0.PE | CR0.ET);
  movToCr(t.cpu, 3, 0x12345fff);
  assert.equal(movFromCr(t.cpu, 3), 0x12345018);
  movToCr(t.cpu, 2, 0xdeadbeef | 0);
  assert.equal(movFromCr(t.cpu, 2), 0xdeadbeef | 0);
  movFromCr(t.cpu, 1);
  assert.deepEqual(t.takeFault(), [Vec.UD, -1]);
  // CLTS/LMSW
  movToCr(t.cpu, 0, CR0.PE | CR0.TS | CR0.MP);
  clts(t.cpu);
  assert.equal(movFromCr(t.cpu, 0) & CR0.TS, 0);
  lmsw(t.cpu, 0x0c);
  assert.equal(movFromCr(t.cpu, 0) & 0xf, CR0.PE | CR0.EM | CR0.TS, "LMSW cannot clear PE");
  t.i32[Slot.CPL] = 3;
  movToCr(t.cpu, 0, 0);
  assert.deepEqual(t.takeFault(), [Vec.GP, 0]);
});

test("debug registers: held; DR4/DR5 alias DR6/DR7 unless CR4.DE; fixed bits", () => {
  const t = new TestCpu();
  movToDr(t.cpu, 0, 0x12345678);
  assert.equal(movFromDr(t.cpu, 0), 0x12345678);
  movToDr(t.cpu, 5, 0x3);
  assert.equal(movFromDr(t.cpu, 7), 0x403);
  movToDr(t.cpu, 6, 0);
  assert.equal(movFromDr(t.cpu, 4) >>> 0, 0xffff0ff0);
  t.i32[Slot.CR4] = CR4.DE;
  movFromDr(t.cpu, 4);
  assert.deepEqual(t.takeFault(), [Vec.UD, -1]);
});

test("SYSENTER/SYSEXIT load flat segments from SYSENTER_CS", () => {
  const t = new TestCpu();
  sysenter(t.cpu);
  assert.deepEqual(t.takeFault(), [Vec.GP, 0], "real mode");
  t.i32[Slot.CR0] = 1;
  t.modeChanged();
  sysenter(t.cpu);
  assert.deepEqual(t.takeFault(), [Vec.GP, 0], "SYSENTER_CS = 0");
  t.i32[Slot.SYSENTER_CS] = 0x60;
  t.i32[Slot.SYSENTER_ESP] = 0x9000;
  t.i32[Slot.SYSENTER_EIP] = 0xc0001234 | 0;
  t.i32[Slot.CPL] = 3;
  t.i32[Slot.EFLAGS] = 2 | F.IF;
  sysenter(t.cpu);
  assert.equal(t.takeFault(), null);
  assert.equal(t.i32[Slot.CPL], 0);
  assert.equal(t.s.segSel[SReg.CS], 0x60);
  assert.equal(t.s.segSel[SReg.SS], 0x68);
  assert.equal(t.r32[4], 0x9000);
  assert.equal(t.i32[Slot.EIP], 0xc0001234 | 0);
  assert.equal(t.getFlags() & F.IF, 0);
  assert.equal(t.cs32, true);
  t.r32[1] = 0xbff000;
  t.r32[2] = 0x8048000;
  sysexit(t.cpu);
  assert.equal(t.i32[Slot.CPL], 3);
  assert.equal(t.s.segSel[SReg.CS], 0x73);
  assert.equal(t.s.segSel[SReg.SS], 0x7b);
  assert.equal(t.r32[4], 0xbff000);
  assert.equal(t.i32[Slot.EIP], 0x8048000);
  sysexit(t.cpu);
  assert.deepEqual(t.takeFault(), [Vec.GP, 0], "CPL 3");
});

test("I/O permission: CPL <= IOPL passes; otherwise the TSS bitmap decides (and vm86 always uses it)", () => {
  const t = new TestCpu();
  assert.equal(ioPermitted(t.cpu, 0x3f8, 1), true, "real mode");
  t.i32[Slot.CR0] = 1;
  t.modeChanged();
  t.i32[Slot.CPL] = 3;
  const TSS = 0x5000;
  t.setSegCache(SReg.TR, 0x28, TSS, 0x68 + 0x81, 0x8b); // bitmap covers ports 0..0x407
  t.w16(TSS + 0x66, 0x68);
  for (let i = 0; i < 0x81; i++) t.w8(TSS + 0x68 + i, 0xff);
  t.w8(TSS + 0x68 + (0x3f8 >>> 3), 0x00); // ports 0x3f8..0x3ff allowed
  assert.equal(ioPermitted(t.cpu, 0x3f8, 1), true);
  assert.equal(ioPermitted(t.cpu, 0x3fc, 4), true);
  assert.equal(ioPermitted(t.cpu, 0x3fe, 4), false, "0x400 denied");
  assert.deepEqual(t.takeFault(), [Vec.GP, 0]);
  assert.equal(ioPermitted(t.cpu, 0x1000, 1), false, "beyond the TSS limit");
  assert.deepEqual(t.takeFault(), [Vec.GP, 0]);
  t.i32[Slot.EFLAGS] = 2 | F.IOPL;
  assert.equal(ioPermitted(t.cpu, 0x1000, 1), true, "CPL <= IOPL");
  t.i32[Slot.EFLAGS] = 2 | F.IOPL | F.VM;
  t.modeChanged();
  assert.equal(ioPermitted(t.cpu, 0x60, 1), false, "vm86 uses the bitmap whatever IOPL");
  assert.deepEqual(t.takeFault(), [Vec.GP, 0]);
});

test("DR7.GD: the next MOV DR is #DB with DR6.BD set and GD cleared", () => {
  const t = new TestCpu();
  movToDr(t.cpu, 7, 1 << 13);
  assert.equal(t.takeFault(), null);
  movToDr(t.cpu, 0, 0x1234);
  assert.deepEqual(t.takeFault(), [Vec.DB, -1]);
  assert.equal(movFromDr(t.cpu, 0), 0, "DR0 not written");
  assert.equal(movFromDr(t.cpu, 6) & (1 << 13), 1 << 13, "DR6.BD");
  assert.equal(movFromDr(t.cpu, 7) & (1 << 13), 0, "GD cleared");
  assert.equal(t.takeFault(), null);
});
