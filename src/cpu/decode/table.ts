/**
 * Opcode properties for the decoder: ModRM presence, immediate kind, validity on an i686
 * (Pentium Pro/II: integer set + CMOV, CMPXCHG8B, RDTSC, RDMSR/WRMSR, RDPMC, SYSENTER/SYSEXIT, multi-byte NOP).
 *
 * Index: the opcode byte for the one-byte map, 0x100 | byte for the 0F map.
 * Entry layout (Uint8):
 *   bit 0     ModRM follows
 *   bit 1     invalid (#UD) on an i686
 *   bit 2     prefix byte (one-byte map only)
 *   bits 4..7 immediate kind (IMM_*)
 */

/** ModRM follows. */
export const P_MODRM = 1;
/** Invalid on an i686: #UD. */
export const P_INVALID = 2;
/** A prefix. */
export const P_PREFIX = 4;

/** Immediate kinds (bits 4..7). */
export const IMM_NONE = 0;
/** imm8 */
export const IMM_B = 1;
/** imm16/32 by operand size ("iz") */
export const IMM_Z = 2;
/** imm16 */
export const IMM_W = 3;
/** moffs: 16/32 by address size */
export const IMM_MOFFS = 4;
/** far pointer: iz offset then 16-bit selector */
export const IMM_PTR = 5;
/** ENTER: imm16 then imm8 */
export const IMM_WB = 6;
/** F6/F7 group 3: TEST (reg 0/1) has ib/iz */
export const IMM_GRP3 = 7;

/** The property table (512 entries). */
export const OPC = new Uint8Array(512);

function set(ops: readonly number[], v: number): void {
  for (const o of ops) OPC[o] = v;
}
function range(a: number, b: number): number[] {
  const r: number[] = [];
  for (let i = a; i <= b; i++) r.push(i);
  return r;
}

// ---- one-byte map ----
// ALU blocks 00..3F: x0..x3 ModRM, x4 ib, x5 iz.
for (let blk = 0; blk < 8; blk++) {
  const b = blk << 3;
  set([b, b + 1, b + 2, b + 3], P_MODRM);
  OPC[b + 4] = IMM_B << 4;
  OPC[b + 5] = IMM_Z << 4;
}
set([0x26, 0x2e, 0x36, 0x3e, 0x64, 0x65, 0x66, 0x67, 0xf0, 0xf2, 0xf3], P_PREFIX);
set([0x62, 0x63, 0x69, 0x6b], P_MODRM);
OPC[0x68] = IMM_Z << 4;
OPC[0x69] = P_MODRM | (IMM_Z << 4);
OPC[0x6a] = IMM_B << 4;
OPC[0x6b] = P_MODRM | (IMM_B << 4);
set(range(0x70, 0x7f), IMM_B << 4);
OPC[0x80] = P_MODRM | (IMM_B << 4);
OPC[0x81] = P_MODRM | (IMM_Z << 4);
OPC[0x82] = P_MODRM | (IMM_B << 4);
OPC[0x83] = P_MODRM | (IMM_B << 4);
set(range(0x84, 0x8f), P_MODRM);
OPC[0x9a] = IMM_PTR << 4;
set([0xa0, 0xa1, 0xa2, 0xa3], IMM_MOFFS << 4);
OPC[0xa8] = IMM_B << 4;
OPC[0xa9] = IMM_Z << 4;
set(range(0xb0, 0xb7), IMM_B << 4);
set(range(0xb8, 0xbf), IMM_Z << 4);
OPC[0xc0] = P_MODRM | (IMM_B << 4);
OPC[0xc1] = P_MODRM | (IMM_B << 4);
OPC[0xc2] = IMM_W << 4;
set([0xc4, 0xc5], P_MODRM);
OPC[0xc6] = P_MODRM | (IMM_B << 4);
OPC[0xc7] = P_MODRM | (IMM_Z << 4);
OPC[0xc8] = IMM_WB << 4;
OPC[0xca] = IMM_W << 4;
OPC[0xcd] = IMM_B << 4;
set(range(0xd0, 0xd3), P_MODRM);
OPC[0xd4] = IMM_B << 4;
OPC[0xd5] = IMM_B << 4;
set(range(0xd8, 0xdf), P_MODRM);
set(range(0xe0, 0xe7), IMM_B << 4);
OPC[0xe8] = IMM_Z << 4;
OPC[0xe9] = IMM_Z << 4;
OPC[0xea] = IMM_PTR << 4;
OPC[0xeb] = IMM_B << 4;
OPC[0xf6] = P_MODRM | (IMM_GRP3 << 4);
OPC[0xf7] = P_MODRM | (IMM_GRP3 << 4);
set([0xfe, 0xff], P_MODRM);

// ---- 0F map: everything invalid unless listed ----
for (let i = 0x100; i < 0x200; i++) OPC[i] = P_INVALID;
const M = 0x100;
set([M | 0x00, M | 0x01, M | 0x02, M | 0x03], P_MODRM);
set([M | 0x06, M | 0x08, M | 0x09, M | 0x0b], 0);
// 0F 18..1F: hint space / multi-byte NOP Ev (P6 family and later).
set(range(M | 0x18, M | 0x1f), P_MODRM);
set(range(M | 0x20, M | 0x23), P_MODRM);
set(range(M | 0x30, M | 0x35), 0);
set(range(M | 0x40, M | 0x4f), P_MODRM);
set(range(M | 0x80, M | 0x8f), IMM_Z << 4);
set(range(M | 0x90, M | 0x9f), P_MODRM);
set([M | 0xa0, M | 0xa1, M | 0xa2, M | 0xa8, M | 0xa9, M | 0xaa], 0);
set([M | 0xa3, M | 0xa5, M | 0xab, M | 0xad, M | 0xaf], P_MODRM);
set([M | 0xa4, M | 0xac], P_MODRM | (IMM_B << 4));
set(range(M | 0xb0, M | 0xb7), P_MODRM);
OPC[M | 0xba] = P_MODRM | (IMM_B << 4);
set(range(M | 0xbb, M | 0xbf), P_MODRM);
set([M | 0xc0, M | 0xc1, M | 0xc7], P_MODRM);
set(range(M | 0xc8, M | 0xcf), 0);
// RSM (0F AA) exists only with SMM, which we do not have: #UD outside SMM.
OPC[M | 0xaa] = P_INVALID;
// UD1 (0F B9) takes a ModRM; still #UD.
OPC[M | 0xb9] = P_MODRM | P_INVALID;
