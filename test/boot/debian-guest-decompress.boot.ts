/**
 * Boot test (needs boxvm's CPU; `npm run test:boot`): Debian's kernel with /Boot/HostDecompress 0,
 * so the kernel's own XZ decompressor runs in the guest (the path boxvm took before the loader
 * learnt to decompress on the host, and the one every non-XZ kernel still takes). The test waits
 * for the kernel's first console line, "Linux version", which the decompressed kernel prints right
 * after the guest-side decompressor jumped to it; the default path is covered to the shell by
 * debian.boot.ts. BOXVM_BOOT_TIMEOUT (seconds, default 900) bounds the wait.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { fetchDebian, findDebianGuest } from "../../src/cli/commands/image.ts";
import { DEBIAN_CMDLINE } from "../../src/cli/commands/run.ts";
import { VM } from "../../src/vm/Vm.ts";
import { VMSTATE } from "../../src/vm/types.ts";
import { ConsoleDriver } from "./driver.ts";

const BOOT_MS = Number(process.env["BOXVM_BOOT_TIMEOUT"] ?? "900") * 1000;

test(
  'Debian\'s kernel decompresses itself in the guest (HostDecompress 0) and starts: "Linux version"',
  { timeout: BOOT_MS + 60000 },
  async () => {
    const g = findDebianGuest() ?? (await fetchDebian()).guest;
    const vm = await VM.create({
      config: {
        RamSize: 128 << 20,
        Boot: { Kernel: g.kernel, Initrd: g.initrd, Cmdline: DEBIAN_CMDLINE, HostDecompress: 0 },
      },
    });
    try {
      const serial = vm.console("serial0");
      const d = new ConsoleDriver(serial);
      if (process.env["BOXVM_BOOT_VERBOSE"] === "1") serial.onData((b) => process.stderr.write(b));
      const t0 = Date.now();
      await vm.powerOn();
      await d.waitFor("Linux version", BOOT_MS);
      const ms = Date.now() - t0;
      await d.waitFor("\n", 60000, d.output.indexOf("Linux version"));
      assert.ok(d.output.includes(`Linux version ${g.kernelVersion}`), d.output.slice(-500));
      process.stderr.write(
        `# boxvm: Debian ${g.kernelVersion}, guest-side decompression, "Linux version" after ${(ms / 1000).toFixed(1)} s\n`,
      );
    } finally {
      if (vm.alive && vm.state !== VMSTATE.OFF) await vm.powerOff();
      if (vm.alive) await vm.destroy();
    }
  },
);
