/**
 * SSM, boxvm's saved-state file: writing a VM's units and RAM to a file or stream, and reading them
 * back with every check done before anything reaches the VM. Byte layout: FORMAT.md beside this file.
 *
 * Design points (after VirtualBox SSM v2 and Firecracker snapshots):
 * - one record per component unit (name, instance, version) with its own CRC32; the header says what
 *   machine the state belongs to (RAM size, config, time, boxvm version) and the END. record carries a
 *   CRC32 over the whole file before it;
 * - RAM in 1 MiB chunks: zero pages elided, pages that look random stored raw (deflate is slow on them
 *   and gains nothing), the rest deflated (level 1) as one stream per chunk; file writes run on libuv's
 *   thread pool while the next chunks are classified, hashed and compressed;
 * - streaming both ways: besides the guest RAM it was given, the writer holds one 4 MiB batch of records
 *   being written and the next being gathered (raw pages are views of the RAM, never copies); the
 *   reader holds the units and the non-zero RAM pages (never more than the RAM itself) until
 *   `restoreRam`;
 * - files are replaced atomically: a temporary file in the same directory, fsync, rename, fsync of the
 *   directory; a failed or cancelled save removes its temporary file and leaves the old file as it was.
 *
 * Errors are VBoxError with VERR_SSM_* codes and messages that name the unit or RAM chunk at fault.
 */
import { randomBytes } from "node:crypto";
import { open, readdir, rename, unlink, type FileHandle } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import { VBoxError, Status } from "../vm/err.ts";
import { Progress } from "./common.ts";
import { PAGE_SIZE } from "./format.ts";
import { FileSink, FileSource, StreamSink, StreamSource, ioError } from "./io.ts";
import { loaded, parseState } from "./reader.ts";
import type { LoadExpect, LoadedState, SaveInput, SsmProgress, StateReport } from "./types.ts";
import { writeState } from "./writer.ts";

export type {
  LoadExpect,
  LoadedState,
  RamStats,
  SaveInput,
  SavedUnit,
  SsmProgress,
  StateHeader,
  StateReport,
  UnitExpectation,
  UnitReport,
} from "./types.ts";
export { describeConfigDifference } from "./reader.ts";
export { boxvmVersion } from "./common.ts";

function tempNameFor(target: string): string {
  return join(dirname(target), `.${basename(target)}.${String(process.pid)}.${randomBytes(4).toString("hex")}.ssmtmp`);
}

/**
 * Removes temporary files an earlier save of the same target left behind when its process died
 * (kill -9, power loss): `.<name>.<pid>.<hex>.ssmtmp` whose pid is not a live process.
 */
async function removeStaleTemps(target: string): Promise<void> {
  const prefix = `.${basename(target)}.`;
  let names: string[];
  try {
    names = await readdir(dirname(target));
  } catch {
    return;
  }
  for (const n of names) {
    if (!n.startsWith(prefix) || !n.endsWith(".ssmtmp")) continue;
    const m = /^(\d+)\.[0-9a-f]{8}\.ssmtmp$/.exec(n.slice(prefix.length));
    if (m === null) continue;
    const pid = Number(m[1]);
    if (pid === process.pid) continue;
    let alive = true;
    try {
      process.kill(pid, 0);
    } catch (e) {
      alive = (e as NodeJS.ErrnoException).code !== "ESRCH";
    }
    if (!alive) await unlink(join(dirname(target), n)).catch(() => undefined);
  }
}

/**
 * Saves a state to `path`, atomically: the file is either the complete new state or whatever was
 * there before. Progress < 0 cancels with that status (thrown as VBoxError).
 */
