/**
 * CPU core tests: guest code as bytes in RAM, run through cpu.run(). The 16-bit one-byte map is
 * covered by the SST vectors (test/vectors); these cover 32-bit operation, the 0F map, the run
 * loop (HLT, interrupts, STI shadow, budget), the decode cache, faults and protected mode entry.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { Cpu } from "./cpu.ts";
import { F, SReg, Slot } from "./state.ts";
import { CpuExit } from "./types.ts";
import { PhysMem } from "../mem/PhysMem.ts";
import { IoPortSpace } from "../pdm/IoPortSpace.ts";
import { IrqRouter } from "../pdm/IrqLine.ts";
import { ManualClock } from "../tm/VirtualClock.ts";

interface M {
  cpu: Cpu;
  mem: PhysMem;
  irqs: IrqRouter;
  io: IoPortSpace;
}

function machine(): M {
  const mem = new PhysMem(2 << 20);
  const irqs = new IrqRouter();
  const io = new IoPortSpace();
  const cpu = new Cpu({ mem, io, irqs, clock: new ManualClock(), onTripleFault: () => undefined });
  return { cpu, mem, irqs, io };
}

/** Puts code at `at` and starts there: flat segments, 32-bit (big real mode with D=1) or 16-bit real mode. */
function load(m: M, code: number[], bits: 16 | 32, at = 0x1000): void {
  const { cpu, mem } = m;
  mem.ram.set(code, at);
  cpu.codeWritten(at, code.length);
  for (let sr = 0; sr < 6; sr++) {
    cpu.segSel[sr] = 0;
    cpu.segBase[sr] = 0;
    cpu.segLimit[sr] = bits === 32 ? -1 : 0xffff;
    cpu.segAttr[sr] = (sr === SReg.CS ? 0x9b : 0x93) | (bits === 32 ? 0x4000 : 0);
  }
  cpu.i32[Slot.EIP] = at;
  cpu.r32[4] = 0x8000;
  cpu.modeChanged();
}

/** Real-mode IVT entry → handler (0:handler). */
function ivt(m: M, vec: number, handler: number, code: number[]): void {
  m.mem.ram[vec * 4] = handler & 0xff;
  m.mem.ram[vec * 4 + 1] = handler >> 8;
  m.mem.ram[vec * 4 + 2] = 0;
  m.mem.ram[vec * 4 + 3] = 0;
  m.mem.ram.set(code, handler);
  m.cpu.codeWritten(handler, code.length);
}

function run(m: M, max = 1_000_000): CpuExit {
  return m.cpu.run(max);
}

const u32 = (v: number): number => v >>> 0;

test("reset: the documented i686 state", () => {
  const { cpu } = machine();
  assert.equal(cpu.segSel[SReg.CS], 0xf000);
  assert.equal(u32(cpu.segBase[SReg.CS]!), 0xffff0000);
  assert.equal(cpu.i32[Slot.EIP], 0xfff0);
  assert.equal(cpu.r32[2], 0x0633);
  assert.equal(u32(cpu.i32[Slot.CR0]!), 0x60000010);
  assert.equal(cpu.getFlags(), 2);
  assert.equal(cpu.pmode, false);
  assert.equal(cpu.cs32, false);
});

test("32-bit ADD sets CF, ZF, AF, PF lazily; PUSHFD materializes them", () => {
  const m = machine();
  // mov eax,-1; mov ebx,1; add eax,ebx; pushfd; hlt
  load(m, [0xb8, 0xff, 0xff, 0xff, 0xff, 0xbb, 1, 0, 0, 0, 0x01, 0xd8, 0x9c, 0xf4], 32);
  assert.equal(run(m), CpuExit.HALTED);
  assert.equal(m.cpu.r32[0], 0);
  const pushed = m.mem.ram[0x7ffc]! | (m.mem.ram[0x7ffd]! << 8);
  assert.equal(pushed & 0x8d5, F.CF | F.ZF | F.AF | F.PF);
  assert.equal(m.cpu.getFlags() & 0x8d5, F.CF | F.ZF | F.AF | F.PF);
});

