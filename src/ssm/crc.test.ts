import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { crc32, crc32Combine, RunningCrc, xPow8n } from "./crc.ts";

test("crc32 matches the published check value", () => {
  assert.equal(crc32(new TextEncoder().encode("123456789")), 0xcbf43926);
  assert.equal(crc32(new Uint8Array(0)), 0);
});

test("crc32Combine equals the CRC of the concatenation", () => {
  for (const [la, lb] of [
    [0, 0],
    [0, 5],
    [5, 0],
    [1, 1],
    [3, 17],
    [100, 4096],
    [4096, 1 << 20],
    [7, 65537],
  ] as const) {
    const a = randomBytes(la);
    const b = randomBytes(lb);
    const whole = crc32(Buffer.concat([a, b]));
    assert.equal(crc32Combine(crc32(a), crc32(b), lb), whole, `lengths ${String(la)}+${String(lb)}`);
  }
});

test("RunningCrc mixes hashed and pre-hashed spans", () => {
  const parts = [randomBytes(10), randomBytes(3000), randomBytes(1), randomBytes(70000)];
  const r = new RunningCrc();
  parts.forEach((p, i) => {
    if (i % 2 === 0) r.update(p);
    else r.append(crc32(p), p.length);
  });
  assert.equal(r.value, crc32(Buffer.concat(parts)));
  assert.equal(r.length, 73011);
});

test("xPow8n rejects bad lengths and is x^0 for zero", () => {
  assert.equal(xPow8n(0), 0x80000000);
  assert.throws(() => xPow8n(-1), RangeError);
  assert.throws(() => xPow8n(1.5), RangeError);
});
