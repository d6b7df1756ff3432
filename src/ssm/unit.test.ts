import { test } from "node:test";
import assert from "node:assert/strict";
import { SsmUnitReader, SsmUnitWriter } from "./unit.ts";
import { Status, VBoxError } from "../vm/err.ts";

test("unit data round-trips every field type", () => {
  const w = new SsmUnitWriter();
  w.putU8(0xab);
  w.putBool(true);
  w.putU16(0xbeef);
  w.putU32(0xdeadbeef);
  w.putI32(-5);
  w.putU64(2 ** 53 - 1);
  w.putF64(Math.PI);
  w.putBytes(Uint8Array.of(1, 2, 3));
  w.putString("héllo");
  for (let i = 0; i < 300; i++) w.putU32(i); // forces growth
  const r = new SsmUnitReader(w.finish(), "test");
  assert.equal(r.getU8(), 0xab);
  assert.equal(r.getBool(), true);
  assert.equal(r.getU16(), 0xbeef);
  assert.equal(r.getU32(), 0xdeadbeef);
  assert.equal(r.getI32(), -5);
  assert.equal(r.getU64(), 2 ** 53 - 1);
  assert.equal(r.getF64(), Math.PI);
  assert.deepEqual([...r.getBytes()], [1, 2, 3]);
  assert.equal(r.getString(), "héllo");
  for (let i = 0; i < 300; i++) assert.equal(r.getU32(), i);
  r.expectEnd();
});

test("reading past the end or leaving bytes is a named error", () => {
  const w = new SsmUnitWriter();
  w.putU16(1);
  const r = new SsmUnitReader(w.finish(), "i8254");
  assert.throws(
    () => r.getU32(),
    (e: unknown) => e instanceof VBoxError && e.rc === Status.VERR_SSM_LOADED_TOO_MUCH && /i8254/.test(e.message),
  );
  const r2 = new SsmUnitReader(w.finish(), "i8259");
  assert.throws(
    () => r2.expectEnd(),
    (e: unknown) => e instanceof VBoxError && e.rc === Status.VERR_SSM_LOADED_TOO_LITTLE,
  );
  const w3 = new SsmUnitWriter();
  w3.putU32(1000);
  assert.throws(() => new SsmUnitReader(w3.finish(), "x").getBytes(), VBoxError, "corrupt length");
  const w4 = new SsmUnitWriter();
  w4.putU8(2);
  assert.throws(() => new SsmUnitReader(w4.finish(), "x").getBool(), VBoxError);
});