test("32-bit MUL, IDIV, DIV with a 64-bit dividend", () => {
  const m = machine();
  load(
    m,
    [
      0xb8,
      0xff,
      0xff,
      0xff,
      0xff, // mov eax,-1
      0xb9,
      0xff,
      0xff,
      0xff,
      0xff, // mov ecx,-1
      0xf7,
      0xe1, // mul ecx
      0x89,
      0xc6, // mov esi,eax
      0x89,
      0xd7, // mov edi,edx
      0xb8,
      0xf9,
      0xff,
      0xff,
      0xff, // mov eax,-7
      0x99, // cdq
      0xb9,
      2,
      0,
      0,
      0, // mov ecx,2
      0xf7,
      0xf9, // idiv ecx
      0x89,
      0xc3, // mov ebx,eax
      0x89,
      0xd5, // mov ebp,edx
      0xba,
      1,
      0,
      0,
      0, // mov edx,1
      0x31,
      0xc0, // xor eax,eax
      0xb9,
      3,
      0,
      0,
      0, // mov ecx,3
      0xf7,
      0xf1, // div ecx
      0xf4,
    ],
    32,
  );
  assert.equal(run(m), CpuExit.HALTED);
  const r = m.cpu.r32;
  assert.equal(r[6], 1);
  assert.equal(u32(r[7]!), 0xfffffffe);
  assert.equal(r[3], -3);
  assert.equal(r[5], -1);
  assert.equal(u32(r[0]!), 1431655765);
  assert.equal(r[2], 1);
});

test("DIV overflow raises #DE at the faulting instruction (real mode IVT)", () => {
  const m = machine();
  ivt(m, 0, 0x2000, [0xf4]);
  // mov dx,1; mov ax,0; mov cx,1; div cx (quotient 0x10000 overflows) ; hlt
  load(m, [0xba, 1, 0, 0xb8, 0, 0, 0xb9, 1, 0, 0xf7, 0xf1, 0xf4], 16);
  assert.equal(run(m), CpuExit.HALTED);
  assert.equal(m.cpu.i32[Slot.EIP], 0x2001);
  // pushed IP is the DIV itself (0x1009)
  const sp = m.cpu.r16[8]!;
  assert.equal(m.mem.ram[sp]! | (m.mem.ram[sp + 1]! << 8), 0x1009);
});

test("BSWAP, BSF, BSR, BT, SETcc, SHLD, SHRD, MOVZX, MOVSX, CMOVcc", () => {
  const m = machine();
  load(
    m,
    [
      0xb8,
      0x78,
      0x56,
      0x34,
      0x12, // mov eax,0x12345678
      0x0f,
      0xc8, // bswap eax -> 0x78563412
      0x0f,
      0xbc,
      0xd8, // bsf ebx,eax -> 1
      0x0f,
      0xbd,
      0xc8, // bsr ecx,eax -> 30
      0x0f,
      0xa3,
      0xd8, // bt eax,ebx -> CF=1
      0x0f,
      0x92,
      0xc2, // setb dl
      0xbe,
      0x78,
      0x56,
      0x34,
      0x12, // mov esi,0x12345678
      0xbf,
      0xf0,
      0xde,
      0xbc,
      0x9a, // mov edi,0x9abcdef0
      0x89,
      0xf5, // mov ebp,esi
      0x0f,
      0xa4,
      0xfe,
      0x08, // shld esi,edi,8 -> 0x3456789a
      0x0f,
      0xac,
      0xfd,
      0x08, // shrd ebp,edi,8 -> 0xf0123456
      0x0f,
      0xbe,
      0xc2, // movsx eax,dl
      0xf4,
    ],
    32,
  );
  assert.equal(run(m), CpuExit.HALTED);
  const r = m.cpu.r32;
  assert.equal(r[3], 1);
  assert.equal(r[1], 30);
  assert.equal(m.cpu.r8[8], 1); // DL
  assert.equal(u32(r[6]!), 0x3456789a);
  assert.equal(u32(r[5]!), 0xf0123456);
  assert.equal(r[0], 1); // movsx eax, dl (dl = 1)

  const m2 = machine();
  load(
    m2,
    [
      0xb0,
      0x80, // mov al,0x80
      0x0f,
      0xbe,
      0xd8, // movsx ebx,al -> 0xffffff80
      0x0f,
      0xb6,
      0xc8, // movzx ecx,al -> 0x80
      0x39,
      0xcb, // cmp ebx,ecx (signed -128 < 128)
      0x0f,
      0x4c,
      0xd3, // cmovl edx,ebx
      0x0f,
      0x4f,
      0xf3, // cmovg esi,ebx (not taken)
      0xf4,
    ],
    32,
  );
  m2.cpu.r32[6] = 77;
  assert.equal(run(m2), CpuExit.HALTED);
  assert.equal(u32(m2.cpu.r32[3]!), 0xffffff80);
  assert.equal(m2.cpu.r32[1], 0x80);
  assert.equal(u32(m2.cpu.r32[2]!), 0xffffff80);
  assert.equal(m2.cpu.r32[6], 77);
});

