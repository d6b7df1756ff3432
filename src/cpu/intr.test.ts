import { test } from "node:test";
import assert from "node:assert/strict";
import { TestCpu } from "./sys.testkit.ts";
import { F, SReg, Slot, Vec } from "./state.ts";
import { IntKind, deliverException, farCall, farJmp, farRet, interrupt, iret } from "./intr.ts";
import { ATTR_UNUSABLE } from "./seg.ts";

// ---------------------------------------------------------------- real mode

function realCpu(): TestCpu {
  const t = new TestCpu();
  t.setSegCache(SReg.SS, 0x2000, 0x20000, 0xffff, 0x93);
  t.setSegCache(SReg.CS, 0x1000, 0x10000, 0xffff, 0x9b);
  t.r32[4] = 0x100;
  t.i32[Slot.EIP] = 0x1234;
  return t;
}

test("real mode: INT pushes FLAGS, CS, IP from the IVT and clears IF, TF, AC", () => {
  const t = realCpu();
  t.w16(0x21 * 4, 0x5678);
  t.w16(0x21 * 4 + 2, 0xf000);
  t.i32[Slot.EFLAGS] = 2 | F.IF | F.TF | F.AC | F.CF | F.DF;
  interrupt(t.cpu, 0x21, IntKind.SOFT, -1);
  assert.equal(t.takeFault(), null);
  assert.equal(t.r32[4], 0xfa);
  assert.equal(t.r16p(0x200fa), 0x1234, "IP");
  assert.equal(t.r16p(0x200fc), 0x1000, "CS");
  assert.equal(t.r16p(0x200fe), 2 | F.IF | F.TF | F.CF | F.DF, "FLAGS (16 bits)");
  assert.equal(t.s.segSel[SReg.CS], 0xf000);
  assert.equal(t.s.segBase[SReg.CS], 0xf0000);
  assert.equal(t.i32[Slot.EIP], 0x5678);
  assert.equal(t.getFlags() & (F.IF | F.TF | F.AC), 0);
  assert.equal(t.getFlags() & (F.CF | F.DF), F.CF | F.DF);
  // IRET comes back
  iret(t.cpu, false);
  assert.equal(t.i32[Slot.EIP], 0x1234);
  assert.equal(t.s.segBase[SReg.CS], 0x10000);
  assert.equal(t.r32[4], 0x100);
  assert.equal(t.getFlags() & (F.IF | F.TF), F.IF | F.TF);
});

test("real mode: SP wraps within 64 KiB; IVT entry beyond the IDTR limit is #GP", () => {
  const t = realCpu();
  t.r32[4] = 0x2; // pushes wrap to 0xFFFE..
  t.w16(8 * 4, 0x1111);
  t.w16(8 * 4 + 2, 0x2222);
  interrupt(t.cpu, 8, IntKind.HW, -1);
  assert.equal(t.takeFault(), null);
  assert.equal(t.r16[8], 0xfffc);
  assert.equal(t.r16p(0x20000 + 0xfffc), 0x1234, "IP");
  assert.equal(t.r16p(0x20000 + 0xfffe), 0x1000, "CS");
  assert.equal(t.r16p(0x20000), 2, "FLAGS at SS:0");
  t.i32[Slot.IDTR_LIMIT] = 0x3f;
  interrupt(t.cpu, 0x10, IntKind.SOFT, -1);
  assert.equal(t.takeFault()?.[0], Vec.GP);
});

test("real mode far CALL / RETF imm / JMP and 32-bit IRET", () => {
  const t = realCpu();
  farCall(t.cpu, 0x3000, 0x0042, false);
  assert.equal(t.s.segBase[SReg.CS], 0x30000);
  assert.equal(t.i32[Slot.EIP], 0x42);
  assert.equal(t.r32[4], 0xfc);
  assert.equal(t.r16p(0x200fc), 0x1234);
  assert.equal(t.r16p(0x200fe), 0x1000);
  farRet(t.cpu, false, 4);
  assert.equal(t.s.segSel[SReg.CS], 0x1000);
  assert.equal(t.i32[Slot.EIP], 0x1234);
  assert.equal(t.r32[4], 0x104);
  farJmp(t.cpu, 0xf000, 0xfff0, false);
  assert.equal(t.s.segBase[SReg.CS], 0xf0000);
  assert.equal(t.i32[Slot.EIP], 0xfff0);
  farJmp(t.cpu, 0x0, 0x12345, true); // beyond the 64 KiB CS limit
  assert.equal(t.takeFault()?.[0], Vec.GP);
  // IRETD in real mode: EIP, CS, EFLAGS dwords; VM cannot be set this way
  t.r32[4] = 0x200;
  t.w32(0x20200, 0x10);
  t.w32(0x20204, 0x4000);
  t.w32(0x20208, F.VM | F.IF | F.ID | 2);
  iret(t.cpu, true);
  assert.equal(t.s.segBase[SReg.CS], 0x40000);
  assert.equal(t.getFlags() & (F.VM | F.IF | F.ID), F.IF | F.ID);
  assert.equal(t.r32[4], 0x20c);
});

