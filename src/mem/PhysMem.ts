/**
 * Guest physical memory: RAM as one SharedArrayBuffer, plus a map of 4 KiB pages over the 4 GiB
 * physical space saying what each page is (RAM, ROM, MMIO or nothing).
 *
 * Page map entry layout (Uint32Array, one entry per 4 KiB page):
 *   bits 31..28  kind: 0 = unassigned (open bus), 1 = RAM, 2 = ROM, 3 = MMIO
 *   bits 27..0   for ROM: region index; for MMIO: handler index; for RAM: unused
 * RAM pages are at offset (page << 12) of `ram`. ROM below the top of RAM shadows RAM: its bytes are
 * copied into `ram` and the page is read-only (writes are dropped), so reads stay on the fast path.
 */
import type { IoHandler } from "../pdm/types.ts";

export const PageKind = { UNASSIGNED: 0, RAM: 1, ROM: 2, MMIO: 3 } as const;
export type PageKind = (typeof PageKind)[keyof typeof PageKind];

const KIND_SHIFT = 28;
const INDEX_MASK = 0x0fffffff;
const PAGE_SHIFT = 12;

if (new Uint8Array(new Uint32Array([0x01020304]).buffer)[0] !== 4) {
  throw new Error("boxvm needs a little-endian host");
}

interface RomRegion {
  base: number;
  bytes: Uint8Array;
}
interface MmioRegion {
  base: number;
  size: number;
  handler: IoHandler;
  name: string;
}

/** The guest's physical address space. */
export class PhysMem {
  /** Guest RAM, shared with whoever holds the buffer (the EMT and the API side). */
  readonly ram: Uint8Array;
  readonly ram16: Uint16Array;
  readonly ram32: Int32Array;
  readonly ramSize: number;
  readonly ramBuffer: SharedArrayBuffer | ArrayBuffer;
  /** One entry per 4 KiB page of the 4 GiB space; see the layout above. */
  readonly pageMap = new Uint32Array(1 << 20);
  readonly #roms: RomRegion[] = [];
  readonly #mmio: MmioRegion[] = [];
  /** Address mask applied to every physical access: ~(1 << 20) while the A20 gate is closed. */
  a20Mask = -1;
  /** Called after the A20 gate changes (the CPU flushes its TLB). */
  onA20Change: (() => void) | null = null;
  /** Called when RAM is written outside the CPU (loaders, DMA, saved-state load): [gpa, gpa+len). */
  onExternalWrite: ((gpa: number, len: number) => void) | null = null;
  /** Accesses to unassigned addresses (guest misuse counter). */
  unassignedAccesses = 0;

  /**
   * @param ramSize bytes of RAM, a multiple of 4 KiB, at physical address 0.
   * @param buffer an existing buffer to use (a VM's shared RAM); a new SharedArrayBuffer otherwise.
   */
  constructor(ramSize: number, buffer?: SharedArrayBuffer | ArrayBuffer) {
    if (ramSize <= 0 || ramSize % 4096 !== 0 || ramSize > 0xc0000000) {
      throw new RangeError(`Invalid RAM size: ${String(ramSize)} (a multiple of 4 KiB up to 3 GiB)`);
    }
    this.ramBuffer = buffer ?? new SharedArrayBuffer(ramSize);
    if (this.ramBuffer.byteLength < ramSize) throw new RangeError("RAM buffer is smaller than the RAM size");
    this.ramSize = ramSize;
    this.ram = new Uint8Array(this.ramBuffer, 0, ramSize);
    this.ram16 = new Uint16Array(this.ramBuffer, 0, ramSize >>> 1);
    this.ram32 = new Int32Array(this.ramBuffer, 0, ramSize >>> 2);
    const pages = ramSize >>> PAGE_SHIFT;
    this.pageMap.fill(PageKind.RAM << KIND_SHIFT, 0, pages);
  }

  /** The kind of the page holding a physical address. */
  kindAt(gpa: number): PageKind {
    return (this.pageMap[(gpa >>> PAGE_SHIFT) & 0xfffff]! >>> KIND_SHIFT) as PageKind;
  }

  /** True when the page is RAM that reads and writes go straight to. */
  isRamPage(page: number): boolean {
    return this.pageMap[page & 0xfffff]! >>> KIND_SHIFT === PageKind.RAM;
  }

  /** Opens or closes the A20 gate. */
  setA20(enabled: boolean): void {
    const mask = enabled ? -1 : ~(1 << 20);
    if (mask !== this.a20Mask) {
      this.a20Mask = mask;
      this.onA20Change?.();
    }
  }

  /** Maps a ROM at gpa (page aligned); below the top of RAM it shadows RAM read-only. */
  mapRom(gpa: number, bytes: Uint8Array): void {
    if (gpa % 4096 !== 0) throw new RangeError(`ROM base not page aligned: 0x${gpa.toString(16)}`);
    const size = Math.ceil(bytes.length / 4096) * 4096;
    const copy = new Uint8Array(size);
    copy.set(bytes);
    const idx = this.#roms.length;
    this.#roms.push({ base: gpa, bytes: copy });
    for (let off = 0; off < size; off += 4096) {
      const page = ((gpa + off) >>> PAGE_SHIFT) & 0xfffff;
      this.pageMap[page] = (PageKind.ROM << KIND_SHIFT) | idx;
      if (gpa + off + 4096 <= this.ramSize) this.ram.set(copy.subarray(off, off + 4096), gpa + off);
    }
  }

