/**
 * Linux bzImage loader: the x86 boot protocol (Documentation/arch/x86/boot.rst), protocol 2.06 and
 * later, entered through the 32-bit boot protocol (no real-mode setup code runs).
 *
 * A bzImage is: the real-mode setup (boot sector + setup_sects sectors of 512 bytes, setup_sects 0
 * meaning 4) followed by the protected-mode kernel (syssize * 16 bytes). The setup header starts at
 * 0x1F1 and ends at 0x202 + the byte at 0x201. The loader:
 *   1. builds boot_params (the "zero page"): zeroes, the setup header copied at 0x1F1, the fields a
 *      loader writes (type_of_loader, loadflags, cmd_line_ptr, ramdisk_*, heap_end_ptr), the e820
 *      table, screen_info, alt_mem_k;
 *   2. copies the protected-mode kernel to 1 MiB, the initrd as high as allowed, the command line;
 *   3. enters at code32_start in flat 32-bit protected mode with ESI = boot_params, EBX/EBP/EDI = 0.
 *
 * With hostDecompress (the default) and an XZ payload (protocol 2.08+, vmlinux.ts), step 2 puts the
 * decompressed kernel's PT_LOAD segments at their physical addresses instead of the compressed
 * kernel at 1 MiB, and step 3 enters at the ELF entry point (phys_startup_32) in the same flat
 * 32-bit state, which is where the kernel's own decompressor would jump when done. boot_params,
 * the command line, the initrd and the e820 map are the same either way. A payload that is not
 * XZ, or that fails to decompress, keeps the compressed kernel and its in-guest decompressor.
 *
 * Offsets used (boot_params, zero-page.rst; setup header, boot.rst):
 *   0x000 screen_info (0x06 orig_video_mode, 0x07 orig_video_cols, 0x0E orig_video_lines,
 *         0x0F orig_video_isVGA)
 *   0x0C0 ext_ramdisk_image  0x0C4 ext_ramdisk_size  0x0C8 ext_cmd_line_ptr
 *   0x1E0 alt_mem_k          0x1E8 e820_entries      0x1EF sentinel
 *   0x1F1 setup_sects  0x1F4 syssize  0x1FA vid_mode  0x202 "HdrS"  0x206 version
 *   0x210 type_of_loader  0x211 loadflags  0x214 code32_start  0x218 ramdisk_image
 *   0x21C ramdisk_size  0x224 heap_end_ptr  0x228 cmd_line_ptr  0x22C initrd_addr_max
 *   0x230 kernel_alignment  0x234 relocatable_kernel  0x235 min_alignment  0x236 xloadflags
 *   0x238 cmdline_size  0x248 payload_offset  0x24C payload_length  0x258 pref_address (u64)
 *   0x260 init_size
 *   0x2D0 e820_table (128 entries of 20 bytes: u64 addr, u64 size, u32 type)
 */
import type { PhysMem } from "../mem/PhysMem.ts";
import { alignDown, alignUp, cString, hex, put16, put32, put64, put8, u16, u32, u64, u8 } from "./bytes.ts";
import { E820, e820Map, type E820Entry } from "./e820.ts";
import { enterFlat32, writeFlatGdt, type LoaderCpu } from "./pmode.ts";
import { decompressXzKernel, findPayload, type PayloadFormat, type Vmlinux } from "./vmlinux.ts";
import { Status, VBoxError } from "../vm/err.ts";

/** loadflags bits. */
export const LOADED_HIGH = 0x01;
export const KASLR_FLAG = 0x02;
export const QUIET_FLAG = 0x20;
export const KEEP_SEGMENTS = 0x40;
export const CAN_USE_HEAP = 0x80;

