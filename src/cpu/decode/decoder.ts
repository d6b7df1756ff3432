/**
 * The instruction decoder: prefixes, one-byte and 0F maps, ModRM/SIB/displacement in 16- and
 * 32-bit addressing, immediates. It writes one decoded instruction into a DecodeBlock entry
 * (struct-of-arrays, so the per-page decode cache in cpu.ts holds no objects) and returns the
 * length. It is pure: no CPU state, no memory access beyond the byte buffer it is given.
 *
 * Decoded entry fields (DecodeBlock arrays at index i):
 *   op     opcode (0..FF one-byte map, 0x100|b for 0F b, OP_UD for anything that must #UD)
 *   len    length in bytes (0 = entry empty)
 *   pfx    PF_* bits below; bits 8..10 the segment of the memory operand (override or default)
 *   modrm  the ModRM byte (0 when none)
 *   ea     memory operand: bits 0..3 base register (EA_NONE: none), 4..7 index (EA_NONE), 8..9 scale;
 *          for 16-bit addressing the registers are BX/BP/SI/DI by their 32-bit encoding numbers
 *   disp   displacement (sign-extended), or the moffs of A0..A3
 *   imm    first immediate (imm8/imm16 sign-extended, imm32, far offset, ENTER size)
 *   imm2   second immediate (far selector, ENTER level)
 */
import {
  IMM_B,
  IMM_GRP3,
  IMM_MOFFS,
  IMM_PTR,
  IMM_W,
  IMM_WB,
  IMM_Z,
  OPC,
  P_INVALID,
  P_MODRM,
  P_PREFIX,
} from "./table.ts";

/** Prefix/shape bits of DecodeBlock.pfx. */
export const PF_O32 = 1;
export const PF_A32 = 2;
/** F3 (REP/REPE). */
export const PF_REP = 4;
/** F2 (REPNE). */
export const PF_REPNE = 8;
export const PF_LOCK = 0x10;
/** The instruction has a memory operand described by ea/disp (ModRM mod != 3, or moffs). */
export const PF_MEM = 0x20;
/** A segment override prefix was present. */
export const PF_SEGOVR = 0x40;
/** Decoded with a 32-bit code segment (cache entries are valid only for the same CS size). */
export const PF_CS32 = 0x80;
/** Shift of the segment index in pfx. */
export const PF_SEG_SHIFT = 8;

/** No base / index register. */
export const EA_NONE = 15;

/** The pseudo-opcode of an invalid instruction (#UD when executed). */
export const OP_UD = 0x200;

/** decode() results that are not lengths. */
export const DEC_MORE = -1;
export const DEC_TOOLONG = -2;

/** Maximum instruction length. */
export const MAX_LEN = 15;

/** Int32 words per decoded entry in DecodeBlock.d. */
export const ENTRY_WORDS = 5;

/**
 * A block of decoded instruction entries, packed in one Int32Array (ENTRY_WORDS words each, so a
 * fetch touches one array):
 *   w0  op (bits 0..9) | len << 10 (bits 10..13) | modrm << 16      (0 = entry empty)
 *   w1  pfx (bits 0..15) | ea << 16
 *   w2  disp    w3  imm    w4  imm2
 */
export class DecodeBlock {
  readonly d: Int32Array;
  constructor(n: number) {
    this.d = new Int32Array(n * ENTRY_WORDS);
  }
}

// 16-bit addressing: base and index register per rm (BX=3 BP=5 SI=6 DI=7).
const A16_BASE = [3, 3, 5, 5, 6, 7, 5, 3] as const;
const A16_INDEX = [6, 7, 6, 7, EA_NONE, EA_NONE, EA_NONE, EA_NONE] as const;

// Decoder cursor (module state: the decoder is not re-entrant, and needs no allocation).
let buf: Uint8Array = new Uint8Array(0);
let pos = 0;
let end = 0;
let short = false;

function b8(): number {
  if (pos >= end) {
    short = true;
    pos++;
    return 0;
  }
  return buf[pos++]!;
}
function b16(): number {
  const lo = b8();
  return lo | (b8() << 8);
}
function b32(): number {
  const lo = b16();
  return lo | (b16() << 16) | 0;
}

