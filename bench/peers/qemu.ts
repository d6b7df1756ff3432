/**
 * QEMU as a benchmark peer: qemu-system-i386 (Debian package qemu-system-x86) with TCG, the serial
 * console on stdio (-nographic). Power-on is the spawn of the process.
 */
import { spawn, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import type { GuestRun } from "./serial.ts";

export const QEMU_BIN = "qemu-system-i386";
/** Clock ticks per second of /proc/<pid>/stat (USER_HZ, 100 on Linux). */
const CLK_TCK = 100;

/** Why QEMU cannot run here, or null. */
export function qemuMissing(): string | null {
  const r = spawnSync(QEMU_BIN, ["--version"], { encoding: "utf8" });
  if (r.error !== undefined || r.status !== 0) return `${QEMU_BIN} not found (apt-get install qemu-system-x86)`;
  return null;
}

/** QEMU's version line, e.g. "QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)". */
export function qemuVersion(): string {
  const r = spawnSync(QEMU_BIN, ["--version"], { encoding: "utf8" });
  return (r.stdout ?? "").split("\n")[0] ?? "";
}

/** Starts QEMU on the kernel and initrd; the guest's console is the process's stdio. */
export function startQemu(kernel: string, initrd: string, cmdline: string, ramMiB: number): GuestRun {
  const args = [
    "-accel",
    "tcg",
    "-nographic",
    "-no-reboot",
    "-m",
    String(ramMiB),
    "-kernel",
    kernel,
    "-initrd",
    initrd,
    "-append",
    cmdline,
  ];
  const t0 = performance.now();
  const proc = spawn(QEMU_BIN, args, { stdio: ["pipe", "pipe", "pipe"] });
  const exited = new Promise<void>((resolve) => proc.once("exit", () => resolve()));
  let stderr = "";
  proc.stderr.on("data", (d: Buffer) => {
    stderr += d.toString("latin1");
  });
  proc.once("error", (e) => {
    stderr += String(e);
  });
  let stopped = false;
  let lastCpu = 0;
  const cpuSeconds = (): number => {
    // utime + stime of the whole process (fields 14 and 15 of /proc/<pid>/stat, in clock ticks of 1/100 s).
    try {
      const stat = readFileSync(`/proc/${String(proc.pid)}/stat`, "latin1");
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      lastCpu = (Number(f[11]) + Number(f[12])) / CLK_TCK;
    } catch {
      // exited: the last value read
    }
    return lastCpu;
  };
  return {
    t0,
    cpu0: 0,
    cpuSeconds,
    serial: {
      onData: (cb) => {
        proc.stdout.on("data", (d: Buffer) => cb(new Uint8Array(d.buffer, d.byteOffset, d.byteLength)));
        proc.once("exit", (code, signal) => {
          if (!stopped) cb(new TextEncoder().encode(`\n[qemu exited: ${String(code ?? signal)}] ${stderr}\n`));
        });
      },
      write: (text) => {
        proc.stdin.write(text);
      },
    },
    stop: async () => {
      if (stopped) return;
      stopped = true;
      if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGTERM");
      await exited;
    },
  };
}
