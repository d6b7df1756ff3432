import { test } from "node:test";
import assert from "node:assert/strict";
import { OPS, opAllowed, parseClientMessage } from "./protocol.ts";

test("buttons follow API.md's table of legal transitions", () => {
  const allowed = (state: Parameters<typeof opAllowed>[1], saved = true) =>
    OPS.filter((op) => opAllowed(op, state, saved));
  assert.deepEqual(allowed("CREATED"), ["powerOn", "load"]);
  assert.deepEqual(allowed("CREATED", false), ["powerOn"]);
  assert.deepEqual(allowed("RUNNING"), ["suspend", "reset", "powerOff"]);
  assert.deepEqual(allowed("SUSPENDED"), ["resume", "reset", "save", "load", "powerOff"]);
  assert.deepEqual(allowed("SAVING"), []);
  assert.deepEqual(allowed("LOADING"), []);
  assert.deepEqual(allowed("LOAD_FAILURE"), ["powerOff"]);
  assert.deepEqual(allowed("GURU_MEDITATION"), ["powerOff"]);
  assert.deepEqual(allowed("OFF"), ["recreate"]);
  assert.deepEqual(allowed("TERMINATED"), []);
});

test("tab messages are checked for shape", () => {
  assert.deepEqual(parseClientMessage('{"t":"select","vm":2}'), { t: "select", vm: 2 });
  assert.deepEqual(parseClientMessage('{"t":"op","id":1,"op":"suspend"}'), { t: "op", id: 1, op: "suspend" });
  assert.deepEqual(parseClientMessage('{"t":"resize","cols":80,"rows":24}'), { t: "resize", cols: 80, rows: 24 });
  for (const bad of [
    "",
    "nope",
    "null",
    "[]",
    '{"t":"op","id":1,"op":"destroy"}',
    '{"t":"select","vm":"1"}',
    '{"t":"resize","cols":0,"rows":24}',
    '{"t":"input","data":5}',
    '{"t":"x"}',
  ]) {
    assert.equal(parseClientMessage(bad), null, bad);
  }
});
