/**
 * End-to-end tests of the system part through the real Cpu: small hand-assembled programs that
 * take interrupts in real mode, enter protected mode, enable paging (PSE), take and fix a page
 * fault, drop to ring 3 and come back through INT 0x80 with a TSS stack switch, and triple-fault.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { Cpu } from "./cpu.ts";
import { SReg, Slot } from "./state.ts";
import { CpuExit } from "./types.ts";
import { PhysMem } from "../mem/PhysMem.ts";
import { IoPortSpace } from "../pdm/IoPortSpace.ts";
import { IrqRouter } from "../pdm/IrqLine.ts";
import type { InterruptController } from "../pdm/types.ts";
import { ManualClock } from "../tm/VirtualClock.ts";

interface Machine {
  cpu: Cpu;
  mem: PhysMem;
  triples: number;
}

function machine(): Machine {
  const mem = new PhysMem(8 << 20, new ArrayBuffer(8 << 20));
  const m: Machine = { cpu: null as unknown as Cpu, mem, triples: 0 };
  m.cpu = new Cpu({
    mem,
    io: new IoPortSpace(),
    irqs: new IrqRouter(),
    clock: new ManualClock(0),
    onTripleFault: () => {
      m.triples++;
    },
  });
  // Start at 0000:7C00 in real mode.
  const s = m.cpu.s;
  s.segSel[SReg.CS] = 0;
  s.segBase[SReg.CS] = 0;
  m.cpu.i32[Slot.EIP] = 0x7c00;
  m.cpu.modeChanged();
  return m;
}

function put(mem: PhysMem, addr: number, bytes: number[]): void {
  mem.writeBytes(addr, new Uint8Array(bytes));
}
function le32(v: number): number[] {
  return [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff];
}
function le16(v: number): number[] {
  return [v & 0xff, (v >>> 8) & 0xff];
}
/** Segment descriptor bytes. */
function desc(base: number, limit: number, access: number, flags: number): number[] {
  return [
    ...le16(limit & 0xffff),
    ...le16(base & 0xffff),
    (base >>> 16) & 0xff,
    access,
    ((flags & 0xf) << 4) | ((limit >>> 16) & 0xf),
    (base >>> 24) & 0xff,
  ];
}
/** Gate descriptor bytes. */
function gate(sel: number, off: number, access: number): number[] {
  return [...le16(off & 0xffff), ...le16(sel), 0, access, ...le16(off >>> 16)];
}

const GDTR = 0x7e00;
const IDTR = 0x7e08;
const GDT = 0x7e10;
const IDT = 0x6000;
const TSS = 0x7000;
const PD = 0x100000;
const PT = 0x101000;

/** The shared tables: flat ring-0/ring-3 code and data, a TSS, IDT entries 14 and 0x80. */
function tables(mem: PhysMem): void {
  put(mem, GDT, [
    ...[0, 0, 0, 0, 0, 0, 0, 0],
    ...desc(0, 0xfffff, 0x9a, 0xc), // 0x08
    ...desc(0, 0xfffff, 0x92, 0xc), // 0x10
    ...desc(0, 0xfffff, 0xfa, 0xc), // 0x1b
    ...desc(0, 0xfffff, 0xf2, 0xc), // 0x23
    ...desc(TSS, 0x67, 0x89, 0), // 0x28
  ]);
  put(mem, GDTR, [...le16(0x2f), ...le32(GDT)]);
  put(mem, IDTR, [...le16(0x80 * 8 + 7), ...le32(IDT)]);
  put(mem, IDT + 14 * 8, gate(0x08, 0x8100, 0x8e));
  put(mem, IDT + 0x80 * 8, gate(0x08, 0x8300, 0xef));
  put(mem, TSS + 4, [...le32(0x9f000), ...le32(0x10)]);
  // Page directory: 0..4 MiB one 4 MiB user page (PSE); 4..8 MiB a page table whose entry 0
  // maps phys 0x200000 and entry 1 is not present.
  put(mem, PD, le32(0x000087));
  put(mem, PD + 4, le32(PT | 7));
  put(mem, PT, le32(0x200000 | 7));
}

