/**
 * Child process of debian.boot.ts: a new VM with the given configuration loads a saved state,
 * resumes, types one command line on the serial console and prints what the guest answered
 * (up to the next shell prompt) as JSON on stdout. Arguments: <state file> <config JSON> <command>.
 */
import { VM } from "../../src/vm/Vm.ts";
import { ConsoleDriver } from "./driver.ts";

const [state, configJson, command] = process.argv.slice(2);
if (state === undefined || configJson === undefined || command === undefined) {
  console.error("usage: restore-child.ts <state file> <config JSON> <command>");
  process.exit(2);
}
const vm = await VM.create({ config: JSON.parse(configJson) as Record<string, unknown> });
const d = new ConsoleDriver(vm.console("serial0"));
await vm.load(state);
const loadedState = vm.stateName;
await vm.resume();
const answer = await d.command(command, "/ # ", 120000);
await vm.powerOff();
await vm.destroy();
process.stdout.write(JSON.stringify({ loadedState, answer }));
