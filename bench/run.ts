/**
 * Runs every bench/*.bench.ts module's default export (an async function), in name order.
 * `npm run bench [-- substring]` runs only the modules whose file name contains the substring.
 */
import { readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const dir = dirname(fileURLToPath(import.meta.url));
const filter = process.argv[2] ?? "";
const files = readdirSync(dir)
  .filter((f) => f.endsWith(".bench.ts") && f.includes(filter))
  .sort();
if (files.length === 0) {
  console.error(`No benchmarks${filter ? ` matching "${filter}"` : ""} in ${dir}`);
  process.exit(1);
}
let failed = 0;
for (const f of files) {
  console.log(`# ${f}`);
  try {
    const mod = (await import(pathToFileURL(join(dir, f)).href)) as { default?: () => unknown };
    if (typeof mod.default !== "function") throw new Error("no default export function");
    await mod.default();
  } catch (e) {
    failed++;
    console.error(`${f} failed:`, e);
  }
}
process.exit(failed ? 1 : 0);
