/**
 * The saved-state reader: one pass over a ByteSource that checks everything (FORMAT.md, "What a reader
 * checks") and holds the units and non-zero RAM pages for restoreRam. In inspect mode it gathers a
 * StateReport instead, keeping no data and stepping over payload CRC errors.
 */
import { createHash } from "node:crypto";
import { inflateRawSync } from "node:zlib";
import { VBoxError, Status } from "../vm/err.ts";
import { chunkLabel, hex32, type Progress, unitLabel, utf8Strict } from "./common.ts";
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
  PAGE_COMPRESSED,
  PAGE_RAW,
  PAGE_SIZE,
  PAGE_ZERO,
  RAMC_HEADER,
  TAG_END,
  TAG_RAMC,
  TAG_UNIT,
  UNIT_FIXED,
  pageKind,
  tagName,
  type StateHeader,
} from "./format.ts";
import type { ByteSource } from "./io.ts";
import type { LoadExpect, LoadedState, SavedUnit, StateReport } from "./types.ts";

/** A verified RAM chunk held for restoreRam. */
interface HeldChunk {
  firstPage: number;
  pageCount: number;
  kinds: Uint8Array;
  raw: Uint8Array;
  inflated: Uint8Array | null;
}

export interface ParseOptions {
  label: string;
  expect?: LoadExpect | undefined;
  /** Inspect mode: collect a report, keep no data, record payload CRC errors and go on. */
  report?: StateReport | undefined;
  progress: Progress;
}

