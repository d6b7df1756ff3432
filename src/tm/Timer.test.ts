import { test } from "node:test";
import assert from "node:assert/strict";
import { TimerScheduler } from "./Timer.ts";
import { ManualClock, VirtualClock, hostNs } from "./VirtualClock.ts";

test("timers run due callbacks earliest first; re-arming and stopping", () => {
  const clock = new ManualClock(0);
  const tm = new TimerScheduler(clock);
  const log: string[] = [];
  const a = tm.create("a", (now) => log.push(`a@${String(now)}`));
  const b = tm.create("b", () => log.push("b"));
  const c = tm.create("c", () => {
    log.push("c");
    c.setRelative(100);
  });
  assert.equal(tm.nextDeadline(), -1);
  a.setDeadline(50);
  b.setDeadline(20);
  c.setDeadline(30);
  assert.equal(tm.nextDeadline(), 20);
  assert.equal(tm.runDue(), 0);
  clock.step(40);
  assert.equal(tm.runDue(), 2);
  assert.deepEqual(log, ["b", "c"]);
  assert.equal(b.active, false);
  assert.equal(c.deadline, 140);
  assert.equal(tm.nextDeadline(), 50);
  a.stop();
  assert.equal(tm.nextDeadline(), 140);
  clock.set(1000);
  tm.runDue();
  assert.deepEqual(log, ["b", "c", "c"]);
  tm.destroy(c);
  assert.equal(tm.nextDeadline(), -1);
  assert.equal(tm.list().length, 2);
});

test("a timer re-armed in the past does not run forever in one runDue", () => {
  const clock = new ManualClock(0);
  const tm = new TimerScheduler(clock);
  let n = 0;
  const t = tm.create("loop", () => {
    n++;
    t.setDeadline(0);
  });
  t.setDeadline(0);
  tm.runDue();
  assert.ok(n > 1 && n <= 10000);
});

test("onChange is called when deadlines change", () => {
  const tm = new TimerScheduler(new ManualClock());
  let changes = 0;
  tm.onChange = () => changes++;
  const t = tm.create("x", () => undefined);
  t.setRelative(5);
  t.stop();
  assert.equal(changes, 2);
});

test("VirtualClock stands still while paused and can be set", () => {
  const c = new VirtualClock();
  assert.equal(c.running, false);
  assert.equal(c.now(), 0);
  c.resume();
  const t0 = hostNs();
  while (hostNs() - t0 < 2_000_000) {
    /* 2 ms */
  }
  const a = c.now();
  assert.ok(a >= 2_000_000);
  c.pause();
  const frozen = c.now();
  const t1 = hostNs();
  while (hostNs() - t1 < 1_000_000) {
    /* 1 ms */
  }
  assert.equal(c.now(), frozen);
  c.set(5);
  assert.equal(c.now(), 5);
  c.resume();
  assert.ok(c.now() >= 5);
});

test("VirtualClock with an instruction counter counts instructions, not host time", () => {
  const c = new VirtualClock();
  let count = 1000;
  c.attachCounter(() => count, 2);
  c.resume();
  assert.equal(c.now(), 0);
  const t0 = hostNs();
  while (hostNs() - t0 < 1_000_000) {
    /* 1 ms of host time: virtual time must not move */
  }
  assert.equal(c.now(), 0);
  count += 500;
  assert.equal(c.now(), 1000);
  // retuning keeps time continuous
  c.setNsPerInsn(10);
  assert.equal(c.now(), 1000);
  count += 3;
  assert.equal(c.now(), 1030);
  // idle time: forward only
  c.advanceTo(5000);
  assert.equal(c.now(), 5000);
  c.advanceTo(4000);
  assert.equal(c.now(), 5000);
  count += 1;
  assert.equal(c.now(), 5010);
  // the real-time reference runs with the host; the lag is what virtual time is behind it
  assert.ok(c.realNow() >= 1_000_000);
  assert.ok(Math.abs(c.lagNs - (c.realNow() - c.now())) < 1_000_000);
});

test("VirtualClock: limitLag drops lag beyond the bound, set() realigns both clocks", () => {
  const c = new VirtualClock();
  let count = 0;
  c.attachCounter(() => count, 1);
  c.resume();
  const t0 = hostNs();
  while (hostNs() - t0 < 3_000_000) {
    /* 3 ms behind */
  }
  assert.ok(c.lagNs >= 3_000_000);
  const dropped = c.limitLag(1_000_000);
  assert.ok(dropped >= 2_000_000, `dropped ${dropped}`);
  assert.ok(c.lagNs >= 1_000_000 && c.lagNs < 1_500_000, `lag ${c.lagNs}`);
  assert.equal(c.limitLag(10_000_000), 0);
  count = 77;
  c.set(1_000_000_000);
  assert.equal(c.now(), 1_000_000_000);
  assert.ok(Math.abs(c.lagNs) < 1_000_000);
  count += 10;
  assert.equal(c.now(), 1_000_000_010);
  c.pause();
  const frozen = c.realNow();
  const t1 = hostNs();
  while (hostNs() - t1 < 1_000_000) {
    /* paused: the reference stands still */
  }
  assert.equal(c.realNow(), frozen);
});
