/**
 * Boot test (needs boxvm's CPU; run with `npm run test:boot`): the demo guest's shell on boxvm —
 * typed commands arrive through the UART's receive interrupt (IRQ 4, 8259 PIC, STI; HLT), the
 * guest answers, and `exit 5` ends the machine with status 11. The same checks pass on QEMU in
 * qemu-guests.test.ts.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildDemoGuest, DEMO_PROMPT } from "../../guest/demo.ts";
import { configureRunMachine } from "../../src/cli/commands/run.ts";
import { VM } from "../../src/vm/Vm.ts";
import { VMSTATE } from "../../src/vm/types.ts";
import { ConsoleDriver } from "./driver.ts";

test("demo guest on boxvm: echo, unknown command, exit status through the exit device", async () => {
  const dir = mkdtempSync(join(tmpdir(), "boxvm-boot-"));
  const kernel = join(dir, "demo.elf");
  writeFileSync(kernel, buildDemoGuest());
  const vm = await VM.create({
    config: { RamSize: 64 << 20, Boot: { Kernel: kernel, Cmdline: "from-the-test" } },
    configure: (_vm, root) => configureRunMachine(root, false),
  });
  try {
    const c = vm.console("serial0");
    const d = new ConsoleDriver(c);
    const off = new Promise<void>((r) => vm.onState((_v, s) => s === VMSTATE.OFF && r()));
    await vm.powerOn();
    await d.waitFor(DEMO_PROMPT, 30000);
    assert.match(d.output, /command line: \S*demo\.elf from-the-test/);
    assert.match(d.output, /memory: 64 MiB/);
    assert.match(await d.command("echo hi there", DEMO_PROMPT, 10000), /\r\nhi there\r\n/);
    assert.match(await d.command("bogus", DEMO_PROMPT, 10000), /unknown command: bogus/);
    c.write("exit 5\r");
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      off,
      new Promise((_, rej) => (timer = setTimeout(() => rej(new Error("no power off")), 10000))),
    ]).finally(() => clearTimeout(timer));
    assert.equal(vm.exitStatus, 11);
  } finally {
    if (vm.state !== VMSTATE.OFF) await vm.powerOff();
    await vm.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
});