// ---------------------------------------------------------------- protected mode

const GDT = 0x1000;
const IDT = 0x2000;
const TSS = 0x3000;
const STACK0 = 0x9000; // ring-0 stack top
const STACK3 = 0x7000; // ring-3 stack top

/** Selectors of the test GDT. */
const K_CODE = 0x08;
const K_DATA = 0x10;
const U_CODE = 0x1b;
const U_DATA = 0x23;
const TSS_SEL = 0x28;
const K_CODE16 = 0x30;

/** Flat protected mode at CPL 0 with a 32-bit TSS whose SS0:ESP0 = K_DATA:STACK0. */
function pmCpu(): TestCpu {
  const t = new TestCpu();
  t.seg(GDT, 1, 0, 0xfffff, 0x9a); // kernel code
  t.seg(GDT, 2, 0, 0xfffff, 0x92); // kernel data
  t.seg(GDT, 3, 0, 0xfffff, 0xfa); // user code
  t.seg(GDT, 4, 0, 0xfffff, 0xf2); // user data
  t.seg(GDT, 5, TSS, 0x67, 0x89, 0); // 32-bit TSS available
  t.seg(GDT, 6, 0, 0xffff, 0x9a, 0); // 16-bit kernel code
  t.protectedMode(GDT, 0x3f, IDT, 0x7ff);
  t.w32(TSS + 4, STACK0);
  t.w32(TSS + 8, K_DATA);
  t.setSegCache(SReg.TR, TSS_SEL, TSS, 0x67, 0x8b);
  t.setSegCache(SReg.CS, K_CODE, 0, -1, 0xc09b);
  t.setSegCache(SReg.SS, K_DATA, 0, -1, 0xc093);
  t.setSegCache(SReg.DS, K_DATA, 0, -1, 0xc093);
  t.i32[Slot.CPL] = 0;
  t.r32[4] = 0x8000;
  t.i32[Slot.EIP] = 0x1000;
  return t;
}

/** Switches the test CPU to ring 3 (user code/data). */
function toUser(t: TestCpu): void {
  t.setSegCache(SReg.CS, U_CODE, 0, -1, 0xc0fb);
  t.setSegCache(SReg.SS, U_DATA, 0, -1, 0xc0f3);
  t.setSegCache(SReg.DS, U_DATA, 0, -1, 0xc0f3);
  t.i32[Slot.CPL] = 3;
  t.r32[4] = STACK3;
}

test("pmode: 32-bit interrupt gate, same level: EFLAGS, CS, EIP, error code; IF cleared, CS accessed", () => {
  const t = pmCpu();
  t.gate(IDT, 13, K_CODE, 0x12345678, 0x8e);
  t.i32[Slot.EFLAGS] = 2 | F.IF | F.TF | F.NT;
  t.i32[Slot.EIP] = 0xabc;
  interrupt(t.cpu, 13, IntKind.EXC, 0x1234);
  assert.equal(t.takeFault(), null);
  assert.equal(t.r32[4], 0x8000 - 16);
  assert.equal(t.r32p(0x7ff0), 0x1234, "error code");
  assert.equal(t.r32p(0x7ff4), 0xabc, "EIP");
  assert.equal(t.r32p(0x7ff8), K_CODE, "CS");
  assert.equal(t.r32p(0x7ffc), 2 | F.IF | F.TF | F.NT, "EFLAGS");
  assert.equal(t.i32[Slot.EIP], 0x12345678);
  assert.equal(t.getFlags() & (F.IF | F.TF | F.NT), 0);
  assert.equal(t.r8p(GDT + 8 + 5) & 1, 1, "accessed bit set in the code descriptor");
});

test("pmode: trap gate keeps IF; 16-bit gate pushes words", () => {
  const t = pmCpu();
  t.gate(IDT, 0x80, K_CODE, 0x2000, 0xef); // DPL 3 trap gate
  t.i32[Slot.EFLAGS] = 2 | F.IF;
  interrupt(t.cpu, 0x80, IntKind.SOFT, -1);
  assert.equal(t.takeFault(), null);
  assert.equal(t.getFlags() & F.IF, F.IF);
  assert.equal(t.r32[4], 0x8000 - 12);
  const t2 = pmCpu();
  t2.gate(IDT, 0x81, K_CODE16, 0x3456, 0x86); // 16-bit interrupt gate
  t2.i32[Slot.EIP] = 0x1002;
  interrupt(t2.cpu, 0x81, IntKind.HW, -1);
  assert.equal(t2.takeFault(), null);
  assert.equal(t2.r32[4], 0x8000 - 6);
  assert.equal(t2.r16p(0x7ffa), 0x1002);
  assert.equal(t2.r16p(0x7ffc), K_CODE);
  assert.equal(t2.s.segSel[SReg.CS], K_CODE16);
  assert.equal(t2.i32[Slot.EIP], 0x3456);
  assert.equal(t2.cs32, false);
});

