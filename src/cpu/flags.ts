/**
 * Lazy arithmetic flags. Most instructions that set CF/PF/AF/ZF/SF/OF only record what they did
 * (operation kind, operands, result) in the lazy slots of the state buffer; the flags are computed
 * when somebody reads them (Jcc, PUSHF, LAHF, ADC...). Everything else in EFLAGS is always stored.
 *
 * Lazy slots (i32 indices, see state.ts 10..15):
 *   10 LZ_KIND  operation kind: (op << 2) | size, size 0 = 8, 1 = 16, 2 = 32 bits
 *   11 LZ_RES   result
 *   12 LZ_A     first operand (destination before the operation)
 *   13 LZ_B     second operand (without the carry-in for ADC/SBB)
 *   14 LZ_MASK  which EFLAGS bits are lazy (0: none, EFLAGS holds everything)
 * The EFLAGS value is (stored & ~mask) | (computed & mask).
 *
 * Carry/borrow out of the top bit are computed from operands and result with the full-adder
 * identities, which also hold with a carry-in (ADC/SBB), so ADC is ADD and SBB is SUB here:
 *   add: carry = (a & b) | ((a | b) & ~r)      sub: borrow = (~a & b) | ((~a | b) & r)
 *   add: overflow = (a ^ r) & (b ^ r)          sub: overflow = (a ^ b) & (a ^ r)
 *   AF = bit 4 of a ^ b ^ r (both).
 */
import { F, Slot } from "./state.ts";

export const LZ_KIND = Slot.LAZY0;
export const LZ_RES = Slot.LAZY0 + 1;
export const LZ_A = Slot.LAZY0 + 2;
export const LZ_B = Slot.LAZY0 + 3;
export const LZ_MASK = Slot.LAZY0 + 4;

/** Lazy operation kinds (shifted left by 2; OR the size code 0/1/2). */
export const LZ_ADD = 1 << 2;
export const LZ_SUB = 2 << 2;
/** Result-only kind: PF/ZF/SF from the result, CF/OF/AF = 0 (logic ops, and a base for MUL/shifts). */
export const LZ_LOGIC = 3 << 2;

/** All six arithmetic flags. */
export const ALL_ARITH = F.CF | F.PF | F.AF | F.ZF | F.SF | F.OF;
/** Everything but CF (INC/DEC). */
export const NO_CF = ALL_ARITH & ~F.CF;
/** PF, ZF, SF (plus AF cleared) for result-based flags where CF/OF are stored eagerly. */
export const RES_FLAGS = F.PF | F.ZF | F.SF | F.AF;

/** PF for each low byte: 4 (PF bit) when the number of set bits is even. */
export const PARITY = new Uint8Array(256);
for (let i = 0; i < 256; i++) {
  let b = i;
  b ^= b >> 4;
  b ^= b >> 2;
  b ^= b >> 1;
  PARITY[i] = (b & 1) === 0 ? F.PF : 0;
}

/** Sign bit per size code. */
const SIGN = [0x80, 0x8000, 0x80000000 | 0] as const;
/** Value mask per size code. */
const MASK = [0xff, 0xffff, -1] as const;

/** Computes all six arithmetic flags from a lazy record. */
export function computeLazy(kind: number, r: number, a: number, b: number): number {
  const size = kind & 3;
  const sign = size === 0 ? SIGN[0] : size === 1 ? SIGN[1] : SIGN[2];
  const mask = size === 0 ? MASK[0] : size === 1 ? MASK[1] : MASK[2];
  let f = PARITY[r & 0xff]!;
  if ((r & mask) === 0) f |= F.ZF;
  if ((r & sign) !== 0) f |= F.SF;
  const op = kind & ~3;
  if (op === LZ_ADD) {
    if ((((a & b) | ((a | b) & ~r)) & sign) !== 0) f |= F.CF;
    if (((a ^ r) & (b ^ r) & sign) !== 0) f |= F.OF;
    f |= (a ^ b ^ r) & F.AF;
  } else if (op === LZ_SUB) {
    if ((((~a & b) | ((~a | b) & r)) & sign) !== 0) f |= F.CF;
    if (((a ^ b) & (a ^ r) & sign) !== 0) f |= F.OF;
    f |= (a ^ b ^ r) & F.AF;
  }
  return f;
}

/** EFLAGS with lazy bits materialized (does not change the state). */
export function readFlags(i32: Int32Array): number {
  const mask = i32[LZ_MASK]!;
  const stored = i32[Slot.EFLAGS]!;
  if (mask === 0) return stored;
  return (stored & ~mask) | (computeLazy(i32[LZ_KIND]!, i32[LZ_RES]!, i32[LZ_A]!, i32[LZ_B]!) & mask);
}

