/**
 * kill -9 during a save: a child process saves a large state in a loop and is killed mid-save; the
 * previous file must still load and be intact, and the next save cleans up the dead child's temporary
 * file. The kill points are made deterministic by having the child block inside its progress callback.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { loadStateFromFile, saveStateToFile } from "./SsmFile.ts";

const RAM_MIB = 48;
const helper = new URL("./testing/saveLoop.ts", import.meta.url).pathname;
/** The repository root, where `--import tsx` resolves. */
const root = new URL("../../", import.meta.url).pathname;

interface Child {
  proc: ChildProcess;
  /** Resolves with the first stdout line that starts with `prefix`. */
  waitFor(prefix: string): Promise<string>;
}

function startChild(target: string, extra: string[]): Child {
  const proc = spawn(process.execPath, ["--import", "tsx", helper, target, String(RAM_MIB), ...extra], {
    cwd: root,
    stdio: ["ignore", "pipe", "pipe"],
  });
  const lines: string[] = [];
  const waiters: { prefix: string; resolve: (l: string) => void; reject: (e: Error) => void }[] = [];
  let stderr = "";
  proc.stderr!.on("data", (c: Buffer) => (stderr += c.toString()));
  createInterface({ input: proc.stdout! }).on("line", (l) => {
    lines.push(l);
    for (let i = waiters.length - 1; i >= 0; i--) {
      if (l.startsWith(waiters[i]!.prefix)) waiters.splice(i, 1)[0]!.resolve(l);
    }
  });
  proc.on("exit", (code, signal) => {
    for (const w of waiters.splice(0))
      w.reject(new Error(`Child exited (${String(code)}, ${String(signal)}) before '${w.prefix}': ${stderr}`));
  });
  return {
    proc,
    waitFor: (prefix) => {
      const seen = lines.find((l) => l.startsWith(prefix));
      if (seen !== undefined) return Promise.resolve(seen);
      return new Promise((resolve, reject) => waiters.push({ prefix, resolve, reject }));
    },
  };
}

async function kill9(c: Child): Promise<void> {
  if (c.proc.exitCode !== null || c.proc.signalCode !== null) return;
  const exited = new Promise((r) => c.proc.once("exit", r));
  c.proc.kill("SIGKILL");
  await exited;
}

/** Loads the target and checks it is a complete generation; returns the generation number. */
async function checkIntact(target: string): Promise<number> {
  const st = await loadStateFromFile(target, {
    ramSize: RAM_MIB * 1024 * 1024,
    config: "{}",
    unit: (name) => (name === "gen" ? { minVersion: 1, maxVersion: 1 } : undefined),
  });
  const unit = st.units[0]!;
  const ram = new Uint8Array(RAM_MIB * 1024 * 1024);
  st.restoreRam(ram);
  assert.ok(
    Buffer.from(unit.data.subarray(4)).equals(createHash("sha256").update(ram).digest()),
    "RAM does not match its generation's hash",
  );
  return new DataView(unit.data.buffer, unit.data.byteOffset).getUint32(0, true);
}

const temps = (dir: string): string[] => readdirSync(dir).filter((n) => n.endsWith(".ssmtmp"));

test("kill -9 in the middle of a save leaves the previous file loadable and intact", { timeout: 120_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), "boxvm-ssm-kill-"));
  const target = join(dir, "vm.sav");
  const children: Child[] = [];
  try {
    // Killed while blocked at a given percent of generation 2 (0: temp file just created; 50: half
    // written; 100: written and synced, rename pending). Generation 1 must survive each time.
    for (const pct of [0, 50, 100]) {
      rmSync(target, { force: true });
      const c = startChild(target, ["2", String(pct)]);
      children.push(c);
      await c.waitFor("saved 1");
      const line = await c.waitFor("blocked 2");
      assert.equal(temps(dir).length, 1, `a temporary file exists while blocked at ${line}`);
      await kill9(c);
      assert.equal(await checkIntact(target), 1, `after a kill at ${String(pct)}%`);
    }
    // Killed at an arbitrary moment of a free-running loop: the file is one of the two latest generations.
    const c = startChild(target, []);
    children.push(c);
    await c.waitFor("saved 2");
    await c.waitFor("begin 3");
    await new Promise((r) => setTimeout(r, 30));
    await kill9(c);
    const gen = await checkIntact(target);
    assert.ok(gen === 2 || gen === 3, `generation ${String(gen)}`);

    // The dead children's temporary files go away with the next save.
    await saveStateToFile(target, { units: [], ram: new Uint8Array(4096), config: "{}" });
    assert.deepEqual(temps(dir), []);
  } finally {
    for (const c of children) await kill9(c);
    rmSync(dir, { recursive: true, force: true });
  }
});