/** boot_params offsets the loader writes. */
export const BP = {
  ORIG_VIDEO_MODE: 0x06,
  ORIG_VIDEO_COLS: 0x07,
  ORIG_VIDEO_LINES: 0x0e,
  ORIG_VIDEO_ISVGA: 0x0f,
  EXT_RAMDISK_IMAGE: 0x0c0,
  EXT_RAMDISK_SIZE: 0x0c4,
  EXT_CMD_LINE_PTR: 0x0c8,
  ALT_MEM_K: 0x1e0,
  E820_ENTRIES: 0x1e8,
  SENTINEL: 0x1ef,
  SETUP_SECTS: 0x1f1,
  SYSSIZE: 0x1f4,
  VID_MODE: 0x1fa,
  HEADER: 0x202,
  VERSION: 0x206,
  TYPE_OF_LOADER: 0x210,
  LOADFLAGS: 0x211,
  CODE32_START: 0x214,
  RAMDISK_IMAGE: 0x218,
  RAMDISK_SIZE: 0x21c,
  HEAP_END_PTR: 0x224,
  CMD_LINE_PTR: 0x228,
  INITRD_ADDR_MAX: 0x22c,
  KERNEL_ALIGNMENT: 0x230,
  RELOCATABLE_KERNEL: 0x234,
  MIN_ALIGNMENT: 0x235,
  XLOADFLAGS: 0x236,
  CMDLINE_SIZE: 0x238,
  SETUP_DATA: 0x250,
  PREF_ADDRESS: 0x258,
  INIT_SIZE: 0x260,
  E820_TABLE: 0x2d0,
} as const;

/** Size of boot_params. */
export const ZERO_PAGE_BYTES = 4096;
/** Entries e820_table holds. */
export const E820_MAX_ENTRIES = 128;
/** "HdrS" little-endian. */
const HDRS = 0x53726448;
/** The oldest protocol this loader accepts. */
export const MIN_PROTOCOL = 0x206;

/** Where the loader puts its own structures in conventional memory. */
export const LINUX_LAYOUT = {
  /** boot_params. */
  zeroPage: 0x10000,
  /** The boot GDT. */
  gdt: 0x11000,
  /** The kernel command line (cmdline_size + 1 bytes at most). */
  cmdline: 0x20000,
  /** A setup_data entry (the RNG seed), after the command line's page. */
  setupData: 0x21000,
  /** Initial ESP (the protocol does not require one; startup_32 uses boot_params' scratch field). */
  stack: 0x9f000,
  /** The protected-mode kernel. */
  kernel: 0x100000,
} as const;

/** The setup header fields, as read from the image. */
export interface SetupHeader {
  /** Protocol version, e.g. 0x20f for 2.15. */
  version: number;
  setupSects: number;
  /** Size of the protected-mode code in 16-byte paragraphs. */
  syssize: number;
  loadflags: number;
  code32Start: number;
  initrdAddrMax: number;
  kernelAlignment: number;
  relocatable: boolean;
  minAlignment: number;
  xloadflags: number;
  /** Longest command line, excluding the NUL. */
  cmdlineSize: number;
  prefAddress: number;
  /** Bytes the kernel needs from its runtime start while it decompresses and initializes. */
  initSize: number;
  /** End of the setup header (exclusive): 0x202 + byte at 0x201. */
  headerEnd: number;
  /** Byte offset of the protected-mode kernel in the file. */
  kernelOffset: number;
  /** Bytes of protected-mode kernel. */
  kernelSize: number;
}

/** True when the image carries a setup header ("HdrS" at 0x202). */
export function isBzImage(image: Uint8Array): boolean {
  return image.length >= 0x264 && u32(image, BP.HEADER) === HDRS;
}

/** Reads and checks the setup header; throws Error with the reason for an image it cannot boot. */
export function parseSetupHeader(image: Uint8Array): SetupHeader {
  if (image.length < 0x264 || u32(image, BP.HEADER) !== HDRS) {
    throw new VBoxError(Status.VERR_NOT_SUPPORTED, 'Not a Linux bzImage: no "HdrS" setup header at 0x202');
  }
  const version = u16(image, BP.VERSION);
  if (version < MIN_PROTOCOL) {
    throw new VBoxError(Status.VERR_NOT_SUPPORTED, 
      `Linux boot protocol ${protocolString(version)} is too old: boxvm loads 2.06 and later (kernel 2.6.22+)`,
    );
  }
  const loadflags = u8(image, BP.LOADFLAGS);
  if ((loadflags & LOADED_HIGH) === 0) {
    throw new VBoxError(Status.VERR_NOT_SUPPORTED, "Not a bzImage: loadflags.LOADED_HIGH is clear (zImage kernels load at 0x10000; unsupported)");
  }
  const rawSects = u8(image, BP.SETUP_SECTS);
  const setupSects = rawSects === 0 ? 4 : rawSects;
  const syssize = u32(image, BP.SYSSIZE);
  const kernelOffset = (setupSects + 1) * 512;
  if (kernelOffset >= image.length) {
    throw new VBoxError(Status.VERR_NOT_SUPPORTED, `Truncated bzImage: setup_sects=${String(setupSects)} but the file is ${String(image.length)} bytes`);
  }
  const declared = syssize * 16;
  const available = image.length - kernelOffset;
  if (declared > available) {
    throw new VBoxError(Status.VERR_NOT_SUPPORTED, 
      `Truncated bzImage: syssize says ${String(declared)} bytes of kernel, the file has ${String(available)}`,
    );
  }
  const headerEnd = 0x202 + u8(image, 0x201);
  const hasPref = version >= 0x20a;
  return {
    version,
    setupSects,
    syssize,
    loadflags,
    code32Start: u32(image, BP.CODE32_START),
    initrdAddrMax: u32(image, BP.INITRD_ADDR_MAX),
    kernelAlignment: u32(image, BP.KERNEL_ALIGNMENT),
    relocatable: u8(image, BP.RELOCATABLE_KERNEL) !== 0,
    minAlignment: u8(image, BP.MIN_ALIGNMENT),
    xloadflags: version >= 0x20c ? u16(image, BP.XLOADFLAGS) : 0,
    cmdlineSize: u32(image, BP.CMDLINE_SIZE),
    prefAddress: hasPref ? u64(image, BP.PREF_ADDRESS) : LINUX_LAYOUT.kernel,
    initSize: hasPref ? u32(image, BP.INIT_SIZE) : 0,
    headerEnd,
    kernelOffset,
    // syssize 0 would be an odd image; fall back to the rest of the file then
    kernelSize: declared > 0 ? declared : available,
  };
}

