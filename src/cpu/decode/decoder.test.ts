/**
 * Decoder agreement: lengths and operands against iced-x86 on a seeded random corpus of 16- and
 * 32-bit encodings (restricted to what an i686 has), and against Go's x86asm decode32.txt.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Code, CpuidFeature, Decoder, DecoderOptions, Instruction, Mnemonic, OpKind, Register } from "iced-x86";
import { decodeInfo, decodeLength, type DecodedInfo } from "./decoder.ts";

/** mulberry32: a small seeded PRNG. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** CPUID features an i686 (Pentium II, no MMX/SSE) has. */
const P6_FEATURES = new Set<number>([
  CpuidFeature.INTEL8086,
  CpuidFeature.INTEL186,
  CpuidFeature.INTEL286,
  CpuidFeature.INTEL386,
  CpuidFeature.INTEL486,
  CpuidFeature.CPUID,
  CpuidFeature.CX8,
  CpuidFeature.CMOV,
  CpuidFeature.FPU,
  CpuidFeature.FPU287,
  CpuidFeature.FPU387,
  CpuidFeature.MSR,
  CpuidFeature.TSC,
  CpuidFeature.SEP,
  CpuidFeature.RDPMC,
  CpuidFeature.MULTIBYTENOP,
  CpuidFeature.PAUSE, // F3 90: REP NOP on a P6
]);

/**
 * iced codes left out of the comparison, each with the reason:
 * UD0/UD1/UD2 raise #UD, so their "length" is not architectural (UD0's ModRM differs by vendor);
 * RSM is #UD outside SMM (we have no SMM).
 */
const SKIP_MNEMONICS = new Set<number>([Mnemonic.Ud0, Mnemonic.Ud1, Mnemonic.Ud2, Mnemonic.Rsm]);

const REG16: Record<number, number> = { [Register.BX]: 3, [Register.BP]: 5, [Register.SI]: 6, [Register.DI]: 7 };
const REG32: Record<number, number> = {
  [Register.EAX]: 0,
  [Register.ECX]: 1,
  [Register.EDX]: 2,
  [Register.EBX]: 3,
  [Register.ESP]: 4,
  [Register.EBP]: 5,
  [Register.ESI]: 6,
  [Register.EDI]: 7,
};
const SEG: Record<number, number> = {
  [Register.ES]: 0,
  [Register.CS]: 1,
  [Register.SS]: 2,
  [Register.DS]: 3,
  [Register.FS]: 4,
  [Register.GS]: 5,
};

/**
 * iced's "reserved NOP" for 0F 0D (AMD's 3DNow! PREFETCH space): #UD on a Pentium II, so not
 * compared. (0F 19-0F 1E, also reserved NOPs, are P6 hint NOPs and are compared.)
 */
function isAmdPrefetchSpace(ins: Instruction): boolean {
  return ins.mnemonic === Mnemonic.Reservednop && (ins.opCode.opCode & 0xff) === 0x0d;
}

/** True when iced's instruction is one an i686 executes (valid, only P6 features). */
function isP6(ins: Instruction): boolean {
  if (ins.code === Code.INVALID) return false;
  if (SKIP_MNEMONICS.has(ins.mnemonic) || isAmdPrefetchSpace(ins)) return false;
  for (const f of ins.cpuidFeatures()) if (!P6_FEATURES.has(f)) return false;
  return true;
}

