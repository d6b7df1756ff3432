import { test } from "node:test";
import assert from "node:assert/strict";
import { CfgmNode, cfgmFromObject } from "../cfgm/CfgmNode.ts";
import { Status, type VBoxError } from "./err.ts";
import { DEFAULT_RAM_SIZE, applyDefaultMachine, canonicalConfig, validateRootConfig } from "./config.ts";

test("the default machine: RAM and devices unless given", () => {
  const root = applyDefaultMachine(new CfgmNode(), [{ name: "dev", instance: 0, config: { Irq: 3, Mode: "x" } }]);
  assert.equal(root.queryInteger("RamSize"), DEFAULT_RAM_SIZE);
  assert.equal(root.queryInteger("Devices/dev/0/Config/Irq"), 3);
  assert.equal(root.queryString("Devices/dev/0/Config/Mode"), "x");
  const own = applyDefaultMachine(cfgmFromObject({ RamSize: 1 << 20, Devices: {} }), [{ name: "dev", instance: 0, config: {} }]);
  assert.equal(own.queryInteger("RamSize"), 1 << 20);
  assert.equal(own.getChild("Devices")!.children().length, 0);
});

test("root validation names the problem", () => {
  validateRootConfig(cfgmFromObject({ RamSize: 1 << 20, Name: "ok", Boot: {} }));
  assert.throws(() => validateRootConfig(cfgmFromObject({ Ram: 1 })), (e: VBoxError) => e.rc === Status.VERR_CFGM_CONFIG_UNKNOWN_VALUE && /\/Ram/.test(e.message));
  assert.throws(() => validateRootConfig(cfgmFromObject({ Disk: {} })), (e: VBoxError) => e.rc === Status.VERR_CFGM_CONFIG_UNKNOWN_NODE);
  assert.throws(() => validateRootConfig(cfgmFromObject({ RamSize: 4097 })), /\/RamSize/);
  assert.throws(() => validateRootConfig(cfgmFromObject({ RamSize: 4096 })), /\/RamSize/);
  assert.throws(() => validateRootConfig(cfgmFromObject({ Name: 5 })), (e: VBoxError) => e.rc === Status.VERR_CFGM_NOT_STRING);
  assert.throws(() => validateRootConfig(cfgmFromObject({ Devices: { x: { Irq: 1 } } })), /\/Devices\/x/);
});

test("canonical config: key order does not matter, values do", () => {
  const a = canonicalConfig(cfgmFromObject({ B: 1, A: { y: "s", x: { bytes: [1] } } }));
  const b = canonicalConfig(cfgmFromObject({ A: { x: { bytes: [1] }, y: "s" }, B: 1 }));
  const c = canonicalConfig(cfgmFromObject({ A: { x: { bytes: [2] }, y: "s" }, B: 1 }));
  assert.equal(a, b);
  assert.notEqual(a, c);
  assert.deepEqual(JSON.parse(a), { A: { x: { base64: "AQ==" }, y: "s" }, B: 1 });
});