/** "2.15" from 0x20f. */
export function protocolString(version: number): string {
  return `${String(version >> 8)}.${String(version & 0xff).padStart(2, "0")}`;
}

/** What to load. */
export interface LinuxBootOptions {
  kernel: Uint8Array;
  initrd?: Uint8Array | null;
  cmdline?: string;
  /**
   * Decompress an XZ payload on the host and enter the decompressed kernel (default true); false
   * runs the kernel's own decompressor in the guest.
   */
  hostDecompress?: boolean;
  /**
   * Bytes for a SETUP_RNG_SEED setup_data entry (protocol 2.09+), as QEMU and crosvm pass: the
   * kernel credits them to its RNG at once (random.trust_bootloader), instead of extracting from a
   * barely seeded input pool on every get_random_u32() for most of its boot. null: none.
   */
  rngSeed?: Uint8Array | null;
}

/** setup_data type of a random seed (Linux's SETUP_RNG_SEED). */
export const SETUP_RNG_SEED = 9;

/** What became of the kernel's payload. */
export interface LinuxPayloadInfo {
  /** The payload's compression (null: protocol before 2.08 or no payload fields). */
  format: PayloadFormat | null;
  /** True when the decompressed kernel was loaded and is entered directly. */
  hostDecompressed: boolean;
  /** Decompressed bytes (vmlinux.bin and relocations), when host-decompressed. */
  decompressedSize?: number;
  /** Host milliseconds spent decompressing (0 when reused from an earlier boot). */
  ms?: number;
  /** Why host decompression of an XZ payload failed (the in-guest decompressor runs instead). */
  error?: string;
}

/** Where things went (for messages and tests). */
export interface LinuxBootInfo {
  header: SetupHeader;
  zeroPage: number;
  cmdlineAddr: number;
  kernelAddr: number;
  entry: number;
  initrdAddr: number;
  initrdSize: number;
  /** [start, end) the kernel occupies once it has moved itself to its runtime address. */
  runtime: { start: number; end: number };
  e820: E820Entry[];
  payload: LinuxPayloadInfo;
  /** The [start, end) physical ranges of the loaded ELF segments, when host-decompressed. */
  segments?: { start: number; end: number }[];
}

/**
 * Where the kernel runs after its decompressor moved it: a relocatable kernel loaded at `loadAddr`
 * runs at loadAddr rounded up to kernel_alignment, but not below pref_address (its
 * LOAD_PHYSICAL_ADDR); a fixed one at pref_address. It needs init_size bytes from there.
 */
export function runtimeRange(h: SetupHeader, loadAddr: number): { start: number; end: number } {
  let start = h.prefAddress;
  if (h.relocatable && h.kernelAlignment > 0) start = Math.max(alignUp(loadAddr, h.kernelAlignment), h.prefAddress);
  const size = Math.max(h.initSize, h.kernelSize);
  return { start, end: start + size };
}

/**
 * Loads a bzImage, its initrd and command line into `mem` and leaves `cpu` at the kernel's 32-bit
 * entry. Throws Error with the reason when the image or the memory size does not allow it.
 */