/** Real mode → INT 0x40 → protected mode → paging → #PF fixed by the handler → ring 3 → INT 0x80. */
function program(mem: PhysMem): void {
  // IVT 0x40 → 0000:7D00: inc bx; iret
  put(mem, 0x40 * 4, [...le16(0x7d00), ...le16(0)]);
  put(mem, 0x7d00, [0x43, 0xcf]);
  put(mem, 0x7c00, [
    0x31, 0xdb, //               xor bx, bx
    0xcd, 0x40, //               int 0x40
    0xfa, //                     cli
    0x0f, 0x01, 0x16, ...le16(GDTR), // lgdt [GDTR]
    0x0f, 0x20, 0xc0, //         mov eax, cr0
    0x66, 0x83, 0xc8, 0x01, //   or eax, 1
    0x0f, 0x22, 0xc0, //         mov cr0, eax
    0x66, 0xea, ...le32(0x8000), ...le16(0x08), // jmp dword 0x08:0x8000
  ]);
  put(mem, 0x8000, [
    0x66, 0xb8, 0x10, 0x00, //   mov ax, 0x10
    0x8e, 0xd8, //               mov ds, ax
    0x8e, 0xc0, //               mov es, ax
    0x8e, 0xd0, //               mov ss, ax
    0xbc, ...le32(0x90000), //   mov esp, 0x90000
    0x0f, 0x01, 0x1d, ...le32(IDTR), // lidt [IDTR]
    0x0f, 0x20, 0xe0, //         mov eax, cr4
    0x83, 0xc8, 0x10, //         or eax, 0x10 (PSE)
    0x0f, 0x22, 0xe0, //         mov cr4, eax
    0xb8, ...le32(PD), //        mov eax, PD
    0x0f, 0x22, 0xd8, //         mov cr3, eax
    0x0f, 0x20, 0xc0, //         mov eax, cr0
    0x0d, ...le32(0x80000000), // or eax, 0x80000000
    0x0f, 0x22, 0xc0, //         mov cr0, eax
    0xa1, ...le32(0x400000), //  mov eax, [0x400000]
    0xc7, 0x05, ...le32(0x401000), ...le32(0x12345678), // mov dword [0x401000], 0x12345678
    0x66, 0xb8, 0x28, 0x00, //   mov ax, 0x28
    0x0f, 0x00, 0xd8, //         ltr ax
    0x6a, 0x23, //               push 0x23
    0x68, ...le32(0x8f000), //   push 0x8f000
    0x9c, //                     pushfd
    0x6a, 0x1b, //               push 0x1b
    0x68, ...le32(0x8200), //    push 0x8200
    0xcf, //                     iretd
  ]);
  // #PF handler: map the faulting page (PT entry 1 → 0x201000), INVLPG, drop the error code, IRET.
  put(mem, 0x8100, [
    0x0f, 0x20, 0xd1, //         mov ecx, cr2
    0xc7, 0x05, ...le32(PT + 4), ...le32(0x201007), // mov dword [PT+4], 0x201007
    0x0f, 0x01, 0x39, //         invlpg [ecx]
    0x83, 0xc4, 0x04, //         add esp, 4
    0xcf, //                     iretd
  ]);
  // Ring-3 code
  put(mem, 0x8200, [
    0xb8, ...le32(42), //        mov eax, 42
    0xcd, 0x80, //               int 0x80
    0xf4, //                     hlt (never reached)
  ]);
  // INT 0x80 handler (ring 0, on the TSS stack)
  put(mem, 0x8300, [
    0x8b, 0x5c, 0x24, 0x04, //   mov ebx, [esp+4]  (the pushed CS)
    0xf4, //                     hlt
  ]);
}

