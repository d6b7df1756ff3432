import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, readlinkSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { normalizeCpioPath, readCpio, S_IFCHR, S_IFDIR, S_IFLNK, S_IFREG, writeCpio } from "./cpio.ts";

const text = (s: string): Uint8Array => new TextEncoder().encode(s);
const str = (b: Uint8Array): string => new TextDecoder().decode(b);

test("one file: the exact newc bytes", () => {
  const a = writeCpio([{ kind: "file", path: "/ab", data: text("xyz"), mode: 0o755 }], 0x5f5e100);
  // header: magic + 13 fields of 8 hex digits
  const expectHeader =
    "070701" +
    "00000001" + // ino
    "000081ed" + // mode: S_IFREG | 0755
    "00000000" + "00000000" + // uid gid
    "00000001" + // nlink
    "05f5e100" + // mtime
    "00000003" + // filesize
    "00000000" + "00000000" + "00000000" + "00000000" + // dev, rdev
    "00000003" + // namesize "ab\0"
    "00000000"; // check
  assert.equal(str(a.subarray(0, 110)), expectHeader);
  assert.equal(str(a.subarray(110, 112)), "ab");
  assert.equal(a[112], 0);
  // 110 + 3 = 113 -> padded to 116; data 3 -> padded to 4
  assert.equal(str(a.subarray(116, 119)), "xyz");
  assert.equal(a[119], 0);
  // trailer member follows at 120
  assert.equal(str(a.subarray(120, 126)), "070701");
  assert.equal(str(a.subarray(230, 240)), "TRAILER!!!");
  assert.equal(a.length % 4, 0);
});

test("round trip: files, directories, symlinks, device nodes", () => {
  const a = writeCpio([
    { kind: "dir", path: "dev" },
    { kind: "chardev", path: "dev/console", major: 5, minor: 1 },
    { kind: "file", path: "./init", data: text("#!/bin/sh\n"), mode: 0o755 },
    { kind: "symlink", path: "bin/sh", target: "busybox" },
    { kind: "file", path: "empty", data: new Uint8Array(0) },
  ]);
  const m = readCpio(a);
  assert.deepEqual(
    m.map((x) => x.path),
    ["dev", "dev/console", "init", "bin/sh", "empty"],
  );
  assert.equal(m[0]!.mode, S_IFDIR | 0o755);
  assert.equal(m[0]!.nlink, 2);
  assert.equal(m[1]!.mode, S_IFCHR | 0o600);
  assert.deepEqual([m[1]!.rdevMajor, m[1]!.rdevMinor], [5, 1]);
  assert.equal(m[2]!.mode, S_IFREG | 0o755);
  assert.equal(str(m[2]!.data), "#!/bin/sh\n");
  assert.equal(m[3]!.mode, S_IFLNK | 0o777);
  assert.equal(str(m[3]!.data), "busybox");
  assert.equal(m[4]!.data.length, 0);
});

test("paths: leading slashes and ./ go, .. and duplicates are refused", () => {
  assert.equal(normalizeCpioPath("/bin/sh"), "bin/sh");
  assert.equal(normalizeCpioPath("./etc/"), "etc");
  assert.equal(normalizeCpioPath("/"), ".");
  assert.throws(() => normalizeCpioPath("a/../b"), /Bad path/);
  assert.throws(
    () =>
      writeCpio([
        { kind: "dir", path: "a" },
        { kind: "dir", path: "/a" },
      ]),
    /Duplicate/,
  );
});

test("GNU cpio extracts our archive (skipped without cpio installed)", (t) => {
  if (spawnSync("cpio", ["--version"]).status !== 0) {
    t.skip("cpio is not installed (apt-get install cpio)");
    return;
  }
  const big = Uint8Array.from({ length: 70001 }, (_, i) => (i * 31) & 0xff);
  const a = writeCpio([
    { kind: "dir", path: "d" },
    { kind: "file", path: "d/big", data: big, mode: 0o640 },
    { kind: "file", path: "d/odd name.txt", data: text("hi\n") },
    { kind: "symlink", path: "d/link", target: "big" },
  ]);
  const dir = mkdtempSync(join(tmpdir(), "boxvm-cpio-"));
  try {
    const r = spawnSync("cpio", ["-idm", "--quiet", "--no-absolute-filenames"], { cwd: dir, input: a });
    assert.equal(r.status, 0, r.stderr.toString());
    assert.deepEqual(new Uint8Array(readFileSync(join(dir, "d/big"))), big);
    assert.equal(statSync(join(dir, "d/big")).mode & 0o777, 0o640);
    assert.equal(readFileSync(join(dir, "d/odd name.txt"), "utf8"), "hi\n");
    assert.equal(readlinkSync(join(dir, "d/link")), "big");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
