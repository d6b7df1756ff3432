/**
 * `boxvm run`: boots a machine the way OS developers use QEMU.
 *
 *   boxvm run                                  Debian's kernel + busybox initramfs (fetched on first
 *                                              use), serial console on this terminal
 *   boxvm run --kernel bzImage --initrd rd.gz --append "console=ttyS0"   a Linux kernel
 *   boxvm run --kernel kernel.elf              a Multiboot kernel
 *   boxvm run --bios rom.bin                   a system ROM from the reset vector
 *   boxvm run --load state.sav                 resumes a saved guest
 *
 * Options: --mem <MiB>, --serial stdio|file:<path>|tcp:<port>|none, --post (print POST codes),
 * --save-to <file> (where Ctrl-A s saves), --guest-decompress (a Linux kernel's XZ payload is
 * decompressed by the kernel itself in the guest instead of by the loader on the host:
 * /Boot/HostDecompress 0). The exit device (isa-debug-exit at port 0xF4) is always
 * present: a guest writing v there ends boxvm with status (v << 1) | 1, as QEMU's does.
 * On the terminal: Ctrl-A x quits, Ctrl-A s suspends and saves, Ctrl-A h helps (console/escape.ts).
 */
import type { Command } from "commander";
import { closeSync, mkdirSync, openSync, readSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { buildDemoGuest } from "../../../guest/demo.ts";
import type { CfgmNode } from "../../cfgm/CfgmNode.ts";
import { isBzImage } from "../../loader/bzimage.ts";
import { inspectStateFile } from "../../ssm/SsmFile.ts";
import { VM } from "../../vm/Vm.ts";
import { VMSTATE } from "../../vm/types.ts";
import { ESCAPE_HELP, type EscapeCommand } from "../console/escape.ts";
import { attachFile, attachTcp, parseSerialSpec, type SerialAttachment } from "../console/serial.ts";
import { TerminalConsole } from "../console/terminal.ts";
import { cacheRoot, fetchDebian, findDebianGuest } from "./image.ts";

const MiB = 1024 * 1024;

/** Parsed command-line options. */
export interface RunOptions {
  bios?: string;
  kernel?: string;
  initrd?: string;
  append?: string;
  mem: string;
  serial: string;
  post?: boolean;
  load?: string;
  saveTo?: string;
  demo?: boolean;
  fetch: boolean;
  /** Run the kernel's own decompressor in the guest (/Boot/HostDecompress 0). */
  guestDecompress?: boolean;
}

/** What to boot, decided from the options (and the cache). */
export interface BootPlan {
  /** The /Boot node's values. */
  boot: Record<string, string | number>;
  ramMiB: number;
  /** One line for the user about what boots. */
  what: string;
  /** Why the demo guest boots instead of Debian's (null otherwise). */
  fallbackReason: string | null;
}

/**
 * Default command line for Debian's kernel: the console on COM1, and no crypto self-tests at boot
 * (cryptomgr.notests=1). The self-tests (RSA and friends) cost about 3.8 billion instructions: with
 * them the shell comes after 106 s instead of about 10 s (they pass; before time was
 * instruction-counted they timed out: "Problem loading in-kernel X.509 certificate (-110)"). The
 * benchmark gives QEMU and v86 the same line.
 */
export const DEBIAN_CMDLINE = "console=ttyS0 cryptomgr.notests=1";

/** Parses --mem (MiB, 2..3072). */
export function parseMem(s: string): number {
  const n = Number(s.replace(/M(iB?)?$/i, ""));
  if (!Number.isInteger(n) || n < 2 || n > 3072) throw new Error(`Bad --mem ${JSON.stringify(s)}: MiB from 2 to 3072`);
  return n;
}

/** Writes the demo guest where the loader can read it; returns its path. */
export function writeDemoGuest(): string {
  const bytes = buildDemoGuest();
  for (const dir of [join(cacheRoot(), "demo"), join(tmpdir(), "boxvm-demo")]) {
    try {
      mkdirSync(dir, { recursive: true });
      const p = join(dir, "demo-guest.elf");
      writeFileSync(p, bytes);
      return p;
    } catch {
      /* try the next place */
    }
  }
  throw new Error("Cannot write the demo guest to the cache or the temporary directory");
}

/** Decides what boots (fetching Debian's guest when needed and allowed). */
export async function planBoot(o: RunOptions, log: (s: string) => void): Promise<BootPlan> {
  const ramMiB = parseMem(o.mem);
  const boot: Record<string, string | number> = {};
  if (o.initrd && !o.kernel) throw new Error("--initrd needs --kernel");
  if (o.append !== undefined && !o.kernel) throw new Error("--append needs --kernel");
  if (o.bios) boot["Bios"] = resolve(o.bios);
  if (o.kernel) {
    boot["Kernel"] = resolve(o.kernel);
    if (o.initrd) boot["Initrd"] = resolve(o.initrd);
    if (o.append !== undefined) boot["Cmdline"] = o.append;
    if (o.guestDecompress === true) boot["HostDecompress"] = 0;
    return { boot, ramMiB, what: `kernel ${o.kernel}${o.initrd ? ` with ${o.initrd}` : ""}`, fallbackReason: null };
  }
  if (o.bios) return { boot, ramMiB, what: `BIOS ${o.bios} from the reset vector`, fallbackReason: null };

  let reason: string | null = o.demo === true ? "asked for with --demo" : null;
  if (reason === null) {
    let guest = findDebianGuest();
    if (!guest && o.fetch) {
      log("boxvm: Debian's guest is not in the cache yet; fetching it (boxvm image fetch debian)");
      try {
        guest = (await fetchDebian()).guest;
      } catch (e) {
        reason = `Debian's guest could not be fetched: ${(e as Error).message}`;
      }
    } else if (!guest) {
      reason = "Debian's guest is not in the cache and --no-fetch was given";
    }
    if (guest) {
      boot["Kernel"] = guest.kernel;
      boot["Initrd"] = guest.initrd;
      boot["Cmdline"] = DEBIAN_CMDLINE;
      if (o.guestDecompress === true) boot["HostDecompress"] = 0;
      return {
        boot,
        ramMiB,
        what: `Debian's Linux ${guest.kernelVersion} with a busybox initramfs`,
        fallbackReason: null,
      };
    }
  }
  boot["Kernel"] = writeDemoGuest();
  boot["Cmdline"] = "boxvm-demo";
  return { boot, ramMiB, what: "boxvm's demo guest (guest/demo.ts)", fallbackReason: reason };
}

/** The machine `run` adds to the default PC: the exit device, and POST code reporting with --post. */
export function configureRunMachine(root: CfgmNode, post: boolean): void {
  root.ensureChild("Devices/isa-debug-exit/0/Config");
  if (post) root.ensureChild("Devices/postcode/0/Config").insertInteger("Report", 1);
}

/** True when the file is a Linux bzImage (for a hint; unreadable files are left to the loader). */
function looksLikeLinux(path: string | undefined): boolean {
  if (path === undefined) return false;
  try {
    const fd = openSync(path, "r");
    const head = new Uint8Array(0x300);
    readSync(fd, head, 0, head.length, 0);
    closeSync(fd);
    return isBzImage(head);
  } catch {
    return false;
  }
}

/** A default file name for Ctrl-A s. */
function defaultSavePath(): string {
  const t = new Date().toISOString().replace(/[-:]/g, "").replace(/\..*$/, "").replace("T", "-");
  return resolve(`boxvm-${t}.sav`);
}

/** Runs the command; resolves with the process exit status. */
export async function runMachine(o: RunOptions): Promise<number> {
  const err = (s: string): void => void process.stderr.write(`${s}\n`);
  const serial = parseSerialSpec(o.serial);
  const savePath = o.saveTo ? resolve(o.saveTo) : defaultSavePath();

  // ---- create (and load) the VM
  let vm: VM;
  if (o.load) {
    if (o.kernel || o.bios || o.initrd || o.append !== undefined || o.demo === true || o.guestDecompress === true) {
      throw new Error("--load resumes a saved machine as it was: it takes no --kernel, --bios, --initrd, --append, --demo or --guest-decompress");
    }
    const report = await inspectStateFile(o.load);
    if (report.error || !report.header) {
      throw new Error(`${o.load}: ${report.error ? `${report.error.code}: ${report.error.message}` : "no header"}`);
    }
    if (o.post === true) err("boxvm: --post is ignored with --load (the saved machine's devices are restored as they were)");
    vm = await VM.create({ config: JSON.parse(report.header.config) as object });
    err(`boxvm: resuming ${o.load} (${String(report.header.ramSize / MiB)} MiB)`);
    await vm.load(o.load);
  } else {
    const plan = await planBoot(o, err);
    if (plan.fallbackReason) err(`boxvm: booting the demo guest instead of Debian's: ${plan.fallbackReason}`);
    err(`boxvm: booting ${plan.what}, ${String(plan.ramMiB)} MiB`);
    const kernelPath = plan.boot["Kernel"];
    if (o.guestDecompress === true && looksLikeLinux(typeof kernelPath === "string" ? kernelPath : undefined)) {
      err("boxvm: Linux prints nothing until it has decompressed itself, which takes a while on boxvm's interpreter");
    }
    vm = await VM.create({
      config: { Name: "boxvm-run", RamSize: plan.ramMiB * MiB, Boot: plan.boot },
      configure: (_vm, root) => configureRunMachine(root, o.post === true),
    });
  }
  // ---- consoles
  const guest = vm.console("serial0");
  const stdinTTY = process.stdin.isTTY === true;
  let term: TerminalConsole | null = null;
  let attachment: SerialAttachment | null = null;
  const say = (s: string): void => (term ? term.message(s) : err(`[boxvm] ${s}`));
  // Errors of powerOn/load/resume come back as the rejection (printed once, by the caller).
  let started = false;
  vm.onError((_vm, _u, _rc, _pos, _fmt, _args, message) => {
    if (started) say(`error: ${message}`);
  });

  let finishing = false;
  let finish: (status: number) => void = () => undefined;
  const finished = new Promise<number>((r) => (finish = r));
  const onCommand = async (cmd: EscapeCommand): Promise<void> => {
    if (finishing) return;
    switch (cmd) {
      case "exit":
        say("powering off");
        finishing = true;
        if (vm.state !== VMSTATE.OFF) await vm.powerOff();
        finish(0);
        return;
      case "save": {
        finishing = true;
        if (vm.state === VMSTATE.RUNNING) await vm.suspend();
        say(`saving the machine to ${savePath} ...`);
        const t0 = Date.now();
        await vm.save(savePath);
        say(`saved in ${((Date.now() - t0) / 1000).toFixed(1)} s; resume with: boxvm run --load ${savePath}`);
        await vm.powerOff();
        finish(0);
        return;
      }
      case "reset":
        say("resetting the machine");
        await vm.reset();
        return;
      case "pause":
        if (vm.state === VMSTATE.RUNNING) {
          await vm.suspend();
          say("paused (Ctrl-A p continues)");
        } else if (vm.state === VMSTATE.SUSPENDED) {
          await vm.resume();
          say("continuing");
        }
        return;
      case "help":
        return;
    }
  };

  if (serial.kind === "stdio") {
    term = new TerminalConsole({ input: process.stdin, output: process.stdout }, guest, onCommand);
  } else {
    if (serial.kind === "file") attachment = await attachFile(guest, serial.path);
    else if (serial.kind === "tcp") attachment = await attachTcp(guest, serial.port);
    if (attachment) err(`boxvm: ${attachment.description}`);
    // Escapes from the terminal still work (its bytes go nowhere else).
    if (stdinTTY) {
      term = new TerminalConsole({ input: process.stdin, output: process.stdout }, guest, onCommand, {
        forwardInput: false,
        forwardOutput: false,
      });
    }
  }
  if (o.post === true) {
    vm.console("post").onData((b) => {
      for (const c of b) say(`POST 0x${c.toString(16).padStart(2, "0")}`);
    });
  }

  vm.onState((_vm, state) => {
    if (state === VMSTATE.OFF && !finishing) {
      finishing = true;
      const st = vm.exitStatus;
      if (st !== null) say(`the guest powered off with exit status ${String(st)}`);
      finish(st ?? 0);
    } else if (state === VMSTATE.GURU_MEDITATION) {
      say("the emulator failed (guru meditation); powering off");
      finishing = true;
      void vm.powerOff().finally(() => finish(1));
    }
  });
  const onSignal = (): void => void onCommand("exit");
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);

  if (term) {
    term.start();
    if (serial.kind === "stdio") {
      term.message(
        stdinTTY ? "serial console on this terminal: Ctrl-A x quits, Ctrl-A s saves, Ctrl-A h helps" : "serial console on stdin/stdout",
      );
    }
  }
  try {
    if (o.load) await vm.resume();
    else await vm.powerOn();
    started = true;
  } catch (e) {
    term?.stop();
    await attachment?.close();
    await vm.destroy().catch(() => undefined);
    throw e;
  }

  const status = await finished;
  process.off("SIGINT", onSignal);
  process.off("SIGTERM", onSignal);
  term?.stop();
  await attachment?.close();
  try {
    if (vm.state !== VMSTATE.OFF) await vm.powerOff();
    await vm.destroy();
  } catch (e) {
    err(`boxvm: ${(e as Error).message}`);
  }
  return status;
}

