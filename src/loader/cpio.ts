/**
 * cpio "newc" archives (the SVR4 format without CRC, magic "070701"), the format of Linux's
 * initramfs. Every member is a 110-byte ASCII header, the path name and its NUL padded to a multiple
 * of 4 bytes, then the data padded to a multiple of 4. The archive ends with a member named
 * "TRAILER!!!".
 *
 * Header fields, each 8 hex digits after the 6-byte magic:
 *   ino mode uid gid nlink mtime filesize devmajor devminor rdevmajor rdevminor namesize check
 * namesize counts the NUL. Symlinks store their target as the data; device nodes carry rdev.
 */

/** File type bits of st_mode. */
export const S_IFMT = 0o170000;
export const S_IFDIR = 0o040000;
export const S_IFREG = 0o100000;
export const S_IFLNK = 0o120000;
export const S_IFCHR = 0o020000;
export const S_IFBLK = 0o060000;

/** One member to write. Paths are relative ("bin/sh"); a leading "/" or "./" is removed. */
export type CpioEntry =
  | { kind: "file"; path: string; data: Uint8Array; mode?: number }
  | { kind: "dir"; path: string; mode?: number }
  | { kind: "symlink"; path: string; target: string }
  | { kind: "chardev" | "blockdev"; path: string; major: number; minor: number; mode?: number };

/** A member as read back. */
export interface CpioMember {
  path: string;
  mode: number;
  uid: number;
  gid: number;
  nlink: number;
  mtime: number;
  rdevMajor: number;
  rdevMinor: number;
  data: Uint8Array;
}

const MAGIC = "070701";
const HEADER_BYTES = 110;
const TRAILER = "TRAILER!!!";
const enc = new TextEncoder();
const dec = new TextDecoder();

function pad4(n: number): number {
  return (4 - (n % 4)) % 4;
}

function hex8(v: number): string {
  if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new RangeError(`cpio field out of range: ${String(v)}`);
  return v.toString(16).padStart(8, "0");
}

/** Removes "./" and "/" prefixes; rejects empty names and ".." components. */
export function normalizeCpioPath(path: string): string {
  let p = path;
  while (p.startsWith("./") || p.startsWith("/")) p = p.startsWith("./") ? p.slice(2) : p.slice(1);
  if (p.endsWith("/")) p = p.replace(/\/+$/, "");
  if (p === "" || p === ".") return ".";
  if (p.split("/").some((c) => c === ".." || c === "")) throw new Error(`Bad path in cpio archive: ${path}`);
  return p;
}

/** Builds an archive member by member; `finish()` adds the trailer and returns the bytes. */
export class CpioWriter {
  readonly #chunks: Uint8Array[] = [];
  #size = 0;
  #ino = 1;
  readonly #mtime: number;
  readonly #paths = new Set<string>();

  /** @param mtime modification time for every member, seconds since 1970 (0: reproducible output). */
  constructor(mtime = 0) {
    this.#mtime = mtime;
  }

  /** Bytes written so far. */
  get size(): number {
    return this.#size;
  }

  /** Adds a member; Error on a duplicate path. */
  add(e: CpioEntry): void {
    const path = normalizeCpioPath(e.path);
    if (this.#paths.has(path)) throw new Error(`Duplicate path in cpio archive: ${path}`);
    this.#paths.add(path);
    switch (e.kind) {
      case "file":
        this.#member(path, S_IFREG | ((e.mode ?? 0o644) & 0o7777), 1, e.data, 0, 0);
        break;
      case "dir":
        this.#member(path, S_IFDIR | ((e.mode ?? 0o755) & 0o7777), 2, new Uint8Array(0), 0, 0);
        break;
      case "symlink":
        this.#member(path, S_IFLNK | 0o777, 1, enc.encode(e.target), 0, 0);
        break;
      case "chardev":
      case "blockdev":
        this.#member(
          path,
          (e.kind === "chardev" ? S_IFCHR : S_IFBLK) | ((e.mode ?? 0o600) & 0o7777),
          1,
          new Uint8Array(0),
          e.major,
          e.minor,
        );
        break;
    }
  }

  /** Appends the trailer and returns the archive. The writer must not be used afterwards. */
  finish(): Uint8Array {
    this.#write(TRAILER, 0, 1, new Uint8Array(0), 0, 0, 0);
    const out = new Uint8Array(this.#size);
    let off = 0;
    for (const c of this.#chunks) {
      out.set(c, off);
      off += c.length;
    }
    return out;
  }

  #member(path: string, mode: number, nlink: number, data: Uint8Array, major: number, minor: number): void {
    this.#write(path, this.#ino++, nlink, data, mode, major, minor);
  }

  #write(path: string, ino: number, nlink: number, data: Uint8Array, mode: number, major: number, minor: number): void {
    const name = enc.encode(path);
    const namesize = name.length + 1;
    const fields = [ino, mode, 0, 0, nlink, this.#mtime, data.length, 0, 0, major, minor, namesize, 0];
    const header = enc.encode(MAGIC + fields.map(hex8).join(""));
    const headLen = HEADER_BYTES + namesize;
    const head = new Uint8Array(headLen + pad4(headLen));
    head.set(header);
    head.set(name, HEADER_BYTES);
    this.#push(head);
    if (data.length > 0) {
      this.#push(data);
      const p = pad4(data.length);
      if (p) this.#push(new Uint8Array(p));
    }
  }

  #push(b: Uint8Array): void {
    this.#chunks.push(b);
    this.#size += b.length;
  }
}

/** Writes a whole archive. */
export function writeCpio(entries: readonly CpioEntry[], mtime = 0): Uint8Array {
  const w = new CpioWriter(mtime);
  for (const e of entries) w.add(e);
  return w.finish();
}

/** Reads a newc archive up to its trailer (or the end); Error on a malformed member. */
export function readCpio(bytes: Uint8Array): CpioMember[] {
  const out: CpioMember[] = [];
  let off = 0;
  while (off + HEADER_BYTES <= bytes.length) {
    const head = dec.decode(bytes.subarray(off, off + HEADER_BYTES));
    if (!head.startsWith(MAGIC)) throw new Error(`Bad cpio magic at offset ${String(off)}`);
    const f = (i: number): number => {
      const s = head.slice(6 + i * 8, 14 + i * 8);
      if (!/^[0-9a-fA-F]{8}$/.test(s)) throw new Error(`Bad cpio header field at offset ${String(off)}`);
      return parseInt(s, 16);
    };
    const namesize = f(11);
    const filesize = f(6);
    const nameStart = off + HEADER_BYTES;
    const path = dec.decode(bytes.subarray(nameStart, nameStart + namesize - 1));
    let p = nameStart + namesize;
    p += pad4(p);
    if (p + filesize > bytes.length) throw new Error(`Truncated cpio member ${path}`);
    const data = bytes.slice(p, p + filesize);
    p += filesize;
    p += pad4(p);
    off = p;
    if (path === TRAILER) break;
    out.push({
      path,
      mode: f(1),
      uid: f(2),
      gid: f(3),
      nlink: f(4),
      mtime: f(5),
      rdevMajor: f(9),
      rdevMinor: f(10),
      data,
    });
  }
  return out;
}
