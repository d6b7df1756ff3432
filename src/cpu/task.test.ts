import { test } from "node:test";
import assert from "node:assert/strict";
import { TestCpu } from "./sys.testkit.ts";
import { CR0, F, SReg, Slot, Vec } from "./state.ts";
import { IntKind, farCall, farJmp, interrupt, iret } from "./intr.ts";

const GDT = 0x1000;
const IDT = 0x2000;
const TSS_A = 0x3000;
const TSS_B = 0x3100;
const TSS_16 = 0x3200;
const SEL_A = 0x28;
const SEL_B = 0x30;
const SEL_16 = 0x38;
const SEL_GATE = 0x40;

function setup(): TestCpu {
  const t = new TestCpu();
  t.seg(GDT, 1, 0, 0xfffff, 0x9a); // 0x08 code
  t.seg(GDT, 2, 0, 0xfffff, 0x92); // 0x10 data
  t.seg(GDT, 3, 0, 0xfffff, 0xfa); // 0x18 user code
  t.seg(GDT, 4, 0, 0xfffff, 0xf2); // 0x20 user data
  t.seg(GDT, 5, TSS_A, 0x67, 0x8b, 0); // current task, busy
  t.seg(GDT, 6, TSS_B, 0x67, 0x89, 0); // target task
  t.seg(GDT, 7, TSS_16, 0x2b, 0x81, 0); // 16-bit TSS available
  t.gate(GDT, 8, SEL_B, 0, 0xe5); // task gate DPL 3 → B
  t.protectedMode(GDT, 0x4f, IDT, 0x7ff);
  t.setSegCache(SReg.TR, SEL_A, TSS_A, 0x67, 0x8b);
  t.setSegCache(SReg.CS, 0x08, 0, -1, 0xc09b);
  t.setSegCache(SReg.SS, 0x10, 0, -1, 0xc093);
  t.setSegCache(SReg.DS, 0x10, 0, -1, 0xc093);
  t.setSegCache(SReg.ES, 0x10, 0, -1, 0xc093);
  t.setSegCache(SReg.FS, 0, 0, 0, 1 << 16);
  t.setSegCache(SReg.GS, 0, 0, 0, 1 << 16);
  t.i32[Slot.CPL] = 0;
  for (let i = 0; i < 8; i++) t.r32[i] = 0x100 + i;
  t.r32[4] = 0x8000;
  t.i32[Slot.EIP] = 0x1111;
  t.i32[Slot.EFLAGS] = 2 | F.IF | F.CF;
  t.i32[Slot.CR3] = 0x55000;
  // task B: ring 3, its own registers
  t.w32(TSS_B + 0x1c, 0x66000); // CR3 (paging off: not loaded)
  t.w32(TSS_B + 0x20, 0x2222); // EIP
  t.w32(TSS_B + 0x24, 2 | F.IF | F.ZF); // EFLAGS
  for (let i = 0; i < 8; i++) t.w32(TSS_B + 0x28 + i * 4, 0x200 + i);
  const segs = [0x23, 0x1b, 0x23, 0x23, 0x23, 0];
  for (let i = 0; i < 6; i++) t.w16(TSS_B + 0x48 + i * 4, segs[i]!);
  t.w16(TSS_B + 0x60, 0);
  return t;
}

test("CALL to a TSS: old state saved, link and NT, busy bits, registers loaded, CR0.TS; IRET returns", () => {
  const t = setup();
  farCall(t.cpu, SEL_B, 0, true);
  assert.equal(t.takeFault(), null);
  // saved into A
  assert.equal(t.r32p(TSS_A + 0x20), 0x1111, "EIP");
  assert.equal(t.r32p(TSS_A + 0x24), 2 | F.IF | F.CF, "EFLAGS");
  assert.deepEqual(
    [0, 1, 2, 3, 4, 5, 6, 7].map((i) => t.r32p(TSS_A + 0x28 + i * 4)),
    [0x100, 0x101, 0x102, 0x103, 0x8000, 0x105, 0x106, 0x107],
  );
  assert.deepEqual(
    [0, 1, 2, 3, 4, 5].map((i) => t.r16p(TSS_A + 0x48 + i * 4)),
    [0x10, 0x08, 0x10, 0x10, 0, 0],
  );
  assert.equal(t.r16p(TSS_B), SEL_A, "back link");
  assert.equal(t.r8p(GDT + SEL_A + 5) & 0xf, 0xb, "A stays busy (nested)");
  assert.equal(t.r8p(GDT + SEL_B + 5) & 0xf, 0xb, "B busy");
  // loaded from B
  assert.equal(t.s.segSel[SReg.TR], SEL_B);
  assert.equal(t.i32[Slot.EIP], 0x2222);
  assert.equal(t.r32[0], 0x200);
  assert.equal(t.r32[4], 0x204);
  assert.equal(t.i32[Slot.CPL], 3);
  assert.equal(t.s.segSel[SReg.CS], 0x1b);
  assert.equal(t.getFlags() & (F.NT | F.ZF | F.IF), F.NT | F.ZF | F.IF);
  assert.equal(t.i32[Slot.CR0]! & CR0.TS, CR0.TS);
  assert.equal(t.i32[Slot.CR3], 0x66000, "CR3 loaded from the 32-bit TSS");
  assert.equal(t.s.segAttr[SReg.GS]! & (1 << 16), 1 << 16);
  assert.equal(t.cpu.instrStart, 0x2222);
  // IRET with NT: back to A, B no longer busy
  t.r32[0] = 0xbeef;
  iret(t.cpu, true);
  assert.equal(t.takeFault(), null);
  assert.equal(t.s.segSel[SReg.TR], SEL_A);
  assert.equal(t.i32[Slot.EIP], 0x1111);
  assert.equal(t.r32[0], 0x100);
  assert.equal(t.i32[Slot.CPL], 0);
  assert.equal(t.r8p(GDT + SEL_B + 5) & 0xf, 0x9, "B available again");
  assert.equal(t.r32p(TSS_B + 0x28), 0xbeef, "B's state saved");
  assert.equal(t.r32p(TSS_B + 0x24) & F.NT, 0, "NT cleared in B's saved EFLAGS");
  assert.equal(t.getFlags() & F.NT, 0);
});

