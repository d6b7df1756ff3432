/**
 * Byte sinks and sources for the saved-state writer and reader: a file handle or any Node stream.
 * Sources hand out exact-length reads and report truncation as VERR_SSM_INTEGRITY_SIZE with the offset
 * and what was being read; they never allocate more than the bytes that actually arrived (a stream) or
 * that the file holds (a file), so a corrupt length cannot make the reader allocate gigabytes.
 */
import type { FileHandle } from "node:fs/promises";
import { VBoxError, Status } from "../vm/err.ts";

/** Where the writer puts bytes. */
export interface ByteSink {
  /** Writes the buffers in order; they must stay unchanged until flush() resolves. */
  write(bufs: readonly Uint8Array[]): Promise<void>;
  /** Resolves once everything written has been accepted by the file or stream. */
  flush(): Promise<void>;
}

/** Where the reader gets bytes. */
export interface ByteSource {
  /** Exactly n bytes, or VERR_SSM_INTEGRITY_SIZE naming `what` when the input ends first. */
  read(n: number, what: string): Promise<Uint8Array>;
  /** True when no byte follows. */
  atEnd(): Promise<boolean>;
  /** Bytes consumed so far. */
  readonly offset: number;
  /** Total size when known (a file), else undefined. */
  readonly size: number | undefined;
}

/** Maps a Node I/O error to a VBoxError with the given status. */
export function ioError(e: unknown, rc: number, what: string): VBoxError {
  if (e instanceof VBoxError) return e;
  const err = e as NodeJS.ErrnoException;
  let status = rc;
  if (err.code === "ENOENT")
    status = rc === Status.VERR_READ_ERROR ? Status.VERR_FILE_NOT_FOUND : Status.VERR_PATH_NOT_FOUND;
  else if (err.code === "EACCES" || err.code === "EPERM" || err.code === "EROFS") status = Status.VERR_ACCESS_DENIED;
  return new VBoxError(status, `${what}: ${err.message ?? String(e)}`);
}

function truncated(label: string, offset: number, n: number, what: string): VBoxError {
  return new VBoxError(
    Status.VERR_SSM_INTEGRITY_SIZE,
    `Saved state ${label} is truncated: ${what} needs ${String(n)} bytes at offset ${String(offset)}`,
  );
}

/** Bytes written between the background flushes a FileSink starts. */
const WRITE_BEHIND = 16 * 1024 * 1024;

/**
 * A sink over an open file, writing sequentially from offset 0. Every WRITE_BEHIND bytes it starts an
 * fdatasync in the background, so the disk is busy while the writer computes, and the final `sync()`
 * has little left to flush (without it the kernel would hold the whole file dirty until then).
 */
export class FileSink implements ByteSink {
  readonly #fh: FileHandle;
  readonly #label: string;
  #unsynced = 0;
  #behind: Promise<void> | null = null;
  constructor(fh: FileHandle, label: string) {
    this.#fh = fh;
    this.#label = label;
  }
  #writeBehind(bytes: number): void {
    this.#unsynced += bytes;
    if (this.#unsynced < WRITE_BEHIND || this.#behind !== null) return;
    this.#unsynced = 0;
    this.#behind = this.#fh.datasync().then(
      () => {
        this.#behind = null;
      },
      () => {
        this.#behind = null; // the final sync() reports any failure
      },
    );
  }
  /** Waits for the background flush, then flushes everything to the disk. */
  async sync(): Promise<void> {
    await this.#behind;
    try {
      await this.#fh.datasync();
    } catch (e) {
      throw ioError(e, Status.VERR_WRITE_ERROR, `Cannot flush the saved state ${this.#label}`);
    }
  }
  /** Waits for a background flush still running (before the file is closed). */
  async settle(): Promise<void> {
    await this.#behind;
  }
  async write(bufs: readonly Uint8Array[]): Promise<void> {
    let pending = bufs.filter((b) => b.length > 0);
    this.#writeBehind(pending.reduce((n, b) => n + b.length, 0));
    while (pending.length > 0) {
      let written: number;
      try {
        ({ bytesWritten: written } = await this.#fh.writev(pending));
      } catch (e) {
        throw ioError(e, Status.VERR_WRITE_ERROR, `Cannot write the saved state ${this.#label}`);
      }
      // A short write: drop what went out and go again with the rest.
      const rest: Uint8Array[] = [];
      for (const b of pending) {
        if (written >= b.length) written -= b.length;
        else {
          rest.push(written > 0 ? b.subarray(written) : b);
          written = 0;
        }
      }
      pending = rest;
    }
  }
  async flush(): Promise<void> {
    // writev resolves only once the kernel has the bytes; fsync is the caller's (SsmFile) step.
  }
}

