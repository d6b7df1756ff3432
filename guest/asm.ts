/**
 * A small two-pass assembler for 32-bit x86 code, enough for boxvm's own guest programs. It emits
 * bytes directly from the Intel SDM's encodings (opcode, ModRM, immediates); every instruction has
 * one fixed-size encoding (jumps are always rel32, memory operands always [base + disp32] or
 * [disp32]), so the first pass can lay out labels and the second pass fills in their addresses.
 *
 * ModRM: mod (bits 7..6) | reg (5..3) | rm (2..0). mod 11 = register operand; mod 10 rm=r =
 * [r + disp32] (r != ESP); mod 00 rm=101 = [disp32].
 */

/** 32-bit registers by encoding. */
export const R = { EAX: 0, ECX: 1, EDX: 2, EBX: 3, ESP: 4, EBP: 5, ESI: 6, EDI: 7 } as const;
export type R = (typeof R)[keyof typeof R];

/** 8-bit registers by encoding. */
export const R8 = { AL: 0, CL: 1, DL: 2, BL: 3, AH: 4, CH: 5, DH: 6, BH: 7 } as const;
export type R8 = (typeof R8)[keyof typeof R8];

/** Segment registers by encoding. */
export const SR = { ES: 0, CS: 1, SS: 2, DS: 3, FS: 4, GS: 5 } as const;
export type SR = (typeof SR)[keyof typeof SR];

/** Condition codes (the low nibble of Jcc). */
export const CC = { O: 0, NO: 1, B: 2, AE: 3, E: 4, NE: 5, BE: 6, A: 7, S: 8, NS: 9, L: 12, GE: 13, LE: 14, G: 15 } as const;
export type CC = (typeof CC)[keyof typeof CC];

/** ALU operations of the 81/83 group and their reg-reg opcodes. */
const ALU = { add: 0, or: 1, and: 4, sub: 5, xor: 6, cmp: 7 } as const;
export type AluOp = keyof typeof ALU;

/** A memory operand: [base + disp] or [disp] (base null). `disp` may be a label name. */
export interface Mem {
  base: R | null;
  disp: number | string;
}

/** [base + disp] */
export function mem(base: R | null, disp: number | string = 0): Mem {
  return { base, disp };
}

/** One pass of assembly. */
export class Asm {
  readonly origin: number;
  readonly #known: ReadonlyMap<string, number> | null;
  readonly labels = new Map<string, number>();
  readonly #out: number[] = [];
  #anon = 0;

  /** @param known the labels of the first pass (null in the first pass). */
  constructor(origin: number, known: ReadonlyMap<string, number> | null) {
    this.origin = origin;
    this.#known = known;
  }

  /** Address of the next byte. */
  get here(): number {
    return this.origin + this.#out.length;
  }

