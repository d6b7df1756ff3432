/**
 * The saved-state file layout (byte-exact description in FORMAT.md): constants, and encoders/decoders
 * for the file header and the three record kinds (UNIT, RAMC, END.). All integers little-endian.
 *
 *   file   = header  UNIT*  RAMC*  END.
 *   header = fixed part (96 bytes) ‖ config text ‖ CRC32
 *   UNIT   = 21-byte fixed part ‖ name ‖ CRC32   then the unit data
 *   RAMC   = 92-byte fixed part ‖ CRC32          then raw pages ‖ deflated pages
 *   END.   = 24-byte fixed part ‖ CRC32          (the file's CRC is inside)
 *
 * Decoders here only check what a single record can show (its CRC, field ranges); sequencing
 * (chunk order, unit uniqueness, counts) is the reader's job in SsmFile.ts.
 */
import { crc32 } from "./crc.ts";

/** "\x89BOXSSM\n": the high byte catches 7-bit transfers, the LF catches newline translation. */
export const FILE_MAGIC = Uint8Array.of(0x89, 0x42, 0x4f, 0x58, 0x53, 0x53, 0x4d, 0x0a);
/** Format major version: a reader rejects any other. */
export const FORMAT_MAJOR = 1;
/** Format minor version: additions a v1.0 reader could skip; readers accept any minor. */
export const FORMAT_MINOR = 0;

/** Guest page size the RAM section works in. */
export const PAGE_SIZE = 4096;
/** Pages per RAM chunk record (1 MiB): the unit of compression, CRC and streaming. */
export const CHUNK_PAGES = 256;

/** Fixed part of the header, before the config text. */
export const HEADER_FIXED = 96;
/** Largest config text accepted (a canonical JSON document of the VM configuration). */
export const MAX_CONFIG_LENGTH = 1 << 20;
/** Largest RAM size accepted: 64 GiB (far above what a 32-bit guest can use). */
export const MAX_RAM_SIZE = 64 * 1024 * 1024 * 1024;
/** Largest unit data accepted: 1 GiB. */
export const MAX_UNIT_DATA = 1 << 30;
/** Longest unit name in UTF-8 bytes. */
export const MAX_UNIT_NAME = 255;

/** Record tags: four ASCII bytes read as a little-endian u32. */
export const TAG_UNIT = tag("UNIT");
export const TAG_RAMC = tag("RAMC");
export const TAG_END = tag("END.");

/** The fixed part of a UNIT record before the name. */
export const UNIT_FIXED = 21;
/** RAMC record header: fixed fields, page-kind map, CRC. */
export const RAMC_HEADER = 96;
/** END. record: fixed fields and CRC. */
export const END_RECORD = 28;

/*
 * Page kinds in a RAMC record's map: 2 bits per page, page i of the chunk at byte i >> 2,
 * bits 2·(i & 3) .. 2·(i & 3)+1.
 *   0  ZERO        all bytes zero; nothing stored
 *   1  RAW         4096 bytes stored as they are, in the raw section
 *   2  COMPRESSED  part of the chunk's single deflate stream
 *   3  (invalid)
 */
export const PAGE_ZERO = 0;
export const PAGE_RAW = 1;
export const PAGE_COMPRESSED = 2;
/** Bytes of page-kind map in a RAMC record: 2 bits for each of CHUNK_PAGES pages. */
export const KIND_MAP_BYTES = CHUNK_PAGES / 4;

function tag(s: string): number {
  return (s.charCodeAt(0) | (s.charCodeAt(1) << 8) | (s.charCodeAt(2) << 16) | (s.charCodeAt(3) << 24)) >>> 0;
}

/** The four-character name of a tag value, printable characters only, for messages. */
export function tagName(v: number): string {
  let s = "";
  for (let i = 0; i < 4; i++) {
    const c = (v >>> (8 * i)) & 0xff;
    s += c >= 0x20 && c < 0x7f ? String.fromCharCode(c) : `\\x${c.toString(16).padStart(2, "0")}`;
  }
  return s;
}

/** What the file header says. */
export interface StateHeader {
  formatMajor: number;
  formatMinor: number;
  /** Guest RAM size in bytes. */
  ramSize: number;
  pageSize: number;
  chunkPages: number;
  /** Creation time, ms since the Unix epoch. */
  createdAt: number;
  /** SHA-256 of the config text, hex. */
  configDigest: string;
  /** The boxvm version that wrote the file. */
  boxvmVersion: string;
  flags: number;
  /** The VM configuration (canonical JSON) the state was saved with. */
  config: string;
}

