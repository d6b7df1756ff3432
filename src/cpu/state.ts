/**
 * The architectural state of the CPU in one ArrayBuffer at fixed offsets (v86 src/cpu.js style),
 * so that a saved state is a copy of the buffer and every unit of the CPU (core, MMU, system,
 * x87) reads the same registers without going through accessors.
 *
 * Layout of `i32` (Int32Array over the buffer, index = dword):
 *   0..7    EAX ECX EDX EBX ESP EBP ESI EDI        (r32; r16[i*2] = low word; r8 via R8 map)
 *   8       EIP
 *   9       EFLAGS, the stored bits (arithmetic flags may be lazy: see flags.ts, slots 10..15)
 *   10..15  lazy-flags state (owned by flags.ts)
 *   16..23  selector   of ES CS SS DS FS GS LDTR TR
 *   24..31  base       (linear, use >>> 0)
 *   32..39  limit      (byte granular, expanded for G=1; use >>> 0)
 *   40..47  attributes (descriptor bits 40..55 shifted down by 8, VBox "Attr" form):
 *             bits 0..3 type, 4 S, 5..6 DPL, 7 P, 12 AVL, 14 D/B, 15 G; bit 16 = unusable (null selector in pmode)
 *   48 GDTR base  49 GDTR limit  50 IDTR base  51 IDTR limit
 *   52 CR0  53 CR2  54 CR3  55 CR4
 *   56..63  DR0..DR7
 *   64      CPL (0..3)
 *   65      state flags (STATE_* below)
 *   66..71  reserved (core)
 *   72      MSR IA32_SYSENTER_CS   73 IA32_SYSENTER_ESP   74 IA32_SYSENTER_EIP
 *   75      TSC offset, low   76 TSC offset, high (TSC = clock ns + offset; written by WRMSR 0x10)
 *   77      IA32_APIC_BASE low
 *   78..95  reserved (system)
 *   96..127 reserved
 * Bytes 512..1023: the x87 unit's area (owned by fpu.ts; see its layout comment).
 */

/** General registers by their encoding number. */
export const Reg = { EAX: 0, ECX: 1, EDX: 2, EBX: 3, ESP: 4, EBP: 5, ESI: 6, EDI: 7 } as const;
export type Reg = (typeof Reg)[keyof typeof Reg];

/** Segment registers by their encoding number, then LDTR and TR. */
export const SReg = { ES: 0, CS: 1, SS: 2, DS: 3, FS: 4, GS: 5, LDTR: 6, TR: 7 } as const;
export type SReg = (typeof SReg)[keyof typeof SReg];

/** Dword slots of i32. */
export const Slot = {
  EIP: 8,
  EFLAGS: 9,
  LAZY0: 10,
  SEL: 16,
  BASE: 24,
  LIMIT: 32,
  ATTR: 40,
  GDTR_BASE: 48,
  GDTR_LIMIT: 49,
  IDTR_BASE: 50,
  IDTR_LIMIT: 51,
  CR0: 52,
  CR2: 53,
  CR3: 54,
  CR4: 55,
  DR0: 56,
  CPL: 64,
  STATE: 65,
  SYSENTER_CS: 72,
  SYSENTER_ESP: 73,
  SYSENTER_EIP: 74,
  TSC_OFFSET_LO: 75,
  TSC_OFFSET_HI: 76,
  APIC_BASE: 77,
} as const;

/** Bits of i32[Slot.STATE]. */
export const STATE_HALTED = 1 << 0;
/** An NMI is pending. */
export const STATE_NMI_PENDING = 1 << 1;
/** Interrupts are inhibited for one instruction (after MOV SS / POP SS / STI). */
export const STATE_INHIBIT_IRQ = 1 << 2;
/** Inside an NMI handler (NMIs blocked until IRET). */
export const STATE_IN_NMI = 1 << 3;

