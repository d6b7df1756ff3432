import { test } from "node:test";
import assert from "node:assert/strict";
import { formatBytes, ProgressBar, renderBar } from "./progress.ts";

test("renderBar draws the fraction", () => {
  assert.equal(renderBar(0.5, "half", 10), "[#####-----]  50%  half");
  assert.equal(renderBar(2, "over", 4), "[####] 100%  over");
  assert.equal(renderBar(Number.NaN, "nan", 4), "[----]   0%  nan");
  assert.equal(formatBytes(51921880), "51.9 MB");
});

test("on a terminal the bar redraws in place; elsewhere one line per step", () => {
  let tty = "";
  const t = new ProgressBar({ write: (s: string) => (tty += s), isTTY: true, columns: 80 });
  t.step(0.1, "downloading");
  t.done("done");
  assert.match(tty, /^\r\x1b\[K\[##/);
  assert.ok(tty.endsWith("100%  done\n"));
  let log = "";
  const l = new ProgressBar({ write: (s: string) => (log += s) });
  l.step(0.1, "downloading");
  l.update(0.5, "1/2 MB");
  l.done("done");
  assert.equal(log, "downloading\ndone\n");
});
