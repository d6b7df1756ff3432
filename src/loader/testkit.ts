/**
 * Helpers for the loader tests: a CPU stand-in over a real CpuState, and synthetic kernel images
 * built field by field from the specifications (bzImage setup header, ELF32, Multiboot header).
 */
import { CpuState, Slot } from "../cpu/state.ts";
import { put16, put32, put64, put8 } from "./bytes.ts";
import { crc32 } from "./xz/crc.ts";
import type { LoaderCpu } from "./pmode.ts";

/** A CPU stand-in: the real state buffer, counting modeChanged() calls. */
export class FakeCpu implements LoaderCpu {
  readonly s = new CpuState();
  modeChangedCalls = 0;
  modeChanged(): void {
    this.modeChangedCalls++;
  }
  setFlags(value: number): void {
    this.s.i32[Slot.EFLAGS] = value;
  }
}

/** Options of a synthetic bzImage. */
export interface FakeBzImageOptions {
  version?: number;
  setupSects?: number;
  loadflags?: number;
  kernel?: Uint8Array;
  initrdAddrMax?: number;
  kernelAlignment?: number;
  relocatable?: boolean;
  cmdlineSize?: number;
  prefAddress?: number;
  initSize?: number;
  /**
   * A compressed kernel: the protected-mode part becomes a 64-byte stand-in for the decompressor
   * followed by this payload, and payload_offset/payload_length point at it.
   */
  payload?: Uint8Array;
}

/** A bzImage with a setup header (no real code): the protected-mode part is `kernel`. */
export function fakeBzImage(o: FakeBzImageOptions = {}): Uint8Array {
  const setupSects = o.setupSects ?? 4;
  let kernel = o.kernel ?? Uint8Array.from({ length: 4096 }, (_, i) => (i * 7 + 3) & 0xff);
  if (o.payload) {
    kernel = new Uint8Array(64 + o.payload.length).fill(0x90);
    kernel.set(o.payload, 64);
  }
  const kernelLen = Math.ceil(kernel.length / 16) * 16;
  const setupBytes = ((setupSects === 0 ? 4 : setupSects) + 1) * 512;
  const img = new Uint8Array(setupBytes + kernelLen);
  img.set(kernel, setupBytes);
  put8(img, 0x1f1, setupSects);
  put16(img, 0x1fe, 0xaa55);
  put16(img, 0x200, 0x66eb); // jmp short, offset 0x66: header ends at 0x202 + 0x66 = 0x268
  put32(img, 0x1f4, kernelLen / 16);
  put32(img, 0x202, 0x53726448);
  put16(img, 0x206, o.version ?? 0x20f);
  put8(img, 0x211, o.loadflags ?? 0x01);
  put32(img, 0x214, 0x100000);
  put32(img, 0x22c, o.initrdAddrMax ?? 0x7fffffff);
  put32(img, 0x230, o.kernelAlignment ?? 0x1000000);
  put8(img, 0x234, o.relocatable === false ? 0 : 1);
  put8(img, 0x235, 13);
  put16(img, 0x236, 0x4);
  put32(img, 0x238, o.cmdlineSize ?? 0x7ff);
  put64(img, 0x258, o.prefAddress ?? 0x1000000);
  put32(img, 0x260, o.initSize ?? 0x100c000);
  if (o.payload) {
    put32(img, 0x248, 64);
    put32(img, 0x24c, o.payload.length);
  }
  put8(img, 0x267, 0xa5); // last byte of the header (marker for the copy test)
  put8(img, 0x268, 0x5a); // first byte after the header: must not be copied
  return img;
}

/** A PT_LOAD segment of a synthetic ELF. */
export interface FakeSegment {
  paddr: number;
  vaddr?: number;
  data: Uint8Array;
  memsz?: number;
}

