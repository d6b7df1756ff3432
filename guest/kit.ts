/**
 * Shared pieces of the lifecycle test guests (crunch.ts, triplefault.ts, hostile.ts): encodings
 * asm.ts does not have (16/32-bit IN/OUT, ROL, INT3, MOV AL,imm8), polled COM1
 * output routines, CMOS access, a Multiboot v1 header and an ELF32 wrapper with a chosen load
 * address. Encodings are from the Intel SDM (Vol. 2): 66 is the operand-size prefix in 32-bit code.
 */
import { CC, mem, R, type Asm } from "./asm.ts";

/** COM1's base port. */
export const COM1 = 0x3f8;
/** The exit device's port (isa-debug-exit). */
export const EXIT_PORT = 0xf4;

// ---- encodings
/** out dx, ax (66 EF) */
export function outDxAx(a: Asm): void {
  a.db(0x66, 0xef);
}
/** out dx, eax (EF) */
export function outDxEax(a: Asm): void {
  a.db(0xef);
}
/** in ax, dx (66 ED) */
export function inDxAx(a: Asm): void {
  a.db(0x66, 0xed);
}
/** in eax, dx (ED) */
export function inDxEax(a: Asm): void {
  a.db(0xed);
}
/** rol r32, imm8 (C1 /0 ib) */
export function rol(a: Asm, r: R, n: number): void {
  a.db(0xc1, 0xc0 | r, n);
}
/** int3 (CC) */
export function int3(a: Asm): void {
  a.db(0xcc);
}
/** mov al, imm8 (B0 ib) */
export function movAl(a: Asm, v: number): void {
  a.db(0xb0, v);
}

// ---- routines (call them by label; each preserves every register but the ones it documents)

/**
 * Emits:
 *   serial_init  programs COM1 for 8N1 at 115200, FIFOs on, interrupts off, loopback off
 *   putc         AL → COM1 (waits for THRE)
 *   puts         the NUL-terminated string at ESI → COM1 (ESI advances past it)
 *   puthex       EAX as 8 lowercase hex digits
 *   puthex2      AL as 2 lowercase hex digits
 */
export function emitSerialRoutines(a: Asm): void {
  const { EAX, ECX, EDX } = R;
  const outb = (port: number, v: number): void => {
    a.movImm(EDX, port);
    movAl(a, v);
    a.outDx();
  };
  a.label("serial_init");
  a.push(EAX);
  a.push(EDX);
  outb(COM1 + 1, 0x00); // IER: no interrupts
  outb(COM1 + 3, 0x80); // LCR: DLAB
  outb(COM1 + 0, 0x01); // DLL: divisor 1
  outb(COM1 + 1, 0x00); // DLM
  outb(COM1 + 3, 0x03); // LCR: 8N1
  outb(COM1 + 2, 0x07); // FCR: FIFOs on, cleared
  outb(COM1 + 4, 0x03); // MCR: DTR, RTS; no loopback
  a.pop(EDX);
  a.pop(EAX);
  a.ret();

  a.label("putc");
  a.push(EDX);
  a.push(EAX); // the character (IN clobbers AL)
  a.movImm(EDX, COM1 + 5);
  const wait = a.fresh("thre");
  a.label(wait);
  a.inDx(); // LSR
  a.testAl(0x20); // THRE
  a.jcc(CC.E, wait);
  a.pop(EAX);
  a.movImm(EDX, COM1);
  a.outDx();
  a.pop(EDX);
  a.ret();

  a.label("puts");
  a.push(EAX);
  const loop = a.fresh("puts");
  const done = a.fresh("puts_done");
  a.label(loop);
  a.lodsb();
  a.testAl(0xff);
  a.jcc(CC.E, done);
  a.call("putc");
  a.jmp(loop);
  a.label(done);
  a.pop(EAX);
  a.ret();

  // puthex: 8 digits, most significant first (rotate the next nibble into the low bits).
  a.label("puthex");
  a.push(EAX);
  a.push(ECX);
  a.push(EDX);
  a.mov(EDX, EAX);
  a.movImm(ECX, 8);
  const hx = a.fresh("hex");
  a.label(hx);
  rol(a, EDX, 4);
  a.mov(EAX, EDX);
  a.aluImm("and", EAX, 0x0f);
  a.loadByte(EAX, mem(EAX, "hex_digits"));
  a.call("putc");
  a.dec(ECX);
  a.jcc(CC.NE, hx);
  a.pop(EDX);
  a.pop(ECX);
  a.pop(EAX);
  a.ret();

  // puthex2: AL as 2 digits.
  a.label("puthex2");
  a.push(EAX);
  a.push(EDX);
  a.mov(EDX, EAX);
  a.shr(EAX, 4);
  a.aluImm("and", EAX, 0x0f);
  a.loadByte(EAX, mem(EAX, "hex_digits"));
  a.call("putc");
  a.mov(EAX, EDX);
  a.aluImm("and", EAX, 0x0f);
  a.loadByte(EAX, mem(EAX, "hex_digits"));
  a.call("putc");
  a.pop(EDX);
  a.pop(EAX);
  a.ret();

  a.label("hex_digits");
  a.asciz("0123456789abcdef");
}

