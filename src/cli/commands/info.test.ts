import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { saveStateToFile } from "../../ssm/SsmFile.ts";
import { runInfo } from "./info.ts";

async function makeState(dir: string): Promise<string> {
  const ram = new Uint8Array(300 * 4096);
  for (let i = 0; i < 4096; i++) ram[4096 * 10 + i] = (i * 2654435761) >>> 24; // a random-looking page
  ram.fill(0x41, 4096 * 20, 4096 * 22); // two regular pages
  const path = join(dir, "vm.sav");
  await saveStateToFile(path, {
    units: [
      { name: "cpu", instance: 0, version: 3, data: new Uint8Array(120).fill(9) },
      { name: "pic8259", instance: 1, version: 1, data: new Uint8Array(16) },
    ],
    ram,
    config: '{"ram":1228800}',
    createdAt: Date.UTC(2026, 10, 24, 12),
  });
  return path;
}

test("info prints header, units, RAM statistics and OK for a good file", async () => {
  const dir = mkdtempSync(join(tmpdir(), "boxvm-info-"));
  try {
    const path = await makeState(dir);
    const out: string[] = [];
    const err: string[] = [];
    const code = await runInfo(
      path,
      {},
      (s) => out.push(s),
      (s) => err.push(s),
    );
    const text = out.join("\n");
    assert.equal(code, 0);
    assert.deepEqual(err, []);
    assert.match(text, /Format:\s+1\.0/);
    assert.match(text, /Created:\s+2026-11-24T12:00:00\.000Z/);
    assert.match(text, /RAM size:\s+1\.17 MiB \(300 pages of 4096 bytes\)/);
    assert.match(text, /cpu\s+0\s+3\s+120\s+0x[0-9a-f]{8} ok/);
    assert.match(text, /pic8259\s+1\s+1\s+16\s+0x[0-9a-f]{8} ok/);
    assert.match(text, /300 total, 297 zero \(99\.0%\), 1 raw \(0\.3%\), 2 compressed \(0\.7%\) in 2 chunks/);
    assert.match(text, /File CRC:\s+0x[0-9a-f]{8} ok/);
    assert.match(text, /Check:\s+OK/);

    const json: string[] = [];
    assert.equal(
      await runInfo(
        path,
        { json: true },
        (s) => json.push(s),
        () => undefined,
      ),
      0,
    );
    const parsed = JSON.parse(json.join("")) as { ok: boolean; units: { name: string }[] };
    assert.equal(parsed.ok, true);
    assert.deepEqual(
      parsed.units.map((u) => u.name),
      ["cpu", "pic8259"],
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("info marks a bad unit CRC, fails the check and exits non-zero", async () => {
  const dir = mkdtempSync(join(tmpdir(), "boxvm-info-"));
  try {
    const path = await makeState(dir);
    const b = readFileSync(path);
    const at = b.indexOf(Buffer.from([9, 9, 9, 9]));
    b[at] = 8; // inside unit 'cpu'
    writeFileSync(path, b);
    const out: string[] = [];
    const err: string[] = [];
    assert.equal(
      await runInfo(
        path,
        {},
        (s) => out.push(s),
        (s) => err.push(s),
      ),
      1,
    );
    const text = out.join("\n");
    assert.match(text, /cpu\s+0\s+3\s+120\s+0x[0-9a-f]{8} BAD/);
    assert.match(text, /pic8259\s+1\s+1\s+16\s+0x[0-9a-f]{8} ok/);
    assert.match(text, /File CRC:\s+0x[0-9a-f]{8} BAD/);
    assert.match(text, /Check:\s+FAILED: VERR_SSM_INTEGRITY_CRC: .*unit 'cpu' instance 0: data CRC mismatch/);
    assert.match(err.join("\n"), /VERR_SSM_INTEGRITY_CRC/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("the info command through the real CLI entry exits 1 on a bad file", async () => {
  const dir = mkdtempSync(join(tmpdir(), "boxvm-info-"));
  try {
    const good = await makeState(dir);
    const bad = join(dir, "garbage.sav");
    writeFileSync(
      bad,
      "this is not a saved state, just some text that is long enough for a header......................................",
    );
    const main = new URL("../main.ts", import.meta.url).pathname;
    const cwd = new URL("../../../", import.meta.url).pathname;
    const ok = spawnSync(process.execPath, ["--import", "tsx", main, "info", good], { cwd, encoding: "utf8" });
    assert.equal(ok.status, 0, ok.stderr);
    assert.match(ok.stdout, /Check:\s+OK/);
    const r = spawnSync(process.execPath, ["--import", "tsx", main, "info", bad], { cwd, encoding: "utf8" });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /VERR_SSM_INTEGRITY_MAGIC: Saved state file '.*garbage\.sav' has a bad magic/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
