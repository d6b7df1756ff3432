/**
 * Requests from many threads at once: 8 worker threads × 10,000 requests into one VM, plus the
 * main thread. None lost, none run twice, each requester's results in its order.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { Worker } from "node:worker_threads";
import { VM } from "./Vm.ts";

const FNS = new URL("./testing/reqfns.ts", import.meta.url).href;
const WORKERS = 8;
const COUNT = 10_000;

test("8 worker threads × 10,000 requests into one VM", async () => {
  const vm = await VM.create({ modules: [FNS] });
  try {
    await vm.powerOn();
    const runs = Array.from({ length: WORKERS }, (_, w) => {
      const desc = vm.share();
      const worker = new Worker(new URL("./testing/requester.mjs", import.meta.url), {
        workerData: { desc, w, count: COUNT, window: 1 + (w % 4) * 16 },
        transferList: desc.transfer,
      });
      return new Promise<{ w: number; count: number; ordered: boolean; errors: number }>((resolve, reject) => {
        worker.once("message", resolve);
        worker.once("error", reject);
      });
    });
    // The main thread keeps requesting too, in order.
    const mainDone = (async () => {
      let last = 0;
      for (let i = 0; i < 500; i++) {
        const g = (await vm.call("ledgerPut", 99, i)) as number;
        assert.ok(g > last);
        last = g;
      }
    })();
    const results = await Promise.all(runs);
    await mainDone;
    for (const r of results) {
      assert.equal(r.errors, 0, `worker ${String(r.w)} errors`);
      assert.equal(r.ordered, true, `worker ${String(r.w)} results out of order`);
    }
    const ledger = (await vm.call("ledgerGet")) as { w: number; next: number; bad: number; total: number }[];
    for (let w = 0; w < WORKERS; w++) {
      const e = ledger.find((x) => x.w === w);
      assert.ok(e, `worker ${String(w)} never reached the EMT`);
      assert.equal(e.next, COUNT, `worker ${String(w)}: requests lost`);
      assert.equal(e.bad, 0, `worker ${String(w)}: requests run out of order or twice`);
    }
    assert.equal(ledger[0]!.total, WORKERS * COUNT + 500, "total requests run on the EMT");
    const stats = await vm.stats("/VM/EMT/Requests");
    assert.ok(stats[0]!.value >= WORKERS * COUNT + 500);
  } finally {
    await vm.powerOff();
    await vm.destroy();
  }
});