test("BTS with a negative register bit offset addresses memory below the operand", () => {
  const m = machine();
  // mov ebx,0x3010; mov eax,-1; bts [ebx],eax ; hlt  -> sets bit 31 of dword at 0x300c
  load(m, [0xbb, 0x10, 0x30, 0, 0, 0xb8, 0xff, 0xff, 0xff, 0xff, 0x0f, 0xab, 0x03, 0xf4], 32);
  assert.equal(run(m), CpuExit.HALTED);
  assert.equal(m.mem.ram[0x300f], 0x80);
  assert.equal(m.cpu.getFlags() & F.CF, 0);
});

test("CMPXCHG8B, CMPXCHG, XADD", () => {
  const m = machine();
  m.mem.ram.set([0x22, 0x22, 0x22, 0x22, 0x11, 0x11, 0x11, 0x11], 0x3000);
  load(
    m,
    [
      0xb8,
      0x22,
      0x22,
      0x22,
      0x22,
      0xba,
      0x11,
      0x11,
      0x11,
      0x11,
      0xbb,
      0x44,
      0x44,
      0x44,
      0x44,
      0xb9,
      0x33,
      0x33,
      0x33,
      0x33,
      0x0f,
      0xc7,
      0x0d,
      0x00,
      0x30,
      0,
      0, // cmpxchg8b [0x3000]
      0x0f,
      0x94,
      0x05,
      0x10,
      0x30,
      0,
      0, // setz [0x3010]
      0x0f,
      0xc7,
      0x0d,
      0x00,
      0x30,
      0,
      0, // again: mismatch now -> edx:eax = memory
      0x0f,
      0x94,
      0x05,
      0x11,
      0x30,
      0,
      0, // setz [0x3011]
      0xc7,
      0x05,
      0x20,
      0x30,
      0,
      0,
      7,
      0,
      0,
      0, // mov dword [0x3020],7
      0xbe,
      5,
      0,
      0,
      0, // mov esi,5
      0x0f,
      0xc1,
      0x35,
      0x20,
      0x30,
      0,
      0, // xadd [0x3020],esi
      0xb8,
      12,
      0,
      0,
      0, // mov eax,12
      0xbf,
      99,
      0,
      0,
      0, // mov edi,99
      0x0f,
      0xb1,
      0x3d,
      0x20,
      0x30,
      0,
      0, // cmpxchg [0x3020],edi (eax==12 -> store 99)
      0xf4,
    ],
    32,
  );
  assert.equal(run(m), CpuExit.HALTED);
  const ram = m.mem.ram;
  assert.deepEqual(Array.from(ram.subarray(0x3000, 0x3008)), [0x44, 0x44, 0x44, 0x44, 0x33, 0x33, 0x33, 0x33]);
  assert.equal(ram[0x3010], 1);
  assert.equal(ram[0x3011], 0);
  assert.equal(m.cpu.r32[6], 7);
  assert.equal(ram[0x3020], 99);
});

test("Jcc rel32 loop runs 1000 times; the budget stops and resumes run()", () => {
  const m = machine();
  // xor eax,eax; mov ecx,1000; L: inc eax; dec ecx; jnz L (rel32); hlt
  load(m, [0x31, 0xc0, 0xb9, 0xe8, 0x03, 0, 0, 0x40, 0x49, 0x0f, 0x85, 0xf8, 0xff, 0xff, 0xff, 0xf4], 32);
  assert.equal(m.cpu.run(100), CpuExit.BUDGET);
  assert.equal(run(m), CpuExit.HALTED);
  assert.equal(m.cpu.r32[0], 1000);
  assert.equal(m.cpu.instructionCount, 2 + 3000 + 1);
});

