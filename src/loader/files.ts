/**
 * Reading the files the boot configuration names (kernel, initrd, BIOS). Kept in one place because
 * it is the loader's only contact with the host; a reset reuses what was read unless the file
 * changed (size or modification time).
 */
import { readFileSync, statSync } from "node:fs";
import { Status, VBoxError } from "../vm/err.ts";

interface Cached {
  size: number;
  mtimeMs: number;
  bytes: Uint8Array;
}
const cache = new Map<string, Cached>();

/** The bytes of a host file; Error naming the path when it cannot be read. */
export function readHostFile(path: string): Uint8Array {
  let st;
  try {
    st = statSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new VBoxError(
      code === "ENOENT" ? Status.VERR_FILE_NOT_FOUND : Status.VERR_OPEN_FAILED,
      `Cannot read ${path}: ${(e as Error).message}`,
    );
  }
  const hit = cache.get(path);
  if (hit && hit.size === st.size && hit.mtimeMs === st.mtimeMs) return hit.bytes;
  const buf = readFileSync(path);
  const bytes = new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  cache.set(path, { size: st.size, mtimeMs: st.mtimeMs, bytes });
  return bytes;
}
