/**
 * Saved-state speed: save and load (verify + restoreRam) of 128 MiB and 512 MiB guest RAM, for
 * "mostly zero" RAM (90% zero pages, 10% regular text-like pages that deflate well) and "half random"
 * RAM (every other 64 KiB run of pages random, the rest zero); and, for information, 128 MiB of
 * "mostly zero text" (as mostly zero, but the non-zero pages hold English-like text). Prints median
 * times (wall and CPU) and file sizes. Target: 128 MiB save and load each ≤ 150 ms.
 *
 * Run alone: node --import tsx -e "import('./bench/ssm.bench.ts').then(m => m.default())"
 */
import { randomFillSync } from "node:crypto";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadStateFromFile, saveStateToFile, type SaveInput } from "../src/ssm/SsmFile.ts";

const MiB = 1024 * 1024;
/** The goal for 128 MiB: save and load each within this. */
const TARGET_MS = 150;
const PAGE = 4096;

/** One measured case. */
export interface SsmBenchResult {
  name: string;
  ramMiB: number;
  runs: number;
  saveMs: number;
  loadMs: number;
  /** CPU time (user + system, all threads of the process) of the median runs, for a loaded machine. */
  saveCpuMs: number;
  loadCpuMs: number;
  fileBytes: number;
}

function mostlyZero(size: number): Uint8Array {
  const ram = new Uint8Array(size);
  for (let p = 0; p < size / PAGE; p++) {
    if (p % 10 !== 3) continue;
    const o = p * PAGE;
    for (let i = 0; i < PAGE; i += 8) {
      ram[o + i] = (p + i) & 0xff; // counters and small integers
      ram[o + i + 4] = 0x20 + ((i >> 3) % 64); // text-like bytes
    }
  }
  return ram;
}

/** Like mostlyZero, but the non-zero pages hold text (words from a small vocabulary): deflate is slower on it. */
function mostlyZeroText(size: number): Uint8Array {
  const ram = new Uint8Array(size);
  const words = (
    "the of and to in is that for it as was with be by on not he this are or his from at which but have an they " +
    "you were her she there been one all we their has would when if so no what up out who them some more into only " +
    "other time could its than then like now over such our man me even most made after also did many off before " +
    "must well back through years where much your way down should because each just those people"
  ).split(" ");
  const enc = new TextEncoder();
  let s = 1;
  for (let p = 0; p < size / PAGE; p++) {
    if (p % 10 !== 3) continue;
    for (let o = p * PAGE, end = o + PAGE; o < end;) {
      s = (Math.imul(s, 1103515245) + 12345) >>> 0;
      const w = enc.encode(`${words[(s >>> 16) % words.length]!}${(s & 15) === 0 ? ".\n" : " "}`);
      const n = Math.min(w.length, end - o);
      ram.set(w.subarray(0, n), o);
      o += n;
    }
  }
  return ram;
}

function halfRandom(size: number): Uint8Array {
  const ram = new Uint8Array(size);
  const run = 64 * 1024;
  for (let o = 0; o < size; o += 2 * run) randomFillSync(ram, o, Math.min(run, size - o));
  return ram;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

async function measure(name: string, ram: Uint8Array, runs: number, dir: string): Promise<SsmBenchResult> {
  const input: SaveInput = {
    units: [{ name: "cpu", instance: 0, version: 1, data: new Uint8Array(4096) }],
    ram,
    config: '{"bench":true}',
  };
  const path = join(dir, `${name}.sav`);
  const target = new Uint8Array(ram.length).fill(1); // a warm, dirty guest RAM to restore into
  const expect = { ramSize: ram.length, config: input.config, unit: () => ({ minVersion: 1, maxVersion: 1 }) };
  const saves: number[] = [];
  const loads: number[] = [];
  const saveCpu: number[] = [];
  const loadCpu: number[] = [];
  const cpuMs = (u: NodeJS.CpuUsage): number => (u.user + u.system) / 1000;
  for (let i = 0; i < runs; i++) {
    let c = process.cpuUsage();
    let t = performance.now();
    await saveStateToFile(path, input);
    saves.push(performance.now() - t);
    saveCpu.push(cpuMs(process.cpuUsage(c)));
    c = process.cpuUsage();
    t = performance.now();
    const st = await loadStateFromFile(path, expect);
    st.restoreRam(target);
    loads.push(performance.now() - t);
    loadCpu.push(cpuMs(process.cpuUsage(c)));
  }
  if (!Buffer.from(target).equals(Buffer.from(ram))) throw new Error(`${name}: restored RAM differs`);
  return {
    name,
    ramMiB: ram.length / MiB,
    runs,
    saveMs: median(saves),
    loadMs: median(loads),
    saveCpuMs: median(saveCpu),
    loadCpuMs: median(loadCpu),
    fileBytes: statSync(path).size,
  };
}

/** Runs the cases and prints a table; returns the figures. */
export default async function ssmBench(): Promise<SsmBenchResult[]> {
  const dir = mkdtempSync(join(tmpdir(), "boxvm-ssm-bench-"));
  const results: SsmBenchResult[] = [];
  try {
    const sizes: [number, number][] = [
      [128, 7],
      [512, 3],
    ];
    for (const [mib, runs] of sizes) {
      const cases: [string, (n: number) => Uint8Array][] = [
        ["mostly-zero", mostlyZero],
        ["half-random", halfRandom],
      ];
      // Informative, outside the target: the non-zero pages are text, which deflate works harder on.
      if (mib === 128) cases.push(["mostly-zero-text", mostlyZeroText]);
      for (const [name, make] of cases) {
        const r = await measure(`${name}-${String(mib)}MiB`, make(mib * MiB), runs, dir);
        results.push(r);
        console.log(
          `ssm ${r.name.padEnd(22)} save ${r.saveMs.toFixed(1).padStart(7)} ms (cpu ${r.saveCpuMs.toFixed(0).padStart(4)})  load ${r.loadMs.toFixed(1).padStart(7)} ms (cpu ${r.loadCpuMs.toFixed(0).padStart(4)})  file ${(r.fileBytes / MiB).toFixed(2).padStart(8)} MiB  (medians of ${String(r.runs)})`,
        );
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  for (const r of results.filter((x) => x.ramMiB === 128 && !x.name.includes("text"))) {
    const ok = r.saveMs <= TARGET_MS && r.loadMs <= TARGET_MS;
    console.log(`ssm ${r.name}: target save and load <= ${String(TARGET_MS)} ms each: ${ok ? "met" : "MISSED"}`);
  }
  return results;
}