/** Compares operands; returns a description of the first difference or null. */
function compareOperands(ins: Instruction, d: DecodedInfo, ip: number, is32: boolean): string | null {
  for (let i = 0; i < ins.opCount; i++) {
    const k = ins.opKind(i);
    switch (k) {
      case OpKind.Memory: {
        if (d.op === 0xd7) {
          // XLAT: iced shows [BX+AL]; we compute it at run time from the segment only
          if (d.seg !== SEG[ins.memorySegment])
            return `xlat segment ${String(d.seg)} want ${String(SEG[ins.memorySegment])}`;
          break;
        }
        if (d.mem === null) return "iced has a memory operand, we do not";
        const m = d.mem;
        const base = ins.memoryBase;
        const index = ins.memoryIndex;
        const map = d.a32 ? REG32 : REG16;
        const wantBase = base === Register.None ? 15 : map[base];
        const wantIndex = index === Register.None ? 15 : map[index];
        if (wantBase === undefined || wantIndex === undefined)
          return `unmapped register ${String(base)}/${String(index)}`;
        if (m.base !== wantBase || m.index !== wantIndex)
          return `base/index ${String(m.base)}/${String(m.index)} want ${String(wantBase)}/${String(wantIndex)}`;
        if (index !== Register.None && 1 << m.scale !== ins.memoryIndexScale)
          return `scale ${String(1 << m.scale)} want ${String(ins.memoryIndexScale)}`;
        const mask = d.a32 ? 0xffffffff : 0xffff;
        const disp = Number(BigInt.asUintN(32, ins.memoryDisplacement)) & mask;
        if ((m.disp & mask) >>> 0 !== disp >>> 0) return `disp ${String(m.disp)} want ${String(disp)}`;
        if (m.seg !== SEG[ins.memorySegment]) return `segment ${String(m.seg)} want ${String(SEG[ins.memorySegment])}`;
        break;
      }
      case OpKind.Immediate8:
        if (d.op >= 0xd0 && d.op <= 0xd1) break; // shift by 1: iced shows the implied 1
        if ((d.imm & 0xff) !== Number(ins.immediate(i) & 0xffn))
          return `imm8 ${String(d.imm)} want ${String(ins.immediate(i))}`;
        break;
      case OpKind.Immediate8to16:
      case OpKind.Immediate8to32:
        if ((d.imm & 0xff) !== Number(ins.immediate(i) & 0xffn))
          return `imm8 ${String(d.imm)} want ${String(ins.immediate(i))}`;
        break;
      case OpKind.Immediate16:
        if ((d.imm & 0xffff) !== Number(ins.immediate(i) & 0xffffn))
          return `imm16 ${String(d.imm)} want ${String(ins.immediate(i))}`;
        break;
      case OpKind.Immediate32:
        if (d.imm >>> 0 !== Number(ins.immediate(i) & 0xffffffffn))
          return `imm32 ${String(d.imm)} want ${String(ins.immediate(i))}`;
        break;
      case OpKind.Immediate8_2nd:
        if ((d.imm2 & 0xff) !== ins.immediate8_2nd)
          return `imm8(2) ${String(d.imm2)} want ${String(ins.immediate8_2nd)}`;
        break;
      case OpKind.NearBranch16:
      case OpKind.NearBranch32: {
        const t = (ip + d.length + d.imm) >>> 0;
        const want = k === OpKind.NearBranch16 ? ins.nearBranch16 : ins.nearBranch32;
        const got = k === OpKind.NearBranch16 ? t & 0xffff : t;
        if (got !== want) return `branch target ${String(got)} want ${String(want)}`;
        break;
      }
      case OpKind.FarBranch16:
      case OpKind.FarBranch32: {
        const off = k === OpKind.FarBranch16 ? ins.farBranch16 : ins.farBranch32;
        if (
          (d.imm2 & 0xffff) !== ins.farBranchSelector ||
          (k === OpKind.FarBranch16 ? d.imm & 0xffff : d.imm >>> 0) !== off
        )
          return "far pointer";
        break;
      }
      case OpKind.MemorySegSI:
      case OpKind.MemorySegESI:
        // string source (and XLAT) segment: the override or DS
        if (d.seg !== SEG[ins.memorySegment])
          return `string segment ${String(d.seg)} want ${String(SEG[ins.memorySegment])}`;
        break;
      default:
        break;
    }
  }
  void is32;
  return null;
}

/** Generates instruction-like random bytes: optional prefixes, 0F map often, random rest. */
function corpus(seed: number, count: number): Uint8Array[] {
  const r = rng(seed);
  const prefixes = [0x66, 0x67, 0x26, 0x2e, 0x36, 0x3e, 0x64, 0x65, 0xf2, 0xf3, 0xf0];
  const out: Uint8Array[] = [];
  for (let n = 0; n < count; n++) {
    const b = new Uint8Array(24);
    for (let i = 0; i < b.length; i++) b[i] = Math.floor(r() * 256);
    let p = 0;
    const np = r() < 0.3 ? 1 + Math.floor(r() * 3) : 0;
    for (let i = 0; i < np; i++) b[p++] = prefixes[Math.floor(r() * prefixes.length)]!;
    if (r() < 0.35) b[p] = 0x0f;
    out.push(b);
  }
  return out;
}

