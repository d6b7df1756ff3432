/**
 * boxvm as a benchmark subject: our VM API in this process (the EMT is a worker thread), the
 * machine `boxvm run` builds for Debian (the default PC plus the exit device), the serial console
 * through vm.console("serial0"). `hostDecompress` false makes the kernel decompress itself in the
 * guest (Boot/HostDecompress 0), as the peers do. Power-on is the powerOn() call; VM.create (thread start, machine
 * construction) comes before it and is not counted.
 */
import { configureRunMachine } from "../../src/cli/commands/run.ts";
import { VM } from "../../src/vm/Vm.ts";
import { VMSTATE } from "../../src/vm/types.ts";
import { processCpuSeconds, type GuestRun } from "./serial.ts";

/** Creates the VM and powers it on. */
export async function startBoxvm(
  kernel: string,
  initrd: string,
  cmdline: string,
  ramMiB: number,
  hostDecompress = true,
): Promise<GuestRun> {
  const vm = await VM.create({
    config: {
      RamSize: ramMiB * 1024 * 1024,
      Boot: { Kernel: kernel, Initrd: initrd, Cmdline: cmdline, HostDecompress: hostDecompress ? 1 : 0 },
    },
    configure: (_vm, root) => configureRunMachine(root, false),
  });
  const con = vm.console("serial0");
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    if (vm.state !== VMSTATE.OFF && vm.state !== VMSTATE.CREATED) await vm.powerOff();
    await vm.destroy();
  };
  const cpu0 = processCpuSeconds();
  const t0 = performance.now();
  try {
    await vm.powerOn();
  } catch (e) {
    await stop();
    throw e;
  }
  return {
    t0,
    serial: {
      onData: (cb) => {
        con.onData(cb);
      },
      write: (text) => con.write(text),
    },
    cpuSeconds: processCpuSeconds,
    cpu0,
    stop,
  };
}
