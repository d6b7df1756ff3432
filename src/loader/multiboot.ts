/**
 * Multiboot v1 kernels (the Multiboot Specification 0.6.96): the header search, ELF32 or "a.out
 * kludge" loading, the boot information structure, and the machine state at entry.
 *
 * Header (32-bit aligned, entirely within the first 8192 bytes of the file):
 *   +0 magic 0x1BADB002  +4 flags  +8 checksum (magic + flags + checksum = 0 mod 2^32)
 *   +12 header_addr  +16 load_addr  +20 load_end_addr  +24 bss_end_addr  +28 entry_addr   (flag 16)
 *   +32 mode_type  +36 width  +40 height  +44 depth                                      (flag 2)
 * flags: bit 0 page-align modules, bit 1 memory info wanted, bit 2 video mode info wanted,
 *        bit 16 the address fields are valid (use them instead of the ELF headers).
 *        Bits 0..15 are requirements: a loader that does not know one of them must refuse.
 *
 * Boot information (what EBX points at):
 *   +0 flags  +4 mem_lower  +8 mem_upper  +12 boot_device  +16 cmdline  +20 mods_count
 *   +24 mods_addr  +28..+43 syms  +44 mmap_length  +48 mmap_addr  +52 drives_length
 *   +56 drives_addr  +60 config_table  +64 boot_loader_name  +68 apm_table  +72..+87 vbe_*
 * info flags: bit 0 mem_*, 2 cmdline, 3 mods, 6 mmap, 9 boot_loader_name.
 * Module entry (16 bytes): mod_start, mod_end (exclusive), string, reserved.
 * mmap entry: size (u32, bytes that follow it: 20), base_addr u64, length u64, type u32.
 *
 * Entry: EAX = 0x2BADB002, EBX = info (physical), CS flat 32-bit execute/read, DS/ES/FS/GS/SS flat
 * read/write, A20 on, CR0.PG = 0, CR0.PE = 1, EFLAGS.VM = 0, IF = 0. ESP and GDTR are the kernel's
 * business (we point GDTR at our flat GDT anyway and give ESP a value below our structures).
 */
import type { PhysMem } from "../mem/PhysMem.ts";
import { alignUp, cString, hex, put32, put64, u32 } from "./bytes.ts";
import { e820Map, LOW_RAM_END } from "./e820.ts";
import { isElf, parseElf32, PT_LOAD } from "./elf.ts";
import { enterFlat32, FLAT_GDT_BYTES, writeFlatGdt, type LoaderCpu } from "./pmode.ts";
import { Status, VBoxError } from "../vm/err.ts";

export const MULTIBOOT_MAGIC = 0x1badb002;
/** EAX at entry. */
export const MULTIBOOT_BOOTLOADER_MAGIC = 0x2badb002;
/** The header must lie within this many bytes of the file's start. */
export const MULTIBOOT_SEARCH = 8192;

/** Header flag bits. */
export const MBH = { PAGE_ALIGN: 1 << 0, MEMORY_INFO: 1 << 1, VIDEO_MODE: 1 << 2, AOUT_KLUDGE: 1 << 16 } as const;
/** Info flag bits. */
export const MBI = { MEM: 1 << 0, CMDLINE: 1 << 2, MODS: 1 << 3, MMAP: 1 << 6, LOADER_NAME: 1 << 9 } as const;

/** Required-bit requests this loader honours (bits 0..15). */
const KNOWN_REQUIRED = MBH.PAGE_ALIGN | MBH.MEMORY_INFO | MBH.VIDEO_MODE;

/** Where our structures go: a bump area in conventional memory. */
export const MULTIBOOT_LAYOUT = {
  /** Initial ESP (the spec leaves ESP undefined). */
  stack: 0x8000,
  /** Start of the area holding the GDT, the info struct, mmap, strings and the module list. */
  area: 0x8000,
  /** End of that area (exclusive): the EBDA. */
  areaEnd: LOW_RAM_END,
} as const;

/** A located header. */
export interface MultibootHeader {
  /** File offset of the header. */
  offset: number;
  flags: number;
  headerAddr: number;
  loadAddr: number;
  loadEndAddr: number;
  bssEndAddr: number;
  entryAddr: number;
}

