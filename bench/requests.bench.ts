/**
 * Request round trip (API side → EMT → API side, `vm.call("echo", i)` awaited one at a time):
 * p50/p99 with the EMT idle (VM suspended: the EMT sleeps in VMR3Wait) and busy: the VM running
 * (the CPU executes whatever the boot code left it, in slices of about 200 µs) and the VM running
 * with a test device keeping the EMT in CPU-bound timer callbacks (`BusyUs` at a time, back to
 * back), from the main thread. Each case runs three rounds; the medians of the rounds are printed.
 */
import { Worker } from "node:worker_threads";
import { VM } from "../src/vm/Vm.ts";

const FNS = new URL("../src/vm/testing/reqfns.ts", import.meta.url).href;

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1]!;
}

async function rounds(vm: VM, n: number): Promise<{ p50: number; p99: number }> {
  const p50s: number[] = [];
  const p99s: number[] = [];
  for (let r = 0; r < 3; r++) {
    const lat: number[] = [];
    for (let i = 0; i < 200; i++) await vm.call("echo", i); // warm-up
    for (let i = 0; i < n; i++) {
      const t = process.hrtime.bigint();
      await vm.call("echo", i);
      lat.push(Number(process.hrtime.bigint() - t) / 1000);
    }
    lat.sort((a, b) => a - b);
    p50s.push(pct(lat, 0.5));
    p99s.push(pct(lat, 0.99));
  }
  return { p50: median(p50s), p99: median(p99s) };
}

/** The benchmark. */
export default async function requestsBench(): Promise<void> {
  const idle = await VM.create({ modules: [FNS] });
  await idle.powerOn();
  await idle.suspend();
  const a = await rounds(idle, 3000);
  console.log(`request round trip, EMT idle (suspended): p50 ${a.p50.toFixed(1)} µs  p99 ${a.p99.toFixed(1)} µs  (3 × 3000, medians)`);
  const wl: number[][] = [];
  for (let r = 0; r < 3; r++) {
    const desc = idle.share();
    const worker = new Worker(new URL("../src/vm/testing/requester.mjs", import.meta.url), {
      workerData: { desc, w: 0, count: 3000, window: 1, latency: true },
      transferList: desc.transfer,
    });
    wl.push(await new Promise<number[]>((resolve, reject) => {
      worker.once("message", (m: { lat: number[] }) => resolve(m.lat));
      worker.once("error", reject);
    }));
  }
  console.log(
    `request round trip, EMT idle (suspended), from another worker thread: p50 ${median(wl.map((l) => pct(l, 0.5))).toFixed(1)} µs  p99 ${median(wl.map((l) => pct(l, 0.99))).toFixed(1)} µs  (3 × 3000, medians)`,
  );
  await idle.resume();
  const r = await rounds(idle, 500);
  const ins = (await idle.stats("/CPU/Instructions"))[0]?.value ?? 0;
  console.log(`request round trip, VM running (CPU executed ${String(ins)} instructions): p50 ${r.p50.toFixed(1)} µs  p99 ${r.p99.toFixed(1)} µs  (3 × 500, medians)`);
  await idle.powerOff();
  await idle.destroy();

  for (const busyUs of [100, 1000]) {
    const busy = await VM.create({
      modules: [FNS],
      config: { Devices: { "test-busy": { "0": { Config: { BusyUs: busyUs, PeriodUs: 0 } } } } },
    });
    await busy.powerOn();
    const b = await rounds(busy, 500);
    console.log(
      `request round trip, EMT busy (${String(busyUs)} µs CPU-bound timer callbacks back to back): p50 ${b.p50.toFixed(1)} µs  p99 ${b.p99.toFixed(1)} µs  (3 × 500, medians)`,
    );
    await busy.powerOff();
    await busy.destroy();
  }
}