function agreeWithIced(
  bits: 16 | 32,
  seed: number,
  count: number,
): { compared: number; disagreements: string[]; oursOnly: string[] } {
  const bufs = corpus(seed, count);
  const all = new Uint8Array(bufs.length * 24);
  bufs.forEach((b, i) => all.set(b, i * 24));
  const dec = new Decoder(bits, all, DecoderOptions.None);
  const ins = new Instruction();
  const disagreements: string[] = [];
  const oursOnly: string[] = [];
  let compared = 0;
  const ip = bits === 16 ? 0x1000 : 0x401000;
  for (let i = 0; i < bufs.length; i++) {
    const b = bufs[i]!;
    dec.position = i * 24;
    dec.ip = BigInt(ip);
    dec.decodeOut(ins);
    const d = decodeInfo(b, 0, bits === 32);
    const hexs = Array.from(b.subarray(0, 15), (x) => x.toString(16).padStart(2, "0")).join(" ");
    if (isP6(ins)) {
      compared++;
      if (d === null || !d.valid) {
        disagreements.push(`${hexs}: iced ${Mnemonic[ins.mnemonic] ?? "?"} len ${String(ins.length)}, ours invalid`);
        continue;
      }
      if (d.length !== ins.length) {
        disagreements.push(
          `${hexs}: iced ${Mnemonic[ins.mnemonic] ?? "?"} len ${String(ins.length)}, ours ${String(d.length)}`,
        );
        continue;
      }
      const diff = compareOperands(ins, d, ip, bits === 32);
      if (diff !== null) disagreements.push(`${hexs}: iced ${Mnemonic[ins.mnemonic] ?? "?"}: ${diff}`);
    } else if (d !== null && d.valid) {
      // We accept something iced rejects or that is not P6: only x87 escapes (the FPU decides) and
      // the 0F 18-1E hint NOPs (reserved NOPs since the P6) may do that.
      const op = d.op;
      if ((op >= 0xd8 && op <= 0xdf) || (op >= 0x118 && op <= 0x11e)) continue;
      if (ins.code !== Code.INVALID && SKIP_MNEMONICS.has(ins.mnemonic)) continue;
      // F3/F2 forms that later CPUs gave a new meaning (LZCNT/TZCNT = F3 BSR/BSF, WBNOINVD = F3
      // WBINVD): a P6 ignores the prefix, so iced must agree on the instruction without it.
      const opAt = b.indexOf(0x0f);
      const prefixes = opAt >= 0 && opAt < d.length ? b.subarray(0, opAt) : new Uint8Array(0);
      const kept = Array.from(prefixes).filter((x) => x !== 0xf3 && x !== 0xf2);
      const removed = prefixes.length - kept.length;
      if (ins.code !== Code.INVALID && removed > 0) {
        const without = Uint8Array.from([...kept, ...b.subarray(opAt)]);
        const d2 = new Decoder(bits, without, DecoderOptions.None);
        const i2 = d2.decode();
        const ok = isP6(i2) && i2.length === d.length - removed;
        i2.free();
        d2.free();
        if (ok) continue;
      }
      oursOnly.push(
        `${hexs}: ours op ${op.toString(16)} len ${String(d.length)}, iced ${ins.code === Code.INVALID ? "invalid" : (Mnemonic[ins.mnemonic] ?? "?")}`,
      );
    }
  }
  ins.free();
  dec.free();
  return { compared, disagreements, oursOnly };
}

for (const bits of [16, 32] as const) {
  test(`decoder agrees with iced-x86 on random ${String(bits)}-bit encodings`, () => {
    const r = agreeWithIced(bits, bits === 16 ? 0x1686 : 0x3286, 60000);
    console.log(
      `# iced ${String(bits)}-bit: ${String(r.compared)} P6 instructions compared, ${String(r.disagreements.length)} disagreements, ${String(r.oursOnly.length)} accepted only by us`,
    );
    assert.ok(r.compared > 30000, `only ${String(r.compared)} compared`);
    for (const l of r.oursOnly.slice(0, 30)) console.log(`# ours only: ${l}`);
    assert.deepEqual(r.disagreements.slice(0, 40), []);
    assert.deepEqual(r.oursOnly.slice(0, 20), []);
  });
}

