/**
 * The lifecycle guests checked on QEMU (qemu-system-i386), independently of boxvm: the crunch
 * guest prints exactly what the JavaScript reference computes and exits through isa-debug-exit;
 * the triple-fault guest boots a second time after its triple fault (QEMU resets; CMOS RAM keeps
 * the count). Skipped when QEMU is not installed. (The hostile guest is not run on QEMU: its PC
 * has ACPI, whose power-off port random writes hit.)
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildCrunchGuest, crunchReference, CRUNCH_EXIT_CODE } from "../../guest/crunch.ts";
import { buildTripleFaultGuest } from "../../guest/triplefault.ts";
import { ConsoleDriver, have, qemuConsole } from "../boot/driver.ts";

const QEMU = have("qemu-system-i386");
const skip = !QEMU && "qemu-system-i386 not installed";

function tempFile(name: string, bytes: Uint8Array): { path: string; done: () => void } {
  const dir = mkdtempSync(join(tmpdir(), "boxvm-qemu-"));
  const path = join(dir, name);
  writeFileSync(path, bytes);
  return { path, done: () => rmSync(dir, { recursive: true, force: true }) };
}

test("crunch guest on QEMU: the reference output and the exit status", { skip }, async () => {
  const p = { chunks: 6, perChunk: 20_000 };
  const f = tempFile("crunch.elf", buildCrunchGuest(p));
  try {
    const q = qemuConsole(["-m", "16", "-kernel", f.path, "-device", "isa-debug-exit,iobase=0xf4,iosize=4"]);
    const d = new ConsoleDriver(q.console);
    try {
      assert.equal(await q.exited, (CRUNCH_EXIT_CODE << 1) | 1);
      const from = d.output.indexOf("CRUNCH START");
      assert.ok(from >= 0, d.output);
      assert.equal(d.output.slice(from), crunchReference(p).output);
    } finally {
      q.proc.kill();
    }
  } finally {
    f.done();
  }
});

for (const how of ["int3", "gp"] as const) {
  test(`triple-fault guest (${how}) on QEMU: boots a second time`, { skip }, async () => {
    const f = tempFile("triplefault.elf", buildTripleFaultGuest(how));
    try {
      // Not qemuConsole: it passes -no-reboot, and this guest needs the reset.
      const proc = spawn("qemu-system-i386", ["-nographic", "-m", "16", "-kernel", f.path], { stdio: ["pipe", "pipe", "pipe"] });
      const q = { proc };
      const d = new ConsoleDriver({
        onData: (cb) => proc.stdout.on("data", (b: Buffer) => cb(new Uint8Array(b))),
        write: (b) => proc.stdin.write(b),
      });
      try {
        await d.waitFor("SECOND BOOT OK\r\n", 20_000);
        assert.match(d.output, /BOOT 01\r\nTRIPLE FAULT NOW\r\n[^]*BOOT 02\r\nSECOND BOOT OK\r\n/);
        assert.ok(!d.output.includes("FAULT DID NOT HAPPEN"));
      } finally {
        q.proc.kill();
      }
    } finally {
      f.done();
    }
  });
}
