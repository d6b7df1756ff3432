/**
 * Boot test (`npm run test:boot`): Debian's kernel keeps time on boxvm's virtual clock.
 *
 * The virtual clock counts guest instructions (src/tm/VirtualClock.ts) and is kept close to host
 * time; PIT, RTC and TSC all read it. This boots the Debian guest and checks what Linux made of it:
 * - the TSC was calibrated against the PIT (our TSC runs at 1 GHz of virtual time) and became the
 *   clocksource, with no "unstable" verdict from the clocksource watchdog;
 * - guest uptime follows host time while the guest idles and while it is busy (no lost ticks);
 * - `sleep 3` in the guest takes about 3 s of host time (idle time is not skipped ahead of the host);
 * - the guest's date (from the RTC at boot) agrees with the host's.
 * Then the rest of the lifecycle on the booted kernel: guest time stands still while the VM is
 * suspended, VMR3Reset reboots it to the shell, and so does the guest's own `reboot -f` (through
 * the keyboard controller's reset line).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { VMSTATE } from "../../src/vm/types.ts";
import { ConsoleDriver, debianVm } from "./driver.ts";

const BOOT_MS = Number(process.env["BOXVM_BOOT_TIMEOUT"] ?? "900") * 1000;
const P = "/ # ";

/** Guest uptime in seconds (first field of /proc/uptime) and the host time the answer arrived. */
async function uptime(d: ConsoleDriver): Promise<{ guest: number; host: number }> {
  const out = await d.command("cat /proc/uptime", P, 60000);
  const m = /\n(\d+\.\d+) \d+\.\d+\r?\n/.exec(out);
  assert.ok(m, `no uptime in ${JSON.stringify(out)}`);
  return { guest: Number(m[1]), host: Date.now() / 1000 };
}

/** Asserts that guest time moved like host time over an interval (5 % plus console latency). */
function assertTracks(what: string, a: { guest: number; host: number }, b: { guest: number; host: number }): void {
  const g = b.guest - a.guest;
  const h = b.host - a.host;
  process.stderr.write(`# ${what}: guest ${g.toFixed(2)} s over host ${h.toFixed(2)} s\n`);
  assert.ok(Math.abs(g - h) <= 0.05 * h + 0.5, `${what}: guest uptime moved ${g.toFixed(2)} s while the host moved ${h.toFixed(2)} s`);
}

test("Debian calibrates its TSC against the PIT, keeps host time, and suspends, resets and reboots", { timeout: BOOT_MS + 300000 }, async () => {
  const { guest: g, vm, console: d, dispose } = await debianVm();
  try {
    await vm.powerOn();
    await d.waitFor(P, BOOT_MS);

    const log = await d.command("dmesg | grep -iE 'tsc|clocksource'", P, 60000);
    const mhz = /tsc: Detected (\d+\.\d+) MHz processor/.exec(log);
    assert.ok(mhz, `the kernel did not calibrate the TSC:\n${log}`);
    assert.ok(Math.abs(Number(mhz[1]) - 1000) < 5, `TSC calibrated to ${mhz[1]} MHz, expected 1000 (1 GHz virtual)`);
    assert.match(log, /Switched to clocksource tsc\r?\n/, "the TSC did not become the clocksource");
    assert.doesNotMatch(log, /unstable/i, "the clocksource watchdog found the TSC unstable");
    const cur = await d.command("cat /sys/devices/system/clocksource/clocksource0/current_clocksource", P, 60000);
    assert.match(cur, /\ntsc\r?\n/);

    // Idle: the guest sits at the shell prompt for 8 s of host time.
    const i0 = await uptime(d);
    await new Promise((r) => setTimeout(r, 8000));
    assertTracks("idle", i0, await uptime(d));

    // Busy: a shell loop keeps the CPU busy for several seconds.
    const b0 = await uptime(d);
    await d.command("i=0; while [ $i -lt 15000 ]; do i=$((i+1)); done", P, 300000);
    const b1 = await uptime(d);
    assert.ok(b1.host - b0.host > 2, "the busy loop was meant to take seconds");
    assertTracks("busy", b0, b1);

    // A guest sleep waits in host time: not skipped ahead, not stretched.
    const s0 = Date.now();
    await d.command("sleep 3", P, 60000);
    const slept = (Date.now() - s0) / 1000;
    process.stderr.write(`# sleep 3 took ${slept.toFixed(2)} s of host time\n`);
    assert.ok(slept >= 2.9 && slept < 4.5, `sleep 3 took ${slept.toFixed(2)} s of host time`);

    // The RTC started from the host's clock and the guest's date still agrees with it.
    const out = await d.command("date +%s", P, 60000);
    const m = /\n(\d{9,})\r?\n/.exec(out);
    assert.ok(m, out);
    const skew = Number(m[1]) - Date.now() / 1000;
    assert.ok(Math.abs(skew) < 5, `guest date is ${skew.toFixed(1)} s off the host's`);

    // Suspended, the guest's time stands still (the virtual clock is paused, as VirtualBox's).
    const p0 = await uptime(d);
    await vm.suspend();
    await new Promise((r) => setTimeout(r, 3000));
    await vm.resume();
    const p1 = await uptime(d);
    const gained = p1.guest - p0.guest;
    process.stderr.write(`# across a 3 s suspension: guest ${gained.toFixed(2)} s, host ${(p1.host - p0.host).toFixed(2)} s\n`);
    assert.ok(p1.host - p0.host >= 3 && gained < p1.host - p0.host - 2.5, `guest uptime moved ${gained.toFixed(2)} s across a 3 s suspension`);

    // VMR3Reset on the running kernel: the machine starts over and boots to the shell again.
    const resets = async (cause: string) => (await vm.stats(`/VM/EMT/ResetsBy/${cause}`))[0]?.value ?? 0;
    let mark = d.output.length;
    await vm.reset();
    assert.equal(vm.state, VMSTATE.RUNNING);
    await d.waitFor("Linux version", BOOT_MS, mark);
    mark = await d.waitFor(P, BOOT_MS, mark);
    assert.equal(await resets("VMR3Reset"), 1);
    assert.match(await d.command("echo after-$((40+2))", P, 60000), /after-42\r?\n/);

    // The guest reboots itself (no ACPI here: Linux pulses the i8042's reset line).
    mark = d.output.length;
    d.write("reboot -f\r");
    await d.waitFor("Linux version", BOOT_MS, mark);
    await d.waitFor(P, BOOT_MS, mark);
    assert.equal(await resets("i8042"), 1, "the guest's reboot went through the keyboard controller");
    assert.match(await d.command("uname -r", P, 60000), new RegExp(g.kernelVersion.replace(/\./g, "\\.")));
  } finally {
    await dispose();
  }
});
