/**
 * Saved-state helpers shared by the device models: the config-part check every loadState()
 * starts with, and the error for an invariant that the loaded data breaks.
 */
import type { SsmUnitReader } from "../ssm/unit.ts";
import { Status, VBoxError } from "../vm/err.ts";

/** Formats a config value for a mismatch message (numbers in hex, as VirtualBox does). */
function fmt(v: number | string | boolean): string {
  return typeof v === "number" ? `0x${v.toString(16)}` : String(v);
}

/**
 * Compares one config value read from the unit with the instance's configuration and throws
 * VERR_SSM_LOAD_CONFIG_MISMATCH ("Config mismatch - base: saved=0x40 config=0x48") when they differ.
 */
export function checkConfig(
  r: SsmUnitReader,
  what: string,
  saved: number | string | boolean,
  config: number | string | boolean,
): void {
  if (saved !== config) {
    throw new VBoxError(
      Status.VERR_SSM_LOAD_CONFIG_MISMATCH,
      `Saved state unit '${r.unit}': Config mismatch - ${what}: saved=${fmt(saved)} config=${fmt(config)}`,
    );
  }
}

/** The error for loaded data that breaks an invariant of the device (a corrupt or foreign unit). */
export function badState(r: SsmUnitReader, detail: string): VBoxError {
  return new VBoxError(Status.VERR_SSM_DATA_UNIT_FORMAT_CHANGED, `Saved state unit '${r.unit}': ${detail}`);
}

/** Throws VERR_SSM_UNSUPPORTED_DATA_UNIT_VERSION unless min <= version <= max. */
export function checkVersion(r: SsmUnitReader, version: number, min: number, max: number): void {
  if (!Number.isInteger(version) || version < min || version > max) {
    throw new VBoxError(
      Status.VERR_SSM_UNSUPPORTED_DATA_UNIT_VERSION,
      `Saved state unit '${r.unit}': version ${String(version)} not in ${String(min)}..${String(max)}`,
    );
  }
}

/** Reads a u8 and checks it is at most max. */
export function getU8Max(r: SsmUnitReader, what: string, max: number): number {
  const v = r.getU8();
  if (v > max) throw badState(r, `${what} out of range: ${String(v)} (at most ${String(max)})`);
  return v;
}

/** Reads a timer deadline (-1 = stopped) saved by putDeadline. */
export function getDeadline(r: SsmUnitReader): number {
  const armed = r.getBool();
  const at = r.getU64();
  return armed ? at : -1;
}

/** Writes a deadline in virtual ns, or -1 for a stopped timer, as flag + u64. */
export function putDeadline(w: { putBool(v: boolean): void; putU64(v: number): void }, deadline: number): void {
  w.putBool(deadline >= 0);
  w.putU64(deadline >= 0 ? Math.floor(deadline) : 0);
}
