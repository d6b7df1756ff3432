/**
 * The saved-state writer: header, unit records, RAM chunk records and the END. record, streamed to a
 * ByteSink (layout: FORMAT.md). RAM pages are classified per 1 MiB chunk — zero (elided), random-looking
 * (stored raw, hashed in place, never copied), other (deflated together) — and the file CRC is combined
 * from per-record CRCs so no byte is hashed twice.
 */
import { createHash } from "node:crypto";
import { deflateRawSync } from "node:zlib";
import { VBoxError, Status } from "../vm/err.ts";
import { boxvmVersion, type Progress, utf8 } from "./common.ts";
import { crc32, RunningCrc } from "./crc.ts";
import {
  CHUNK_PAGES,
  KIND_MAP_BYTES,
  MAX_CONFIG_LENGTH,
  MAX_RAM_SIZE,
  MAX_UNIT_DATA,
  MAX_UNIT_NAME,
  PAGE_COMPRESSED,
  PAGE_RAW,
  PAGE_SIZE,
  PAGE_ZERO,
  RAMC_HEADER,
  encodeChunkHeader,
  encodeEnd,
  encodeHeader,
  encodeUnitHeader,
  pageKind,
  setPageKind,
} from "./format.ts";
import type { ByteSink } from "./io.ts";
import type { SaveInput } from "./types.ts";

/**
 * Deflate settings: the fastest level; an 8 KiB window (pages are compressed as a group, but most
 * matches are near) with the largest hash table: measured ~20% less CPU than the defaults (32 KiB
 * window, memLevel 8) at the same ratio on both regular and code-like pages.
 */
const DEFLATE_OPTIONS = { level: 1, windowBits: 13, memLevel: 9 } as const;
/** Deflate output at or above this fraction of its input is dropped and the pages stored raw. */
const DEFLATE_KEEP_RATIO = 7 / 8;
/** Bytes sampled from each non-zero page to judge whether it looks random. */
const SAMPLE_BYTES = 128;
/** Distinct byte values among the samples at or above which a page counts as random (uniform: ~101). */
const RANDOM_DISTINCT = 88;

const ZERO_PAGE = Buffer.alloc(PAGE_SIZE);
/** Pages tested for zero in one go before falling back to single pages. */
const ZERO_GROUP = 16;
const ZERO_RUN = Buffer.alloc(ZERO_GROUP * PAGE_SIZE);

/** A RAM chunk record ready to write. */
interface ChunkRecord {
  header: Uint8Array;
  /** Header, raw page runs (views of guest RAM), deflate stream. */
  bufs: Uint8Array[];
  payloadCrc: number;
  payloadLength: number;
  pageCount: number;
}

/** Does this non-zero page look random? Counts distinct values among bytes sampled across it. */
function looksRandom(ram: Buffer, off: number, seen: Uint32Array, stamp: number): boolean {
  const stride = PAGE_SIZE / SAMPLE_BYTES;
  let distinct = 0;
  for (let i = 0, p = off + 5; i < SAMPLE_BYTES; i++, p += stride) {
    const v = ram[p]!;
    if (seen[v] !== stamp) {
      seen[v] = stamp;
      distinct++;
    }
  }
  return distinct >= RANDOM_DISTINCT;
}

/** Splits the raw pages of a chunk into runs of guest RAM, and their CRC. */
function rawRunsOf(
  ram: Buffer,
  firstPage: number,
  pageCount: number,
  kinds: Uint8Array,
): { runs: Buffer[]; crc: number } {
  const runs: Buffer[] = [];
  let crc = 0;
  let i = 0;
  while (i < pageCount) {
    if (pageKind(kinds, i) !== PAGE_RAW) {
      i++;
      continue;
    }
    let j = i + 1;
    while (j < pageCount && pageKind(kinds, j) === PAGE_RAW) j++;
    const run = ram.subarray((firstPage + i) * PAGE_SIZE, (firstPage + j) * PAGE_SIZE);
    runs.push(run);
    crc = crc32(run, crc);
    i = j;
  }
  return { runs, crc };
}

/**
 * Turns RAM chunks into records: classifies the pages, hashes the raw ones in place and deflates the
 * rest. Deflate runs synchronously on the calling thread: measured here, per-chunk async deflate on
 * libuv's pool was slower (dispatch and stream set-up per call, and 2 cores shared with the pool's
 * file writes), while the file writes still overlap with this work (BatchWriter).
 */
