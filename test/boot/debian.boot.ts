/**
 * Boot test (needs boxvm's CPU; run with `npm run test:boot`): Debian's 686 kernel with our busybox
 * initramfs boots to the shell on the serial console; the test writes a file through the console
 * with printf and checks `uname -r` and `md5sum` of it. The guest is fetched (boxvm image fetch
 * debian) when not cached; BOXVM_BOOT_TIMEOUT (seconds, default 900) bounds the boot;
 * BOXVM_BOOT_VERBOSE=1 copies the guest's console to stderr.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { fetchDebian, findDebianGuest } from "../../src/cli/commands/image.ts";
import { configureRunMachine, DEBIAN_CMDLINE } from "../../src/cli/commands/run.ts";
import { VM } from "../../src/vm/Vm.ts";
import { VMSTATE } from "../../src/vm/types.ts";
import { ConsoleDriver, linuxConsoleCheck } from "./driver.ts";

const BOOT_MS = Number(process.env["BOXVM_BOOT_TIMEOUT"] ?? "900") * 1000;

test("Debian's kernel boots to a busybox shell on boxvm; uname -r and md5sum agree", { timeout: BOOT_MS + 300000 }, async () => {
  const g = findDebianGuest() ?? (await fetchDebian()).guest;
  const vm = await VM.create({
    config: { RamSize: 128 << 20, Boot: { Kernel: g.kernel, Initrd: g.initrd, Cmdline: DEBIAN_CMDLINE } },
    configure: (_vm, root) => configureRunMachine(root, false),
  });
  try {
    const serial = vm.console("serial0");
    const d = new ConsoleDriver(serial);
    // BOXVM_BOOT_VERBOSE=1 shows the guest's console while the test runs (a boot takes minutes).
    if (process.env["BOXVM_BOOT_VERBOSE"] === "1") serial.onData((b) => process.stderr.write(b));
    const t0 = Date.now();
    await vm.powerOn();
    await d.waitFor("/ # ", BOOT_MS);
    const bootMs = Date.now() - t0;
    const r = await linuxConsoleCheck(d, "/ # ", 120000);
    assert.equal(r.uname, g.kernelVersion);
    assert.equal(r.md5, r.expectMd5);
    process.stderr.write(`# boxvm: Debian ${g.kernelVersion} to the shell in ${(bootMs / 1000).toFixed(1)} s\n`);
  } finally {
    if (vm.state !== VMSTATE.OFF) await vm.powerOff();
    await vm.destroy();
  }
});