/** True when LOCK is allowed with this opcode/ModRM (memory destination required). */
function lockable(op: number, modrm: number): boolean {
  const reg = (modrm >> 3) & 7;
  if (op < 0x38) return (op & 7) < 2;
  switch (op) {
    case 0x80:
    case 0x81:
    case 0x82:
    case 0x83:
      return reg !== 7;
    case 0x86:
    case 0x87:
      return true;
    case 0xf6:
    case 0xf7:
      return reg === 2 || reg === 3;
    case 0xfe:
    case 0xff:
      return reg < 2;
    case 0x1ab:
    case 0x1b3:
    case 0x1bb:
    case 0x1b0:
    case 0x1b1:
    case 0x1c0:
    case 0x1c1:
      return true;
    case 0x1ba:
      return reg >= 5;
    case 0x1c7:
      return reg === 1;
    default:
      return false;
  }
}

/**
 * Encodings that are #UD by their ModRM: undefined group members and register forms of
 * memory-only operands (SDM opcode map group tables).
 */
function modrmInvalid(op: number, modrm: number): boolean {
  const reg = (modrm >> 3) & 7;
  const regForm = modrm >= 0xc0;
  switch (op) {
    case 0x62: // BOUND
    case 0x8d: // LEA
    case 0xc4: // LES
    case 0xc5: // LDS
    case 0x1b2: // LSS
    case 0x1b4: // LFS
    case 0x1b5: // LGS
      return regForm;
    case 0x8c:
      return reg > 5;
    case 0x8e:
      return reg > 5 || reg === 1;
    case 0x8f:
    case 0xc6:
    case 0xc7:
      return reg !== 0;
    case 0xfe:
      return reg > 1;
    case 0xff:
      return reg === 7 || (regForm && (reg === 3 || reg === 5));
    case 0x100:
      return reg > 5;
    case 0x101:
      return reg === 5 || (regForm && reg !== 4 && reg !== 6);
    case 0x1ba:
      return reg < 4;
    case 0x1c7:
      return reg !== 1 || regForm;
    case 0x120:
    case 0x122:
      return reg === 1 || reg > 4; // CR1, CR5..CR7
    default:
      return false;
  }
}

/**
 * Decodes one instruction from `bytes[start..start+avail)` into entry `i` of `blk`.
 * Returns the length, DEC_MORE when the instruction continues past `avail` bytes, or DEC_TOOLONG
 * when it is longer than 15 bytes (#GP(0)).
 */
export function decode(
  bytes: Uint8Array,
  start: number,
  avail: number,
  cs32: boolean,
  blk: DecodeBlock,
  i: number,
): number {
  buf = bytes;
  pos = start;
  end = start + avail;
  short = false;
  let o32 = cs32;
  let a32 = cs32;
  let seg = -1;
  let pfx = cs32 ? PF_CS32 : 0;
  let b = 0;
  for (;;) {
    if (pos - start >= MAX_LEN) return DEC_TOOLONG;
    b = b8();
    if ((OPC[b]! & P_PREFIX) === 0) break;
    switch (b) {
      case 0x26:
        seg = 0;
        break;
      case 0x2e:
        seg = 1;
        break;
      case 0x36:
        seg = 2;
        break;
      case 0x3e:
        seg = 3;
        break;
      case 0x64:
        seg = 4;
        break;
      case 0x65:
        seg = 5;
        break;
      case 0x66:
        o32 = !cs32;
        break;
      case 0x67:
        a32 = !cs32;
        break;
      case 0xf0:
        pfx |= PF_LOCK;
        break;
      case 0xf2:
        pfx = (pfx & ~PF_REP) | PF_REPNE;
        break;
      default: // 0xf3
        pfx = (pfx & ~PF_REPNE) | PF_REP;
        break;
    }
  }
  if (short) return DEC_MORE;
  let op = b;
  if (b === 0x0f) op = 0x100 | b8();
  const props = OPC[op]!;
  if (o32) pfx |= PF_O32;
  if (a32) pfx |= PF_A32;
  let modrm = 0;
  let base = EA_NONE;
  let index = EA_NONE;
  let scale = 0;
  let disp = 0;
  let defSeg = 3;
  if ((props & P_MODRM) !== 0) {
    modrm = b8();
    const mod = modrm >> 6;
    // MOV to/from CR/DR ignore mod: always the register form.
    if (mod !== 3 && (op < 0x120 || op > 0x123)) {
      pfx |= PF_MEM;
      const rm = modrm & 7;
      if (!a32) {
        if (mod === 0 && rm === 6) {
          disp = b16();
        } else {
          base = A16_BASE[rm]!;
          index = A16_INDEX[rm]!;
          if (rm === 2 || rm === 3 || rm === 6) defSeg = 2;
          if (mod === 1) disp = (b8() << 24) >> 24;
          else if (mod === 2) disp = b16();
        }
      } else {
        if (rm === 4) {
          const sib = b8();
          scale = sib >> 6;
          index = (sib >> 3) & 7;
          if (index === 4) index = EA_NONE;
          base = sib & 7;
          if (base === 5 && mod === 0) {
            base = EA_NONE;
            disp = b32();
          }
        } else if (rm === 5 && mod === 0) {
          disp = b32();
        } else {
          base = rm;
        }
        if (base === 4 || base === 5) defSeg = 2;
        if (mod === 1) disp = (b8() << 24) >> 24;
        else if (mod === 2) disp = b32();
      }
    }
  }
  let imm = 0;
  let imm2 = 0;
  switch (props >> 4) {
    case IMM_B:
      imm = (b8() << 24) >> 24;
      break;
    case IMM_Z:
      imm = o32 ? b32() : (b16() << 16) >> 16;
      break;
    case IMM_W:
      imm = b16();
      break;
    case IMM_MOFFS:
      disp = a32 ? b32() : b16();
      pfx |= PF_MEM;
      break;
    case IMM_PTR:
      imm = o32 ? b32() : b16();
      imm2 = b16();
      break;
    case IMM_WB:
      imm = b16();
      imm2 = b8();
      break;
    case IMM_GRP3:
      if ((modrm & 0x38) < 0x10) imm = op === 0xf6 ? (b8() << 24) >> 24 : o32 ? b32() : (b16() << 16) >> 16;
      break;
    default:
      break;
  }
  const len = pos - start;
  if (len > MAX_LEN) return DEC_TOOLONG;
  if (short) return DEC_MORE;
  if ((props & P_INVALID) !== 0 || ((props & P_MODRM) !== 0 && modrmInvalid(op, modrm))) op = OP_UD;
  else if ((pfx & PF_LOCK) !== 0 && ((pfx & PF_MEM) === 0 || !lockable(op, modrm))) op = OP_UD;
  if (seg >= 0) {
    pfx |= PF_SEGOVR;
    defSeg = seg;
  }
  const d = blk.d;
  const w = i * ENTRY_WORDS;
  d[w] = op | (len << 10) | (modrm << 16);
  d[w + 1] = pfx | (defSeg << PF_SEG_SHIFT) | ((base | (index << 4) | (scale << 8)) << 16);
  d[w + 2] = disp;
  d[w + 3] = imm;
  d[w + 4] = imm2;
  return len;
}