/** EFLAGS bits. */
export const F = {
  CF: 1 << 0,
  PF: 1 << 2,
  AF: 1 << 4,
  ZF: 1 << 6,
  SF: 1 << 7,
  TF: 1 << 8,
  IF: 1 << 9,
  DF: 1 << 10,
  OF: 1 << 11,
  IOPL: 3 << 12,
  NT: 1 << 14,
  RF: 1 << 16,
  VM: 1 << 17,
  AC: 1 << 18,
  VIF: 1 << 19,
  VIP: 1 << 20,
  ID: 1 << 21,
} as const;
/** The six arithmetic flags (the ones lazy evaluation computes). */
export const ARITH_FLAGS = F.CF | F.PF | F.AF | F.ZF | F.SF | F.OF;

/** CR0 bits. */
export const CR0 = {
  PE: 1 << 0,
  MP: 1 << 1,
  EM: 1 << 2,
  TS: 1 << 3,
  ET: 1 << 4,
  NE: 1 << 5,
  WP: 1 << 16,
  AM: 1 << 18,
  NW: 1 << 29,
  CD: 1 << 30,
  PG: 1 << 31,
} as const;

/** CR4 bits (the ones a Pentium Pro/II has). */
export const CR4 = {
  VME: 1 << 0,
  PVI: 1 << 1,
  TSD: 1 << 2,
  DE: 1 << 3,
  PSE: 1 << 4,
  PAE: 1 << 5,
  MCE: 1 << 6,
  PGE: 1 << 7,
  PCE: 1 << 8,
} as const;

/** Exception vectors. */
export const Vec = {
  DE: 0,
  DB: 1,
  NMI: 2,
  BP: 3,
  OF: 4,
  BR: 5,
  UD: 6,
  NM: 7,
  DF: 8,
  TS: 10,
  NP: 11,
  SS: 12,
  GP: 13,
  PF: 14,
  MF: 16,
  AC: 17,
  MC: 18,
} as const;

/** r8 index of 8-bit register n (AL CL DL BL AH CH DH BH) in the byte view. */
export const R8 = new Uint8Array([0, 4, 8, 12, 1, 5, 9, 13]);

/** Bytes in the state buffer. */
export const STATE_BYTES = 1024;
/** Byte offset of the x87 area. */
export const FPU_OFFSET = 512;

/** The CPU's architectural state. */
export class CpuState {
  readonly buffer = new ArrayBuffer(STATE_BYTES);
  /** Every dword slot (see the layout). */
  readonly i32 = new Int32Array(this.buffer, 0, 128);
  /** General registers, 32 bits. */
  readonly r32 = new Int32Array(this.buffer, 0, 8);
  /** General registers, 16 bits: r16[reg << 1]. */
  readonly r16 = new Uint16Array(this.buffer, 0, 16);
  /** General registers, 8 bits: r8[R8[reg]]. */
  readonly r8 = new Uint8Array(this.buffer, 0, 32);
  /** Segment selectors (SReg index). */
  readonly segSel = new Int32Array(this.buffer, Slot.SEL * 4, 8);
  /** Segment bases (SReg index). */
  readonly segBase = new Int32Array(this.buffer, Slot.BASE * 4, 8);
  /** Segment limits (SReg index). */
  readonly segLimit = new Int32Array(this.buffer, Slot.LIMIT * 4, 8);
  /** Segment attributes (SReg index). */
  readonly segAttr = new Int32Array(this.buffer, Slot.ATTR * 4, 8);
  /** The x87 area as bytes. */
  readonly fpuBytes = new Uint8Array(this.buffer, FPU_OFFSET, STATE_BYTES - FPU_OFFSET);

  /** A copy of the whole buffer (saved state). */
  snapshot(): Uint8Array {
    return new Uint8Array(this.buffer.slice(0));
  }

  /** Restores from snapshot(). */
  restore(bytes: Uint8Array): void {
    if (bytes.length !== STATE_BYTES)
      throw new RangeError(`CPU state is ${String(bytes.length)} bytes, expected ${String(STATE_BYTES)}`);
    new Uint8Array(this.buffer).set(bytes);
  }
}