test("REP MOVSD copies in chunks (interruptible), REPE CMPSB stops at a difference", () => {
  const m = machine();
  const n = 100000;
  for (let i = 0; i < n * 4; i++) m.mem.ram[0x100000 + i] = (i * 7) & 0xff;
  // mov esi,0x100000; mov edi,0x180000; mov ecx,n; cld; rep movsd; hlt
  load(
    m,
    [0xbe, 0, 0, 0x10, 0, 0xbf, 0, 0, 0x18, 0, 0xb9, n & 0xff, (n >> 8) & 0xff, n >> 16, 0, 0xfc, 0xf3, 0xa5, 0xf4],
    32,
  );
  assert.equal(m.cpu.run(6), CpuExit.BUDGET); // 4 setup instructions, then two REP chunks
  assert.ok(m.cpu.r32[1]! > 0 && m.cpu.r32[1]! < n, "the REP is interruptible between chunks");
  assert.equal(m.cpu.i32[Slot.EIP], 0x1010); // back at the REP MOVSD
  assert.equal(run(m), CpuExit.HALTED);
  assert.equal(m.cpu.r32[1], 0);
  assert.equal(m.cpu.r32[6], 0x100000 + n * 4);
  assert.deepEqual(m.mem.ram.subarray(0x180000, 0x180000 + n * 4), m.mem.ram.subarray(0x100000, 0x100000 + n * 4));

  const m2 = machine();
  m2.mem.ram.set([1, 2, 3, 4], 0x3000);
  m2.mem.ram.set([1, 2, 9, 4], 0x4000);
  // mov esi,0x3000; mov edi,0x4000; mov ecx,4; repe cmpsb; hlt
  load(m2, [0xbe, 0, 0x30, 0, 0, 0xbf, 0, 0x40, 0, 0, 0xb9, 4, 0, 0, 0, 0xf3, 0xa6, 0xf4], 32);
  assert.equal(run(m2), CpuExit.HALTED);
  assert.equal(m2.cpu.r32[1], 1);
  assert.equal(m2.cpu.r32[6], 0x3003);
  assert.equal(m2.cpu.getFlags() & F.ZF, 0);
});

test("self-modifying code: a write to an executed instruction is seen", () => {
  const m = machine();
  // xor eax,eax; mov cl,2; L: nop; mov byte [L],0x40 (inc eax); dec cl; jnz L; hlt
  load(m, [0x31, 0xc0, 0xb1, 0x02, 0x90, 0xc6, 0x05, 0x04, 0x10, 0, 0, 0x40, 0xfe, 0xc9, 0x75, 0xf4, 0xf4], 32);
  assert.equal(run(m), CpuExit.HALTED);
  assert.equal(m.cpu.r32[0], 1);

  // a write into the middle of an executed instruction (its imm32) drops that instruction only
  const m2 = machine();
  // mov cl,2; L: mov eax,0x44332211; mov byte [0x1006],0x55; dec cl; jnz L; hlt
  load(
    m2,
    [0xb1, 2, 0xb8, 0x11, 0x22, 0x33, 0x44, 0xc6, 0x05, 0x06, 0x10, 0, 0, 0x55, 0xfe, 0xc9, 0x75, 0xf0, 0xf4],
    32,
  );
  assert.equal(run(m2), CpuExit.HALTED);
  assert.equal(u32(m2.cpu.r32[0]!), 0x55332211);
});

test("HLT waits; INTR with IF=1 wakes it; STI shadows one instruction", () => {
  const m = machine();
  let pending = false;
  let acks = 0;
  m.irqs.registerController(
    {
      hasInterrupt: () => pending,
      acknowledge: () => {
        pending = false;
        acks++;
        return 0x20;
      },
    },
    () => undefined,
  );
  ivt(m, 0x20, 0x2000, [0xb8, 0x34, 0x12, 0xf4]); // mov ax,0x1234; hlt
  // sti; nop; hlt
  load(m, [0xfb, 0x90, 0xf4], 16);
  pending = true;
  // STI, then the NOP must run before the interrupt is taken (shadow): after 2 instructions
  // the interrupt is delivered before HLT.
  assert.equal(m.cpu.run(1), CpuExit.BUDGET);
  assert.equal(acks, 0);
  assert.equal(m.cpu.run(1), CpuExit.BUDGET);
  assert.equal(m.cpu.i32[Slot.EIP], 0x1002);
  assert.equal(run(m), CpuExit.HALTED);
  assert.equal(acks, 1);
  assert.equal(m.cpu.r16[0], 0x1234);
  // return address on the stack is the HLT at 0x1002
  const sp = m.cpu.r16[8]!;
  assert.equal(m.mem.ram[sp]! | (m.mem.ram[sp + 1]! << 8), 0x1002);

  // halted with IF=0: stays halted
  const m2 = machine();
  load(m2, [0xfa, 0xf4], 16);
  assert.equal(run(m2), CpuExit.HALTED);
  assert.equal(m2.cpu.halted, true);
  assert.equal(run(m2), CpuExit.HALTED);
});

