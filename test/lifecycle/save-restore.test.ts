/**
 * Issue 4: save and restore mid-computation, resumed in a new process. The crunch guest
 * (guest/crunch.ts) computes an LCG hash over a table in RAM, printing a progress marker per
 * chunk. The test suspends it after some markers, saves, powers off and destroys the VM; a child
 * process creates a VM with the same configuration, loads the file, resumes and collects the rest.
 * The output before the save followed by the child's output must be exactly the output of an
 * uninterrupted run, which must equal the JavaScript reference of the algorithm.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { buildCrunchGuest, crunchReference, CRUNCH_EXIT_CODE, type CrunchParams } from "../../guest/crunch.ts";
import { VMSTATE } from "../../src/vm/types.ts";
import { Collector, createMachine, guru, shutdown, stat, watchState } from "./machine.ts";

const PARAMS: CrunchParams = { chunks: 12, perChunk: 150_000 };
const CHILD = fileURLToPath(new URL("./resume-child.ts", import.meta.url));
const EXIT_STATUS = ((CRUNCH_EXIT_CODE << 1) | 1) >>> 0;

/** The progress markers in a text, in order. */
function markers(text: string): string[] {
  return [...text.matchAll(/P([0-9a-f]{2})\r\n/g)].map((m) => m[1]!);
}

test("save mid-computation, load and resume in a new process: same result as an uninterrupted run", async () => {
  const dir = mkdtempSync(join(tmpdir(), "boxvm-lifecycle-"));
  try {
    const kernel = join(dir, "crunch.elf");
    writeFileSync(kernel, buildCrunchGuest(PARAMS));
    const ref = crunchReference(PARAMS);

    // ---- an uninterrupted run
    const whole = await createMachine(kernel, { exitDevice: true });
    let wholeOut: string;
    try {
      const c = new Collector(whole);
      const off = watchState(whole, VMSTATE.OFF, 60_000);
      const fault = guru(whole);
      await whole.powerOn();
      await Promise.race([off, fault]);
      assert.equal(whole.exitStatus, EXIT_STATUS);
      wholeOut = c.text;
    } finally {
      await shutdown(whole);
    }
    assert.equal(wholeOut, ref.output, "the uninterrupted run computes what the JavaScript reference does");

    // ---- run partway, suspend, save, power off, destroy
    const stateFile = join(dir, "crunch.sav");
    const vm = await createMachine(kernel, { exitDevice: true });
    let before: string;
    try {
      const c = new Collector(vm);
      const fault = guru(vm);
      await vm.powerOn();
      await Promise.race([c.waitFor(/P02\r\n/, 60_000), fault]);
      await vm.suspend();
      before = c.text;
      const instrAtSuspend = await stat(vm, "/CPU/Instructions");
      await vm.save(stateFile);
      assert.equal(vm.state, VMSTATE.SUSPENDED);
      assert.equal(await stat(vm, "/CPU/Instructions"), instrAtSuspend, "no guest instruction ran while suspended and saving");
      assert.equal(c.text, before, "no output while suspended and saving");
      await vm.powerOff();
      assert.equal(vm.exitStatus, null, "the guest did not reach its exit before the save");
    } finally {
      await shutdown(vm);
    }
    assert.ok(statSync(stateFile).size > 0, "the state file was written");
    assert.ok(!before.includes("RESULT"), `the computation had not finished at the save: ${JSON.stringify(before)}`);

    // ---- a new process loads and resumes
    const { stdout } = await promisify(execFile)(process.execPath, ["--import", "tsx", CHILD, kernel, stateFile], {
      timeout: 120_000,
      maxBuffer: 1 << 20,
    });
    const child = JSON.parse(stdout.trim().split("\n").pop()!) as {
      stateAfterLoad: string;
      outputBeforeResume: string;
      output: string;
      exitStatus: number | null;
    };
    assert.equal(child.stateAfterLoad, "SUSPENDED");
    assert.equal(child.outputBeforeResume, "", "nothing ran before resume");
    assert.equal(child.exitStatus, EXIT_STATUS);

    // ---- mid-computation, and nothing lost or repeated
    const pre = markers(before);
    const post = markers(child.output);
    assert.ok(pre.length >= 3 && pre.length < PARAMS.chunks, `markers before the save: ${pre.join(",")}`);
    assert.ok(post.length >= 1, `markers after the load: ${post.join(",")}`);
    const all = [...pre, ...post];
    const expected = Array.from({ length: PARAMS.chunks }, (_, i) => i.toString(16).padStart(2, "0"));
    assert.deepEqual(all, expected, "every marker once, in order, split between the two processes");
    assert.equal(before + child.output, ref.output, "the two halves make the uninterrupted output");
    assert.match(child.output, new RegExp(`RESULT ${ref.h.toString(16).padStart(8, "0")} ${ref.t.toString(16).padStart(8, "0")}\\r\\n$`));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
