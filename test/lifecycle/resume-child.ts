/**
 * Child process of save-restore.test.ts: in a fresh process, creates the machine with the same
 * configuration, loads the saved state, checks it is SUSPENDED with no output yet, resumes, and
 * waits for the guest to power off. Prints one JSON line on stdout:
 * { stateAfterLoad, outputBeforeResume, output, exitStatus }.
 *
 * Usage: node --import tsx resume-child.ts <kernel> <state file>
 */
import { VMSTATE } from "../../src/vm/types.ts";
import { Collector, createMachine, guru, shutdown, watchState } from "./machine.ts";

const [kernel, stateFile] = process.argv.slice(2);
if (kernel === undefined || stateFile === undefined) throw new Error("usage: resume-child.ts <kernel> <state file>");
const vm = await createMachine(kernel, { exitDevice: true });
try {
  const out = new Collector(vm);
  await vm.load(stateFile);
  const stateAfterLoad = vm.stateName;
  const outputBeforeResume = out.text;
  const off = watchState(vm, VMSTATE.OFF, 60_000);
  const fault = guru(vm);
  await vm.resume();
  await Promise.race([off, fault]);
  process.stdout.write(`${JSON.stringify({ stateAfterLoad, outputBeforeResume, output: out.text, exitStatus: vm.exitStatus })}\n`);
} finally {
  await shutdown(vm);
}
