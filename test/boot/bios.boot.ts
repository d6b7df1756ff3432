/**
 * Boot test (needs boxvm's CPU; run with `npm run test:boot`): `--bios` — the test ROM (guest/testbios.ts)
 * from the reset vector in real mode: POST code 0x55 on port 0x80, "bios ok" on COM1, exit status 0x21.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BIOS_POST_CODE, buildTestBios } from "../../guest/testbios.ts";
import { configureRunMachine } from "../../src/cli/commands/run.ts";
import { VM } from "../../src/vm/Vm.ts";
import { VMSTATE } from "../../src/vm/types.ts";
import { ConsoleDriver } from "./driver.ts";

test("test BIOS on boxvm: reset vector, real mode, POST code, serial, exit status", async () => {
  const dir = mkdtempSync(join(tmpdir(), "boxvm-boot-"));
  const rom = join(dir, "bios.bin");
  writeFileSync(rom, buildTestBios("bios ok", 0x10));
  const vm = await VM.create({
    config: { RamSize: 16 << 20, Boot: { Bios: rom } },
    configure: (_vm, root) => configureRunMachine(root, true),
  });
  try {
    const d = new ConsoleDriver(vm.console("serial0"));
    const post: number[] = [];
    vm.console("post").onData((b) => post.push(...b));
    const off = new Promise<void>((r) => vm.onState((_v, s) => s === VMSTATE.OFF && r()));
    await vm.powerOn();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      off,
      new Promise((_, rej) => (timer = setTimeout(() => rej(new Error(`no power off; output: ${d.output}`)), 30000))),
    ]).finally(() => clearTimeout(timer));
    assert.match(d.output, /bios ok\r\n/);
    assert.deepEqual(post, [BIOS_POST_CODE]);
    assert.equal(vm.exitStatus, 0x21);
  } finally {
    if (vm.state !== VMSTATE.OFF) await vm.powerOff();
    await vm.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
});