class ChunkEncoder {
  readonly #ram: Buffer;
  /** Where a chunk's compressible pages are gathered; reused (fresh memory costs page faults). */
  readonly #scratch = Buffer.allocUnsafe(CHUNK_PAGES * PAGE_SIZE);
  readonly #seen = new Uint32Array(256);
  #stamp = 0;
  constructor(ram: Buffer) {
    this.#ram = ram;
  }
  encode(firstPage: number, pageCount: number): ChunkRecord {
    const ram = this.#ram;
    let kinds = new Uint8Array(KIND_MAP_BYTES);
    let rawPages = 0;
    let compressedPages = 0;
    for (let i = 0; i < pageCount; i++) {
      const off = (firstPage + i) * PAGE_SIZE;
      if (ram[off] === 0 && ram[off + 8] === 0) {
        // Zero runs are found a group at a time (one memcmp instead of sixteen calls), then a page.
        if (
          (i & (ZERO_GROUP - 1)) === 0 &&
          i + ZERO_GROUP <= pageCount &&
          ZERO_RUN.compare(ram, off, off + ZERO_GROUP * PAGE_SIZE) === 0
        ) {
          i += ZERO_GROUP - 1;
          continue;
        }
        if (ZERO_PAGE.compare(ram, off, off + PAGE_SIZE) === 0) continue;
      }
      this.#stamp = (this.#stamp + 1) >>> 0;
      if (this.#stamp === 0) {
        this.#seen.fill(0);
        this.#stamp = 1;
      }
      if (looksRandom(ram, off, this.#seen, this.#stamp)) {
        setPageKind(kinds, i, PAGE_RAW);
        rawPages++;
      } else {
        setPageKind(kinds, i, PAGE_COMPRESSED);
        compressedPages++;
      }
    }
    let deflated: Buffer | null = null;
    let inflatedCrc = 0;
    if (compressedPages > 0) {
      const input = this.#scratch.subarray(0, compressedPages * PAGE_SIZE);
      let o = 0;
      for (let i = 0; i < pageCount; i++) {
        if (pageKind(kinds, i) !== PAGE_COMPRESSED) continue;
        const off = (firstPage + i) * PAGE_SIZE;
        ram.copy(input, o, off, off + PAGE_SIZE);
        o += PAGE_SIZE;
      }
      try {
        deflated = deflateRawSync(input, DEFLATE_OPTIONS);
      } catch {
        deflated = null; // cannot happen short of memory exhaustion; raw is always correct
      }
      if (deflated === null || deflated.length >= input.length * DEFLATE_KEEP_RATIO) {
        // Not worth it: every non-zero page becomes raw.
        deflated = null;
        const all = new Uint8Array(KIND_MAP_BYTES);
        for (let i = 0; i < pageCount; i++) if (pageKind(kinds, i) !== PAGE_ZERO) setPageKind(all, i, PAGE_RAW);
        kinds = all;
        rawPages += compressedPages;
        compressedPages = 0;
      } else {
        inflatedCrc = crc32(input);
      }
    }
    const { runs, crc: rawCrc } = rawRunsOf(ram, firstPage, pageCount, kinds);
    const payloadCrc = deflated !== null ? crc32(deflated, rawCrc) : rawCrc;
    const header = encodeChunkHeader({
      firstPage,
      pageCount,
      rawPages,
      compressedPages,
      deflatedLength: deflated?.length ?? 0,
      payloadCrc,
      inflatedCrc,
      kinds,
    });
    const bufs: Uint8Array[] = [header, ...runs];
    if (deflated !== null) bufs.push(deflated);
    return { header, bufs, payloadCrc, payloadLength: rawPages * PAGE_SIZE + (deflated?.length ?? 0), pageCount };
  }
}

/** Bytes of records gathered before they go to the sink in one call. */
const WRITE_BATCH = 4 * 1024 * 1024;

/** Gathers records into batches and keeps one batch write in flight. */
class BatchWriter {
  readonly #sink: ByteSink;
  #bufs: Uint8Array[] = [];
  #bytes = 0;
  #inflight: Promise<void> = Promise.resolve();
  constructor(sink: ByteSink) {
    this.#sink = sink;
  }
  async add(bufs: readonly Uint8Array[], bytes: number): Promise<void> {
    this.#bufs.push(...bufs);
    this.#bytes += bytes;
    if (this.#bytes >= WRITE_BATCH) await this.#send();
  }
  async #send(): Promise<void> {
    await this.#inflight;
    const bufs = this.#bufs;
    this.#bufs = [];
    this.#bytes = 0;
    this.#inflight = this.#sink.write(bufs);
    // Its failure surfaces at the next #send or flush; keep it from counting as unhandled meanwhile.
    this.#inflight.catch(() => undefined);
  }
  async flush(): Promise<void> {
    await this.#send();
    await this.#inflight;
  }
  /** Resolves when no write is in flight, whatever its outcome. */
  async settled(): Promise<void> {
    await this.#inflight.catch(() => undefined);
  }
}

function validateInput(input: SaveInput): { names: Uint8Array[]; configBytes: Uint8Array } {
  const bad = (msg: string): VBoxError => new VBoxError(Status.VERR_INVALID_PARAMETER, `Cannot save state: ${msg}`);
  if (!(input.ram instanceof Uint8Array)) throw bad("ram is not a Uint8Array");
  if (input.ram.length % PAGE_SIZE !== 0)
    throw bad(`RAM size ${String(input.ram.length)} is not a multiple of ${String(PAGE_SIZE)}`);
  if (input.ram.length > MAX_RAM_SIZE)
    throw bad(`RAM size ${String(input.ram.length)} exceeds ${String(MAX_RAM_SIZE)}`);
  const configBytes = utf8.encode(input.config);
  if (configBytes.length > MAX_CONFIG_LENGTH)
    throw bad(`config is ${String(configBytes.length)} bytes, the limit is ${String(MAX_CONFIG_LENGTH)}`);
  const seen = new Set<string>();
  const names = input.units.map((u) => {
    const n = utf8.encode(u.name);
    if (n.length === 0 || n.length > MAX_UNIT_NAME)
      throw bad(`unit name '${u.name}' must be 1..${String(MAX_UNIT_NAME)} UTF-8 bytes`);
    for (const [what, v] of [
      ["instance", u.instance],
      ["version", u.version],
    ] as const) {
      if (!Number.isInteger(v) || v < 0 || v > 0xffffffff)
        throw bad(`unit '${u.name}' ${what} ${String(v)} is not a u32`);
    }
    if (u.data.length > MAX_UNIT_DATA)
      throw bad(`unit '${u.name}' holds ${String(u.data.length)} bytes, the limit is ${String(MAX_UNIT_DATA)}`);
    const key = `${u.name}\0${String(u.instance)}`;
    if (seen.has(key))
      throw new VBoxError(
        Status.VERR_SSM_UNIT_EXISTS,
        `Cannot save state: unit '${u.name}' instance ${String(u.instance)} appears twice`,
      );
    seen.add(key);
    return n;
  });
  return { names, configBytes };
}

/** Writes a whole state to a sink; the caller finishes with progress.finish() once the bytes are safe. */
export async function writeState(sink: ByteSink, input: SaveInput, progress: Progress): Promise<void> {
  const { names, configBytes } = validateInput(input);
  const ram = Buffer.from(input.ram.buffer, input.ram.byteOffset, input.ram.byteLength);
  const unitBytes = input.units.reduce((s, u) => s + u.data.length, 0);
  progress.total = unitBytes + ram.length;
  progress.start();
  const fileCrc = new RunningCrc();

  const header = encodeHeader({
    ramSize: ram.length,
    createdAt: input.createdAt ?? Date.now(),
    digest: createHash("sha256").update(configBytes).digest(),
    boxvmVersion: boxvmVersion(),
    configBytes,
  });
  fileCrc.update(header.subarray(0, header.length - 4));
  let offset = header.length;
  await sink.write([header]);

  let done = 0;
  const totalPages = ram.length / PAGE_SIZE;
  const encoder = new ChunkEncoder(ram);
  let chunks = 0;
  // Records are batched into one write of up to WRITE_BATCH bytes, and one batch is being written
  // while the next chunks are classified, hashed and compressed.
  const out = new BatchWriter(sink);
  try {
    for (let i = 0; i < input.units.length; i++) {
      const u = input.units[i]!;
      const dataCrc = crc32(u.data);
      const h = encodeUnitHeader(names[i]!, u.instance, u.version, u.data.length, dataCrc);
      fileCrc.update(h.subarray(0, h.length - 4));
      fileCrc.append(dataCrc, u.data.length);
      offset += h.length + u.data.length;
      await out.add([h, u.data], h.length + u.data.length);
      done += u.data.length;
      progress.update(done);
    }
    for (let first = 0; first < totalPages; first += CHUNK_PAGES) {
      const rec = encoder.encode(first, Math.min(CHUNK_PAGES, totalPages - first));
      fileCrc.update(rec.header.subarray(0, RAMC_HEADER - 4));
      fileCrc.append(rec.payloadCrc, rec.payloadLength);
      offset += RAMC_HEADER + rec.payloadLength;
      await out.add(rec.bufs, RAMC_HEADER + rec.payloadLength);
      chunks++;
      done += rec.pageCount * PAGE_SIZE;
      progress.update(done);
    }
    await out.flush();
  } finally {
    // On an error, let a write in flight finish before its buffers go away.
    await out.settled();
  }

  const end = encodeEnd(input.units.length, chunks, offset, fileCrc.value);
  await sink.write([end]);
  await sink.flush();
}
