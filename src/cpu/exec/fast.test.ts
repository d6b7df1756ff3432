/**
 * Differential test of the fast paths (exec/fast.ts, the inlined fetch in Cpu.run()) against the
 * general executor: step() always decodes into the Cpu's fields and runs exec.ts, run() takes the
 * fast forms. Random instructions of the fast set (with random prefixes, ModRM, SIB, displacements
 * and immediates) run on two identical machines from random register and lazy-flag states; the
 * registers, EFLAGS, segment state, instruction count and RAM must come out the same.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { Cpu } from "../cpu.ts";
import { SReg, Slot } from "../state.ts";
import { PhysMem } from "../../mem/PhysMem.ts";
import { IoPortSpace } from "../../pdm/IoPortSpace.ts";
import { IrqRouter } from "../../pdm/IrqLine.ts";
import { ManualClock } from "../../tm/VirtualClock.ts";

const RAM = 1 << 19;
const CODE = 0x8000;
const CHECKED = RAM;

function machine(): { cpu: Cpu; mem: PhysMem } {
  const mem = new PhysMem(RAM);
  const cpu = new Cpu({
    mem,
    io: new IoPortSpace(),
    irqs: new IrqRouter(),
    clock: new ManualClock(),
    onTripleFault: () => undefined,
  });
  return { cpu, mem };
}

let seed = 0x2545f491;
function rnd(): number {
  seed ^= seed << 13;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  return seed >>> 0;
}

/** Opcodes of the fast set (0x100 | b for 0F b). */
const OPS: number[] = [
  0x01, 0x03, 0x05, 0x09, 0x0b, 0x0d, 0x11, 0x13, 0x15, 0x19, 0x1b, 0x1d, 0x21, 0x23, 0x25, 0x29, 0x2b, 0x2d, 0x31,
  0x33, 0x35, 0x39, 0x3b, 0x3d, 0x38, 0x3a, 0x3c, 0x80, 0x81, 0x83, 0x84, 0x85, 0x88, 0x89, 0x8a, 0x8b, 0x8d, 0x90,
  0xc1, 0xc3, 0xc6, 0xc7, 0xd1, 0xd3, 0xe2, 0xe8, 0xe9, 0xeb, 0xff, 0x1af, 0x1b6, 0x1b7, 0x00, 0x08, 0x10, 0x18, 0x20,
  0x28, 0x30, 0x02, 0x0a, 0x12, 0x1a, 0x22, 0x2a, 0x32, 0x04, 0x0c, 0x14, 0x1c, 0x24, 0x2c, 0x34, 0x68, 0x6a, 0x87,
  0x99, 0xa0, 0xa1, 0xa2, 0xa3, 0xa8, 0xa9, 0xc9, 0xf6, 0xf7, 0x1ba, 0x1be, 0x1bf,
];
for (let i = 0; i < 16; i++) OPS.push(0x40 + i, 0x50 + i, 0x70 + i, 0x140 + i, 0x180 + i, 0x190 + i);
for (let i = 0; i < 8; i++) OPS.push(0xb0 + i, 0xb8 + i);

/** ALU ops that leave lazy flags of each kind and size behind. */
const SETUP: number[][] = [
  [0x01, 0xd8], // add eax, ebx
  [0x29, 0xca], // sub edx, ecx
  [0x21, 0xf7], // and edi, esi
  [0x00, 0xd8], // add al, bl
  [0x66, 0x29, 0xca], // sub dx, cx
  [0x19, 0xd8], // sbb eax, ebx
  [0x41], // inc ecx
  [0xd1, 0xe0], // shl eax, 1
  [0xf8], // clc
];

function regValue(): number {
  switch (rnd() % 5) {
    case 4:
      // around the code (writes over decoded instructions) and the page tables (paging trials)
      return ((rnd() % 2 === 0 ? CODE : PD) + (rnd() % 64) - 32) | 0;
    case 0:
      return rnd() | 0;
    case 1:
      return (0x10000 + (rnd() % 0x20000)) | 0;
    case 2:
      return rnd() % 8;
    default:
      return [0, -1, 0x7fffffff, 0x80000000 | 0, 0xffff, 0x8000][rnd() % 6]!;
  }
}

