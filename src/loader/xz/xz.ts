/**
 * A decoder for the .xz container (The .xz File Format, version 1.x): one or more streams, each
 *
 *   stream header  FD 37 7A 58 5A 00 | flags (00, 0000cccc: check type) | CRC32 of the flags
 *   blocks         header: size byte ((n + 1) * 4 bytes, 00 = the index follows instead), flags
 *                  (bits 0-1: filters - 1; bit 6: compressed size present; bit 7: uncompressed
 *                  size present; others 0), the sizes (VLIs), per filter: id, property size,
 *                  properties (VLIs and bytes), zero padding, CRC32 of the header
 *                  compressed data, zero padding to a multiple of 4, the check of the block's
 *                  uncompressed data (none, CRC32, CRC64 or SHA-256)
 *   index          00 | record count | per block: unpadded size (header + data + check), uncompressed
 *                  size | zero padding to a multiple of 4 | CRC32 of the index
 *   stream footer  CRC32 of the next 6 bytes | backward size ((index size / 4) - 1, u32) | flags
 *                  (same as the header's) | 59 5A ("YZ")
 *
 * separated by stream padding (zero bytes, multiples of 4). VLIs are little-endian base-128, at
 * most 9 bytes, without a redundant trailing zero byte. Filters: LZMA2 (0x21, last, one property
 * byte: dictionary size), x86 BCJ (0x04, optional 4-byte start offset) and Delta (0x03) are
 * decoded; other filters are refused by name. Everything is checked (headers, paddings, CRCs,
 * sizes, index against blocks, footer against header); any problem throws one XzError naming it.
 */
import { createHash } from "node:crypto";
import { crc32, crc64 } from "./crc.ts";
import { fail, XzError } from "./errors.ts";
import { deltaDecode, x86Decode } from "./filters.ts";
import { Lzma2Decoder, OutBuffer } from "./lzma2.ts";

export { XzError } from "./errors.ts";

const MAGIC = [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00];
/** The most the decoder allocates on the word of a size field or hint rather than decoded data. */
const PREALLOC_MAX = 256 * 1024 * 1024;
const FOOTER_MAGIC = [0x59, 0x5a];

export const CHECK_NONE = 0x00;
export const CHECK_CRC32 = 0x01;
export const CHECK_CRC64 = 0x04;
export const CHECK_SHA256 = 0x0a;

export const FILTER_DELTA = 0x03;
export const FILTER_X86 = 0x04;
export const FILTER_LZMA2 = 0x21;

const FILTER_NAMES: Record<number, string> = {
  0x03: "Delta",
  0x04: "x86 BCJ",
  0x05: "PowerPC BCJ",
  0x06: "IA-64 BCJ",
  0x07: "ARM BCJ",
  0x08: "ARM-Thumb BCJ",
  0x09: "SPARC BCJ",
  0x0a: "ARM64 BCJ",
  0x0b: "RISC-V BCJ",
  0x21: "LZMA2",
};

/** Bytes of the check field for a check type (the format reserves sizes for unassigned IDs). */
export function checkSize(type: number): number {
  return type === 0 ? 0 : 4 << Math.floor((type - 1) / 3);
}

/** Options of xzDecompress. */
export interface XzOptions {
  /** Expected output size, to allocate once (a hint: the output may differ). */
  sizeHint?: number;
  /** Largest output accepted (default 1 GiB). */
  maxOutput?: number;
}

/** True when the bytes start with the .xz stream header magic. */
export function isXz(b: Uint8Array): boolean {
  if (b.length < 6) return false;
  for (let i = 0; i < 6; i++) if (b[i] !== MAGIC[i]) return false;
  return true;
}

/** Reads little-endian u32 at p (caller checked bounds). */
function le32(b: Uint8Array, p: number): number {
  return (b[p]! | (b[p + 1]! << 8) | (b[p + 2]! << 16) | (b[p + 3]! << 24)) >>> 0;
}

