/**
 * CFGM: the configuration tree (VirtualBox's CFGM). Nodes hold child nodes and values; a value is an
 * integer (bigint-free: a JS number up to 2^53), a string or bytes. Paths use "/" ("Devices/i8254/0/Config").
 * Each component validates the keys of its node with validateKeys() and names the unknown one.
 */
import { VBoxError, Status } from "../vm/err.ts";

/** A CFGM value. */
export type CfgmValue = number | string | Uint8Array;

/** A tree as plain data (CfgmNode.toPlain), for structured clone across threads. */
export interface CfgmPlain {
  values: [string, CfgmValue][];
  children: [string, CfgmPlain][];
}

/** One node of the configuration tree. */
export class CfgmNode {
  readonly name: string;
  readonly parent: CfgmNode | null;
  readonly #children = new Map<string, CfgmNode>();
  readonly #values = new Map<string, CfgmValue>();

  constructor(name = "", parent: CfgmNode | null = null) {
    this.name = name;
    this.parent = parent;
  }

  /** The node's absolute path ("/" for the root, "/Devices/i8254/0"). */
  get path(): string {
    if (!this.parent) return "/";
    const p = this.parent.path;
    return p === "/" ? `/${this.name}` : `${p}/${this.name}`;
  }

  /** Child nodes in insertion order. */
  children(): CfgmNode[] {
    return [...this.#children.values()];
  }

  /** Value names in insertion order. */
  valueNames(): string[] {
    return [...this.#values.keys()];
  }

  /** The node at a relative path, or null. */
  getChild(path: string): CfgmNode | null {
    let n: CfgmNode | undefined = this;
    for (const part of splitPath(path)) {
      n = n.#children.get(part);
      if (!n) return null;
    }
    return n;
  }

  /** Creates (or returns the existing) node at a relative path, making parents as needed. */
  ensureChild(path: string): CfgmNode {
    let n: CfgmNode = this;
    for (const part of splitPath(path)) {
      let c = n.#children.get(part);
      if (!c) {
        c = new CfgmNode(part, n);
        n.#children.set(part, c);
      }
      n = c;
    }
    return n;
  }

  /** Creates a child node; VERR_CFGM_NODE_EXISTS when it exists. */
  insertNode(name: string): CfgmNode {
    if (this.#children.has(name)) {
      throw new VBoxError(Status.VERR_CFGM_NODE_EXISTS, `Node exists: ${this.path}/${name}`);
    }
    return this.ensureChild(name);
  }

  /** Sets an integer value (a safe integer). */
  insertInteger(name: string, value: number): void {
    if (!Number.isSafeInteger(value)) {
      throw new VBoxError(Status.VERR_CFGM_INTEGER_TOO_BIG, `Not a safe integer: ${this.#at(name)}=${String(value)}`);
    }
    this.#values.set(name, value);
  }

  /** Sets a string value. */
  insertString(name: string, value: string): void {
    this.#values.set(name, value);
  }

  /** Sets a bytes value (copied). */
  insertBytes(name: string, value: Uint8Array): void {
    this.#values.set(name, new Uint8Array(value));
  }

  /** Removes a value; false when it was not there. */
  removeValue(name: string): boolean {
    return this.#values.delete(name);
  }

  /** The raw value at a relative path ("Config/Irq"), or undefined. */
  queryValue(path: string): CfgmValue | undefined {
    const parts = splitPath(path);
    const leaf = parts.pop();
    if (leaf === undefined) return undefined;
    const node = parts.length ? this.getChild(parts.join("/")) : this;
    return node ? node.#values.get(leaf) : undefined;
  }

  /** An integer value; VERR_CFGM_VALUE_NOT_FOUND or VERR_CFGM_NOT_INTEGER otherwise. */
  queryInteger(path: string): number {
    const v = this.queryValue(path);
    if (v === undefined) throw new VBoxError(Status.VERR_CFGM_VALUE_NOT_FOUND, `Value not found: ${this.#at(path)}`);
    if (typeof v !== "number") throw new VBoxError(Status.VERR_CFGM_NOT_INTEGER, `Not an integer: ${this.#at(path)}`);
    return v;
  }

  /** An integer value or the default when absent; range-checked to [min, max] when given. */
  queryIntegerDef(path: string, def: number, min = -Number.MAX_SAFE_INTEGER, max = Number.MAX_SAFE_INTEGER): number {
    const v = this.queryValue(path);
    if (v === undefined) return def;
    if (typeof v !== "number") throw new VBoxError(Status.VERR_CFGM_NOT_INTEGER, `Not an integer: ${this.#at(path)}`);
    if (v < min || v > max) {
      throw new VBoxError(
        Status.VERR_CFGM_INTEGER_TOO_BIG,
        `Out of range: ${this.#at(path)}=${String(v)} (allowed ${String(min)}..${String(max)})`,
      );
    }
    return v;
  }

  /** An unsigned 8-bit value or the default. */
  queryU8Def(path: string, def: number): number {
    return this.queryIntegerDef(path, def, 0, 0xff);
  }

  /** An unsigned 16-bit value or the default. */
  queryU16Def(path: string, def: number): number {
    return this.queryIntegerDef(path, def, 0, 0xffff);
  }

  /** An unsigned 32-bit value or the default. */
  queryU32Def(path: string, def: number): number {
    return this.queryIntegerDef(path, def, 0, 0xffffffff);
  }

  /** A boolean (integer 0/1) or the default. */
  queryBoolDef(path: string, def: boolean): boolean {
    return this.queryIntegerDef(path, def ? 1 : 0, 0, 1) === 1;
  }

  /** A string value; VERR_CFGM_VALUE_NOT_FOUND or VERR_CFGM_NOT_STRING otherwise. */
  queryString(path: string): string {
    const v = this.queryValue(path);
    if (v === undefined) throw new VBoxError(Status.VERR_CFGM_VALUE_NOT_FOUND, `Value not found: ${this.#at(path)}`);
    if (typeof v !== "string") throw new VBoxError(Status.VERR_CFGM_NOT_STRING, `Not a string: ${this.#at(path)}`);
    return v;
  }

  /** A string value or the default when absent. */
  queryStringDef(path: string, def: string): string {
    return this.queryValue(path) === undefined ? def : this.queryString(path);
  }

  /** A bytes value or the default when absent. */
  queryBytesDef(path: string, def: Uint8Array | null): Uint8Array | null {
    const v = this.queryValue(path);
    if (v === undefined) return def;
    if (!(v instanceof Uint8Array)) throw new VBoxError(Status.VERR_CFGM_NOT_BYTES, `Not bytes: ${this.#at(path)}`);
    return v;
  }

  /**
   * Checks that this node has only the given value names and child node names. Throws
   * VERR_CFGM_CONFIG_UNKNOWN_VALUE / _NODE naming the first unknown one with its path.
   */
  validateKeys(values: readonly string[], nodes: readonly string[] = []): void {
    for (const k of this.#values.keys()) {
      if (!values.includes(k)) {
        throw new VBoxError(
          Status.VERR_CFGM_CONFIG_UNKNOWN_VALUE,
          `Unknown configuration value: ${this.#at(k)} (known: ${values.join(", ") || "none"})`,
        );
      }
    }
    for (const k of this.#children.keys()) {
      if (!nodes.includes(k)) {
        throw new VBoxError(
          Status.VERR_CFGM_CONFIG_UNKNOWN_NODE,
          `Unknown configuration node: ${this.#at(k)} (known: ${nodes.join(", ") || "none"})`,
        );
      }
    }
  }

  /** A plain-object copy of the subtree (bytes as number arrays under {"bytes": [...]}). */
  toJSON(): Record<string, unknown> {
    const o: Record<string, unknown> = {};
    for (const [k, v] of this.#values) o[k] = v instanceof Uint8Array ? { bytes: [...v] } : v;
    for (const [k, c] of this.#children) o[k] = c.toJSON();
    return o;
  }

  /**
   * A lossless plain copy for crossing a thread (structured clone keeps Uint8Array): values and
   * children in insertion order. Rebuild with CfgmNode.fromPlain().
   */
  toPlain(): CfgmPlain {
    const values: [string, CfgmValue][] = [];
    for (const [k, v] of this.#values) values.push([k, v instanceof Uint8Array ? new Uint8Array(v) : v]);
    const children: [string, CfgmPlain][] = [];
    for (const [k, c] of this.#children) children.push([k, c.toPlain()]);
    return { values, children };
  }

  /** Rebuilds a tree from toPlain() output (under `root`, a new root by default). */
  static fromPlain(plain: CfgmPlain, root = new CfgmNode()): CfgmNode {
    for (const [k, v] of plain.values) {
      if (typeof v === "number") root.insertInteger(k, v);
      else if (typeof v === "string") root.insertString(k, v);
      else root.insertBytes(k, v);
    }
    for (const [k, c] of plain.children) CfgmNode.fromPlain(c, root.ensureChild(k));
    return root;
  }

  /** A deep copy of this subtree as a new root. */
  clone(): CfgmNode {
    return CfgmNode.fromPlain(this.toPlain());
  }

  /** Removes a child node (and its subtree); false when it was not there. */
  removeChild(name: string): boolean {
    return this.#children.delete(name);
  }

  #at(name: string): string {
    const p = this.path;
    return p === "/" ? `/${name}` : `${p}/${name}`;
  }
}

function splitPath(path: string): string[] {
  return path.split("/").filter((s) => s.length > 0);
}

/**
 * Builds a tree from a plain object (a JSON config file): objects become nodes, numbers integers,
 * strings strings, `{"bytes": [..]}` or `{"base64": ".."}` bytes, booleans 0/1. Errors name the path.
 */
export function cfgmFromObject(obj: unknown, root = new CfgmNode()): CfgmNode {
  if (typeof obj !== "object" || obj === null || Array.isArray(obj)) {
    throw new VBoxError(Status.VERR_INVALID_PARAMETER, `Configuration must be an object at ${root.path}`);
  }
  for (const [k, v] of Object.entries(obj as Record<string, unknown>)) {
    const at = root.path === "/" ? `/${k}` : `${root.path}/${k}`;
    if (k.length === 0 || k.includes("/")) {
      throw new VBoxError(Status.VERR_CFGM_INVALID_NODE_PATH, `Invalid name at ${at}: ${JSON.stringify(k)}`);
    }
    if (typeof v === "number") {
      if (!Number.isSafeInteger(v)) {
        throw new VBoxError(Status.VERR_CFGM_NOT_INTEGER, `Not an integer at ${at}: ${String(v)}`);
      }
      root.insertInteger(k, v);
    } else if (typeof v === "boolean") root.insertInteger(k, v ? 1 : 0);
    else if (typeof v === "string") root.insertString(k, v);
    else if (typeof v === "object" && v !== null && !Array.isArray(v)) {
      const rec = v as Record<string, unknown>;
      const keys = Object.keys(rec);
      if (keys.length === 1 && keys[0] === "bytes") {
        const arr = rec["bytes"];
        if (
          !Array.isArray(arr) ||
          !arr.every((b) => Number.isInteger(b) && (b as number) >= 0 && (b as number) <= 255)
        ) {
          throw new VBoxError(Status.VERR_CFGM_NOT_BYTES, `Bad bytes at ${at}: expected an array of 0..255`);
        }
        root.insertBytes(k, Uint8Array.from(arr as number[]));
      } else if (keys.length === 1 && keys[0] === "base64") {
        const s = rec["base64"];
        if (typeof s !== "string") throw new VBoxError(Status.VERR_CFGM_NOT_BYTES, `Bad base64 at ${at}`);
        root.insertBytes(k, Uint8Array.from(Buffer.from(s, "base64")));
      } else {
        cfgmFromObject(v, root.ensureChild(k));
      }
    } else {
      throw new VBoxError(
        Status.VERR_INVALID_PARAMETER,
        `Unsupported value at ${at}: ${Array.isArray(v) ? "array" : typeof v} (use a number, string, boolean, object or {"bytes": [...]})`,
      );
    }
  }
  return root;
}
