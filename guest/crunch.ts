/**
 * The crunch guest: a long deterministic computation for save/restore tests. A Multiboot ELF
 * kernel that runs an LCG-driven hash over a 4 KiB table in RAM (so both registers and memory
 * carry the state), in `chunks` chunks of `perChunk` iterations, printing a progress marker
 * "P<nn>\r\n" on COM1 after each chunk, then "RESULT <h> <t>\r\n" (the hash and a checksum of
 * the table, 8 hex digits each), and leaves through the exit device (port 0xF4) with
 * EXIT_CODE, so the machine powers off with status (EXIT_CODE << 1) | 1.
 *
 * `crunchReference` computes the same in JavaScript.
 */
import { assemble, CC, mem, R, type Asm } from "./asm.ts";
import { elfAt, emitSerialRoutines, EXIT_PORT, multibootHeader, rol } from "./kit.ts";

/** Load address. */
export const CRUNCH_ORIGIN = 0x100000;
/** What the guest writes to the exit port at the end. */
export const CRUNCH_EXIT_CODE = 0x2a;
/** Table entries (dwords); indexed by the top 10 bits of the LCG state. */
const TABLE_DWORDS = 1024;
const LCG_A = 1664525;
const LCG_C = 1013904223;
const SEED_X = 0x12345678;
const SEED_H = 0x9e3779b9;

/** The computation's parameters. */
export interface CrunchParams {
  chunks: number;
  perChunk: number;
}

/** The serial output of a full run, computed in JavaScript. */
export function crunchReference(p: CrunchParams): { output: string; h: number; t: number } {
  let x = SEED_X;
  let h = SEED_H;
  const table = new Uint32Array(TABLE_DWORDS);
  let out = "CRUNCH START\r\n";
  for (let c = 0; c < p.chunks; c++) {
    for (let i = 0; i < p.perChunk; i++) {
      x = (Math.imul(x, LCG_A) + LCG_C) >>> 0;
      h = (((h << 5) | (h >>> 27)) ^ x) >>> 0;
      const idx = x >>> 22;
      const t = (table[idx]! + h) >>> 0;
      table[idx] = t;
      h = (h ^ t) >>> 0;
    }
    out += `P${(c & 0xff).toString(16).padStart(2, "0")}\r\n`;
  }
  let s = 0;
  for (let i = 0; i < TABLE_DWORDS; i++) s = (((s << 1) | (s >>> 31)) ^ table[i]!) >>> 0;
  const hex = (v: number): string => v.toString(16).padStart(8, "0");
  out += `RESULT ${hex(h)} ${hex(s)}\r\n`;
  return { output: out, h, t: s };
}

/** The ELF file. */
export function buildCrunchGuest(p: CrunchParams): Uint8Array {
  if (!(p.chunks >= 1 && p.chunks <= 255 && p.perChunk >= 1 && p.perChunk < 2 ** 31)) throw new RangeError("bad crunch parameters");
  const program = (a: Asm): void => {
    const { EAX, ECX, EDX, EBX, EBP, ESI, EDI } = R;
    multibootHeader(a);
    a.label("start");
    a.cli();
    a.movImm(R.ESP, "stack_top");
    a.call("serial_init");
    a.movImm(ESI, "s_start");
    a.call("puts");
    a.movImm(EBX, SEED_X); // x
    a.movImm(EDI, SEED_H); // h
    a.movImm(EBP, 0); // chunk number
    a.label("chunk");
    a.movImm(ECX, p.perChunk);
    a.label("iter");
    // x = x * A + C
    a.movImm(EAX, LCG_A);
    a.imul(EBX, EAX);
    a.aluImm("add", EBX, LCG_C);
    // h = rol(h, 5) ^ x
    rol(a, EDI, 5);
    a.alu("xor", EDI, EBX);
    // t = table[x >> 22] + h; table[x >> 22] = t; h ^= t
    a.mov(EDX, EBX);
    a.shr(EDX, 22);
    a.shl(EDX, 2);
    a.load(EAX, mem(EDX, "table"));
    a.alu("add", EAX, EDI);
    a.store(mem(EDX, "table"), EAX);
    a.alu("xor", EDI, EAX);
    a.dec(ECX);
    a.jcc(CC.NE, "iter");
    // progress marker
    a.movImm(EAX, 0x50); // 'P'
    a.call("putc");
    a.mov(EAX, EBP);
    a.call("puthex2");
    a.movImm(ESI, "s_crlf");
    a.call("puts");
    a.inc(EBP);
    a.aluImm("cmp", EBP, p.chunks);
    a.jcc(CC.NE, "chunk");
    // table checksum: s = rol(s, 1) ^ table[i]
    a.movImm(EAX, 0);
    a.movImm(EDX, 0);
    a.label("sum");
    rol(a, EAX, 1);
    a.load(ECX, mem(EDX, "table"));
    a.alu("xor", EAX, ECX);
    a.aluImm("add", EDX, 4);
    a.aluImm("cmp", EDX, TABLE_DWORDS * 4);
    a.jcc(CC.NE, "sum");
    a.store(mem(null, "checksum"), EAX);
    a.movImm(ESI, "s_result");
    a.call("puts");
    a.mov(EAX, EDI);
    a.call("puthex");
    a.movImm(EAX, 0x20);
    a.call("putc");
    a.load(EAX, mem(null, "checksum"));
    a.call("puthex");
    a.movImm(ESI, "s_crlf");
    a.call("puts");
    a.movImm(EAX, CRUNCH_EXIT_CODE);
    a.outImm(EXIT_PORT);
    a.label("stop");
    a.cli();
    a.hlt();
    a.jmp("stop");

    emitSerialRoutines(a);
    a.label("s_start");
    a.asciz("CRUNCH START\r\n");
    a.label("s_result");
    a.asciz("RESULT ");
    a.label("s_crlf");
    a.asciz("\r\n");
    a.align(4);
    a.label("checksum");
    a.dd(0);
    a.label("table");
    a.space(TABLE_DWORDS * 4);
    a.space(4096);
    a.label("stack_top");
  };
  const { bytes, labels } = assemble(CRUNCH_ORIGIN, program);
  return elfAt(CRUNCH_ORIGIN, bytes, bytes.length, labels.get("start")!);
}