/** Emits code for AL = CMOS[index] (NMI stays enabled: bit 7 of the index clear). Clobbers EDX. */
export function cmosRead(a: Asm, index: number): void {
  movAl(a, index & 0x7f);
  a.outImm(0x70);
  a.inImm(0x71);
}

/** Emits code for CMOS[index] = AL. Clobbers EDX (keeps AL). */
export function cmosWrite(a: Asm, index: number): void {
  a.mov(R.EDX, R.EAX);
  movAl(a, index & 0x7f);
  a.outImm(0x70);
  a.mov(R.EAX, R.EDX);
  a.outImm(0x71);
}

/** A Multiboot v1 header without flags (for an ELF kernel: the loader uses the program header). */
export function multibootHeader(a: Asm): void {
  a.dd(0x1badb002);
  a.dd(0);
  a.dd((-0x1badb002) >>> 0);
}

/** Wraps a flat image loaded at `origin` in an ELF32 executable (one PT_LOAD, file offset 0x100). */
export function elfAt(origin: number, image: Uint8Array, memsz: number, entry: number): Uint8Array {
  const off = 0x100;
  const f = new Uint8Array(off + image.length);
  const v = new DataView(f.buffer);
  f.set([0x7f, 0x45, 0x4c, 0x46, 1, 1, 1]); // \x7fELF, ELFCLASS32, little-endian, version 1
  v.setUint16(0x10, 2, true); // e_type ET_EXEC
  v.setUint16(0x12, 3, true); // e_machine EM_386
  v.setUint32(0x14, 1, true); // e_version
  v.setUint32(0x18, entry, true); // e_entry
  v.setUint32(0x1c, 0x34, true); // e_phoff
  v.setUint16(0x28, 0x34, true); // e_ehsize
  v.setUint16(0x2a, 0x20, true); // e_phentsize
  v.setUint16(0x2c, 1, true); // e_phnum
  v.setUint16(0x2e, 0x28, true); // e_shentsize
  const ph = 0x34;
  v.setUint32(ph, 1, true); // p_type PT_LOAD
  v.setUint32(ph + 4, off, true); // p_offset
  v.setUint32(ph + 8, origin, true); // p_vaddr
  v.setUint32(ph + 12, origin, true); // p_paddr
  v.setUint32(ph + 16, image.length, true); // p_filesz
  v.setUint32(ph + 20, memsz, true); // p_memsz
  v.setUint32(ph + 24, 7, true); // p_flags RWX
  v.setUint32(ph + 28, 0x1000, true); // p_align
  f.set(image, off);
  return f;
}
