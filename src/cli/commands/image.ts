/**
 * `boxvm image`: guest images for `boxvm run`.
 *
 *   boxvm image fetch debian   Debian's i386 kernel (linux-image-686) and busybox (busybox-static)
 *                              from Debian's packages, with an initramfs built by our cpio writer,
 *                              cached in $XDG_CACHE_HOME/boxvm (~/.cache/boxvm)
 *   boxvm image list           what is cached
 *   boxvm image initramfs      builds a busybox initramfs from a busybox binary of your choice
 *
 * The fetch uses the host's apt: `apt-get download` needs no root once the i386 architecture is
 * enabled and the package lists are current; enabling it (dpkg --add-architecture i386,
 * apt-get update) does, and is done here when running as root.
 */
import type { Command } from "commander";
import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { homedir } from "node:os";
import { basename, join } from "node:path";
import { gzipSync } from "node:zlib";
import { parseSetupHeader, protocolString } from "../../loader/bzimage.ts";
import type { CpioEntry } from "../../loader/cpio.ts";
import { buildBusyboxInitramfs, busyboxApplets } from "../../loader/initramfs.ts";
import { formatBytes, ProgressBar } from "../console/progress.ts";

/** The meta-package whose dependency is the versioned kernel package. */
export const KERNEL_META = "linux-image-686:i386";
export const BUSYBOX_PKG = "busybox-static:i386";

/** The boxvm cache: $BOXVM_CACHE_DIR, else $XDG_CACHE_HOME/boxvm, else ~/.cache/boxvm. */
export function cacheRoot(): string {
  const own = process.env["BOXVM_CACHE_DIR"];
  if (own) return own;
  const xdg = process.env["XDG_CACHE_HOME"];
  return join(xdg && xdg.startsWith("/") ? xdg : join(homedir(), ".cache"), "boxvm");
}

/** A cached Debian guest. */
export interface DebianGuest {
  dir: string;
  kernel: string;
  initrd: string;
  /** "6.1.0-50-686". */
  kernelVersion: string;
  manifest: Manifest;
}

/** manifest.json of a cached guest. */
export interface Manifest {
  kernelPackage: string;
  kernelPackageVersion: string;
  kernelVersion: string;
  bootProtocol: string;
  busyboxVersion: string;
  applets: number;
  kernelBytes: number;
  initrdBytes: number;
  initrdCpioBytes: number;
  kernelSha256: string;
  initrdSha256: string;
  fetchedAt: string;
  fetchSeconds: number;
}

/** The cached Debian guest `boxvm run` uses (the newest fetched), or null. */
export function findDebianGuest(root = cacheRoot()): DebianGuest | null {
  let name: string | null = null;
  try {
    const cur = JSON.parse(readFileSync(join(root, "debian.json"), "utf8")) as { current?: unknown };
    if (typeof cur.current === "string") name = cur.current;
  } catch {
    name = null;
  }
  const candidates = name ? [name] : [];
  if (existsSync(root)) {
    for (const d of readdirSync(root).sort().reverse()) if (d.startsWith("debian-") && d !== name) candidates.push(d);
  }
  for (const d of candidates) {
    const g = guestAt(join(root, d));
    if (g) return g;
  }
  return null;
}

/**
 * The initramfs is stored uncompressed: the kernel then copies it instead of inflating it, which
 * was 15 % of the instructions to the shell on boxvm's interpreter (332 → 282 million).
 * Caches written before that hold initramfs.cpio.gz, which still boots.
 */
const INITRAMFS = "initramfs.cpio";
const OLD_INITRAMFS = "initramfs.cpio.gz";

function guestAt(dir: string): DebianGuest | null {
  const kernel = join(dir, "vmlinuz");
  const initrd = [INITRAMFS, OLD_INITRAMFS].map((f) => join(dir, f)).find((p) => existsSync(p));
  if (!existsSync(kernel) || initrd === undefined) return null;
  try {
    const manifest = JSON.parse(readFileSync(join(dir, "manifest.json"), "utf8")) as Manifest;
    return { dir, kernel, initrd, kernelVersion: manifest.kernelVersion, manifest };
  } catch {
    return null;
  }
}