test("pmode: interrupt from ring 3 switches to the TSS ring-0 stack and pushes SS:ESP", () => {
  const t = pmCpu();
  toUser(t);
  t.gate(IDT, 14, K_CODE, 0x4000, 0x8e);
  t.i32[Slot.EIP] = 0x5555;
  t.i32[Slot.EFLAGS] = 2 | F.IF | (3 << 12);
  interrupt(t.cpu, 14, IntKind.EXC, 6);
  assert.equal(t.takeFault(), null);
  assert.equal(t.i32[Slot.CPL], 0);
  assert.equal(t.s.segSel[SReg.SS], K_DATA);
  assert.equal(t.s.segSel[SReg.CS], K_CODE);
  assert.equal(t.r32[4], STACK0 - 24);
  const f = [0, 4, 8, 12, 16, 20].map((o) => t.r32p(STACK0 - 24 + o));
  assert.deepEqual(f, [6, 0x5555, U_CODE, 2 | F.IF | (3 << 12), STACK3, U_DATA]);
  assert.equal(t.s.segSel[SReg.DS], U_DATA, "DS untouched on entry");
  // IRET back to ring 3: DS (a DPL 3 segment) stays, K_DATA in ES would be nulled
  t.setSegCache(SReg.ES, K_DATA, 0, -1, 0xc093);
  t.r32[4] = (t.r32[4]! + 4) | 0; // handler pops the error code
  iret(t.cpu, true);
  assert.equal(t.takeFault(), null);
  assert.equal(t.i32[Slot.CPL], 3);
  assert.equal(t.s.segSel[SReg.CS], U_CODE);
  assert.equal(t.s.segSel[SReg.SS], U_DATA);
  assert.equal(t.r32[4], STACK3);
  assert.equal(t.i32[Slot.EIP], 0x5555);
  assert.equal(t.s.segAttr[SReg.ES]! & ATTR_UNUSABLE, ATTR_UNUSABLE, "ES nulled");
  assert.equal(t.s.segSel[SReg.DS], U_DATA);
});

test("pmode: INT n checks the gate DPL; gate faults carry IDT error codes with EXT", () => {
  const t = pmCpu();
  toUser(t);
  t.gate(IDT, 0x30, K_CODE, 0x100, 0x8e); // DPL 0
  interrupt(t.cpu, 0x30, IntKind.SOFT, -1);
  assert.deepEqual(t.takeFault(), [Vec.GP, 0x30 * 8 + 2]);
  t.gate(IDT, 0x31, K_CODE, 0x100, 0x6e); // not present, DPL 3
  interrupt(t.cpu, 0x31, IntKind.SOFT, -1);
  assert.deepEqual(t.takeFault(), [Vec.NP, 0x31 * 8 + 2]);
  interrupt(t.cpu, 0x31, IntKind.HW, -1);
  assert.deepEqual(t.takeFault(), [Vec.NP, 0x31 * 8 + 3], "EXT for external events");
  t.i32[Slot.IDTR_LIMIT] = 0x31 * 8 + 6;
  interrupt(t.cpu, 0x31, IntKind.EXC, -1);
  assert.deepEqual(t.takeFault(), [Vec.GP, 0x31 * 8 + 3]);
  // target code segment not present → #NP(selector | EXT)
  t.i32[Slot.IDTR_LIMIT] = 0x7ff;
  t.seg(GDT, 7, 0, 0xfffff, 0x1a); // code, not present
  t.gate(IDT, 0x32, 0x38, 0x100, 0xee);
  interrupt(t.cpu, 0x32, IntKind.HW, -1);
  assert.deepEqual(t.takeFault(), [Vec.NP, 0x39]);
  assert.equal(t.i32[Slot.CPL], 3, "nothing committed");
  assert.equal(t.r32[4], STACK3);
});

