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
  switch (rnd() % 4) {
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

/**
 * Fresh state with `code` at CODE. With `keepCode` the decoded entries of the code page stay (the
 * same code ran before: the fast paths take only instructions already in the decode cache); the
 * bytes around the code change, but nothing is ever decoded from them.
 */
function setup(cpu: Cpu, mem: PhysMem, code: number[], regs: Int32Array, fill: number, keepCode = false): void {
  mem.ram.fill(fill & 0xff, 0, CHECKED);
  mem.ram.set(code, CODE);
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
    const aCount = a.cpu.instructionCount;
    setup(a.cpu, a.mem, code, regs, fill);
    for (let i = 0; i < 2; i++) a.cpu.step();
    // b: once to fill the decode cache, then again from the same state through the fast paths
    setup(b.cpu, b.mem, code, regs, fill);
    for (let i = 0; i < 2; i++) b.cpu.run(1);
    const count = b.cpu.instructionCount;
    setup(b.cpu, b.mem, code, regs, fill, true);
    for (let i = 0; i < 2; i++) b.cpu.run(1);
    const hex = (xs: Iterable<number>): string => [...xs].map((x) => (x >>> 0).toString(16)).join(" ");
    const what = `trial ${String(t)}: ${hex(code)}; regs ${hex(regs)}; fill ${(fill & 0xff).toString(16)}`;
    assert.deepEqual([...b.cpu.r32], [...a.cpu.r32], what);
    assert.equal(b.cpu.i32[Slot.EIP], a.cpu.i32[Slot.EIP], what);
    assert.equal(b.cpu.getFlags(), a.cpu.getFlags(), what);
    assert.deepEqual([...b.cpu.segSel], [...a.cpu.segSel], what);
    assert.deepEqual([...b.cpu.segBase], [...a.cpu.segBase], what);
    assert.equal(b.cpu.instructionCount - count, a.cpu.instructionCount - aCount, what);
    assert.ok(Buffer.from(b.mem.ram.subarray(0, CHECKED)).equals(a.mem.ram.subarray(0, CHECKED)), what);
  }
});