/** An error whose message tells the user what to do. */
export class FetchError extends Error {}

function have(cmd: string): boolean {
  return spawnSync("sh", ["-c", `command -v ${cmd}`], { stdio: "ignore" }).status === 0;
}

function run(cmd: string, args: string[], cwd?: string): { ok: boolean; out: string; err: string } {
  const r = spawnSync(cmd, args, { cwd, encoding: "utf8", env: { ...process.env, LC_ALL: "C" } });
  return { ok: r.status === 0, out: r.stdout ?? "", err: r.stderr ?? "" };
}

/** Runs a command, calling `tick` every 200 ms while it runs. */
function runAsync(cmd: string, args: string[], cwd: string, tick: () => void): Promise<{ ok: boolean; err: string }> {
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { cwd, env: { ...process.env, LC_ALL: "C" }, stdio: ["ignore", "ignore", "pipe"] });
    let err = "";
    p.stderr.on("data", (d: Buffer) => (err += d.toString()));
    const t = setInterval(tick, 200);
    p.on("error", (e) => {
      clearInterval(t);
      resolve({ ok: false, err: e.message });
    });
    p.on("close", (code) => {
      clearInterval(t);
      resolve({ ok: code === 0, err });
    });
  });
}

/** One package record of `apt-cache show`. */
interface AptRecord {
  version: string;
  size: number;
  depends: string;
}

/**
 * The candidate records of packages ("name:arch"), one `apt-cache show` for all of them (apt-cache
 * is slow: about a second per call with two architectures' lists). Null when apt does not know one.
 */
function aptShow(pkgs: readonly string[]): Map<string, AptRecord> | null {
  const r = run("apt-cache", ["show", "--no-all-versions", ...pkgs]);
  if (!r.ok) return null;
  const out = new Map<string, AptRecord>();
  for (const para of r.out.split(/\n\s*\n/)) {
    const field = (k: string): string => new RegExp(`^${k}:\\s*(.*)$`, "m").exec(para)?.[1]?.trim() ?? "";
    const name = field("Package");
    if (!name) continue;
    out.set(`${name}:${field("Architecture")}`, {
      version: field("Version"),
      size: Number(field("Size")) || 0,
      depends: field("Depends"),
    });
  }
  return pkgs.every((p) => out.has(p)) ? out : null;
}

const NO_APT_HELP = `boxvm image fetch debian takes Debian's own kernel and busybox from Debian's packages and needs
Debian's (or Ubuntu's) apt and dpkg. Without them, boot your own kernel and initramfs:
  boxvm run --kernel <bzImage> --initrd <initramfs.cpio> --append "console=ttyS0"
(an initramfs can be built with: boxvm image initramfs --busybox <static i386 busybox> -o initramfs.cpio.gz)`;

function notRootHelp(what: string): string {
  return `${what}
Enable Debian's i386 packages once, as root, then run the fetch again (it needs no root after that):
  sudo dpkg --add-architecture i386 && sudo apt-get update
  boxvm image fetch debian`;
}

/** Options of fetchDebian. */
export interface FetchOptions {
  force?: boolean;
  root?: string;
  progress?: ProgressBar;
  log?: (line: string) => void;
}

/**
 * Fetches (or finds in the cache) the Debian guest. Throws FetchError with instructions when apt
 * cannot provide the packages.
 */
