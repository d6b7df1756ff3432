/**
 * The x87 FPU of an i686 (Pentium Pro/II): every 8087..P6 escape instruction (D8..DF) and WAIT (9B).
 * Intel SDM vol. 1 ch. 8 (x87 FPU programming environment), vol. 2 (instruction pages), vol. 3
 * §2.5 (CR0.EM/MP/TS/NE) and §9/D (MS-DOS compatibility FERR#/IGNNE# error reporting).
 *
 * ## Representation and precision
 * Every data register is stored bit-exactly in the 80-bit extended format in the CPU state buffer
 * (see the layout below); nothing is kept as a JS double between instructions.
 *
 * Exact, bit-for-bit as the SDM specifies (single rounding, all four rounding modes, PC = 24/53/64,
 * full 15-bit exponent range, extended denormals, masked and unmasked over/underflow responses,
 * tininess after rounding as in SDM vol. 1 4.9.1.5):
 *  - FADD/FSUB/FSUBR/FMUL/FDIV/FDIVR in every form, FSQRT: 64-bit-mantissa integer arithmetic on
 *    u32 limbs (fpu/ext.ts), 96 result bits + sticky, one rounding to the PC width;
 *  - data movement: FLD/FSTP m80, FLD/FST ST(i), FXCH, FCHS, FABS, FCMOVcc, FSAVE/FRSTOR, NaN payloads;
 *  - conversions: FLD m32/m64 (exact widening), FST(P) m32/m64 (one correct rounding of the 80-bit
 *    value), FILD/FIST(P) m16/m32/m64 (exact 64-bit integers), FBLD/FBSTP;
 *  - FRNDINT, FSCALE, FXTRACT, FPREM/FPREM1 (exact long division), comparisons, FXAM, constants
 *    (rounded per RC like a P6).
 * Approximate (XXX(approx)):
 *  - transcendentals FSIN FCOS FSINCOS FPTAN FPATAN F2XM1 FYL2X FYL2XP1 are computed with Math.* on
 *    the operand rounded to a double (53 bits), their result is a double (~1 ulp of a double, i.e.
 *    about 2^-52 relative, where a P6 gives about 2^-63); argument reduction is exact rather than
 *    the P6's 66-bit pi; PE is set, C1 is 0 (hardware: rounded up). Operands/results beyond the
 *    double range are handled by exponent scaling for FYL2X/FPATAN, not for the others.
 *  - FST m32/m64 of an extended denormal reports DE (not checked against hardware).
 *  - FPREM/FPREM1 partial steps (exponent difference >= 64) reduce by N = 32 + (D - 32) mod 32 bits;
 *    the SDM leaves N implementation-defined, so intermediate partial remainders may differ from a
 *    P6's; the final (C2 = 0) remainder and quotient bits are exact.
 *  - NE = 0 error reporting, see below.
 *
 * ## State layout (bytes of cpu.s.fpuBytes = state buffer 512..1023)
 *   0  FCW (u16)    2  FSW (u16, TOP in bits 11..13)   4  FTW (u16, full 2-bit tags, physical order)
 *   6  FOP (u16, 11 bits)   8  FIP (u32 offset)   12 FCS (u16)   16 FDP (u32 offset)   20 FDS (u16)
 *   32 + 16*p  data register p (physical 0..7): +0 mantissa low u32, +4 mantissa high u32,
 *              +8 sign/exponent u16 (bytes 10..15 zero)
 *   160..351   scratch slots 8..19 (operands in flight; not architectural, contents meaningless)
 * Nothing else: no JS field holds x87 state (the per-instruction scratch fields below are dead
 * between instructions).
 *
 * ## Exceptions
 * Pending unmasked exception = FSW.ES. A waiting instruction that finds ES set raises #MF (16) when
 * CR0.NE = 1. With CR0.NE = 0 the unit asserts FERR# when the instruction that caused the unmasked
 * exception completes, as the P6 does (SDM vol. 3 "Assertion of the FERR# pin"), and when
 * FLDCW/FLDENV/FRSTOR unmask a set flag: through `onFerr` (wired to the ferr device's latch), or
 * `bus.irqs.setIrq(13, true)` while unwired. The chipset clears the IRQ 13 level on a write to port
 * 0xF0 (devices' job; the FPU never lowers it). XXX(approx): with NE = 0 a later waiting instruction
 * proceeds as if IGNNE# were asserted; a P6 with IGNNE# deasserted would stall there until the
 * IRQ 13 handler ran. #NM (EM/TS) is checked before #UD, and #UD before pending exceptions (SDM vol. 3
 * "FPU error signals").
 */
import type { Cpu } from "./cpu.ts";
import * as stateMod from "./state.ts";
import * as num from "./fpu/num.ts";
import * as ext from "./fpu/ext.ts";
import type { Cls as ClsT, Format, Unpacked as UnpackedT } from "./fpu/num.ts";

// Imported bindings are copied into module constants once: a CommonJS transpile (tsx) would
// otherwise call an export getter on every use in the hot paths.
const { CR0, F, SReg, Slot, Vec } = stateMod;
const {
  Cls,
  DOUBLE,
  EXTENDED,
  RC,
  SINGLE,
  TWO32,
  Unpacked,
  X,
  classify,
  classify80,
  doubleBits,
  floatBits,
  p80,
  pack80,
  packIndefinite80,
  packInf80,
  packInt80,
  pow2,
  res,
  ri,
  roundInt,
  roundTo,
  scale,
  tagOf,
  toDouble,
  unpack80,
  unpackDouble,
} = num;
const { addMag, divMag, mulMag, roundExt, setMag, sqrtMag } = ext;

// Status word bits (besides the exception flags X.*).
const SW_ES = 0x80;
const SW_C0 = 0x100;
const SW_C1 = 0x200;
const SW_C2 = 0x400;
const SW_C3 = 0x4000;
const SW_B = 0x8000;
const SW_CC = SW_C0 | SW_C1 | SW_C2 | SW_C3;

// Indices into the u16 / i32 views of the x87 area.
const U_CW = 0;
const U_SW = 1;
const U_TW = 2;
const U_FOP = 3;
const I_FIP = 2;
const U_FCS = 6;
const I_FDP = 4;
const U_FDS = 10;

/** Scratch slot for a memory operand. */
const MEM = 8;
/** Scratch slot for a temporary. */
const TMP = 9;
/** Scratch slots 10..17 stage FRSTOR's registers. */
const STAGE = 10;

/** Memory operand kinds. */
const M = { F32: 0, F64: 1, F80: 2, I16: 3, I32: 4, I64: 5, BCD: 6 } as const;

/** Arithmetic operations. */
const OP_ADD = 0;
const OP_SUB = 1;
const OP_MUL = 2;
const OP_DIV = 3;

/** Biases for unmasked over/underflow with a register destination. */
const WRAP = 24576;

/** The extended-format constants: [sign/exp, hi, lo, correction for round up, for round down]. */
const CONSTS: readonly (readonly [number, number, number, number, number])[] = [
  [0x3fff, 0x80000000, 0x00000000, 0, 0], // 1
  [0x4000, 0xd49a784b, 0xcd1b8afe, 1, 0], // log2(10): ...8AFE|49.. rounds down at nearest
  [0x3fff, 0xb8aa3b29, 0x5c17f0bc, 0, -1], // log2(e): ...F0BB|BE.. rounds up at nearest
  [0x4000, 0xc90fdaa2, 0x2168c235, 0, -1], // pi: ...C234|C4.. rounds up
  [0x3ffd, 0x9a209a84, 0xfbcff799, 0, -1], // log10(2): ...F798|8F.. rounds up
  [0x3ffe, 0xb17217f7, 0xd1cf79ac, 0, -1], // ln(2): ...79AB|C9.. rounds up
  [0x0000, 0x00000000, 0x00000000, 0, 0], // +0
];

/** The x87 unit of one CPU; its state lives in the CPU state buffer's x87 area. */
export class Fpu {
  readonly cpu: Cpu;
  /** The x87 area as u16 / i32 (see the layout). */
  readonly u16: Uint16Array;
  readonly i32: Int32Array;

  // Per-instruction scratch (dead between instructions).
  readonly #ua = new Unpacked();
  readonly #ub = new Unpacked();
  readonly #dbl = new Int32Array(2);
  /** The memory operand in slot MEM was a denormal in its own format (m32/m64). */
  #srcDen = false;
  /** Normalized magnitudes for exact comparison/remainder: exponent, mantissa hi, lo. */
  #ne = 0;
  #nh = 0;
  #nl = 0;

  /**
   * FERR# (CR0.NE = 0): machine wiring, not state. The machine connects it to the AT error latch
   * (devices/ferr: `setFerr(true)`, cleared by the guest's write to port 0xF0); while null the FPU
   * raises IRQ 13 itself with `bus.irqs.setIrq(13, true)`.
   */
  onFerr: (() => void) | null = null;

