/**
 * Drives a serial console from a test: collects output, waits for text, types commands. Works on a
 * boxvm VM console (VM.console("serial0")) and on a QEMU child process (-nographic).
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { fetchDebian, findDebianGuest, type DebianGuest } from "../../src/cli/commands/image.ts";
import { DEBIAN_CMDLINE } from "../../src/cli/commands/run.ts";
import { VM } from "../../src/vm/Vm.ts";
import { VMSTATE } from "../../src/vm/types.ts";

/** The byte streams of a console. */
export interface ConsoleLike {
  onData(cb: (bytes: Uint8Array) => void): unknown;
  write(bytes: Uint8Array | string): void;
}

/** Collects a console's output and waits on it. */
export class ConsoleDriver {
  #out = "";
  readonly #c: ConsoleLike;
  #waiters: (() => void)[] = [];
  constructor(c: ConsoleLike) {
    this.#c = c;
    c.onData((b) => {
      this.#out += Buffer.from(b).toString("latin1");
      for (const w of this.#waiters) w();
    });
  }
  /** Everything received so far. */
  get output(): string {
    return this.#out;
  }
  /** Resolves when the output after `from` contains `text`; rejects after `ms` with the output's tail. */
  waitFor(text: string, ms: number, from = 0): Promise<number> {
    return new Promise((resolve, reject) => {
      const check = (): boolean => {
        const i = this.#out.indexOf(text, from);
        if (i < 0) return false;
        clearTimeout(t);
        this.#waiters = this.#waiters.filter((w) => w !== check);
        resolve(i + text.length);
        return true;
      };
      const t = setTimeout(() => {
        this.#waiters = this.#waiters.filter((w) => w !== check);
        reject(new Error(`Timed out after ${String(ms)} ms waiting for ${JSON.stringify(text)}; output ends with:\n${this.#out.slice(-1500)}`));
      }, ms);
      if (!check()) this.#waiters.push(check);
    });
  }
  /** Types text without waiting for anything. */
  write(text: string): void {
    this.#c.write(text);
  }
  /** Types a line (CR-terminated) and waits for the next `prompt`; returns the output in between. */
  async command(line: string, prompt: string, ms: number): Promise<string> {
    const from = this.#out.length;
    this.#c.write(`${line}\r`);
    const end = await this.waitFor(prompt, ms, from + line.length);
    return this.#out.slice(from, end);
  }
}

/** True when a program is on PATH. */
export function have(cmd: string): boolean {
  return spawnSync("sh", ["-c", `command -v ${cmd}`], { stdio: "ignore" }).status === 0;
}

/** A QEMU (-nographic) child process as a console. */
export function qemuConsole(args: string[]): { proc: ChildProcess; console: ConsoleLike; exited: Promise<number | null> } {
  const proc = spawn("qemu-system-i386", ["-nographic", "-no-reboot", ...args], { stdio: ["pipe", "pipe", "pipe"] });
  const exited = new Promise<number | null>((r) => proc.on("exit", (code) => r(code)));
  return {
    proc,
    exited,
    console: {
      onData: (cb) => {
        proc.stdout!.on("data", (d: Buffer) => cb(new Uint8Array(d)));
        proc.stderr!.on("data", (d: Buffer) => cb(new Uint8Array(d)));
      },
      write: (b) => proc.stdin!.write(b),
    },
  };
}

/** A deterministic file body of `lines` lines (letters and digits only: safe inside '...'). */
export function testFileLines(lines: number, seed = 1): string[] {
  const abc = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  let x = seed >>> 0 || 1;
  const out: string[] = [];
  for (let i = 0; i < lines; i++) {
    let s = "";
    for (let j = 0; j < 60; j++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      x >>>= 0;
      s += abc[x % abc.length];
    }
    out.push(s);
  }
  return out;
}

/** md5 hex of a text. */
export function md5(text: string): string {
  return createHash("md5").update(text).digest("hex");
}

/**
 * The Linux part shared by the boxvm and QEMU boot tests: at the shell prompt, write a file through
 * the console with printf, then `uname -r; md5sum`; returns what the guest printed and what was expected.
 */
export async function linuxConsoleCheck(
  d: ConsoleDriver,
  prompt: string,
  ms: number,
): Promise<{ uname: string; md5: string; expectMd5: string }> {
  const lines = testFileLines(64);
  await d.command("rm -f /tmp/t", prompt, ms);
  for (let i = 0; i < lines.length; i += 8) {
    const chunk = lines.slice(i, i + 8).map((l) => `'${l}'`).join(" ");
    await d.command(`printf '%s\\n' ${chunk} >> /tmp/t`, prompt, ms);
  }
  const out = await d.command("uname -r; md5sum /tmp/t", prompt, ms);
  const uname = /\n([0-9][^\s]*)\r?\n/.exec(out)?.[1] ?? "";
  const md5sum = /\n([0-9a-f]{32}) {2}\/tmp\/t/.exec(out)?.[1] ?? "";
  return { uname, md5: md5sum, expectMd5: md5(lines.map((l) => `${l}\n`).join("")) };
}

/** A VM of the Debian guest with its serial console driven (debianVm). */
export interface DebianVm {
  guest: DebianGuest;
  /** The configuration the VM was created from (128 MiB, DEBIAN_CMDLINE, plus the extra /Boot keys). */
  config: { RamSize: number; Boot: Record<string, unknown> };
  vm: VM;
  console: ConsoleDriver;
  /** Powers the VM off and destroys it, whatever state it is in (for `finally`). */
  dispose(): Promise<void>;
}

/**
 * Creates (not powers on) a VM of the Debian guest, fetched when not cached, with `boot` added to
 * its /Boot keys. BOXVM_BOOT_VERBOSE=1 copies the guest's console to stderr.
 */
export async function debianVm(boot: Record<string, unknown> = {}): Promise<DebianVm> {
  const guest = findDebianGuest() ?? (await fetchDebian()).guest;
  const config = { RamSize: 128 << 20, Boot: { Kernel: guest.kernel, Initrd: guest.initrd, Cmdline: DEBIAN_CMDLINE, ...boot } };
  const vm = await VM.create({ config });
  const serial = vm.console("serial0");
  const console = new ConsoleDriver(serial);
  if (process.env["BOXVM_BOOT_VERBOSE"] === "1") serial.onData((b) => process.stderr.write(b));
  const dispose = async (): Promise<void> => {
    if (vm.alive && vm.state !== VMSTATE.OFF) await vm.powerOff();
    if (vm.alive) await vm.destroy();
  };
  return { guest, config, vm, console, dispose };
}
