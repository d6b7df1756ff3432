import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { crc32, crc64 } from "./crc.ts";
import { x86Decode } from "./filters.ts";
import { checkSize, isXz, xzDecompress, XzError } from "./xz.ts";
import { prng } from "../../devices/testing.ts";
import { findDebianGuest } from "../../cli/commands/image.ts";

const FIX = join(import.meta.dirname, "fixtures");
const manifest = JSON.parse(readFileSync(join(FIX, "manifest.json"), "utf8")) as Record<
  string,
  { sha256: string; size: number }
>;

function fixture(name: string): Uint8Array {
  return new Uint8Array(readFileSync(join(FIX, name)));
}

function sha256(b: Uint8Array): string {
  return createHash("sha256").update(b).digest("hex");
}

test("CRC32 and CRC64 check values", () => {
  const nine = new TextEncoder().encode("123456789");
  assert.equal(crc32(nine), 0xcbf43926);
  assert.deepEqual(crc64(nine), [0x995dc9bb, 0xdf1939fa]);
  assert.equal(crc32(new Uint8Array(0)), 0);
  assert.deepEqual(crc64(new Uint8Array(0)), [0, 0]);
});

test("check field sizes follow the format's table", () => {
  assert.deepEqual([0, 1, 3, 4, 6, 7, 10, 12, 13, 15].map(checkSize), [0, 4, 4, 8, 8, 16, 32, 32, 64, 64]);
});

test("every fixture made by xz decompresses to the original (size and SHA-256)", () => {
  const names = Object.keys(manifest);
  assert.ok(names.length >= 15, "the manifest lists the fixtures");
  for (const name of names) {
    const want = manifest[name]!;
    const input = fixture(name);
    assert.ok(isXz(input), name);
    const out = xzDecompress(input);
    assert.equal(out.length, want.size, `${name}: size`);
    assert.equal(sha256(out), want.sha256, `${name}: SHA-256`);
  }
});

test("the output does not depend on the size hint (growth from tiny and from exact buffers)", () => {
  for (const name of ["text-blocks.xz", "zeros-crc32.xz", "concat.xz", "code-x86.xz"]) {
    const want = manifest[name]!;
    for (const sizeHint of [0, 1, want.size, want.size + 100]) {
      assert.equal(
        sha256(xzDecompress(fixture(name), { sizeHint })),
        want.sha256,
        `${name} with sizeHint ${String(sizeHint)}`,
      );
    }
  }
});

test("the x86 filter matters: the same data without undoing it differs", () => {
  // code-x86.xz decoded whole equals the original; re-applying the decoder changes it, so the
  // fixture really exercises conversions.
  const out = xzDecompress(fixture("code-x86.xz"));
  const again = out.slice();
  x86Decode(again, 0, again.length, 0);
  assert.notEqual(sha256(again), manifest["code-x86.xz"]!.sha256);
});

test("unsupported and malformed inputs throw one clear XzError", () => {
  const bad = (input: Uint8Array, re: RegExp): void => {
    assert.throws(
      () => xzDecompress(input),
      (e: unknown) => e instanceof XzError && e instanceof Error && re.test(e.message),
    );
  };
  bad(fixture("code-arm.xz"), /unsupported filter ARM BCJ/);
  bad(new Uint8Array(0), /not an \.xz file/);
  bad(new TextEncoder().encode("hello world, not xz"), /not an \.xz file/);
  const text = fixture("text-crc32.xz");
  bad(text.subarray(0, 8), /truncated stream header/);
  bad(text.subarray(0, text.length - 1), /truncated stream footer|footer/);
  bad(text.subarray(0, 200), /truncated/i);
  // garbage after the stream, and padding that is not a multiple of 4
  const extra = new Uint8Array(text.length + 4);
  extra.set(text);
  extra.set([1, 2, 3, 4], text.length);
  bad(extra, /garbage after stream/);
  const pad3 = new Uint8Array(text.length + 3);
  pad3.set(text);
  bad(pad3, /padding is not a multiple of 4/);
  const pad4 = new Uint8Array(text.length + 4);
  pad4.set(text);
  assert.equal(sha256(xzDecompress(pad4)), manifest["text-crc32.xz"]!.sha256, "4 bytes of stream padding are fine");
  // a flipped data byte: the block's CRC32 (or the LZMA2 structure) catches it
  const flip = text.slice();
  flip[text.length >> 1]! ^= 0x10;
  bad(flip, /CRC32 mismatch|corrupt|LZMA2/);
  // a flipped bit in the stored CRC32 itself
  const crcFlip = text.slice();
  crcFlip[text.length - 12 - 12 - 1]! ^= 1; // inside the index or check: either way an error
  bad(crcFlip, /mismatch|index|corrupt/);
  // the stream header's check type changed (CRC no longer matches)
  const hdr = text.slice();
  hdr[7] = 0x04;
  bad(hdr, /stream header CRC32 mismatch/);
  // an output limit
  assert.throws(() => xzDecompress(fixture("zeros-crc32.xz"), { maxOutput: 1 << 20 }), /exceed the limit/);
});

