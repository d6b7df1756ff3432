/**
 * Fuzzing the saved-state reader: truncations, bit flips, byte edits, spliced files, record-aware edits,
 * random unit sets and random garbage. Every damaged input must end in a clean VBoxError (a known status
 * name, a message) — never another exception, a hang, or a successful load of damaged data. Seeded and
 * bounded: a fixed number of cases, each under a watchdog.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough, Readable } from "node:stream";
import { VBoxError, Status } from "../vm/err.ts";
import { crc32 } from "./crc.ts";
import {
  inspectStateFile,
  loadStateFromFile,
  loadStateFromStream,
  saveStateToStream,
  type LoadExpect,
  type LoadedState,
  type SaveInput,
  type SavedUnit,
} from "./SsmFile.ts";

const PAGE = 4096;
const SEED = 0x5eed_55a1;
/** Longest a single load may take before the case counts as a hang. */
const WATCHDOG_MS = 5000;

function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s;
  };
}

function bytes(next: () => number, n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = next() & 0xff;
  return b;
}

function makeRam(next: () => number, pages: number): Uint8Array {
  const ram = new Uint8Array(pages * PAGE);
  for (let p = 0; p < pages; p++) {
    const kind = next() % 4;
    const page = ram.subarray(p * PAGE, (p + 1) * PAGE);
    if (kind === 1) page.set(bytes(next, PAGE));
    else if (kind === 2) for (let i = 0; i < PAGE; i += 2) page[i] = (p + (i >> 6)) & 0xff;
    else if (kind === 3) page[next() % PAGE] = 1 + (next() % 255);
  }
  return ram;
}

function makeUnits(next: () => number): SavedUnit[] {
  const alphabet = ["a", "b", "pic", "ü", "-", "0", "界", "_"];
  const units: SavedUnit[] = [];
  const keys = new Set<string>();
  const n = next() % 6;
  for (let i = 0; i < n; i++) {
    let name = "";
    const len = 1 + (next() % 12);
    for (let j = 0; j < len; j++) name += alphabet[next() % alphabet.length]!;
    const instance = next() % 3;
    if (keys.has(`${name}/${String(instance)}`)) continue;
    keys.add(`${name}/${String(instance)}`);
    const size = next() % 3 === 0 ? next() % 70000 : next() % 300;
    units.push({ name, instance, version: next() % 5, data: bytes(next, size) });
  }
  return units;
}

function expectFor(input: SaveInput): LoadExpect {
  return {
    ramSize: input.ram.length,
    config: input.config,
    unit: (name, instance) =>
      input.units.some((u) => u.name === name && u.instance === instance)
        ? { minVersion: 0, maxVersion: 0xffffffff }
        : undefined,
  };
}

async function saveToBuffer(input: SaveInput): Promise<Buffer> {
  const pipe = new PassThrough();
  const parts: Buffer[] = [];
  pipe.on("data", (c: Buffer) => parts.push(c));
  await saveStateToStream(pipe, input);
  pipe.end();
  return Buffer.concat(parts);
}

