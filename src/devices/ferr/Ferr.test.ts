import { test } from "node:test";
import assert from "node:assert/strict";
import { FakeMachine, checkConformance, checkFixture, fuzzPorts } from "../testing.ts";
import type { Ferr } from "./Ferr.ts";

test("FERR raises IRQ 13; a write to port 0xF0 lowers it; 0xF1 does nothing", () => {
  const m = new FakeMachine();
  const dev = m.add("ferr").dev as Ferr;
  dev.setFerr(true);
  assert.equal(m.irqs.levels[13], 1);
  m.outb(0xf1, 0);
  assert.equal(m.irqs.levels[13], 1);
  m.outb(0xf0, 0);
  assert.equal(m.irqs.levels[13], 0);
  assert.equal(m.stat("/Devices/ferr/Raised"), 1);
  fuzzPorts(m, [0xf0, 0xf1], 500, 4);
});

test("FERR saved-state conformance", () => {
  checkConformance({ name: "ferr", mutate: (_m, d) => (d.dev as Ferr).setFerr(true) });
});

test("saved-state fixture of version 1 still loads (and saves back unchanged while current)", () => {
  checkFixture(
    { name: "ferr" },
    {
      version: 1,
      hex: "00",
    },
  );
});
