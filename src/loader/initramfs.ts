/**
 * The busybox initramfs boxvm boots Debian's kernel with: busybox (the static i386 build from
 * Debian's busybox-static package) at /bin/busybox, a symlink per applet, the few device nodes the
 * kernel needs before devtmpfs is mounted, and an /init script that mounts proc, sys and devtmpfs
 * and runs a shell on the console.
 */
import { CpioWriter, type CpioEntry } from "./cpio.ts";

/** The /init script (busybox sh). */
export const INIT_SCRIPT = `#!/bin/sh
# boxvm initramfs /init: mount the kernel file systems, then a shell on the console.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
export HOME=/root
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts && mount -t devpts devpts /dev/pts
hostname boxvm
echo "boxvm: Linux $(uname -r) up; busybox shell on the console"
while true; do
  # cttyhack gives the shell the console as its controlling tty (job control, Ctrl-C).
  setsid cttyhack sh -l
  echo "boxvm: shell exited; starting a new one"
done
`;

/** /etc/profile for the login shell. */
export const PROFILE = `export PS1='\\w # '
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
`;

/** Directories of the image. */
export const INITRAMFS_DIRS = [
  "bin",
  "sbin",
  "usr",
  "usr/bin",
  "usr/sbin",
  "dev",
  "etc",
  "proc",
  "sys",
  "tmp",
  "root",
  "mnt",
  "run",
  "var",
] as const;

/**
 * Applet names from a busybox binary: busybox keeps them as one sorted run of NUL-terminated strings
 * beginning "[", "[[" (its applet name table). Returns [] when the table is not found.
 */
export function busyboxApplets(binary: Uint8Array): string[] {
  const start = indexOf(binary, Uint8Array.from([0x5b, 0, 0x5b, 0x5b, 0])); // "[\0[[\0"
  if (start < 0) return [];
  const names: string[] = [];
  let off = start;
  let prev = "";
  for (;;) {
    let end = off;
    while (end < binary.length && binary[end] !== 0) end++;
    if (end >= binary.length || end === off) break;
    const name = String.fromCharCode(...binary.subarray(off, end));
    // applet names are short, printable, sorted; the table ends where that stops
    if (name.length > 32 || !/^[\x21-\x7e]+$/.test(name) || name <= prev) break;
    names.push(name);
    prev = name;
    off = end + 1;
  }
  return names;
}

function indexOf(hay: Uint8Array, needle: Uint8Array): number {
  const first = needle[0]!;
  outer: for (let i = hay.indexOf(first); i >= 0 && i <= hay.length - needle.length; i = hay.indexOf(first, i + 1)) {
    for (let j = 1; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

/** What goes in. */
export interface BusyboxInitramfsOptions {
  /** The static busybox binary. */
  busybox: Uint8Array;
  /** Applets to link (default: read from the binary; always includes sh). */
  applets?: readonly string[];
  /** The /init script (default INIT_SCRIPT). */
  init?: string;
  /** Further members (files the guest should have). */
  extra?: readonly CpioEntry[];
  /** mtime of every member (default 0: the same inputs give the same bytes). */
  mtime?: number;
}

/** Builds the (uncompressed) cpio archive. The kernel also takes it gzip'ed. */
export function buildBusyboxInitramfs(opts: BusyboxInitramfsOptions): Uint8Array {
  const w = new CpioWriter(opts.mtime ?? 0);
  for (const d of INITRAMFS_DIRS) w.add({ kind: "dir", path: d, mode: d === "tmp" ? 0o1777 : 0o755 });
  // Opened by the kernel for init's stdin/stdout/stderr before devtmpfs is mounted.
  w.add({ kind: "chardev", path: "dev/console", major: 5, minor: 1, mode: 0o600 });
  w.add({ kind: "chardev", path: "dev/null", major: 1, minor: 3, mode: 0o666 });
  w.add({ kind: "chardev", path: "dev/ttyS0", major: 4, minor: 64, mode: 0o660 });
  w.add({ kind: "file", path: "bin/busybox", data: opts.busybox, mode: 0o755 });
  const applets = new Set(opts.applets ?? busyboxApplets(opts.busybox));
  applets.add("sh");
  applets.delete("busybox");
  for (const a of [...applets].sort()) {
    if (!/^[A-Za-z0-9_.[\]+-]+$/.test(a)) continue;
    w.add({ kind: "symlink", path: `bin/${a}`, target: "busybox" });
  }
  w.add({ kind: "file", path: "init", data: new TextEncoder().encode(opts.init ?? INIT_SCRIPT), mode: 0o755 });
  w.add({ kind: "file", path: "etc/profile", data: new TextEncoder().encode(PROFILE), mode: 0o644 });
  w.add({ kind: "file", path: "etc/passwd", data: new TextEncoder().encode("root:x:0:0:root:/root:/bin/sh\n") });
  w.add({ kind: "file", path: "etc/group", data: new TextEncoder().encode("root:x:0:\n") });
  for (const e of opts.extra ?? []) w.add(e);
  return w.finish();
}