  /** The bytes emitted. */
  bytes(): Uint8Array {
    return Uint8Array.from(this.#out);
  }

  /** Defines a label at the current address. */
  label(name: string): void {
    if (this.labels.has(name)) throw new Error(`Label defined twice: ${name}`);
    this.labels.set(name, this.here);
  }

  /** A fresh label name (for local jumps). */
  fresh(prefix = "L"): string {
    return `.${prefix}${String(this.#anon++)}`;
  }

  /** A label's address (0 in the first pass; Error in the second when undefined). */
  addr(name: string): number {
    if (!this.#known) return 0;
    const v = this.#known.get(name);
    if (v === undefined) throw new Error(`Undefined label: ${name}`);
    return v;
  }

  #val(v: number | string): number {
    return typeof v === "string" ? this.addr(v) : v;
  }

  // ---- data
  db(...b: number[]): void {
    for (const x of b) this.#out.push(x & 0xff);
  }
  dw(v: number | string): void {
    const n = this.#val(v);
    this.db(n, n >>> 8);
  }
  dd(v: number | string): void {
    const n = this.#val(v);
    this.db(n, n >>> 8, n >>> 16, n >>> 24);
  }
  /** A NUL-terminated ASCII string. */
  asciz(s: string): void {
    for (let i = 0; i < s.length; i++) this.db(s.charCodeAt(i));
    this.db(0);
  }
  /** Pads with `fill` to a multiple of `n`. */
  align(n: number, fill = 0): void {
    while (this.here % n !== 0) this.db(fill);
  }
  /** `count` bytes of `fill`. */
  space(count: number, fill = 0): void {
    for (let i = 0; i < count; i++) this.db(fill);
  }

  // ---- encoding helpers
  #modrmReg(reg: number, rm: number): void {
    this.db(0xc0 | (reg << 3) | rm);
  }
  #modrmMem(reg: number, m: Mem): void {
    if (m.base === null) {
      this.db((reg << 3) | 5);
    } else {
      if (m.base === R.ESP) throw new Error("[esp + disp] is not supported by this assembler");
      this.db(0x80 | (reg << 3) | m.base);
    }
    this.dd(m.disp);
  }
  #rel32(target: string, insnEnd: number): void {
    const t = this.#known ? this.addr(target) : insnEnd;
    this.dd((t - insnEnd) | 0);
  }

  // ---- moves
  /** mov r32, imm32 (or a label's address) */
  movImm(r: R, imm: number | string): void {
    this.db(0xb8 + r);
    this.dd(imm);
  }
  /** mov dst, src */
  mov(dst: R, src: R): void {
    this.db(0x89);
    this.#modrmReg(src, dst);
  }
  /** mov r32, [m] */
  load(r: R, m: Mem): void {
    this.db(0x8b);
    this.#modrmMem(r, m);
  }
  /** mov [m], r32 */
  store(m: Mem, r: R): void {
    this.db(0x89);
    this.#modrmMem(r, m);
  }
  /** movzx r32, byte [m] */
  loadByte(r: R, m: Mem): void {
    this.db(0x0f, 0xb6);
    this.#modrmMem(r, m);
  }
  /** mov byte [m], r8 */
  storeByte(m: Mem, r: R8): void {
    this.db(0x88);
    this.#modrmMem(r, m);
  }
  /** mov dword [m], imm32 */
  storeImm(m: Mem, imm: number | string): void {
    this.db(0xc7);
    this.#modrmMem(0, m);
    this.dd(imm);
  }
  /** mov sreg, r16 */
  movSreg(s: SR, r: R): void {
    this.db(0x8e);
    this.#modrmReg(s, r);
  }

  // ---- arithmetic
  /** op r32, imm32 */
  aluImm(op: AluOp, r: R, imm: number): void {
    this.db(0x81);
    this.#modrmReg(ALU[op], r);
    this.dd(imm);
  }
  /** op dst, src (r32, r32) */
  alu(op: AluOp, dst: R, src: R): void {
    this.db(ALU[op] * 8 + 1);
    this.#modrmReg(src, dst);
  }
  /** cmp r32, [m] */
  cmpMem(r: R, m: Mem): void {
    this.db(0x3b);
    this.#modrmMem(r, m);
  }
  /** cmp byte [m], imm8 */
  cmpByteImm(m: Mem, imm: number): void {
    this.db(0x80);
    this.#modrmMem(7, m);
    this.db(imm);
  }
  /** cmp al, imm8 */
  cmpAl(imm: number): void {
    this.db(0x3c, imm);
  }
  /** test al, imm8 */
  testAl(imm: number): void {
    this.db(0xa8, imm);
  }
  inc(r: R): void {
    this.db(0x40 + r);
  }
  dec(r: R): void {
    this.db(0x48 + r);
  }
  /** shr r32, imm8 */
  shr(r: R, n: number): void {
    this.db(0xc1);
    this.#modrmReg(5, r);
    this.db(n);
  }
  /** shl r32, imm8 */
  shl(r: R, n: number): void {
    this.db(0xc1);
    this.#modrmReg(4, r);
    this.db(n);
  }
  /** div r32 (EDX:EAX / r → EAX, remainder EDX) */
  div(r: R): void {
    this.db(0xf7);
    this.#modrmReg(6, r);
  }
  /** imul dst, src */
  imul(dst: R, src: R): void {
    this.db(0x0f, 0xaf);
    this.#modrmReg(dst, src);
  }

  // ---- control flow
  jmp(target: string): void {
    this.db(0xe9);
    this.#rel32(target, this.here + 4);
  }
  jcc(cc: CC, target: string): void {
    this.db(0x0f, 0x80 + cc);
    this.#rel32(target, this.here + 4);
  }
  call(target: string): void {
    this.db(0xe8);
    this.#rel32(target, this.here + 4);
  }
  ret(): void {
    this.db(0xc3);
  }
  /** jmp far sel:label */
  jmpFar(sel: number, target: string): void {
    this.db(0xea);
    this.dd(target);
    this.dw(sel);
  }
  iret(): void {
    this.db(0xcf);
  }

  // ---- stack
  push(r: R): void {
    this.db(0x50 + r);
  }
  pop(r: R): void {
    this.db(0x58 + r);
  }
  /** push imm8 (sign-extended) */
  pushImm8(v: number): void {
    this.db(0x6a, v);
  }
  pushad(): void {
    this.db(0x60);
  }
  popad(): void {
    this.db(0x61);
  }

  // ---- I/O and system
  /** out dx, al */
  outDx(): void {
    this.db(0xee);
  }
  /** in al, dx */
  inDx(): void {
    this.db(0xec);
  }
  /** out imm8, al */
  outImm(port: number): void {
    this.db(0xe6, port);
  }
  /** in al, imm8 */
  inImm(port: number): void {
    this.db(0xe4, port);
  }
  /** lodsb */
  lodsb(): void {
    this.db(0xac);
  }
  cli(): void {
    this.db(0xfa);
  }
  sti(): void {
    this.db(0xfb);
  }
  hlt(): void {
    this.db(0xf4);
  }
  cpuid(): void {
    this.db(0x0f, 0xa2);
  }
  /** lgdt [label] */
  lgdt(m: string): void {
    this.db(0x0f, 0x01);
    this.#modrmMem(2, mem(null, m));
  }
  /** lidt [label] */
  lidt(m: string): void {
    this.db(0x0f, 0x01);
    this.#modrmMem(3, mem(null, m));
  }
}

/** Assembles `program` at `origin` in two passes; returns the bytes and the labels. */
export function assemble(origin: number, program: (a: Asm) => void): { bytes: Uint8Array; labels: Map<string, number> } {
  const p1 = new Asm(origin, null);
  program(p1);
  const p2 = new Asm(origin, p1.labels);
  program(p2);
  const b1 = p1.bytes();
  const b2 = p2.bytes();
  if (b1.length !== b2.length) throw new Error("Assembler passes differ in size");
  for (const [k, v] of p1.labels) if (p2.labels.get(k) !== v) throw new Error(`Label moved between passes: ${k}`);
  return { bytes: b2, labels: p2.labels };
}
