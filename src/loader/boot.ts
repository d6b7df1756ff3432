/**
 * Machine boot: what happens at power-on and reset after the devices are reset — load a BIOS ROM,
 * a Linux bzImage + initrd, or a Multiboot kernel, as the configuration's /Boot node says, and set
 * the CPU's entry state.
 *
 * /Boot keys (all optional):
 *   Bios         string  path of a system ROM image, mapped below 4 GiB and 1 MiB (bios.ts)
 *   Kernel       string  path of a kernel: a Linux bzImage or a Multiboot v1 kernel (ELF or a.out kludge)
 *   KernelFormat string  "auto" (default: "HdrS" → Linux, else a Multiboot header), "linux", "multiboot"
 *   Initrd       string  path of an initrd (Linux) / the first module (Multiboot)
 *   Cmdline      string  the kernel command line (a Multiboot kernel gets "<Kernel> <Cmdline>", as
 *                        GRUB and QEMU pass it)
 *   HostDecompress bool  (integer 0/1, default 1) Linux: when the bzImage's payload is XZ, decompress
 *                        it on the host and start the CPU in the decompressed kernel (vmlinux.ts), as
 *                        VMMs booting an uncompressed vmlinux do; 0 runs the kernel's own decompressor
 *                        in the guest (minutes on boxvm's interpreter). Other payload formats, and an
 *                        XZ payload that fails to decompress (with a warning), use the guest's.
 *   RngSeed      bool    (integer 0/1, default 1) Linux 2.09+: pass 32 random bytes from the host as a
 *                        SETUP_RNG_SEED setup_data entry (as QEMU does); the kernel's RNG is ready
 *                        at once instead of extracting from a barely seeded pool for most of its boot.
 * With a Kernel the CPU starts in the kernel (protected mode); with only a Bios it stays at the
 * reset vector; with neither nothing is loaded. A Bios given with a Kernel is mapped too.
 */
import { randomBytes } from "node:crypto";
import type { CfgmNode } from "../cfgm/CfgmNode.ts";
import type { Cpu } from "../cpu/cpu.ts";
import type { PhysMem } from "../mem/PhysMem.ts";
import { mapBios } from "./bios.ts";
import { isBzImage, loadLinux, protocolString } from "./bzimage.ts";
import { hex } from "./bytes.ts";
import { readHostFile } from "./files.ts";
import { findMultibootHeader, loadMultiboot } from "./multiboot.ts";
import type { LoaderCpu } from "./pmode.ts";
import { Status, VBoxError } from "../vm/err.ts";

/** What the boot code works on. */
export interface BootContext {
  /** The root of the VM's configuration (reads /Boot). */
  cfg: CfgmNode;
  mem: PhysMem;
  cpu: Cpu | LoaderCpu;
  /** Reads a file named in the configuration (default: the host file system, cached per path). */
  readFile?: (path: string) => Uint8Array;
  /** Receives one line per thing loaded (default: nothing). */
  log?: (line: string) => void;
  /** Receives warnings: something could not be done as configured (default: stderr). */
  warn?: (line: string) => void;
}

/** Keys accepted under /Boot. */
export const bootConfigKeys: readonly string[] = ["Bios", "Kernel", "KernelFormat", "Initrd", "Cmdline", "HostDecompress", "RngSeed"];

/** Values of /Boot/KernelFormat. */
export const kernelFormats = ["auto", "linux", "multiboot"] as const;
export type KernelFormat = (typeof kernelFormats)[number];

/** What bootMachine did. */
export interface BootResult {
  /** "bios": reset vector; "linux" / "multiboot": kernel entry; "none": nothing configured. */
  kind: "none" | "bios" | "linux" | "multiboot";
  /** EIP the CPU starts at (for a kernel). */
  entry?: number;
}