  /** Maps an MMIO handler over [gpa, gpa+size), page granular. */
  mapMmio(gpa: number, size: number, handler: IoHandler, name = "mmio"): void {
    if (gpa % 4096 !== 0 || size % 4096 !== 0) throw new RangeError(`MMIO range not page aligned: ${name}`);
    for (let off = 0; off < size; off += 4096) {
      const k = this.kindAt(gpa + off);
      if (k === PageKind.MMIO) throw new RangeError(`MMIO range conflict: ${name} at 0x${(gpa + off).toString(16)}`);
    }
    const idx = this.#mmio.length;
    this.#mmio.push({ base: gpa, size, handler, name });
    for (let off = 0; off < size; off += 4096) {
      this.pageMap[((gpa + off) >>> PAGE_SHIFT) & 0xfffff] = (PageKind.MMIO << KIND_SHIFT) | idx;
    }
  }

  /** Reads a byte anywhere (slow path: any page kind). */
  read8(gpa: number): number {
    gpa = (gpa & this.a20Mask) >>> 0;
    const e = this.pageMap[gpa >>> PAGE_SHIFT]!;
    switch (e >>> KIND_SHIFT) {
      case PageKind.RAM:
        return this.ram[gpa]!;
      case PageKind.ROM: {
        const r = this.#roms[e & INDEX_MASK]!;
        return r.bytes[gpa - r.base]!;
      }
      case PageKind.MMIO: {
        const m = this.#mmio[e & INDEX_MASK]!;
        return m.handler.read(gpa - m.base, 1) & 0xff;
      }
      default:
        this.unassignedAccesses++;
        return 0xff;
    }
  }

  /** Writes a byte anywhere (slow path). ROM and unassigned writes are dropped. */
  write8(gpa: number, value: number): void {
    gpa = (gpa & this.a20Mask) >>> 0;
    const e = this.pageMap[gpa >>> PAGE_SHIFT]!;
    switch (e >>> KIND_SHIFT) {
      case PageKind.RAM:
        this.ram[gpa] = value;
        return;
      case PageKind.MMIO: {
        const m = this.#mmio[e & INDEX_MASK]!;
        m.handler.write(gpa - m.base, value & 0xff, 1);
        return;
      }
      case PageKind.ROM:
        return;
      default:
        this.unassignedAccesses++;
    }
  }

  /** Reads 16 bits little-endian (slow path; MMIO sees one 2-byte access when it does not cross a page). */
  read16(gpa: number): number {
    if ((gpa & 0xfff) !== 0xfff && this.kindAt(gpa) === PageKind.MMIO) return this.#mmioRead(gpa, 2) & 0xffff;
    return this.read8(gpa) | (this.read8(gpa + 1) << 8);
  }

  /** Reads 32 bits little-endian (slow path). Returns a signed 32-bit number. */
  read32(gpa: number): number {
    if ((gpa & 0xfff) <= 0xffc && this.kindAt(gpa) === PageKind.MMIO) return this.#mmioRead(gpa, 4) | 0;
    return this.read8(gpa) | (this.read8(gpa + 1) << 8) | (this.read8(gpa + 2) << 16) | (this.read8(gpa + 3) << 24);
  }

  /** Writes 16 bits little-endian (slow path). */
  write16(gpa: number, value: number): void {
    if ((gpa & 0xfff) !== 0xfff && this.kindAt(gpa) === PageKind.MMIO) return this.#mmioWrite(gpa, value & 0xffff, 2);
    this.write8(gpa, value & 0xff);
    this.write8(gpa + 1, (value >>> 8) & 0xff);
  }

  /** Writes 32 bits little-endian (slow path). */
  write32(gpa: number, value: number): void {
    if ((gpa & 0xfff) <= 0xffc && this.kindAt(gpa) === PageKind.MMIO) return this.#mmioWrite(gpa, value >>> 0, 4);
    this.write8(gpa, value & 0xff);
    this.write8(gpa + 1, (value >>> 8) & 0xff);
    this.write8(gpa + 2, (value >>> 16) & 0xff);
    this.write8(gpa + 3, (value >>> 24) & 0xff);
  }

  /** Copies bytes into guest memory (loaders, DMA); notifies onExternalWrite. */
  writeBytes(gpa: number, bytes: Uint8Array): void {
    if (gpa + bytes.length <= this.ramSize && this.#allRam(gpa, bytes.length)) {
      this.ram.set(bytes, gpa);
    } else {
      for (let i = 0; i < bytes.length; i++) this.write8(gpa + i, bytes[i]!);
    }
    this.onExternalWrite?.(gpa, bytes.length);
  }

  /** Copies bytes out of guest memory. */
  readBytes(gpa: number, len: number): Uint8Array {
    if (gpa + len <= this.ramSize && this.#allRam(gpa, len)) return this.ram.slice(gpa, gpa + len);
    const out = new Uint8Array(len);
    for (let i = 0; i < len; i++) out[i] = this.read8(gpa + i);
    return out;
  }

  /** The MMIO regions (for info). */
  mmioRegions(): readonly { base: number; size: number; name: string }[] {
    return this.#mmio;
  }

  #allRam(gpa: number, len: number): boolean {
    for (let p = gpa >>> PAGE_SHIFT; p <= (gpa + len - 1) >>> PAGE_SHIFT; p++) {
      if (this.pageMap[p]! >>> KIND_SHIFT !== PageKind.RAM) return false;
    }
    return true;
  }

  #mmioRead(gpa: number, size: 2 | 4): number {
    gpa = (gpa & this.a20Mask) >>> 0;
    const m = this.#mmio[this.pageMap[gpa >>> PAGE_SHIFT]! & INDEX_MASK]!;
    return m.handler.read(gpa - m.base, size);
  }

  #mmioWrite(gpa: number, value: number, size: 2 | 4): void {
    gpa = (gpa & this.a20Mask) >>> 0;
    const m = this.#mmio[this.pageMap[gpa >>> PAGE_SHIFT]! & INDEX_MASK]!;
    m.handler.write(gpa - m.base, value, size);
  }
}