test("#UD for LOCK misuse and UD2, #GP for a 16-byte instruction", () => {
  for (const code of [
    [0xf0, 0x90],
    [0x0f, 0x0b],
    [0xf0, 0x01, 0xc0],
  ]) {
    const m = machine();
    ivt(m, 6, 0x2000, [0xf4]);
    load(m, [...code, 0xf4], 16);
    assert.equal(run(m), CpuExit.HALTED);
    assert.equal(m.cpu.i32[Slot.EIP], 0x2001, `#UD for ${code.map((b) => b.toString(16)).join(" ")}`);
  }
  const m = machine();
  ivt(m, 13, 0x2000, [0xf4]);
  load(m, [...Array<number>(15).fill(0x2e), 0x90, 0xf4], 16);
  assert.equal(run(m), CpuExit.HALTED);
  assert.equal(m.cpu.i32[Slot.EIP], 0x2001);
  // LOCK ADD [mem] is fine
  const m3 = machine();
  load(m3, [0xf0, 0x00, 0x06, 0x00, 0x30, 0xf4], 16);
  assert.equal(run(m3), CpuExit.HALTED);
  assert.equal(m3.cpu.i32[Slot.EIP], 0x1006);
});

test("ENTER with nesting level 2 and LEAVE (32-bit)", () => {
  const m = machine();
  m.mem.ram.set([0xaa, 0xaa, 0, 0], 0x8ffc);
  // enter 16,2; mov edi,esp; leave; hlt
  load(m, [0xc8, 0x10, 0x00, 0x02, 0x89, 0xe7, 0xc9, 0xf4], 32);
  m.cpu.r32[5] = 0x9000;
  assert.equal(run(m), CpuExit.HALTED);
  const rd = (a: number): number =>
    m.mem.ram[a]! | (m.mem.ram[a + 1]! << 8) | (m.mem.ram[a + 2]! << 16) | (m.mem.ram[a + 3]! << 24);
  assert.equal(m.cpu.r32[7], 0x7fe4); // ESP after ENTER
  assert.equal(rd(0x7ffc), 0x9000);
  assert.equal(rd(0x7ff8), 0xaaaa);
  assert.equal(rd(0x7ff4), 0x7ffc);
  assert.equal(m.cpu.r32[5], 0x9000); // LEAVE restored EBP
  assert.equal(m.cpu.r32[4], 0x8000);
});

test("IN/OUT reach the port space", () => {
  const m = machine();
  const seen: number[] = [];
  m.io.map(0x80, 4, {
    read: () => 0x11223344,
    write: (off, v) => {
      seen.push(off, v);
    },
  });
  // mov al,0x5a; out 0x81,al; mov dx,0x80; in eax,dx; hlt
  load(m, [0xb0, 0x5a, 0xe6, 0x81, 0x66, 0xba, 0x80, 0x00, 0xed, 0xf4], 32);
  assert.equal(run(m), CpuExit.HALTED);
  assert.deepEqual(seen, [1, 0x5a]);
  assert.equal(u32(m.cpu.r32[0]!), 0x11223344);
});

