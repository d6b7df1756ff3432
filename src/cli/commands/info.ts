/**
 * `boxvm info <state file>`: what a saved state holds and whether it is sound — header fields, units
 * (name, instance, version, size, CRC), RAM page statistics and the overall check. Exits 1 with the
 * error (status name and message) on a damaged or unreadable file.
 */
import type { Command } from "commander";
import { inspectStateFile, type StateReport } from "../../ssm/SsmFile.ts";

function size(n: number): string {
  if (n < 1024) return `${String(n)} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 * 1024 * 1024) return `${(n / (1024 * 1024)).toFixed(2)} MiB`;
  return `${(n / (1024 * 1024 * 1024)).toFixed(2)} GiB`;
}

function pct(part: number, whole: number): string {
  return whole === 0 ? "0.0%" : `${((part * 100) / whole).toFixed(1)}%`;
}

function hex32(v: number): string {
  return `0x${(v >>> 0).toString(16).padStart(8, "0")}`;
}

/** The human-readable report. */
export function formatReport(r: StateReport, showConfig = false): string {
  const lines: string[] = [];
  lines.push(`File:       ${r.path} (${size(r.fileSize)})`);
  const h = r.header;
  if (h !== null) {
    lines.push(`Format:     ${String(h.formatMajor)}.${String(h.formatMinor)}`);
    lines.push(`Created:    ${new Date(h.createdAt).toISOString()}`);
    lines.push(`Written by: boxvm ${h.boxvmVersion}`);
    lines.push(
      `RAM size:   ${size(h.ramSize)} (${String(h.ramSize / h.pageSize)} pages of ${String(h.pageSize)} bytes)`,
    );
    lines.push(`Config:     sha256 ${h.configDigest} (${String(Buffer.byteLength(h.config))} bytes)`);
    if (showConfig) lines.push(h.config);
  }
  lines.push(`Units:      ${String(r.units.length)}`);
  if (r.units.length > 0) {
    const w = Math.max(4, ...r.units.map((u) => u.name.length));
    lines.push(
      `  ${"NAME".padEnd(w)}  ${"INSTANCE".padStart(8)}  ${"VERSION".padStart(7)}  ${"SIZE".padStart(10)}  CRC`,
    );
    for (const u of r.units) {
      lines.push(
        `  ${u.name.padEnd(w)}  ${String(u.instance).padStart(8)}  ${String(u.version).padStart(7)}  ${String(u.size).padStart(10)}  ${hex32(u.crc)} ${u.crcOk ? "ok" : "BAD"}`,
      );
    }
  }
  const m = r.ram;
  lines.push(
    `RAM pages:  ${String(m.pages)} total, ${String(m.zeroPages)} zero (${pct(m.zeroPages, m.pages)}), ${String(m.rawPages)} raw (${pct(m.rawPages, m.pages)}), ${String(m.compressedPages)} compressed (${pct(m.compressedPages, m.pages)}) in ${String(m.chunks)} chunks`,
  );
  lines.push(
    `RAM bytes:  ${size(m.rawBytes)} raw, ${size(m.deflatedBytes)} deflated from ${size(m.inflatedBytes)} (${pct(m.deflatedBytes, m.inflatedBytes)})`,
  );
  if (r.fileCrc !== null) lines.push(`File CRC:   ${hex32(r.fileCrc)} ${r.fileCrcOk === true ? "ok" : "BAD"}`);
  lines.push(r.error === null ? "Check:      OK" : `Check:      FAILED: ${r.error.code}: ${r.error.message}`);
  return lines.join("\n");
}

/** The report as plain JSON data. */
export function reportJson(r: StateReport): unknown {
  return {
    ...r,
    error: r.error === null ? null : { rc: r.error.rc, code: r.error.code, message: r.error.message },
    ok: r.error === null,
  };
}

/** Runs the command; returns the exit code. */
export async function runInfo(
  path: string,
  opts: { json?: boolean; config?: boolean },
  out: (s: string) => void,
  err: (s: string) => void,
): Promise<number> {
  const r = await inspectStateFile(path);
  out(opts.json === true ? JSON.stringify(reportJson(r), null, 2) : formatReport(r, opts.config === true));
  if (r.error !== null) {
    err(`boxvm info: ${r.error.code}: ${r.error.message}`);
    return 1;
  }
  return 0;
}

/** Adds `info` to the CLI. */
export function register(program: Command): void {
  program
    .command("info")
    .description("Show and check a saved state file: header, units, RAM pages, CRCs")
    .argument("<file>", "saved state file")
    .option("--json", "print the report as JSON")
    .option("--config", "print the saved VM config too")
    .action(async (file: string, opts: { json?: boolean; config?: boolean }) => {
      const code = await runInfo(
        file,
        opts,
        (s) => process.stdout.write(`${s}\n`),
        (s) => process.stderr.write(`${s}\n`),
      );
      if (code !== 0) process.exitCode = code;
    });
}
