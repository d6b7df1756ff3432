/**
 * Debian's kernel with the initramfs our cpio writer built, booted by QEMU (qemu-system-i386,
 * Debian package qemu-system-x86): validates the kernel, the initramfs and /init independently of
 * boxvm's CPU, and prints QEMU's boot-to-shell time. Slow (a full Linux boot), so it runs with the
 * boot tests (npm run test:boot). Skipped without QEMU or a cached guest (boxvm image fetch debian).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { findDebianGuest } from "../../src/cli/commands/image.ts";
import { ConsoleDriver, have, linuxConsoleCheck, qemuConsole } from "./driver.ts";

const QEMU = have("qemu-system-i386");
const guest = findDebianGuest();
test(
  "Debian's kernel + our initramfs on QEMU: shell, uname -r, md5sum of a file typed through the console",
  { skip: (!QEMU && "qemu-system-i386 not installed") || (!guest && "no cached Debian guest (boxvm image fetch debian)") },
  async () => {
    const g = guest!;
    const t0 = Date.now();
    const q = qemuConsole(["-m", "128", "-kernel", g.kernel, "-initrd", g.initrd, "-append", "console=ttyS0"]);
    const d = new ConsoleDriver(q.console);
    try {
      await d.waitFor("/ # ", 120000);
      const bootMs = Date.now() - t0;
      const r = await linuxConsoleCheck(d, "/ # ", 30000);
      assert.equal(r.uname, g.kernelVersion);
      assert.equal(r.md5, r.expectMd5);
      process.stderr.write(`# QEMU: Debian ${g.kernelVersion} to the shell in ${(bootMs / 1000).toFixed(1)} s\n`);
    } finally {
      q.proc.kill();
    }
  },
);