export interface ParseResult {
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
    if (
      x !== null &&
      y !== null &&
      typeof x === "object" &&
      typeof y === "object" &&
      Array.isArray(x) === Array.isArray(y)
    ) {
      const xo = x as Record<string, unknown>;
      const yo = y as Record<string, unknown>;
      const keys = [...new Set([...Object.keys(xo), ...Object.keys(yo)])].sort();
      for (const k of keys) {
        const d = walk(xo[k], yo[k], `${path}/${k}`);
        if (d !== null) return d;
      }
      return null;
    }
    return JSON.stringify(x) === JSON.stringify(y)
      ? null
      : `${path === "" ? "/" : path}: saved ${show(x)}, this VM ${show(y)}`;
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
    throw integrity(
      Status.VERR_SSM_INTEGRITY,
      `Saved state ${label} header is corrupt: config length ${String(configLength)} exceeds ${String(MAX_CONFIG_LENGTH)}`,
    );
  }
  const rest = await src.read(configLength + 4, "the file header");
  const restDv = new DataView(rest.buffer, rest.byteOffset, rest.byteLength);
  const stored = restDv.getUint32(configLength, true);
  const computed = crc32(rest.subarray(0, configLength), crc32(fixed));
  if (stored !== computed) {
    throw integrity(
      Status.VERR_SSM_INTEGRITY_CRC,
      `Saved state ${label} header CRC mismatch: stored ${hex32(stored)}, computed ${hex32(computed)}`,
    );
  }
  const headerLength = dv.getUint32(12, true);
  if (headerLength !== HEADER_FIXED + configLength + 4) {
    throw integrity(
      Status.VERR_SSM_INTEGRITY,
      `Saved state ${label} header is corrupt: length ${String(headerLength)} does not match its config length`,
    );
  }
  const ramSize = Number(dv.getBigUint64(16, true));
  const pageSize = dv.getUint32(24, true);
  const chunkPages = dv.getUint32(28, true);
  if (pageSize !== PAGE_SIZE || chunkPages !== CHUNK_PAGES) {
    throw integrity(
      Status.VERR_SSM_INTEGRITY,
      `Saved state ${label} uses page size ${String(pageSize)} and ${String(chunkPages)} pages a chunk: this boxvm reads ${String(PAGE_SIZE)} and ${String(CHUNK_PAGES)}`,
    );
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
    throw integrity(
      Status.VERR_SSM_INTEGRITY,
      `Saved state ${label} header is corrupt: the config digest does not match the config`,
    );
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
export async function parseState(src: ByteSource, opt: ParseOptions): Promise<ParseResult> {
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
        throw integrity(
          Status.VERR_SSM_INTEGRITY_REC_HDR,
          `Saved state ${label}: unit record at offset ${String(at)} has a name that is not UTF-8`,
        );
      }
      const instance = fdv.getUint32(0, true);
      const version = fdv.getUint32(4, true);
      const dataLength = fdv.getUint32(8, true);
      const dataCrc = fdv.getUint32(12, true);
      const who = unitLabel(name, instance);
      if (nameLength === 0)
        throw integrity(
          Status.VERR_SSM_INTEGRITY_REC_HDR,
          `Saved state ${label}: unit record at offset ${String(at)} has an empty name`,
        );
      if (inRam) throw integrity(Status.VERR_SSM_INTEGRITY_REC_HDR, `${who}: unit record after the RAM records`);
      if (dataLength > MAX_UNIT_DATA)
        throw integrity(
          Status.VERR_SSM_INTEGRITY_REC_HDR,
          `${who}: data length ${String(dataLength)} exceeds ${String(MAX_UNIT_DATA)}`,
        );
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
      if (got !== dataCrc)
        soft(
          integrity(
            Status.VERR_SSM_INTEGRITY_CRC,
            `${who}: data CRC mismatch (stored ${hex32(dataCrc)}, computed ${hex32(got)})`,
          ),
        );
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
        throw integrity(
          Status.VERR_SSM_INTEGRITY_CRC,
          `${who}: header CRC mismatch (stored ${hex32(stored)}, computed ${hex32(computed)})`,
        );
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
      if (
        badKind ||
        nRaw !== rawPages ||
        nComp !== compressedPages ||
        reserved !== 0 ||
        (nComp === 0) !== (deflatedLength === 0) ||
        deflatedLength > nComp * PAGE_SIZE + 1024
      ) {
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
        soft(
          integrity(
            Status.VERR_SSM_INTEGRITY_CRC,
            `${who}: payload CRC mismatch (stored ${hex32(payloadCrc)}, computed ${hex32(got)})`,
          ),
        );
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
            soft(
              integrity(
                Status.VERR_SSM_INTEGRITY,
                `${who}: compressed pages inflate to ${String(out.length)} bytes, expected ${String(want)}`,
              ),
            );
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
        throw integrity(
          Status.VERR_SSM_INTEGRITY_CRC,
          `Saved state ${label}: end record CRC mismatch (stored ${hex32(stored)}, computed ${hex32(computed)})`,
        );
      }
      const unitCount = dv.getUint32(0, true);
      const chunkCount = dv.getUint32(4, true);
      const offset = Number(dv.getBigUint64(8, true));
      const storedFileCrc = dv.getUint32(16, true);
      const seenChunks = report !== undefined ? report.ram.chunks : chunks.length;
      const seenUnits = report !== undefined ? report.units.length : units.length;
      for (const r of expect?.requiredUnits ?? []) {
        if (!unitKeys.has(`${r.name}\0${String(r.instance)}`)) {
          throw new VBoxError(
            Status.VERR_SSM_UNIT_NOT_FOUND,
            `${unitLabel(r.name, r.instance)}: missing from the saved state ${label}`,
          );
        }
      }
      if (nextPage !== totalPages) {
        throw integrity(
          Status.VERR_SSM_INTEGRITY_SIZE,
          `Saved state ${label}: the RAM records end at page ${String(nextPage)} of ${String(totalPages)}`,
        );
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
        soft(
          integrity(
            Status.VERR_SSM_INTEGRITY_CRC,
            `Saved state ${label}: file CRC mismatch (stored ${hex32(storedFileCrc)}, computed ${hex32(fileCrc.value)})`,
          ),
        );
      }
      break;
    }

    throw integrity(
      Status.VERR_SSM_INTEGRITY_UNIT_MAGIC,
      `Saved state ${label}: unknown record tag '${tagName(tag)}' at offset ${String(src.offset - 4)}`,
    );
  }

  if (!(await src.atEnd())) {
    throw integrity(
      Status.VERR_SSM_INTEGRITY_SIZE,
      `Saved state ${label}: unexpected bytes after the end record at offset ${String(src.offset)}`,
    );
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

export function loaded(r: ParseResult): LoadedState {
  return {
    header: r.header,
    units: r.units,
    restoreRam: (into: Uint8Array): void => {
      restore(into, r.header, r.chunks);
    },
  };
}