/** Finds and checks a Multiboot v1 header; null when there is none. */
export function findMultibootHeader(image: Uint8Array): MultibootHeader | null {
  const end = Math.min(image.length, MULTIBOOT_SEARCH) - 12;
  for (let off = 0; off <= end; off += 4) {
    if (u32(image, off) !== MULTIBOOT_MAGIC) continue;
    const flags = u32(image, off + 4);
    if (((MULTIBOOT_MAGIC + flags + u32(image, off + 8)) >>> 0) !== 0) continue;
    const field = (n: number): number => (off + n + 4 <= image.length ? u32(image, off + n) : 0);
    return {
      offset: off,
      flags,
      headerAddr: field(12),
      loadAddr: field(16),
      loadEndAddr: field(20),
      bssEndAddr: field(24),
      entryAddr: field(28),
    };
  }
  return null;
}

/** A boot module (the initrd). */
export interface MultibootModule {
  data: Uint8Array;
  /** The module's string (its "command line"). */
  string: string;
}

/** What to load. */
export interface MultibootOptions {
  kernel: Uint8Array;
  cmdline?: string;
  modules?: readonly MultibootModule[];
}

/** Where things went. */
export interface MultibootInfo {
  header: MultibootHeader;
  entry: number;
  infoAddr: number;
  /** Kernel ranges [start, end) loaded (bss included). */
  ranges: { start: number; end: number }[];
  modules: { start: number; end: number; string: string }[];
}

/** A [start, end) range. */
interface Range {
  start: number;
  end: number;
}

function overlaps(a: Range, b: Range): boolean {
  return a.start < b.end && b.start < a.end;
}

/**
 * Loads a Multiboot v1 kernel and its modules into `mem` and leaves `cpu` at its entry point.
 * Throws Error with the reason when it cannot.
 */
