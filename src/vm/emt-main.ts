/**
 * The EMT worker's entry (loaded by emt-worker.mjs): imports the device models and the modules
 * the VM was created with, builds the machine, reports ready (or the construction error) and runs
 * the execution loop until the VM is destroyed.
 */
import { workerData } from "node:worker_threads";
import { CfgmNode } from "../cfgm/CfgmNode.ts";
import "../devices/index.ts";
import { moduleUrl } from "../req/registry.ts";
import type { EmtInit, FromEmt } from "../req/shared.ts";
import { EmtVM } from "./EmtVM.ts";
import { Status, VBoxError } from "./err.ts";

const init = workerData as EmtInit;

function fail(e: unknown): void {
  const rc = e instanceof VBoxError ? e.rc : Status.VERR_INTERNAL_ERROR;
  const msg = e instanceof Error ? e.message : String(e);
  const out: FromEmt = { t: "ready", rc, msg };
  init.port.postMessage(out);
  init.port.close();
}

let vm: EmtVM | null = null;
try {
  for (const m of init.modules) await import(moduleUrl(m));
  const cfg = CfgmNode.fromPlain(init.cfg);
  vm = new EmtVM(cfg, init.ram, init.ctl, init.port, init.client);
} catch (e) {
  fail(e);
}
if (vm) {
  vm.ready();
  const out: FromEmt = { t: "ready", rc: Status.VINF_SUCCESS };
  init.port.postMessage(out);
  await vm.run();
}