/** A variable-length integer at input[pos], within [pos, end): [value, next position]. */
function readVli(input: Uint8Array, pos: number, end: number, what: string): [number, number] {
  let value = 0;
  let mul = 1;
  for (let i = 0; i < 9; i++) {
    if (pos + i >= end) fail(`XZ: truncated ${what}`);
    const b = input[pos + i]!;
    value += (b & 0x7f) * mul;
    if ((b & 0x80) === 0) {
      if (i > 0 && b === 0) fail(`XZ: ${what} is not minimally encoded`);
      if (value > Number.MAX_SAFE_INTEGER) fail(`XZ: ${what} is too large`);
      return [value, pos + i + 1];
    }
    mul *= 128;
  }
  return fail(`XZ: ${what} is longer than 9 bytes`);
}

interface Filter {
  id: number;
  props: Uint8Array;
}

interface BlockRecord {
  unpadded: number;
  uncompressed: number;
}

/** Checks the two stream-flag bytes at p; returns the check type. */
function streamFlags(input: Uint8Array, p: number, where: string): number {
  if (input[p] !== 0 || (input[p + 1]! & 0xf0) !== 0)
    fail(`XZ: unsupported stream flags in the ${where} (reserved bits set)`);
  return input[p + 1]! & 0x0f;
}

/** Verifies a block's check over out[start, end). */
function verifyCheck(
  type: number,
  data: Uint8Array,
  start: number,
  end: number,
  input: Uint8Array,
  p: number,
  block: number,
): void {
  const name = `block ${String(block)}`;
  if (type === CHECK_NONE) return;
  if (type === CHECK_CRC32) {
    if (crc32(data, start, end) !== le32(input, p)) fail(`XZ: CRC32 mismatch in ${name}: the data is corrupt`);
  } else if (type === CHECK_CRC64) {
    const [hi, lo] = crc64(data, start, end);
    if (lo !== le32(input, p) || hi !== le32(input, p + 4)) fail(`XZ: CRC64 mismatch in ${name}: the data is corrupt`);
  } else if (type === CHECK_SHA256) {
    const d = createHash("sha256").update(data.subarray(start, end)).digest();
    for (let i = 0; i < 32; i++)
      if (d[i] !== input[p + i]) fail(`XZ: SHA-256 mismatch in ${name}: the data is corrupt`);
  } else {
    fail(`XZ: unsupported check type 0x${type.toString(16)}`);
  }
}

/**
 * Decompresses a complete .xz file (one or more streams, with stream padding). Throws XzError
 * (an Error) naming the problem for anything malformed, truncated, corrupt or unsupported.
 */
export function xzDecompress(input: Uint8Array, opts: XzOptions = {}): Uint8Array {
  try {
    return decodeAll(input, opts);
  } catch (e) {
    if (e instanceof XzError) throw e;
    // Anything else (a RangeError from a huge allocation, say) still becomes one clear Error.
    throw new XzError(`XZ: ${e instanceof Error ? e.message : String(e)}`);
  }
}

function decodeAll(input: Uint8Array, opts: XzOptions): Uint8Array {
  const max = opts.maxOutput ?? 1 << 30;
  // Allocate up front what the hint (or a guess) says, but never more than 256 MiB on trust: the
  // buffer grows as the data really decodes.
  const initial = Math.min(PREALLOC_MAX, opts.sizeHint ?? Math.max(65536, input.length * 4));
  const out = new OutBuffer(initial, max);
  const lzma2 = new Lzma2Decoder();
  const end = input.length;
  if (!isXz(input)) fail("XZ: not an .xz file (no stream header magic FD 37 7A 58 5A 00)");
  let p = 0;
  let streams = 0;
  while (p < end) {
    if (streams > 0) {
      // stream padding: zero bytes, a multiple of 4, then another stream or the end
      const padStart = p;
      while (p < end && input[p] === 0) p++;
      if ((p - padStart) % 4 !== 0) fail("XZ: stream padding is not a multiple of 4 bytes");
      if (p === end) break;
      if (!isXz(input.subarray(p))) fail(`XZ: garbage after stream ${String(streams)} at byte ${String(p)}`);
    }
    p = decodeStream(input, p, out, lzma2);
    streams++;
  }
  return out.result();
}

