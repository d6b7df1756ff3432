import { test } from "node:test";
import assert from "node:assert/strict";
import { readCpio, S_IFCHR, S_IFLNK, S_IFREG } from "./cpio.ts";
import { buildBusyboxInitramfs, busyboxApplets, INIT_SCRIPT } from "./initramfs.ts";

/** A stand-in binary with an applet table in the middle, as busybox keeps it. */
function fakeBusybox(): Uint8Array {
  const table = "[\0[[\0ash\0cat\0cttyhack\0ls\0mount\0setsid\0sh\0\0";
  const bytes = new TextEncoder().encode("\x7fELF....garbage\0more\0" + table + "\x01\x02zzz\0");
  return bytes;
}

test("busyboxApplets reads the sorted applet table and stops at its end", () => {
  assert.deepEqual(busyboxApplets(fakeBusybox()), ["[", "[[", "ash", "cat", "cttyhack", "ls", "mount", "setsid", "sh"]);
  assert.deepEqual(busyboxApplets(new Uint8Array(100)), []);
});

test("the initramfs has /init, busybox, a symlink per applet and the console node", () => {
  const bb = fakeBusybox();
  const m = readCpio(buildBusyboxInitramfs({ busybox: bb }));
  const by = new Map(m.map((x) => [x.path, x]));
  const init = by.get("init")!;
  assert.equal(init.mode, S_IFREG | 0o755);
  assert.equal(new TextDecoder().decode(init.data), INIT_SCRIPT);
  assert.deepEqual(by.get("bin/busybox")!.data, bb);
  for (const a of ["[", "[[", "ash", "cat", "cttyhack", "mount", "setsid", "sh"]) {
    const l = by.get(`bin/${a}`);
    assert.ok(l, a);
    assert.equal(l.mode, S_IFLNK | 0o777);
    assert.equal(new TextDecoder().decode(l.data), "busybox");
  }
  assert.equal(by.get("bin/busybox")!.mode, S_IFREG | 0o755, "busybox itself is not a symlink");
  const con = by.get("dev/console")!;
  assert.equal(con.mode & 0o170000, S_IFCHR);
  assert.deepEqual([con.rdevMajor, con.rdevMinor], [5, 1]);
  for (const d of ["proc", "sys", "dev", "tmp", "root"]) assert.ok(by.has(d), d);
  // directories come before what is in them (the kernel creates members in archive order)
  const order = m.map((x) => x.path);
  assert.ok(order.indexOf("bin") < order.indexOf("bin/busybox"));
  assert.ok(order.indexOf("dev") < order.indexOf("dev/console"));
});

test("/init mounts proc, sys, devtmpfs and starts a shell on the console", () => {
  assert.match(INIT_SCRIPT, /^#!\/bin\/sh\n/);
  assert.match(INIT_SCRIPT, /mount -t proc proc \/proc/);
  assert.match(INIT_SCRIPT, /mount -t sysfs sysfs \/sys/);
  assert.match(INIT_SCRIPT, /mount -t devtmpfs devtmpfs \/dev/);
  assert.match(INIT_SCRIPT, /setsid cttyhack sh/);
});

test("the same inputs give the same bytes", () => {
  const a = buildBusyboxInitramfs({ busybox: fakeBusybox() });
  const b = buildBusyboxInitramfs({ busybox: fakeBusybox() });
  assert.deepEqual(a, b);
});