/** A sink over any writable stream, honouring backpressure; it never ends the stream. */
export class StreamSink implements ByteSink {
  readonly #stream: NodeJS.WritableStream;
  #error: Error | null = null;
  #pendingCallbacks = 0;
  #idle: (() => void) | null = null;
  readonly #onError = (e: Error): void => {
    this.#error ??= e;
    this.#idle?.();
  };
  constructor(stream: NodeJS.WritableStream) {
    this.#stream = stream;
    stream.on("error", this.#onError);
  }
  #check(): void {
    const w = this.#stream as { destroyed?: boolean; writableEnded?: boolean; errored?: Error | null };
    if (this.#error === null && (w.destroyed === true || w.writableEnded === true)) {
      this.#error = w.errored ?? new Error("the stream was closed before the state was complete");
    }
    if (this.#error !== null)
      throw ioError(this.#error, Status.VERR_WRITE_ERROR, "Cannot write the saved state stream");
  }
  async write(bufs: readonly Uint8Array[]): Promise<void> {
    for (const b of bufs) {
      if (b.length === 0) continue;
      this.#check();
      this.#pendingCallbacks++;
      const ok = this.#stream.write(b, (err?: Error | null) => {
        if (err) this.#error ??= err;
        this.#pendingCallbacks--;
        if (this.#pendingCallbacks === 0) this.#idle?.();
      });
      if (!ok) await this.#waitDrain();
    }
    this.#check();
  }
  #waitDrain(): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        this.#stream.removeListener("drain", done);
        this.#stream.removeListener("close", done);
        this.#stream.removeListener("error", done);
        resolve();
      };
      this.#stream.on("drain", done);
      this.#stream.on("close", done);
      this.#stream.on("error", done);
      // Closed already: no drain will come.
      if ((this.#stream as { destroyed?: boolean }).destroyed === true) done();
    });
  }
  async flush(): Promise<void> {
    this.#check();
    while (this.#pendingCallbacks > 0 && this.#error === null) {
      await new Promise<void>((resolve) => {
        this.#idle = resolve;
      });
      this.#idle = null;
    }
    this.#check();
  }
  /**
   * Detaches the error listener after a successful save. After a failure it stays: the stream's
   * 'error' event may still be on its way, and the failure was reported through the save already.
   */
  dispose(failed: boolean): void {
    if (!failed) this.#stream.removeListener("error", this.#onError);
  }
}

/** The file is read in blocks of this size, one block ahead of the reader. */
const FILE_BLOCK = 4 * 1024 * 1024;

/**
 * A source over an open file of known size. It reads the file in large blocks and keeps the read of
 * the next block in flight while the caller hashes the current one; reads that fit in a block are
 * views of it (no copy).
 */
