import { test } from "node:test";
import assert from "node:assert/strict";
import { Stam, matches } from "./Stam.ts";

test("counters, profiles and callbacks in a sorted snapshot", () => {
  const s = new Stam();
  const c = s.counter("/VM/B", "b");
  c.value += 2;
  c.add(3);
  const p = s.profile("/VM/A", "a");
  p.record(10);
  p.record(30);
  let g = 7;
  s.callback("/TM/G", "g", "ns", () => g);
  assert.equal(s.counter("/VM/B", "again"), c);
  const snap = s.snapshot();
  assert.deepEqual(snap.map((e) => e.name), ["/TM/G", "/VM/A", "/VM/B"]);
  assert.equal(snap[2]!.value, 5);
  assert.equal(snap[1]!.value, 20);
  assert.equal(snap[1]!.minNs, 10);
  assert.equal(snap[1]!.maxNs, 30);
  g = 9;
  assert.equal(s.snapshot("/TM/G")[0]!.value, 9);
  s.reset("/VM/*");
  assert.equal(s.snapshot("/VM/B")[0]!.value, 0);
  assert.equal(s.snapshot("/VM/A")[0]!.periods, 0);
  s.deregisterPrefix("/VM");
  assert.deepEqual(s.snapshot().map((e) => e.name), ["/TM/G"]);
  assert.throws(() => s.counter("nope", "x"), /must start with/);
});

test("patterns: wildcards, alternatives, prefixes", () => {
  assert.ok(matches("/Devices", "/Devices/i8254/Irq"));
  assert.ok(!matches("/Dev", "/Devices/i8254/Irq"));
  assert.ok(matches("/Devices/*/Irq", "/Devices/i8254/Irq"));
  assert.ok(matches("/A/?", "/A/b"));
  assert.ok(!matches("/A/?", "/A/bc"));
  assert.ok(matches("/X|/VM/*", "/VM/EMT"));
  assert.ok(matches("*", "/anything"));
  assert.ok(matches("/a.b", "/a.b") && !matches("/a.b", "/axb"));
});