/** Paging trials: page directory and the page table of linear 0..4 MiB (the last two RAM pages). */
const PD = RAM - 0x2000;
const PT = RAM - 0x1000;

/**
 * Page tables for a paging trial, from the trial's seed `ps`: most pages map to themselves, some to
 * other RAM pages (aliases), to unassigned memory past the RAM, read-only or not at all. The code
 * page and the tables themselves map to themselves (present; the tables may be read-only).
 */
function pageTables(mem: PhysMem, ps: number): void {
  const dv = new DataView(mem.ram.buffer, mem.ram.byteOffset);
  dv.setInt32(PD, PT | 7, true);
  let x = ps | 1;
  const next = (): number => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x >>> 0;
  };
  for (let i = 0; i < 1024; i++) {
    const r = next() % 20;
    let pte: number;
    if (i === CODE >>> 12) pte = CODE | 3;
    else if (i === PD >>> 12 || i === PT >>> 12) pte = (i << 12) | (r < 10 ? 3 : 1);
    else if (i >= RAM >>> 12 && r < 14) pte = 0;
    else if (r === 0) pte = 0;
    else if (r === 1)
      pte = ((0x200 + i) << 12) | 3; // unassigned physical memory
    else if (r === 2)
      pte = (i << 12) | 1; // read-only
    else if (r < 5) pte = ((next() % (RAM >>> 12)) << 12) | 3;
    else pte = ((i % (RAM >>> 12)) << 12) | 3;
    if (pte !== 0) pte |= 1;
    dv.setInt32(PT + i * 4, pte, true);
  }
}

/**
 * Fresh state with `code` at CODE. With `keepCode` the decoded entries of the code page stay (the
 * same code ran before: the fast paths take only instructions already in the decode cache); the
 * bytes around the code change, but nothing is ever decoded from them.
 */
function setup(cpu: Cpu, mem: PhysMem, code: number[], regs: Int32Array, fill: number, keepCode = false, ps = 0): void {
  mem.ram.fill(fill & 0xff, 0, CHECKED);
  mem.ram.set(code, CODE);
  if (ps !== 0) pageTables(mem, ps);
  if (keepCode) {
    cpu.codeWritten(0, CODE & ~0xfff);
    cpu.codeWritten((CODE & ~0xfff) + 0x1000, CHECKED - (CODE & ~0xfff) - 0x1000);
  } else {
    cpu.codeWritten(0, CHECKED);
  }
  for (let sr = 0; sr < 6; sr++) {
    cpu.segSel[sr] = 0;
    cpu.segBase[sr] = 0;
    cpu.segLimit[sr] = -1;
    cpu.segAttr[sr] = (sr === SReg.CS ? 0x9b : 0x93) | 0x4000;
  }
  cpu.r32.set(regs);
  cpu.i32[Slot.EIP] = CODE;
  cpu.setFlags(0x2);
  if (ps !== 0) {
    // protected mode (CPL 0) with paging and CR0.WP; TLB entries for some pages, read or write
    // (a write entry only for pages the walk sets dirty), as the fast paths find them in a guest
    cpu.i32[Slot.CR0] = 0x80010011 | 0;
    cpu.i32[Slot.CR3] = PD;
    cpu.i32[Slot.CR4] = 0;
    cpu.i32[Slot.CPL] = 0;
    cpu.mmu.flush(true);
    cpu.pagingChanged();
    let x = ps;
    for (let i = 0; i < 160; i++) {
      x = (Math.imul(x, 1103515245) + 12345) | 0;
      const k = (x >>> 16) % 3;
      if (k === 0) continue;
      const pte = new DataView(mem.ram.buffer, mem.ram.byteOffset).getInt32(PT + i * 4, true);
      if ((pte & 1) === 0) continue;
      cpu.mmu.translate(i << 12, k === 2 && (pte & 2) !== 0, false);
    }
    assert.equal(cpu.faulted, false);
  } else {
    cpu.i32[Slot.CR0] = 0x10;
    cpu.mmu.flush(true);
    cpu.pagingChanged();
  }
  cpu.modeChanged();
}

