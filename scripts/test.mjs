#!/usr/bin/env node
// Runs every *.test.ts under src/ and test/ with node's test runner (Node 20 does not expand
// --test globs, so the files are listed here). Extra arguments are passed to node --test,
// and a path filter may be given as BOXVM_TEST_FILTER (a substring of the file path).
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { spawnSync } from "node:child_process";

function walk(dir, out) {
  let names;
  try { names = readdirSync(dir); } catch { return out; }
  for (const name of names.sort()) {
    if (name === "node_modules" || name.startsWith(".")) continue;
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p, out);
    else if (name.endsWith(".test.ts")) out.push(p);
  }
  return out;
}

const filter = process.env.BOXVM_TEST_FILTER ?? "";
const files = [...walk("src", []), ...walk("test", [])].filter((f) => f.includes(filter));
if (files.length === 0) {
  console.error("No test files found");
  process.exit(1);
}
const r = spawnSync(process.execPath, ["--import", "tsx", "--test", ...process.argv.slice(2), ...files], {
  stdio: "inherit",
});
process.exit(r.status ?? 1);
