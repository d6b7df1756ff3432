import { test } from "node:test";
import assert from "node:assert/strict";
import { TestCpu } from "./sys.testkit.ts";
import { SReg, Slot, Vec } from "./state.ts";
import { ATTR_UNUSABLE, lar, lldt, loadSeg, lsl, ltr, segOk, verr, verw } from "./seg.ts";

const GDT = 0x1000;
const LDT = 0x2000;

function pm(): TestCpu {
  const t = new TestCpu();
  t.seg(GDT, 1, 0, 0xfffff, 0x9a); // 0x08 ring-0 code
  t.seg(GDT, 2, 0x123000, 0xfff, 0x92, 0x4); // 0x10 ring-0 data, byte granular, B=1
  t.seg(GDT, 3, 0, 0xfffff, 0xfa); // 0x18 ring-3 code
  t.seg(GDT, 4, 0x40000, 0xff, 0xf2, 0x8); // 0x20 ring-3 data, G=1 → limit 0xFFFFF
  t.seg(GDT, 5, 0, 0xffff, 0x12); // 0x28 data, not present
  t.seg(GDT, 6, 0, 0xffff, 0x98); // 0x30 execute-only code
  t.seg(GDT, 7, 0, 0xffff, 0x9e); // 0x38 readable conforming code, DPL 0
  t.seg(GDT, 8, LDT, 0x17, 0x82, 0); // 0x40 LDT
  t.seg(GDT, 9, 0x3000, 0x67, 0x89, 0); // 0x48 TSS32 available
  t.seg(GDT, 10, 0, 0xffff, 0x90); // 0x50 read-only data
  t.seg(LDT, 1, 0x50000, 0xffff, 0xf2, 0); // LDT 0x0c|3 = 0x0f ring-3 data
  t.protectedMode(GDT, 0x5f, 0x4000, 0x7ff);
  t.i32[Slot.CPL] = 0;
  return t;
}

test("real mode and vm86 loads: base = selector << 4", () => {
  const t = new TestCpu();
  t.s.segLimit[SReg.DS] = 0xffffffff | 0; // unreal mode: the limit is kept in real mode
  assert.equal(loadSeg(t.cpu, SReg.DS, 0x1234), true);
  assert.equal(t.s.segBase[SReg.DS], 0x12340);
  assert.equal(t.s.segLimit[SReg.DS], -1);
  t.i32[Slot.CR0] = 1;
  t.i32[Slot.EFLAGS] = 2 | (1 << 17);
  t.modeChanged();
  loadSeg(t.cpu, SReg.ES, 0xb800);
  assert.equal(t.s.segBase[SReg.ES], 0xb8000);
  assert.equal(t.s.segLimit[SReg.ES], 0xffff);
  assert.equal(t.s.segAttr[SReg.ES], 0xf3);
});

test("protected mode data loads: cache, G expansion, accessed bit", () => {
  const t = pm();
  assert.equal(loadSeg(t.cpu, SReg.DS, 0x10), true);
  assert.equal(t.s.segBase[SReg.DS], 0x123000);
  assert.equal(t.s.segLimit[SReg.DS], 0xfff);
  assert.equal(t.s.segAttr[SReg.DS], 0x4093);
  assert.equal(t.r8p(GDT + 0x10 + 5), 0x93, "accessed bit written back");
  assert.equal(loadSeg(t.cpu, SReg.ES, 0x23), true);
  assert.equal(t.s.segLimit[SReg.ES]! >>> 0, 0xfffff);
  assert.equal(loadSeg(t.cpu, SReg.FS, 0x3b), true, "readable conforming code");
  assert.equal(t.takeFault(), null);
  assert.equal(loadSeg(t.cpu, SReg.GS, 0x0f), false, "LDT selector while LDTR is unusable");
  assert.deepEqual(t.takeFault(), [Vec.GP, 0x0c]);
  assert.equal(t.s.segSel[SReg.GS], 0, "GS unchanged");
});

