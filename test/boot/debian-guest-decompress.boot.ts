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
import { debianVm } from "./driver.ts";

const BOOT_MS = Number(process.env["BOXVM_BOOT_TIMEOUT"] ?? "900") * 1000;

test(
  'Debian\'s kernel decompresses itself in the guest (HostDecompress 0) and starts: "Linux version"',
  { timeout: BOOT_MS + 60000 },
  async () => {
    const { guest: g, vm, console: d, dispose } = await debianVm({ HostDecompress: 0 });
    try {
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
      await dispose();
    }
  },
);
