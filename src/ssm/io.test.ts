import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { open } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { VBoxError } from "../vm/err.ts";
import { FileSource, StreamSource, type ByteSource } from "./io.ts";

/** Reads `data` back through a source in pieces of the given sizes and checks every byte and offset. */
async function readBack(src: ByteSource, data: Buffer, sizes: number[]): Promise<void> {
  let off = 0;
  for (const n of sizes) {
    const got = await src.read(n, "a piece");
    assert.equal(got.length, n);
    assert.ok(Buffer.from(got).equals(data.subarray(off, off + n)), `bytes at ${String(off)}`);
    off += n;
    assert.equal(src.offset, off);
  }
  assert.equal(await src.atEnd(), off === data.length);
}

function pieces(total: number, seed: number): number[] {
  const out: number[] = [];
  let s = seed;
  for (let left = total; left > 0;) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    // Mostly small reads, some spanning several 4 MiB blocks, some empty.
    const kind = s % 10;
    const want = kind < 6 ? s % 300 : kind < 9 ? s % 1_500_000 : 5_000_000 + (s % 3_000_000);
    const n = Math.min(left, want);
    out.push(n);
    left -= n;
  }
  return out;
}

test("FileSource returns exact bytes across block boundaries and reports truncation", async () => {
  const dir = mkdtempSync(join(tmpdir(), "boxvm-io-"));
  try {
    const data = randomBytes(13 * 1024 * 1024 + 777);
    const path = join(dir, "f.bin");
    writeFileSync(path, data);
    for (const seed of [1, 2, 3]) {
      const fh = await open(path, "r");
      try {
        const src = new FileSource(fh, data.length, "file 'f.bin'");
        await readBack(src, data, pieces(data.length, seed));
        await assert.rejects(src.read(1, "one more byte"), (e: unknown) => {
          assert.ok(e instanceof VBoxError);
          assert.equal(e.code, "VERR_SSM_INTEGRITY_SIZE");
          assert.match(e.message, /one more byte needs 1 bytes at offset 13632265/);
          return true;
        });
        await src.settle();
      } finally {
        await fh.close();
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("StreamSource returns exact bytes whatever the chunking, and reports truncation", async () => {
  const data = randomBytes(3 * 1024 * 1024 + 5);
  for (const seed of [4, 5]) {
    const chunks: Buffer[] = [];
    for (let o = 0, k = seed; o < data.length;) {
      k = (Math.imul(k, 1103515245) + 12345) >>> 0;
      const n = 1 + (k % 100_000);
      chunks.push(data.subarray(o, o + n));
      o += n;
    }
    const src = new StreamSource(Readable.from(chunks), "stream");
    const sizes = pieces(data.length, seed);
    await readBack(src, data, sizes);
    await assert.rejects(src.read(10, "the next record"), /truncated: the next record needs 10 bytes/);
    await src.close();
  }
  // atEnd is false while bytes remain, and does not consume them.
  const src = new StreamSource(Readable.from([Buffer.from([1, 2, 3])]), "stream");
  assert.equal(await src.atEnd(), false);
  assert.deepEqual([...(await src.read(3, "x"))], [1, 2, 3]);
  assert.equal(await src.atEnd(), true);
});