test("fuzz: seeded truncations and bit flips end in an XzError or the exact output, quickly", () => {
  // Only fixtures with an integrity check: without one a flipped literal could decode "successfully".
  const names = [
    "text-crc32.xz",
    "text-crc64.xz",
    "text-sha256.xz",
    "text-blocks.xz",
    "text-blocks-mt.xz",
    "random-crc64.xz",
    "code-x86.xz",
    "concat.xz",
    "text-delta.xz",
    "empty.xz",
  ];
  const next = prng(0x5eed);
  const rand = (): number => next() / 0x1_0000_0000;
  let errors = 0;
  let exact = 0;
  const t0 = Date.now();
  for (const name of names) {
    const orig = fixture(name);
    const want = manifest[name]!;
    for (let c = 0; c < 120; c++) {
      const input = orig.slice();
      let mutated: Uint8Array = input;
      const kind = c % 4;
      if (kind === 0) {
        mutated = input.subarray(0, Math.floor(rand() * input.length));
      } else {
        const flips = kind === 3 ? 1 + Math.floor(rand() * 8) : 1;
        for (let f = 0; f < flips; f++) input[Math.floor(rand() * input.length)]! ^= 1 << Math.floor(rand() * 8);
      }
      const c0 = Date.now();
      try {
        const out = xzDecompress(mutated);
        assert.equal(out.length, want.size, `${name} case ${String(c)}: wrong size without an error`);
        assert.equal(sha256(out), want.sha256, `${name} case ${String(c)}: wrong data without an error`);
        exact++;
      } catch (e) {
        if (e instanceof assert.AssertionError) throw e;
        assert.ok(e instanceof XzError, `${name} case ${String(c)}: threw ${String(e)}`);
        assert.match(e.message, /^XZ: /);
        errors++;
      }
      assert.ok(Date.now() - c0 < 2000, `${name} case ${String(c)} took ${String(Date.now() - c0)} ms`);
    }
  }
  assert.ok(
    errors > names.length * 100,
    `most mutations are errors (${String(errors)} errors, ${String(exact)} exact)`,
  );
  assert.ok(Date.now() - t0 < 60000);
});

test("Debian's kernel payload decompresses to an i386 ELF (skipped until `boxvm image fetch debian` ran)", (t) => {
  const path = findDebianGuest()?.kernel ?? null;
  if (!path) {
    t.skip("no Debian kernel in the boxvm cache");
    return;
  }
  const img = new Uint8Array(readFileSync(path));
  const dv = new DataView(img.buffer, img.byteOffset, img.byteLength);
  const pm = ((img[0x1f1] || 4) + 1) * 512;
  const off = dv.getUint32(0x248, true);
  const len = dv.getUint32(0x24c, true);
  const payload = img.subarray(pm + off, pm + off + len);
  assert.ok(isXz(payload), "Debian's kernel payload is XZ");
  const size = dv.getUint32(pm + off + len - 4, true); // the build appends the uncompressed size
  const t0 = performance.now();
  const out = xzDecompress(payload.subarray(0, len - 4), { sizeHint: size });
  const ms = performance.now() - t0;
  assert.equal(out.length, size);
  assert.deepEqual([...out.subarray(0, 7)], [0x7f, 0x45, 0x4c, 0x46, 1, 1, 1], "ELF32, little-endian");
  assert.equal(out[0x12]! | (out[0x13]! << 8), 3, "EM_386");
  assert.ok(ms < 10000, `decompressed in ${ms.toFixed(0)} ms`);
  t.diagnostic(`${String(len)} -> ${String(out.length)} bytes in ${ms.toFixed(0)} ms`);
});