test("protected mode load faults have exact vectors and error codes", () => {
  const t = pm();
  const cases: [number, number, [number, number] | null][] = [
    [SReg.SS, 0x00, [Vec.GP, 0]],
    [SReg.SS, 0x13, [Vec.GP, 0x10]], // RPL 3 != CPL 0
    [SReg.SS, 0x08, [Vec.GP, 0x08]], // code
    [SReg.SS, 0x50, [Vec.GP, 0x50]], // read-only data
    [SReg.SS, 0x23, [Vec.GP, 0x20]], // DPL 3 != CPL
    [SReg.SS, 0x28, [Vec.SS, 0x28]], // writable data, not present
    [SReg.DS, 0x28, [Vec.NP, 0x28]],
    [SReg.DS, 0x30, [Vec.GP, 0x30]], // execute-only
    [SReg.DS, 0x60, [Vec.GP, 0x60]], // beyond GDT limit
    [SReg.DS, 0x48, [Vec.GP, 0x48]], // system segment
    [SReg.DS, 0x0f, [Vec.GP, 0x0c]], // LDT unusable
    [SReg.DS, 0x03, null], // null selector
  ];
  for (const [r, sel, want] of cases) {
    loadSeg(t.cpu, r, sel);
    assert.deepEqual(t.takeFault(), want, `sreg ${String(r)} sel ${sel.toString(16)}`);
  }
  assert.equal(t.s.segAttr[SReg.DS]! & ATTR_UNUSABLE, ATTR_UNUSABLE);
  assert.equal(t.s.segSel[SReg.DS], 3);
  // at CPL 3: ring-0 data is #GP, RPL>DPL too
  t.i32[Slot.CPL] = 3;
  loadSeg(t.cpu, SReg.DS, 0x13);
  assert.deepEqual(t.takeFault(), [Vec.GP, 0x10]);
  loadSeg(t.cpu, SReg.SS, 0x23);
  assert.equal(t.takeFault(), null);
  assert.equal(t.ss32, false);
  // SS not present → #SS
  t.seg(GDT, 5, 0, 0xffff, 0x72); // DPL 3 writable, not present
  loadSeg(t.cpu, SReg.SS, 0x2b);
  assert.deepEqual(t.takeFault(), [Vec.SS, 0x28]);
});

test("LLDT, LTR (busy bit), then LDT selectors load", () => {
  const t = pm();
  lldt(t.cpu, 0x40);
  assert.equal(t.takeFault(), null);
  assert.equal(t.s.segBase[SReg.LDTR], LDT);
  t.i32[Slot.CPL] = 3;
  assert.equal(loadSeg(t.cpu, SReg.GS, 0x0f), true);
  assert.equal(t.s.segBase[SReg.GS], 0x50000);
  lldt(t.cpu, 0x40);
  assert.deepEqual(t.takeFault(), [Vec.GP, 0]);
  t.i32[Slot.CPL] = 0;
  lldt(t.cpu, 0x10);
  assert.deepEqual(t.takeFault(), [Vec.GP, 0x10]);
  ltr(t.cpu, 0x48);
  assert.equal(t.takeFault(), null);
  assert.equal(t.s.segAttr[SReg.TR]! & 0xf, 0xb);
  assert.equal(t.r8p(GDT + 0x48 + 5), 0x8b, "busy in the GDT");
  ltr(t.cpu, 0x48);
  assert.deepEqual(t.takeFault(), [Vec.GP, 0x48], "busy TSS cannot be loaded");
  lldt(t.cpu, 0);
  assert.equal(t.s.segAttr[SReg.LDTR]! & ATTR_UNUSABLE, ATTR_UNUSABLE);
});

test("LAR, LSL, VERR, VERW", () => {
  const t = pm();
  assert.equal(lar(t.cpu, 0x10), 0x00409200);
  assert.equal(lsl(t.cpu, 0x23), 0xfffff);
  assert.equal(lsl(t.cpu, 0x48), 0x67);
  assert.equal(lar(t.cpu, 0), -1);
  assert.equal(lar(t.cpu, 0x60), -1);
  assert.equal(verr(t.cpu, 0x30), false, "execute-only");
  assert.equal(verr(t.cpu, 0x08), true);
  assert.equal(verw(t.cpu, 0x08), false);
  assert.equal(verw(t.cpu, 0x50), false, "read-only");
  assert.equal(verw(t.cpu, 0x10), true);
  t.i32[Slot.CPL] = 3;
  assert.equal(lar(t.cpu, 0x10), -1, "DPL 0 invisible at CPL 3");
  assert.equal(lar(t.cpu, 0x3b), 0xc09e00, "conforming code is visible");
  assert.equal(verw(t.cpu, 0x23), true);
  assert.equal(t.takeFault(), null);
  t.i32[Slot.CR0] = 0;
  t.modeChanged();
  lar(t.cpu, 0x10);
  assert.deepEqual(t.takeFault(), [Vec.UD, -1]);
});

test("segOk: normal and expand-down limits", () => {
  assert.equal(segOk(0x93, 0xffff, 0xfffe, 2), true);
  assert.equal(segOk(0x93, 0xffff, 0xffff, 2), false);
  // expand-down, 16-bit: valid (limit, 0xFFFF]
  assert.equal(segOk(0x97, 0x0fff, 0x0fff, 1), false);
  assert.equal(segOk(0x97, 0x0fff, 0x1000, 4), true);
  assert.equal(segOk(0x97, 0x0fff, 0xfffe, 4), false);
  // expand-down with B=1: up to 0xFFFFFFFF
  assert.equal(segOk(0x4097, 0x0fff, 0xfffffffc, 4), true);
});