test("deliverException: #GP during #GP delivery → #DF; a fault delivering #DF is a triple fault", () => {
  const t = pmCpu();
  t.gate(IDT, 8, K_CODE, 0x800, 0x8e);
  // vector 13 gate is absent (type 0) → #GP(13*8+2+1) while delivering #GP → #DF(0)
  t.i32[Slot.EIP] = 0x4444;
  assert.equal(deliverException(t.cpu, Vec.GP, 0), false);
  assert.equal(t.faulted, false);
  assert.equal(t.i32[Slot.EIP], 0x800);
  assert.equal(t.r32p(0x8000 - 16), 0, "#DF error code 0");
  assert.equal(t.r32p(0x8000 - 12), 0x4444);
  // #PF whose gate is missing → #GP → #DF; with #DF missing too → triple fault
  const t2 = pmCpu();
  assert.equal(deliverException(t2.cpu, Vec.PF, 2), true);
  assert.equal(t2.triples, 1);
  assert.equal(t2.faulted, false);
  // benign first exception (#DB) with a missing gate: the #GP is delivered itself
  const t3 = pmCpu();
  t3.gate(IDT, 13, K_CODE, 0xd00, 0x8e);
  assert.equal(deliverException(t3.cpu, Vec.DB, -1), false);
  assert.equal(t3.i32[Slot.EIP], 0xd00);
  assert.equal(t3.r32p(0x8000 - 16), 1 * 8 + 2 + 1, "#GP(IDT entry 1 | EXT)");
});

test("deliverException: #PF while pushing the frame of a #PF → #DF", () => {
  const t = pmCpu();
  // paging with the stack page not present
  const PD = 0x20000;
  const PT = 0x21000;
  t.w32(PD, PT | 3);
  for (let i = 0; i < 256; i++) if (i !== 7) t.w32(PT + i * 4, (i << 12) | 3); // page 7 (0x7000..) absent
  t.i32[Slot.CR3] = PD;
  t.i32[Slot.CR0] = t.i32[Slot.CR0]! | (1 << 31);
  t.mmu.flush(true);
  t.gate(IDT, 14, K_CODE, 0xe00, 0x8e);
  t.gate(IDT, 8, K_CODE, 0x800, 0x8e);
  t.r32[4] = 0x8000; // frame goes to 0x7ff0.. (absent)
  deliverException(t.cpu, Vec.PF, 0);
  assert.equal(t.triples, 1, "#DF frame faults too: triple fault");
  const t2 = pmCpu();
  t2.gate(IDT, 14, K_CODE, 0xe00, 0x8e);
  t2.gate(IDT, 8, K_CODE, 0x800, 0x8e);
  t2.w32(TSS + 4, STACK0); // unused: same level
  t2.seg(GDT, 7, 0, 0xfffff, 0x92);
  // stack segment limit too small for the frame → #SS during #PF → #DF on ... the same stack: triple
  t2.setSegCache(SReg.SS, K_DATA, 0, 0x7ff8, 0x4093);
  t2.r32[4] = 0x8000;
  deliverException(t2.cpu, Vec.PF, 0);
  assert.equal(t2.triples, 1);
});

test("vm86: INT n needs IOPL 3; an interrupt to ring 0 pushes GS FS DS ES and clears them", () => {
  const t = pmCpu();
  t.gate(IDT, 0x10, K_CODE, 0x6000, 0x8e);
  t.gate(IDT, 0x0d, K_CODE, 0x6100, 0x8e);
  t.i32[Slot.EFLAGS] = 2 | F.VM | F.IF;
  t.i32[Slot.CPL] = 3;
  for (const [r, sel] of [
    [SReg.CS, 0x1000],
    [SReg.SS, 0x2000],
    [SReg.DS, 0x3000],
    [SReg.ES, 0x4000],
    [SReg.FS, 0x5000],
    [SReg.GS, 0x6000],
  ] as const)
    t.setSegCache(r, sel, sel << 4, 0xffff, 0xf3);
  assert.equal(t.vm86, true);
  t.r32[4] = 0x100;
  t.i32[Slot.EIP] = 0x22;
  interrupt(t.cpu, 0x10, IntKind.SOFT, -1);
  assert.deepEqual(t.takeFault(), [Vec.GP, 0], "IOPL < 3");
  interrupt(t.cpu, 0x10, IntKind.HW, -1);
  assert.equal(t.takeFault(), null);
  assert.equal(t.vm86, false);
  assert.equal(t.i32[Slot.CPL], 0);
  assert.equal(t.r32[4], STACK0 - 36);
  const f = [0, 4, 8, 12, 16, 20, 24, 28, 32].map((o) => t.r32p(STACK0 - 36 + o));
  assert.deepEqual(f, [0x22, 0x1000, 2 | F.VM | F.IF, 0x100, 0x2000, 0x4000, 0x3000, 0x5000, 0x6000]);
  for (const r of [SReg.DS, SReg.ES, SReg.FS, SReg.GS]) {
    assert.equal(t.s.segSel[r], 0);
    assert.equal(t.s.segAttr[r]! & ATTR_UNUSABLE, ATTR_UNUSABLE);
  }
  // IRETD at CPL 0 with VM in the image returns to vm86 and reloads all six segments
  iret(t.cpu, true);
  assert.equal(t.takeFault(), null);
  assert.equal(t.vm86, true);
  assert.equal(t.i32[Slot.CPL], 3);
  assert.equal(t.r32[4], 0x100);
  assert.equal(t.i32[Slot.EIP], 0x22);
  assert.equal(t.s.segBase[SReg.DS], 0x30000);
  assert.equal(t.s.segBase[SReg.GS], 0x60000);
  assert.equal(t.s.segBase[SReg.SS], 0x20000);
  // vm86 IRET with IOPL < 3 → #GP(0); with IOPL 3 it pops but keeps IOPL
  iret(t.cpu, false);
  assert.deepEqual(t.takeFault(), [Vec.GP, 0]);
  t.i32[Slot.EFLAGS] = 2 | F.VM | F.IOPL;
  t.w16(0x20100, 0x77);
  t.w16(0x20102, 0x1234);
  t.w16(0x20104, 0x0202); // IF, IOPL 0
  iret(t.cpu, false);
  assert.equal(t.takeFault(), null);
  assert.equal(t.s.segBase[SReg.CS], 0x12340);
  assert.equal(t.getFlags() & (F.IOPL | F.IF | F.VM), F.IOPL | F.IF | F.VM);
});

