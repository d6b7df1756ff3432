/**
 * boxvm's own guests (guest/) checked on QEMU (qemu-system-i386, Debian package qemu-system-x86),
 * independently of boxvm's CPU. Skipped when QEMU is not installed.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildDemoGuest, DEMO_PROMPT } from "../../guest/demo.ts";
import { buildHelloGuest } from "../../guest/hello.ts";
import { buildTestBios } from "../../guest/testbios.ts";
import { ConsoleDriver, have, qemuConsole } from "./driver.ts";

const QEMU = have("qemu-system-i386");
const EXIT_DEV = ["-device", "isa-debug-exit,iobase=0xf4,iosize=4"];

function tempFile(name: string, bytes: Uint8Array): { path: string; done: () => void } {
  const dir = mkdtempSync(join(tmpdir(), "boxvm-qemu-"));
  const path = join(dir, name);
  writeFileSync(path, bytes);
  return { path, done: () => rmSync(dir, { recursive: true, force: true }) };
}

test("hello guest on QEMU: prints, sees the Multiboot magic, exits with (0x21 << 1) | 1", { skip: !QEMU && "qemu-system-i386 not installed" }, async () => {
  const f = tempFile("hello.elf", buildHelloGuest("hello from the test", 0x21));
  try {
    const q = qemuConsole(["-m", "32", "-kernel", f.path, ...EXIT_DEV]);
    const d = new ConsoleDriver(q.console);
    const code = await q.exited;
    assert.match(d.output, /hello from the test\r\nmagic ok/);
    assert.equal(code, 0x43);
  } finally {
    f.done();
  }
});

test("demo guest on QEMU: shell commands over the serial port, exit status from the exit device", { skip: !QEMU && "qemu-system-i386 not installed" }, async () => {
  const f = tempFile("demo.elf", buildDemoGuest());
  try {
    const q = qemuConsole(["-m", "64", "-kernel", f.path, "-append", "from-the-test", ...EXIT_DEV]);
    const d = new ConsoleDriver(q.console);
    try {
      await d.waitFor(DEMO_PROMPT, 20000);
      assert.match(d.output, /command line: \S*demo\.elf from-the-test/);
      assert.match(await d.command("echo hi there", DEMO_PROMPT, 5000), /\r\nhi there\r\n/);
      assert.match(await d.command("bogus", DEMO_PROMPT, 5000), /unknown command: bogus/);
      d.command("exit 5", DEMO_PROMPT, 100).catch(() => undefined);
      assert.equal(await q.exited, 11);
    } finally {
      q.proc.kill();
    }
  } finally {
    f.done();
  }
});

test("test BIOS ROM on QEMU (-bios): reset vector, real mode, serial, exit status 0x21", { skip: !QEMU && "qemu-system-i386 not installed" }, async () => {
  const f = tempFile("bios.bin", buildTestBios("bios ok", 0x10));
  try {
    const q = qemuConsole(["-m", "16", "-bios", f.path, ...EXIT_DEV]);
    const d = new ConsoleDriver(q.console);
    assert.equal(await q.exited, 0x21);
    assert.match(d.output, /bios ok\r\n/);
  } finally {
    f.done();
  }
});