/** Materializes the lazy flags into EFLAGS and clears the lazy record; returns EFLAGS. */
export function flushFlags(i32: Int32Array): number {
  const v = readFlags(i32);
  i32[Slot.EFLAGS] = v;
  i32[LZ_MASK] = 0;
  return v;
}

/** Records a lazy result: `mask` says which arithmetic flags it defines. */
export function setLazy(i32: Int32Array, kind: number, r: number, a: number, b: number, mask: number): void {
  const old = i32[LZ_MASK]!;
  if (mask !== ALL_ARITH && (old & ~mask) !== 0) {
    // Flags the new record does not define must be stored first. INC/DEC keep only CF: cheap.
    if ((old & ~mask) === F.CF) {
      i32[Slot.EFLAGS] = (i32[Slot.EFLAGS]! & ~F.CF) | getCF(i32);
      i32[LZ_MASK] = old & ~F.CF;
    } else {
      flushFlags(i32);
    }
  }
  i32[LZ_KIND] = kind;
  i32[LZ_RES] = r;
  i32[LZ_A] = a;
  i32[LZ_B] = b;
  i32[LZ_MASK] = mask;
}

/** CF as 0/1. */
export function getCF(i32: Int32Array): number {
  const mask = i32[LZ_MASK]!;
  if ((mask & F.CF) === 0) return i32[Slot.EFLAGS]! & 1;
  const kind = i32[LZ_KIND]!;
  const op = kind & ~3;
  if (op === LZ_LOGIC) return 0;
  const size = kind & 3;
  const sign = size === 0 ? 0x80 : size === 1 ? 0x8000 : 0x80000000 | 0;
  const a = i32[LZ_A]!;
  const b = i32[LZ_B]!;
  const r = i32[LZ_RES]!;
  if (op === LZ_ADD) return (((a & b) | ((a | b) & ~r)) & sign) !== 0 ? 1 : 0;
  return (((~a & b) | ((~a | b) & r)) & sign) !== 0 ? 1 : 0;
}

/** ZF as boolean. */
export function getZF(i32: Int32Array): boolean {
  const mask = i32[LZ_MASK]!;
  if ((mask & F.ZF) === 0) return (i32[Slot.EFLAGS]! & F.ZF) !== 0;
  const size = i32[LZ_KIND]! & 3;
  const r = i32[LZ_RES]!;
  return (size === 0 ? r & 0xff : size === 1 ? r & 0xffff : r) === 0;
}

/** SF as boolean. */
export function getSF(i32: Int32Array): boolean {
  const mask = i32[LZ_MASK]!;
  if ((mask & F.SF) === 0) return (i32[Slot.EFLAGS]! & F.SF) !== 0;
  const size = i32[LZ_KIND]! & 3;
  const r = i32[LZ_RES]!;
  return (size === 0 ? r & 0x80 : size === 1 ? r & 0x8000 : r & (0x80000000 | 0)) !== 0;
}

/** OF as boolean. */
export function getOF(i32: Int32Array): boolean {
  const mask = i32[LZ_MASK]!;
  if ((mask & F.OF) === 0) return (i32[Slot.EFLAGS]! & F.OF) !== 0;
  return (readFlags(i32) & F.OF) !== 0;
}

/** PF as boolean. */
export function getPF(i32: Int32Array): boolean {
  const mask = i32[LZ_MASK]!;
  if ((mask & F.PF) === 0) return (i32[Slot.EFLAGS]! & F.PF) !== 0;
  return PARITY[i32[LZ_RES]! & 0xff]! !== 0;
}

/**
 * Condition code test (the low nibble of Jcc/SETcc/CMOVcc):
 * 0 O, 1 NO, 2 B, 3 AE, 4 Z, 5 NZ, 6 BE, 7 A, 8 S, 9 NS, A P, B NP, C L, D GE, E LE, F G.
 */
export function testCC(i32: Int32Array, cc: number): boolean {
  let t: boolean;
  switch (cc >> 1) {
    case 0:
      t = getOF(i32);
      break;
    case 1:
      t = getCF(i32) !== 0;
      break;
    case 2:
      t = getZF(i32);
      break;
    case 3:
      t = getCF(i32) !== 0 || getZF(i32);
      break;
    case 4:
      t = getSF(i32);
      break;
    case 5:
      t = getPF(i32);
      break;
    case 6:
      t = getSF(i32) !== getOF(i32);
      break;
    default:
      t = getZF(i32) || getSF(i32) !== getOF(i32);
      break;
  }
  return (cc & 1) === 0 ? t : !t;
}