/**
 * Mnemonics of decode32.txt that are not i686 instructions (SSE/SSE2/SSE3/SSSE3/SSE4, MMX, AES,
 * AVX, TSX, XSAVE, and later integer extensions), plus UD0/UD1 (#UD, vendor-dependent ModRM) and
 * RSM (#UD outside SMM). Everything else must agree.
 */
const GO_NOT_P6 = new Set(
  (
    "psrlw psrlq psrld psraw psrad psllw psllq pslld movq movd movbe pextrw movsd crc32 xsaves xsaveopt xsavec xsave xrstors " +
    "xrstor xbegin tzcnt rdrand pxor punpcklwd punpckldq punpcklbw punpckhwd punpckhdq punpckhbw psubw psubusw psubusb psubsw " +
    "psubsb psubq psubd psubb psignw psignd psignb pshufb psadbw por popcnt pmuludq pmullw pmulhw pmulhuw pmulhrsw pmovmskb " +
    "pminub pminsw pmaxub pmaxsw pmaddwd pmaddubsw pinsrw phsubw phsubsw phsubd phaddw phaddsw phaddd pcmpgtw pcmpgtd pcmpgtb " +
    "pcmpeqw pcmpeqd pcmpeqb pavgw pavgb pandn pand palignr paddw paddusw paddusb paddsw paddsb paddq paddd paddb packuswb " +
    "packsswb packssdw pabsw pabsd pabsb movups movupd movss movnti movlps movlpd movhps movhpd movdqu movdqa movaps movapd " +
    "lzcnt fxsave fxrstor fisttp cvttss2si cvttsd2si cvtss2si cvtsi2sd cvtsd2si xtest xsetbv xorps xorpd xgetbv xend xabort " +
    "vmovdqu unpcklps unpcklpd unpckhps unpckhpd ud1 ud0 ucomiss ucomisd subss subsd subps subpd stmxcsr sqrtss sqrtsd sqrtps " +
    "sqrtpd shufps shufpd sfence rsqrtss rsqrtps rsm roundss roundsd roundps roundpd rdtscp rcpss rcpps punpcklqdq punpckhqdq " +
    "ptest psrldq pslldq pshufw pshuflw pshufhw pshufd prefetchw prefetcht2 prefetcht1 prefetcht0 prefetchnta pmulld pmuldq " +
    "pmovzxwq pmovzxwd pmovzxdq pmovzxbw pmovzxbq pmovzxbd pmovsxwq pmovsxwd pmovsxdq pmovsxbw pmovsxbq pmovsxbd pminuw pminud " +
    "pminsd pminsb pmaxuw pmaxud pmaxsd pmaxsb pinsrd pinsrb phminposuw pextrd pextrb pcmpistrm pcmpistri pcmpgtq pcmpestrm " +
    "pcmpestri pcmpeqq pclmulqdq pblendw pblendvb packusdw orps orpd mwait mulss mulsd mulps mulpd mpsadbw movsldup movshdup " +
    "movq2dq movntss movntsd movntq movntps movntpd movntdqa movntdq movmskps movmskpd movlhps movhlps movdq2q movddup monitor " +
    "minss minsd minps minpd mfence maxss maxsd maxps maxpd maskmovq maskmovdqu lfence ldmxcsr lddqu invpcid insertps hsubps " +
    "hsubpd haddps haddpd extractps emms dpps dppd divss divsd divps divpd cvttps2pi cvttps2dq cvttpd2pi cvttpd2dq cvtss2sd " +
    "cvtsi2ss cvtsd2ss cvtps2pi cvtps2pd cvtps2dq cvtpi2ps cvtpi2pd cvtpd2ps cvtpd2pi cvtpd2dq cvtdq2ps cvtdq2pd comiss comisd " +
    "cmpss cmpsd_xmm cmpps cmppd clflush blendvps blendvpd blendps blendpd andps andpd andnps andnpd aeskeygenassist aesimc " +
    "aesenclast aesenc aesdeclast aesdec addsubps addsubpd addss addsd addps addpd"
  ).split(" "),
);

// The shared copy beside the repo (CI has it) or the committed fixture (same file, BSD-3, with its licence).
const repoRoot = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
const sharedGoFile = join(repoRoot, "..", "shared", "testdata", "x86-decode-golang", "decode32.txt");
const goFile = existsSync(sharedGoFile) ? sharedGoFile : join(repoRoot, "test", "fixtures", "x86-decode-golang", "decode32.txt");

