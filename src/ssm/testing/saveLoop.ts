/**
 * Test helper (run as a child process by SsmFile.kill.test.ts): saves a large state to one file over
 * and over, one generation after another, so that the parent can kill -9 it in the middle of a save.
 *
 *   node --import tsx saveLoop.ts <target> <ramMiB> [<blockGen> <blockPercent>]
 *
 * Each generation's state has a unit "gen" holding the generation number (u32) and the SHA-256 of the
 * RAM, so a reader can check a file without knowing the RAM. Lines on stdout: "begin G", "saved G",
 * and "blocked G P" when the progress callback of generation blockGen reaches blockPercent: the helper
 * then blocks inside the callback (mid-save, temporary file open) until it is killed.
 */
import { createHash, randomFillSync } from "node:crypto";
import { writeSync } from "node:fs";
import { saveStateToFile } from "../SsmFile.ts";

const [target, ramMiB, blockGen, blockPct] = process.argv.slice(2);
if (target === undefined || ramMiB === undefined) {
  process.stderr.write("usage: saveLoop.ts <target> <ramMiB> [<blockGen> <blockPercent>]\n");
  process.exit(2);
}
const ram = new Uint8Array(Number(ramMiB) * 1024 * 1024);
const say = (s: string): void => {
  writeSync(1, `${s}\n`);
};

for (let gen = 1; ; gen++) {
  // Half random (slow to save: stored raw), half zero; new content every generation.
  ram.fill(0);
  for (let o = 0; o < ram.length; o += 128 * 1024) randomFillSync(ram, o, 64 * 1024);
  const data = new Uint8Array(36);
  new DataView(data.buffer).setUint32(0, gen, true);
  data.set(createHash("sha256").update(ram).digest(), 4);
  say(`begin ${String(gen)}`);
  await saveStateToFile(target, { units: [{ name: "gen", instance: 0, version: 1, data }], ram, config: "{}" }, (p) => {
    if (blockGen !== undefined && gen === Number(blockGen) && p >= Number(blockPct)) {
      say(`blocked ${String(gen)} ${String(p)}`);
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 120_000);
    }
    return 0;
  });
  say(`saved ${String(gen)}`);
}