/** Decodes one stream starting at p; returns the position after its footer. */
function decodeStream(input: Uint8Array, start: number, out: OutBuffer, lzma2: Lzma2Decoder): number {
  const end = input.length;
  let p = start;
  if (p + 12 > end) fail("XZ: truncated stream header");
  const check = streamFlags(input, p + 6, "stream header");
  if (crc32(input, p + 6, p + 8) !== le32(input, p + 8)) fail("XZ: stream header CRC32 mismatch");
  p += 12;
  const cSize = checkSize(check);
  if (check !== CHECK_NONE && check !== CHECK_CRC32 && check !== CHECK_CRC64 && check !== CHECK_SHA256) {
    fail(`XZ: unsupported check type 0x${check.toString(16)}`);
  }
  const records: BlockRecord[] = [];

  // blocks, until the index indicator
  for (;;) {
    if (p >= end) fail("XZ: truncated stream (no index)");
    if (input[p] === 0x00) break;
    const blockNo = records.length;
    const hdrSize = (input[p]! + 1) * 4;
    if (p + hdrSize > end) fail(`XZ: truncated block header (block ${String(blockNo)})`);
    const hdrEnd = p + hdrSize - 4;
    if (crc32(input, p, hdrEnd) !== le32(input, hdrEnd))
      fail(`XZ: block header CRC32 mismatch (block ${String(blockNo)})`);
    const flags = input[p + 1]!;
    if (flags & 0x3c) fail(`XZ: unsupported block header flags 0x${flags.toString(16)} (reserved bits set)`);
    let q = p + 2;
    let declaredCompressed = -1;
    let declaredUncompressed = -1;
    if (flags & 0x40) {
      [declaredCompressed, q] = readVli(input, q, hdrEnd, "block header compressed size");
      if (declaredCompressed === 0) fail("XZ: block header declares a compressed size of 0");
    }
    if (flags & 0x80) [declaredUncompressed, q] = readVli(input, q, hdrEnd, "block header uncompressed size");
    const filters: Filter[] = [];
    const nFilters = (flags & 3) + 1;
    for (let f = 0; f < nFilters; f++) {
      let id: number;
      let propSize: number;
      [id, q] = readVli(input, q, hdrEnd, "filter ID");
      [propSize, q] = readVli(input, q, hdrEnd, "filter properties size");
      if (q + propSize > hdrEnd) fail("XZ: truncated filter properties in a block header");
      filters.push({ id, props: input.subarray(q, q + propSize) });
      q += propSize;
    }
    for (; q < hdrEnd; q++) if (input[q] !== 0) fail("XZ: non-zero padding in a block header");

    // the filter chain: LZMA2 last, only simple filters before it
    let dictSize = 0;
    filters.forEach((f, i) => {
      const name = FILTER_NAMES[f.id] ?? `0x${f.id.toString(16)}`;
      const last = i === filters.length - 1;
      if (f.id === FILTER_LZMA2) {
        if (!last) fail("XZ: LZMA2 is not the last filter of the chain");
        if (f.props.length !== 1) fail("XZ: LZMA2 filter properties must be 1 byte");
        const b = f.props[0]!;
        if (b > 40) fail(`XZ: invalid LZMA2 dictionary size byte ${String(b)}`);
        dictSize = b === 40 ? 0xffffffff : (2 | (b & 1)) * 2 ** ((b >>> 1) + 11);
      } else if (f.id === FILTER_X86) {
        if (last) fail("XZ: the x86 BCJ filter cannot be the last filter");
        if (f.props.length !== 0 && f.props.length !== 4) fail("XZ: x86 BCJ filter properties must be 0 or 4 bytes");
      } else if (f.id === FILTER_DELTA) {
        if (last) fail("XZ: the Delta filter cannot be the last filter");
        if (f.props.length !== 1) fail("XZ: Delta filter properties must be 1 byte");
      } else {
        fail(`XZ: unsupported filter ${name} (ID 0x${f.id.toString(16)}); boxvm decodes LZMA2, x86 BCJ and Delta`);
      }
    });

    // the data
    const dataStart = p + hdrSize;
    const outStart = out.len;
    if (declaredUncompressed >= 0 && out.len + declaredUncompressed <= out.max)
      out.ensure(Math.min(declaredUncompressed, PREALLOC_MAX));
    const dataEnd = lzma2.decode(
      input,
      dataStart,
      declaredCompressed >= 0 ? Math.min(end, dataStart + declaredCompressed) : end,
      out,
      dictSize,
    );
    const compressed = dataEnd - dataStart;
    const uncompressed = out.len - outStart;
    if (declaredCompressed >= 0 && compressed !== declaredCompressed) {
      fail(
        `XZ: block ${String(blockNo)} has ${String(compressed)} bytes of compressed data, its header says ${String(declaredCompressed)}`,
      );
    }
    if (declaredUncompressed >= 0 && uncompressed !== declaredUncompressed) {
      fail(
        `XZ: block ${String(blockNo)} decompresses to ${String(uncompressed)} bytes, its header says ${String(declaredUncompressed)}`,
      );
    }
    for (let i = filters.length - 2; i >= 0; i--) {
      const f = filters[i]!;
      if (f.id === FILTER_X86) x86Decode(out.buf, outStart, out.len, f.props.length === 4 ? le32(f.props, 0) : 0);
      else deltaDecode(out.buf, outStart, out.len, f.props[0]! + 1);
    }
    p = dataEnd;
    while (((p - dataStart) & 3) !== 0) {
      if (p >= end) fail(`XZ: truncated block padding (block ${String(blockNo)})`);
      if (input[p] !== 0) fail(`XZ: non-zero block padding (block ${String(blockNo)})`);
      p++;
    }
    if (p + cSize > end) fail(`XZ: truncated block check (block ${String(blockNo)})`);
    verifyCheck(check, out.buf, outStart, out.len, input, p, blockNo);
    p += cSize;
    records.push({ unpadded: hdrSize + compressed + cSize, uncompressed });
  }

  // the index
  const indexStart = p;
  p++;
  let count: number;
  [count, p] = readVli(input, p, end, "index record count");
  if (count !== records.length)
    fail(`XZ: the index lists ${String(count)} blocks, the stream has ${String(records.length)}`);
  for (let i = 0; i < count; i++) {
    let unpadded: number;
    let uncompressed: number;
    [unpadded, p] = readVli(input, p, end, "index record");
    [uncompressed, p] = readVli(input, p, end, "index record");
    const r = records[i]!;
    if (unpadded !== r.unpadded || uncompressed !== r.uncompressed)
      fail(`XZ: the index does not match block ${String(i)}`);
  }
  while (((p - indexStart) & 3) !== 0) {
    if (p >= end) fail("XZ: truncated index");
    if (input[p] !== 0) fail("XZ: non-zero index padding");
    p++;
  }
  if (p + 4 > end) fail("XZ: truncated index");
  if (crc32(input, indexStart, p) !== le32(input, p)) fail("XZ: index CRC32 mismatch");
  p += 4;
  const indexSize = p - indexStart;

  // the footer
  if (p + 12 > end) fail("XZ: truncated stream footer");
  if (input[p + 10] !== FOOTER_MAGIC[0] || input[p + 11] !== FOOTER_MAGIC[1]) fail("XZ: bad stream footer magic");
  if (crc32(input, p + 4, p + 10) !== le32(input, p)) fail("XZ: stream footer CRC32 mismatch");
  const backward = (le32(input, p + 4) + 1) * 4;
  if (backward !== indexSize)
    fail(`XZ: the stream footer's backward size (${String(backward)}) does not match the index (${String(indexSize)})`);
  const footCheck = streamFlags(input, p + 8, "stream footer");
  if (footCheck !== check) fail("XZ: the stream footer's flags differ from the header's");
  return p + 12;
}
