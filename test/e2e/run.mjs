#!/usr/bin/env node
// Runs the browser end-to-end tests (test/e2e/*.e2e.ts): they need Chromium (Debian's
// /usr/bin/chromium, or BOXVM_CHROMIUM) and, for their console steps, a CPU that runs the demo
// guest. Arguments are passed to node --test; a file filter may be given as BOXVM_TEST_FILTER.
import { readdirSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { spawnSync } from "node:child_process";

const dir = dirname(fileURLToPath(import.meta.url));
const filter = process.env.BOXVM_TEST_FILTER ?? "";
const files = readdirSync(dir)
  .filter((f) => f.endsWith(".e2e.ts"))
  .sort()
  .map((f) => join(dir, f))
  .filter((f) => f.includes(filter));
if (files.length === 0) {
  console.error("No e2e tests found");
  process.exit(1);
}
const r = spawnSync(
  process.execPath,
  ["--import", "tsx", "--test", "--test-concurrency=1", ...process.argv.slice(2), ...files],
  { stdio: "inherit" },
);
process.exit(r.status ?? 1);
