/**
 * Helpers shared by the saved-state writer and reader: the progress driver, message labels, the boxvm
 * version recorded in headers.
 */
import { readFileSync } from "node:fs";
import { VBoxError, statusName } from "../vm/err.ts";
import { PAGE_SIZE } from "./format.ts";
import type { SsmProgress } from "./types.ts";

let cachedVersion: string | undefined;
/** The boxvm version from package.json ("unknown" if it cannot be read). */
export function boxvmVersion(): string {
  if (cachedVersion === undefined) {
    try {
      const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as {
        version?: unknown;
      };
      cachedVersion = typeof pkg.version === "string" ? pkg.version : "unknown";
    } catch {
      cachedVersion = "unknown";
    }
  }
  return cachedVersion;
}

export function hex32(v: number): string {
  return `0x${(v >>> 0).toString(16).padStart(8, "0")}`;
}

export function unitLabel(name: string, instance: number): string {
  return `Saved state unit '${name}' instance ${String(instance)}`;
}

export function chunkLabel(firstPage: number): string {
  return `Saved state RAM chunk at guest address 0x${(firstPage * PAGE_SIZE).toString(16)}`;
}

/** Drives the progress callback: 0 first, then each new percent, 100 last; a negative return cancels. */
export class Progress {
  readonly #cb: SsmProgress | undefined;
  readonly #what: string;
  #total = 1;
  #last = -1;
  constructor(cb: SsmProgress | undefined, what: string) {
    this.#cb = cb;
    this.#what = what;
  }
  set total(t: number) {
    this.#total = Math.max(1, t);
  }
  #call(p: number): void {
    if (this.#cb === undefined || p <= this.#last) return;
    this.#last = p;
    const rc = this.#cb(p);
    if (typeof rc === "number" && rc < 0) {
      throw new VBoxError(rc, `${this.#what} cancelled by the progress callback: ${statusName(rc)}`);
    }
  }
  start(): void {
    this.#call(0);
  }
  update(done: number): void {
    this.#call(Math.min(99, Math.floor((done * 100) / this.#total)));
  }
  finish(): void {
    this.#call(100);
  }
}

export const utf8 = new TextEncoder();
export const utf8Strict = new TextDecoder("utf-8", { fatal: true });
