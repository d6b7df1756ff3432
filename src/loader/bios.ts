/**
 * A system ROM (BIOS) image, mapped the way a PC's chipset decodes it: the whole image ends at
 * 4 GiB (so the reset vector at 0xFFFFFFF0 reads its last 16 bytes), and its last 128 KiB (all of
 * it when smaller) also ends at 1 MiB, in the 0xE0000..0xFFFFF window real-mode code runs in.
 * The CPU stays in its reset state: CS:IP = F000:FFF0 with CS base 0xFFFF0000.
 */
import type { PhysMem } from "../mem/PhysMem.ts";
import { alignUp, hex } from "./bytes.ts";
import { Status, VBoxError } from "../vm/err.ts";

/** Largest ROM accepted (the PIIX flash window is at most a few MiB; 16 MiB is generous). */
export const MAX_BIOS_BYTES = 16 * 1024 * 1024;
/** The part of the ROM visible below 1 MiB. */
export const LOW_BIOS_WINDOW = 128 * 1024;

/** Where a ROM went. */
export interface BiosMapping {
  /** Base of the copy ending at 4 GiB. */
  highBase: number;
  /** Base of the copy ending at 1 MiB. */
  lowBase: number;
  /** Bytes mapped below 1 MiB. */
  lowSize: number;
}

/**
 * Maps `rom` below 4 GiB and (its last 128 KiB) below 1 MiB. An image whose size is not a multiple
 * of 4 KiB is padded at the front with 0xFF so that its last byte stays at the top.
 */
export function mapBios(mem: PhysMem, rom: Uint8Array): BiosMapping {
  if (rom.length === 0) throw new VBoxError(Status.VERR_NOT_SUPPORTED, "BIOS image is empty");
  if (rom.length > MAX_BIOS_BYTES) {
    throw new VBoxError(Status.VERR_INVALID_PARAMETER, `BIOS image is ${String(rom.length)} bytes; at most ${String(MAX_BIOS_BYTES)} are supported`);
  }
  const size = alignUp(rom.length, 4096);
  const padded = new Uint8Array(size).fill(0xff);
  padded.set(rom, size - rom.length);
  const highBase = 0x1_0000_0000 - size;
  if (highBase < mem.ramSize) throw new VBoxError(Status.VERR_NO_MEMORY, `BIOS image at ${hex(highBase)} would overlap RAM`);
  mem.mapRom(highBase, padded);
  const lowSize = Math.min(size, LOW_BIOS_WINDOW);
  const lowBase = 0x100000 - lowSize;
  mem.mapRom(lowBase, padded.subarray(size - lowSize));
  return { highBase, lowBase, lowSize };
}
