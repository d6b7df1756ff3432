import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describeGuest, fetchDebian, FetchError, findDebianGuest, type Manifest } from "./image.ts";
import { ProgressBar } from "../console/progress.ts";

function fakeGuest(root: string, name: string, version: string, initramfs = "initramfs.cpio"): void {
  const d = join(root, name);
  mkdirSync(d, { recursive: true });
  writeFileSync(join(d, "vmlinuz"), "k");
  writeFileSync(join(d, initramfs), "i");
  const m: Partial<Manifest> = { kernelVersion: version, kernelPackage: `linux-image-${version}`, kernelBytes: 1, initrdBytes: 1 };
  writeFileSync(join(d, "manifest.json"), JSON.stringify(m));
}

test("findDebianGuest: the one debian.json names, else the newest complete one", () => {
  const root = mkdtempSync(join(tmpdir(), "boxvm-cache-"));
  try {
    assert.equal(findDebianGuest(root), null);
    fakeGuest(root, "debian-6.1.0-49-686", "6.1.0-49-686");
    fakeGuest(root, "debian-6.1.0-50-686", "6.1.0-50-686");
    mkdirSync(join(root, "debian-6.1.0-99-686")); // incomplete: ignored
    assert.equal(findDebianGuest(root)?.kernelVersion, "6.1.0-50-686");
    writeFileSync(join(root, "debian.json"), JSON.stringify({ current: "debian-6.1.0-49-686" }));
    const g = findDebianGuest(root)!;
    assert.equal(g.kernelVersion, "6.1.0-49-686");
    assert.match(describeGuest(g).join("\n"), /boxvm run --kernel .*vmlinuz --initrd .*initramfs\.cpio(\s|$)/);
    // a cache written before the initramfs was stored uncompressed still boots
    fakeGuest(root, "debian-6.1.0-48-686", "6.1.0-48-686", "initramfs.cpio.gz");
    writeFileSync(join(root, "debian.json"), JSON.stringify({ current: "debian-6.1.0-48-686" }));
    assert.match(findDebianGuest(root)?.initrd ?? "", /initramfs\.cpio\.gz$/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("without apt, fetch says what to do instead", async () => {
  const bin = mkdtempSync(join(tmpdir(), "boxvm-noapt-"));
  const oldPath = process.env["PATH"];
  try {
    symlinkSync("/bin/sh", join(bin, "sh"));
    process.env["PATH"] = bin;
    const quiet = new ProgressBar({ write: () => true });
    await assert.rejects(fetchDebian({ root: join(bin, "cache"), progress: quiet }), (e: unknown) => {
      assert.ok(e instanceof FetchError);
      assert.match(e.message, /apt-get is not installed/);
      assert.match(e.message, /boxvm run --kernel <bzImage> --initrd/);
      return true;
    });
  } finally {
    process.env["PATH"] = oldPath;
    rmSync(bin, { recursive: true, force: true });
  }
});
