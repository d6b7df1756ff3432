/**
 * SSM, boxvm's saved-state file: writing a VM's units and RAM to a file or stream, and reading them
 * back with every check done before anything reaches the VM. Byte layout: FORMAT.md beside this file.
 *
 * Design points (after VirtualBox SSM v2 and Firecracker snapshots):
 * - one record per component unit (name, instance, version) with its own CRC32; the header says what
 *   machine the state belongs to (RAM size, config digest) and the END. record carries a CRC32 over
 *   every byte before it;
 * - RAM in 1 MiB chunks: zero pages elided, pages that look random stored raw (deflate is slow on them
 *   and gains nothing), the rest deflated (level 1) as one stream per chunk, compression running on
 *   libuv's thread pool while the main thread classifies the next chunks;
 * - streaming both ways: the writer holds at most a few chunks besides the guest RAM it was given; the
 *   reader holds the units and the non-zero RAM pages (never more than the RAM itself) until
 *   `restoreRam`;
 * - files are replaced atomically: a temporary file in the same directory, fsync, rename, fsync of the
 *   directory; a failed or cancelled save removes its temporary file and leaves the old file as it was.
 *
 * Errors are VBoxError with VERR_SSM_* codes and messages that name the unit or RAM chunk at fault.
 */
import { createHash, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { open, readdir, rename, stat, unlink, type FileHandle } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import { deflateRawSync, inflateRawSync } from "node:zlib";
import { VBoxError, Status, statusName } from "../vm/err.ts";
import { crc32, RunningCrc } from "./crc.ts";
import {
  CHUNK_PAGES,
  END_RECORD,
  FILE_MAGIC,
  FORMAT_MAJOR,
  HEADER_FIXED,
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
  TAG_END,
  TAG_RAMC,
  TAG_UNIT,
  UNIT_FIXED,
  encodeChunkHeader,
  encodeEnd,
  encodeHeader,
  encodeUnitHeader,
  pageKind,
  setPageKind,
  tagName,
  type StateHeader,
} from "./format.ts";
import { FileSink, FileSource, StreamSink, StreamSource, ioError, type ByteSink, type ByteSource } from "./io.ts";

export type { StateHeader } from "./format.ts";

/** One component's saved state. */
export interface SavedUnit {
  name: string;
  instance: number;
  version: number;
  data: Uint8Array;
}

/** What a save writes. */
export interface SaveInput {
  units: SavedUnit[];
  /** Guest RAM, a multiple of 4096 bytes; it must not change until the save settles. */
  ram: Uint8Array;
  /** Canonical JSON of the VM config. */
  config: string;
  /** Creation time to record (ms since the epoch); defaults to now. */
  createdAt?: number;
}

/** Progress in percent (0..100, monotonic); a negative return (a VERR_* status) cancels with that status. */
export type SsmProgress = (percent: number) => number;

/** The unit versions a loader accepts. */
export interface UnitExpectation {
  minVersion: number;
  maxVersion: number;
}

/** What the loading VM is: a state that does not match is refused before anything is restored. */
export interface LoadExpect {
  ramSize: number;
  config: string;
  /** The accepted versions of a unit, or undefined for a unit this VM does not have. */
  unit(name: string, instance: number): UnitExpectation | undefined;
}

/** A verified saved state. */
export interface LoadedState {
  header: StateHeader;
  units: SavedUnit[];
  /** Writes the saved RAM into `into` (which must be exactly the saved RAM size), zero pages included. */
  restoreRam(into: Uint8Array): void;
}

/** RAM page statistics of a saved state. */
export interface RamStats {
  pages: number;
  zeroPages: number;
  rawPages: number;
  compressedPages: number;
  chunks: number;
  /** Bytes of raw pages stored. */
  rawBytes: number;
  /** Bytes of deflate output stored. */
  deflatedBytes: number;
  /** Bytes the compressed pages hold once inflated. */
  inflatedBytes: number;
}

/** One unit as `inspectStateFile` found it. */
export interface UnitReport {
  name: string;
  instance: number;
  version: number;
  size: number;
  crc: number;
  crcOk: boolean;
}

/** Everything `boxvm info` shows about a state file. */
export interface StateReport {
  path: string;
  fileSize: number;
  header: StateHeader | null;
  units: UnitReport[];
  ram: RamStats;
  /** The file CRC from the END. record and whether it matched (null before the END. record was read). */
  fileCrc: number | null;
  fileCrcOk: boolean | null;
  /** The first problem found, or null for a sound file. */
  error: VBoxError | null;
}

// ---------------------------------------------------------------------------------------------------
// Common helpers

let cachedVersion: string | undefined;
/** The boxvm version from package.json ("unknown" if it cannot be read). */
export function boxvmVersion(): string {
  if (cachedVersion === undefined) {
    try {
      const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version?: unknown };
      cachedVersion = typeof pkg.version === "string" ? pkg.version : "unknown";
    } catch {
      cachedVersion = "unknown";
    }
  }
  return cachedVersion;
}