const scratch = new DecodeBlock(1);

/**
 * The length of the instruction at `bytes[offset]` in 16-bit (`is32` false) or 32-bit code;
 * -1 when the bytes run out, -2 when longer than 15 bytes. Invalid opcodes still get a length
 * (see decodeInfo().valid).
 */
export function decodeLength(bytes: Uint8Array, offset: number, is32: boolean): number {
  return decode(bytes, offset, bytes.length - offset, is32, scratch, 0);
}

/** Everything the decoder found, as a plain object (tests and disassembly; allocates). */
export interface DecodedInfo {
  length: number;
  valid: boolean;
  op: number;
  modrm: number;
  /** Segment of the memory operand / string source: the override or the default. */
  seg: number;
  o32: boolean;
  a32: boolean;
  /** Memory operand, or null. */
  mem: { seg: number; base: number; index: number; scale: number; disp: number } | null;
  imm: number;
  imm2: number;
  rep: boolean;
  repne: boolean;
  lock: boolean;
}

/** Decodes one instruction into a DecodedInfo (null when the bytes run out or it is too long). */
export function decodeInfo(bytes: Uint8Array, offset: number, is32: boolean): DecodedInfo | null {
  const n = decode(bytes, offset, bytes.length - offset, is32, scratch, 0);
  if (n < 0) return null;
  const d = scratch.d;
  const pfx = d[1]! & 0xffff;
  const ea = d[1]! >>> 16;
  const op = d[0]! & 0x3ff;
  return {
    length: n,
    valid: op !== OP_UD,
    op,
    modrm: (d[0]! >>> 16) & 0xff,
    seg: (pfx >> PF_SEG_SHIFT) & 7,
    o32: (pfx & PF_O32) !== 0,
    a32: (pfx & PF_A32) !== 0,
    mem:
      (pfx & PF_MEM) !== 0
        ? {
            seg: (pfx >> PF_SEG_SHIFT) & 7,
            base: ea & 15,
            index: (ea >> 4) & 15,
            scale: (ea >> 8) & 3,
            disp: d[2]!,
          }
        : null,
    imm: d[3]!,
    imm2: d[4]!,
    rep: (pfx & PF_REP) !== 0,
    repne: (pfx & PF_REPNE) !== 0,
    lock: (pfx & PF_LOCK) !== 0,
  };
}
