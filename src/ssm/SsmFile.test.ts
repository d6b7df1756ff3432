import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough, Readable } from "node:stream";
import { VBoxError, Status } from "../vm/err.ts";
import { crc32 } from "./crc.ts";
import {
  describeConfigDifference,
  inspectStateFile,
  loadStateFromFile,
  loadStateFromStream,
  saveStateToFile,
  saveStateToStream,
  type LoadExpect,
  type SaveInput,
  type SavedUnit,
} from "./SsmFile.ts";

const PAGE = 4096;
const CONFIG = JSON.stringify({ ram: 4, devices: { pit: { irq: 0 }, uart: { base: 1016, irq: 4 } } });

/** A small deterministic PRNG (xorshift32) so failures reproduce. */
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

function randomFill(b: Uint8Array, next: () => number): void {
  for (let i = 0; i < b.length; i++) b[i] = next() & 0xff;
}

/** RAM with every page kind: zero, random, text-like, half-and-half, a single non-zero byte. */
function mixedRam(pages: number, seed = 1): Uint8Array {
  const next = rng(seed);
  const ram = new Uint8Array(pages * PAGE);
  for (let p = 0; p < pages; p++) {
    const page = ram.subarray(p * PAGE, (p + 1) * PAGE);
    switch (p % 7) {
      case 0:
      case 1:
        break; // zero
      case 2:
        randomFill(page, next);
        break;
      case 3:
        for (let i = 0; i < PAGE; i++) page[i] = 0x41 + ((i * 7 + p) % 23);
        break;
      case 4:
        randomFill(page.subarray(0, PAGE / 2), next);
        break;
      case 5:
        page[PAGE - 1] = 1 + (p & 0x7f);
        break;
      default:
        for (let i = 0; i < PAGE; i += 4) page[i] = (i >> 4) & 0xff;
    }
  }
  return ram;
}

function units(seed = 2): SavedUnit[] {
  const next = rng(seed);
  const mk = (n: number): Uint8Array => {
    const b = new Uint8Array(n);
    randomFill(b, next);
    return b;
  };
  return [
    { name: "cpu", instance: 0, version: 3, data: mk(700) },
    { name: "pic8259", instance: 0, version: 1, data: mk(40) },
    { name: "pic8259", instance: 1, version: 1, data: mk(40) },
    { name: "empty", instance: 0, version: 7, data: new Uint8Array(0) },
    { name: "vga-ünïcode", instance: 2, version: 2, data: mk(100_000) },
  ];
}

function expectFor(input: SaveInput, overrides: Partial<LoadExpect> = {}): LoadExpect {
  return {
    ramSize: input.ram.length,
    config: input.config,
    unit: (name, instance) => {
      const u = input.units.find((x) => x.name === name && x.instance === instance);
      return u === undefined ? undefined : { minVersion: 1, maxVersion: u.version };
    },
    ...overrides,
  };
}

function tmp(): string {
  return mkdtempSync(join(tmpdir(), "boxvm-ssm-"));
}

function assertSameState(got: { units: SavedUnit[]; restoreRam(into: Uint8Array): void }, input: SaveInput): void {
  assert.deepEqual(
    got.units.map((u) => [u.name, u.instance, u.version, Buffer.from(u.data).toString("hex")]),
    input.units.map((u) => [u.name, u.instance, u.version, Buffer.from(u.data).toString("hex")]),
  );
  const into = new Uint8Array(input.ram.length).fill(0xcc); // garbage that zero pages must overwrite
  got.restoreRam(into);
  assert.ok(Buffer.from(into).equals(Buffer.from(input.ram)), "RAM differs after restore");
}

