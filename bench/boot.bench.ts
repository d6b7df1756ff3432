/**
 * Boot-to-shell and a fixed guest workload on boxvm and two peers: Debian's 686 kernel with boxvm's
 * busybox initramfs (`boxvm image fetch debian`), 128 MiB, the command line `boxvm run` uses
 * (DEBIAN_CMDLINE: console=ttyS0 and whatever the loader adds), the same on
 *  - boxvm: our VM API in this process (bench/peers/boxvm.ts); by default its loader decompresses
 *    the kernel on the host (Boot/HostDecompress), while the peers run the kernel's own XZ
 *    decompressor in the guest, so boxvm is also booted once that way ("boxvm-guestxz", boot only),
 *    and both boot times are printed,
 *  - QEMU: qemu-system-i386 with TCG, -nographic (bench/peers/qemu.ts; Debian package qemu-system-x86),
 *  - v86: the npm package in this process, with Debian's SeaBIOS (bench/peers/v86.ts; package seabios).
 * Phases (bench/peers/serial.ts): power-on to the first "/ # " prompt; then, typed at the prompt,
 * md5sum of 4 MiB of zeros eight times, and an awk loop of 200000 iterations, each timed from
 * writing the line to the marker echoed after it. Prints every run, then a table of medians (wall
 * seconds, and CPU seconds of the VMM: on a shared machine CPU time is the steadier figure) with
 * the ratios boxvm / QEMU and boxvm / v86. A peer that cannot run is reported and skipped.
 *
 * Environment:
 *  BOXVM_BENCH_RUNS          boxvm runs (default 3)
 *  BOXVM_BENCH_PEER_RUNS     runs of each peer (default 3)
 *  BOXVM_BENCH_VMMS          which to run, comma-separated (default "qemu,v86,boxvm,boxvm-guestxz")
 *  BOXVM_BENCH_GUESTXZ_RUNS  boot-only runs of boxvm with the guest's own decompressor (default 1)
 *  BOXVM_BENCH_BOOT_TIMEOUT  seconds boxvm may take to reach the prompt (default 1200)
 *  BOXVM_BENCH_WORK_TIMEOUT  seconds boxvm may take per workload phase (default 1200)
 *  BOXVM_BENCH_CMDLINE       the kernel command line of all three (default: boxvm's DEBIAN_CMDLINE)
 *  BOXVM_BENCH_VERBOSE=1     copies the guests' consoles to stderr
 *
 * Run alone: npm run bench -- boot
 */
import { loadavg } from "node:os";
import { fetchDebian, findDebianGuest, type DebianGuest } from "../src/cli/commands/image.ts";
import { DEBIAN_CMDLINE } from "../src/cli/commands/run.ts";
import { startBoxvm } from "./peers/boxvm.ts";
import { qemuMissing, qemuVersion, startQemu } from "./peers/qemu.ts";
import { measureRun, PHASES, type GuestRun, type RunResult } from "./peers/serial.ts";
import { startV86, v86Missing, v86Version } from "./peers/v86.ts";

const RAM_MIB = 128;
/** Peers get fixed, ample timeouts: they boot in seconds. */
const PEER_BOOT_S = 300;
const PEER_WORK_S = 300;

function envInt(name: string, dflt: number): number {
  const v = process.env[name];
  if (v === undefined || v === "") return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new Error(`${name}=${v}: expected a whole number`);
  return n;
}

interface Vmm {
  id: string;
  label: string;
  runs: number;
  bootS: number;
  workS: number;
  /** Only the boot is measured (no workload phases). */
  bootOnly?: boolean;
  /** Why it cannot run, or null. */
  missing(): string | null;
  version(): string;
  start(g: DebianGuest): Promise<GuestRun>;
}

interface VmmOutcome {
  vmm: Vmm;
  skipped: string | null;
  runs: RunResult[];
}