test("decoder agrees with Go x86asm decode32.txt on every i686 instruction", () => {
  const lines = readFileSync(goFile, "utf8").split("\n");
  let checked = 0;
  let errorsChecked = 0;
  const bad: string[] = [];
  for (const line of lines) {
    const f = line.split("\t");
    if (f.length < 4 || f[2] !== "intel") continue;
    const [hexAll, , , asm] = f as [string, string, string, string];
    const [insHex] = hexAll.split("|") as [string];
    const bytes = Uint8Array.from(
      hexAll
        .replace("|", "")
        .match(/../g)!
        .map((h) => parseInt(h, 16)),
    );
    const len = insHex.length / 2;
    const words = asm
      .split(" ")
      .filter(
        (w) =>
          !["lock", "rep", "repne", "data16", "addr16", "es", "cs", "ss", "ds", "fs", "gs"].includes(w) ||
          asm.startsWith(w + " ptr"),
      );
    const mnem = words[0] ?? "";
    const d = decodeInfo(bytes, 0, true);
    if (asm.startsWith("error")) {
      // Go rejects it: we must too (unless it is an x87 escape, decided by the FPU)
      if (bytes[0]! >= 0xd8 && bytes[0]! <= 0xdf) continue;
      errorsChecked++;
      if (d !== null && d.valid) bad.push(`${hexAll}: Go error, ours valid op ${d.op.toString(16)}`);
      continue;
    }
    if (GO_NOT_P6.has(mnem) || asm.split(" ").some((w) => GO_NOT_P6.has(w))) continue;
    // MOV to/from the test registers (0F 24/0F 26): 386/486 only, #UD on a P6.
    if (/\btr[0-7]\b/.test(asm)) continue;
    if (len === 1 && ["es", "cs", "ss", "ds", "fs", "gs"].includes(asm.trim())) {
      // Go emits a lone prefix when what follows does not decode: longer than 15 bytes (we must
      // say so too), or opcode 82 (valid in 32-bit mode on a P6, an alias of 80; Go rejects it).
      if (bytes[1] === 0x82) continue;
      checked++;
      if (d !== null) bad.push(`${hexAll} ${asm}: Go cannot decode it, ours length ${String(d.length)}`);
      continue;
    }
    checked++;
    if (d === null || !d.valid) bad.push(`${hexAll} ${asm}: ours invalid`);
    else if (d.length !== len) bad.push(`${hexAll} ${asm}: length ${String(d.length)} want ${String(len)}`);
  }
  console.log(
    `# Go decode32: ${String(checked)} i686 instructions checked, ${String(errorsChecked)} invalid encodings checked, ${String(bad.length)} disagreements`,
  );
  assert.ok(checked > 500);
  assert.deepEqual(bad, []);
});

test("decodeLength: prefixes, limits and running out of bytes", () => {
  assert.equal(decodeLength(Uint8Array.of(0x90), 0, false), 1);
  assert.equal(decodeLength(Uint8Array.of(0x66, 0xb8, 1, 2, 3, 4), 0, false), 6);
  assert.equal(decodeLength(Uint8Array.of(0xb8, 1, 2), 0, false), 3);
  assert.equal(decodeLength(Uint8Array.of(0xb8, 1, 2), 0, true), -1);
  // 14 prefixes + NOP = 15 bytes: fine; 15 prefixes + NOP = 16: too long (#GP)
  assert.equal(decodeLength(Uint8Array.from([...Array<number>(14).fill(0x2e), 0x90]), 0, true), 15);
  assert.equal(decodeLength(Uint8Array.from([...Array<number>(15).fill(0x2e), 0x90]), 0, true), -2);
  // mod=0 rm=6 in 16-bit: disp16; SIB with base=5 mod=0: disp32
  assert.equal(decodeLength(Uint8Array.of(0x8b, 0x06, 0x34, 0x12), 0, false), 4);
  assert.equal(decodeLength(Uint8Array.of(0x8b, 0x04, 0x25, 1, 2, 3, 4), 0, true), 7);
  // MOV CR ignores mod (no displacement)
  assert.equal(decodeLength(Uint8Array.of(0x0f, 0x20, 0x00), 0, true), 3);
  const info = decodeInfo(Uint8Array.of(0xf0, 0x01, 0xc0), 0, true);
  assert.ok(info !== null && !info.valid, "LOCK with a register destination is #UD");
});
