/**
 * boxvm's own guest assembler (guest/asm.ts) checked against an independent decoder: every
 * instruction form it emits is decoded by iced-x86 (32-bit mode) and must read back as the
 * instruction that was meant, with the same length. Then the demo and hello guests: they assemble,
 * decode cleanly from their entry, and carry a valid Multiboot header.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { Decoder, DecoderOptions, Formatter, FormatterSyntax, Mnemonic } from "iced-x86";
import { assemble, CC, mem, R, R8, SR, type Asm } from "../../guest/asm.ts";
import { buildDemoGuest, DEMO_ORIGIN } from "../../guest/demo.ts";
import { buildHelloGuest } from "../../guest/hello.ts";
import { buildTestBios } from "../../guest/testbios.ts";
import { findMultibootHeader } from "../../src/loader/multiboot.ts";
import { parseElf32 } from "../../src/loader/elf.ts";

const ORG = 0x100000;

/** Disassembles one instruction (NASM syntax, lower case) and returns [text, length]. */
function dis(bytes: Uint8Array, ip = ORG): [string, number] {
  const d = new Decoder(32, bytes, DecoderOptions.None);
  d.ip = BigInt(ip);
  const ins = d.decode();
  const f = new Formatter(FormatterSyntax.Nasm);
  const text = f.format(ins);
  const len = ins.length;
  const invalid = ins.mnemonic === Mnemonic.INVALID;
  ins.free();
  f.free();
  d.free();
  assert.ok(!invalid, `invalid encoding ${Buffer.from(bytes).toString("hex")}`);
  return [text, len];
}

/** Assembles one instruction (with a label "t" at 0x100040 for jumps); returns [text, decoded length, emitted length]. */
function one(emit: (a: Asm) => void): [string, number, number] {
  let emitted = 0;
  const { bytes } = assemble(ORG, (a) => {
    emit(a);
    emitted = a.here - ORG;
    while (a.here < 0x100040) a.db(0x90);
    a.label("t");
  });
  const [text, l] = dis(bytes);
  return [text, l, emitted];
}

const cases: [string, (a: Asm) => void][] = [
  ["mov eax,12345678h", (a) => a.movImm(R.EAX, 0x12345678)],
  ["mov edi,100040h", (a) => a.movImm(R.EDI, "t")],
  ["mov ebx,ecx", (a) => a.mov(R.EBX, R.ECX)],
  ["mov edx,[esi+10h]", (a) => a.load(R.EDX, mem(R.ESI, 0x10))],
  ["mov eax,[100040h]", (a) => a.load(R.EAX, mem(null, "t"))],
  ["mov [ebp-4],ecx", (a) => a.store(mem(R.EBP, -4), R.ECX)],
  ["movzx eax,byte [ecx+100040h]", (a) => a.loadByte(R.EAX, mem(R.ECX, "t"))],
  ["mov [edi],al", (a) => a.storeByte(mem(R.EDI, 0), R8.AL)],
  ["mov dword [100040h],5", (a) => a.storeImm(mem(null, "t"), 5)],
  ["mov ds,eax", (a) => a.movSreg(SR.DS, R.EAX)],
  ["add esi,7", (a) => a.aluImm("add", R.ESI, 7)],
  ["cmp eax,2BADB002h", (a) => a.aluImm("cmp", R.EAX, 0x2badb002)],
  ["and ecx,0FFh", (a) => a.aluImm("and", R.ECX, 0xff)],
  ["sub eax,30h", (a) => a.aluImm("sub", R.EAX, 0x30)],
  ["xor edx,edx", (a) => a.alu("xor", R.EDX, R.EDX)],
  ["cmp edi,ecx", (a) => a.alu("cmp", R.EDI, R.ECX)],
  ["cmp ecx,[100040h]", (a) => a.cmpMem(R.ECX, mem(null, "t"))],
  ["cmp byte [100040h],0", (a) => a.cmpByteImm(mem(null, "t"), 0)],
  ["cmp al,0Dh", (a) => a.cmpAl(0x0d)],
  ["test al,20h", (a) => a.testAl(0x20)],
  ["inc edi", (a) => a.inc(R.EDI)],
  ["dec ecx", (a) => a.dec(R.ECX)],
  ["shr eax,0Ah", (a) => a.shr(R.EAX, 10)],
  ["shl ebx,2", (a) => a.shl(R.EBX, 2)],
  ["div ecx", (a) => a.div(R.ECX)],
  ["imul eax,ebx", (a) => a.imul(R.EAX, R.EBX)],
  ["jmp 00100040h", (a) => a.jmp("t")],
  ["jne 00100040h", (a) => a.jcc(CC.NE, "t")],
  ["jb 00100040h", (a) => a.jcc(CC.B, "t")],
  ["call 00100040h", (a) => a.call("t")],
  ["ret", (a) => a.ret()],
  ["jmp 8:00100040h", (a) => a.jmpFar(8, "t")],
  ["iret", (a) => a.iret()],
  ["push esi", (a) => a.push(R.ESI)],
  ["pop edi", (a) => a.pop(R.EDI)],
  ["push 1Fh", (a) => a.pushImm8(31)],
  ["pusha", (a) => a.pushad()],
  ["popa", (a) => a.popad()],
  ["out dx,al", (a) => a.outDx()],
  ["in al,dx", (a) => a.inDx()],
  ["out 0F4h,al", (a) => a.outImm(0xf4)],
  ["in al,60h", (a) => a.inImm(0x60)],
  ["lodsb", (a) => a.lodsb()],
  ["cli", (a) => a.cli()],
  ["sti", (a) => a.sti()],
  ["hlt", (a) => a.hlt()],
  ["cpuid", (a) => a.cpuid()],
  ["lgdt [100040h]", (a) => a.lgdt("t")],
  ["lidt [100040h]", (a) => a.lidt("t")],
];