export function loadMultiboot(mem: PhysMem, cpu: LoaderCpu, opts: MultibootOptions): MultibootInfo {
  const image = opts.kernel;
  const h = findMultibootHeader(image);
  if (!h) throw new VBoxError(Status.VERR_NOT_SUPPORTED, `No Multiboot header in the first ${String(MULTIBOOT_SEARCH)} bytes`);
  const unknown = h.flags & 0xffff & ~KNOWN_REQUIRED;
  if (unknown !== 0) {
    throw new VBoxError(Status.VERR_NOT_SUPPORTED, `Multiboot header requires features boxvm does not provide (flags ${hex(unknown)})`);
  }
  const ramTop = mem.ramSize;

  // 1. The kernel image.
  const ranges: Range[] = [];
  const place = (addr: number, bytes: Uint8Array, memsz: number): void => {
    const r = { start: addr, end: addr + memsz };
    if (r.end > ramTop) {
      throw new VBoxError(Status.VERR_NO_MEMORY, `Kernel segment ${hex(r.start)}..${hex(r.end)} is beyond the VM's RAM (${hex(ramTop)})`);
    }
    mem.writeBytes(addr, bytes);
    if (memsz > bytes.length) mem.writeBytes(addr + bytes.length, new Uint8Array(memsz - bytes.length));
    ranges.push(r);
  };
  let entry: number;
  if ((h.flags & MBH.AOUT_KLUDGE) !== 0) {
    if (h.loadAddr > h.headerAddr) throw new VBoxError(Status.VERR_NOT_SUPPORTED, "Multiboot header: load_addr is above header_addr");
    const fileStart = h.offset - (h.headerAddr - h.loadAddr);
    if (fileStart < 0) throw new VBoxError(Status.VERR_NOT_SUPPORTED, "Multiboot header: load_addr lies before the start of the file");
    const loadLen = h.loadEndAddr !== 0 ? h.loadEndAddr - h.loadAddr : image.length - fileStart;
    if (loadLen < 0 || fileStart + loadLen > image.length) {
      throw new VBoxError(Status.VERR_NOT_SUPPORTED, "Multiboot header: load_end_addr is outside the file");
    }
    const memLen = h.bssEndAddr !== 0 ? h.bssEndAddr - h.loadAddr : loadLen;
    if (memLen < loadLen) throw new VBoxError(Status.VERR_NOT_SUPPORTED, "Multiboot header: bss_end_addr is below load_end_addr");
    place(h.loadAddr, image.subarray(fileStart, fileStart + loadLen), memLen);
    entry = h.entryAddr;
  } else {
    if (!isElf(image)) {
      throw new VBoxError(Status.VERR_NOT_SUPPORTED, "Multiboot kernel is not ELF and its header has no address fields (flag 16)");
    }
    const elf = parseElf32(image);
    for (const seg of elf.segments) {
      if (seg.type !== PT_LOAD || seg.memsz === 0) continue;
      place(seg.paddr, image.subarray(seg.offset, seg.offset + seg.filesz), seg.memsz);
    }
    if (ranges.length === 0) throw new VBoxError(Status.VERR_NOT_SUPPORTED, "ELF kernel has no PT_LOAD segment");
    entry = elf.entry;
  }

  // 2. Modules, page aligned above the kernel.
  let next = alignUp(Math.max(0x100000, ...ranges.map((r) => r.end)), 4096);
  const modules: { start: number; end: number; string: string }[] = [];
  for (const m of opts.modules ?? []) {
    const start = next;
    const end = start + m.data.length;
    if (end > ramTop) {
      throw new VBoxError(Status.VERR_NO_MEMORY, `Not enough RAM for module "${m.string}" (${String(m.data.length)} bytes at ${hex(start)})`);
    }
    mem.writeBytes(start, m.data);
    modules.push({ start, end, string: m.string });
    next = alignUp(end, 4096);
  }

  // 3. Our structures in conventional memory, clear of the kernel.
  let bump: number = MULTIBOOT_LAYOUT.area;
  const alloc = (size: number, align = 16): number => {
    const at = alignUp(bump, align);
    const r = { start: at, end: at + size };
    if (r.end > MULTIBOOT_LAYOUT.areaEnd) throw new VBoxError(Status.VERR_NO_MEMORY, "Multiboot information does not fit below 639 KiB");
    for (const k of ranges) {
      if (overlaps(r, k)) {
        throw new VBoxError(Status.VERR_NO_MEMORY, `Kernel at ${hex(k.start)}..${hex(k.end)} overlaps the loader's area ${hex(r.start)}..${hex(r.end)}`);
      }
    }
    bump = r.end;
    return at;
  };
  const gdtAddr = alloc(FLAT_GDT_BYTES, 8);
  writeFlatGdt(mem, gdtAddr);
  const putString = (s: string): number => {
    const b = cString(s);
    const at = alloc(b.length, 1);
    mem.writeBytes(at, b);
    return at;
  };

  const info = new Uint8Array(88);
  const infoAddr = alloc(info.length, 4);
  const flags = MBI.MEM | MBI.CMDLINE | MBI.MODS | MBI.MMAP | MBI.LOADER_NAME;
  put32(info, 4, Math.floor(LOW_RAM_END / 1024)); // mem_lower, KiB from 0
  put32(info, 8, Math.floor((ramTop - 0x100000) / 1024)); // mem_upper, KiB from 1 MiB
  put32(info, 16, putString(opts.cmdline ?? ""));
  const modList = new Uint8Array(16 * modules.length);
  modules.forEach((m, i) => {
    put32(modList, i * 16, m.start);
    put32(modList, i * 16 + 4, m.end);
    put32(modList, i * 16 + 8, putString(m.string));
  });
  const modAddr = modules.length > 0 ? alloc(modList.length, 4) : 0;
  if (modules.length > 0) mem.writeBytes(modAddr, modList);
  put32(info, 20, modules.length);
  put32(info, 24, modAddr);
  const map = e820Map(ramTop);
  const mmap = new Uint8Array(24 * map.length);
  map.forEach((e, i) => {
    put32(mmap, i * 24, 20);
    put64(mmap, i * 24 + 4, e.addr);
    put64(mmap, i * 24 + 12, e.size);
    put32(mmap, i * 24 + 20, e.type);
  });
  const mmapAddr = alloc(mmap.length, 4);
  mem.writeBytes(mmapAddr, mmap);
  put32(info, 44, mmap.length);
  put32(info, 48, mmapAddr);
  put32(info, 64, putString("boxvm"));
  // XXX(approx): a video mode request (header flag 2) is accepted but answered with no video
  // information (info flags 11/12 clear): the machine's console is the serial port.
  put32(info, 0, flags);
  mem.writeBytes(infoAddr, info);

  enterFlat32(cpu, mem, {
    eip: entry,
    gdtAddr,
    eax: MULTIBOOT_BOOTLOADER_MAGIC,
    ebx: infoAddr,
    esp: MULTIBOOT_LAYOUT.stack,
  });
  return { header: h, entry, infoAddr, ranges, modules };
}