/** Adds `run` to the CLI. */
export function register(program: Command): void {
  program
    .command("run")
    .description("Boot a machine: Debian's kernel + busybox by default, or --kernel/--bios/--load, like qemu -nographic")
    .option("--bios <rom>", "system ROM image, started at the reset vector")
    .option("--kernel <file>", "Linux bzImage or Multiboot kernel (ELF)")
    .option("--initrd <file>", "initrd / initramfs (Multiboot: the first module)")
    .option("--append <cmdline>", "kernel command line")
    .option("-m, --mem <MiB>", "guest RAM in MiB", "128")
    .option("--serial <backend>", "first serial port: stdio, file:<path>, tcp:<port> (127.0.0.1), none", "stdio")
    .option("--post", "print POST codes the guest writes to ports 0x80 and 0x190")
    .option("--load <state>", "resume a saved machine (from Ctrl-A s or the VM API)")
    .option("--save-to <file>", "where Ctrl-A s saves the machine (default ./boxvm-<time>.sav)")
    .option("--demo", "boot boxvm's own demo guest")
    .option("--no-fetch", "do not fetch Debian's guest when it is not cached")
    .option(
      "--guest-decompress",
      "let a Linux kernel decompress itself in the guest (slow on boxvm); by default the loader decompresses its XZ payload on the host and enters the decompressed kernel",
    )
    .addHelpText(
      "after",
      `
On the terminal (--serial stdio):
${ESCAPE_HELP.map((l) => `  ${l}`).join("\n")}

Examples:
  boxvm run                                     Debian's kernel + busybox (fetched on first use)
  boxvm run --kernel bzImage --initrd initramfs.cpio.gz --append "console=ttyS0" --mem 256
  boxvm run --kernel kernel.elf --serial tcp:4555   a Multiboot kernel, console on 127.0.0.1:4555
  boxvm run --bios rom.bin --post                   a ROM from the reset vector, POST codes shown
  boxvm run --load boxvm-20261124-160102.sav        resume a machine saved with Ctrl-A s
A guest that writes v to port 0xF4 ends boxvm with exit status (v << 1) | 1.`,
    )
    .action(async (o: RunOptions) => {
      try {
        process.exitCode = await runMachine(o);
      } catch (e) {
        process.stderr.write(`boxvm run: ${(e as Error).message}\n`);
        process.exitCode = 1;
      }
      // The VM's worker and sockets are gone; do not wait for stray handles (stdin).
      setImmediate(() => process.exit(process.exitCode ?? 0));
    });
}
