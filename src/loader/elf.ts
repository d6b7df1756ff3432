/**
 * ELF32 reading for the loaders (System V ABI, i386 supplement): the file header and the program
 * headers, enough to place PT_LOAD segments at their physical addresses.
 *
 * ELF32 header: e_ident[16] (7F 'E' 'L' 'F', class 1 = 32-bit, data 1 = little-endian, version 1),
 *   0x10 e_type u16, 0x12 e_machine u16 (3 = EM_386), 0x14 e_version, 0x18 e_entry, 0x1C e_phoff,
 *   0x20 e_shoff, 0x24 e_flags, 0x28 e_ehsize u16, 0x2A e_phentsize, 0x2C e_phnum, 0x2E e_shentsize,
 *   0x30 e_shnum, 0x32 e_shstrndx.
 * Program header (32 bytes): p_type, p_offset, p_vaddr, p_paddr, p_filesz, p_memsz, p_flags, p_align.
 */
import { u16, u32 } from "./bytes.ts";
import { Status, VBoxError } from "../vm/err.ts";

export const PT_LOAD = 1;
export const EM_386 = 3;
export const ET_EXEC = 2;

/** One program header. */
export interface ElfSegment {
  type: number;
  offset: number;
  vaddr: number;
  paddr: number;
  filesz: number;
  memsz: number;
  flags: number;
}

/** The parts of an ELF32 file the loaders use. */
export interface Elf32 {
  type: number;
  machine: number;
  entry: number;
  segments: ElfSegment[];
}

/** True for an ELF file of any class. */
export function isElf(b: Uint8Array): boolean {
  return b.length >= 4 && b[0] === 0x7f && b[1] === 0x45 && b[2] === 0x4c && b[3] === 0x46;
}

/** Parses an ELF32 little-endian i386 file; throws Error naming what is wrong. */
export function parseElf32(b: Uint8Array): Elf32 {
  if (!isElf(b)) throw new VBoxError(Status.VERR_NOT_SUPPORTED, "Not an ELF file (no \\x7fELF magic)");
  if (b.length < 52) throw new VBoxError(Status.VERR_NOT_SUPPORTED, "Truncated ELF header");
  if (b[4] !== 1) throw new VBoxError(Status.VERR_NOT_SUPPORTED, `Not a 32-bit ELF file (EI_CLASS=${String(b[4])}); boxvm emulates an i686`);
  if (b[5] !== 1) throw new VBoxError(Status.VERR_NOT_SUPPORTED, "Not a little-endian ELF file");
  const type = u16(b, 0x10);
  const machine = u16(b, 0x12);
  if (machine !== EM_386) throw new VBoxError(Status.VERR_NOT_SUPPORTED, `ELF machine ${String(machine)} is not EM_386 (3)`);
  const entry = u32(b, 0x18);
  const phoff = u32(b, 0x1c);
  const phentsize = u16(b, 0x2a);
  const phnum = u16(b, 0x2c);
  if (phnum > 0 && phentsize < 32) throw new VBoxError(Status.VERR_NOT_SUPPORTED, `Bad ELF e_phentsize ${String(phentsize)}`);
  if (phoff + phnum * phentsize > b.length) throw new VBoxError(Status.VERR_NOT_SUPPORTED, "Truncated ELF program headers");
  const segments: ElfSegment[] = [];
  for (let i = 0; i < phnum; i++) {
    const o = phoff + i * phentsize;
    const seg: ElfSegment = {
      type: u32(b, o),
      offset: u32(b, o + 4),
      vaddr: u32(b, o + 8),
      paddr: u32(b, o + 12),
      filesz: u32(b, o + 16),
      memsz: u32(b, o + 20),
      flags: u32(b, o + 24),
    };
    if (seg.type === PT_LOAD) {
      if (seg.offset + seg.filesz > b.length) throw new VBoxError(Status.VERR_NOT_SUPPORTED, `ELF segment ${String(i)} extends past the end of the file`);
      if (seg.filesz > seg.memsz) throw new VBoxError(Status.VERR_NOT_SUPPORTED, `ELF segment ${String(i)} has p_filesz > p_memsz`);
    }
    segments.push(seg);
  }
  return { type, machine, entry, segments };
}
