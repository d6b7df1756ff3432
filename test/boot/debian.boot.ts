/**
 * Boot test (needs boxvm's CPU; run with `npm run test:boot`): Debian's 686 kernel with our busybox
 * initramfs boots to the shell on the serial console; the test writes a file through the console
 * with printf and checks `uname -r` and `md5sum` of it. The guest is fetched (boxvm image fetch
 * debian) when not cached; BOXVM_BOOT_TIMEOUT (seconds, default 900) bounds the boot;
 * BOXVM_BOOT_VERBOSE=1 copies the guest's console to stderr.
 *
 * Then the booted guest is suspended and saved, the VM destroyed, and the state loaded into a VM
 * in a NEW PROCESS (restore-child.ts), where the shell still has the variable and the tmpfs file
 * made before the save.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { debianVm, linuxConsoleCheck } from "./driver.ts";

const BOOT_MS = Number(process.env["BOXVM_BOOT_TIMEOUT"] ?? "900") * 1000;

test("Debian's kernel boots to a busybox shell on boxvm; uname -r and md5sum agree", { timeout: BOOT_MS + 300000 }, async () => {
  // The default PC as configured (the child process builds the same machine from the same config).
  const { guest: g, config, vm, console: d, dispose } = await debianVm();
  const dir = mkdtempSync(join(tmpdir(), "boxvm-debian-"));
  try {
    const t0 = Date.now();
    await vm.powerOn();
    await d.waitFor("/ # ", BOOT_MS);
    const bootMs = Date.now() - t0;
    const r = await linuxConsoleCheck(d, "/ # ", 120000);
    assert.equal(r.uname, g.kernelVersion);
    assert.equal(r.md5, r.expectMd5);
    process.stderr.write(`# boxvm: Debian ${g.kernelVersion} to the shell in ${(bootMs / 1000).toFixed(1)} s\n`);

    // Save the running shell and carry on in another process.
    await d.command("KEPT=$((6*7)); echo before-save > /tmp/mark", "/ # ", 120000);
    await vm.suspend();
    const file = join(dir, "debian.sav");
    await vm.save(file);
    assert.ok(statSync(file).size > 1 << 20, "a saved state with the guest's RAM");
    await vm.powerOff();
    await vm.destroy();
    const child = spawnSync(
      process.execPath,
      ["--import", "tsx", join(import.meta.dirname, "restore-child.ts"), file, JSON.stringify(config), "echo kept-$KEPT; cat /tmp/mark; uname -r"],
      { encoding: "utf8", timeout: 300000 },
    );
    assert.equal(child.status, 0, `the child failed: ${child.stderr}`);
    const r2 = JSON.parse(child.stdout) as { loadedState: string; answer: string };
    assert.equal(r2.loadedState, "SUSPENDED");
    assert.match(r2.answer, /kept-42\r?\n/);
    assert.match(r2.answer, /before-save\r?\n/);
    assert.ok(r2.answer.includes(g.kernelVersion), r2.answer);
  } finally {
    await dispose();
    rmSync(dir, { recursive: true, force: true });
  }
});