export async function fetchDebian(opts: FetchOptions = {}): Promise<{ guest: DebianGuest; cached: boolean }> {
  const t0 = Date.now();
  const root = opts.root ?? cacheRoot();
  const bar = opts.progress ?? new ProgressBar();
  const log = opts.log ?? ((s: string): void => void process.stderr.write(`${s}\n`));

  for (const tool of ["apt-get", "apt-cache", "dpkg", "dpkg-deb"]) {
    if (!have(tool)) throw new FetchError(`${tool} is not installed.\n${NO_APT_HELP}`);
  }
  const isRoot = typeof process.getuid === "function" && process.getuid() === 0;

  bar.step(0.01, "checking Debian's i386 packages");
  let recs = aptShow([KERNEL_META, BUSYBOX_PKG]);
  if (!recs) {
    const arches = run("dpkg", ["--print-foreign-architectures"]).out.split(/\s+/);
    if (!isRoot) {
      bar.clear();
      throw new FetchError(
        notRootHelp(
          arches.includes("i386")
            ? `apt does not know ${KERNEL_META} yet (package lists not updated?).`
            : "The i386 architecture is not enabled in dpkg.",
        ),
      );
    }
    if (!arches.includes("i386")) {
      bar.step(0.02, "enabling the i386 architecture (dpkg --add-architecture i386)");
      const r = run("dpkg", ["--add-architecture", "i386"]);
      if (!r.ok) throw new FetchError(`dpkg --add-architecture i386 failed: ${r.err.trim()}`);
    }
    bar.step(0.03, "updating package lists (apt-get update)");
    // apt-get update may fail for one mirror and still have what we need: judge by the result.
    const up = await runAsync("apt-get", ["update", "-q"], "/", () => bar.update(0.05));
    recs = aptShow([KERNEL_META, BUSYBOX_PKG]);
    if (!recs) {
      bar.clear();
      throw new FetchError(`apt still does not offer ${KERNEL_META} and ${BUSYBOX_PKG} after apt-get update:\n${up.err.trim()}`);
    }
  }

  bar.step(0.08, `resolving ${KERNEL_META}`);
  const deps = recs.get(KERNEL_META)!.depends;
  const dm = /(linux-image-[^\s,(:]+)/.exec(deps);
  if (!dm) throw new FetchError(`Cannot find the versioned kernel package ${KERNEL_META} depends on (Depends: ${deps})`);
  const kernelPkg = dm[1]!;
  const kernelVersion = kernelPkg.replace(/^linux-image-/, "");
  const dirName = `debian-${kernelVersion}`;
  const finalDir = join(root, dirName);
  const existing = guestAt(finalDir);
  // A cache from before the initramfs was stored uncompressed is built again.
  if (existing && opts.force !== true && existing.initrd.endsWith(INITRAMFS)) {
    writeFileSync(join(root, "debian.json"), `${JSON.stringify({ current: dirName })}\n`);
    bar.done(`Debian guest ${kernelVersion} is in the cache`);
    return { guest: existing, cached: true };
  }

  mkdirSync(root, { recursive: true });
  const work = mkdtempSync(join(root, ".fetch-"));
  try {
    // apt's download sandbox user (_apt) must be able to write here when we run as root.
    if (isRoot) chmodSync(work, 0o777);
    const pkgs = [`${kernelPkg}:i386`, BUSYBOX_PKG];
    const krec = aptShow([pkgs[0]!])?.get(pkgs[0]!);
    if (!krec) throw new FetchError(`apt does not offer ${pkgs[0]!}`);
    const bbrec = recs.get(BUSYBOX_PKG)!;
    const total = krec.size + bbrec.size;
    const kVer = krec.version;
    const bbVer = bbrec.version;
    bar.step(0.1, `downloading ${kernelPkg} ${kVer} and busybox-static ${bbVer}`);
    const dirBytes = (): number => readdirSync(work).reduce((n, f) => n + statSync(join(work, f)).size, 0);
    const dl = await runAsync("apt-get", ["download", "-q", ...pkgs], work, () => {
      const got = dirBytes();
      bar.update(0.1 + (total > 0 ? 0.65 * Math.min(1, got / total) : 0), `${formatBytes(got)}/${formatBytes(total)}`);
    });
    const debs = readdirSync(work).filter((f) => f.endsWith(".deb"));
    if (!dl.ok || debs.length < 2) {
      bar.clear();
      throw new FetchError(`apt-get download ${pkgs.join(" ")} failed:\n${dl.err.trim()}`);
    }

    bar.step(0.78, "extracting (dpkg-deb)");
    const x = join(work, "x");
    mkdirSync(x);
    for (const d of debs) {
      // From the kernel package only the kernel itself (its modules are most of the package).
      const r = d.startsWith("linux-image-")
        ? run("sh", ["-c", `dpkg-deb --fsys-tarfile "$0" 2>/dev/null | tar -x --occurrence=1 -C "$1" ./boot/vmlinuz-${kernelVersion}`, join(work, d), x])
        : run("dpkg-deb", ["-x", join(work, d), x]);
      if (!r.ok) throw new FetchError(`extracting ${d} failed: ${r.err.trim()}`);
    }
    const kernelPath = join(x, "boot", `vmlinuz-${kernelVersion}`);
    const bbPath = [join(x, "bin", "busybox"), join(x, "usr", "bin", "busybox")].find((p) => existsSync(p));
    if (!existsSync(kernelPath)) throw new FetchError(`${kernelPkg} has no boot/vmlinuz-${kernelVersion}`);
    if (!bbPath) throw new FetchError("busybox-static has no bin/busybox");
    const kernel = new Uint8Array(readFileSync(kernelPath));
    const header = parseSetupHeader(kernel); // our own loader must accept it
    const busybox = new Uint8Array(readFileSync(bbPath));
    const applets = busyboxApplets(busybox);
    if (applets.length < 50 || !applets.includes("sh") || !applets.includes("cttyhack")) {
      throw new FetchError(`Could not read busybox's applet list (found ${String(applets.length)} names)`);
    }

    bar.step(0.85, `building the initramfs (${String(applets.length)} applets, cpio newc)`);
    const cpio = buildBusyboxInitramfs({ busybox, applets });
    const initrd = cpio;

    const staging = join(work, "out");
    mkdirSync(staging);
    writeFileSync(join(staging, "vmlinuz"), kernel);
    writeFileSync(join(staging, INITRAMFS), initrd);
    writeFileSync(join(staging, "busybox"), busybox, { mode: 0o755 });
    const manifest: Manifest = {
      kernelPackage: kernelPkg,
      kernelPackageVersion: kVer,
      kernelVersion,
      bootProtocol: protocolString(header.version),
      busyboxVersion: bbVer,
      applets: applets.length,
      kernelBytes: kernel.length,
      initrdBytes: initrd.length,
      initrdCpioBytes: cpio.length,
      kernelSha256: createHash("sha256").update(kernel).digest("hex"),
      initrdSha256: createHash("sha256").update(initrd).digest("hex"),
      fetchedAt: new Date().toISOString(),
      fetchSeconds: (Date.now() - t0) / 1000,
    };
    writeFileSync(join(staging, "manifest.json"), `${JSON.stringify(manifest, null, 2)}\n`);
    rmSync(finalDir, { recursive: true, force: true });
    renameSync(staging, finalDir);
    writeFileSync(join(root, "debian.json"), `${JSON.stringify({ current: dirName })}\n`);
    bar.done(`fetched Debian guest ${kernelVersion} in ${manifest.fetchSeconds.toFixed(1)} s`);
    log(`  (${basename(finalDir)}: kernel ${formatBytes(kernel.length)}, initramfs ${formatBytes(initrd.length)})`);
    const guest = guestAt(finalDir);
    if (!guest) throw new FetchError(`The cache directory ${finalDir} is incomplete`);
    return { guest, cached: false };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** The lines `image fetch` / `image list` print about a guest. */
export function describeGuest(g: DebianGuest): string[] {
  const m = g.manifest;
  return [
    `Debian guest ${m.kernelVersion} (${m.kernelPackage} ${m.kernelPackageVersion}, boot protocol ${m.bootProtocol}; busybox ${m.busyboxVersion}, ${String(m.applets)} applets)`,
    `  kernel:    ${g.kernel} (${formatBytes(m.kernelBytes)})`,
    `  initramfs: ${g.initrd} (${formatBytes(m.initrdBytes)}, ${formatBytes(m.initrdCpioBytes)} uncompressed)`,
    `  boot it:   boxvm run   (or: boxvm run --kernel ${g.kernel} --initrd ${g.initrd} --append "console=ttyS0")`,
  ];
}

/** Parses --add host:guest[:mode] for `image initramfs`. */
function parseAdd(spec: string): CpioEntry {
  const [host, guest, mode] = spec.split(":");
  if (!host || !guest) throw new Error(`--add expects host-path:guest-path[:octal-mode], got ${spec}`);
  return {
    kind: "file",
    path: guest,
    data: new Uint8Array(readFileSync(host)),
    mode: mode ? parseInt(mode, 8) : statSync(host).mode & 0o777,
  };
}

/** Adds `image` to the CLI. */
export function register(program: Command): void {
  const image = program.command("image").description("Guest images for boxvm run (Debian's kernel + busybox initramfs)");
  image
    .command("fetch")
    .description("Fetch Debian's i386 kernel and busybox with apt and build the initramfs (cached)")
    .argument("<distro>", 'only "debian"')
    .option("--force", "fetch again even when cached")
    .action(async (distro: string, o: { force?: boolean }) => {
      if (distro !== "debian") {
        process.stderr.write(`boxvm image fetch: unknown image ${JSON.stringify(distro)} (known: debian)\n`);
        process.exitCode = 2;
        return;
      }
      try {
        const { guest } = await fetchDebian({ force: o.force === true });
        for (const l of describeGuest(guest)) process.stdout.write(`${l}\n`);
      } catch (e) {
        process.stderr.write(`boxvm image fetch: ${(e as Error).message}\n`);
        process.exitCode = 1;
      }
    });
  image
    .command("list")
    .description("List the cached guest images")
    .action(() => {
      const root = cacheRoot();
      const dirs = existsSync(root) ? readdirSync(root).filter((d) => d.startsWith("debian-")) : [];
      const cur = findDebianGuest(root);
      if (dirs.length === 0) process.stdout.write(`No images in ${root} (boxvm image fetch debian)\n`);
      for (const d of dirs.sort()) {
        const g = guestAt(join(root, d));
        if (!g) continue;
        const lines = describeGuest(g);
        if (cur?.dir === g.dir) lines[0] += "  [default]";
        for (const l of lines) process.stdout.write(`${l}\n`);
      }
    });
  image
    .command("initramfs")
    .description("Build a busybox initramfs (cpio newc, gzip) from a static busybox binary")
    .requiredOption("--busybox <file>", "a static busybox binary (e.g. from busybox-static)")
    .requiredOption("-o, --output <file>", "where to write initramfs.cpio.gz")
    .option("--init <file>", "your own /init script instead of boxvm's")
    .option("--add <host:guest[:mode]>", "add a file (repeatable)", (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option("--no-gzip", "write the cpio archive uncompressed")
    .action((o: { busybox: string; output: string; init?: string; add: string[]; gzip: boolean }) => {
      try {
        const busybox = new Uint8Array(readFileSync(o.busybox));
        const applets = busyboxApplets(busybox);
        const cpio = buildBusyboxInitramfs({
          busybox,
          applets,
          extra: o.add.map(parseAdd),
          ...(o.init ? { init: readFileSync(o.init, "utf8") } : {}),
        });
        const out = o.gzip ? gzipSync(cpio, { level: 9 }) : cpio;
        writeFileSync(o.output, out);
        process.stdout.write(
          `${o.output}: ${formatBytes(out.length)} (${String(applets.length)} busybox applets, ${formatBytes(cpio.length)} cpio)\n`,
        );
      } catch (e) {
        process.stderr.write(`boxvm image initramfs: ${(e as Error).message}\n`);
        process.exitCode = 1;
      }
    });
}