test("protected mode entry: LGDT, MOV CR0, far JMP to a 32-bit segment, data segment loads", () => {
  const m = machine();
  const ram = m.mem.ram;
  // GDTR at 0x2000 (limit 0x17, base 0x2010); GDT: null, code 0x08 (flat 32-bit), data 0x10
  ram.set([0x17, 0x00, 0x10, 0x20, 0x00, 0x00], 0x2000);
  ram.set([0, 0, 0, 0, 0, 0, 0, 0], 0x2010);
  ram.set([0xff, 0xff, 0, 0, 0, 0x9a, 0xcf, 0], 0x2018);
  ram.set([0xff, 0xff, 0, 0, 0, 0x92, 0xcf, 0], 0x2020);
  const pm = 0x1100;
  load(
    m,
    [
      0x0f,
      0x01,
      0x16,
      0x00,
      0x20, // lgdt [0x2000]
      0x0f,
      0x20,
      0xc0, // mov eax,cr0
      0x66,
      0x83,
      0xc8,
      0x01, // or eax,1
      0x0f,
      0x22,
      0xc0, // mov cr0,eax
      0x66,
      0xea,
      pm & 0xff,
      pm >> 8,
      0,
      0,
      0x08,
      0x00, // jmp dword 0x08:pm
    ],
    16,
  );
  ram.set(
    [
      0xb8,
      0x10,
      0,
      0,
      0, // mov eax,0x10
      0x8e,
      0xd8, // mov ds,eax
      0x8e,
      0xd0, // mov ss,eax
      0xbc,
      0x00,
      0x90,
      0,
      0, // mov esp,0x9000
      0xc7,
      0x05,
      0x00,
      0x30,
      0,
      0,
      0xef,
      0xbe,
      0xad,
      0xde, // mov dword [0x3000],0xdeadbeef
      0x6a,
      0x7f, // push 0x7f
      0xf4,
    ],
    pm,
  );
  m.cpu.codeWritten(pm, 32);
  assert.equal(run(m), CpuExit.HALTED);
  assert.equal(m.cpu.pmode, true);
  assert.equal(m.cpu.cs32, true);
  assert.equal(m.cpu.segSel[SReg.CS], 0x08);
  assert.equal(u32(m.mem.ram32[0x3000 >> 2]!), 0xdeadbeef);
  assert.equal(m.cpu.r32[4], 0x9000 - 4);
  assert.equal(m.mem.ram[0x9000 - 4], 0x7f);
});

test("protected mode segment checks: read-only data, limits, expand-down, null selector", () => {
  const m = machine();
  const { cpu } = m;
  load(m, [0xf4], 32);
  cpu.i32[Slot.CR0] = cpu.i32[Slot.CR0]! | 1;
  cpu.segAttr[SReg.DS] = 0x4091; // read-only data, accessed, present
  cpu.modeChanged();
  m.mem.ram[0x3000] = 0x5a;
  assert.equal(cpu.read8(SReg.DS, 0x3000), 0x5a);
  assert.equal(cpu.faulted, false);
  cpu.write32(SReg.DS, 0x3000, 1);
  assert.equal(cpu.faulted, true);
  assert.equal(cpu.excVector, 13);
  assert.equal(m.mem.ram[0x3000], 0x5a);
  // limit: a dword at limit-2 crosses it; SS faults are #SS
  cpu.faulted = false;
  cpu.segAttr[SReg.SS] = 0x4093;
  cpu.segLimit[SReg.SS] = 0xfff;
  cpu.read32(SReg.SS, 0xffd);
  assert.equal(cpu.excVector, 12);
  cpu.faulted = false;
  assert.equal(cpu.read32(SReg.SS, 0xffc), 0);
  assert.equal(cpu.faulted, false);
  // expand-down (type 0x7: data, expand-down, writable, accessed): valid offsets are above the limit
  cpu.segAttr[SReg.ES] = 0x4097;
  cpu.segLimit[SReg.ES] = 0xfff;
  cpu.write8(SReg.ES, 0x1000, 7);
  assert.equal(cpu.faulted, false);
  assert.equal(m.mem.ram[0x1000], 7);
  cpu.write8(SReg.ES, 0xfff, 7);
  assert.equal(cpu.faulted, true);
  // a null selector (unusable) faults on any access
  cpu.faulted = false;
  cpu.segAttr[SReg.FS] = 1 << 16;
  cpu.read8(SReg.FS, 0);
  assert.equal(cpu.faulted, true);
  assert.equal(cpu.excVector, 13);
});