test("every instruction form decodes (iced-x86) as the instruction meant", () => {
  for (const [expect, emit] of cases) {
    const [text, len, emitted] = one(emit);
    // iced prints some forms with size/segment hints; compare without spaces and "dword "/"near "
    const norm = (s: string): string => s.toLowerCase().replace(/\s+/g, "").replace(/near|dword(?=\[)|fword/g, "");
    assert.equal(norm(text), norm(expect), `${expect}: got ${text}`);
    assert.equal(len, emitted, `${expect}: decoded length ${String(len)}, emitted ${String(emitted)}`);
  }
});

test("labels: forward references resolve, and both passes agree", () => {
  const { bytes, labels } = assemble(ORG, (a) => {
    a.jmp("end");
    a.label("mid");
    a.dd("end");
    a.label("end");
    a.ret();
  });
  assert.equal(labels.get("end"), ORG + 9);
  assert.deepEqual([...bytes.subarray(0, 5)], [0xe9, 4, 0, 0, 0]);
  assert.deepEqual([...bytes.subarray(5, 9)], [0x09, 0x00, 0x10, 0x00]);
  assert.throws(() => assemble(ORG, (a) => a.jmp("nowhere")), /Undefined label: nowhere/);
});

/** Decodes straight-line from the entry until `stopAfter` instructions or an invalid one. */
function decodesFromEntry(elf: Uint8Array, count: number): string[] {
  const e = parseElf32(elf);
  const seg = e.segments[0]!;
  const image = elf.subarray(seg.offset, seg.offset + seg.filesz);
  const d = new Decoder(32, image.subarray(e.entry - seg.paddr), DecoderOptions.None);
  d.ip = BigInt(e.entry);
  const f = new Formatter(FormatterSyntax.Nasm);
  const out: string[] = [];
  for (let i = 0; i < count && d.canDecode; i++) {
    const ins = d.decode();
    assert.notEqual(ins.mnemonic, Mnemonic.INVALID, `invalid instruction after: ${out.join("; ")}`);
    out.push(f.format(ins));
    ins.free();
  }
  f.free();
  d.free();
  return out;
}

test("the demo guest: an ELF32 Multiboot kernel at 1 MiB whose code decodes from its entry", () => {
  const elf = buildDemoGuest();
  const h = findMultibootHeader(elf);
  assert.ok(h, "multiboot header in the first 8 KiB");
  assert.equal(h.flags & 0x10000, 0, "ELF: no address fields");
  const e = parseElf32(elf);
  assert.equal(e.segments[0]!.paddr, DEMO_ORIGIN);
  assert.ok(e.segments[0]!.memsz > e.segments[0]!.filesz, "has a .bss");
  const code = decodesFromEntry(elf, 12);
  assert.equal(code[0], "cli");
  assert.match(code[3] ?? "", /^lgdt/);
  assert.match(code[4] ?? "", /^jmp 8:/);
});

test("the hello guest: entry code decodes and writes the exit code to port 0xF4", () => {
  const elf = buildHelloGuest("hi", 0x21);
  assert.ok(findMultibootHeader(elf));
  const code = decodesFromEntry(elf, 40);
  const i = code.findIndex((s) => s.startsWith("out 0F4h"));
  assert.ok(i > 0, code.join("\n"));
  assert.equal(code[i - 1], "mov eax,21h");
});

test("the test BIOS ROM: reset vector jumps to F000:F000, whose 16-bit code loops on cs lodsb", () => {
  const rom = buildTestBios("x", 1);
  assert.equal(rom.length, 0x10000);
  assert.deepEqual([...rom.subarray(0xfff0, 0xfff5)], [0xea, 0x00, 0xf0, 0x00, 0xf0]);
  const d = new Decoder(16, rom.subarray(0xf000), DecoderOptions.None);
  d.ip = 0xf000n;
  const f = new Formatter(FormatterSyntax.Nasm);
  const listing: [number, string][] = [];
  for (let i = 0; i < 14; i++) {
    const ins = d.decode();
    listing.push([Number(ins.ip), f.format(ins)]);
    ins.free();
  }
  f.free();
  d.free();
  const lods = listing.find(([, t]) => t.startsWith("lodsb") || t.includes("lods"))!;
  assert.ok(lods, listing.map((l) => l[1]).join("\n"));
  const back = listing.find(([, t]) => /^jmp short/.test(t))!;
  const target = parseInt(/jmp short ([0-9A-F]+)h/.exec(back[1])?.[1] ?? "", 16);
  assert.equal(target, lods[0], "the loop jumps back to the cs lodsb (prefix included)");
  assert.ok(listing.some(([, t]) => t === "out 0F4h,al"));
});