/** Writes the header; `digest` is the SHA-256 of `configBytes`. */
export function encodeHeader(h: {
  ramSize: number;
  createdAt: number;
  digest: Uint8Array;
  boxvmVersion: string;
  configBytes: Uint8Array;
}): Uint8Array {
  const total = HEADER_FIXED + h.configBytes.length + 4;
  const b = new Uint8Array(total);
  const dv = new DataView(b.buffer);
  b.set(FILE_MAGIC, 0);
  dv.setUint16(8, FORMAT_MAJOR, true);
  dv.setUint16(10, FORMAT_MINOR, true);
  dv.setUint32(12, total, true);
  dv.setBigUint64(16, BigInt(h.ramSize), true);
  dv.setUint32(24, PAGE_SIZE, true);
  dv.setUint32(28, CHUNK_PAGES, true);
  dv.setBigUint64(32, BigInt(Math.max(0, Math.floor(h.createdAt))), true);
  b.set(h.digest.subarray(0, 32), 40);
  b.set(new TextEncoder().encode(h.boxvmVersion).subarray(0, 16), 72);
  dv.setUint32(88, 0, true);
  dv.setUint32(92, h.configBytes.length, true);
  b.set(h.configBytes, HEADER_FIXED);
  dv.setUint32(total - 4, crc32(b.subarray(0, total - 4)), true);
  return b;
}

/** A unit record's header fields. */
export interface UnitRecordHeader {
  name: string;
  instance: number;
  version: number;
  dataLength: number;
  dataCrc: number;
}

/** Writes a UNIT record header (the data follows it). `nameBytes` is the UTF-8 name. */
export function encodeUnitHeader(
  nameBytes: Uint8Array,
  instance: number,
  version: number,
  dataLength: number,
  dataCrc: number,
): Uint8Array {
  const total = UNIT_FIXED + nameBytes.length + 4;
  const b = new Uint8Array(total);
  const dv = new DataView(b.buffer);
  dv.setUint32(0, TAG_UNIT, true);
  dv.setUint32(4, instance >>> 0, true);
  dv.setUint32(8, version >>> 0, true);
  dv.setUint32(12, dataLength >>> 0, true);
  dv.setUint32(16, dataCrc >>> 0, true);
  b[20] = nameBytes.length;
  b.set(nameBytes, UNIT_FIXED);
  dv.setUint32(total - 4, crc32(b.subarray(0, total - 4)), true);
  return b;
}

/** A RAM chunk record's header fields. */
export interface ChunkHeader {
  firstPage: number;
  pageCount: number;
  rawPages: number;
  compressedPages: number;
  deflatedLength: number;
  /** CRC32 of the stored payload: raw pages ‖ deflated bytes. */
  payloadCrc: number;
  /** CRC32 of the compressed pages after inflation (0 when there are none). */
  inflatedCrc: number;
  /** KIND_MAP_BYTES bytes, 2 bits a page. */
  kinds: Uint8Array;
}

/** Writes a RAMC record header (the payload follows it). */
export function encodeChunkHeader(c: ChunkHeader): Uint8Array {
  const b = new Uint8Array(RAMC_HEADER);
  const dv = new DataView(b.buffer);
  dv.setUint32(0, TAG_RAMC, true);
  dv.setUint32(4, c.firstPage, true);
  dv.setUint16(8, c.pageCount, true);
  dv.setUint16(10, c.rawPages, true);
  dv.setUint16(12, c.compressedPages, true);
  dv.setUint16(14, 0, true);
  dv.setUint32(16, c.deflatedLength, true);
  dv.setUint32(20, c.payloadCrc >>> 0, true);
  dv.setUint32(24, c.inflatedCrc >>> 0, true);
  b.set(c.kinds.subarray(0, KIND_MAP_BYTES), 28);
  dv.setUint32(92, crc32(b.subarray(0, 92)), true);
  return b;
}

/** Writes the END. record. */
export function encodeEnd(unitCount: number, chunkCount: number, fileOffset: number, fileCrc: number): Uint8Array {
  const b = new Uint8Array(END_RECORD);
  const dv = new DataView(b.buffer);
  dv.setUint32(0, TAG_END, true);
  dv.setUint32(4, unitCount, true);
  dv.setUint32(8, chunkCount, true);
  dv.setBigUint64(12, BigInt(fileOffset), true);
  dv.setUint32(20, fileCrc >>> 0, true);
  dv.setUint32(24, crc32(b.subarray(0, 24)), true);
  return b;
}

/** The kind of page i in a kind map. */
export function pageKind(kinds: Uint8Array, i: number): number {
  return ((kinds[i >> 2] ?? 0) >> ((i & 3) * 2)) & 3;
}

/** Sets the kind of page i in a kind map (which must hold PAGE_ZERO there before). */
export function setPageKind(kinds: Uint8Array, i: number, kind: number): void {
  const j = i >> 2;
  kinds[j] = (kinds[j] ?? 0) | (kind << ((i & 3) * 2));
}