test("REP STOSD/MOVSB bulk path: page crossings, overlap, 16-bit wrap stop, code page invalidation", () => {
  const m = machine();
  // mov edi,0x3ffe; mov ecx,0x801; mov eax,0x11223344; rep stosd  (ends at 0x3ffe + 0x2004)
  // mov esi,0x5000; mov edi,0x5001; mov ecx,0x10; rep movsb (overlap: replicates byte 0x5000)
  load(
    m,
    [
      0xbf, 0xfe, 0x3f, 0, 0, 0xb9, 0x01, 0x08, 0, 0, 0xb8, 0x44, 0x33, 0x22, 0x11, 0xfc, 0xf3, 0xab, 0xbe, 0x00, 0x90,
      0, 0, 0xbf, 0x01, 0x90, 0, 0, 0xb9, 0x10, 0, 0, 0, 0xf3, 0xa4, 0xf4,
    ],
    32,
  );
  m.mem.ram[0x9000] = 0xab;
  assert.equal(run(m), CpuExit.HALTED);
  for (let a = 0x3ffe; a < 0x3ffe + 0x801 * 4; a += 4)
    assert.equal(
      u32(m.mem.ram[a]! | (m.mem.ram[a + 1]! << 8) | (m.mem.ram[a + 2]! << 16) | (m.mem.ram[a + 3]! << 24)),
      0x11223344,
    );
  assert.equal(m.mem.ram[0x3ffe + 0x801 * 4], 0);
  assert.equal(m.mem.ram[0x3ffd], 0);
  for (let a = 0x9000; a <= 0x9010; a++) assert.equal(m.mem.ram[a], 0xab);
  assert.equal(m.cpu.r32[7], 0x9011);

  // 16-bit addressing: DI wraps from 0xFFFE to 0 (no fault); a word at 0xFFFF faults (#GP) after
  // the elements before it are done
  const m2 = machine();
  ivt(m2, 13, 0x2000, [0xf4]);
  // mov di,0xfff0; mov cx,0x20; mov ax,0x5555; rep stosw; hlt  (ES = 0x1000)
  load(m2, [0xbf, 0xf0, 0xff, 0xb9, 0x20, 0x00, 0xb8, 0x55, 0x55, 0xf3, 0xab, 0xf4], 16);
  m2.cpu.segSel[SReg.ES] = 0x1000;
  m2.cpu.segBase[SReg.ES] = 0x10000;
  assert.equal(run(m2), CpuExit.HALTED);
  assert.equal(m2.cpu.i32[Slot.EIP], 0x100c);
  assert.equal(m2.cpu.r16[2], 0);
  assert.equal(m2.cpu.r16[14], 0x30);
  assert.equal(m2.mem.ram[0x1fffe], 0x55);
  assert.equal(m2.mem.ram[0x1002f], 0x55);
  assert.equal(m2.mem.ram[0x10030], 0);
  const m4 = machine();
  ivt(m4, 13, 0x2000, [0xf4]);
  load(m4, [0xbf, 0xf1, 0xff, 0xb9, 0x20, 0x00, 0xb8, 0x55, 0x55, 0xf3, 0xab, 0xf4], 16);
  m4.cpu.segSel[SReg.ES] = 0x1000;
  m4.cpu.segBase[SReg.ES] = 0x10000;
  assert.equal(run(m4), CpuExit.HALTED);
  assert.equal(m4.cpu.i32[Slot.EIP], 0x2001);
  assert.equal(m4.cpu.r16[2], 0x20 - 7);
  assert.equal(m4.cpu.r16[14], 0xffff);

  // rep stosb over code that was executed: the new bytes are seen
  const m3 = machine();
  // L: nop x4 at 0x1010; first pass runs them, then rep stosb writes INC EAX (0x40) over them
  const code = [0x31, 0xc0, 0xb1, 0x02]; // xor eax,eax; mov cl,2
  code.push(0x90, 0x90, 0x90, 0x90); // 0x1004: L
  code.push(0x51, 0xbf, 0x04, 0x10, 0, 0, 0xb9, 4, 0, 0, 0, 0x50, 0xb0, 0x40, 0xf3, 0xaa, 0x58, 0x59); // push ecx; mov edi,L; mov ecx,4; push eax; mov al,0x40; rep stosb; pop eax; pop ecx
  code.push(0xfe, 0xc9, 0x75, 0x100 - (code.length + 4 - 4)); // dec cl; jnz L
  code.push(0xf4);
  load(m3, code, 32);
  assert.equal(run(m3), CpuExit.HALTED);
  assert.equal(m3.cpu.r32[0], 4);
});