test("fast paths match the general executor on random instructions", () => {
  const a = machine();
  const b = machine();
  const regs = new Int32Array(8);
  const trials = 12000;
  for (let t = 0; t < trials; t++) {
    const code: number[] = [...SETUP[rnd() % SETUP.length]!];
    const r = rnd() % 8;
    if (r === 0) code.push(0x66);
    else if (r === 1) code.push(0x67);
    const op = OPS[rnd() % OPS.length]!;
    if (op >= 0x100) code.push(0x0f, op & 0xff);
    else code.push(op);
    for (let i = 0; i < 10; i++) code.push(rnd() & 0xff);
    for (let i = 0; i < 8; i++) regs[i] = regValue();
    const fill = rnd();
    // half of the trials in protected mode with paging (memory operands through the TLB)
    const ps = t % 2 === 0 ? 0 : rnd() | 1;
    const aCount = a.cpu.instructionCount;
    setup(a.cpu, a.mem, code, regs, fill, false, ps);
    for (let i = 0; i < 2; i++) a.cpu.step();
    // b: once to fill the decode cache, then again from the same state through the fast paths
    setup(b.cpu, b.mem, code, regs, fill, false, ps);
    for (let i = 0; i < 2; i++) b.cpu.run(1);
    const count = b.cpu.instructionCount;
    setup(b.cpu, b.mem, code, regs, fill, true, ps);
    for (let i = 0; i < 2; i++) b.cpu.run(1);
    const hex = (xs: Iterable<number>): string => [...xs].map((x) => (x >>> 0).toString(16)).join(" ");
    const what = `trial ${String(t)}: ${hex(code)}; regs ${hex(regs)}; fill ${(fill & 0xff).toString(16)}`;
    assert.deepEqual([...b.cpu.r32], [...a.cpu.r32], what);
    assert.equal(b.cpu.i32[Slot.EIP], a.cpu.i32[Slot.EIP], what);
    assert.equal(b.cpu.getFlags(), a.cpu.getFlags(), what);
    assert.equal(b.cpu.i32[Slot.CR2], a.cpu.i32[Slot.CR2], what);
    assert.deepEqual([...b.cpu.segSel], [...a.cpu.segSel], what);
    assert.deepEqual([...b.cpu.segBase], [...a.cpu.segBase], what);
    assert.equal(b.cpu.instructionCount - count, a.cpu.instructionCount - aCount, what);
    assert.ok(Buffer.from(b.mem.ram.subarray(0, CHECKED)).equals(a.mem.ram.subarray(0, CHECKED)), what);
  }
});

test("fast memory writes drop decoded code they overwrite (with and without paging)", () => {
  for (const ps of [0, 0x1234567]) {
    for (const [store, len] of [
      [[0x89, 0x03], 2], // mov [ebx], eax
      [[0x50], 1], // push eax (ESP = ebx + 4)
      [[0x01, 0x03], 2], // add [ebx], eax
    ] as const) {
      const results: number[] = [];
      for (const fast of [false, true]) {
        const { cpu, mem } = machine();
        // the store, NOPs up to CODE + 4, the four bytes it overwrites (aligned), a NOP
        const code = [...store, ...new Array<number>(4 - len).fill(0x90), 0x90, 0x90, 0x90, 0x90, 0x90];
        const regs = new Int32Array(8);
        const run = (eax: number, keep: boolean): void => {
          regs[0] = eax;
          regs[1] = 0;
          regs[3] = CODE + 4;
          regs[4] = CODE + 8;
          setup(cpu, mem, code, regs, 0, keep, ps);
          // a TLB entry that allows direct writes to the code page
          cpu.mmu.translate(CODE, true, false);
          for (let i = 0; i < 9 - len; i++) {
            if (fast) cpu.run(1);
            else cpu.step();
          }
        };
        run(0, false); // decodes the NOPs
        // add [ebx], eax adds to 0x90909090: 0x41414141 - 0x90909090 gives INC ECX x4
        run(store[0] === 0x01 ? (0x41414141 - 0x90909090) | 0 : 0x41414141, true);
        assert.equal(cpu.faulted, false);
        results.push(cpu.r32[1]!, cpu.i32[Slot.EIP]!);
      }
      assert.deepEqual(results, [4, CODE + 8, 4, CODE + 8], `${store.join(" ")} paging ${ps}`);
    }
  }
});
