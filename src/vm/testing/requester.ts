/**
 * A requester worker thread (tests, benchmarks): attaches to a VM from a share() descriptor and
 * makes `count` requests `ledgerPut(w, i)` with up to `window` outstanding, checking that the
 * results come back in its own order. Posts { w, count, ordered, errors, ms } to the parent.
 * With `latency: true` it makes `count` sequential echo calls and posts their latencies instead.
 */
import { parentPort, workerData } from "node:worker_threads";
import { VM, type VMShareDescriptor } from "../Vm.ts";

const { desc, w, count, window, latency } = workerData as {
  desc: VMShareDescriptor;
  w: number;
  count: number;
  window: number;
  latency?: boolean;
};
const vm = VM.attach(desc);
if (latency) {
  // Latency mode: `count` sequential round trips of echo; posts the sorted latencies in µs.
  for (let i = 0; i < 200; i++) await vm.call("echo", i);
  const lat: number[] = [];
  for (let i = 0; i < count; i++) {
    const t = process.hrtime.bigint();
    await vm.call("echo", i);
    lat.push(Number(process.hrtime.bigint() - t) / 1000);
  }
  vm.detach();
  parentPort!.postMessage({ lat: lat.sort((a, b) => a - b) });
  process.exit(0);
}
const t0 = performance.now();
let last = 0;
let ordered = true;
let errors = 0;
let next = 0;
const results: Promise<void>[] = [];
async function one(i: number): Promise<void> {
  try {
    const g = (await vm.call("ledgerPut", w, i)) as number;
    if (g <= last) ordered = false;
    last = g;
  } catch {
    errors++;
  }
}
while (next < count) {
  const batch: Promise<void>[] = [];
  for (let k = 0; k < window && next < count; k++) batch.push(one(next++));
  await Promise.all(batch);
  results.length = 0;
}
vm.detach();
parentPort!.postMessage({ w, count, ordered, errors, ms: performance.now() - t0 });