test("e2e: real-mode INT, protected mode, PSE paging, #PF fixed by the guest, ring 3 and back", () => {
  const m = machine();
  tables(m.mem);
  program(m.mem);
  m.mem.write32(0x200000, 0xfeedface | 0);
  const exit = m.cpu.run(200);
  const c = m.cpu;
  assert.equal(exit, CpuExit.HALTED, `EIP ${(c.i32[Slot.EIP]! >>> 0).toString(16)}`);
  assert.equal(c.i32[Slot.EIP], 0x8305, "halted in the INT 0x80 handler");
  assert.equal(c.r32[0], 42);
  assert.equal(c.r32[3], 0x1b, "CS pushed by INT 0x80 from ring 3");
  assert.equal(c.r32[1], 0x401000, "CR2 seen by the #PF handler");
  assert.equal(c.i32[Slot.CPL], 0);
  assert.equal(c.s.segSel[SReg.SS], 0x10);
  assert.equal(c.r32[4], 0x9f000 - 20);
  assert.equal(m.mem.read32(0x9f000 - 8), 0x8f000, "user ESP");
  assert.equal(m.mem.read32(0x9f000 - 4), 0x23, "user SS");
  assert.equal(m.mem.read32(0x201000), 0x12345678, "the retried store landed in the new page");
  assert.equal(m.mem.read32(PT + 4) & 0x60, 0x60, "accessed + dirty");
  assert.equal(m.mem.read32(PT) & 0x60, 0x20, "read: accessed only");
  assert.equal(m.mem.read32(PD) & 0x20, 0x20, "4 MiB PDE accessed");
  assert.equal(m.mem.read8(GDT + 0x28 + 5), 0x8b, "TSS busy");
  assert.equal(m.triples, 0);
});

test("e2e: a fault with no usable IDT escalates to a triple fault and run() returns", () => {
  const m = machine();
  tables(m.mem);
  put(m.mem, IDTR, [...le16(0), ...le32(IDT)]); // IDT limit 0: every vector is beyond it
  put(m.mem, 0x7c00, [
    0xfa, //                     cli
    0x0f, 0x01, 0x16, ...le16(GDTR), // lgdt
    0x0f, 0x01, 0x1e, ...le16(IDTR), // lidt
    0x0f, 0x20, 0xc0, //         mov eax, cr0
    0x66, 0x83, 0xc8, 0x01, //   or eax, 1
    0x0f, 0x22, 0xc0, //         mov cr0, eax
    0x66, 0xea, ...le32(0x8000), ...le16(0x08),
  ]);
  put(m.mem, 0x8000, [0xcc, 0xf4]); // int3; hlt
  const exit = m.cpu.run(100);
  assert.equal(exit, CpuExit.TRIPLE_FAULT);
  assert.equal(m.triples, 1);
});

/** Real mode → protected mode at 0x08:0x8000 (paging off); the 32-bit code sets flat segments, ESP, IDT, TR. */
function enterPm(mem: PhysMem, body: number[]): void {
  put(mem, 0x7c00, [
    0xfa, //                     cli
    0x0f, 0x01, 0x16, ...le16(GDTR), // lgdt
    0x0f, 0x20, 0xc0, //         mov eax, cr0
    0x66, 0x83, 0xc8, 0x01, //   or eax, 1
    0x0f, 0x22, 0xc0, //         mov cr0, eax
    0x66, 0xea, ...le32(0x8000), ...le16(0x08),
  ]);
  put(mem, 0x8000, [
    0x66, 0xb8, 0x10, 0x00, //   mov ax, 0x10
    0x8e, 0xd8, 0x8e, 0xc0, 0x8e, 0xd0, // mov ds/es/ss, ax
    0xbc, ...le32(0x90000), //   mov esp, 0x90000
    0x0f, 0x01, 0x1d, ...le32(IDTR), // lidt
    0x66, 0xb8, 0x28, 0x00, //   mov ax, 0x28
    0x0f, 0x00, 0xd8, //         ltr ax
    ...body,
  ]);
}