test("call gate to ring 0 copies parameters; RETF imm returns to ring 3", () => {
  const t = pmCpu();
  t.gate(GDT, 7, K_CODE, 0x9999, 0xec, 2); // 32-bit call gate, DPL 3, 2 dwords
  toUser(t);
  t.r32[4] = STACK3 - 8;
  t.w32(STACK3 - 8, 0xaaaa);
  t.w32(STACK3 - 4, 0xbbbb);
  t.i32[Slot.EIP] = 0x3333;
  farCall(t.cpu, 0x3b, 0, true);
  assert.equal(t.takeFault(), null);
  assert.equal(t.i32[Slot.CPL], 0);
  assert.equal(t.i32[Slot.EIP], 0x9999);
  assert.equal(t.r32[4], STACK0 - 24);
  const f = [0, 4, 8, 12, 16, 20].map((o) => t.r32p(STACK0 - 24 + o));
  assert.deepEqual(f, [0x3333, U_CODE, 0xaaaa, 0xbbbb, STACK3 - 8, U_DATA]);
  farRet(t.cpu, true, 8);
  assert.equal(t.takeFault(), null);
  assert.equal(t.i32[Slot.CPL], 3);
  assert.equal(t.r32[4], STACK3);
  assert.equal(t.i32[Slot.EIP], 0x3333);
  assert.equal(t.s.segSel[SReg.SS], U_DATA);
  // JMP through the same gate cannot raise the privilege level
  farJmp(t.cpu, 0x3b, 0, true);
  assert.deepEqual(t.takeFault(), [Vec.GP, K_CODE]);
  // CALL to a ring-0 code segment directly: #GP(sel)
  farCall(t.cpu, K_CODE, 0, true);
  assert.deepEqual(t.takeFault(), [Vec.GP, K_CODE]);
});

test("far JMP/CALL to a code segment at the same level; RETF checks the popped CS", () => {
  const t = pmCpu();
  farJmp(t.cpu, K_CODE16, 0x1234, false);
  assert.equal(t.takeFault(), null);
  assert.equal(t.cs32, false);
  assert.equal(t.i32[Slot.EIP], 0x1234);
  farCall(t.cpu, K_CODE, 0x10000, true);
  assert.equal(t.takeFault(), null);
  assert.equal(t.cs32, true);
  assert.equal(t.r32[4], 0x8000 - 8);
  assert.equal(t.r32p(0x7ff8), 0x1234);
  assert.equal(t.r32p(0x7ffc), K_CODE16);
  farRet(t.cpu, true, 0);
  assert.equal(t.takeFault(), null);
  assert.equal(t.i32[Slot.EIP], 0x1234);
  assert.equal(t.s.segSel[SReg.CS], K_CODE16);
  farJmp(t.cpu, K_DATA, 0, true);
  assert.deepEqual(t.takeFault(), [Vec.GP, K_DATA]);
  farJmp(t.cpu, 0x400, 0, true);
  assert.deepEqual(t.takeFault(), [Vec.GP, 0x400], "beyond the GDT limit");
  farJmp(t.cpu, 0, 0, true);
  assert.deepEqual(t.takeFault(), [Vec.GP, 0]);
  farJmp(t.cpu, K_CODE16, 0x10000, true);
  assert.deepEqual(t.takeFault(), [Vec.GP, 0], "EIP beyond the CS limit");
});

