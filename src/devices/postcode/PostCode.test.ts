import { test } from "node:test";
import assert from "node:assert/strict";
import { FakeMachine, checkConformance, checkFixture, fuzzPorts } from "../testing.ts";

test("port 0x80 keeps the last code and counts writes; no report without Config Report", () => {
  const m = new FakeMachine({ backends: ["post"] });
  m.add("postcode");
  m.outb(0x80, 0x12);
  m.outb(0x80, 0x34);
  assert.equal(m.inb(0x80), 0x34);
  assert.equal(m.stat("/Devices/postcode/Writes"), 2);
  assert.equal(m.stat("/Devices/postcode/LastCode"), 0x34);
  assert.deepEqual(m.backends.get("post")!.written, []);
});

test("Config Report sends codes to the 'post' backend when present, and works without one", () => {
  const m = new FakeMachine({ backends: ["post"] });
  m.add("postcode", { Report: 1 });
  m.outb(0x80, 0xaa);
  m.outw(0x80, 0x55bb); // a word write: the low byte lands on 0x80, the high byte on unassigned 0x81
  m.outb(0x190, 0x42);
  assert.equal(m.inb(0x80), 0x42, "one latch behind both ports");
  assert.deepEqual(m.backends.get("post")!.written, [0xaa, 0xbb, 0x42]);
  const bare = new FakeMachine();
  bare.add("postcode", { Report: 1 });
  bare.outb(0x80, 1);
  assert.equal(bare.inb(0x80), 1);
  fuzzPorts(bare, [0x80], 500, 1);
});

test("port 0x80 saved-state conformance", () => {
  checkConformance({ name: "postcode", setup: (m) => m.outb(0x80, 0x10), mutate: (m) => m.outb(0x80, 0x20) });
});

test("saved-state fixture of version 1 still loads (and saves back unchanged while current)", () => {
  checkFixture(
    { name: "postcode" },
    {
      version: 1,
      hex: "10",
    },
  );
});