test("e2e: IRETD into vm86; INT n with IOPL 0 is #GP to the ring-0 monitor with the vm86 frame", () => {
  const m = machine();
  tables(m.mem);
  put(m.mem, IDT + 13 * 8, gate(0x08, 0x8400, 0x8e));
  put(m.mem, 0x8400, [0xf4]); // #GP handler: hlt
  enterPm(m.mem, [
    0x6a, 0x00, 0x6a, 0x00, 0x6a, 0x00, 0x6a, 0x00, // push GS FS DS ES = 0
    0x6a, 0x00, //                push SS = 0
    0x68, ...le32(0x5000), //     push ESP
    0x68, ...le32(0x00020002), // push EFLAGS (VM, IOPL 0)
    0x68, ...le32(0x0900), //     push CS
    0x6a, 0x00, //                push EIP = 0
    0xcf, //                      iretd
  ]);
  put(m.mem, 0x9000, [0xb8, 0x34, 0x12, 0xcd, 0x21, 0xf4]); // mov ax, 0x1234; int 0x21
  const exit = m.cpu.run(100);
  const c = m.cpu;
  assert.equal(exit, CpuExit.HALTED);
  assert.equal(c.i32[Slot.EIP], 0x8401);
  assert.equal(c.vm86, false);
  assert.equal(c.i32[Slot.CPL], 0);
  assert.equal(c.r16[0], 0x1234, "vm86 code ran");
  assert.equal(c.r32[4], 0x9f000 - 40);
  const frame = [0, 4, 8, 12, 16, 20, 24, 28, 32, 36].map((o) => m.mem.read32(0x9f000 - 40 + o) >>> 0);
  assert.deepEqual(frame, [0, 3, 0x900, 0x00020002, 0x5000, 0, 0, 0, 0, 0]);
  assert.equal(c.s.segAttr[SReg.DS]! & (1 << 16), 1 << 16, "DS null after leaving vm86");
});

test("e2e: JMP to a TSS switches tasks; an external interrupt reaches a pmode handler after STI; HLT", () => {
  const m = machine();
  tables(m.mem);
  // second TSS at 0x7100, descriptor 0x30 (GDT limit grows)
  put(m.mem, GDT + 0x30, desc(0x7100, 0x67, 0x89, 0));
  put(m.mem, GDTR, [...le16(0x37), ...le32(GDT)]);
  put(m.mem, 0x7100 + 0x20, [...le32(0x8500), ...le32(0x2)]); // EIP, EFLAGS
  put(m.mem, 0x7100 + 0x38, le32(0x88000)); // ESP
  put(m.mem, 0x7100 + 0x48, [...le32(0x10), ...le32(0x08), ...le32(0x10), ...le32(0x10), ...le32(0), ...le32(0)]);
  put(m.mem, IDT + 0x20 * 8, gate(0x08, 0x8600, 0x8e));
  enterPm(m.mem, [0xea, ...le32(0), ...le16(0x30)]); // jmp 0x30:0
  put(m.mem, 0x8500, [0xfb, 0xf4, 0xf4]); // sti; hlt; hlt
  put(m.mem, 0x8600, [0xb9, ...le32(0x77), 0xf4]); // mov ecx, 0x77; hlt
  let pending = false;
  m.cpu.bus.irqs.registerController(
    {
      hasInterrupt: () => pending,
      acknowledge: () => {
        pending = false;
        return 0x20;
      },
    } satisfies InterruptController,
    () => {},
  );
  const c = m.cpu;
  assert.equal(c.run(100), CpuExit.HALTED);
  assert.equal(c.s.segSel[SReg.TR], 0x30);
  assert.equal(c.i32[Slot.EIP], 0x8502);
  assert.equal(c.r32[4], 0x88000);
  assert.equal(m.mem.read8(GDT + 0x28 + 5), 0x89, "old TSS no longer busy");
  assert.equal(m.mem.read8(GDT + 0x30 + 5), 0x8b);
  assert.ok((c.i32[Slot.CR0]! & 8) !== 0, "CR0.TS");
  pending = true;
  assert.equal(c.run(100), CpuExit.HALTED);
  assert.equal(c.r32[1], 0x77);
  assert.equal(c.i32[Slot.EIP], 0x8606);
  assert.equal(m.mem.read32(0x88000 - 12) >>> 0, 0x8502, "return EIP after the HLT");
  assert.equal(m.mem.read32(0x88000 - 4) & 0x200, 0x200, "IF was set in the pushed EFLAGS");
});