test("pmode IRET: IF changes only when CPL <= IOPL, IOPL only at CPL 0, VM never at CPL > 0", () => {
  const t = pmCpu();
  toUser(t);
  const frame = (eflags: number): void => {
    t.r32[4] = STACK3 - 12;
    t.w32(STACK3 - 12, 0x100);
    t.w32(STACK3 - 8, U_CODE);
    t.w32(STACK3 - 4, eflags);
  };
  t.i32[Slot.EFLAGS] = 2;
  frame(2 | F.IF | F.IOPL | F.VM | F.CF);
  iret(t.cpu, true);
  assert.equal(t.takeFault(), null);
  assert.equal(t.getFlags() & (F.IF | F.IOPL | F.VM | F.CF), F.CF, "CPL 3, IOPL 0");
  t.i32[Slot.EFLAGS] = 2 | F.IOPL;
  frame(2 | F.IF);
  iret(t.cpu, true);
  assert.equal(t.getFlags() & (F.IF | F.IOPL), F.IF | F.IOPL, "IOPL 3: IF may change, IOPL stays");
  // CPL 0: IOPL and IF change
  const k = pmCpu();
  k.i32[Slot.EFLAGS] = 2 | F.IF;
  k.w32(0x8000, 0x200);
  k.w32(0x8004, K_CODE);
  k.w32(0x8008, 2 | (2 << 12));
  iret(k.cpu, true);
  assert.equal(k.takeFault(), null);
  assert.equal(k.getFlags() & (F.IF | F.IOPL), 2 << 12);
  assert.equal(k.r32[4], 0x800c);
});

test("16-bit TSS stack switch with a 16-bit gate; conforming handler keeps CPL", () => {
  const t = pmCpu();
  // 16-bit TSS at 0x3400: SP0 = 0x6000, SS0 = K_DATA16 (0x38, 16-bit data)
  t.seg(GDT, 7, 0, 0xffff, 0x92, 0); // 0x38 16-bit data
  t.seg(GDT, 8, 0x3400, 0x2b, 0x83, 0); // 0x40 16-bit busy TSS
  t.w16(0x3402, 0x6000);
  t.w16(0x3404, 0x38);
  t.setSegCache(SReg.TR, 0x40, 0x3400, 0x2b, 0x83);
  toUser(t);
  t.gate(IDT, 0x40, K_CODE16, 0x1234, 0xe6); // 16-bit interrupt gate, DPL 3
  t.i32[Slot.EIP] = 0x777;
  interrupt(t.cpu, 0x40, IntKind.SOFT, -1);
  assert.equal(t.takeFault(), null);
  assert.equal(t.i32[Slot.CPL], 0);
  assert.equal(t.s.segSel[SReg.SS], 0x38);
  assert.equal(t.ss32, false);
  assert.equal(t.r16[8], 0x6000 - 10);
  const f = [0, 2, 4, 6, 8].map((o) => t.r16p(0x6000 - 10 + o));
  assert.deepEqual(f, [0x777, U_CODE, 2, STACK3 & 0xffff, U_DATA]);
  // conforming DPL 0 code from ring 3: no stack switch, CPL stays 3, CS RPL = 3
  const u = pmCpu();
  u.seg(GDT, 7, 0, 0xfffff, 0x9e); // 0x38 conforming code
  toUser(u);
  u.gate(IDT, 0x41, 0x38, 0x5000, 0xee);
  interrupt(u.cpu, 0x41, IntKind.SOFT, -1);
  assert.equal(u.takeFault(), null);
  assert.equal(u.i32[Slot.CPL], 3);
  assert.equal(u.s.segSel[SReg.CS], 0x3b);
  assert.equal(u.r32[4], STACK3 - 12);
});

test("stack switch faults: bad SS0 is #TS(SS|EXT), a small SS0 limit is #SS(SS|EXT), small TSS is #TS(TR|EXT)", () => {
  const t = pmCpu();
  toUser(t);
  t.gate(IDT, 0x20, K_CODE, 0x100, 0x8e);
  t.w32(TSS + 8, U_DATA); // RPL 3 for ring 0
  interrupt(t.cpu, 0x20, IntKind.HW, -1);
  assert.deepEqual(t.takeFault(), [Vec.TS, U_DATA & 0xfffc | 1]);
  t.w32(TSS + 8, 0); // null
  interrupt(t.cpu, 0x20, IntKind.HW, -1);
  assert.deepEqual(t.takeFault(), [Vec.TS, 1]);
  t.seg(GDT, 7, 0, 0x8ff0, 0x92, 0x4); // 0x38: limit below ESP0-20
  t.w32(TSS + 8, 0x38);
  interrupt(t.cpu, 0x20, IntKind.HW, -1);
  assert.deepEqual(t.takeFault(), [Vec.SS, 0x39]);
  t.setSegCache(SReg.TR, TSS_SEL, TSS, 0x8, 0x8b);
  interrupt(t.cpu, 0x20, IntKind.HW, -1);
  assert.deepEqual(t.takeFault(), [Vec.TS, TSS_SEL | 1]);
  assert.equal(t.i32[Slot.CPL], 3);
  assert.equal(t.s.segSel[SReg.SS], U_DATA);
  assert.equal(t.r32[4], STACK3);
});

