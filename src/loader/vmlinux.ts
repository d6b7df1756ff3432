/**
 * Host-side decompression of a bzImage's kernel, so that the guest starts in the decompressed
 * kernel (vmlinux) the way Firecracker and Cloud Hypervisor boot an uncompressed vmlinux, instead
 * of spending most of its boot interpreting the kernel's own decompressor.
 *
 * Since boot protocol 2.08 the setup header says where the compressed kernel is: payload_offset
 * (0x248, from the start of the protected-mode code) and payload_length (0x24C). For x86 the
 * payload is vmlinux.bin (the kernel ELF, stripped) followed, for 32-bit relocatable kernels, by
 * its relocation table, compressed; the build appends the uncompressed size as a u32 after the
 * compressed stream (the kernel's decompressor reads it as the output length). Only XZ payloads
 * are decompressed here; other formats (gzip, bzip2, LZMA, LZO, LZ4, zstd) keep the in-guest path.
 *
 * The kernel's decompressor, once done, copies each PT_LOAD segment to LOAD_PHYSICAL_ADDR +
 * (p_paddr - LOAD_PHYSICAL_ADDR) (i.e. p_paddr when it runs at its preferred address, so no
 * relocation is applied) and jumps to the entry (for i386, e_entry = phys_startup_32, physical)
 * in flat 32-bit protected mode with ESI = boot_params and interrupts off; the loader does the same.
 */
import { u32 } from "./bytes.ts";
import { EM_386, parseElf32, PT_LOAD, type Elf32 } from "./elf.ts";
import { isXz, xzDecompress } from "./xz/xz.ts";

/** Setup header offsets of the payload fields (protocol 2.08+). */
export const PAYLOAD_OFFSET = 0x248;
export const PAYLOAD_LENGTH = 0x24c;

/** The compressed payload's format, from its magic bytes. */
export type PayloadFormat = "xz" | "gzip" | "bzip2" | "lzma" | "lzo" | "lz4" | "zstd" | "unknown";

/** The compressed kernel inside a bzImage. */
export interface Payload {
  format: PayloadFormat;
  /** The payload bytes (payload_length of them). */
  data: Uint8Array;
}

/** Names a compressed stream by its magic (the formats Linux's boot decompressors take). */
export function payloadFormat(b: Uint8Array): PayloadFormat {
  if (isXz(b)) return "xz";
  if (b.length >= 2 && b[0] === 0x1f && (b[1] === 0x8b || b[1] === 0x9e)) return "gzip";
  if (b.length >= 3 && b[0] === 0x42 && b[1] === 0x5a && b[2] === 0x68) return "bzip2";
  if (b.length >= 3 && b[0] === 0x5d && b[1] === 0x00 && b[2] === 0x00) return "lzma";
  if (b.length >= 4 && b[0] === 0x89 && b[1] === 0x4c && b[2] === 0x5a && b[3] === 0x4f) return "lzo";
  if (b.length >= 4 && b[0] === 0x02 && b[1] === 0x21 && b[2] === 0x4c && b[3] === 0x18) return "lz4";
  if (b.length >= 4 && b[0] === 0x28 && b[1] === 0xb5 && b[2] === 0x2f && b[3] === 0xfd) return "zstd";
  return "unknown";
}

/**
 * The payload of a bzImage whose protected-mode code starts at `kernelOffset` and is `kernelSize`
 * bytes; null before protocol 2.08 or when the fields point outside the kernel.
 */
export function findPayload(
  image: Uint8Array,
  version: number,
  kernelOffset: number,
  kernelSize: number,
): Payload | null {
  if (version < 0x208 || image.length < PAYLOAD_LENGTH + 4) return null;
  const off = u32(image, PAYLOAD_OFFSET);
  const len = u32(image, PAYLOAD_LENGTH);
  if (len === 0 || off + len > kernelSize || kernelOffset + off + len > image.length) return null;
  const data = image.subarray(kernelOffset + off, kernelOffset + off + len);
  return { format: payloadFormat(data), data };
}

/** The decompressed kernel. */
export interface Vmlinux {
  /** vmlinux.bin (and any relocation data after it). */
  bytes: Uint8Array;
  elf: Elf32;
  /** The PT_LOAD segments with a non-zero size, in file order. */
  loads: Elf32["segments"];
  /** Host milliseconds the decompression took (0 when it came from the cache). */
  ms: number;
}

/** The largest decompressed kernel accepted (Debian's 686 kernel is 16 MiB). */
const MAX_KERNEL_BYTES = 512 * 1024 * 1024;

// One decompression per kernel image: a reset boots the same bytes again (files.ts hands back
// the same array while the file is unchanged).
const cache = new WeakMap<Uint8Array, Vmlinux>();

/**
 * Decompresses an XZ payload and checks that it is an i386 kernel ELF with loadable segments and
 * an entry point inside an executable one. Throws Error naming the problem. The result is kept
 * for the same `cacheKey` array (the whole bzImage).
 */
export function decompressXzKernel(payload: Uint8Array, cacheKey: Uint8Array = payload): Vmlinux {
  const hit = cache.get(cacheKey);
  if (hit) return { ...hit, ms: 0 };
  const t0 = performance.now();
  // The build appends the uncompressed size (u32) after the .xz stream.
  if (payload.length < 4) throw new Error("XZ payload too short");
  const size = u32(payload, payload.length - 4);
  const bytes = xzDecompress(payload.subarray(0, payload.length - 4), { sizeHint: size, maxOutput: MAX_KERNEL_BYTES });
  if (bytes.length !== size) {
    throw new Error(`the decompressed kernel is ${String(bytes.length)} bytes; the bzImage says ${String(size)}`);
  }
  const elf = parseElf32(bytes);
  if (elf.machine !== EM_386) throw new Error("the decompressed kernel is not an i386 ELF");
  const loads = elf.segments.filter((s) => s.type === PT_LOAD && s.memsz > 0);
  if (loads.length === 0) throw new Error("the decompressed kernel ELF has no PT_LOAD segments");
  const entrySeg = loads.find((s) => elf.entry >= s.paddr && elf.entry < s.paddr + s.memsz && (s.flags & 1) !== 0);
  if (!entrySeg)
    throw new Error(
      `the kernel's entry point 0x${elf.entry.toString(16)} is not in an executable PT_LOAD segment (by physical address)`,
    );
  const v: Vmlinux = { bytes, elf, loads, ms: performance.now() - t0 };
  cache.set(cacheKey, v);
  return v;
}
