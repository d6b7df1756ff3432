/**
 * The encodings guest/kit.ts adds to the assembler, checked against an independent decoder
 * (iced-x86, 32-bit mode): each must decode as the instruction meant, with the length emitted.
 * And the lifecycle guests' ELF files: Multiboot header found, one PT_LOAD at the origin.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { Decoder, DecoderOptions, Formatter, FormatterSyntax, Mnemonic } from "iced-x86";
import { assemble, R, type Asm } from "../../guest/asm.ts";
import { inDxAx, inDxEax, int3, movAl, outDxAx, outDxEax, rol } from "../../guest/kit.ts";
import { buildCrunchGuest, CRUNCH_ORIGIN } from "../../guest/crunch.ts";
import { buildHostileGuest, HOSTILE_ORIGIN } from "../../guest/hostile.ts";
import { buildTripleFaultGuest, TRIPLEFAULT_ORIGIN } from "../../guest/triplefault.ts";
import { findMultibootHeader } from "../../src/loader/multiboot.ts";
import { parseElf32 } from "../../src/loader/elf.ts";

function decodeOne(emit: (a: Asm) => void): { text: string; len: number; emitted: number } {
  const { bytes } = assemble(0x100000, (a) => {
    emit(a);
    a.db(0x90);
  });
  const d = new Decoder(32, bytes, DecoderOptions.None);
  d.ip = 0x100000n;
  const ins = d.decode();
  const f = new Formatter(FormatterSyntax.Nasm);
  const text = f.format(ins);
  const len = ins.length;
  const invalid = ins.mnemonic === Mnemonic.INVALID;
  ins.free();
  f.free();
  d.free();
  assert.ok(!invalid, `invalid encoding ${Buffer.from(bytes).toString("hex")}`);
  return { text, len, emitted: bytes.length - 1 };
}

const cases: [string, (a: Asm) => void][] = [
  ["out dx,ax", outDxAx],
  ["out dx,eax", outDxEax],
  ["in ax,dx", inDxAx],
  ["in eax,dx", inDxEax],
  ["int3", int3],
  ["mov al,7Fh", (a) => movAl(a, 0x7f)],
  ["rol edi,5", (a) => rol(a, R.EDI, 5)],
  ["rol eax,1", (a) => rol(a, R.EAX, 1)],
  ["rol edx,4", (a) => rol(a, R.EDX, 4)],
];

test("kit encodings decode as meant (iced-x86)", () => {
  for (const [want, emit] of cases) {
    const { text, len, emitted } = decodeOne(emit);
    assert.equal(text, want);
    assert.equal(len, emitted, `${want}: length`);
  }
});

test("the lifecycle guests are Multiboot ELF kernels loaded at their origin", () => {
  const guests: [string, Uint8Array, number][] = [
    ["crunch", buildCrunchGuest({ chunks: 2, perChunk: 10 }), CRUNCH_ORIGIN],
    ["triplefault int3", buildTripleFaultGuest("int3"), TRIPLEFAULT_ORIGIN],
    ["triplefault gp", buildTripleFaultGuest("gp"), TRIPLEFAULT_ORIGIN],
    ["hostile", buildHostileGuest(1, 1), HOSTILE_ORIGIN],
  ];
  for (const [name, elf, origin] of guests) {
    assert.ok(findMultibootHeader(elf), `${name}: Multiboot header`);
    const e = parseElf32(elf);
    assert.equal(e.segments.length, 1, name);
    assert.equal(e.segments[0]!.paddr, origin, name);
  }
});