test("IRET/RETF to a bad CS or SS: exact faults, nothing committed", () => {
  const t = pmCpu();
  t.seg(GDT, 7, 0, 0xfffff, 0x7a); // 0x3b: ring-3 code, not present
  const frame = (cs: number, ss: number): void => {
    t.r32[4] = 0x7000;
    t.w32(0x7000, 0x100);
    t.w32(0x7004, cs);
    t.w32(0x7008, 2);
    t.w32(0x700c, 0x5000);
    t.w32(0x7010, ss);
  };
  frame(0x3b, U_DATA);
  iret(t.cpu, true);
  assert.deepEqual(t.takeFault(), [Vec.NP, 0x38]);
  frame(U_CODE, K_DATA); // SS RPL 0 for ring 3
  iret(t.cpu, true);
  assert.deepEqual(t.takeFault(), [Vec.GP, K_DATA]);
  frame(U_CODE, 0);
  iret(t.cpu, true);
  assert.deepEqual(t.takeFault(), [Vec.GP, 0]);
  frame(U_CODE, U_CODE); // code segment as SS
  iret(t.cpu, true);
  assert.deepEqual(t.takeFault(), [Vec.GP, U_CODE & 0xfffc]);
  assert.equal(t.i32[Slot.CPL], 0);
  assert.equal(t.r32[4], 0x7000);
  frame(K_DATA, 0);
  farRet(t.cpu, true, 0);
  assert.deepEqual(t.takeFault(), [Vec.GP, K_DATA]);
  // RETF to an inner level is #GP(CS)
  toUser(t);
  t.r32[4] = 0x7000;
  t.w32(0x7004, K_CODE);
  farRet(t.cpu, true, 0);
  assert.deepEqual(t.takeFault(), [Vec.GP, K_CODE]);
});

test("16-bit call gate copies word parameters", () => {
  const t = pmCpu();
  t.gate(GDT, 7, K_CODE16, 0x4321, 0xe4, 3); // 16-bit call gate, 3 words
  toUser(t);
  t.r32[4] = STACK3 - 6;
  t.w16(STACK3 - 6, 0x1111);
  t.w16(STACK3 - 4, 0x2222);
  t.w16(STACK3 - 2, 0x3333);
  t.i32[Slot.EIP] = 0x55;
  farCall(t.cpu, 0x3b, 0, false);
  assert.equal(t.takeFault(), null);
  assert.equal(t.i32[Slot.EIP], 0x4321);
  assert.equal(t.r32[4], STACK0 - 14);
  const f = [0, 2, 4, 6, 8, 10, 12].map((o) => t.r16p(STACK0 - 14 + o));
  assert.deepEqual(f, [0x55, U_CODE, 0x1111, 0x2222, 0x3333, (STACK3 - 6) & 0xffff, U_DATA]);
});

/** A vm86 task under the pmCpu monitor: CS=0x1000 IP=0x22, SS=0x2000 SP=0x100, TSS with a redirection bitmap. */
function vm86Task(iopl: number, vme: boolean): TestCpu {
  const t = pmCpu();
  // I/O map base 0x88: the redirection bitmap is TSS+0x68..0x87 (limit covers it)
  t.w16(TSS + 0x66, 0x88);
  t.setSegCache(SReg.TR, TSS_SEL, TSS, 0x88, 0x8b);
  t.w8(TSS + 0x68 + (0x21 >>> 3), 1 << (0x21 & 7)); // INT 0x21 → protected-mode handler
  t.gate(IDT, 0x21, K_CODE, 0x6000, 0xee);
  t.gate(IDT, 0x13, K_CODE, 0x6100, 0xee);
  t.w16(0x13 * 4, 0x4444); // vm86 IVT entry 0x13 → 0x5000:0x4444
  t.w16(0x13 * 4 + 2, 0x5000);
  t.i32[Slot.CR4] = vme ? 1 : 0;
  t.i32[Slot.EFLAGS] = 2 | F.VM | (iopl << 12) | F.IF | F.TF;
  t.i32[Slot.CPL] = 3;
  t.setSegCache(SReg.CS, 0x1000, 0x10000, 0xffff, 0xf3);
  t.setSegCache(SReg.SS, 0x2000, 0x20000, 0xffff, 0xf3);
  t.r32[4] = 0x100;
  t.i32[Slot.EIP] = 0x22;
  return t;
}

