/**
 * Issue 4: a hostile guest. The hostile guest (guest/hostile.ts) writes random values to every
 * I/O port with byte, word and dword OUTs (and reads them back), several rounds; the resets it
 * causes (port 0x92, 0xCF9, the keyboard controller) reboot it and it carries on after the port
 * that reset it. The host process must live, the VM must never enter GURU_MEDITATION, the guest's
 * count of resets must equal STAM's, and the VM must still power off and destroy cleanly. The same
 * from the host side: a request function pokes every port through the IoPortSpace.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildHostileGuest } from "../../guest/hostile.ts";
import { VMSTATE } from "../../src/vm/types.ts";
import type { PokeResult } from "./hostile-fns.ts";
import { Collector, createMachine, guru, shutdown, stat, watchState } from "./machine.ts";

const FNS = new URL("./hostile-fns.ts", import.meta.url).href;
const ROUNDS = 4;
const DONE = /HOSTILE DONE RESETS ([0-9a-f]{8}) SUM ([0-9a-f]{8})\r\n/;

/** Runs `body` with a fresh temp dir holding the hostile kernel. */
async function withKernel(body: (kernel: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "boxvm-lifecycle-"));
  try {
    const kernel = join(dir, "hostile.elf");
    writeFileSync(kernel, buildHostileGuest(ROUNDS, 0x2545f491));
    await body(kernel);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test("a guest writing random values to every I/O port: no guru meditation, resets handled, clean power off", async () => {
  await withKernel(async (kernel) => {
    const vm = await createMachine(kernel, { exitDevice: false, modules: [FNS] });
    try {
      const states: number[] = [];
      vm.onState((_v, s) => states.push(s));
      const errors: string[] = [];
      vm.onError((_v, _u, _rc, _pos, _fmt, _args, message) => errors.push(message));
      const c = new Collector(vm);
      const fault = guru(vm);
      await vm.powerOn();
      const m = await Promise.race([c.waitFor(DONE, 50_000), fault]);
      assert.equal(vm.state, VMSTATE.RUNNING);
      assert.ok(!states.includes(VMSTATE.GURU_MEDITATION), `states: ${states.join(",")}`);
      assert.deepEqual(errors, []);
      for (let r = 0; r < ROUNDS; r++) assert.ok(c.text.includes(`\r\nROUND ${r.toString(16).padStart(2, "0")} DONE\r\n`), `round ${String(r)} finished`);
      const guestResets = parseInt(m[1]!, 16);
      const reported = [...c.text.matchAll(/\r\nRESET ([0-9a-f]{8}) AT ([0-9a-f]{2}):([0-9a-f]{8})\r\n/g)];
      assert.equal(reported.length, guestResets, "every reset reported once");
      assert.ok(guestResets > 0, "the random writes did reset the machine (port 0x92/0xCF9/0x64)");
      assert.equal(await stat(vm, "/VM/EMT/Resets"), guestResets, "STAM counts the resets the guest saw");
      assert.equal(states.filter((s) => s === VMSTATE.RESETTING).length, guestResets);
      // Every port was really reached: unmapped ports count in IOM.
      assert.ok((await stat(vm, "/IOM/UnassignedWrites"))! > 0xf000 * ROUNDS);

      // The same from the host side, on the running machine.
      const before = await stat(vm, "/VM/EMT/Resets");
      const poke = (await vm.call("lifecycle.pokeAllPorts", 0x9e3779b9, 2)) as PokeResult;
      assert.deepEqual(poke.thrown, [], "no port access threw");
      assert.equal(poke.accesses, 2 * 3 * 0x10000 * 2);
      assert.notEqual(vm.state, VMSTATE.GURU_MEDITATION);
      // The pokes asked for a reset (port 0x92 etc.): the guest boots once more and finds itself done.
      await Promise.race([c.waitFor(new RegExp(`${DONE.source}[^]*${DONE.source}`), 30_000), fault]);
      assert.equal(await stat(vm, "/VM/EMT/Resets"), before! + 1, "the pending resets were acted on once");
      assert.equal(vm.state, VMSTATE.RUNNING);
      assert.deepEqual(errors, []);

      await vm.powerOff();
      assert.equal(vm.state, VMSTATE.OFF);
      await vm.destroy();
      assert.equal(vm.alive, false);
    } finally {
      await shutdown(vm);
    }
  });
});

test("host-side pokes of every port with the exit device present, while suspended: no throw, clean end", async () => {
  await withKernel(async (kernel) => {
    const vm = await createMachine(kernel, { exitDevice: true, modules: [FNS] });
    try {
      const states: number[] = [];
      vm.onState((_v, s) => states.push(s));
      const c = new Collector(vm);
      const fault = guru(vm);
      await vm.powerOn();
      await Promise.race([c.waitFor(/HOSTILE START\r\n/, 30_000), fault]);
      await vm.suspend();
      const poke = (await vm.call("lifecycle.pokeAllPorts", 12345, 1)) as PokeResult;
      assert.deepEqual(poke.thrown, []);
      assert.equal(poke.accesses, 2 * 3 * 0x10000);
      assert.equal(vm.state, VMSTATE.SUSPENDED);
      // The host's write to port 0xF4 asked for a power off; the guest itself may hit it too.
      const off = watchState(vm, VMSTATE.OFF, 30_000);
      await vm.resume();
      await Promise.race([off, fault]);
      assert.equal(vm.exitStatus! & 1, 1, "powered off through the exit device");
      assert.ok(!states.includes(VMSTATE.GURU_MEDITATION), `states: ${states.join(",")}`);
      await vm.destroy();
      assert.equal(vm.alive, false);
    } finally {
      await shutdown(vm);
    }
  });
});

test("the hostile guest saved in the middle (devices in random states) loads in a new VM and finishes", async () => {
  await withKernel(async (kernel) => {
    const dir = mkdtempSync(join(tmpdir(), "boxvm-lifecycle-"));
    try {
      const stateFile = join(dir, "hostile.sav");
      const vm = await createMachine(kernel, { exitDevice: false });
      let pre: string;
      let resetsBefore: number;
      try {
        const c = new Collector(vm);
        const fault = guru(vm);
        await vm.powerOn();
        await Promise.race([c.waitFor(/\r\nROUND 01 DONE\r\n/, 50_000), fault]);
        await vm.suspend();
        pre = c.text;
        resetsBefore = (await stat(vm, "/VM/EMT/Resets")) ?? -1;
        await vm.save(stateFile);
        await vm.powerOff();
      } finally {
        await shutdown(vm);
      }
      assert.ok(!DONE.test(pre), "saved before the end");
      const vm2 = await createMachine(kernel, { exitDevice: false });
      try {
        const c = new Collector(vm2);
        const fault = guru(vm2);
        await vm2.load(stateFile);
        await vm2.resume();
        const m = await Promise.race([c.waitFor(DONE, 50_000), fault]);
        assert.equal(vm2.state, VMSTATE.RUNNING);
        const count = (t: string): number => [...t.matchAll(/\r\nRESET [0-9a-f]{8} AT /g)].length;
        assert.equal(parseInt(m[1]!, 16), count(pre) + count(c.text), "the guest's reset count went on from the saved one");
        // A reset can fall just before the save with its RESET line printed after the load, so the
        // machines' resets are compared with the guest's lines over both halves together.
        assert.equal(resetsBefore + ((await stat(vm2, "/VM/EMT/Resets")) ?? -1), count(pre) + count(c.text), "resets before and after the load");
        for (let r = 2; r < ROUNDS; r++) assert.ok(c.text.includes(`\r\nROUND ${r.toString(16).padStart(2, "0")} DONE\r\n`));
        await vm2.powerOff();
        await vm2.destroy();
      } finally {
        await shutdown(vm2);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