export async function saveStateToFile(path: string, input: SaveInput, progress?: SsmProgress): Promise<void> {
  const target = resolve(path);
  await removeStaleTemps(target);
  const tmp = tempNameFor(target);
  let fh: FileHandle | null = null;
  try {
    fh = await open(tmp, "wx", 0o644);
  } catch (e) {
    throw ioError(e, Status.VERR_WRITE_ERROR, `Cannot create the saved state file '${target}'`);
  }
  const sink = new FileSink(fh, `file '${target}'`);
  try {
    const prog = new Progress(progress, "Saving the state");
    await writeState(sink, input, prog);
    await sink.sync();
    await fh.close();
    fh = null;
    prog.finish();
    // Hold the file being replaced open across the rename: the kernel then frees its pages when we
    // close it in the background, not inside rename() (tens of ms for a large state).
    const replaced = process.platform === "win32" ? null : await open(target, "r").catch(() => null);
    try {
      await rename(tmp, target);
    } catch (e) {
      throw ioError(e, Status.VERR_WRITE_ERROR, `Cannot replace the saved state file '${target}'`);
    } finally {
      void replaced?.close().catch(() => undefined);
    }
  } catch (e) {
    await sink.settle();
    if (fh !== null) await fh.close().catch(() => undefined);
    await unlink(tmp).catch(() => undefined);
    throw e;
  }
  // Make the rename itself durable. Not every platform can fsync a directory; that is not an error.
  try {
    const dh = await open(dirname(target), "r");
    try {
      await dh.sync();
    } finally {
      await dh.close();
    }
  } catch {
    // best effort
  }
}

/**
 * Saves a state to a writable stream (not ended afterwards). Resolves once the stream has accepted
 * every byte. A cancelled or failed save leaves a partial state in the stream.
 */
export async function saveStateToStream(
  stream: NodeJS.WritableStream,
  input: SaveInput,
  progress?: SsmProgress,
): Promise<void> {
  const sink = new StreamSink(stream);
  let failed = true;
  try {
    const prog = new Progress(progress, "Saving the state");
    await writeState(sink, input, prog);
    prog.finish();
    failed = false;
  } finally {
    sink.dispose(failed);
  }
}

/** Loads and verifies a state file against the VM's expectations. Nothing is restored yet. */
export async function loadStateFromFile(
  path: string,
  expect: LoadExpect,
  progress?: SsmProgress,
): Promise<LoadedState> {
  const target = resolve(path);
  const label = `file '${target}'`;
  let fh: FileHandle;
  try {
    fh = await open(target, "r");
  } catch (e) {
    throw ioError(e, Status.VERR_READ_ERROR, `Cannot open the saved state ${label}`);
  }
  try {
    const size = (await fh.stat()).size;
    const src = new FileSource(fh, size, label);
    try {
      const r = await parseState(src, { label, expect, progress: new Progress(progress, "Loading the state") });
      return loaded(r);
    } finally {
      await src.settle();
    }
  } finally {
    await fh.close().catch(() => undefined);
  }
}

/** Loads and verifies a state from a readable stream, which must end right after the state. */
export async function loadStateFromStream(
  stream: NodeJS.ReadableStream,
  expect: LoadExpect,
  progress?: SsmProgress,
): Promise<LoadedState> {
  const label = "stream";
  const src = new StreamSource(stream, label);
  try {
    const r = await parseState(src, { label, expect, progress: new Progress(progress, "Loading the state") });
    return loaded(r);
  } finally {
    await src.close();
  }
}

function emptyReport(path: string, fileSize: number): StateReport {
  return {
    path,
    fileSize,
    header: null,
    units: [],
    ram: {
      pages: 0,
      zeroPages: 0,
      rawPages: 0,
      compressedPages: 0,
      chunks: 0,
      rawBytes: 0,
      deflatedBytes: 0,
      inflatedBytes: 0,
    },
    fileCrc: null,
    fileCrcOk: null,
    error: null,
  };
}

/**
 * Reads a state file without a VM: header, units (with their CRC results), RAM statistics and the
 * first problem found. Never throws for a bad file; an unreadable one gives `error` too.
 */
export async function inspectStateFile(path: string): Promise<StateReport> {
  const target = resolve(path);
  const label = `file '${target}'`;
  let report = emptyReport(target, 0);
  let fh: FileHandle | null = null;
  try {
    fh = await open(target, "r");
    const size = (await fh.stat()).size;
    report = emptyReport(target, size);
    const src = new FileSource(fh, size, label);
    try {
      await parseState(src, { label, report, progress: new Progress(undefined, "Inspecting the state") });
    } finally {
      await src.settle();
    }
  } catch (e) {
    report.error ??=
      e instanceof VBoxError ? e : ioError(e, Status.VERR_READ_ERROR, `Cannot read the saved state ${label}`);
  } finally {
    await fh?.close().catch(() => undefined);
  }
  if (report.header !== null) report.ram.pages = report.header.ramSize / PAGE_SIZE;
  return report;
}
