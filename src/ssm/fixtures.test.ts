/**
 * The format 1.0 fixture: it must keep loading (backward compatibility), and its bytes must sit where
 * FORMAT.md says (the document and the code agree).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { crc32 } from "./crc.ts";
import { fixtureInput } from "./fixtures/fixtureInput.ts";
import { inspectStateFile, loadStateFromFile } from "./SsmFile.ts";

const path = new URL("./fixtures/v1.0.sav", import.meta.url).pathname;

test("the format 1.0 fixture loads, and holds what it was saved from", async () => {
  const input = fixtureInput();
  const st = await loadStateFromFile(path, {
    ramSize: input.ram.length,
    config: input.config,
    unit: (name) => (name === "cpu" ? { minVersion: 2, maxVersion: 2 } : { minVersion: 1, maxVersion: 1 }),
  });
  assert.deepEqual(
    st.units.map((u) => [u.name, u.instance, u.version, Buffer.from(u.data).toString("hex")]),
    input.units.map((u) => [u.name, u.instance, u.version, Buffer.from(u.data).toString("hex")]),
  );
  const ram = new Uint8Array(input.ram.length).fill(0xee);
  st.restoreRam(ram);
  assert.ok(Buffer.from(ram).equals(Buffer.from(input.ram)));
  assert.equal(st.header.createdAt, input.createdAt);
  assert.equal(st.header.boxvmVersion, "0.1.0");
  const r = await inspectStateFile(path);
  assert.deepEqual([r.ram.zeroPages, r.ram.rawPages, r.ram.compressedPages], [59, 1, 4]);
});

test("the fixture's bytes follow FORMAT.md", () => {
  const f = readFileSync(path);
  const input = fixtureInput();
  // Header.
  assert.equal(f.subarray(0, 8).toString("latin1"), "\x89BOXSSM\n");
  assert.deepEqual([f.readUInt16LE(8), f.readUInt16LE(10)], [1, 0]);
  const L = f.readUInt32LE(92);
  assert.equal(L, input.config.length);
  assert.equal(f.readUInt32LE(12), 96 + L + 4);
  assert.equal(Number(f.readBigUInt64LE(16)), input.ram.length);
  assert.deepEqual([f.readUInt32LE(24), f.readUInt32LE(28)], [4096, 256]);
  assert.equal(Number(f.readBigUInt64LE(32)), input.createdAt);
  assert.equal(f.subarray(96, 96 + L).toString(), input.config);
  assert.equal(f.readUInt32LE(96 + L), crc32(f.subarray(0, 96 + L)));
  // Unit records.
  let off = 96 + L + 4;
  const skipped: [number, number][] = [[96 + L, 4]]; // CRC fields the file CRC leaves out
  for (const u of input.units) {
    assert.equal(f.subarray(off, off + 4).toString(), "UNIT");
    assert.deepEqual(
      [f.readUInt32LE(off + 4), f.readUInt32LE(off + 8), f.readUInt32LE(off + 12)],
      [u.instance, u.version, u.data.length],
    );
    const N = f[off + 20]!;
    assert.equal(f.subarray(off + 21, off + 21 + N).toString(), u.name);
    assert.equal(f.readUInt32LE(off + 21 + N), crc32(f.subarray(off, off + 21 + N)));
    assert.equal(f.readUInt32LE(off + 16), crc32(f.subarray(off + 25 + N, off + 25 + N + u.data.length)));
    skipped.push([off + 21 + N, 4]);
    off += 25 + N + u.data.length;
  }
  // One RAM chunk of 64 pages.
  assert.equal(f.subarray(off, off + 4).toString(), "RAMC");
  assert.deepEqual(
    [f.readUInt32LE(off + 4), f.readUInt16LE(off + 8), f.readUInt16LE(off + 10), f.readUInt16LE(off + 12)],
    [0, 64, 1, 4],
  );
  const kind = (i: number): number => (f[off + 28 + (i >> 2)]! >> ((i & 3) * 2)) & 3;
  assert.deepEqual([kind(0), kind(5), kind(10), kind(12), kind(40), kind(63)], [0, 1, 2, 2, 2, 0]);
  assert.equal(f.readUInt32LE(off + 92), crc32(f.subarray(off, off + 92)));
  const S = f.readUInt32LE(off + 16);
  assert.ok(
    f.subarray(off + 96, off + 96 + 4096).equals(Buffer.from(input.ram.subarray(5 * 4096, 6 * 4096))),
    "raw page stored as is",
  );
  assert.equal(f.readUInt32LE(off + 20), crc32(f.subarray(off + 96, off + 96 + 4096 + S)));
  skipped.push([off + 92, 4]);
  off += 96 + 4096 + S;
  // END.
  assert.equal(f.subarray(off, off + 4).toString(), "END.");
  assert.deepEqual(
    [f.readUInt32LE(off + 4), f.readUInt32LE(off + 8), Number(f.readBigUInt64LE(off + 12))],
    [2, 1, off],
  );
  let covered = Buffer.alloc(0);
  let from = 0;
  for (const [at, n] of skipped) {
    covered = Buffer.concat([covered, f.subarray(from, at)]);
    from = at + n;
  }
  covered = Buffer.concat([covered, f.subarray(from, off)]);
  assert.equal(f.readUInt32LE(off + 20), crc32(covered), "file CRC over every byte before END. but the record CRCs");
  assert.equal(f.readUInt32LE(off + 24), crc32(f.subarray(off, off + 24)));
  assert.equal(f.length, off + 28);
});