test("VME: INT n redirected through the vm86 IVT when its bitmap bit is clear; VIF rules at IOPL < 3", () => {
  // IOPL 0, VIF set: pushed FLAGS has IF = VIF and IOPL 3; VIF and TF are cleared, IF kept
  const t = vm86Task(0, true);
  t.i32[Slot.EFLAGS] = (t.i32[Slot.EFLAGS]! | F.VIF) & ~F.TF;
  interrupt(t.cpu, 0x13, IntKind.SOFT, -1);
  assert.equal(t.takeFault(), null);
  assert.equal(t.vm86, true);
  assert.equal(t.s.segBase[SReg.CS], 0x50000);
  assert.equal(t.i32[Slot.EIP], 0x4444);
  assert.equal(t.r32[4], 0xfa);
  assert.equal(t.r16p(0x200fa), 0x22);
  assert.equal(t.r16p(0x200fc), 0x1000);
  assert.equal(t.r16p(0x200fe), 2 | F.IOPL | F.IF, "IF = VIF, IOPL 3");
  assert.equal(t.getFlags() & (F.VIF | F.IF), F.IF, "VIF cleared, IF untouched");
  // 16-bit IRET back: IF of the image goes to VIF, IOPL stays 0
  iret(t.cpu, false);
  assert.equal(t.takeFault(), null);
  assert.equal(t.i32[Slot.EIP], 0x22);
  assert.equal(t.getFlags() & (F.VIF | F.IOPL | F.IF), F.VIF | F.IF);
  // bit set at IOPL 0: #GP(0); at IOPL 3: the IDT handler
  interrupt(t.cpu, 0x21, IntKind.SOFT, -1);
  assert.deepEqual(t.takeFault(), [Vec.GP, 0]);
  const u = vm86Task(3, true);
  interrupt(u.cpu, 0x21, IntKind.SOFT, -1);
  assert.equal(u.takeFault(), null);
  assert.equal(u.vm86, false);
  assert.equal(u.i32[Slot.EIP], 0x6000);
  // IOPL 3, bit clear: redirected, IF cleared
  const w = vm86Task(3, true);
  interrupt(w.cpu, 0x13, IntKind.SOFT, -1);
  assert.equal(w.i32[Slot.EIP], 0x4444);
  assert.equal(w.getFlags() & (F.IF | F.TF), 0);
  assert.equal(w.r16p(0x200fe), 2 | F.IOPL | F.IF | F.TF);
  // without VME the bitmap is not consulted
  const x = vm86Task(3, false);
  interrupt(x.cpu, 0x13, IntKind.SOFT, -1);
  assert.equal(x.vm86, false);
  assert.equal(x.i32[Slot.EIP], 0x6100);
});

test("VME IRET at IOPL < 3: #GP when it would set TF or enable a pending virtual interrupt; IRETD always #GP", () => {
  const t = vm86Task(0, true);
  const frame = (fl: number): void => {
    t.r32[4] = 0x100;
    t.w16(0x20100, 0x10);
    t.w16(0x20102, 0x1000);
    t.w16(0x20104, fl);
  };
  frame(F.TF);
  iret(t.cpu, false);
  assert.deepEqual(t.takeFault(), [Vec.GP, 0]);
  t.i32[Slot.EFLAGS] = t.i32[Slot.EFLAGS]! | F.VIP;
  frame(F.IF);
  iret(t.cpu, false);
  assert.deepEqual(t.takeFault(), [Vec.GP, 0]);
  frame(0);
  iret(t.cpu, false);
  assert.equal(t.takeFault(), null);
  assert.equal(t.r32[4], 0x106);
  iret(t.cpu, true);
  assert.deepEqual(t.takeFault(), [Vec.GP, 0]);
});

test("far JMP/CALL through a gate: gate DPL below CPL or RPL is #GP(gate), a gate not present #NP(gate), a null target #GP(0)", () => {
  const t = pmCpu();
  t.gate(GDT, 7, K_CODE, 0x9999, 0x8c, 0); // call gate, DPL 0
  t.gate(GDT, 8, K_CODE, 0x9999, 0x6c, 0); // call gate, DPL 3, not present
  t.gate(GDT, 9, 0, 0x9999, 0xec, 0); // call gate, DPL 3, null target selector
  t.i32[Slot.GDTR_LIMIT] = 0x4f;
  toUser(t);
  for (const far of [farJmp, farCall]) {
    far(t.cpu, 0x3b, 0, true);
    assert.deepEqual(t.takeFault(), [Vec.GP, 0x38], `${far.name}: gate DPL 0 from ring 3`);
    far(t.cpu, 0x43, 0, true);
    assert.deepEqual(t.takeFault(), [Vec.NP, 0x40], `${far.name}: gate not present`);
    far(t.cpu, 0x4b, 0, true);
    assert.deepEqual(t.takeFault(), [Vec.GP, 0], `${far.name}: null target`);
    assert.equal(t.i32[Slot.CPL], 3);
  }
});