  constructor(cpu: Cpu) {
    this.cpu = cpu;
    const bytes = cpu.s.fpuBytes;
    this.u16 = new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength >>> 1);
    this.i32 = new Int32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength >>> 2);
  }

  // ------------------------------------------------------------------------------------------
  // State access

  /** Control word. */
  get cw(): number {
    return this.u16[U_CW]!;
  }
  /** Status word (TOP included). */
  get sw(): number {
    return this.u16[U_SW]!;
  }
  /** Tag word (2 bits per physical register). */
  get tw(): number {
    return this.u16[U_TW]!;
  }
  /** TOP. */
  get top(): number {
    return (this.u16[U_SW]! >>> 11) & 7;
  }
  /** Physical register of ST(i). */
  phys(i: number): number {
    return (((this.u16[U_SW]! >>> 11) + i) & 7) >>> 0;
  }
  /** Sign/exponent word of a slot. */
  se(p: number): number {
    return this.u16[20 + p * 8]!;
  }
  /** Mantissa bits 63..32 of a slot (int32 pattern). */
  hi(p: number): number {
    return this.i32[9 + p * 4]!;
  }
  /** Mantissa bits 31..0 of a slot (int32 pattern). */
  lo(p: number): number {
    return this.i32[8 + p * 4]!;
  }
  /** True when physical register p is empty. */
  isEmpty(p: number): boolean {
    return ((this.u16[U_TW]! >>> (p * 2)) & 3) === 3;
  }
  /** ST(i) as a double (for debugging and tests; NaN for empty). */
  stDouble(i: number): number {
    const p = this.phys(i);
    if (this.isEmpty(p)) return NaN;
    unpack80(this.se(p), this.hi(p), this.lo(p), this.#ua);
    return toDouble(this.#ua);
  }

  #write(p: number, se: number, hi: number, lo: number): void {
    this.u16[20 + p * 8] = se;
    this.u16[21 + p * 8] = 0;
    this.i32[9 + p * 4] = hi;
    this.i32[8 + p * 4] = lo;
    if (p < 8) {
      const sh = p * 2;
      this.u16[U_TW] = (this.u16[U_TW]! & ~(3 << sh)) | (tagOf(se, hi, lo) << sh);
    }
  }
  #writeP80(p: number): void {
    this.#write(p, p80.se, p80.hi, p80.lo);
  }
  #copy(dst: number, src: number): void {
    this.#write(dst, this.se(src), this.hi(src), this.lo(src));
  }
  #setIndef(p: number): void {
    this.#write(p, 0xffff, 0xc0000000 | 0, 0);
  }
  #setEmpty(p: number): void {
    this.u16[U_TW] = this.u16[U_TW]! | (3 << (p * 2));
  }
  #setTop(t: number): void {
    this.u16[U_SW] = (this.u16[U_SW]! & ~0x3800) | ((t & 7) << 11);
  }
  #push(): void {
    this.#setTop(this.top - 1);
  }
  #pop(): void {
    this.#setEmpty(this.phys(0));
    this.#setTop(this.top + 1);
  }
  #setCC(bits: number): void {
    this.u16[U_SW] = (this.u16[U_SW]! & ~SW_CC) | bits;
  }
  #setC1(v: number): void {
    this.u16[U_SW] = v !== 0 ? this.u16[U_SW]! | SW_C1 : this.u16[U_SW]! & ~SW_C1;
  }
  /** True when the exception flag(s) are masked. */
  #masked(flag: number): boolean {
    return (this.u16[U_CW]! & flag) === flag;
  }

  /** Records exception flags; an unmasked one becomes pending (ES, B) and asserts FERR# when CR0.NE = 0. */
  #signal(flags: number): void {
    if (flags === 0) return;
    let sw = this.u16[U_SW]! | flags;
    if ((flags & 0x3f & ~this.u16[U_CW]!) !== 0) {
      const was = sw & SW_ES;
      sw |= SW_ES | SW_B;
      if (was === 0) this.#ferr();
    }
    this.u16[U_SW] = sw;
  }
  /** Recomputes ES/B from the flags and masks (after FLDCW, FLDENV, FRSTOR). */
  #updateEs(): void {
    const sw = this.u16[U_SW]!;
    const pend = (sw & 0x3f & ~this.u16[U_CW]!) !== 0;
    this.u16[U_SW] = pend ? sw | SW_ES | SW_B : sw & ~(SW_ES | SW_B);
    if (pend && (sw & SW_ES) === 0) this.#ferr();
  }
  #ferr(): void {
    if ((this.cpu.i32[Slot.CR0]! & CR0.NE) !== 0) return;
    if (this.onFerr !== null) this.onFerr();
    else this.cpu.bus.irqs.setIrq(13, true);
  }
  /** Waiting instructions: a pending unmasked exception raises #MF (CR0.NE = 1). True: stop. */
  #pending(): boolean {
    if ((this.u16[U_SW]! & SW_ES) !== 0 && (this.cpu.i32[Slot.CR0]! & CR0.NE) !== 0) {
      this.cpu.raise(Vec.MF);
      return true;
    }
    return false;
  }

  /** Stack overflow (a push onto a full register): IE|SF, C1 = 1; masked: push the indefinite. */
  #overflow(): void {
    this.#signal(X.IE | X.SF);
    this.#setC1(1);
    if (this.#masked(X.IE)) {
      this.#push();
      this.#setIndef(this.phys(0));
    }
  }
  /** Stack underflow: IE|SF, C1 = 0; masked: `dst` (if >= 0) gets the indefinite. True when masked. */
  #underflow(dst: number): boolean {
    this.#signal(X.IE | X.SF);
    this.#setC1(0);
    if (!this.#masked(X.IE)) return false;
    if (dst >= 0) this.#setIndef(dst);
    return true;
  }
  /** Invalid operation with the indefinite as the masked response. True when masked (result written). */
  #invalid(dst: number): boolean {
    this.#signal(X.IE);
    if (!this.#masked(X.IE)) return false;
    if (dst >= 0) this.#setIndef(dst);
    return true;
  }

  /** Effective operand size of the current instruction (the core's `o32`; CS.D until it has one). */
  get #o32(): boolean {
    const c = this.cpu as unknown as { opSize32?: boolean; o32?: boolean };
    if (typeof c.opSize32 === "boolean") return c.opSize32;
    if (typeof c.o32 === "boolean") return c.o32;
    return this.cpu.cs32;
  }

  /** Last instruction/operand pointers and opcode (non-control instructions). */
  #setPtrs(op: number, modrm: number, seg: number, off: number): void {
    this.u16[U_FOP] = ((op & 7) << 8) | modrm;
    this.i32[I_FIP] = this.cpu.instrStart;
    this.u16[U_FCS] = this.cpu.s.segSel[SReg.CS]!;
    if (seg >= 0) {
      this.i32[I_FDP] = off;
      this.u16[U_FDS] = this.cpu.s.segSel[seg]!;
    }
  }

  // ------------------------------------------------------------------------------------------
  // Reset, WAIT, dispatch

  /** FNINIT state (also at CPU reset); registers are zeroed at reset. */
  reset(): void {
    this.cpu.s.fpuBytes.fill(0);
    this.#finit();
  }
  #finit(): void {
    this.u16[U_CW] = 0x037f;
    this.u16[U_SW] = 0;
    this.u16[U_TW] = 0xffff;
    this.u16[U_FOP] = 0;
    this.i32[I_FIP] = 0;
    this.u16[U_FCS] = 0;
    this.i32[I_FDP] = 0;
    this.u16[U_FDS] = 0;
  }

  /** FWAIT/WAIT (9B): #NM when CR0.TS and CR0.MP; delivers a pending unmasked x87 exception. */
  wait(): void {
    const cr0 = this.cpu.i32[Slot.CR0]!;
    if ((cr0 & (CR0.TS | CR0.MP)) === (CR0.TS | CR0.MP)) {
      this.cpu.raise(Vec.NM);
      return;
    }
    this.#pending();
  }

  /**
   * Executes one escape instruction. `op` is 0xD8..0xDF, `modrm` the ModRM byte; for memory
   * forms `seg`/`off` are the effective address (segment index, offset), for register forms seg = -1.
   */
  exec(op: number, modrm: number, seg: number, off: number): void {
    const cpu = this.cpu;
    if ((cpu.i32[Slot.CR0]! & (CR0.EM | CR0.TS)) !== 0) {
      cpu.raise(Vec.NM);
      return;
    }
    this.#srcDen = false;
    if (seg < 0 || modrm >= 0xc0) this.#execReg(op & 7, modrm & 0xff);
    else this.#execMem(op & 7, modrm & 0xff, seg, off);
  }

  #execMem(o: number, modrm: number, seg: number, off: number): void {
    const reg = (modrm >>> 3) & 7;
    const op = 0xd8 | o;
    switch (o) {
      case 0: // D8: m32fp arithmetic
      case 2: // DA: m32int
      case 4: // DC: m64fp
      case 6: {
        // DE: m16int
        if (this.#pending()) return;
        const kind = o === 0 ? M.F32 : o === 2 ? M.I32 : o === 4 ? M.F64 : M.I16;
        if (!this.#loadMem(kind, seg, off)) return;
        this.#setPtrs(op, modrm, seg, off);
        this.#arithGroup(reg, this.phys(0), MEM, this.phys(0));
        return;
      }
      case 1: // D9
        switch (reg) {
          case 0:
            return this.#fldMem(M.F32, op, modrm, seg, off);
          case 2:
            return this.#fstMem(M.F32, false, op, modrm, seg, off);
          case 3:
            return this.#fstMem(M.F32, true, op, modrm, seg, off);
          case 4:
            return this.#fldenv(seg, off, false);
          case 5: {
            if (this.#pending()) return;
            const v = this.cpu.read16(seg, off);
            if (this.cpu.faulted) return;
            this.u16[U_CW] = (v & 0x1f7f) | 0x40;
            this.#updateEs();
            return;
          }
          case 6:
            if (!this.#storeEnv(seg, off)) return;
            this.u16[U_CW] = this.u16[U_CW]! | 0x3f;
            this.#updateEs(); // ES summarizes the unmasked flags: none now
            return;
          case 7:
            this.cpu.write16(seg, off, this.u16[U_CW]!);
            return;
          default:
            this.cpu.raise(Vec.UD);
            return;
        }
      case 3: // DB
        switch (reg) {
          case 0:
            return this.#fldMem(M.I32, op, modrm, seg, off);
          case 2:
            return this.#fstMem(M.I32, false, op, modrm, seg, off);
          case 3:
            return this.#fstMem(M.I32, true, op, modrm, seg, off);
          case 5:
            return this.#fldMem(M.F80, op, modrm, seg, off);
          case 7:
            return this.#fstMem(M.F80, true, op, modrm, seg, off);
          default: // /1 FISTTP is SSE3; /4 /6 undefined
            this.cpu.raise(Vec.UD);
            return;
        }
      case 5: // DD
        switch (reg) {
          case 0:
            return this.#fldMem(M.F64, op, modrm, seg, off);
          case 2:
            return this.#fstMem(M.F64, false, op, modrm, seg, off);
          case 3:
            return this.#fstMem(M.F64, true, op, modrm, seg, off);
          case 4:
            return this.#fldenv(seg, off, true);
          case 6:
            if (!this.#fsave(seg, off)) return;
            this.#finit();
            return;
          case 7:
            this.cpu.write16(seg, off, this.u16[U_SW]!);
            return;
          default:
            this.cpu.raise(Vec.UD);
            return;
        }
      default: // DF
        switch (reg) {
          case 0:
            return this.#fldMem(M.I16, op, modrm, seg, off);
          case 2:
            return this.#fstMem(M.I16, false, op, modrm, seg, off);
          case 3:
            return this.#fstMem(M.I16, true, op, modrm, seg, off);
          case 4:
            return this.#fldMem(M.BCD, op, modrm, seg, off);
          case 5:
            return this.#fldMem(M.I64, op, modrm, seg, off);
          case 6:
            return this.#fstMem(M.BCD, true, op, modrm, seg, off);
          case 7:
            return this.#fstMem(M.I64, true, op, modrm, seg, off);
          default:
            this.cpu.raise(Vec.UD);
            return;
        }
    }
  }

  /** True for the register-form encodings a P6 defines (aliases included). */
  static validReg(o: number, modrm: number): boolean {
    switch (o) {
      case 1:
        return !(
          (modrm >= 0xd1 && modrm <= 0xd7) ||
          modrm === 0xe2 ||
          modrm === 0xe3 ||
          modrm === 0xe6 ||
          modrm === 0xe7 ||
          modrm === 0xef
        );
      case 2:
        return modrm < 0xe0 || modrm === 0xe9;
      case 3:
        return modrm < 0xe5 || (modrm >= 0xe8 && modrm < 0xf8);
      case 5:
        return modrm < 0xf0;
      case 6:
        return modrm < 0xd8 || modrm === 0xd9 || modrm >= 0xe0;
      case 7:
        return modrm < 0xe1 || (modrm >= 0xe8 && modrm < 0xf8);
      default:
        return true;
    }
  }

  #execReg(o: number, modrm: number): void {
    if (!Fpu.validReg(o, modrm)) {
      this.cpu.raise(Vec.UD);
      return;
    }
    const op = 0xd8 | o;
    // Non-waiting, control: FNCLEX, FNINIT, FNENI/FNDISI/FNSETPM (no-ops), FNSTSW AX.
    if (o === 3 && modrm >= 0xe0 && modrm <= 0xe4) {
      if (modrm === 0xe2) this.u16[U_SW] = this.u16[U_SW]! & ~0x80ff;
      else if (modrm === 0xe3) this.#finit();
      return;
    }
    if (o === 7 && modrm === 0xe0) {
      this.cpu.r16[0] = this.u16[U_SW]!;
      return;
    }
    if (this.#pending()) return;
    this.#setPtrs(op, modrm, -1, 0);
    const reg = (modrm >>> 3) & 7;
    const i = modrm & 7;
    const sti = this.phys(i);
    const st0 = this.phys(0);
    switch (o) {
      case 0: // D8: ST0 = ST0 op ST(i)
        this.#arithGroup(reg, st0, sti, st0);
        return;
      case 4: // DC: ST(i) = ST(i) op ST0 (sub/div directions reversed)
      case 6: // DE: the same and pop
        if (reg === 2 || reg === 3) {
          // FCOM2/FCOMP3 (DC) and FCOMP5 (DE D0..D7) aliases; DE D9 = FCOMPP
          if (o === 6 && reg === 3) this.#fcom(st0, this.phys(1), 2, false, false);
          else this.#fcom(st0, sti, o === 6 || reg === 3 ? 1 : 0, false, false);
          return;
        }
        {
          const kind = reg === 0 ? OP_ADD : reg === 1 ? OP_MUL : reg === 4 || reg === 5 ? OP_SUB : OP_DIV;
          // DC E0 FSUBR: ST(i) = ST0 - ST(i); DC E8 FSUB: ST(i) = ST(i) - ST0 (same for DIV).
          const rev = reg === 4 || reg === 6;
          if (!this.#checkTwo(st0, sti, sti)) {
            if (o === 6 && this.#masked(X.IE)) this.#pop();
            return;
          }
          const done = rev ? this.#arith(kind, st0, sti, sti) : this.#arith(kind, sti, st0, sti);
          if (o === 6 && done) this.#pop();
        }
        return;
      case 1:
        this.#d9Reg(modrm, reg, sti, st0);
        return;
      case 2: // DA: FCMOVcc, FUCOMPP
        if (modrm === 0xe9) {
          this.#fcom(st0, this.phys(1), 2, true, false);
          return;
        }
        this.#fcmov(reg, false, st0, sti);
        return;
      case 3: // DB: FCMOVNcc, FUCOMI, FCOMI
        if (reg < 4) this.#fcmov(reg, true, st0, sti);
        else this.#fcom(st0, sti, 0, reg === 5, true);
        return;
      case 5: // DD
        switch (reg) {
          case 0: // FFREE
            this.#setEmpty(sti);
            return;
          case 1: // FXCH4
            this.#fxch(st0, sti);
            return;
          case 2: // FST ST(i)
          case 3: // FSTP ST(i)
            this.#fstReg(sti, reg === 3);
            return;
          case 4: // FUCOM
          case 5: // FUCOMP
            this.#fcom(st0, sti, reg - 4, true, false);
            return;
          default:
            return;
        }
      default: // DF
        switch (reg) {
          case 0: // FFREEP
            this.#setEmpty(sti);
            this.#setTop(this.top + 1);
            return;
          case 1: // FXCH7
            this.#fxch(st0, sti);
            return;
          case 2: // FSTP8
          case 3: // FSTP9
            this.#fstReg(sti, true);
            return;
          case 5: // FUCOMIP
          case 6: // FCOMIP
            this.#fcom(st0, sti, 1, reg === 5, true);
            return;
          default:
            return;
        }
    }
  }

  #d9Reg(modrm: number, reg: number, sti: number, st0: number): void {
    switch (reg) {
      case 0: {
        // FLD ST(i)
        if (!this.isEmpty(this.phys(7))) return this.#overflow();
        if (this.isEmpty(sti)) {
          this.#signal(X.IE | X.SF);
          this.#setC1(0);
          if (this.#masked(X.IE)) {
            this.#push();
            this.#setIndef(this.phys(0));
          }
          return;
        }
        this.#copy(TMP, sti);
        this.#push();
        this.#copy(this.phys(0), TMP);
        this.#setC1(0);
        return;
      }
      case 1:
        return this.#fxch(st0, sti);
      case 2: // FNOP
        return;
      case 3: // FSTP1
        return this.#fstReg(sti, true);
      default:
        break;
    }
    switch (modrm) {
      case 0xe0: // FCHS
      case 0xe1: // FABS
        if (this.isEmpty(st0)) {
          this.#underflow(st0);
          return;
        }
        this.#write(st0, modrm === 0xe0 ? this.se(st0) ^ 0x8000 : this.se(st0) & 0x7fff, this.hi(st0), this.lo(st0));
        this.#setC1(0);
        return;
      case 0xe4: // FTST
        this.#write(TMP, 0, 0, 0);
        this.#fcom(st0, TMP, 0, false, false);
        return;
      case 0xe5:
        return this.#fxam(st0);
      case 0xe8:
      case 0xe9:
      case 0xea:
      case 0xeb:
      case 0xec:
      case 0xed:
      case 0xee:
        return this.#fldConst(modrm - 0xe8);
      case 0xf0:
        return this.#unaryTrans(st0, 0);
      case 0xf1:
        return this.#fyl2x(false);
      case 0xf2:
        return this.#fptanSincos(true);
      case 0xf3:
        return this.#fpatan();
      case 0xf4:
        return this.#fxtract();
      case 0xf5:
        return this.#fprem(true);
      case 0xf6:
        this.#setTop(this.top - 1);
        this.#setC1(0);
        return;
      case 0xf7:
        this.#setTop(this.top + 1);
        this.#setC1(0);
        return;
      case 0xf8:
        return this.#fprem(false);
      case 0xf9:
        return this.#fyl2x(true);
      case 0xfa:
        return this.#fsqrt(st0);
      case 0xfb:
        return this.#fptanSincos(false);
      case 0xfc:
        return this.#frndint(st0);
      case 0xfd:
        return this.#fscale();
      case 0xfe:
        return this.#unaryTrans(st0, 1);
      default: // 0xff FCOS
        return this.#unaryTrans(st0, 2);
    }
  }

  // ------------------------------------------------------------------------------------------
  // Memory operands

  /** Reads a memory operand into slot MEM (exact conversion to 80 bits). False on a fault. */
  #loadMem(kind: number, seg: number, off: number): boolean {
    const cpu = this.cpu;
    switch (kind) {
      case M.F32: {
        const b = cpu.read32(seg, off);
        if (cpu.faulted) return false;
        this.#f32to80(b);
        break;
      }
      case M.F64: {
        const lo = cpu.read32(seg, off);
        if (cpu.faulted) return false;
        const hi = cpu.read32(seg, (off + 4) | 0);
        if (cpu.faulted) return false;
        this.#f64to80(lo, hi);
        break;
      }
      case M.F80: {
        const lo = cpu.read32(seg, off);
        if (cpu.faulted) return false;
        const hi = cpu.read32(seg, (off + 4) | 0);
        if (cpu.faulted) return false;
        const se = cpu.read16(seg, (off + 8) | 0);
        if (cpu.faulted) return false;
        p80.lo = lo;
        p80.hi = hi;
        p80.se = se;
        break;
      }
      case M.I16: {
        const v = (cpu.read16(seg, off) << 16) >> 16;
        if (cpu.faulted) return false;
        packInt80(v < 0 ? 1 : 0, 0, v < 0 ? -v : v, 0);
        break;
      }
      case M.I32: {
        const v = cpu.read32(seg, off) | 0;
        if (cpu.faulted) return false;
        packInt80(v < 0 ? 1 : 0, 0, v < 0 ? -v | 0 : v, 0);
        break;
      }
      case M.I64: {
        const lo = cpu.read32(seg, off);
        if (cpu.faulted) return false;
        const hi = cpu.read32(seg, (off + 4) | 0);
        if (cpu.faulted) return false;
        if (hi < 0) packInt80(1, (~hi + (lo === 0 ? 1 : 0)) | 0, -lo | 0, 0);
        else packInt80(0, hi, lo, 0);
        break;
      }
      default: {
        // BCD: 18 digits in bytes 0..8 (byte 0 low nibble = least significant), sign in byte 9 bit 7
        const w0 = cpu.read32(seg, off);
        if (cpu.faulted) return false;
        const w1 = cpu.read32(seg, (off + 4) | 0);
        if (cpu.faulted) return false;
        const w2 = cpu.read16(seg, (off + 8) | 0);
        if (cpu.faulted) return false;
        let h = 0;
        let l = 0;
        for (let d = 17; d >= 0; d--) {
          const bi = d >>> 1;
          const byte = bi < 4 ? w0 >>> (bi * 8) : bi < 8 ? w1 >>> ((bi - 4) * 8) : w2;
          const digit = (byte >>> ((d & 1) * 4)) & 0xf;
          const x = (l >>> 0) * 10 + digit;
          const carry = Math.floor(x / TWO32);
          l = (x - carry * TWO32) | 0;
          h = (h * 10 + carry) | 0;
        }
        packInt80((w2 >>> 15) & 1, h, l, 0);
        break;
      }
    }
    this.#write(MEM, p80.se, p80.hi, p80.lo);
    return true;
  }

  /** m32fp bits → p80 (exact); sets #srcDen for denormals. */
  #f32to80(b: number): void {
    const sign = (b >>> 31) & 1;
    const exp = (b >>> 23) & 0xff;
    const frac = b & 0x7fffff;
    if (exp === 0xff) {
      p80.se = (sign << 15) | 0x7fff;
      p80.hi = 0x80000000 | (frac << 8) | 0;
      p80.lo = 0;
    } else if (exp === 0) {
      this.#srcDen = frac !== 0;
      packInt80(sign, 0, frac, -149);
    } else {
      p80.se = (sign << 15) | (exp - 127 + 16383);
      p80.hi = 0x80000000 | (frac << 8) | 0;
      p80.lo = 0;
    }
  }

  /** m64fp bits → p80 (exact); sets #srcDen for denormals. */
  #f64to80(lo: number, hi: number): void {
    const sign = (hi >>> 31) & 1;
    const exp = (hi >>> 20) & 0x7ff;
    const fh = hi & 0xfffff;
    if (exp === 0x7ff) {
      p80.se = (sign << 15) | 0x7fff;
      p80.hi = 0x80000000 | (fh << 11) | (lo >>> 21) | 0;
      p80.lo = lo << 11;
    } else if (exp === 0) {
      this.#srcDen = fh !== 0 || lo !== 0;
      packInt80(sign, fh, lo, -1074);
    } else {
      p80.se = (sign << 15) | (exp - 1023 + 16383);
      p80.hi = 0x80000000 | (fh << 11) | (lo >>> 21) | 0;
      p80.lo = lo << 11;
    }
  }

  /** A double into slot p exactly. */
  #storeDouble(p: number, x: number): void {
    doubleBits(x, this.#dbl);
    this.#f64to80(this.#dbl[0]!, this.#dbl[1]!);
    this.#writeP80(p);
  }

  /** FLD m32/m64/m80, FILD m16/m32/m64, FBLD. */
  #fldMem(kind: number, op: number, modrm: number, seg: number, off: number): void {
    if (this.#pending()) return;
    if (!this.#loadMem(kind, seg, off)) return;
    this.#setPtrs(op, modrm, seg, off);
    if (!this.isEmpty(this.phys(7))) return this.#overflow();
    this.#setC1(0);
    if (kind === M.F32 || kind === M.F64) {
      const c = classify(this.se(MEM), this.hi(MEM), this.lo(MEM));
      if (c === Cls.SNAN) {
        this.#signal(X.IE);
        if (!this.#masked(X.IE)) return;
        this.#write(MEM, this.se(MEM), this.hi(MEM) | 0x40000000, this.lo(MEM));
      } else if (this.#srcDen) {
        this.#signal(X.DE);
        if (!this.#masked(X.DE)) return;
      }
    }
    this.#push();
    this.#copy(this.phys(0), MEM);
  }

  /** FST(P) m32/m64/m80, FIST(P) m16/m32/m64, FBSTP. */
  #fstMem(kind: number, pop: boolean, op: number, modrm: number, seg: number, off: number): void {
    if (this.#pending()) return;
    const cpu = this.cpu;
    const st0 = this.phys(0);
    let flags = 0;
    let c1 = 0;
    let w0 = 0;
    let w1 = 0;
    let w2 = 0;
    const empty = this.isEmpty(st0);
    const se = this.se(st0);
    const hi = this.hi(st0);
    const lo = this.lo(st0);
    const cls = empty ? Cls.BAD : classify(se, hi, lo);
    const sign = (se >>> 15) & 1;
    if (empty) flags = X.IE | X.SF;
    let indefinite = empty;
    if (kind === M.F80) {
      if (empty) {
        w0 = 0;
        w1 = 0xc0000000 | 0;
        w2 = 0xffff;
      } else {
        w0 = lo;
        w1 = hi;
        w2 = se;
      }
    } else if (kind === M.F32 || kind === M.F64) {
      const fmt: Format = kind === M.F32 ? SINGLE : DOUBLE;
      if (!empty) {
        switch (cls) {
          case Cls.ZERO:
            w0 = 0;
            w1 = sign << 31;
            break;
          case Cls.INF:
            w0 = 0;
            w1 = (sign << 31) | (kind === M.F32 ? 0x7f800000 : 0x7ff00000);
            break;
          case Cls.SNAN:
          case Cls.QNAN: {
            if (cls === Cls.SNAN) flags |= X.IE;
            if (kind === M.F32) w1 = (sign << 31) | 0x7fc00000 | ((hi >>> 8) & 0x3fffff);
            else {
              w1 = (sign << 31) | 0x7ff80000 | ((hi >>> 11) & 0x7ffff);
              w0 = (hi << 21) | (lo >>> 11);
            }
            break;
          }
          case Cls.BAD:
            flags |= X.IE;
            indefinite = true;
            break;
          default: {
            const u = this.#ua;
            unpack80(se, hi, lo, u);
            if (u.denormal) flags |= X.DE;
            roundTo(sign, u.m, u.e, u.t, fmt.q, fmt, this.u16[U_CW]!, 0);
            flags |= res.flags;
            c1 = res.c1;
            if (!res.store) break;
            let v: number;
            if (res.inf !== 0) v = Infinity;
            else v = scale(res.n, res.g);
            if (sign !== 0) v = -v;
            if (kind === M.F32) {
              w1 = floatBits(v);
            } else {
              doubleBits(v, this.#dbl);
              w0 = this.#dbl[0]!;
              w1 = this.#dbl[1]!;
            }
            break;
          }
        }
      }
      if (indefinite) {
        w0 = 0;
        w1 = kind === M.F32 ? 0xffc00000 | 0 : 0xfff80000 | 0;
      }
    } else {
      // Integers and BCD.
      let mh = 0;
      let ml = 0;
      if (!empty) {
        if (cls === Cls.ZERO) {
          mh = 0;
          ml = 0;
        } else if (cls !== Cls.FIN) {
          flags |= X.IE;
          indefinite = true;
        } else {
          roundInt(se, hi, lo, (this.u16[U_CW]! >>> 10) & 3);
          mh = ri.hi >>> 0;
          ml = ri.lo >>> 0;
          let ok: boolean;
          if (ri.huge) ok = false;
          else if (kind === M.I16) ok = mh === 0 && (ml <= 0x7fff || (sign !== 0 && ml === 0x8000));
          else if (kind === M.I32) ok = mh === 0 && (ml <= 0x7fffffff || (sign !== 0 && ml === 0x80000000));
          else if (kind === M.I64) ok = mh < 0x80000000 || (sign !== 0 && mh === 0x80000000 && ml === 0);
          else ok = mh < 0x0de0b6b3 || (mh === 0x0de0b6b3 && ml <= 0xa763ffff);
          if (!ok) {
            flags |= X.IE;
            indefinite = true;
          } else if (ri.inexact) {
            flags |= X.PE;
            c1 = ri.up ? 1 : 0;
          }
        }
      }
      if (indefinite) {
        if (kind === M.BCD) {
          w0 = 0;
          w1 = 0xc0000000 | 0;
          w2 = 0xffff;
        } else if (kind === M.I16) w0 = 0x8000;
        else if (kind === M.I32) w0 = 0x80000000 | 0;
        else {
          w0 = 0;
          w1 = 0x80000000 | 0;
        }
      } else if (kind === M.BCD) {
        // 18 digits by repeated division by 10.
        let h = mh;
        let l = ml;
        let a = 0;
        let b = 0;
        let c = 0;
        for (let d = 0; d < 18; d++) {
          const qh = Math.floor(h / 10);
          const x = (h - qh * 10) * TWO32 + l;
          const ql = Math.floor(x / 10);
          const digit = x - ql * 10;
          h = qh;
          l = ql;
          const sh = (d & 7) * 4;
          if (d < 8) a |= digit << sh;
          else if (d < 16) b |= digit << sh;
          else c |= digit << ((d - 16) * 4);
        }
        w0 = a;
        w1 = b;
        w2 = c | (sign << 15);
      } else {
        const neg = sign !== 0 && (mh !== 0 || ml !== 0);
        if (neg) {
          w0 = -ml | 0;
          w1 = (~mh + (ml === 0 ? 1 : 0)) | 0;
        } else {
          w0 = ml | 0;
          w1 = mh | 0;
        }
      }
    }
    // Unmasked invalid/denormal (and unmasked over/underflow for m32/m64): no store, no pop.
    const unmaskedPre = (flags & (X.IE | X.DE) & ~this.u16[U_CW]!) !== 0;
    const noStore = unmaskedPre || ((kind === M.F32 || kind === M.F64) && !indefinite && cls === Cls.FIN && !res.store);
    if (!noStore) {
      switch (kind) {
        case M.F32:
          cpu.write32(seg, off, w1);
          break;
        case M.I16:
          cpu.write16(seg, off, w0);
          break;
        case M.I32:
          cpu.write32(seg, off, w0);
          break;
        case M.F64:
        case M.I64:
          cpu.write32(seg, off, w0);
          if (cpu.faulted) return;
          cpu.write32(seg, (off + 4) | 0, w1);
          break;
        default:
          cpu.write32(seg, off, w0);
          if (cpu.faulted) return;
          cpu.write32(seg, (off + 4) | 0, w1);
          if (cpu.faulted) return;
          cpu.write16(seg, (off + 8) | 0, w2);
          break;
      }
      if (cpu.faulted) return;
    }
    this.#setPtrs(op, modrm, seg, off);
    this.#signal(flags);
    this.#setC1(empty ? 0 : c1);
    if (pop && !noStore) this.#pop();
  }

  // ------------------------------------------------------------------------------------------
  // Environment, FSAVE/FRSTOR

  /** The x87 environment (14 or 28 bytes) to memory. False on a fault. */
  #storeEnv(seg: number, off: number): boolean {
    const cpu = this.cpu;
    const o32 = this.#o32;
    const real = !cpu.pmode;
    const cw = this.u16[U_CW]!;
    const sw = this.u16[U_SW]!;
    const tw = this.u16[U_TW]!;
    const fop = this.u16[U_FOP]! & 0x7ff;
    let ip = this.i32[I_FIP]!;
    let dp = this.i32[I_FDP]!;
    const cs = this.u16[U_FCS]!;
    const ds = this.u16[U_FDS]!;
    if (real) {
      ip = ((cs << 4) + ip) | 0;
      dp = ((ds << 4) + dp) | 0;
    }
    if (o32) {
      cpu.write32(seg, off, cw | 0xffff0000);
      if (cpu.faulted) return false;
      cpu.write32(seg, (off + 4) | 0, sw | 0xffff0000);
      if (cpu.faulted) return false;
      cpu.write32(seg, (off + 8) | 0, tw | 0xffff0000);
      if (cpu.faulted) return false;
      if (real) {
        cpu.write32(seg, (off + 12) | 0, (ip & 0xffff) | 0xffff0000);
        if (cpu.faulted) return false;
        cpu.write32(seg, (off + 16) | 0, (((ip >>> 16) & 0xffff) << 12) | fop);
        if (cpu.faulted) return false;
        cpu.write32(seg, (off + 20) | 0, (dp & 0xffff) | 0xffff0000);
        if (cpu.faulted) return false;
        cpu.write32(seg, (off + 24) | 0, ((dp >>> 16) & 0xffff) << 12);
      } else {
        cpu.write32(seg, (off + 12) | 0, ip);
        if (cpu.faulted) return false;
        cpu.write32(seg, (off + 16) | 0, cs | (fop << 16));
        if (cpu.faulted) return false;
        cpu.write32(seg, (off + 20) | 0, dp);
        if (cpu.faulted) return false;
        cpu.write32(seg, (off + 24) | 0, ds | 0xffff0000);
      }
    } else {
      cpu.write16(seg, off, cw);
      if (cpu.faulted) return false;
      cpu.write16(seg, (off + 2) | 0, sw);
      if (cpu.faulted) return false;
      cpu.write16(seg, (off + 4) | 0, tw);
      if (cpu.faulted) return false;
      cpu.write16(seg, (off + 6) | 0, ip & 0xffff);
      if (cpu.faulted) return false;
      cpu.write16(seg, (off + 8) | 0, real ? (((ip >>> 16) & 0xf) << 12) | fop : cs);
      if (cpu.faulted) return false;
      cpu.write16(seg, (off + 10) | 0, dp & 0xffff);
      if (cpu.faulted) return false;
      cpu.write16(seg, (off + 12) | 0, real ? ((dp >>> 16) & 0xf) << 12 : ds);
    }
    return !cpu.faulted;
  }

  /** FNSAVE: environment then ST(0)..ST(7), 80 bits each. False on a fault. */
  #fsave(seg: number, off: number): boolean {
    const cpu = this.cpu;
    if (!this.#storeEnv(seg, off)) return false;
    let a = (off + (this.#o32 ? 28 : 14)) | 0;
    for (let i = 0; i < 8; i++) {
      const p = this.phys(i);
      cpu.write32(seg, a, this.lo(p));
      if (cpu.faulted) return false;
      cpu.write32(seg, (a + 4) | 0, this.hi(p));
      if (cpu.faulted) return false;
      cpu.write16(seg, (a + 8) | 0, this.se(p));
      if (cpu.faulted) return false;
      a = (a + 10) | 0;
    }
    return true;
  }

  /** FLDENV (regs = false) and FRSTOR (regs = true): read everything, then commit. */
  #fldenv(seg: number, off: number, regs: boolean): void {
    if (this.#pending()) return;
    const cpu = this.cpu;
    const o32 = this.#o32;
    const real = !cpu.pmode;
    let cw: number;
    let sw: number;
    let tw: number;
    let fop = 0;
    let ip: number;
    let cs = 0;
    let dp: number;
    let ds = 0;
    if (o32) {
      cw = cpu.read16(seg, off);
      if (cpu.faulted) return;
      sw = cpu.read16(seg, (off + 4) | 0);
      if (cpu.faulted) return;
      tw = cpu.read16(seg, (off + 8) | 0);
      if (cpu.faulted) return;
      const a = cpu.read32(seg, (off + 12) | 0);
      if (cpu.faulted) return;
      const b = cpu.read32(seg, (off + 16) | 0);
      if (cpu.faulted) return;
      const c = cpu.read32(seg, (off + 20) | 0);
      if (cpu.faulted) return;
      const d = cpu.read32(seg, (off + 24) | 0);
      if (cpu.faulted) return;
      if (real) {
        ip = (a & 0xffff) | (((b >>> 12) & 0xffff) << 16);
        fop = b & 0x7ff;
        dp = (c & 0xffff) | (((d >>> 12) & 0xffff) << 16);
      } else {
        ip = a;
        cs = b & 0xffff;
        fop = (b >>> 16) & 0x7ff;
        dp = c;
        ds = d & 0xffff;
      }
    } else {
      cw = cpu.read16(seg, off);
      if (cpu.faulted) return;
      sw = cpu.read16(seg, (off + 2) | 0);
      if (cpu.faulted) return;
      tw = cpu.read16(seg, (off + 4) | 0);
      if (cpu.faulted) return;
      const a = cpu.read16(seg, (off + 6) | 0);
      if (cpu.faulted) return;
      const b = cpu.read16(seg, (off + 8) | 0);
      if (cpu.faulted) return;
      const c = cpu.read16(seg, (off + 10) | 0);
      if (cpu.faulted) return;
      const d = cpu.read16(seg, (off + 12) | 0);
      if (cpu.faulted) return;
      if (real) {
        ip = a | (((b >>> 12) & 0xf) << 16);
        fop = b & 0x7ff;
        dp = c | (((d >>> 12) & 0xf) << 16);
      } else {
        ip = a;
        cs = b;
        dp = c;
        ds = d;
      }
    }
    if (regs) {
      let a = (off + (o32 ? 28 : 14)) | 0;
      for (let i = 0; i < 8; i++) {
        const lo = cpu.read32(seg, a);
        if (cpu.faulted) return;
        const hi = cpu.read32(seg, (a + 4) | 0);
        if (cpu.faulted) return;
        const se = cpu.read16(seg, (a + 8) | 0);
        if (cpu.faulted) return;
        this.#write(STAGE + i, se, hi, lo);
        a = (a + 10) | 0;
      }
    }
    // Commit.
    this.u16[U_CW] = (cw & 0x1f7f) | 0x40;
    this.u16[U_SW] = sw;
    this.u16[U_FOP] = fop;
    this.i32[I_FIP] = ip;
    this.u16[U_FCS] = cs;
    this.i32[I_FDP] = dp;
    this.u16[U_FDS] = ds;
    if (regs) {
      const top = (sw >>> 11) & 7;
      for (let i = 0; i < 8; i++) this.#copy((top + i) & 7, STAGE + i);
    }
    // Tags: empty stays empty; others are recomputed from the register contents.
    let t = 0;
    for (let p = 0; p < 8; p++) {
      const tag = (tw >>> (p * 2)) & 3;
      t |= (tag === 3 ? 3 : tagOf(this.se(p), this.hi(p), this.lo(p))) << (p * 2);
    }
    this.u16[U_TW] = t;
    this.u16[U_SW] = sw & ~(SW_ES | SW_B);
    this.#updateEs();
  }

  // ------------------------------------------------------------------------------------------
  // Register moves

  #fstReg(sti: number, pop: boolean): void {
    const st0 = this.phys(0);
    if (this.isEmpty(st0)) {
      if (!this.#underflow(sti)) return;
    } else {
      this.#copy(sti, st0);
      this.#setC1(0);
    }
    if (pop) this.#pop();
  }

  #fxch(st0: number, sti: number): void {
    if (this.isEmpty(st0) || this.isEmpty(sti)) {
      this.#signal(X.IE | X.SF);
      this.#setC1(0);
      if (!this.#masked(X.IE)) return;
      if (this.isEmpty(st0)) this.#setIndef(st0);
      if (this.isEmpty(sti)) this.#setIndef(sti);
    }
    this.#copy(TMP, st0);
    this.#copy(st0, sti);
    this.#copy(sti, TMP);
    this.#setC1(0);
  }

  #fcmov(cond: number, negate: boolean, st0: number, sti: number): void {
    const f = this.cpu.getFlags();
    let c: boolean;
    switch (cond) {
      case 0:
        c = (f & F.CF) !== 0;
        break;
      case 1:
        c = (f & F.ZF) !== 0;
        break;
      case 2:
        c = (f & (F.CF | F.ZF)) !== 0;
        break;
      default:
        c = (f & F.PF) !== 0;
        break;
    }
    if (negate) c = !c;
    if (this.isEmpty(st0) || this.isEmpty(sti)) {
      this.#underflow(st0);
      return;
    }
    this.#setC1(0);
    if (c) this.#copy(st0, sti);
  }

  #fldConst(k: number): void {
    if (!this.isEmpty(this.phys(7))) return this.#overflow();
    const c = CONSTS[k]!;
    const rc = (this.u16[U_CW]! >>> 10) & 3;
    let lo = c[2];
    if (rc === RC.UP) lo += c[3];
    else if (rc === RC.DOWN || rc === RC.CHOP) lo += c[4];
    this.#push();
    this.#write(this.phys(0), c[0], c[1] | 0, lo | 0);
    this.#setC1(0);
  }

  #fxam(st0: number): void {
    const se = this.se(st0);
    let cc = (se & 0x8000) !== 0 ? SW_C1 : 0;
    if (this.isEmpty(st0)) cc |= SW_C3 | SW_C0;
    else {
      switch (classify(se, this.hi(st0), this.lo(st0))) {
        case Cls.BAD:
          break;
        case Cls.QNAN:
        case Cls.SNAN:
          cc |= SW_C0;
          break;
        case Cls.INF:
          cc |= SW_C2 | SW_C0;
          break;
        case Cls.ZERO:
          cc |= SW_C3;
          break;
        default:
          cc |= (se & 0x7fff) === 0 ? SW_C3 | SW_C2 : SW_C2;
          break;
      }
    }
    this.#setCC(cc);
  }

  // ------------------------------------------------------------------------------------------
  // Comparisons

  /** Normalized magnitude of a finite nonzero slot into #ne/#nh/#nl (exact). */
  #norm(p: number): void {
    let hi = this.hi(p);
    let lo = this.lo(p);
    const exp = this.se(p) & 0x7fff;
    let e = exp === 0 ? -16382 : exp - 16383;
    if (hi >= 0) {
      const z = hi !== 0 ? Math.clz32(hi) : 32 + Math.clz32(lo);
      if (z >= 32) {
        hi = lo << (z - 32);
        lo = 0;
      } else if (z > 0) {
        hi = (hi << z) | (lo >>> (32 - z));
        lo = lo << z;
      }
      e -= z;
    }
    this.#ne = e;
    this.#nh = hi >>> 0;
    this.#nl = lo >>> 0;
  }

  /** Orders a and b (finite or infinite, not NaN): -1, 0, 1. */
  #order(a: number, b: number, ca: ClsT, cb: ClsT): number {
    const sa = this.se(a) >>> 15;
    const sb = this.se(b) >>> 15;
    if (ca === Cls.ZERO && cb === Cls.ZERO) return 0;
    if (ca === Cls.ZERO) return sb !== 0 ? 1 : -1;
    if (cb === Cls.ZERO) return sa !== 0 ? -1 : 1;
    if (sa !== sb) return sa !== 0 ? -1 : 1;
    let mag: number;
    if (ca === Cls.INF || cb === Cls.INF) mag = ca === cb ? 0 : ca === Cls.INF ? 1 : -1;
    else {
      this.#norm(a);
      const e = this.#ne;
      const h = this.#nh;
      const l = this.#nl;
      this.#norm(b);
      mag =
        e !== this.#ne
          ? e > this.#ne
            ? 1
            : -1
          : h !== this.#nh
            ? h > this.#nh
              ? 1
              : -1
            : l !== this.#nl
              ? l > this.#nl
                ? 1
                : -1
              : 0;
    }
    return sa !== 0 ? -mag : mag;
  }

  /**
   * FCOM family: compares slot a (ST0) with slot b; pops `pops` times. `quiet`: FUCOM (QNaNs do not
   * signal). `eflags`: FCOMI/FUCOMI (ZF PF CF) instead of C3 C2 C0.
   */
  #fcom(a: number, b: number, pops: number, quiet: boolean, eflags: boolean): void {
    let r: number; // 0: a > b, 1: a < b, 2: equal, 3: unordered
    if (this.isEmpty(a) || (b < 8 && this.isEmpty(b))) {
      if (!this.#underflow(-1)) return;
      r = 3;
    } else {
      const ca = classify(this.se(a), this.hi(a), this.lo(a));
      const cb = classify(this.se(b), this.hi(b), this.lo(b));
      if (ca >= Cls.QNAN || cb >= Cls.QNAN) {
        const sig = ca === Cls.BAD || cb === Cls.BAD || ca === Cls.SNAN || cb === Cls.SNAN || !quiet;
        if (sig) {
          this.#signal(X.IE);
          if (!this.#masked(X.IE)) return;
        }
        r = 3;
      } else {
        const den =
          (ca === Cls.FIN && (this.se(a) & 0x7fff) === 0) ||
          (cb === Cls.FIN && ((this.se(b) & 0x7fff) === 0 || (b === MEM && this.#srcDen)));
        if (den) {
          this.#signal(X.DE);
          if (!this.#masked(X.DE)) return;
        }
        const o = this.#order(a, b, ca, cb);
        r = o > 0 ? 0 : o < 0 ? 1 : 2;
      }
    }
    if (eflags) {
      const bits = r === 0 ? 0 : r === 1 ? F.CF : r === 2 ? F.ZF : F.ZF | F.PF | F.CF;
      const f = this.cpu.getFlags() & ~(F.ZF | F.PF | F.CF | F.OF | F.SF | F.AF);
      this.cpu.setFlags(f | bits);
      this.#setC1(0);
    } else {
      this.#setCC(r === 0 ? 0 : r === 1 ? SW_C0 : r === 2 ? SW_C3 : SW_C3 | SW_C2 | SW_C0);
    }
    for (let k = 0; k < pops; k++) this.#pop();
  }

  // ------------------------------------------------------------------------------------------
  // Arithmetic

  /** Significand precision from the control word's PC field. */
  #pc(): number {
    const pc = (this.u16[U_CW]! >>> 8) & 3;
    return pc === 0 ? 24 : pc === 2 ? 53 : 64;
  }

  /** D8/DC-memory/DA/DE-memory groups: /0 add, /1 mul, /2 com, /3 comp, /4 sub, /5 subr, /6 div, /7 divr. */
  #arithGroup(reg: number, a: number, b: number, dst: number): void {
    if (reg === 2 || reg === 3) {
      this.#fcom(a, b, reg - 2, false, false);
      return;
    }
    if (!this.#checkTwo(a, b, dst)) return;
    switch (reg) {
      case 0:
        this.#arith(OP_ADD, a, b, dst);
        return;
      case 1:
        this.#arith(OP_MUL, a, b, dst);
        return;
      case 4:
        this.#arith(OP_SUB, a, b, dst);
        return;
      case 5:
        this.#arith(OP_SUB, b, a, dst);
        return;
      case 6:
        this.#arith(OP_DIV, a, b, dst);
        return;
      default:
        this.#arith(OP_DIV, b, a, dst);
        return;
    }
  }

  /** Stack underflow check of two operands (slots >= 8 are never empty). False: stop (masked: dst = indefinite). */
  #checkTwo(a: number, b: number, dst: number): boolean {
    if ((a < 8 && this.isEmpty(a)) || (b < 8 && this.isEmpty(b))) {
      this.#underflow(dst);
      return false;
    }
    this.#setC1(0);
    return true;
  }

  /**
   * NaN and unsupported-operand handling for a two-operand instruction: 0 when no NaN is involved,
   * 1 when it wrote the result to dst, 2 when an unmasked invalid operation left dst unchanged.
   */
  #nan2(ua: UnpackedT, ub: UnpackedT, a: number, b: number, dst: number): number {
    if (ua.cls === Cls.BAD || ub.cls === Cls.BAD) return this.#invalid(dst) ? 1 : 2;
    const na = ua.cls === Cls.QNAN || ua.cls === Cls.SNAN;
    const nb = ub.cls === Cls.QNAN || ub.cls === Cls.SNAN;
    if (!na && !nb) return 0;
    if (ua.cls === Cls.SNAN || ub.cls === Cls.SNAN) {
      this.#signal(X.IE);
      if (!this.#masked(X.IE)) return 2;
    }
    let src: number;
    if (na && nb) {
      if (ua.cls !== ub.cls) src = ua.cls === Cls.QNAN ? a : b;
      else {
        const ha = (this.hi(a) & 0x3fffffff) >>> 0;
        const hb = (this.hi(b) & 0x3fffffff) >>> 0;
        const la = this.lo(a) >>> 0;
        const lb = this.lo(b) >>> 0;
        src = ha > hb || (ha === hb && la >= lb) ? a : b;
      }
    } else src = na ? a : b;
    this.#write(dst, this.se(src), this.hi(src) | 0x40000000, this.lo(src));
    return 1;
  }

  /** The denormal-operand check; true: stop (unmasked #D). */
  #denCheck(ua: UnpackedT, ub: UnpackedT | null, b: number): boolean {
    const den =
      (ua.cls === Cls.FIN && ua.denormal) ||
      (ub !== null && ub.cls === Cls.FIN && (ub.denormal || (b === MEM && this.#srcDen)));
    if (!den) return false;
    this.#signal(X.DE);
    return !this.#masked(X.DE);
  }

  /** Rounds a finite result into slot dst with precision q (extended exponent range). */
  #storeRounded(dst: number, sign: number, m: number, e: number, t: number, q: number): void {
    roundTo(sign, m, e, t, q, EXTENDED, this.u16[U_CW]!, WRAP);
    if (res.inf !== 0) packInf80(sign);
    else if (res.max && q >= 64) {
      p80.se = (sign << 15) | 0x7ffe;
      p80.hi = -1;
      p80.lo = -1;
    } else pack80(sign, res.n, res.g);
    this.#writeP80(dst);
    this.#signal(res.flags);
    this.#setC1(res.c1);
  }

  /** Rounds the exact result left in ext.ts's `xr` into slot dst (precision q, extended range). */
  #storeExact(dst: number, sign: number, q: number): void {
    roundExt(sign, q, this.u16[U_CW]!, WRAP);
    this.#writeP80(dst);
    this.#signal(res.flags);
    this.#setC1(res.c1);
  }

  /** Copies finite nonzero slot src with the given sign into dst, rounded to precision q. */
  #storeOperand(dst: number, src: number, sign: number, q: number): void {
    if (q >= 64) {
      this.#write(dst, (this.se(src) & 0x7fff) | (sign << 15), this.hi(src), this.lo(src));
      return;
    }
    this.#norm(src);
    setMag(this.#ne, this.#nh, this.#nl);
    this.#storeExact(dst, sign, q);
  }

  /** dst = a OP b (slots; operands are not empty). Returns false when an unmasked exception left dst unchanged. */
  #arith(op: number, a: number, b: number, dst: number): boolean {
    const ua = this.#ua;
    const ub = this.#ub;
    classify80(this.se(a), this.hi(a), this.lo(a), ua);
    classify80(this.se(b), this.hi(b), this.lo(b), ub);
    const nan = this.#nan2(ua, ub, a, b, dst);
    if (nan !== 0) return nan === 1;
    if (this.#denCheck(ua, ub, b)) return false;
    // The denormal check for a (operand order reversed: memory operand in a).
    if (a === MEM && this.#srcDen && ua.cls === Cls.FIN) {
      this.#signal(X.DE);
      if (!this.#masked(X.DE)) return false;
    }
    const q = this.#pc();
    const rc = (this.u16[U_CW]! >>> 10) & 3;
    let sb = ub.sign;
    if (op === OP_SUB) sb ^= 1;
    const sa = ua.sign;
    switch (op) {
      case OP_ADD:
      case OP_SUB: {
        if (ua.cls === Cls.INF || ub.cls === Cls.INF) {
          if (ua.cls === Cls.INF && ub.cls === Cls.INF && sa !== sb) return this.#invalid(dst);
          packInf80(ua.cls === Cls.INF ? sa : sb);
          this.#writeP80(dst);
          return true;
        }
        if (ua.cls === Cls.ZERO && ub.cls === Cls.ZERO) {
          const s = sa === sb ? sa : rc === RC.DOWN ? 1 : 0;
          this.#write(dst, s << 15, 0, 0);
          return true;
        }
        if (ua.cls === Cls.ZERO) {
          this.#storeOperand(dst, b, sb, q);
          return true;
        }
        if (ub.cls === Cls.ZERO) {
          this.#storeOperand(dst, a, sa, q);
          return true;
        }
        // Both finite nonzero: exact 64-bit mantissa addition, one rounding.
        this.#norm(a);
        const ea = this.#ne;
        const ah = this.#nh;
        const al = this.#nl;
        this.#norm(b);
        const f = addMag(ea, ah, al, this.#ne, this.#nh, this.#nl, sa !== sb);
        if (f === 0) {
          this.#write(dst, rc === RC.DOWN ? 0x8000 : 0, 0, 0);
          return true;
        }
        this.#storeExact(dst, f > 0 ? sa : sb, q);
        return true;
      }
      case OP_MUL: {
        const sign = sa ^ ub.sign;
        if ((ua.cls === Cls.INF && ub.cls === Cls.ZERO) || (ua.cls === Cls.ZERO && ub.cls === Cls.INF))
          return this.#invalid(dst);
        if (ua.cls === Cls.INF || ub.cls === Cls.INF) {
          packInf80(sign);
          this.#writeP80(dst);
          return true;
        }
        if (ua.cls === Cls.ZERO || ub.cls === Cls.ZERO) {
          this.#write(dst, sign << 15, 0, 0);
          return true;
        }
        this.#norm(a);
        const ea = this.#ne;
        const ah = this.#nh;
        const al = this.#nl;
        this.#norm(b);
        mulMag(ea, ah, al, this.#ne, this.#nh, this.#nl);
        this.#storeExact(dst, sign, q);
        return true;
      }
      default: {
        // OP_DIV
        const sign = sa ^ ub.sign;
        if (ua.cls === Cls.INF && ub.cls === Cls.INF) return this.#invalid(dst);
        if (ua.cls === Cls.ZERO && ub.cls === Cls.ZERO) return this.#invalid(dst);
        if (ua.cls === Cls.INF) {
          packInf80(sign);
          this.#writeP80(dst);
          return true;
        }
        if (ub.cls === Cls.INF || ua.cls === Cls.ZERO) {
          this.#write(dst, sign << 15, 0, 0);
          return true;
        }
        if (ub.cls === Cls.ZERO) {
          this.#signal(X.ZE);
          if (!this.#masked(X.ZE)) return false;
          packInf80(sign);
          this.#writeP80(dst);
          return true;
        }
        this.#norm(a);
        const ea = this.#ne;
        const ah = this.#nh;
        const al = this.#nl;
        this.#norm(b);
        divMag(ea, ah, al, this.#ne, this.#nh, this.#nl);
        this.#storeExact(dst, sign, q);
        return true;
      }
    }
  }

  #fsqrt(st0: number): void {
    if (this.isEmpty(st0)) {
      this.#underflow(st0);
      return;
    }
    this.#setC1(0);
    const u = this.#ua;
    classify80(this.se(st0), this.hi(st0), this.lo(st0), u);
    if (this.#nan1(u, st0)) return;
    if (u.cls === Cls.ZERO) return;
    if (u.sign !== 0) {
      this.#invalid(st0);
      return;
    }
    if (u.cls === Cls.INF) return;
    if (this.#denCheck(u, null, -1)) return;
    this.#norm(st0);
    sqrtMag(this.#ne, this.#nh, this.#nl);
    this.#storeExact(st0, 0, this.#pc());
  }

  /** NaN / unsupported handling of a one-operand instruction (result into dst). True: decided. */
  #nan1(u: UnpackedT, dst: number): boolean {
    if (u.cls === Cls.BAD) {
      this.#invalid(dst);
      return true;
    }
    if (u.cls === Cls.SNAN) {
      this.#signal(X.IE);
      if (this.#masked(X.IE)) this.#write(dst, this.se(dst), this.hi(dst) | 0x40000000, this.lo(dst));
      return true;
    }
    return u.cls === Cls.QNAN;
  }

  #frndint(st0: number): void {
    if (this.isEmpty(st0)) {
      this.#underflow(st0);
      return;
    }
    this.#setC1(0);
    const se = this.se(st0);
    const u = this.#ua;
    classify80(se, this.hi(st0), this.lo(st0), u);
    if (this.#nan1(u, st0)) return;
    if (u.cls !== Cls.FIN) return;
    if (this.#denCheck(u, null, -1)) return;
    roundInt(se, this.hi(st0), this.lo(st0), (this.u16[U_CW]! >>> 10) & 3);
    if (!ri.inexact) {
      if ((se & 0x7fff) - 16383 >= 63) return;
    }
    packInt80((se >>> 15) & 1, ri.hi, ri.lo, 0);
    this.#writeP80(st0);
    if (ri.inexact) {
      this.#signal(X.PE);
      this.#setC1(ri.up ? 1 : 0);
    }
  }

  #fscale(): void {
    const st0 = this.phys(0);
    const st1 = this.phys(1);
    if (!this.#checkTwo(st0, st1, st0)) return;
    const ua = this.#ua;
    const ub = this.#ub;
    classify80(this.se(st0), this.hi(st0), this.lo(st0), ua);
    classify80(this.se(st1), this.hi(st1), this.lo(st1), ub);
    if (this.#nan2(ua, ub, st0, st1, st0) !== 0) return;
    if (this.#denCheck(ua, ub, st1)) return;
    if (ub.cls === Cls.INF) {
      if ((ua.cls === Cls.ZERO && ub.sign === 0) || (ua.cls === Cls.INF && ub.sign !== 0)) {
        this.#invalid(st0);
        return;
      }
      if (ua.cls === Cls.FIN) {
        if (ub.sign === 0) packInf80(ua.sign);
        else pack80(ua.sign, 0, 0);
        this.#writeP80(st0);
      }
      return;
    }
    if (ua.cls !== Cls.FIN) return;
    let n = 0;
    if (ub.cls === Cls.FIN) {
      roundInt(this.se(st1), this.hi(st1), this.lo(st1), RC.CHOP);
      n = ri.huge || ri.hi !== 0 || ri.lo >>> 0 > 100000 ? 100000 : ri.lo;
      if (ub.sign !== 0) n = -n;
    }
    const se = this.se(st0);
    const exp = se & 0x7fff;
    const ne = exp + n;
    if (exp !== 0 && ne >= 1 && ne <= 0x7ffe) {
      this.#write(st0, (se & 0x8000) | ne, this.hi(st0), this.lo(st0));
      return;
    }
    this.#norm(st0);
    setMag(this.#ne + n, this.#nh, this.#nl);
    this.#storeExact(st0, ua.sign, 64);
  }

  #fxtract(): void {
    const st0 = this.phys(0);
    if (this.isEmpty(st0)) {
      this.#underflow(st0);
      return;
    }
    if (!this.isEmpty(this.phys(7))) return this.#overflow();
    this.#setC1(0);
    const se = this.se(st0);
    const u = this.#ua;
    classify80(se, this.hi(st0), this.lo(st0), u);
    const sign = (se >>> 15) & 1;
    if (u.cls === Cls.BAD || u.cls === Cls.SNAN) {
      this.#signal(X.IE);
      if (!this.#masked(X.IE)) return;
    }
    if (u.cls === Cls.BAD) {
      this.#setIndef(st0);
      this.#push();
      this.#setIndef(this.phys(0));
      return;
    }
    if (u.cls === Cls.SNAN || u.cls === Cls.QNAN) {
      this.#write(st0, se, this.hi(st0) | 0x40000000, this.lo(st0));
      this.#copy(TMP, st0);
      this.#push();
      this.#copy(this.phys(0), TMP);
      return;
    }
    if (u.cls === Cls.ZERO) {
      this.#signal(X.ZE);
      if (!this.#masked(X.ZE)) return;
      packInf80(1);
      this.#writeP80(st0);
      this.#push();
      this.#write(this.phys(0), sign << 15, 0, 0);
      return;
    }
    if (u.cls === Cls.INF) {
      packInf80(0);
      this.#writeP80(st0);
      this.#push();
      packInf80(sign);
      this.#writeP80(this.phys(0));
      return;
    }
    if (this.#denCheck(u, null, -1)) return;
    this.#norm(st0);
    const e = this.#ne;
    const h = this.#nh | 0;
    const l = this.#nl | 0;
    packInt80(e < 0 ? 1 : 0, 0, e < 0 ? -e : e, 0);
    this.#writeP80(st0);
    this.#push();
    this.#write(this.phys(0), (sign << 15) | 0x3fff, h, l);
  }

  /** FPREM (IEEE = false: truncating quotient) and FPREM1 (IEEE = true: round to nearest even). */
  #fprem(ieee: boolean): void {
    const st0 = this.phys(0);
    const st1 = this.phys(1);
    if (!this.#checkTwo(st0, st1, st0)) return;
    const ua = this.#ua;
    const ub = this.#ub;
    classify80(this.se(st0), this.hi(st0), this.lo(st0), ua);
    classify80(this.se(st1), this.hi(st1), this.lo(st1), ub);
    if (this.#nan2(ua, ub, st0, st1, st0) !== 0) return;
    if (ua.cls === Cls.INF || ub.cls === Cls.ZERO) {
      this.#invalid(st0);
      return;
    }
    if (this.#denCheck(ua, ub, st1)) return;
    if (ua.cls === Cls.ZERO || ub.cls === Cls.INF) {
      this.#setCC(0);
      return;
    }
    this.#norm(st1);
    const ey = this.#ne;
    const yh = this.#nh;
    const yl = this.#nl;
    this.#norm(st0);
    const ex = this.#ne;
    let rh = this.#nh;
    let rl = this.#nl;
    const sign = (this.se(st0) >>> 15) & 1;
    const D = ex - ey;
    let q = 0;
    let steps: number;
    let partial = false;
    if (D >= 64) {
      partial = true;
      steps = 32 + ((D - 32) & 31);
    } else steps = D;
    if (D < 0) {
      if (!ieee || D < -1) {
        this.#setCC(0);
        return;
      }
      // D = -1: |x| > |y|/2 exactly when the mantissa of x exceeds that of y.
      if (rh > yh || (rh === yh && rl > yl)) {
        // r = y - x in units of 2^(ex - 63): (2Y - X) with Y in units of 2^(ey - 63) = 2 units.
        let dl = yl * 2 - rl;
        let dh = yh * 2 - rh;
        while (dl < 0) {
          dl += TWO32;
          dh -= 1;
        }
        while (dl >= TWO32) {
          dl -= TWO32;
          dh += 1;
        }
        packInt80(sign ^ 1, dh | 0, dl | 0, ex - 63);
        this.#writeP80(st0);
        this.#setCC(SW_C1);
        return;
      }
      this.#setCC(0);
      return;
    }
    // Long division: r = X, then `steps` times r = 2r (mod Y) collecting quotient bits.
    if (rh > yh || (rh === yh && rl >= yl)) {
      const nl = rl - yl;
      rh = (rh - yh - (nl < 0 ? 1 : 0)) >>> 0;
      rl = (nl < 0 ? nl + TWO32 : nl) >>> 0;
      q = 1;
    }
    for (let k = 0; k < steps; k++) {
      const carry = rh >= 0x80000000;
      rh = ((rh << 1) | (rl >>> 31)) >>> 0;
      rl = (rl << 1) >>> 0;
      q = (q << 1) & 0x3fffffff;
      if (carry || rh > yh || (rh === yh && rl >= yl)) {
        const nl = rl - yl;
        const nh = rh - yh - (nl < 0 ? 1 : 0);
        rl = (nl < 0 ? nl + TWO32 : nl) >>> 0;
        rh = nh >>> 0;
        q |= 1;
      }
    }
    let s = sign;
    // Remainder unit: 2^(ex - 63 - steps).
    const unit = ex - 63 - steps;
    if (partial) {
      packInt80(s, rh | 0, rl | 0, unit);
      this.#writeP80(st0);
      this.#setCC((this.u16[U_SW]! & (SW_C0 | SW_C1 | SW_C3)) | SW_C2);
      return;
    }
    if (ieee) {
      // Round to nearest even: compare 2r with Y.
      const top = rh >= 0x80000000;
      const th = ((rh << 1) | (rl >>> 31)) >>> 0;
      const tl = (rl << 1) >>> 0;
      const gt = top || th > yh || (th === yh && tl > yl);
      const eq = !top && th === yh && tl === yl;
      if (gt || (eq && (q & 1) === 1)) {
        const nl = yl - rl;
        const nh = yh - rh - (nl < 0 ? 1 : 0);
        rl = (nl < 0 ? nl + TWO32 : nl) >>> 0;
        rh = nh >>> 0;
        q++;
        s ^= 1;
      }
    }
    packInt80(s, rh | 0, rl | 0, unit);
    if (rh === 0 && rl === 0) p80.se = sign << 15;
    this.#writeP80(st0);
    this.#setCC(((q & 4) !== 0 ? SW_C0 : 0) | ((q & 2) !== 0 ? SW_C3 : 0) | ((q & 1) !== 0 ? SW_C1 : 0));
  }

  // ------------------------------------------------------------------------------------------
  // Transcendentals (doubles)

  /** The value of slot p as a double (unpacked into u too). */
  #toD(p: number, u: UnpackedT): number {
    unpack80(this.se(p), this.hi(p), this.lo(p), u);
    return toDouble(u);
  }

  /** A double result m * 2^extra (m finite or not) into slot dst, rounded to extended; PE set. */
  #storeScaled(dst: number, x: number, extra: number): void {
    const u = this.#ub;
    unpackDouble(x, u);
    if (u.cls === Cls.FIN) {
      this.#storeRounded(dst, u.sign, u.m, u.e + extra, 0, 64);
      this.#signal(X.PE);
      this.#setC1(0);
      return;
    }
    if (u.cls === Cls.QNAN) {
      this.#invalid(dst);
      return;
    }
    if (u.cls === Cls.INF) packInf80(u.sign);
    else pack80(u.sign, 0, 0);
    this.#writeP80(dst);
  }

  /** F2XM1 (0), FSIN (1), FCOS (2). */
  #unaryTrans(st0: number, fn: number): void {
    if (this.isEmpty(st0)) {
      this.#underflow(st0);
      return;
    }
    this.#setC1(0);
    const u = this.#ua;
    const x = this.#toD(st0, u);
    if (this.#nan1(u, st0)) return;
    if (fn !== 0) this.#setCC(this.u16[U_SW]! & (SW_C0 | SW_C1 | SW_C3));
    if (u.cls === Cls.INF) {
      if (fn === 0) {
        if (u.sign !== 0) this.#storeDouble(st0, -1);
        return;
      }
      this.#invalid(st0);
      return;
    }
    if (u.cls === Cls.ZERO) {
      if (fn === 2) this.#storeDouble(st0, 1);
      return;
    }
    if (fn !== 0 && u.e >= 63) {
      this.u16[U_SW] = this.u16[U_SW]! | SW_C2;
      return;
    }
    if (this.#denCheck(u, null, -1)) return;
    if (u.e < -1100) {
      // Tiny: sin x = x, cos x = 1, 2^x - 1 = x ln 2.
      if (fn === 1) {
        this.#signal(X.PE);
        return;
      }
      if (fn === 2) {
        this.#storeDouble(st0, 1);
        this.#signal(X.PE);
        return;
      }
      this.#storeScaled(st0, (u.sign !== 0 ? -u.m : u.m) * Math.LN2, u.e);
      return;
    }
    const r = fn === 0 ? Math.expm1(x * Math.LN2) : fn === 1 ? Math.sin(x) : Math.cos(x);
    this.#storeScaled(st0, r, 0);
  }

  /** FPTAN (tan = true) and FSINCOS. */
  #fptanSincos(tan: boolean): void {
    const st0 = this.phys(0);
    if (this.isEmpty(st0)) {
      this.#underflow(st0);
      return;
    }
    if (!this.isEmpty(this.phys(7))) {
      this.#overflow();
      return;
    }
    this.#setC1(0);
    const u = this.#ua;
    const x = this.#toD(st0, u);
    this.#setCC(this.u16[U_SW]! & (SW_C0 | SW_C3));
    if (u.cls === Cls.BAD || u.cls === Cls.SNAN || u.cls === Cls.QNAN || u.cls === Cls.INF) {
      if (u.cls !== Cls.QNAN) {
        this.#signal(X.IE);
        if (!this.#masked(X.IE)) return;
      }
      if (u.cls === Cls.QNAN || u.cls === Cls.SNAN)
        this.#write(st0, this.se(st0), this.hi(st0) | 0x40000000, this.lo(st0));
      else this.#setIndef(st0);
      this.#copy(TMP, st0);
      this.#push();
      this.#copy(this.phys(0), TMP);
      return;
    }
    if (u.cls === Cls.FIN && u.e >= 63) {
      this.u16[U_SW] = this.u16[U_SW]! | SW_C2;
      return;
    }
    if (this.#denCheck(u, null, -1)) return;
    if (u.cls === Cls.ZERO) {
      // tan 0 = sin 0 = 0 (sign kept); push 1 or cos 0 = 1.
      this.#push();
      this.#storeDouble(this.phys(0), 1);
      return;
    }
    if (tan) {
      if (u.e < -1100) this.#signal(X.PE);
      else this.#storeScaled(st0, Math.tan(x), 0);
      this.#push();
      this.#storeDouble(this.phys(0), 1);
    } else {
      const c = Math.cos(x);
      if (u.e < -1100) this.#signal(X.PE);
      else this.#storeScaled(st0, Math.sin(x), 0);
      this.#push();
      this.#storeScaled(this.phys(0), c, 0);
    }
  }

  /** FPATAN: ST1 = atan2(ST1, ST0), pop. */
  #fpatan(): void {
    const st0 = this.phys(0);
    const st1 = this.phys(1);
    if (!this.#checkTwo(st0, st1, st1)) {
      if (this.#masked(X.IE)) this.#pop();
      return;
    }
    const ux = this.#ua;
    const uy = this.#ub;
    unpack80(this.se(st0), this.hi(st0), this.lo(st0), ux);
    unpack80(this.se(st1), this.hi(st1), this.lo(st1), uy);
    if (this.#nan2(uy, ux, st1, st0, st1) !== 0) {
      if (this.#masked(X.IE)) this.#pop();
      return;
    }
    if (this.#denCheck(ux, uy, st1)) return;
    let r: number;
    let extra = 0;
    if (ux.cls === Cls.FIN && uy.cls === Cls.FIN) {
      const d = uy.e - ux.e;
      if (d > 1000) r = Math.atan2(uy.sign !== 0 ? -1 : 1, 0);
      else if (d < -1000) {
        if (ux.sign === 0) {
          r = (uy.sign !== ux.sign ? -1 : 1) * (uy.m / ux.m);
          extra = d;
        } else r = uy.sign !== 0 ? -Math.PI : Math.PI;
      } else r = Math.atan2((uy.sign !== 0 ? -uy.m : uy.m) * pow2(d), ux.sign !== 0 ? -ux.m : ux.m);
    } else {
      const sx = ux.sign !== 0 ? -1 : 1;
      const sy = uy.sign !== 0 ? -1 : 1;
      const x = ux.cls === Cls.INF ? sx * Infinity : ux.cls === Cls.ZERO ? (sx < 0 ? -0 : 0) : sx;
      const y = uy.cls === Cls.INF ? sy * Infinity : uy.cls === Cls.ZERO ? (sy < 0 ? -0 : 0) : sy;
      r = Math.atan2(y, x);
    }
    if (r === 0) this.#write(st1, Object.is(r, -0) ? 0x8000 : 0, 0, 0);
    else this.#storeScaled(st1, r, extra);
    this.#pop();
  }

  /** FYL2X (p1 = false): ST1 = ST1 * log2(ST0); FYL2XP1: ST1 = ST1 * log2(ST0 + 1). Pop. */
  #fyl2x(p1: boolean): void {
    const st0 = this.phys(0);
    const st1 = this.phys(1);
    if (!this.#checkTwo(st0, st1, st1)) {
      if (this.#masked(X.IE)) this.#pop();
      return;
    }
    const ux = this.#ua;
    const uy = this.#ub;
    unpack80(this.se(st0), this.hi(st0), this.lo(st0), ux);
    unpack80(this.se(st1), this.hi(st1), this.lo(st1), uy);
    if (this.#nan2(ux, uy, st0, st1, st1) !== 0) {
      if (this.#masked(X.IE)) this.#pop();
      return;
    }
    if (this.#denCheck(ux, uy, st1)) return;
    // l = log2(x) (or log2(1 + x)) as a double; x's extended exponent is folded in exactly.
    let l: number;
    const xd = toDouble(ux);
    if (p1) {
      l = Math.log1p(xd) / Math.LN2;
    } else if (ux.cls === Cls.FIN) {
      l = ux.sign !== 0 ? NaN : ux.e + Math.log2(ux.m);
    } else if (ux.cls === Cls.ZERO) {
      l = -Infinity;
    } else l = ux.sign !== 0 ? NaN : Infinity;
    if (l !== l) {
      if (this.#invalid(st1)) this.#pop();
      return;
    }
    if (l === -Infinity && !p1 && uy.cls === Cls.FIN) {
      this.#signal(X.ZE);
      if (!this.#masked(X.ZE)) return;
    }
    if (l === -Infinity && p1 && uy.cls === Cls.FIN) {
      this.#signal(X.ZE);
      if (!this.#masked(X.ZE)) return;
    }
    const ym = uy.cls === Cls.FIN ? (uy.sign !== 0 ? -uy.m : uy.m) : toDouble(uy);
    const r = ym * l;
    if (r !== r) {
      if (this.#invalid(st1)) this.#pop();
      return;
    }
    if (r === 0) this.#write(st1, Object.is(r, -0) ? 0x8000 : 0, 0, 0);
    else this.#storeScaled(st1, r, uy.cls === Cls.FIN ? uy.e : 0);
    this.#pop();
  }
}
