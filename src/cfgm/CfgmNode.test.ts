import { test } from "node:test";
import assert from "node:assert/strict";
import { Status, VBoxError } from "../vm/err.ts";
import { CfgmNode, cfgmFromObject } from "./CfgmNode.ts";

function rcOf(fn: () => unknown): number {
  try {
    fn();
  } catch (e) {
    if (e instanceof VBoxError) return e.rc;
    throw e;
  }
  return 0;
}

test("paths, values, defaults and range checks", () => {
  const root = new CfgmNode();
  const cfg = root.ensureChild("Devices/i8254/0/Config");
  assert.equal(cfg.path, "/Devices/i8254/0/Config");
  cfg.insertInteger("Irq", 0);
  cfg.insertString("Name", "pit");
  cfg.insertBytes("Blob", new Uint8Array([1, 2]));
  assert.equal(root.queryInteger("Devices/i8254/0/Config/Irq"), 0);
  assert.equal(cfg.queryU8Def("Irq", 5), 0);
  assert.equal(cfg.queryU8Def("Missing", 5), 5);
  assert.equal(cfg.queryStringDef("Name", "x"), "pit");
  assert.deepEqual([...cfg.queryBytesDef("Blob", null)!], [1, 2]);
  assert.equal(cfg.queryBoolDef("Missing", true), true);
  cfg.insertInteger("Big", 300);
  assert.equal(rcOf(() => cfg.queryU8Def("Big", 0)), Status.VERR_CFGM_INTEGER_TOO_BIG);
  assert.equal(rcOf(() => cfg.queryInteger("Name")), Status.VERR_CFGM_NOT_INTEGER);
  assert.equal(rcOf(() => cfg.queryString("Irq")), Status.VERR_CFGM_NOT_STRING);
  assert.equal(rcOf(() => cfg.queryInteger("Nope")), Status.VERR_CFGM_VALUE_NOT_FOUND);
  assert.equal(rcOf(() => cfg.insertInteger("F", 1.5)), Status.VERR_CFGM_INTEGER_TOO_BIG);
  assert.equal(rcOf(() => root.insertNode("Devices")), Status.VERR_CFGM_NODE_EXISTS);
  assert.equal(root.getChild("Devices/nope"), null);
  assert.ok(cfg.removeValue("Big"));
  assert.ok(!cfg.removeValue("Big"));
});

test("validateKeys names the unknown key with its path", () => {
  const root = cfgmFromObject({ Devices: { x: { "0": { Config: { Port: 1, Irq: 2, Typo: 3 } } } } });
  const cfg = root.getChild("Devices/x/0/Config")!;
  assert.throws(() => cfg.validateKeys(["Port", "Irq"]), (e: VBoxError) => {
    assert.equal(e.rc, Status.VERR_CFGM_CONFIG_UNKNOWN_VALUE);
    assert.match(e.message, /\/Devices\/x\/0\/Config\/Typo/);
    return true;
  });
  assert.throws(() => root.getChild("Devices/x/0")!.validateKeys([], []), (e: VBoxError) => e.rc === Status.VERR_CFGM_CONFIG_UNKNOWN_NODE);
  cfg.validateKeys(["Port", "Irq", "Typo"]);
});

test("cfgmFromObject: types and errors naming the path", () => {
  const root = cfgmFromObject({ A: 1, B: "s", C: true, D: { bytes: [1, 255] }, E: { base64: "AQI=" }, F: { G: 2 } });
  assert.equal(root.queryInteger("C"), 1);
  assert.deepEqual([...root.queryBytesDef("D", null)!], [1, 255]);
  assert.deepEqual([...root.queryBytesDef("E", null)!], [1, 2]);
  assert.equal(root.queryInteger("F/G"), 2);
  assert.throws(() => cfgmFromObject({ X: { Y: 1.5 } }), /\/X\/Y/);
  assert.throws(() => cfgmFromObject({ X: [1] }), /Unsupported value at \/X: array/);
  assert.throws(() => cfgmFromObject({ X: { bytes: [256] } }), (e: VBoxError) => e.rc === Status.VERR_CFGM_NOT_BYTES);
  assert.throws(() => cfgmFromObject({ "a/b": 1 }), (e: VBoxError) => e.rc === Status.VERR_CFGM_INVALID_NODE_PATH);
  assert.throws(() => cfgmFromObject(5), /must be an object/);
});

test("toPlain/fromPlain is lossless (the tree crossing to the EMT)", () => {
  const root = cfgmFromObject({ RamSize: 4096, Name: "n", Devices: { a: { "0": { Config: { K: "v", B: { bytes: [9] } } } }, b: {} } });
  const copy = CfgmNode.fromPlain(structuredClone(root.toPlain()));
  assert.deepEqual(copy.toJSON(), root.toJSON());
  assert.deepEqual(copy.children().map((c) => c.name), ["Devices"]);
  assert.deepEqual(copy.getChild("Devices")!.children().map((c) => c.name), ["a", "b"]);
  const clone = root.clone();
  clone.insertInteger("RamSize", 8192);
  assert.equal(root.queryInteger("RamSize"), 4096);
  assert.ok(clone.getChild("Devices")!.removeChild("b"));
  assert.ok(root.getChild("Devices/b"));
});
