import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { CfgmNode } from "../../cfgm/CfgmNode.ts";
import { findMultibootHeader } from "../../loader/multiboot.ts";
import { configureRunMachine, parseMem, planBoot, type RunOptions } from "./run.ts";

const base: RunOptions = { mem: "128", serial: "stdio", fetch: false };

function withCache<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), "boxvm-runtest-"));
  const old = process.env["BOXVM_CACHE_DIR"];
  process.env["BOXVM_CACHE_DIR"] = dir;
  return fn(dir).finally(() => {
    if (old === undefined) delete process.env["BOXVM_CACHE_DIR"];
    else process.env["BOXVM_CACHE_DIR"] = old;
    rmSync(dir, { recursive: true, force: true });
  });
}

test("parseMem takes MiB and refuses nonsense", () => {
  assert.equal(parseMem("128"), 128);
  assert.equal(parseMem("64M"), 64);
  assert.throws(() => parseMem("1"), /Bad --mem/);
  assert.throws(() => parseMem("lots"), /Bad --mem/);
  assert.throws(() => parseMem("4096"), /Bad --mem/);
});

test("--kernel/--initrd/--append map onto /Boot with absolute paths", async () => {
  const p = await planBoot({ ...base, kernel: "k.bin", initrd: "rd.gz", append: "console=ttyS0", mem: "256" }, () => undefined);
  assert.deepEqual(p.boot, { Kernel: resolve("k.bin"), Initrd: resolve("rd.gz"), Cmdline: "console=ttyS0" });
  assert.equal(p.ramMiB, 256);
  assert.equal(p.fallbackReason, null);
  const b = await planBoot({ ...base, bios: "bios.bin" }, () => undefined);
  assert.deepEqual(b.boot, { Bios: resolve("bios.bin") });
  await assert.rejects(planBoot({ ...base, initrd: "rd.gz" }, () => undefined), /--initrd needs --kernel/);
});

test("--guest-decompress sets /Boot/HostDecompress 0; by default the key is left out (default on)", async () => {
  const d = await planBoot({ ...base, kernel: "k.bin" }, () => undefined);
  assert.equal(d.boot["HostDecompress"], undefined);
  const g = await planBoot({ ...base, kernel: "k.bin", guestDecompress: true }, () => undefined);
  assert.equal(g.boot["HostDecompress"], 0);
});

test("no Debian guest and no fetching: the demo guest boots, and the reason is given", async () => {
  await withCache(async (dir) => {
    const p = await planBoot(base, () => undefined);
    assert.match(p.fallbackReason ?? "", /not in the cache and --no-fetch/);
    assert.ok(String(p.boot["Kernel"]).startsWith(dir));
    assert.ok(findMultibootHeader(new Uint8Array(readFileSync(String(p.boot["Kernel"])))));
  });
});

test("the run machine adds the exit device, and POST reporting with --post", () => {
  const root = new CfgmNode();
  configureRunMachine(root, true);
  assert.ok(root.getChild("Devices/isa-debug-exit/0/Config"));
  assert.equal(root.queryValue("Devices/postcode/0/Config/Report"), 1);
  const plain = new CfgmNode();
  configureRunMachine(plain, false);
  assert.equal(plain.getChild("Devices/postcode"), null);
});