function median(xs: number[]): number | null {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function present(xs: (number | null)[]): number[] {
  return xs.filter((x): x is number => x !== null);
}

/** The per-run value of each table row: boot, each phase, and the workload's total. */
function rowValues(r: RunResult, cpu: boolean): (number | null)[] {
  const boot = cpu ? r.bootCpuS : r.bootS;
  const phases = cpu ? r.phaseCpuS : r.phaseS;
  const total = phases.every((x) => x !== null) ? phases.reduce((a: number, x) => a + x!, 0) : null;
  return [boot, ...phases, total];
}

const ROWS = ["boot to shell", ...PHASES.map((p) => p.name), "workload total"];

function fmtS(x: number | null): string {
  return x === null ? "—" : x.toFixed(2);
}

function fmtRatio(a: number | null, b: number | null): string {
  return a === null || b === null || b === 0 ? "—" : `${(a / b).toFixed(1)}×`;
}

function table(outcomes: VmmOutcome[], cpu: boolean): string {
  const byId = new Map(outcomes.map((o) => [o.vmm.id, o]));
  const med = (id: string, row: number): number | null => {
    const o = byId.get(id);
    if (!o) return null;
    return median(present(o.runs.map((r) => rowValues(r, cpu)[row] ?? null)));
  };
  const head = ["phase", "boxvm s", "QEMU s", "v86 s", "boxvm/QEMU", "boxvm/v86"];
  const lines = ROWS.map((name, i) => {
    const b = med("boxvm", i);
    const q = med("qemu", i);
    const v = med("v86", i);
    return [name, fmtS(b), fmtS(q), fmtS(v), fmtRatio(b, q), fmtRatio(b, v)];
  });
  const all = [head, ...lines];
  const widths = head.map((_, c) => Math.max(...all.map((l) => l[c]!.length)));
  const fmt = (l: string[]): string =>
    l.map((x, c) => (c === 0 ? x.padEnd(widths[c]!) : x.padStart(widths[c]!))).join("  ");
  return [fmt(head), widths.map((w) => "-".repeat(w)).join("  "), ...lines.map(fmt)].join("\n");
}

function describeRun(label: string, n: number, r: RunResult, load: string): string {
  const parts = [`boot ${fmtS(r.bootS)} s (cpu ${fmtS(r.bootCpuS)})`];
  for (const [i, p] of PHASES.entries())
    parts.push(`${p.name} ${fmtS(r.phaseS[i] ?? null)} s (cpu ${fmtS(r.phaseCpuS[i] ?? null)})`);
  let s = `${label} run ${String(n)}: ${parts.join(", ")}; load average before ${load}`;
  for (const p of r.problems) s += `\n  WRONG OUTPUT: ${p}`;
  if (r.error !== null) s += `\n  FAILED: ${r.error}`;
  return s;
}

/** The benchmark. */
export default async function bootBench(): Promise<void> {
  const boxvmRuns = envInt("BOXVM_BENCH_RUNS", 3);
  const peerRuns = envInt("BOXVM_BENCH_PEER_RUNS", 3);
  const verbose = process.env["BOXVM_BENCH_VERBOSE"] === "1";
  const cmdline = process.env["BOXVM_BENCH_CMDLINE"] || DEBIAN_CMDLINE;
  const wanted = (process.env["BOXVM_BENCH_VMMS"] ?? "qemu,v86,boxvm,boxvm-guestxz")
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");

  let g = findDebianGuest();
  if (g === null) {
    console.log("no cached Debian guest: fetching it (boxvm image fetch debian)");
    try {
      g = (await fetchDebian()).guest;
    } catch (e) {
      console.log(`boot bench skipped: no Debian guest (${e instanceof Error ? e.message : String(e)})`);
      return;
    }
  }
  const guest = g;

  const vmms: Vmm[] = [
    {
      id: "qemu",
      label: "QEMU",
      runs: peerRuns,
      bootS: PEER_BOOT_S,
      workS: PEER_WORK_S,
      missing: qemuMissing,
      version: () => `${qemuVersion()}, -accel tcg`,
      start: async (x) => startQemu(x.kernel, x.initrd, cmdline, RAM_MIB),
    },
    {
      id: "v86",
      label: "v86",
      runs: peerRuns,
      bootS: PEER_BOOT_S,
      workS: PEER_WORK_S,
      missing: v86Missing,
      version: () => `v86 ${v86Version()} (npm), Node ${process.version}, SeaBIOS from Debian's seabios`,
      start: (x) => startV86(x.kernel, x.initrd, cmdline, RAM_MIB),
    },
    {
      id: "boxvm",
      label: "boxvm",
      runs: boxvmRuns,
      bootS: envInt("BOXVM_BENCH_BOOT_TIMEOUT", 1200),
      workS: envInt("BOXVM_BENCH_WORK_TIMEOUT", 1200),
      missing: () => null,
      version: () => `boxvm (this tree), Node ${process.version}`,
      start: (x) => startBoxvm(x.kernel, x.initrd, cmdline, RAM_MIB),
    },
    {
      id: "boxvm-guestxz",
      label: "boxvm (kernel decompresses itself)",
      runs: envInt("BOXVM_BENCH_GUESTXZ_RUNS", 1),
      bootS: envInt("BOXVM_BENCH_BOOT_TIMEOUT", 1200),
      workS: 0,
      bootOnly: true,
      missing: () => null,
      version: () => `boxvm (this tree), Boot/HostDecompress 0, boot only`,
      start: (x) => startBoxvm(x.kernel, x.initrd, cmdline, RAM_MIB, false),
    },
  ];

  console.log(
    `guest: Debian ${guest.kernelVersion} + busybox initramfs, ${String(RAM_MIB)} MiB, "${cmdline}"; ` +
      `runs: boxvm ${String(boxvmRuns)}, peers ${String(peerRuns)} each (one guest at a time)`,
  );
  const outcomes: VmmOutcome[] = [];
  for (const vmm of vmms) {
    if (!wanted.includes(vmm.id)) continue;
    const o: VmmOutcome = { vmm, skipped: vmm.missing(), runs: [] };
    outcomes.push(o);
    if (o.skipped !== null) {
      console.log(`${vmm.label}: cannot run: ${o.skipped}`);
      continue;
    }
    console.log(`${vmm.label}: ${vmm.version()}`);
    for (let n = 1; n <= vmm.runs; n++) {
      const load = loadavg()
        .map((x) => x.toFixed(2))
        .join(" ");
      let run: GuestRun;
      try {
        run = await vmm.start(guest);
      } catch (e) {
        console.log(`${vmm.label} run ${String(n)}: FAILED to start: ${e instanceof Error ? e.message : String(e)}`);
        break;
      }
      if (verbose) run.serial.onData((b) => process.stderr.write(b));
      let r: RunResult;
      try {
        r = await measureRun(run, vmm.bootS * 1000, vmm.workS * 1000, vmm.bootOnly === true);
      } finally {
        await run.stop();
      }
      o.runs.push(r);
      console.log(describeRun(vmm.label, n, r, load));
      if (r.error !== null) break;
    }
  }

  console.log("\nmedians, wall seconds:");
  console.log(table(outcomes, false));
  console.log("\nmedians, CPU seconds of the VMM (user + system, all its threads):");
  console.log(table(outcomes, true));
  const gx = outcomes.find((o) => o.vmm.id === "boxvm-guestxz");
  if (gx && gx.runs.length > 0) {
    const q = outcomes.find((o) => o.vmm.id === "qemu");
    const wall = median(present(gx.runs.map((r) => r.bootS)));
    const cpu = median(present(gx.runs.map((r) => r.bootCpuS)));
    const qWall = q ? median(present(q.runs.map((r) => r.bootS))) : null;
    console.log(
      `\nboxvm boot to shell with the kernel's own decompressor in the guest (as QEMU and v86 boot): ` +
        `${fmtS(wall)} s wall (${fmtRatio(wall, qWall)} QEMU), ${fmtS(cpu)} s CPU`,
    );
  }
  const runsNote = outcomes.map(
    (o) => `${o.vmm.label} ${o.skipped !== null ? `not run (${o.skipped})` : `${String(o.runs.length)} run(s)`}`,
  );
  console.log(
    `(${runsNote.join("; ")}; boot = power-on to the first "/ # "; a phase = its command line written to its marker printed)`,
  );
}