function withWatchdog<T>(p: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const dog = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Hang: ${what} took over ${String(WATCHDOG_MS)} ms`)), WATCHDOG_MS);
  });
  return Promise.race([p, dog]).finally(() => clearTimeout(timer));
}

function sameState(st: LoadedState, input: SaveInput): boolean {
  if (st.units.length !== input.units.length) return false;
  for (let i = 0; i < st.units.length; i++) {
    const a = st.units[i]!;
    const b = input.units[i]!;
    if (
      a.name !== b.name ||
      a.instance !== b.instance ||
      a.version !== b.version ||
      !Buffer.from(a.data).equals(Buffer.from(b.data))
    )
      return false;
  }
  const into = new Uint8Array(input.ram.length).fill(0x5a);
  st.restoreRam(into);
  return Buffer.from(into).equals(Buffer.from(input.ram));
}

const knownNames = new Set(Object.keys(Status));
const stats = new Map<string, number>();

/** Loads damaged bytes; they must be refused cleanly (or, if unchanged after all, load the original). */
async function mustRefuse(
  data: Uint8Array,
  input: SaveInput,
  original: Buffer,
  what: string,
  viaFile?: string,
): Promise<void> {
  const unchanged = Buffer.from(data).equals(original);
  let st: LoadedState;
  try {
    if (viaFile !== undefined) {
      writeFileSync(viaFile, data);
      st = await withWatchdog(loadStateFromFile(viaFile, expectFor(input)), what);
    } else {
      // Feed the bytes in uneven pieces so record boundaries fall everywhere.
      const pieces: Uint8Array[] = [];
      for (let o = 0, k = 1; o < data.length; k = (k * 7 + 3) % 9000) {
        pieces.push(data.subarray(o, o + 1 + k));
        o += 1 + k;
      }
      st = await withWatchdog(loadStateFromStream(Readable.from(pieces), expectFor(input)), what);
    }
  } catch (e) {
    if (!(e instanceof VBoxError)) throw new Error(`${what}: not a VBoxError: ${String((e as Error).stack ?? e)}`);
    assert.ok(e.rc < 0, `${what}: rc ${String(e.rc)}`);
    assert.ok(knownNames.has(e.code), `${what}: unknown status ${e.code}`);
    assert.ok(e.message.length > 10 && !e.message.endsWith("."), `${what}: message '${e.message}'`);
    assert.ok(!unchanged, `${what}: an intact file was refused: ${e.message}`);
    stats.set(e.code, (stats.get(e.code) ?? 0) + 1);
    return;
  }
  assert.ok(unchanged, `${what}: damaged data loaded`);
  assert.ok(sameState(st, input), `${what}: loaded a different state`);
}

/** Offsets where records start, to aim truncations and edits at the interesting places. */
function recordOffsets(file: Buffer, units: number): number[] {
  const out = [0];
  let off = file.readUInt32LE(12);
  out.push(off);
  for (let i = 0; i < units; i++) {
    const nameLen = file[off + 20]!;
    off += 21 + nameLen + 4 + file.readUInt32LE(off + 12);
    out.push(off);
  }
  while (off + 96 <= file.length && file.readUInt32LE(off) === 0x434d4152) {
    off += 96 + file.readUInt16LE(off + 10) * PAGE + file.readUInt32LE(off + 16);
    out.push(off);
  }
  return out;
}

test("fuzz: damaged saved states are always refused cleanly", async (t) => {
  const next = rng(SEED);
  const dir = mkdtempSync(join(tmpdir(), "boxvm-ssm-fuzz-"));
  let cases = 0;
  try {
    for (let base = 0; base < 3; base++) {
      const input: SaveInput = {
        units: makeUnits(next),
        ram: makeRam(next, 100 + (next() % 400)),
        config: JSON.stringify({ base, x: next() }),
      };
      const good = await saveToBuffer(input);
      await mustRefuse(good, input, good, `base ${String(base)} intact`); // sanity: it loads
      const starts = recordOffsets(good, input.units.length);
      const targets = new Set<number>();
      for (const s of starts) for (let d = -3; d <= 100; d++) if (s + d >= 0 && s + d < good.length) targets.add(s + d);
      for (let i = 0; i < 150; i++) targets.add(next() % good.length);
      const file = join(dir, `f${String(base)}.sav`);

      // Truncations at every interesting offset.
      for (const t of targets) {
        await mustRefuse(
          good.subarray(0, t),
          input,
          good,
          `base ${String(base)} truncated at ${String(t)}`,
          t % 5 === 0 ? file : undefined,
        );
        cases++;
      }
      // Single bit flips at the same offsets.
      for (const t of targets) {
        if (next() % 2 === 0) continue;
        const b = Buffer.from(good);
        b[t] = (b[t] ?? 0) ^ (1 << (next() % 8));
        await mustRefuse(
          b,
          input,
          good,
          `base ${String(base)} bit flip at ${String(t)}`,
          t % 7 === 0 ? file : undefined,
        );
        cases++;
      }
      // Multi-byte edits, insertions, deletions, splices.
      for (let i = 0; i < 120; i++) {
        const b = Buffer.from(good);
        const op = next() % 4;
        let damaged: Buffer = b;
        const at = next() % b.length;
        if (op === 0) for (let k = 0; k < 1 + (next() % 16); k++) b[(at + k) % b.length] = next() & 0xff;
        else if (op === 1)
          damaged = Buffer.concat([b.subarray(0, at), Buffer.from(bytes(next, 1 + (next() % 64))), b.subarray(at)]);
        else if (op === 2)
          damaged = Buffer.concat([b.subarray(0, at), b.subarray(Math.min(b.length, at + 1 + (next() % 64)))]);
        else {
          const from = next() % b.length;
          damaged = Buffer.concat([b.subarray(0, at), b.subarray(from, from + (next() % 5000))]);
        }
        await mustRefuse(damaged, input, good, `base ${String(base)} edit ${String(op)} at ${String(at)}`);
        cases++;
      }
      // Record-aware edits: change a field and fix that record's own CRC, so only deeper checks can tell.
      for (const s of starts.slice(1, -1)) {
        const b = Buffer.from(good);
        const tagIsRam = b.readUInt32LE(s) === 0x434d4152;
        const field = tagIsRam ? 4 + 2 * (next() % 10) : 4 + 4 * (next() % 4);
        b[s + field] = (b[s + field] ?? 0) ^ 1;
        if (tagIsRam) b.writeUInt32LE(crc32(b.subarray(s, s + 92)), s + 92);
        else {
          const nameLen = b[s + 20]!;
          b.writeUInt32LE(crc32(b.subarray(s, s + 21 + nameLen)), s + 21 + nameLen);
        }
        await mustRefuse(
          b,
          input,
          good,
          `base ${String(base)} re-CRCed edit at ${String(s + field)} (record at ${String(s)}, ram ${String(tagIsRam)}, field ${String(field)})`,
        );
        cases++;
      }
      // Inspection of damaged files never throws.
      for (let i = 0; i < 20; i++) {
        const b = Buffer.from(good.subarray(0, next() % (good.length + 1)));
        if (b.length > 0) {
          const at = next() % b.length;
          b[at] = (b[at] ?? 0) ^ 0xff;
        }
        writeFileSync(file, b);
        const r = await withWatchdog(inspectStateFile(file), "inspect");
        assert.ok(r.error instanceof VBoxError || Buffer.from(b).equals(good));
      }
    }

    // Random garbage, bare and behind a valid magic.
    for (let i = 0; i < 300; i++) {
      const input: SaveInput = { units: [], ram: new Uint8Array(PAGE), config: "{}" };
      const g = Buffer.from(bytes(next, next() % 3000));
      if (i % 2 === 0 && g.length >= 8) g.set([0x89, 0x42, 0x4f, 0x58, 0x53, 0x53, 0x4d, 0x0a], 0);
      await mustRefuse(g, input, Buffer.alloc(1), `garbage ${String(i)}`);
      cases++;
    }

    // Random valid states round-trip exactly.
    for (let i = 0; i < 25; i++) {
      const input: SaveInput = {
        units: makeUnits(next),
        ram: makeRam(next, next() % 300),
        config: `{"i":${String(i)}}`,
      };
      const good = await saveToBuffer(input);
      await mustRefuse(good, input, good, `random state ${String(i)}`);
      cases++;
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  t.diagnostic(`${String(cases)} cases; refusals by status: ${JSON.stringify(Object.fromEntries(stats))}`);
  assert.ok(cases > 1000, `only ${String(cases)} cases`);
  // Several distinct checks must have fired, or the fuzzer is not reaching the reader's depths.
  for (const code of [
    "VERR_SSM_INTEGRITY_SIZE",
    "VERR_SSM_INTEGRITY_CRC",
    "VERR_SSM_INTEGRITY_MAGIC",
    "VERR_SSM_INTEGRITY_REC_HDR",
  ]) {
    assert.ok((stats.get(code) ?? 0) > 0, `${code} never seen: ${JSON.stringify([...stats])}`);
  }
});
