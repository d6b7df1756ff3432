import { test } from "node:test";
import assert from "node:assert/strict";
import { formatMessage as f } from "./format.ts";
import { RT_SRC_POS, vmStateName } from "./types.ts";
import { Status, VBoxError, statusName, vboxError } from "./err.ts";

test("printf directives", () => {
  assert.equal(f("%s=%d", ["a", 42]), "a=42");
  assert.equal(f("%i %u", [-3, -1]), "-3 4294967295");
  assert.equal(f("%x %X %#x %#X %o", [255, 255, 255, 255, 8]), "ff FF 0xff 0XFF 10");
  assert.equal(f("%x", [-1]), "ffffffff");
  assert.equal(f("%c%c", [72, "iya"]), "Hi");
  assert.equal(f("100%%", []), "100%");
  assert.equal(f("[%5d][%-5d][%05d][%+d][% d]", [42, 42, -42, 7, 7]), "[   42][42   ][-0042][+7][ 7]");
  assert.equal(f("[%8s][%-8s][%.2s]", ["ab", "ab", "abcdef"]), "[      ab][ab      ][ab]");
  assert.equal(f("[%*d][%.*s]", [4, 1, 3, "abcdef"]), "[   1][abc]");
  assert.equal(f("%08x %#010x", [0xbeef, 0xbeef]), "0000beef 0x0000beef");
  assert.equal(f("%lu %lld %zx", [5, -6, 255]), "5 -6 ff");
  assert.equal(f("%.3d", [5]), "005");
});

test("IPRT forms", () => {
  assert.equal(f("%RX32 %Rx16 %RX8", [0xdeadbeef, 0x1234, 0x1ff]), "DEADBEEF 1234 FF");
  assert.equal(f("%#RX32", [0xff]), "0xFF");
  assert.equal(f("%08RX32", [0xff]), "000000FF");
  assert.equal(f("%RU32 %RI32 %RI8", [-1, 0xffffffff, 0xff]), "4294967295 -1 -1");
  assert.equal(f("%RX64", [0x123456789abcdef0n]), "123456789ABCDEF0");
  assert.equal(f("%Rrc", [-1907]), "VERR_VM_INVALID_VM_STATE (-1907)");
});

test("unknown directives and missing arguments print as written", () => {
  assert.equal(f("%q %s", ["x"]), "%q x");
  assert.equal(f("%s %s", ["only"]), "only %s");
  assert.equal(f("%RZ32", [1]), "%RZ32");
  assert.equal(f("no directives", [1, 2]), "no directives");
});

test("RT_SRC_POS depth, state names, VBoxError", () => {
  const inner = () => RT_SRC_POS(1);
  const p = inner();
  assert.match(p.file, /format\.test\.ts$/);
  assert.equal(vmStateName(8), "GURU_MEDITATION");
  const e = new VBoxError("VERR_TIMEOUT", "Timed out: x");
  assert.equal(e.rc, -40);
  assert.equal(e.code, "VERR_TIMEOUT");
  assert.equal(vboxError("VERR_VM_REQUEST_STATE", "m").rc, Status.VERR_VM_REQUEST_STATE);
  assert.equal(new VBoxError(-1907).message, "VERR_VM_INVALID_VM_STATE");
  assert.equal(statusName(Status.VERR_CFGM_INVALID_CHILD_NODE), "VERR_CFGM_INVALID_CHILD_PATH");
  // Values checked against VBox/err.h and iprt/err.h.
  assert.deepEqual(
    [Status.VERR_SSM_LOADED_TOO_MUCH, Status.VERR_SSM_LOADED_TOO_LITTLE, Status.VERR_CFGM_VALUE_NOT_FOUND, Status.VERR_PDM_DEVICE_NOT_FOUND, Status.VERR_WRITE_ERROR],
    [-1831, -1833, -2103, -2840, -112],
  );
});