export class FileSource implements ByteSource {
  readonly #fh: FileHandle;
  readonly #label: string;
  readonly size: number;
  /** File position of the next block to request. */
  #nextPos = 0;
  #ahead: Promise<Uint8Array> | null = null;
  #block: Uint8Array = new Uint8Array(0);
  #blockOff = 0;
  #consumed = 0;
  constructor(fh: FileHandle, size: number, label: string) {
    this.#fh = fh;
    this.size = size;
    this.#label = label;
  }
  get offset(): number {
    return this.#consumed;
  }
  async #readFully(into: Uint8Array, pos: number): Promise<Uint8Array> {
    let done = 0;
    while (done < into.length) {
      let n: number;
      try {
        ({ bytesRead: n } = await this.#fh.read(into, done, into.length - done, pos + done));
      } catch (e) {
        throw ioError(e, Status.VERR_READ_ERROR, `Cannot read the saved state ${this.#label}`);
      }
      if (n === 0)
        throw truncated(this.#label, pos + done, into.length - done, "the file (it shrank while being read)");
      done += n;
    }
    return into;
  }
  #startAhead(): void {
    if (this.#ahead !== null || this.#nextPos >= this.size) return;
    const len = Math.min(FILE_BLOCK, this.size - this.#nextPos);
    this.#ahead = this.#readFully(Buffer.allocUnsafe(len), this.#nextPos);
    this.#ahead.catch(() => undefined); // awaited in #nextBlock
    this.#nextPos += len;
  }
  async #nextBlock(): Promise<void> {
    this.#startAhead();
    const p = this.#ahead!;
    this.#ahead = null;
    this.#block = await p;
    this.#blockOff = 0;
    this.#startAhead();
  }
  async read(n: number, what: string): Promise<Uint8Array> {
    if (n > this.size - this.#consumed) throw truncated(this.#label, this.#consumed, n, what);
    if (this.#block.length - this.#blockOff === 0 && n > 0) await this.#nextBlock();
    let have = this.#block.length - this.#blockOff;
    if (have >= n) {
      const r = this.#block.subarray(this.#blockOff, this.#blockOff + n);
      this.#blockOff += n;
      this.#consumed += n;
      return r;
    }
    // Spans blocks: gather a copy.
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      if (have === 0) {
        await this.#nextBlock();
        have = this.#block.length;
      }
      const take = Math.min(have, n - filled);
      out.set(this.#block.subarray(this.#blockOff, this.#blockOff + take), filled);
      this.#blockOff += take;
      filled += take;
      have -= take;
    }
    this.#consumed += n;
    return out;
  }
  async atEnd(): Promise<boolean> {
    return this.#consumed >= this.size;
  }
  /** Waits for a read still in flight (before the file is closed). */
  async settle(): Promise<void> {
    await this.#ahead?.catch(() => undefined);
  }
}

/** A source over any readable stream (bytes, not strings). */
export class StreamSource implements ByteSource {
  readonly #it: AsyncIterator<unknown>;
  readonly #label: string;
  readonly size = undefined;
  #chunks: Uint8Array[] = [];
  #buffered = 0;
  #offset = 0;
  #ended = false;
  constructor(stream: NodeJS.ReadableStream, label: string) {
    this.#it = stream[Symbol.asyncIterator]();
    this.#label = label;
  }
  get offset(): number {
    return this.#offset;
  }
  async #pull(): Promise<boolean> {
    if (this.#ended) return false;
    let r: IteratorResult<unknown>;
    try {
      r = await this.#it.next();
    } catch (e) {
      throw ioError(e, Status.VERR_READ_ERROR, `Cannot read the saved state ${this.#label}`);
    }
    if (r.done === true) {
      this.#ended = true;
      return false;
    }
    const v = r.value;
    if (!(v instanceof Uint8Array)) {
      throw new VBoxError(
        Status.VERR_INVALID_PARAMETER,
        `Saved state ${this.#label} yields text, not bytes: set no encoding on it`,
      );
    }
    if (v.length > 0) {
      this.#chunks.push(v);
      this.#buffered += v.length;
    }
    return true;
  }
  async read(n: number, what: string): Promise<Uint8Array> {
    while (this.#buffered < n) {
      if (!(await this.#pull())) throw truncated(this.#label, this.#offset, n, what);
    }
    this.#offset += n;
    this.#buffered -= n;
    const first = this.#chunks[0];
    if (first !== undefined && first.length >= n) {
      if (first.length === n) this.#chunks.shift();
      else this.#chunks[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const c = this.#chunks[0]!;
      const take = Math.min(c.length, n - filled);
      out.set(c.subarray(0, take), filled);
      filled += take;
      if (take === c.length) this.#chunks.shift();
      else this.#chunks[0] = c.subarray(take);
    }
    return out;
  }
  async atEnd(): Promise<boolean> {
    while (this.#buffered === 0) {
      if (!(await this.#pull())) return true;
    }
    return false;
  }
  /** Stops iterating (destroys the stream if it is still open). */
  async close(): Promise<void> {
    try {
      await this.#it.return?.();
    } catch {
      // the stream's own error was reported already
    }
  }
}
