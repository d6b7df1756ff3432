#!/usr/bin/env node
// Runs the boot tests (test/boot/*.boot.ts): the ones that need boxvm's CPU to boot a guest.
// Wire as "test:boot": "node test/boot/run.mjs". Arguments are passed to node --test; a file
// filter may be given as BOXVM_TEST_FILTER (a substring of the path).
import { readdirSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { spawnSync } from "node:child_process";

const dir = dirname(fileURLToPath(import.meta.url));
const filter = process.env.BOXVM_TEST_FILTER ?? "";
const files = readdirSync(dir)
  .filter((f) => f.endsWith(".boot.ts"))
  .sort()
  .map((f) => join(dir, f))
  .filter((f) => f.includes(filter));
if (files.length === 0) {
  console.error("No boot tests found");
  process.exit(1);
}
const r = spawnSync(process.execPath, ["--import", "tsx", "--test", ...process.argv.slice(2), ...files], { stdio: "inherit" });
process.exit(r.status ?? 1);
