/**
 * Boot test (needs boxvm's CPU; run with `npm run test:boot`): the hello guest through boxvm's
 * Multiboot loader, CPU, UART, POST port and exit device — serial output, POST code, exit status.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildHelloGuest, POST_CODE } from "../../guest/hello.ts";
import { VM } from "../../src/vm/Vm.ts";
import { VMSTATE } from "../../src/vm/types.ts";
import { configureRunMachine } from "../../src/cli/commands/run.ts";
import { ConsoleDriver } from "./driver.ts";

test("hello guest on boxvm: prints, sees the Multiboot magic, powers off with status 0x43", async () => {
  const dir = mkdtempSync(join(tmpdir(), "boxvm-boot-"));
  const kernel = join(dir, "hello.elf");
  writeFileSync(kernel, buildHelloGuest("hello from boxvm", 0x21));
  const vm = await VM.create({
    config: { RamSize: 32 << 20, Boot: { Kernel: kernel } },
    configure: (_vm, root) => configureRunMachine(root, true),
  });
  try {
    const d = new ConsoleDriver(vm.console("serial0"));
    const post: number[] = [];
    vm.console("post").onData((b) => post.push(...b));
    const off = new Promise<void>((r) => vm.onState((_v, s) => s === VMSTATE.OFF && r()));
    await vm.powerOn();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise((_, rej) => {
      timer = setTimeout(() => rej(new Error(`no power off; output: ${d.output}`)), 30000);
    });
    await Promise.race([off, timeout]).finally(() => clearTimeout(timer));
    assert.match(d.output, /hello from boxvm\r\nmagic ok/);
    assert.equal(vm.exitStatus, 0x43);
    assert.deepEqual(post, [POST_CODE]);
  } finally {
    if (vm.state !== VMSTATE.OFF) await vm.powerOff();
    await vm.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
});
