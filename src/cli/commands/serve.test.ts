import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { intOption, planVms, type ServeOptions } from "./serve.ts";
import { VM } from "../../vm/Vm.ts";
import { VmSession } from "../../web/session.ts";

const base: ServeOptions = { port: "0", host: "127.0.0.1", count: "1", scrollback: "65536", mem: "16", fetch: false };

async function withCache<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), "boxvm-servetest-"));
  const old = process.env["BOXVM_CACHE_DIR"];
  process.env["BOXVM_CACHE_DIR"] = dir;
  try {
    return await fn(dir);
  } finally {
    if (old === undefined) delete process.env["BOXVM_CACHE_DIR"];
    else process.env["BOXVM_CACHE_DIR"] = old;
    rmSync(dir, { recursive: true, force: true });
  }
}

test("integer options are checked", () => {
  assert.equal(intOption("--port", "0", 0, 65535), 0);
  assert.throws(() => intOption("--port", "70000", 0, 65535), /Bad --port "70000"/);
  assert.throws(() => intOption("--count", "two", 1, 16), /Bad --count/);
});

test("--demo --count 2: two VMs of boxvm run's demo machine, one state file each", async () => {
  await withCache(async (dir) => {
    const specs = await planVms({ ...base, demo: true, count: "2", stateDir: join(dir, "st") }, () => undefined);
    assert.deepEqual(
      specs.map((s) => [s.name, s.stateFile]),
      [
        ["boxvm-1", join(dir, "st", "boxvm-1.sav")],
        ["boxvm-2", join(dir, "st", "boxvm-2.sav")],
      ],
    );
    const cfg = specs[0]!.create.config as { RamSize: number; Boot: Record<string, string> };
    assert.equal(cfg.RamSize, 16 << 20);
    assert.equal(cfg.Boot["Cmdline"], "boxvm-demo");
    assert.match(specs[0]!.what, /demo guest/);
  });
});

test("--config: one VM per file, named by its Name (made unique); guest options do not mix with it", async () => {
  await withCache(async (dir) => {
    const a = join(dir, "a.json");
    const b = join(dir, "machine-b.json");
    writeFileSync(a, JSON.stringify({ Name: "web", RamSize: 4 << 20 }));
    writeFileSync(b, JSON.stringify({ RamSize: 4 << 20 }));
    const specs = await planVms({ ...base, config: [a, a, b] }, () => undefined);
    assert.deepEqual(
      specs.map((s) => s.name),
      ["web", "web-2", "machine-b"],
    );
    assert.equal(specs[0]!.create.config, a);
    assert.equal(specs[0]!.stateFile, join(dir, "serve", "web.sav"));
    await assert.rejects(
      planVms({ ...base, config: [a], demo: true }, () => undefined),
      /--config describes the whole machine/,
    );
    await assert.rejects(
      planVms({ ...base, config: [join(dir, "none.json")] }, () => undefined),
      /Cannot read/,
    );
  });
});

test("--load: the saved machine, named by its config, loaded from that file at start", async () => {
  await withCache(async (dir) => {
    const file = join(dir, "kept.sav");
    const vm = await VM.create({ config: { Name: "saved-one", RamSize: 4 << 20 } });
    await vm.powerOn();
    await vm.suspend();
    await vm.save(file);
    await vm.powerOff();
    await vm.destroy();

    const specs = await planVms({ ...base, load: file }, () => undefined);
    assert.equal(specs.length, 1);
    const spec = specs[0]!;
    assert.equal(spec.name, "saved-one");
    assert.equal(spec.stateFile, file);
    assert.equal(spec.loadAtStart, true);
    assert.match(spec.what, /saved in .*kept\.sav, 4 MiB/);
    const session = await VmSession.create(0, spec, 65536);
    try {
      assert.equal(await session.run("load"), null);
      assert.equal(session.state, "SUSPENDED");
      assert.equal(await session.run("resume"), null);
      assert.equal(session.state, "RUNNING");
    } finally {
      await session.close();
    }

    await assert.rejects(
      planVms({ ...base, load: file, demo: true }, () => undefined),
      /--load serves the saved machine as it was/,
    );
    await assert.rejects(
      planVms({ ...base, load: file, count: "2" }, () => undefined),
      /takes no --count/,
    );
    const bad = join(dir, "bad.sav");
    writeFileSync(bad, "not a saved state");
    await assert.rejects(
      planVms({ ...base, load: bad }, () => undefined),
      /bad\.sav: VERR_SSM/,
    );
  });
});