test("e2e: #GP with no gate → #DF through a task gate (Linux's double-fault task)", () => {
  const m = machine();
  tables(m.mem);
  put(m.mem, GDT + 0x30, desc(0x7100, 0x67, 0x89, 0));
  put(m.mem, GDTR, [...le16(0x37), ...le32(GDT)]);
  put(m.mem, 0x7100 + 0x20, [...le32(0x8700), ...le32(0x2)]);
  put(m.mem, 0x7100 + 0x38, le32(0x87000));
  put(m.mem, 0x7100 + 0x48, [...le32(0x10), ...le32(0x08), ...le32(0x10), ...le32(0x10), ...le32(0), ...le32(0)]);
  put(m.mem, IDT + 8 * 8, gate(0x30, 0, 0x85)); // task gate
  enterPm(m.mem, [0x8e, 0xd9]); // mov ds, cx (ECX = 0x1234 → #GP(0x1234) beyond the GDT; gate 13 absent)
  put(m.mem, 0x8700, [0xf4]);
  m.cpu.r32[1] = 0x1234;
  const c = m.cpu;
  assert.equal(c.run(100), CpuExit.HALTED);
  assert.equal(c.s.segSel[SReg.TR], 0x30);
  assert.equal(c.i32[Slot.EIP], 0x8701);
  assert.equal(c.r32[4], 0x87000 - 4, "error code pushed on the new task's stack");
  assert.equal(m.mem.read32(0x87000 - 4), 0);
  assert.equal(m.mem.read16(0x7100), 0x28, "back link");
  assert.ok((c.getFlags() & (1 << 14)) !== 0, "NT");
  assert.equal(m.mem.read32(TSS + 0x20), 0x8000 + 29, "old task EIP = the faulting MOV");
  assert.equal(m.triples, 0);
});

test("e2e: SYSENTER from ring 3 and SYSEXIT back", () => {
  const m = machine();
  tables(m.mem);
  // SYSENTER_CS = 0x08 → CS 0x08, SS 0x10; SYSEXIT → CS 0x1b, SS 0x23
  enterPm(m.mem, [
    0xb9, ...le32(0x174), 0x31, 0xd2, 0xb8, ...le32(0x08), 0x0f, 0x30, // wrmsr SYSENTER_CS
    0xb9, ...le32(0x175), 0xb8, ...le32(0x9e000), 0x0f, 0x30, //          wrmsr SYSENTER_ESP
    0xb9, ...le32(0x176), 0xb8, ...le32(0x8800), 0x0f, 0x30, //           wrmsr SYSENTER_EIP
    0x6a, 0x23, 0x68, ...le32(0x8f000), 0x9c, 0x6a, 0x1b, 0x68, ...le32(0x8200), 0xcf, // iretd to ring 3
  ]);
  put(m.mem, 0x8200, [0x0f, 0x34]); // sysenter
  put(m.mem, 0x8800, [
    0x8c, 0xd6, //               mov esi, ss
    0xb9, ...le32(0x8e000), //   mov ecx, user ESP
    0xba, ...le32(0x8900), //    mov edx, user EIP
    0x0f, 0x35, //               sysexit
  ]);
  put(m.mem, 0x8900, [0x8c, 0xcf, 0xcd, 0x80]); // mov edi, cs; int 0x80
  put(m.mem, 0x8300, [0xf4]);
  const c = m.cpu;
  assert.equal(c.run(100), CpuExit.HALTED);
  assert.equal(c.r32[6]! & 0xffff, 0x10, "SS in the SYSENTER handler");
  assert.equal(c.r32[7]! & 0xffff, 0x1b, "CS after SYSEXIT");
  assert.equal(c.i32[Slot.EIP], 0x8301);
  assert.equal(m.mem.read32(0x9f000 - 8), 0x8e000, "user ESP from ECX");
});