/** An ELF32 i386 executable with the given segments; `prefix` lands right after the headers. */
export function fakeElf(entry: number, segments: readonly FakeSegment[], prefix?: Uint8Array): Uint8Array {
  const phoff = 52;
  const headers = phoff + 32 * segments.length;
  const pre = prefix ?? new Uint8Array(0);
  let dataOff = Math.ceil((headers + pre.length) / 16) * 16;
  const offs: number[] = [];
  for (const s of segments) {
    offs.push(dataOff);
    dataOff += Math.ceil(s.data.length / 16) * 16;
  }
  const b = new Uint8Array(dataOff);
  b.set([0x7f, 0x45, 0x4c, 0x46, 1, 1, 1]);
  put16(b, 0x10, 2);
  put16(b, 0x12, 3);
  put32(b, 0x14, 1);
  put32(b, 0x18, entry);
  put32(b, 0x1c, phoff);
  put16(b, 0x28, 52);
  put16(b, 0x2a, 32);
  put16(b, 0x2c, segments.length);
  segments.forEach((s, i) => {
    const o = phoff + i * 32;
    put32(b, o, 1);
    put32(b, o + 4, offs[i]!);
    put32(b, o + 8, s.vaddr ?? s.paddr);
    put32(b, o + 12, s.paddr);
    put32(b, o + 16, s.data.length);
    put32(b, o + 20, s.memsz ?? s.data.length);
    put32(b, o + 24, 5);
    b.set(s.data, offs[i]!);
  });
  b.set(pre, headers);
  return b;
}

/** A Multiboot v1 header (12 bytes, or 32 with the address fields when flag 16 is set). */
export function multibootHeader(
  flags: number,
  addr?: { header: number; load: number; loadEnd: number; bssEnd: number; entry: number },
): Uint8Array {
  const b = new Uint8Array(addr ? 32 : 12);
  put32(b, 0, 0x1badb002);
  put32(b, 4, flags);
  put32(b, 8, -(0x1badb002 + flags));
  if (addr) {
    put32(b, 12, addr.header);
    put32(b, 16, addr.load);
    put32(b, 20, addr.loadEnd);
    put32(b, 24, addr.bssEnd);
    put32(b, 28, addr.entry);
  }
  return b;
}

/**
 * A minimal .xz file holding `data` in LZMA2 uncompressed chunks (one block, CRC32 check), built
 * field by field from the format specification; with `sizeTrailer` the u32 size the kernel build
 * appends to its compressed payload follows.
 */
export function xzStored(data: Uint8Array, sizeTrailer = false): Uint8Array {
  const parts: number[] = [];
  const push = (...b: number[]): void => void parts.push(...b);
  const le32 = (v: number): number[] => [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff];
  const vli = (v: number): number[] => {
    const out: number[] = [];
    while (v >= 0x80) {
      out.push((v % 128) | 0x80);
      v = Math.floor(v / 128);
    }
    out.push(v);
    return out;
  };
  const crcOf = (from: number): number[] => le32(crc32(Uint8Array.from(parts.slice(from))));
  // stream header: magic, flags (CRC32 check), CRC32 of the flags
  push(0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00, 0x00, 0x01, ...le32(crc32(Uint8Array.from([0, 1]))));
  // block header: 12 bytes; one filter: LZMA2, dictionary byte 16 (1 MiB)
  const bh = parts.length;
  push(0x02, 0x00, 0x21, 0x01, 0x10, 0x00, 0x00, 0x00);
  push(...crcOf(bh));
  const dataStart = parts.length;
  for (let off = 0; off < data.length; off += 65536) {
    const n = Math.min(65536, data.length - off);
    push(off === 0 ? 0x01 : 0x02, (n - 1) >> 8, (n - 1) & 0xff);
    for (let i = 0; i < n; i++) parts.push(data[off + i]!);
  }
  push(0x00);
  const compressed = parts.length - dataStart;
  while ((parts.length - dataStart) % 4) push(0);
  push(...le32(crc32(data)));
  // index
  const ix = parts.length;
  push(0x00, ...vli(1), ...vli(12 + compressed + 4), ...vli(data.length));
  while ((parts.length - ix) % 4) push(0);
  push(...crcOf(ix));
  const indexSize = parts.length - ix;
  // footer
  const ft = parts.length;
  push(...le32(indexSize / 4 - 1), 0x00, 0x01);
  const footCrc = crcOf(ft);
  parts.splice(ft, 0, ...footCrc);
  push(0x59, 0x5a);
  if (sizeTrailer) push(...le32(data.length));
  return Uint8Array.from(parts);
}
