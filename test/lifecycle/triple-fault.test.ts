/**
 * Issue 4: a triple fault in the guest resets the machine. The triplefault guest
 * (guest/triplefault.ts) counts its boots in CMOS RAM and triple-faults on the first; the test
 * sees the second boot, the VM still RUNNING (never GURU_MEDITATION), one reset in STAM
 * (/VM/EMT/Resets) and one API-side reset callback.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildTripleFaultGuest, type TripleFaultHow } from "../../guest/triplefault.ts";
import { VMSTATE } from "../../src/vm/types.ts";
import { Collector, createMachine, guru, shutdown, stat } from "./machine.ts";

for (const how of ["int3", "gp"] as const satisfies readonly TripleFaultHow[]) {
  test(`a triple fault (${how} with an empty IDT) resets the machine and the guest boots again`, async () => {
    const dir = mkdtempSync(join(tmpdir(), "boxvm-lifecycle-"));
    try {
      const kernel = join(dir, "triplefault.elf");
      writeFileSync(kernel, buildTripleFaultGuest(how));
      const vm = await createMachine(kernel, { exitDevice: false });
      try {
        const states: string[] = [];
        vm.onState((_v, s) => states.push(String(s)));
        let resets = 0;
        vm.onReset(() => void resets++);
        const c = new Collector(vm);
        assert.equal(await stat(vm, "/VM/EMT/Resets"), 0);
        const fault = guru(vm);
        await vm.powerOn();
        await Promise.race([c.waitFor(/SECOND BOOT OK\r\n/, 30_000), fault]);
        assert.equal(c.text, "BOOT 01\r\nTRIPLE FAULT NOW\r\nBOOT 02\r\nSECOND BOOT OK\r\n");
        assert.equal(vm.state, VMSTATE.RUNNING);
        const vmStats = await vm.stats("/VM*");
        assert.equal(vmStats.find((e) => e.name === "/VM/EMT/Resets")?.value, 1, "STAM counts one reset");
        assert.equal(vmStats.find((e) => e.name === "/VM/EMT/ResetsBy/triple-fault")?.value, 1, "the reset's cause is a triple fault");
        assert.equal(vmStats.find((e) => e.name === "/VM/EMT/State")?.value, VMSTATE.RUNNING);
        assert.equal(resets, 1, "the API-side reset callback ran once");
        assert.deepEqual(states, [VMSTATE.RUNNING, VMSTATE.RESETTING, VMSTATE.RUNNING].map(String));
        assert.equal(vm.state, VMSTATE.RUNNING, "still running, not GURU_MEDITATION");
        await vm.powerOff();
        assert.equal(vm.state, VMSTATE.OFF);
      } finally {
        await shutdown(vm);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}
