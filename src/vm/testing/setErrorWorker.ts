/**
 * Request functions for tests, called as `{ module, export }` (imported on first use by the EMT).
 */
import type { EmtVM } from "../EmtVM.ts";
import { VMR3Relocate, VMR3SetErrorWorker } from "../vmapi.ts";

/** VMR3SetErrorWorker on the EMT: delivers the error recorded earlier. */
export function deliver(vm: EmtVM): void {
  VMR3SetErrorWorker(vm);
}

/** The sum of the relocation deltas applied so far (and a zero relocation, which changes nothing). */
export function relocDelta(vm: EmtVM): number {
  VMR3Relocate(vm, 0);
  return vm.relocationDelta;
}
