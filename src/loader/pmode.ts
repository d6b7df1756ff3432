/**
 * Entering a kernel in flat 32-bit protected mode, the state both the Linux 32-bit boot protocol
 * and Multiboot v1 specify: a GDT in guest RAM with a 4 GiB execute/read code segment at selector
 * 0x10 (Linux's __BOOT_CS) and a 4 GiB read/write data segment at 0x18 (__BOOT_DS), CR0.PE set
 * and paging off, interrupts disabled, the A20 gate open. The CPU state is written directly into
 * the CPU's state buffer (state.ts layout), the way a loader "was just there" before the kernel.
 *
 * Descriptor layout (8 bytes, little-endian):
 *   bytes 0..1  limit 15..0        bytes 2..4  base 23..0      byte 5  access (P DPL S type)
 *   byte 6      G D/B 0 AVL | limit 19..16                     byte 7  base 31..24
 * The state buffer keeps "attributes" = descriptor bits 40..55 shifted down by 8: access byte in
 * bits 0..7, the G/D/AVL nibble in bits 12..15.
 */
import { type CpuState, CR0, SReg, Slot, Reg } from "../cpu/state.ts";
import type { PhysMem } from "../mem/PhysMem.ts";
import { put32 } from "./bytes.ts";

/** What the loaders need of the CPU (the real Cpu has these; tests use a fake over a real CpuState). */
export interface LoaderCpu {
  readonly s: CpuState;
  /** Recomputes the CPU's mode cache after CR0, EFLAGS.VM, CS or SS were written. */
  modeChanged(): void;
  /** Sets EFLAGS as a whole (the lazy arithmetic flags included). */
  setFlags(value: number): void;
}

/** Linux __BOOT_CS: the flat code selector. */
export const BOOT_CS = 0x10;
/** Linux __BOOT_DS: the flat data selector. */
export const BOOT_DS = 0x18;

/** Access byte: present, DPL 0, code/data, execute/read, accessed. */
const ACCESS_CODE = 0x9b;
/** Access byte: present, DPL 0, code/data, read/write, accessed. */
const ACCESS_DATA = 0x93;
/** G (4 KiB granularity) and D/B (32-bit) in the flags nibble. */
const FLAGS_G_D = 0xc;

/** State-buffer attribute of the flat code segment. */
export const ATTR_CODE32 = ACCESS_CODE | (FLAGS_G_D << 12);
/** State-buffer attribute of the flat data segment. */
export const ATTR_DATA32 = ACCESS_DATA | (FLAGS_G_D << 12);

/** Size in bytes of the GDT writeFlatGdt() builds (null, unused, code, data). */
export const FLAT_GDT_BYTES = 32;

/** The 8 bytes of a flat 4 GiB descriptor with the given access byte. */
function flatDescriptor(access: number): Uint8Array {
  const d = new Uint8Array(8);
  put32(d, 0, 0x0000ffff); // limit 15..0 = FFFF, base 15..0 = 0
  put32(d, 4, (access << 8) | (((FLAGS_G_D << 4) | 0xf) << 16)); // base 23..16 = 0, limit 19..16 = F, base 31..24 = 0
  return d;
}

/** Writes the boot GDT at `gdtAddr`: entries 0 and 1 null, 2 (0x10) code, 3 (0x18) data. */
export function writeFlatGdt(mem: PhysMem, gdtAddr: number): void {
  const gdt = new Uint8Array(FLAT_GDT_BYTES);
  gdt.set(flatDescriptor(ACCESS_CODE), BOOT_CS);
  gdt.set(flatDescriptor(ACCESS_DATA), BOOT_DS);
  mem.writeBytes(gdtAddr, gdt);
}

/** Register values at entry; unnamed general registers are zero. */
export interface Flat32Entry {
  eip: number;
  /** Where writeFlatGdt() put the GDT. */
  gdtAddr: number;
  eax?: number;
  ebx?: number;
  ecx?: number;
  edx?: number;
  esi?: number;
  edi?: number;
  ebp?: number;
  esp?: number;
}

/**
 * Puts the CPU in flat 32-bit protected mode at `entry.eip`: CS = 0x10, DS/ES/SS/FS/GS = 0x18, all
 * with base 0 and limit 4 GiB - 1, CPL 0, CR0.PE = 1 and PG = 0, EFLAGS = 0x2 (IF clear), IDTR
 * empty, the GDTR pointing at the boot GDT, and the A20 gate open.
 */
export function enterFlat32(cpu: LoaderCpu, mem: PhysMem, entry: Flat32Entry): void {
  const s = cpu.s;
  const i32 = s.i32;
  s.r32.fill(0);
  s.r32[Reg.EAX] = entry.eax ?? 0;
  s.r32[Reg.EBX] = entry.ebx ?? 0;
  s.r32[Reg.ECX] = entry.ecx ?? 0;
  s.r32[Reg.EDX] = entry.edx ?? 0;
  s.r32[Reg.ESI] = entry.esi ?? 0;
  s.r32[Reg.EDI] = entry.edi ?? 0;
  s.r32[Reg.EBP] = entry.ebp ?? 0;
  s.r32[Reg.ESP] = entry.esp ?? 0;
  i32[Slot.EIP] = entry.eip | 0;
  cpu.setFlags(0x2);

  for (const seg of [SReg.ES, SReg.CS, SReg.SS, SReg.DS, SReg.FS, SReg.GS]) {
    const code = seg === SReg.CS;
    s.segSel[seg] = code ? BOOT_CS : BOOT_DS;
    s.segBase[seg] = 0;
    s.segLimit[seg] = -1; // 0xFFFFFFFF
    s.segAttr[seg] = code ? ATTR_CODE32 : ATTR_DATA32;
  }

  i32[Slot.GDTR_BASE] = entry.gdtAddr | 0;
  i32[Slot.GDTR_LIMIT] = FLAT_GDT_BYTES - 1;
  i32[Slot.IDTR_BASE] = 0;
  i32[Slot.IDTR_LIMIT] = 0;
  i32[Slot.CR0] = ((i32[Slot.CR0]! | CR0.PE) & ~CR0.PG) | 0;
  i32[Slot.CPL] = 0;
  mem.setA20(true);
  cpu.modeChanged();
}