/** The kernel format of an image ("auto" resolved); throws when it is neither. */
export function detectKernelFormat(image: Uint8Array): "linux" | "multiboot" {
  if (isBzImage(image)) return "linux";
  if (findMultibootHeader(image)) return "multiboot";
  throw new VBoxError(Status.VERR_NOT_SUPPORTED, "Kernel is neither a Linux bzImage (no \"HdrS\" header) nor a Multiboot kernel (no header in the first 8 KiB)");
}

/** Called by the EMT at power-on and after every reset. Throws Error/VBoxError on a bad configuration. */
export function bootMachine(ctx: BootContext): BootResult {
  const boot = ctx.cfg.getChild("Boot");
  if (!boot) return { kind: "none" };
  boot.validateKeys(bootConfigKeys);
  const read = ctx.readFile ?? readHostFile;
  const log = ctx.log ?? ((): void => undefined);
  const biosPath = boot.queryStringDef("Bios", "");
  const kernelPath = boot.queryStringDef("Kernel", "");
  const initrdPath = boot.queryStringDef("Initrd", "");
  const cmdline = boot.queryStringDef("Cmdline", "");
  const format = boot.queryStringDef("KernelFormat", "auto");
  const hostDecompress = boot.queryBoolDef("HostDecompress", true);
  const rngSeed = boot.queryBoolDef("RngSeed", true);
  const warn = ctx.warn ?? ((line: string): void => void process.stderr.write(`boxvm: ${line}\n`));
  if (!(kernelFormats as readonly string[]).includes(format)) {
    throw new VBoxError(Status.VERR_INVALID_PARAMETER, `/Boot/KernelFormat: ${JSON.stringify(format)} is not one of ${kernelFormats.join(", ")}`);
  }
  if (!kernelPath && initrdPath) throw new VBoxError(Status.VERR_INVALID_PARAMETER, "/Boot/Initrd is set without /Boot/Kernel");

  let result: BootResult = { kind: "none" };
  if (biosPath) {
    const m = mapBios(ctx.mem, read(biosPath));
    log(`BIOS ${biosPath} at ${hex(m.highBase)} and ${hex(m.lowBase)}`);
    result = { kind: "bios" };
  }
  if (!kernelPath) return result;

  const kernel = read(kernelPath);
  const initrd = initrdPath ? read(initrdPath) : null;
  const kind = format === "auto" ? detectKernelFormat(kernel) : format === "linux" ? "linux" : "multiboot";
  if (kind === "linux") {
    const info = loadLinux(ctx.mem, ctx.cpu, {
      kernel,
      initrd,
      cmdline,
      hostDecompress,
      rngSeed: rngSeed ? new Uint8Array(randomBytes(32)) : null,
    });
    const p = info.payload;
    if (p.error !== undefined) {
      warn(`could not decompress the kernel's XZ payload on the host (${p.error}); the kernel will decompress itself in the guest, which is much slower`);
    }
    const placed = p.hostDecompressed
      ? `${String(p.decompressedSize)} bytes decompressed on the host (XZ, ${String(Math.round(p.ms ?? 0))} ms), entry ${hex(info.entry)}`
      : `${String(info.header.kernelSize)} bytes at ${hex(info.kernelAddr)}${p.format ? ` (${p.format} payload, decompressed in the guest)` : ""}`;
    log(
      `Linux ${kernelPath}: protocol ${protocolString(info.header.version)}, ${placed}` +
        (initrd ? `, initrd ${String(info.initrdSize)} bytes at ${hex(info.initrdAddr)}` : ""),
    );
    return { kind, entry: info.entry };
  }
  const modules = initrd ? [{ data: initrd, string: initrdPath }] : [];
  // As GRUB and QEMU do, the Multiboot command line starts with the kernel's name.
  const mbCmdline = cmdline ? `${kernelPath} ${cmdline}` : kernelPath;
  const info = loadMultiboot(ctx.mem, ctx.cpu, { kernel, cmdline: mbCmdline, modules });
  log(`Multiboot ${kernelPath}: entry ${hex(info.entry)}, info at ${hex(info.infoAddr)}`);
  return { kind, entry: info.entry };
}