function hex32(v: number): string {
  return `0x${(v >>> 0).toString(16).padStart(8, "0")}`;
}

function unitLabel(name: string, instance: number): string {
  return `Saved state unit '${name}' instance ${String(instance)}`;
}

function chunkLabel(firstPage: number): string {
  return `Saved state RAM chunk at guest address 0x${(firstPage * PAGE_SIZE).toString(16)}`;
}

/** Drives the progress callback: 0 first, then each new percent, 100 last; a negative return cancels. */
class Progress {
  readonly #cb: SsmProgress | undefined;
  readonly #what: string;
  #total = 1;
  #last = -1;
  constructor(cb: SsmProgress | undefined, what: string) {
    this.#cb = cb;
    this.#what = what;
  }
  set total(t: number) {
    this.#total = Math.max(1, t);
  }
  #call(p: number): void {
    if (this.#cb === undefined || p <= this.#last) return;
    this.#last = p;
    const rc = this.#cb(p);
    if (typeof rc === "number" && rc < 0) {
      throw new VBoxError(rc, `${this.#what} cancelled by the progress callback: ${statusName(rc)}`);
    }
  }
  start(): void {
    this.#call(0);
  }
  update(done: number): void {
    this.#call(Math.min(99, Math.floor((done * 100) / this.#total)));
  }
  finish(): void {
    this.#call(100);
  }
}

const utf8 = new TextEncoder();
const utf8Strict = new TextDecoder("utf-8", { fatal: true });

// ---------------------------------------------------------------------------------------------------
// Writing

/** Deflate output at or above this fraction of its input is dropped and the pages stored raw. */
const DEFLATE_KEEP_RATIO = 7 / 8;
/** Bytes sampled from each non-zero page to judge whether it looks random. */
const SAMPLE_BYTES = 128;
/** Distinct byte values among the samples at or above which a page counts as random (uniform: ~101). */
const RANDOM_DISTINCT = 88;

const ZERO_PAGE = Buffer.alloc(PAGE_SIZE);

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
function rawRunsOf(ram: Buffer, firstPage: number, pageCount: number, kinds: Uint8Array): { runs: Buffer[]; crc: number } {
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
      // Cheap probes first: most non-zero pages have a non-zero byte near the start.
      if (ram[off] === 0 && ram[off + 8] === 0 && ram.subarray(off, off + PAGE_SIZE).equals(ZERO_PAGE)) continue;
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
        deflated = deflateRawSync(input, { level: 1 });
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
  if (input.ram.length % PAGE_SIZE !== 0) throw bad(`RAM size ${String(input.ram.length)} is not a multiple of ${String(PAGE_SIZE)}`);
  if (input.ram.length > MAX_RAM_SIZE) throw bad(`RAM size ${String(input.ram.length)} exceeds ${String(MAX_RAM_SIZE)}`);
  const configBytes = utf8.encode(input.config);
  if (configBytes.length > MAX_CONFIG_LENGTH) throw bad(`config is ${String(configBytes.length)} bytes, the limit is ${String(MAX_CONFIG_LENGTH)}`);
  const seen = new Set<string>();
  const names = input.units.map((u) => {
    const n = utf8.encode(u.name);
    if (n.length === 0 || n.length > MAX_UNIT_NAME) throw bad(`unit name '${u.name}' must be 1..${String(MAX_UNIT_NAME)} UTF-8 bytes`);
    for (const [what, v] of [["instance", u.instance], ["version", u.version]] as const) {
      if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw bad(`unit '${u.name}' ${what} ${String(v)} is not a u32`);
    }
    if (u.data.length > MAX_UNIT_DATA) throw bad(`unit '${u.name}' holds ${String(u.data.length)} bytes, the limit is ${String(MAX_UNIT_DATA)}`);
    const key = `${u.name}\0${String(u.instance)}`;
    if (seen.has(key)) throw new VBoxError(Status.VERR_SSM_UNIT_EXISTS, `Cannot save state: unit '${u.name}' instance ${String(u.instance)} appears twice`);
    seen.add(key);
    return n;
  });
  return { names, configBytes };
}

