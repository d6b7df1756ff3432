/**
 * `boxvm stats`: creates a VM (the default PC, or --config), runs it for a moment, and prints its
 * statistics (STAM) as a table, or as JSON with --json.
 */
import type { Command } from "commander";
import type { StamSnapshotEntry } from "../../stam/Stam.ts";
import { VBoxError } from "../../vm/err.ts";
import { VM } from "../../vm/Vm.ts";

/** Formats a snapshot as an aligned table: name, value, unit, description. */
export function formatStatsTable(entries: readonly StamSnapshotEntry[]): string {
  const rows = entries.map((e) => {
    const value =
      e.kind === "profile"
        ? `${String(e.periods ?? 0)} × avg ${Math.round(e.value).toString()}`
        : Number.isInteger(e.value)
          ? e.value.toString()
          : e.value.toFixed(2);
    return [e.name, value, e.unit, e.desc];
  });
  const head = ["Name", "Value", "Unit", "Description"];
  const width = [0, 1, 2].map((i) => Math.max(head[i]!.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) =>
    `${r[0]!.padEnd(width[0]!)}  ${r[1]!.padStart(width[1]!)}  ${r[2]!.padEnd(width[2]!)}  ${r[3]!}`.trimEnd();
  return [line(head), ...rows.map(line)].join("\n");
}

/** Registers the command. */
export function register(program: Command): void {
  program
    .command("stats")
    .description("Create a VM, run it for a moment and print its statistics")
    .option("-c, --config <file>", "JSON configuration file (default: the default PC)")
    .option("-t, --time <ms>", "how long to run the VM before reading the statistics", "200")
    .option("-p, --pattern <pattern>", "STAM name pattern ('*' and '?' wildcards, '|' between patterns)", "*")
    .option("--json", "print JSON instead of a table")
    .action(async (opts: { config?: string; time: string; pattern: string; json?: boolean }) => {
      const ms = Number(opts.time);
      if (!Number.isFinite(ms) || ms < 0) {
        console.error(`boxvm stats: --time must be a number of milliseconds: ${opts.time}`);
        process.exitCode = 2;
        return;
      }
      let vm: VM | null = null;
      try {
        vm = await VM.create(opts.config ? { config: opts.config } : {});
        await vm.powerOn();
        await new Promise((r) => setTimeout(r, ms));
        await vm.suspend();
        const entries = await vm.stats(opts.pattern);
        console.log(opts.json ? JSON.stringify(entries, null, 2) : formatStatsTable(entries));
      } catch (e) {
        console.error(`boxvm stats: ${e instanceof VBoxError ? `${e.message} (${e.code})` : String(e)}`);
        process.exitCode = 1;
      } finally {
        if (vm?.alive) {
          if (vm.state !== 1 && vm.state !== 9) await vm.powerOff().catch(() => undefined);
          await vm.destroy().catch(() => undefined);
        }
      }
    });
}