test("paging: an instruction crossing into a not-present page faults (#PF, CR2, restart EIP)", () => {
  const m = machine();
  const { cpu, mem } = m;
  const ram = mem.ram;
  const w32 = (a: number, v: number): void => {
    ram[a] = v & 0xff;
    ram[a + 1] = (v >>> 8) & 0xff;
    ram[a + 2] = (v >>> 16) & 0xff;
    ram[a + 3] = (v >>> 24) & 0xff;
  };
  // page directory at 0x10000 → page table at 0x11000 identity-mapping 4 MiB except page 5
  w32(0x10000, 0x11000 | 3);
  for (let p = 0; p < 1024; p++) if (p !== 5) w32(0x11000 + p * 4, (p << 12) | 3);
  // GDT at 0x13000: null, flat code 0x08, flat data 0x10; IDT at 0x12000: #PF → 0x08:0x6000
  ram.set([0xff, 0xff, 0, 0, 0, 0x9a, 0xcf, 0], 0x13008);
  ram.set([0xff, 0xff, 0, 0, 0, 0x92, 0xcf, 0], 0x13010);
  ram.set([0x00, 0x60, 0x08, 0x00, 0x00, 0x8e, 0x00, 0x00], 0x12000 + 14 * 8);
  ram[0x6000] = 0xf4;
  load(m, [], 32, 0x4ffe);
  ram.set([0xb8, 1, 2, 3, 4], 0x4ffe); // mov eax, imm32 crossing into page 5 (bytes there never read)
  cpu.codeWritten(0x4000, 0x2000);
  cpu.i32[Slot.GDTR_BASE] = 0x13000;
  cpu.i32[Slot.GDTR_LIMIT] = 0x17;
  cpu.i32[Slot.IDTR_BASE] = 0x12000;
  cpu.i32[Slot.IDTR_LIMIT] = 0x7ff;
  cpu.segSel[SReg.CS] = 0x08;
  cpu.segAttr[SReg.CS] = 0xc09b;
  for (const sr of [SReg.DS, SReg.ES, SReg.SS]) {
    cpu.segSel[sr] = 0x10;
    cpu.segAttr[sr] = 0xc093;
  }
  cpu.i32[Slot.CR3] = 0x10000;
  cpu.i32[Slot.CR0] = 0x80000011 | 0 | (cpu.i32[Slot.CR0]! & 0x60000000);
  cpu.modeChanged();
  cpu.mmu.flush(true);
  cpu.pagingChanged();
  assert.equal(run(m), CpuExit.HALTED);
  assert.equal(cpu.i32[Slot.EIP], 0x6001);
  assert.equal(u32(cpu.i32[Slot.CR2]!), 0x5000);
  const sp = cpu.r32[4]!;
  assert.equal(mem.ram32[sp >> 2], 0); // error code: not present, read, supervisor
  assert.equal(mem.ram32[(sp + 4) >> 2], 0x4ffe); // the faulting instruction restarts
  assert.notEqual(cpu.r32[0], 0x04030201);
});

test("an IRQ raised by an OUT is taken at the next instruction boundary", () => {
  const m = machine();
  let pending = false;
  m.irqs.registerController(
    {
      hasInterrupt: () => pending,
      acknowledge: () => {
        pending = false;
        return 0x21;
      },
    },
    () => undefined,
  );
  m.io.map(0x90, 1, {
    read: () => 0,
    write: () => {
      pending = true;
    },
  });
  ivt(m, 0x21, 0x2000, [0xf4]);
  // sti; nop; out 0x90,al; inc ax; inc ax; hlt
  load(m, [0xfb, 0x90, 0xe6, 0x90, 0x40, 0x40, 0xf4], 16);
  m.cpu.r16[0] = 0;
  assert.equal(run(m), CpuExit.HALTED);
  assert.equal(m.cpu.i32[Slot.EIP], 0x2001);
  assert.equal(m.cpu.r16[0], 0); // no INC ran before the interrupt
  const sp = m.cpu.r16[8]!;
  assert.equal(m.mem.ram[sp]! | (m.mem.ram[sp + 1]! << 8), 0x1004); // return to the first INC
});
