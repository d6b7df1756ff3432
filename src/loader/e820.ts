/**
 * The PC memory map the loaders report to the guest (the BIOS INT 15h E820 function's view):
 *
 *   0x00000000 .. 0x0009FC00   usable (conventional memory, 639 KiB)
 *   0x0009FC00 .. 0x00100000   reserved (EBDA, VGA window, option and system ROMs)
 *   0x00100000 .. RAM top      usable (extended memory)
 *
 * Linux reads it from boot_params.e820_table; multiboot kernels from the info struct's mmap.
 */

/** E820 range types. */
export const E820 = { RAM: 1, RESERVED: 2, ACPI: 3, NVS: 4, UNUSABLE: 5 } as const;
export type E820 = (typeof E820)[keyof typeof E820];

/** One range of the map. */
export interface E820Entry {
  addr: number;
  size: number;
  type: E820;
}

/** Top of conventional memory (639 KiB): the EBDA starts here. */
export const LOW_RAM_END = 0x9fc00;
/** Start of extended memory (1 MiB). */
export const HIGH_RAM_START = 0x100000;

/** The memory map of a machine with `ramSize` bytes of RAM at physical address 0. */
export function e820Map(ramSize: number): E820Entry[] {
  if (ramSize <= HIGH_RAM_START) {
    throw new RangeError(`RAM size ${String(ramSize)} is too small: a PC needs more than 1 MiB`);
  }
  return [
    { addr: 0, size: LOW_RAM_END, type: E820.RAM },
    { addr: LOW_RAM_END, size: HIGH_RAM_START - LOW_RAM_END, type: E820.RESERVED },
    { addr: HIGH_RAM_START, size: ramSize - HIGH_RAM_START, type: E820.RAM },
  ];
}