async function rejectsWith(p: Promise<unknown>, code: string, messagePart?: RegExp): Promise<VBoxError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof VBoxError, `expected VBoxError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    if (messagePart !== undefined) assert.match(e.message, messagePart);
    return e;
  }
  assert.fail(`expected ${code}, but it succeeded`);
}

/** Rewrites the header's CRC after a test edits header bytes. */
function fixHeaderCrc(file: Buffer): void {
  const len = file.readUInt32LE(12);
  file.writeUInt32LE(crc32(file.subarray(0, len - 4)), len - 4);
}

test("round trip through a file: units and RAM identical, progress 0..100 monotonic", async () => {
  const dir = tmp();
  try {
    const input: SaveInput = { units: units(), ram: mixedRam(700), config: CONFIG, createdAt: 1_700_000_000_000 };
    const path = join(dir, "vm.sav");
    const saved: number[] = [];
    await saveStateToFile(path, input, (p) => (saved.push(p), Status.VINF_SUCCESS));
    assert.equal(saved[0], 0);
    assert.equal(saved.at(-1), 100);
    for (let i = 1; i < saved.length; i++)
      assert.ok(saved[i]! > saved[i - 1]!, `progress not monotonic: ${saved.join(",")}`);
    assert.ok(saved.length > 5, "progress is reported along the way");

    const loadedP: number[] = [];
    const st = await loadStateFromFile(path, expectFor(input), (p) => (loadedP.push(p), 0));
    assert.equal(loadedP[0], 0);
    assert.equal(loadedP.at(-1), 100);
    for (let i = 1; i < loadedP.length; i++) assert.ok(loadedP[i]! > loadedP[i - 1]!);
    assertSameState(st, input);
    assert.equal(st.header.ramSize, 700 * PAGE);
    assert.equal(st.header.createdAt, 1_700_000_000_000);
    assert.equal(st.header.config, CONFIG);
    assert.deepEqual(readdirSync(dir), ["vm.sav"], "no temporary file left");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("round trip through a stream, written and read concurrently", async () => {
  const input: SaveInput = { units: units(3), ram: mixedRam(1100, 9), config: CONFIG };
  const pipe = new PassThrough({ highWaterMark: 64 * 1024 });
  const loading = loadStateFromStream(pipe, expectFor(input));
  const progress: number[] = [];
  await saveStateToStream(pipe, input, (p) => (progress.push(p), 0));
  pipe.end();
  const st = await loading;
  assertSameState(st, input);
  assert.equal(progress.at(-1), 100);
});

test("a stream of odd-sized chunks loads the same as the file", async () => {
  const dir = tmp();
  try {
    const input: SaveInput = { units: units(5), ram: mixedRam(300, 5), config: CONFIG };
    const path = join(dir, "a.sav");
    await saveStateToFile(path, input);
    const bytes = readFileSync(path);
    const next = rng(77);
    const pieces: Buffer[] = [];
    for (let o = 0; o < bytes.length;) {
      const n = 1 + (next() % 5000);
      pieces.push(bytes.subarray(o, o + n));
      o += n;
    }
    assertSameState(await loadStateFromStream(Readable.from(pieces), expectFor(input)), input);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("RAM in a SharedArrayBuffer saves and restores", async () => {
  const dir = tmp();
  try {
    const src = mixedRam(260, 4);
    const ram = new Uint8Array(new SharedArrayBuffer(src.length));
    ram.set(src);
    const input: SaveInput = { units: [], ram, config: "{}" };
    await saveStateToFile(join(dir, "s.sav"), input);
    const st = await loadStateFromFile(join(dir, "s.sav"), expectFor(input));
    const into = new Uint8Array(new SharedArrayBuffer(src.length));
    st.restoreRam(into);
    assert.ok(Buffer.from(into).equals(Buffer.from(src)));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("zero RAM and no units make a valid state", async () => {
  const dir = tmp();
  try {
    const input: SaveInput = { units: [], ram: new Uint8Array(0), config: "" };
    await saveStateToFile(join(dir, "z.sav"), input);
    const st = await loadStateFromFile(join(dir, "z.sav"), expectFor(input));
    assert.equal(st.units.length, 0);
    st.restoreRam(new Uint8Array(0));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("page kinds: zero pages elided, random pages raw, regular pages compressed", async () => {
  const dir = tmp();
  try {
    const ram = mixedRam(700);
    const path = join(dir, "k.sav");
    await saveStateToFile(path, { units: [], ram, config: "{}" });
    const r = await inspectStateFile(path);
    assert.equal(r.error, null);
    assert.equal(r.ram.pages, 700);
    assert.equal(r.ram.zeroPages, 200); // p % 7 in {0, 1}
    assert.equal(r.ram.rawPages, 100); // the random pages
    assert.equal(r.ram.compressedPages, 400);
    assert.equal(r.ram.chunks, 3);
    assert.ok(r.ram.deflatedBytes < r.ram.inflatedBytes / 3, "regular pages compress well");
    assert.ok(r.fileSize < ram.length / 2);
    assert.equal(r.fileCrcOk, true);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("cancel from the progress callback returns its code and keeps the earlier file", async () => {
  const dir = tmp();
  try {
    const path = join(dir, "vm.sav");
    const first: SaveInput = { units: units(), ram: mixedRam(600, 1), config: CONFIG };
    await saveStateToFile(path, first);
    const before = readFileSync(path);
    const second: SaveInput = { units: units(8), ram: mixedRam(600, 8), config: CONFIG };
    for (const at of [0, 40, 100]) {
      const seen: number[] = [];
      const e = await rejectsWith(
        saveStateToFile(path, second, (p) => (seen.push(p), p >= at ? Status.VERR_CANCELLED : 0)),
        "VERR_CANCELLED",
        /cancelled/,
      );
      assert.equal(e.rc, Status.VERR_CANCELLED);
      assert.ok(seen.at(-1)! >= at && seen.at(-1)! < at + 20);
      assert.ok(readFileSync(path).equals(before), `file changed after a cancel at ${String(at)}%`);
      assert.deepEqual(readdirSync(dir), ["vm.sav"], "no temporary file left");
    }
    // Any negative code works, even one without a name.
    await rejectsWith(
      saveStateToFile(path, second, () => -12345),
      "rc=-12345",
    );
    assertSameState(await loadStateFromFile(path, expectFor(first)), first);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("cancel while loading returns the callback's code", async () => {
  const dir = tmp();
  try {
    const input: SaveInput = { units: units(), ram: mixedRam(600), config: CONFIG };
    await saveStateToFile(join(dir, "l.sav"), input);
    await rejectsWith(
      loadStateFromFile(join(dir, "l.sav"), expectFor(input), (p) => (p > 30 ? Status.VERR_SSM_CANCELLED : 0)),
      "VERR_SSM_CANCELLED",
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a failed save (missing directory, bad input) leaves nothing behind", async () => {
  const dir = tmp();
  try {
    await rejectsWith(
      saveStateToFile(join(dir, "nope", "x.sav"), { units: [], ram: new Uint8Array(PAGE), config: "" }),
      "VERR_PATH_NOT_FOUND",
    );
    const path = join(dir, "x.sav");
    writeFileSync(path, "old");
    await rejectsWith(
      saveStateToFile(path, { units: [], ram: new Uint8Array(100), config: "" }),
      "VERR_INVALID_PARAMETER",
      /multiple of 4096/,
    );
    const dup = [units()[0]!, units()[0]!];
    await rejectsWith(
      saveStateToFile(path, { units: dup, ram: new Uint8Array(PAGE), config: "" }),
      "VERR_SSM_UNIT_EXISTS",
      /'cpu' instance 0/,
    );
    await rejectsWith(
      saveStateToFile(path, {
        units: [{ name: "", instance: 0, version: 1, data: new Uint8Array(1) }],
        ram: new Uint8Array(0),
        config: "",
      }),
      "VERR_INVALID_PARAMETER",
    );
    assert.equal(readFileSync(path, "utf8"), "old");
    assert.deepEqual(readdirSync(dir), ["x.sav"]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("stale temporary files of dead processes are removed by the next save", async () => {
  const dir = tmp();
  try {
    const stale = join(dir, ".vm.sav.999999999.0badcafe.ssmtmp"); // pid far above any pid_max
    const live = join(dir, `.vm.sav.${String(process.ppid)}.12345678.ssmtmp`);
    writeFileSync(stale, "partial");
    writeFileSync(live, "someone else's");
    await saveStateToFile(join(dir, "vm.sav"), { units: [], ram: new Uint8Array(PAGE), config: "" });
    assert.deepEqual(readdirSync(dir).sort(), [`.vm.sav.${String(process.ppid)}.12345678.ssmtmp`, "vm.sav"]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("load refuses mismatches, naming the unit and the problem", async () => {
  const dir = tmp();
  try {
    const input: SaveInput = { units: units(), ram: mixedRam(64), config: CONFIG };
    const path = join(dir, "m.sav");
    await saveStateToFile(path, input);
    await rejectsWith(
      loadStateFromFile(path, expectFor(input, { ramSize: 128 * PAGE })),
      "VERR_SSM_LOAD_MEMORY_SIZE_MISMATCH",
      /262144 bytes of RAM: this VM has 524288/,
    );
    const other = JSON.stringify({ ram: 4, devices: { pit: { irq: 0 }, uart: { base: 1016, irq: 3 } } });
    await rejectsWith(
      loadStateFromFile(path, expectFor(input, { config: other })),
      "VERR_SSM_LOAD_CONFIG_MISMATCH",
      /\/devices\/uart\/irq: saved 4, this VM 3/,
    );
    await rejectsWith(
      loadStateFromFile(
        path,
        expectFor(input, { unit: (n) => (n === "pic8259" ? undefined : { minVersion: 0, maxVersion: 99 }) }),
      ),
      "VERR_SSM_UNIT_NOT_FOUND",
      /unit 'pic8259' instance 0: this VM has no such unit/,
    );
    await rejectsWith(
      loadStateFromFile(
        path,
        expectFor(input, {
          unit: (n) => (n === "cpu" ? { minVersion: 4, maxVersion: 5 } : { minVersion: 0, maxVersion: 99 }),
        }),
      ),
      "VERR_SSM_UNSUPPORTED_DATA_UNIT_VERSION",
      /unit 'cpu' instance 0: version 3 is not supported \(this VM loads 4\.\.5\)/,
    );
    await rejectsWith(loadStateFromFile(join(dir, "missing.sav"), expectFor(input)), "VERR_FILE_NOT_FOUND");
    await rejectsWith(
      loadStateFromFile(
        path,
        expectFor(input, {
          requiredUnits: [
            { name: "cpu", instance: 0 },
            { name: "hpet", instance: 0 },
          ],
        }),
      ),
      "VERR_SSM_UNIT_NOT_FOUND",
      /unit 'hpet' instance 0: missing from the saved state/,
    );
    const st = await loadStateFromFile(
      path,
      expectFor(input, { requiredUnits: input.units.map((u) => ({ name: u.name, instance: u.instance })) }),
    );
    assert.equal(st.units.length, input.units.length);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("load refuses a damaged file with a precise error", async () => {
  const dir = tmp();
  try {
    const input: SaveInput = { units: units(), ram: mixedRam(300), config: CONFIG };
    const path = join(dir, "d.sav");
    await saveStateToFile(path, input);
    const good = readFileSync(path);
    const bad = join(dir, "bad.sav");
    const tryBytes = async (b: Buffer, code: string, msg?: RegExp): Promise<void> => {
      writeFileSync(bad, b);
      await rejectsWith(loadStateFromFile(bad, expectFor(input)), code, msg);
      const r = await inspectStateFile(bad);
      assert.equal(r.error?.code, code, "inspect finds the same problem");
    };

    let b = Buffer.from(good);
    b[0] = 0x7f;
    await tryBytes(b, "VERR_SSM_INTEGRITY_MAGIC", /bad magic/);

    b = Buffer.from(good);
    b.writeUInt16LE(2, 8);
    fixHeaderCrc(b);
    await tryBytes(b, "VERR_SSM_INTEGRITY_VERSION", /format version 2\.0/);

    b = Buffer.from(good);
    b[40] = (b[40] ?? 0) ^ 1; // the config digest
    await tryBytes(b, "VERR_SSM_INTEGRITY_CRC", /header CRC mismatch/);

    // A flipped byte inside the data of unit 'pic8259' instance 1.
    const hdrLen = good.readUInt32LE(12);
    let off = hdrLen;
    for (const u of input.units) {
      const nameLen = good[off + 20]!;
      const dataAt = off + 21 + nameLen + 4;
      if (u.name === "pic8259" && u.instance === 1) {
        b = Buffer.from(good);
        b[dataAt + 3] = (b[dataAt + 3] ?? 0) ^ 0x10;
        await tryBytes(b, "VERR_SSM_INTEGRITY_CRC", /unit 'pic8259' instance 1: data CRC mismatch/);
      }
      off = dataAt + u.data.length;
    }
    // The first RAM chunk's payload.
    b = Buffer.from(good);
    b[off + 96 + 10] = (b[off + 96 + 10] ?? 0) ^ 0x80;
    await tryBytes(b, "VERR_SSM_INTEGRITY_CRC", /RAM chunk at guest address 0x0: payload CRC mismatch/);

    await tryBytes(good.subarray(0, good.length - 1), "VERR_SSM_INTEGRITY_SIZE", /truncated/);
    await tryBytes(good.subarray(0, off), "VERR_SSM_INTEGRITY_SIZE", /truncated/);
    await tryBytes(Buffer.concat([good, Buffer.from([0])]), "VERR_SSM_INTEGRITY_SIZE", /after the end record/);
    await tryBytes(Buffer.alloc(0), "VERR_SSM_INTEGRITY_SIZE", /truncated/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("restoreRam refuses a target of the wrong size", async () => {
  const input: SaveInput = { units: [], ram: mixedRam(10), config: "" };
  const pipe = new PassThrough();
  const loading = loadStateFromStream(pipe, expectFor(input));
  await saveStateToStream(pipe, input);
  pipe.end();
  const st = await loading;
  assert.throws(
    () => st.restoreRam(new Uint8Array(9 * PAGE)),
    (e: unknown) => e instanceof VBoxError && e.code === "VERR_SSM_LOAD_MEMORY_SIZE_MISMATCH",
  );
});

test("describeConfigDifference names the first differing path", () => {
  assert.equal(describeConfigDifference('{"a":{"b":[1,2]}}', '{"a":{"b":[1,3]}}'), "/a/b/1: saved 2, this VM 3");
  assert.equal(describeConfigDifference('{"a":1}', '{"a":1,"z":true}'), "/z: saved (absent), this VM true");
  assert.equal(describeConfigDifference("not json", "{}"), "the config texts differ");
});

test("a stream that fails or closes mid-save or mid-load gives a clean error, no hang", async () => {
  const input: SaveInput = { units: units(), ram: mixedRam(2000, 3), config: CONFIG };
  // Destroyed by the consumer after some data.
  const w = new PassThrough({ highWaterMark: 16 * 1024 });
  let seen = 0;
  w.on("data", (c: Buffer) => {
    seen += c.length;
    if (seen > 200_000) w.destroy();
  });
  await rejectsWith(saveStateToStream(w, input), "VERR_WRITE_ERROR");
  // Failing with an error.
  const e = new PassThrough({ highWaterMark: 16 * 1024 });
  e.once("data", () => e.destroy(new Error("disk on fire")));
  await rejectsWith(saveStateToStream(e, input), "VERR_WRITE_ERROR", /disk on fire/);
  // A reading stream that errors.
  const r = new PassThrough();
  const loading = loadStateFromStream(r, expectFor(input));
  r.write(Buffer.from([0x89, 0x42, 0x4f]));
  setImmediate(() => r.destroy(new Error("connection reset")));
  await rejectsWith(loading, "VERR_READ_ERROR", /connection reset/);
  // Text instead of bytes.
  await rejectsWith(loadStateFromStream(Readable.from(["text"]), expectFor(input)), "VERR_INVALID_PARAMETER");
});

test("concurrent saves to one target: each completes, the file is one of them, intact", async () => {
  const dir = tmp();
  try {
    const path = join(dir, "c.sav");
    const a: SaveInput = { units: units(11), ram: mixedRam(500, 11), config: CONFIG };
    const b: SaveInput = { units: units(12), ram: mixedRam(500, 12), config: CONFIG };
    await Promise.all([saveStateToFile(path, a), saveStateToFile(path, b)]);
    const st = await loadStateFromFile(path, expectFor(a));
    const isA = Buffer.from(st.units[0]!.data).equals(Buffer.from(a.units[0]!.data));
    assertSameState(st, isA ? a : b);
    assert.deepEqual(readdirSync(dir), ["c.sav"]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("cancel while saving to a stream returns the callback's code", async () => {
  const input: SaveInput = { units: units(), ram: mixedRam(900, 6), config: CONFIG };
  const pipe = new PassThrough();
  pipe.resume();
  const seen: number[] = [];
  await rejectsWith(
    saveStateToStream(pipe, input, (p) => (seen.push(p), p >= 50 ? Status.VERR_INTERRUPTED : 0)),
    "VERR_INTERRUPTED",
  );
  assert.ok(seen.at(-1)! >= 50 && seen.at(-1)! < 100);
});

test("pages that deflate poorly fall back to raw storage", async () => {
  const dir = tmp();
  try {
    // 7-bit random bytes: too few distinct values to look random, yet deflate saves little.
    const next = rng(99);
    const ram = new Uint8Array(300 * PAGE);
    for (let i = 0; i < ram.length; i++) ram[i] = next() & 0x7f;
    const input: SaveInput = { units: [], ram, config: "{}" };
    const path = join(dir, "p.sav");
    await saveStateToFile(path, input);
    const r = await inspectStateFile(path);
    assert.equal(r.error, null);
    assert.deepEqual([r.ram.zeroPages, r.ram.rawPages, r.ram.compressedPages], [0, 300, 0]);
    assertSameState(await loadStateFromFile(path, expectFor(input)), input);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
