/**
 * The types of the saved-state API (SsmFile.ts): what a save takes, what a load expects and returns,
 * and what an inspection reports.
 */
import type { VBoxError } from "../vm/err.ts";
import type { StateHeader } from "./format.ts";

export type { StateHeader } from "./format.ts";

/** One component's saved state. */
export interface SavedUnit {
  name: string;
  instance: number;
  version: number;
  data: Uint8Array;
}

/** What a save writes. */
export interface SaveInput {
  units: SavedUnit[];
  /** Guest RAM, a multiple of 4096 bytes; it must not change until the save settles. */
  ram: Uint8Array;
  /** Canonical JSON of the VM config. */
  config: string;
  /** Creation time to record (ms since the epoch); defaults to now. */
  createdAt?: number;
}

/** Progress in percent (0..100, monotonic); a negative return (a VERR_* status) cancels with that status. */
export type SsmProgress = (percent: number) => number;

/** The unit versions a loader accepts. */
export interface UnitExpectation {
  minVersion: number;
  maxVersion: number;
}

/** What the loading VM is: a state that does not match is refused before anything is restored. */
export interface LoadExpect {
  ramSize: number;
  config: string;
  /** The accepted versions of a unit, or undefined for a unit this VM does not have. */
  unit(name: string, instance: number): UnitExpectation | undefined;
  /** Units the state must contain (optional): a state without one is refused with VERR_SSM_UNIT_NOT_FOUND. */
  requiredUnits?: readonly { name: string; instance: number }[];
}

/** A verified saved state. */
export interface LoadedState {
  header: StateHeader;
  units: SavedUnit[];
  /** Writes the saved RAM into `into` (which must be exactly the saved RAM size), zero pages included. */
  restoreRam(into: Uint8Array): void;
}

/** RAM page statistics of a saved state. */
export interface RamStats {
  pages: number;
  zeroPages: number;
  rawPages: number;
  compressedPages: number;
  chunks: number;
  /** Bytes of raw pages stored. */
  rawBytes: number;
  /** Bytes of deflate output stored. */
  deflatedBytes: number;
  /** Bytes the compressed pages hold once inflated. */
  inflatedBytes: number;
}

/** One unit as `inspectStateFile` found it. */
export interface UnitReport {
  name: string;
  instance: number;
  version: number;
  size: number;
  crc: number;
  crcOk: boolean;
}

/** Everything `boxvm info` shows about a state file. */
export interface StateReport {
  path: string;
  fileSize: number;
  header: StateHeader | null;
  units: UnitReport[];
  ram: RamStats;
  /** The file CRC from the END. record and whether it matched (null before the END. record was read). */
  fileCrc: number | null;
  fileCrcOk: boolean | null;
  /** The first problem found, or null for a sound file. */
  error: VBoxError | null;
}