export function loadLinux(mem: PhysMem, cpu: LoaderCpu, opts: LinuxBootOptions): LinuxBootInfo {
  const image = opts.kernel;
  const h = parseSetupHeader(image);
  const ramTop = mem.ramSize;
  const L = LINUX_LAYOUT;

  // Command line
  const cmdline = opts.cmdline ?? "";
  const cmdBytes = cString(cmdline);
  if (cmdBytes.length - 1 > h.cmdlineSize) {
    throw new VBoxError(Status.VERR_INVALID_PARAMETER, 
      `Kernel command line is ${String(cmdBytes.length - 1)} bytes; this kernel accepts ${String(h.cmdlineSize)}`,
    );
  }

  // The payload: decompressed here when it is XZ (and allowed), else left to the guest.
  const found = findPayload(image, h.version, h.kernelOffset, h.kernelSize);
  const payload: LinuxPayloadInfo = { format: found ? found.format : null, hostDecompressed: false };
  let vmlinux: Vmlinux | null = null;
  if ((opts.hostDecompress ?? true) && found?.format === "xz") {
    try {
      vmlinux = decompressXzKernel(found.data, image);
      payload.hostDecompressed = true;
      payload.decompressedSize = vmlinux.bytes.length;
      payload.ms = vmlinux.ms;
    } catch (e) {
      payload.error = e instanceof Error ? e.message : String(e);
    }
  }

  // The protected-mode kernel at 1 MiB (or the decompressed kernel at its physical addresses);
  // check that it and its runtime area fit in RAM.
  const kernelAddr = L.kernel;
  const kernelEnd = vmlinux ? 0 : kernelAddr + h.kernelSize;
  const runtime = runtimeRange(h, kernelAddr);
  const segments = vmlinux ? vmlinux.loads.map((sg) => ({ start: sg.paddr, end: sg.paddr + sg.memsz })) : [];
  const needTop = Math.max(kernelEnd, runtime.end, ...segments.map((r) => r.end));
  if (needTop > ramTop) {
    throw new VBoxError(Status.VERR_NO_MEMORY, 
      `Not enough RAM for this kernel: it needs memory up to ${hex(needTop)} (${String(Math.ceil(needTop / 1048576))} MiB), ` +
        `the VM has ${String(ramTop / 1048576)} MiB`,
    );
  }

  // The initrd: page aligned, as high as initrd_addr_max and RAM allow, clear of the kernel.
  let initrdAddr = 0;
  const initrd = opts.initrd ?? null;
  const initrdSize = initrd ? initrd.length : 0;
  if (initrd && initrdSize > 0) {
    const limit = Math.min(h.initrdAddrMax + 1, ramTop);
    initrdAddr = alignDown(limit - initrdSize, 4096);
    if (initrdAddr < needTop) {
      throw new VBoxError(Status.VERR_NO_MEMORY, 
        `Not enough RAM for the initrd (${String(Math.ceil(initrdSize / 1024))} KiB) above the kernel, ` +
          `which needs memory up to ${hex(needTop)}: give the VM more memory`,
      );
    }
  }

  // boot_params
  const zp = new Uint8Array(ZERO_PAGE_BYTES);
  zp.set(image.subarray(BP.SETUP_SECTS, Math.min(h.headerEnd, image.length)), BP.SETUP_SECTS);
  put8(zp, BP.TYPE_OF_LOADER, 0xff); // undefined loader ID
  put8(zp, BP.LOADFLAGS, (h.loadflags | CAN_USE_HEAP) & ~(KEEP_SEGMENTS | KASLR_FLAG));
  put32(zp, BP.CODE32_START, kernelAddr);
  put16(zp, BP.HEAP_END_PTR, 0xe000 - 0x200);
  put32(zp, BP.CMD_LINE_PTR, L.cmdline);
  put32(zp, BP.EXT_CMD_LINE_PTR, 0);
  put32(zp, BP.RAMDISK_IMAGE, initrdAddr);
  put32(zp, BP.RAMDISK_SIZE, initrdSize);
  put32(zp, BP.EXT_RAMDISK_IMAGE, 0);
  put32(zp, BP.EXT_RAMDISK_SIZE, 0);
  put16(zp, BP.VID_MODE, 0xffff); // "normal" text mode
  // screen_info: an 80x25 text screen that is not VGA (the console is the serial port)
  put8(zp, BP.ORIG_VIDEO_MODE, 3);
  put8(zp, BP.ORIG_VIDEO_COLS, 80);
  put8(zp, BP.ORIG_VIDEO_LINES, 25);
  put8(zp, BP.ORIG_VIDEO_ISVGA, 0);
  // alt_mem_k: KiB of memory above 1 MiB (what INT 15h E801 would say)
  put32(zp, BP.ALT_MEM_K, Math.floor((ramTop - 0x100000) / 1024));
  const e820 = e820Map(ramTop);
  put8(zp, BP.E820_ENTRIES, e820.length);
  e820.forEach((e, i) => {
    const off = BP.E820_TABLE + i * 20;
    put64(zp, off, e.addr);
    put64(zp, off + 8, e.size);
    put32(zp, off + 16, e.type);
  });

  // The decompressed kernel's segments: in RAM above 1 MiB per the e820 map, below the initrd.
  if (vmlinux) checkSegments(segments, e820, initrd && initrdSize > 0 ? initrdAddr : ramTop);

  // setup_data: one entry { u64 next = 0; u32 type; u32 len; data } (a list the kernel walks)
  const seed = opts.rngSeed ?? null;
  if (seed && seed.length > 0 && h.version >= 0x209) {
    const sd = new Uint8Array(16 + seed.length);
    put32(sd, 8, SETUP_RNG_SEED);
    put32(sd, 12, seed.length);
    sd.set(seed, 16);
    mem.writeBytes(L.setupData, sd);
    put64(zp, BP.SETUP_DATA, L.setupData);
  }
  mem.writeBytes(L.zeroPage, zp);
  mem.writeBytes(L.cmdline, cmdBytes);
  let entry: number = kernelAddr;
  if (vmlinux) {
    for (const sg of vmlinux.loads) {
      mem.writeBytes(sg.paddr, vmlinux.bytes.subarray(sg.offset, sg.offset + sg.filesz));
      // .bss and .brk: the kernel clears its BSS itself, but a reset must not leave old data there
      if (sg.memsz > sg.filesz) mem.writeBytes(sg.paddr + sg.filesz, new Uint8Array(sg.memsz - sg.filesz));
    }
    entry = vmlinux.elf.entry;
  } else {
    mem.writeBytes(kernelAddr, image.subarray(h.kernelOffset, h.kernelOffset + h.kernelSize));
  }
  if (initrd && initrdSize > 0) mem.writeBytes(initrdAddr, initrd);
  writeFlatGdt(mem, L.gdt);

  // 32-bit boot protocol entry: ESI = boot_params, EBP = EDI = EBX = 0, IF = 0. The decompressed
  // kernel is entered the same way (its decompressor jumps there with ESI = boot_params, EBX = 0;
  // startup_32 loads its own GDT and stack).
  enterFlat32(cpu, mem, { eip: entry, gdtAddr: L.gdt, esi: L.zeroPage, esp: L.stack });

  return {
    header: h,
    zeroPage: L.zeroPage,
    cmdlineAddr: L.cmdline,
    kernelAddr: vmlinux ? segments[0]!.start : kernelAddr,
    entry,
    initrdAddr,
    initrdSize,
    runtime,
    e820,
    payload,
    ...(vmlinux ? { segments } : {}),
  };
}

/**
 * Checks that each loaded segment lies inside one usable e820 range at or above 1 MiB (clear of
 * the loader's structures in low memory) and below `limit` (the initrd, or the top of RAM).
 */
function checkSegments(segments: readonly { start: number; end: number }[], e820: readonly E820Entry[], limit: number): void {
  for (const r of segments) {
    const where = `${hex(r.start)}..${hex(r.end)}`;
    if (r.start < LINUX_LAYOUT.kernel) {
      throw new VBoxError(Status.VERR_NOT_SUPPORTED, `The decompressed kernel has a segment at ${where}, below 1 MiB`);
    }
    const inRam = e820.some((e) => e.type === E820.RAM && r.start >= e.addr && r.end <= e.addr + e.size);
    if (!inRam) {
      throw new VBoxError(Status.VERR_NO_MEMORY, `Not enough RAM for this kernel: its segment ${where} is not in usable RAM`);
    }
    if (r.end > limit) {
      throw new VBoxError(Status.VERR_NO_MEMORY, `The decompressed kernel's segment ${where} overlaps the initrd at ${hex(limit)}: give the VM more memory`);
    }
  }
}