/** Writes a whole state to a sink; the caller finishes with progress.finish() once the bytes are safe. */
async function writeState(sink: ByteSink, input: SaveInput, progress: Progress): Promise<void> {
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
  for (let i = 0; i < input.units.length; i++) {
    const u = input.units[i]!;
    const dataCrc = crc32(u.data);
    const h = encodeUnitHeader(names[i]!, u.instance, u.version, u.data.length, dataCrc);
    fileCrc.update(h.subarray(0, h.length - 4));
    fileCrc.append(dataCrc, u.data.length);
    offset += h.length + u.data.length;
    await sink.write([h, u.data]);
    done += u.data.length;
    progress.update(done);
  }

  const totalPages = ram.length / PAGE_SIZE;
  const encoder = new ChunkEncoder(ram);
  let chunks = 0;
  // Records are batched into one write of up to WRITE_BATCH bytes, and one batch is being written
  // while the next chunks are classified, hashed and compressed.
  const out = new BatchWriter(sink);
  try {
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

function tempNameFor(target: string): string {
  return join(dirname(target), `.${basename(target)}.${String(process.pid)}.${randomBytes(4).toString("hex")}.ssmtmp`);
}

/**
 * Removes temporary files an earlier save of the same target left behind when its process died
 * (kill -9, power loss): `.<name>.<pid>.<hex>.ssmtmp` whose pid is not a live process.
 */
async function removeStaleTemps(target: string): Promise<void> {
  const prefix = `.${basename(target)}.`;
  let names: string[];
  try {
    names = await readdir(dirname(target));
  } catch {
    return;
  }
  for (const n of names) {
    if (!n.startsWith(prefix) || !n.endsWith(".ssmtmp")) continue;
    const m = /^(\d+)\.[0-9a-f]{8}\.ssmtmp$/.exec(n.slice(prefix.length));
    if (m === null) continue;
    const pid = Number(m[1]);
    if (pid === process.pid) continue;
    let alive = true;
    try {
      process.kill(pid, 0);
    } catch (e) {
      alive = (e as NodeJS.ErrnoException).code !== "ESRCH";
    }
    if (!alive) await unlink(join(dirname(target), n)).catch(() => undefined);
  }
}

/**
 * Saves a state to `path`, atomically: the file is either the complete new state or whatever was
 * there before. Progress < 0 cancels with that status (thrown as VBoxError).
 */
export async function saveStateToFile(path: string, input: SaveInput, progress?: SsmProgress): Promise<void> {
  const target = resolve(path);
  await removeStaleTemps(target);
  const tmp = tempNameFor(target);
  let fh: FileHandle | null = null;
  try {
    fh = await open(tmp, "wx", 0o644);
  } catch (e) {
    throw ioError(e, Status.VERR_WRITE_ERROR, `Cannot create the saved state file '${target}'`);
  }
  try {
    const prog = new Progress(progress, "Saving the state");
    await writeState(new FileSink(fh, `file '${target}'`), input, prog);
    try {
      await fh.datasync();
    } catch (e) {
      throw ioError(e, Status.VERR_WRITE_ERROR, `Cannot flush the saved state file '${target}'`);
    }
    await fh.close();
    fh = null;
    prog.finish();
    try {
      await rename(tmp, target);
    } catch (e) {
      throw ioError(e, Status.VERR_WRITE_ERROR, `Cannot replace the saved state file '${target}'`);
    }
  } catch (e) {
    if (fh !== null) await fh.close().catch(() => undefined);
    await unlink(tmp).catch(() => undefined);
    throw e;
  }
  // Make the rename itself durable. Not every platform can fsync a directory; that is not an error.
  try {
    const dh = await open(dirname(target), "r");
    try {
      await dh.sync();
    } finally {
      await dh.close();
    }
  } catch {
    // best effort
  }
}

/**
 * Saves a state to a writable stream (not ended afterwards). Resolves once the stream has accepted
 * every byte. A cancelled or failed save leaves a partial state in the stream.
 */
export async function saveStateToStream(stream: NodeJS.WritableStream, input: SaveInput, progress?: SsmProgress): Promise<void> {
  const sink = new StreamSink(stream);
  let failed = true;
  try {
    const prog = new Progress(progress, "Saving the state");
    await writeState(sink, input, prog);
    prog.finish();
    failed = false;
  } finally {
    sink.dispose(failed);
  }
}

// ---------------------------------------------------------------------------------------------------
// Reading

/** A verified RAM chunk held for restoreRam. */
interface HeldChunk {
  firstPage: number;
  pageCount: number;
  kinds: Uint8Array;
  raw: Uint8Array;
  inflated: Uint8Array | null;
}

interface ParseOptions {
  label: string;
  expect?: LoadExpect | undefined;
  /** Inspect mode: collect a report, keep no data, record payload CRC errors and go on. */
  report?: StateReport | undefined;
  progress: Progress;
}

interface ParseResult {
  header: StateHeader;
  units: SavedUnit[];
  chunks: HeldChunk[];
}

function integrity(rc: number, msg: string): VBoxError {
  return new VBoxError(rc, msg);
}

/** The first JSON path at which two documents differ, for config mismatch messages. */
export function describeConfigDifference(saved: string, current: string): string {
  let a: unknown;
  let b: unknown;
  try {
    a = JSON.parse(saved);
    b = JSON.parse(current);
  } catch {
    return "the config texts differ";
  }
  const show = (v: unknown): string => {
    const s = v === undefined ? "(absent)" : JSON.stringify(v);
    return s.length > 60 ? `${s.slice(0, 57)}...` : s;
  };
  const walk = (x: unknown, y: unknown, path: string): string | null => {
    if (x !== null && y !== null && typeof x === "object" && typeof y === "object" && Array.isArray(x) === Array.isArray(y)) {
      const xo = x as Record<string, unknown>;
      const yo = y as Record<string, unknown>;
      const keys = [...new Set([...Object.keys(xo), ...Object.keys(yo)])].sort();
      for (const k of keys) {
        const d = walk(xo[k], yo[k], `${path}/${k}`);
        if (d !== null) return d;
      }
      return null;
    }
    return JSON.stringify(x) === JSON.stringify(y) ? null : `${path === "" ? "/" : path}: saved ${show(x)}, this VM ${show(y)}`;
  };
  return walk(a, b, "") ?? "the config texts differ in formatting only";
}

async function readHeader(src: ByteSource, label: string): Promise<{ header: StateHeader; bytes: Uint8Array }> {
  const fixed = await src.read(HEADER_FIXED, "the file header");
  for (let i = 0; i < FILE_MAGIC.length; i++) {
    if (fixed[i] !== FILE_MAGIC[i]) {
      throw integrity(Status.VERR_SSM_INTEGRITY_MAGIC, `Saved state ${label} has a bad magic: not a boxvm saved state`);
    }
  }
  const dv = new DataView(fixed.buffer, fixed.byteOffset, fixed.byteLength);
  const major = dv.getUint16(8, true);
  const minor = dv.getUint16(10, true);
  if (major !== FORMAT_MAJOR) {
    throw integrity(
      Status.VERR_SSM_INTEGRITY_VERSION,
      `Saved state ${label} has format version ${String(major)}.${String(minor)}: this boxvm reads ${String(FORMAT_MAJOR)}.x`,
    );
  }
  const configLength = dv.getUint32(92, true);
  if (configLength > MAX_CONFIG_LENGTH) {
    throw integrity(Status.VERR_SSM_INTEGRITY, `Saved state ${label} header is corrupt: config length ${String(configLength)} exceeds ${String(MAX_CONFIG_LENGTH)}`);
  }
  const rest = await src.read(configLength + 4, "the file header");
  const restDv = new DataView(rest.buffer, rest.byteOffset, rest.byteLength);
  const stored = restDv.getUint32(configLength, true);
  const computed = crc32(rest.subarray(0, configLength), crc32(fixed));
  if (stored !== computed) {
    throw integrity(Status.VERR_SSM_INTEGRITY_CRC, `Saved state ${label} header CRC mismatch: stored ${hex32(stored)}, computed ${hex32(computed)}`);
  }
  const headerLength = dv.getUint32(12, true);
  if (headerLength !== HEADER_FIXED + configLength + 4) {
    throw integrity(Status.VERR_SSM_INTEGRITY, `Saved state ${label} header is corrupt: length ${String(headerLength)} does not match its config length`);
  }
  const ramSize = Number(dv.getBigUint64(16, true));
  const pageSize = dv.getUint32(24, true);
  const chunkPages = dv.getUint32(28, true);
  if (pageSize !== PAGE_SIZE || chunkPages !== CHUNK_PAGES) {
    throw integrity(Status.VERR_SSM_INTEGRITY, `Saved state ${label} uses page size ${String(pageSize)} and ${String(chunkPages)} pages a chunk: this boxvm reads ${String(PAGE_SIZE)} and ${String(CHUNK_PAGES)}`);
  }
  if (ramSize % PAGE_SIZE !== 0 || ramSize > MAX_RAM_SIZE) {
    throw integrity(Status.VERR_SSM_INTEGRITY, `Saved state ${label} header is corrupt: RAM size ${String(ramSize)}`);
  }
  const configBytes = rest.subarray(0, configLength);
  let config: string;
  try {
    config = utf8Strict.decode(configBytes);
  } catch {
    throw integrity(Status.VERR_SSM_INTEGRITY, `Saved state ${label} header is corrupt: the config is not UTF-8`);
  }
  const digest = createHash("sha256").update(configBytes).digest();
  if (!digest.equals(fixed.subarray(40, 72))) {
    throw integrity(Status.VERR_SSM_INTEGRITY, `Saved state ${label} header is corrupt: the config digest does not match the config`);
  }
  const verBytes = fixed.subarray(72, 88);
  const nul = verBytes.indexOf(0);
  const header: StateHeader = {
    formatMajor: major,
    formatMinor: minor,
    ramSize,
    pageSize,
    chunkPages,
    createdAt: Number(dv.getBigUint64(32, true)),
    configDigest: digest.toString("hex"),
    boxvmVersion: new TextDecoder().decode(nul < 0 ? verBytes : verBytes.subarray(0, nul)),
    flags: dv.getUint32(88, true),
    config,
  };
  // The bytes the file CRC covers: all but the header's own CRC.
  const bytes = Buffer.concat([fixed, rest.subarray(0, configLength)]);
  return { header, bytes };
}

/** Reads and checks a whole state. In load mode any problem throws; in inspect mode see ParseOptions. */
async function parseState(src: ByteSource, opt: ParseOptions): Promise<ParseResult> {
  const { label, expect, report, progress } = opt;
  const keep = report === undefined;
  /** A problem that inspect mode records and steps over. */
  const soft = (e: VBoxError): void => {
    if (report === undefined) throw e;
    report.error ??= e;
  };
  const advance = (pagesDone: number): void => {
    if (src.size !== undefined) progress.update(src.offset);
    else progress.update(pagesDone * PAGE_SIZE);
  };
  progress.start();

  const fileCrc = new RunningCrc();
  const { header, bytes: headerBytes } = await readHeader(src, label);
  fileCrc.update(headerBytes);
  if (report !== undefined) report.header = header;
  progress.total = src.size ?? header.ramSize;

  if (expect !== undefined) {
    if (header.ramSize !== expect.ramSize) {
      throw new VBoxError(
        Status.VERR_SSM_LOAD_MEMORY_SIZE_MISMATCH,
        `Saved state ${label} is for ${String(header.ramSize)} bytes of RAM: this VM has ${String(expect.ramSize)}`,
      );
    }
    if (header.config !== expect.config) {
      throw new VBoxError(
        Status.VERR_SSM_LOAD_CONFIG_MISMATCH,
        `Saved state ${label} was saved with another config: ${describeConfigDifference(header.config, expect.config)}`,
      );
    }
  }

  const totalPages = header.ramSize / PAGE_SIZE;
  const units: SavedUnit[] = [];
  const unitKeys = new Set<string>();
  const chunks: HeldChunk[] = [];
  let nextPage = 0;
  let inRam = false;
  const ram = report?.ram;

  for (;;) {
    const tagBytes = await src.read(4, "a record tag");
    const tag = new DataView(tagBytes.buffer, tagBytes.byteOffset, 4).getUint32(0, true);

    if (tag === TAG_UNIT) {
      const at = src.offset - 4;
      const fixed = await src.read(UNIT_FIXED - 4, "a unit record header");
      const nameLength = fixed[16]!;
      const rest = await src.read(nameLength + 4, "a unit record header");
      const fdv = new DataView(fixed.buffer, fixed.byteOffset, fixed.byteLength);
      const stored = new DataView(rest.buffer, rest.byteOffset, rest.byteLength).getUint32(nameLength, true);
      const computed = crc32(rest.subarray(0, nameLength), crc32(fixed, crc32(tagBytes)));
      if (stored !== computed) {
        throw integrity(
          Status.VERR_SSM_INTEGRITY_CRC,
          `Saved state ${label}: unit record header at offset ${String(at)} has a CRC mismatch (stored ${hex32(stored)}, computed ${hex32(computed)})`,
        );
      }
      fileCrc.update(tagBytes);
      fileCrc.update(fixed);
      fileCrc.update(rest.subarray(0, nameLength));
      let name: string;
      try {
        name = utf8Strict.decode(rest.subarray(0, nameLength));
      } catch {
        throw integrity(Status.VERR_SSM_INTEGRITY_REC_HDR, `Saved state ${label}: unit record at offset ${String(at)} has a name that is not UTF-8`);
      }
      const instance = fdv.getUint32(0, true);
      const version = fdv.getUint32(4, true);
      const dataLength = fdv.getUint32(8, true);
      const dataCrc = fdv.getUint32(12, true);
      const who = unitLabel(name, instance);
      if (nameLength === 0) throw integrity(Status.VERR_SSM_INTEGRITY_REC_HDR, `Saved state ${label}: unit record at offset ${String(at)} has an empty name`);
      if (inRam) throw integrity(Status.VERR_SSM_INTEGRITY_REC_HDR, `${who}: unit record after the RAM records`);
      if (dataLength > MAX_UNIT_DATA) throw integrity(Status.VERR_SSM_INTEGRITY_REC_HDR, `${who}: data length ${String(dataLength)} exceeds ${String(MAX_UNIT_DATA)}`);
      const key = `${name}\0${String(instance)}`;
      if (unitKeys.has(key)) throw integrity(Status.VERR_SSM_UNIT_EXISTS, `${who}: the unit appears twice`);
      unitKeys.add(key);
      if (expect !== undefined) {
        const want = expect.unit(name, instance);
        if (want === undefined) throw new VBoxError(Status.VERR_SSM_UNIT_NOT_FOUND, `${who}: this VM has no such unit`);
        if (version < want.minVersion || version > want.maxVersion) {
          throw new VBoxError(
            Status.VERR_SSM_UNSUPPORTED_DATA_UNIT_VERSION,
            `${who}: version ${String(version)} is not supported (this VM loads ${String(want.minVersion)}..${String(want.maxVersion)})`,
          );
        }
      }
      const data = await src.read(dataLength, `the data of unit '${name}' instance ${String(instance)}`);
      const got = crc32(data);
      fileCrc.append(got, data.length);
      if (got !== dataCrc) soft(integrity(Status.VERR_SSM_INTEGRITY_CRC, `${who}: data CRC mismatch (stored ${hex32(dataCrc)}, computed ${hex32(got)})`));
      if (keep) units.push({ name, instance, version, data: data.slice() });
      report?.units.push({ name, instance, version, size: dataLength, crc: dataCrc, crcOk: got === dataCrc });
      advance(0);
      continue;
    }

    if (tag === TAG_RAMC) {
      inRam = true;
      const rest = await src.read(RAMC_HEADER - 4, "a RAM chunk header");
      const dv = new DataView(rest.buffer, rest.byteOffset, rest.byteLength);
      const stored = dv.getUint32(RAMC_HEADER - 8, true);
      const computed = crc32(rest.subarray(0, RAMC_HEADER - 8), crc32(tagBytes));
      const firstPage = dv.getUint32(0, true);
      const who = chunkLabel(nextPage);
      if (stored !== computed) {
        throw integrity(Status.VERR_SSM_INTEGRITY_CRC, `${who}: header CRC mismatch (stored ${hex32(stored)}, computed ${hex32(computed)})`);
      }
      fileCrc.update(tagBytes);
      fileCrc.update(rest.subarray(0, RAMC_HEADER - 8));
      const pageCount = dv.getUint16(4, true);
      const rawPages = dv.getUint16(6, true);
      const compressedPages = dv.getUint16(8, true);
      const reserved = dv.getUint16(10, true);
      const deflatedLength = dv.getUint32(12, true);
      const payloadCrc = dv.getUint32(16, true);
      const inflatedCrc = dv.getUint32(20, true);
      const kinds = rest.slice(24, 24 + KIND_MAP_BYTES);
      const expectCount = Math.min(CHUNK_PAGES, totalPages - nextPage);
      if (firstPage !== nextPage || pageCount !== expectCount || expectCount <= 0) {
        throw integrity(
          Status.VERR_SSM_INTEGRITY_REC_HDR,
          `${who}: the record covers pages ${String(firstPage)}+${String(pageCount)}, expected ${String(nextPage)}+${String(Math.max(0, expectCount))} of ${String(totalPages)}`,
        );
      }
      let nRaw = 0;
      let nComp = 0;
      let badKind = false;
      for (let i = 0; i < CHUNK_PAGES; i++) {
        const k = pageKind(kinds, i);
        if (k === PAGE_RAW) nRaw++;
        else if (k === PAGE_COMPRESSED) nComp++;
        if (k === 3 || (i >= pageCount && k !== PAGE_ZERO)) badKind = true;
      }
      if (badKind || nRaw !== rawPages || nComp !== compressedPages || reserved !== 0 || (nComp === 0) !== (deflatedLength === 0) || deflatedLength > nComp * PAGE_SIZE + 1024) {
        throw integrity(Status.VERR_SSM_INTEGRITY_REC_HDR, `${who}: inconsistent header (page map, counts or lengths)`);
      }
      const rawBytes = nRaw * PAGE_SIZE;
      const payload = await src.read(rawBytes + deflatedLength, `the payload of ${who.replace("Saved state ", "")}`);
      const got = crc32(payload);
      fileCrc.append(got, payload.length);
      const raw = payload.subarray(0, rawBytes);
      const deflated = payload.subarray(rawBytes);
      let ok = true;
      if (got !== payloadCrc) {
        soft(integrity(Status.VERR_SSM_INTEGRITY_CRC, `${who}: payload CRC mismatch (stored ${hex32(payloadCrc)}, computed ${hex32(got)})`));
        ok = false;
      }
      const held: HeldChunk = { firstPage, pageCount, kinds, raw, inflated: null };
      if (nComp > 0 && ok) {
        const want = nComp * PAGE_SIZE;
        let out: Buffer | null = null;
        try {
          // chunkSize = the expected size: one output buffer, no growing and joining.
          out = inflateRawSync(deflated, { maxOutputLength: want, chunkSize: Math.max(want, 64) });
        } catch (e) {
          soft(integrity(Status.VERR_SSM_INTEGRITY, `${who}: corrupt compressed pages: ${(e as Error).message}`));
        }
        if (out !== null) {
          if (out.length !== want) {
            soft(integrity(Status.VERR_SSM_INTEGRITY, `${who}: compressed pages inflate to ${String(out.length)} bytes, expected ${String(want)}`));
          } else if (crc32(out) !== inflatedCrc) {
            soft(integrity(Status.VERR_SSM_INTEGRITY_CRC, `${who}: inflated pages CRC mismatch`));
          } else if (keep) {
            held.inflated = out;
          }
        }
      }
      if (keep) chunks.push(held);
      if (ram !== undefined) {
        ram.chunks++;
        ram.rawPages += nRaw;
        ram.compressedPages += nComp;
        ram.zeroPages += pageCount - nRaw - nComp;
        ram.rawBytes += rawBytes;
        ram.deflatedBytes += deflatedLength;
        ram.inflatedBytes += nComp * PAGE_SIZE;
      }
      nextPage += pageCount;
      advance(nextPage);
      continue;
    }

    if (tag === TAG_END) {
      const at = src.offset - 4;
      const rest = await src.read(END_RECORD - 4, "the end record");
      const dv = new DataView(rest.buffer, rest.byteOffset, rest.byteLength);
      const stored = dv.getUint32(END_RECORD - 8, true);
      const computed = crc32(rest.subarray(0, END_RECORD - 8), crc32(tagBytes));
      if (stored !== computed) {
        throw integrity(Status.VERR_SSM_INTEGRITY_CRC, `Saved state ${label}: end record CRC mismatch (stored ${hex32(stored)}, computed ${hex32(computed)})`);
      }
      const unitCount = dv.getUint32(0, true);
      const chunkCount = dv.getUint32(4, true);
      const offset = Number(dv.getBigUint64(8, true));
      const storedFileCrc = dv.getUint32(16, true);
      const seenChunks = report !== undefined ? report.ram.chunks : chunks.length;
      const seenUnits = report !== undefined ? report.units.length : units.length;
      if (nextPage !== totalPages) {
        throw integrity(Status.VERR_SSM_INTEGRITY_SIZE, `Saved state ${label}: the RAM records end at page ${String(nextPage)} of ${String(totalPages)}`);
      }
      if (unitCount !== seenUnits || chunkCount !== seenChunks || offset !== at) {
        throw integrity(
          Status.VERR_SSM_INTEGRITY_REC_HDR,
          `Saved state ${label}: the end record counts ${String(unitCount)} units, ${String(chunkCount)} RAM chunks at offset ${String(offset)}; the file has ${String(seenUnits)}, ${String(seenChunks)} at ${String(at)}`,
        );
      }
      if (report !== undefined) {
        report.fileCrc = storedFileCrc;
        report.fileCrcOk = storedFileCrc === fileCrc.value;
      }
      if (storedFileCrc !== fileCrc.value) {
        soft(integrity(Status.VERR_SSM_INTEGRITY_CRC, `Saved state ${label}: file CRC mismatch (stored ${hex32(storedFileCrc)}, computed ${hex32(fileCrc.value)})`));
      }
      break;
    }

    throw integrity(
      Status.VERR_SSM_INTEGRITY_UNIT_MAGIC,
      `Saved state ${label}: unknown record tag '${tagName(tag)}' at offset ${String(src.offset - 4)}`,
    );
  }

  if (!(await src.atEnd())) {
    throw integrity(Status.VERR_SSM_INTEGRITY_SIZE, `Saved state ${label}: unexpected bytes after the end record at offset ${String(src.offset)}`);
  }
  progress.finish();
  return { header, units, chunks };
}

/** Copies held chunks into guest RAM. */
function restore(into: Uint8Array, header: StateHeader, chunks: readonly HeldChunk[]): void {
  if (into.length !== header.ramSize) {
    throw new VBoxError(
      Status.VERR_SSM_LOAD_MEMORY_SIZE_MISMATCH,
      `Cannot restore RAM: the state holds ${String(header.ramSize)} bytes, the target has ${String(into.length)}`,
    );
  }
  for (const c of chunks) {
    const base = c.firstPage * PAGE_SIZE;
    let rawOff = 0;
    let compOff = 0;
    let i = 0;
    while (i < c.pageCount) {
      const k = pageKind(c.kinds, i);
      let j = i + 1;
      while (j < c.pageCount && pageKind(c.kinds, j) === k) j++;
      const len = (j - i) * PAGE_SIZE;
      const dst = base + i * PAGE_SIZE;
      if (k === PAGE_ZERO) into.fill(0, dst, dst + len);
      else if (k === PAGE_RAW) {
        into.set(c.raw.subarray(rawOff, rawOff + len), dst);
        rawOff += len;
      } else {
        into.set(c.inflated!.subarray(compOff, compOff + len), dst);
        compOff += len;
      }
      i = j;
    }
  }
}

function loaded(r: ParseResult): LoadedState {
  return {
    header: r.header,
    units: r.units,
    restoreRam: (into: Uint8Array): void => {
      restore(into, r.header, r.chunks);
    },
  };
}

/** Loads and verifies a state file against the VM's expectations. Nothing is restored yet. */
export async function loadStateFromFile(path: string, expect: LoadExpect, progress?: SsmProgress): Promise<LoadedState> {
  const target = resolve(path);
  const label = `file '${target}'`;
  let fh: FileHandle;
  try {
    fh = await open(target, "r");
  } catch (e) {
    throw ioError(e, Status.VERR_READ_ERROR, `Cannot open the saved state ${label}`);
  }
  try {
    const size = (await fh.stat()).size;
    const src = new FileSource(fh, size, label);
    try {
      const r = await parseState(src, { label, expect, progress: new Progress(progress, "Loading the state") });
      return loaded(r);
    } finally {
      await src.settle();
    }
  } finally {
    await fh.close().catch(() => undefined);
  }
}

/** Loads and verifies a state from a readable stream, which must end right after the state. */
export async function loadStateFromStream(stream: NodeJS.ReadableStream, expect: LoadExpect, progress?: SsmProgress): Promise<LoadedState> {
  const label = "stream";
  const src = new StreamSource(stream, label);
  try {
    const r = await parseState(src, { label, expect, progress: new Progress(progress, "Loading the state") });
    return loaded(r);
  } finally {
    await src.close();
  }
}

function emptyReport(path: string, fileSize: number): StateReport {
  return {
    path,
    fileSize,
    header: null,
    units: [],
    ram: { pages: 0, zeroPages: 0, rawPages: 0, compressedPages: 0, chunks: 0, rawBytes: 0, deflatedBytes: 0, inflatedBytes: 0 },
    fileCrc: null,
    fileCrcOk: null,
    error: null,
  };
}

/**
 * Reads a state file without a VM: header, units (with their CRC results), RAM statistics and the
 * first problem found. Never throws for a bad file; an unreadable one gives `error` too.
 */
export async function inspectStateFile(path: string): Promise<StateReport> {
  const target = resolve(path);
  const label = `file '${target}'`;
  let report = emptyReport(target, 0);
  let fh: FileHandle | null = null;
  try {
    fh = await open(target, "r");
    const size = (await fh.stat()).size;
    report = emptyReport(target, size);
    const src = new FileSource(fh, size, label);
    try {
      await parseState(src, { label, report, progress: new Progress(undefined, "Inspecting the state") });
    } finally {
      await src.settle();
    }
  } catch (e) {
    report.error ??= e instanceof VBoxError ? e : ioError(e, Status.VERR_READ_ERROR, `Cannot read the saved state ${label}`);
  } finally {
    await fh?.close().catch(() => undefined);
  }
  if (report.header !== null) report.ram.pages = report.header.ramSize / PAGE_SIZE;
  return report;
}

/** Size of a file, or -1 when it cannot be read (for the CLI). */
export async function fileSize(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch {
    return -1;
  }
}
