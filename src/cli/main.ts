/**
 * The boxvm command line. Each subcommand lives in src/cli/commands/<name>.ts and exports
 * `register(program: Command): void`; this file loads them all, so adding a command is adding a file.
 */
import { Command } from "commander";
import { readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const program = new Command();
program
  .name("boxvm")
  .description("A virtual machine monitor in TypeScript: an emulated i686 PC behind VirtualBox's VM API")
  .showHelpAfterError();

const dir = join(dirname(fileURLToPath(import.meta.url)), "commands");
for (const f of readdirSync(dir).sort()) {
  if (!f.endsWith(".ts") || f.endsWith(".test.ts")) continue;
  const mod = (await import(pathToFileURL(join(dir, f)).href)) as { register?: (p: Command) => void };
  mod.register?.(program);
}

await program.parseAsync(process.argv);