test("JMP through a task gate clears the old busy bit and sets no link; busy target is #GP", () => {
  const t = setup();
  farJmp(t.cpu, SEL_GATE, 0, true);
  assert.equal(t.takeFault(), null);
  assert.equal(t.s.segSel[SReg.TR], SEL_B);
  assert.equal(t.r8p(GDT + SEL_A + 5) & 0xf, 0x9, "A available");
  assert.equal(t.r16p(TSS_B), 0, "no back link");
  assert.equal(t.getFlags() & F.NT, 0);
  t.i32[Slot.CPL] = 0;
  farJmp(t.cpu, SEL_B, 0, true);
  assert.deepEqual(t.takeFault(), [Vec.GP, SEL_B]);
});

test("interrupt through a task gate pushes the error code on the new task's stack", () => {
  const t = setup();
  t.gate(IDT, 8, SEL_B, 0, 0x85);
  // new task at ring 0 with its stack at 0x9000
  t.w16(TSS_B + 0x4c, 0x08);
  t.w16(TSS_B + 0x50, 0x10);
  t.w16(TSS_B + 0x48, 0x10);
  t.w16(TSS_B + 0x54, 0x10);
  t.w32(TSS_B + 0x28 + 16, 0x9000);
  interrupt(t.cpu, 8, IntKind.EXC, 0);
  assert.equal(t.takeFault(), null);
  assert.equal(t.s.segSel[SReg.TR], SEL_B);
  assert.equal(t.r32[4], 0x9000 - 4);
  assert.equal(t.r32p(0x9000 - 4), 0);
  assert.equal(t.getFlags() & F.NT, F.NT);
  assert.equal(t.r16p(TSS_B), SEL_A);
});

test("new TSS checks: limit too small is #TS; a 16-bit TSS loads 16-bit state", () => {
  const t = setup();
  t.seg(GDT, 6, TSS_B, 0x60, 0x89, 0);
  farJmp(t.cpu, SEL_B, 0, true);
  assert.deepEqual(t.takeFault(), [Vec.TS, SEL_B]);
  assert.equal(t.s.segSel[SReg.TR], SEL_A, "nothing committed");
  // 16-bit TSS
  t.w16(TSS_16 + 0x0e, 0x3333);
  t.w16(TSS_16 + 0x10, 0x0002 | F.IF);
  for (let i = 0; i < 8; i++) t.w16(TSS_16 + 0x12 + i * 2, 0x300 + i);
  t.w16(TSS_16 + 0x22, 0x10);
  t.w16(TSS_16 + 0x24, 0x08);
  t.w16(TSS_16 + 0x26, 0x10);
  t.w16(TSS_16 + 0x28, 0x10);
  farJmp(t.cpu, SEL_16, 0, true);
  assert.equal(t.takeFault(), null);
  assert.equal(t.i32[Slot.EIP], 0x3333);
  assert.equal(t.r32[0], 0x300, "upper halves of the registers are kept");
  assert.equal(t.r16[8], 0x304);
  assert.equal(t.s.segSel[SReg.TR], SEL_16);
});

test("a task switch with paging on loads CR3 and flushes non-global translations", () => {
  const t = setup();
  // identity map the first 4 MiB with 4 KiB pages in both address spaces
  for (const pd of [0x55000, 0x66000]) {
    t.w32(pd, (pd + 0x1000) | 3);
    for (let i = 0; i < 1024; i++) t.w32(pd + 0x1000 + i * 4, (i << 12) | 7);
  }
  t.w32(0x66000 + 0x1000 + 0x70 * 4, 0x71000 | 7); // page 0x70000 differs in B's space
  t.w32(0x70000, 1);
  t.w32(0x71000, 2);
  t.i32[Slot.CR0] = t.i32[Slot.CR0]! | CR0.PG;
  t.mmu.flush(true);
  assert.equal(t.mmu.readSys32(0x70000), 1);
  farJmp(t.cpu, SEL_B, 0, true);
  assert.equal(t.takeFault(), null);
  assert.equal(t.i32[Slot.CR3], 0x66000);
  assert.equal(t.mmu.readSys32(0x70000), 2);
});

test("the new TSS's T bit raises #DB at the new task's first instruction (DR6.BT)", () => {
  const t = setup();
  t.w16(TSS_B + 0x64, 1);
  farJmp(t.cpu, SEL_B, 0, true);
  assert.deepEqual(t.takeFault(), [Vec.DB, -1]);
  assert.equal(t.s.segSel[SReg.TR], SEL_B, "the switch itself completed");
  assert.equal(t.cpu.instrStart, 0x2222);
  assert.equal(t.i32[Slot.DR0 + 6]! & (1 << 15), 1 << 15);
});