test("e2e: ring-3 code fetch from a supervisor page is #PF with U=1, P=1 (error code 5) and CR2", () => {
  const m = machine();
  tables(m.mem);
  put(m.mem, PT, le32(0x200000 | 3)); // lin 0x400000: supervisor-only, present
  m.mem.write8(0x200000, 0xf4);
  enterPm(m.mem, [
    0x0f, 0x20, 0xe0, 0x83, 0xc8, 0x10, 0x0f, 0x22, 0xe0, // cr4 |= PSE
    0xb8, ...le32(PD), 0x0f, 0x22, 0xd8, //                 cr3 = PD
    0x0f, 0x20, 0xc0, 0x0d, ...le32(0x80000000), 0x0f, 0x22, 0xc0, // cr0 |= PG
    0x6a, 0x23, 0x68, ...le32(0x8f000), 0x9c, 0x6a, 0x1b, 0x68, ...le32(0x8200), 0xcf, // to ring 3
  ]);
  put(m.mem, 0x8200, [0xe9, ...le32(0x400000 - 0x8205)]); // jmp 0x400000
  put(m.mem, 0x8100, [0x0f, 0x20, 0xd1, 0x5a, 0xf4]); // mov ecx, cr2; pop edx; hlt
  const c = m.cpu;
  assert.equal(c.run(100), CpuExit.HALTED);
  assert.equal(c.i32[Slot.EIP], 0x8105);
  assert.equal(c.r32[1], 0x400000, "CR2");
  assert.equal(c.r32[2], 5, "error code: present, user, read");
  assert.equal(m.mem.read32(0x9f000 - 20), 0x400000, "the pushed EIP is the faulting fetch address");
});

test("e2e: CALL through a call gate from ring 3 with parameters, RETF 8, LSL/LAR, INT3 vs gate DPL", () => {
  const m = machine();
  tables(m.mem);
  put(m.mem, GDT + 0x30, gate(0x08, 0x8800, 0xec)); // 32-bit call gate, DPL 3 ...
  m.mem.write8(GDT + 0x30 + 4, 2); // ... copying 2 dwords
  put(m.mem, GDTR, [...le16(0x37), ...le32(GDT)]);
  put(m.mem, IDT + 3 * 8, gate(0x08, 0x8500, 0x8e)); // INT3 gate with DPL 0
  put(m.mem, IDT + 13 * 8, gate(0x08, 0x8400, 0x8e));
  enterPm(m.mem, [0x6a, 0x23, 0x68, ...le32(0x8f000), 0x9c, 0x6a, 0x1b, 0x68, ...le32(0x8200), 0xcf]);
  put(m.mem, 0x8200, [
    0x68, ...le32(0x11111111), //   push 0x11111111
    0x68, ...le32(0x22222222), //   push 0x22222222
    0x9a, ...le32(0), ...le16(0x33), // call 0x33:0 (the gate)
    0xb9, ...le32(0x23), //         mov ecx, 0x23
    0x0f, 0x03, 0xd1, //            lsl edx, ecx
    0xb9, ...le32(0x10), //         mov ecx, 0x10
    0xbe, ...le32(0x5a5a), //       mov esi, 0x5a5a
    0x0f, 0x02, 0xf1, //            lar esi, ecx (DPL 0: fails)
    0xcc, //                        int3 → #GP(3*8+2)
  ]);
  put(m.mem, 0x8800, [
    0x8b, 0x44, 0x24, 0x08, //      mov eax, [esp+8]
    0x8b, 0x5c, 0x24, 0x0c, //      mov ebx, [esp+12]
    0xca, 0x08, 0x00, //            retf 8
  ]);
  put(m.mem, 0x8400, [0x5f, 0xf4]); // pop edi; hlt
  const c = m.cpu;
  assert.equal(c.run(200), CpuExit.HALTED);
  assert.equal(c.i32[Slot.EIP], 0x8402);
  assert.equal(c.r32[0], 0x22222222, "first copied parameter");
  assert.equal(c.r32[3], 0x11111111, "second copied parameter");
  assert.equal(c.r32[2], -1, "LSL of the flat user data segment");
  assert.equal(c.r32[6], 0x5a5a, "LAR failed: destination unchanged");
  assert.equal(c.r32[7], 3 * 8 + 2, "#GP error code names IDT entry 3");
  assert.equal(m.mem.read32(0x9f000 - 8), 0x8f000, "RETF 8 released the parameters on the ring-3 stack");
  assert.equal(m.mem.read32(0x9f000 - 20), 0x8200 + 38, "#GP points at the INT3");
});
