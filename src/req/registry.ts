/**
 * Request functions: a JavaScript function cannot cross a thread, so a request names its function
 * (API.md "ReqFunction"): either a name registered here, in the EMT (by a module the EMT imported,
 * e.g. through VM.create's `modules` option), or `{ module, export }`, which the EMT imports on
 * first use (a file URL, an absolute path, or a path relative to the process's working directory).
 * The function is called as `fn(vm: EmtVM, ...args)`.
 */
import { isAbsolute, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { VBoxError, Status } from "../vm/err.ts";
import type { ReqFunction } from "./shared.ts";

/** A request function as the EMT calls it (the first argument is the EmtVM). */
export type RequestFn = (vm: never, ...args: never[]) => unknown;

const named = new Map<string, RequestFn>();
const imported = new Map<string, RequestFn>();

/** Registers a request function under a name (in the thread that will call it: the EMT). */
export function registerRequestFunction(name: string, fn: RequestFn): void {
  const cur = named.get(name);
  if (cur && cur !== fn) throw new VBoxError(Status.VERR_ALREADY_EXISTS, `Request function already registered: ${name}`);
  named.set(name, fn);
}

/** Removes a registered request function; false when it was not there. */
export function deregisterRequestFunction(name: string): boolean {
  return named.delete(name);
}

/** A module specifier as a URL the EMT can import. */
export function moduleUrl(spec: string): string {
  if (/^[a-z][a-z0-9+.-]*:/i.test(spec) && !/^[a-z]:[\\/]/i.test(spec)) return spec;
  return pathToFileURL(isAbsolute(spec) ? spec : resolve(process.cwd(), spec)).href;
}

/** Checks the shape of a ReqFunction; returns an error message or null. */
export function checkReqFunction(fn: unknown): string | null {
  if (typeof fn === "string") return fn.length > 0 ? null : "Request function name is empty";
  if (typeof fn === "object" && fn !== null) {
    const o = fn as Record<string, unknown>;
    if (typeof o["module"] === "string" && typeof o["export"] === "string") return null;
  }
  return "Request function must be a registered name or { module, export }";
}

/**
 * The function for a ReqFunction if it is known without importing anything, else null
 * (a named function that is not registered throws VERR_NOT_FOUND).
 */
export function lookupSync(fn: ReqFunction): RequestFn | null {
  if (typeof fn === "string") {
    const f = named.get(fn);
    if (!f) throw new VBoxError(Status.VERR_NOT_FOUND, `No request function registered under the name: ${fn}`);
    return f;
  }
  return imported.get(`${fn.module}\0${fn.export}`) ?? null;
}

/** Imports `{ module, export }` and caches the function. */
export async function lookupAsync(fn: { module: string; export: string }): Promise<RequestFn> {
  const key = `${fn.module}\0${fn.export}`;
  const cached = imported.get(key);
  if (cached) return cached;
  let mod: Record<string, unknown>;
  try {
    mod = (await import(moduleUrl(fn.module))) as Record<string, unknown>;
  } catch (e) {
    throw new VBoxError(Status.VERR_NOT_FOUND, `Cannot import request module ${fn.module}: ${(e as Error).message}`);
  }
  const f = mod[fn.export];
  if (typeof f !== "function") {
    throw new VBoxError(Status.VERR_NOT_FOUND, `Request module ${fn.module} has no function export: ${fn.export}`);
  }
  imported.set(key, f as RequestFn);
  return f as RequestFn;
}
