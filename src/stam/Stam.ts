/**
 * STAM: statistics. Components register counters and profiles under a path
 * ("/Devices/i8254/Irq") with a unit and a description; snapshot() reads them by pattern.
 */

/** The unit of a sample, as VirtualBox's STAMUNIT. */
export type StamUnit =
  "count" | "bytes" | "calls" | "occurrences" | "pages" | "ns" | "ns/call" | "ticks" | "instructions" | "%";

/** A counter: increment with `c.value++` or `c.add(n)`. */
export class StamCounter {
  readonly kind = "counter" as const;
  value = 0;
  readonly name: string;
  readonly unit: StamUnit;
  readonly desc: string;
  constructor(name: string, unit: StamUnit, desc: string) {
    this.name = name;
    this.unit = unit;
    this.desc = desc;
  }
  /** Adds n. */
  add(n: number): void {
    this.value += n;
  }
  /** Back to zero. */
  reset(): void {
    this.value = 0;
  }
}

/** A profile: number of periods and total/min/max duration in ns. */
export class StamProfile {
  readonly kind = "profile" as const;
  periods = 0;
  totalNs = 0;
  minNs = Infinity;
  maxNs = 0;
  readonly name: string;
  readonly unit: StamUnit;
  readonly desc: string;
  constructor(name: string, unit: StamUnit, desc: string) {
    this.name = name;
    this.unit = unit;
    this.desc = desc;
  }
  /** Records one period of `ns` nanoseconds. */
  record(ns: number): void {
    this.periods++;
    this.totalNs += ns;
    if (ns < this.minNs) this.minNs = ns;
    if (ns > this.maxNs) this.maxNs = ns;
  }
  /** Back to zero. */
  reset(): void {
    this.periods = 0;
    this.totalNs = 0;
    this.minNs = Infinity;
    this.maxNs = 0;
  }
}

/** A value computed when read (a gauge). */
export class StamCallback {
  readonly kind = "callback" as const;
  readonly name: string;
  readonly unit: StamUnit;
  readonly desc: string;
  readonly read: () => number;
  constructor(name: string, unit: StamUnit, desc: string, read: () => number) {
    this.name = name;
    this.unit = unit;
    this.desc = desc;
    this.read = read;
  }
  reset(): void {
    /* nothing to reset */
  }
}

/** Any sample. */
export type StamSample = StamCounter | StamProfile | StamCallback;

/** One sample as plain data, as snapshot() returns it. */
export interface StamSnapshotEntry {
  name: string;
  kind: "counter" | "profile" | "callback";
  unit: StamUnit;
  desc: string;
  value: number;
  periods?: number;
  totalNs?: number;
  minNs?: number;
  maxNs?: number;
}

/** The registry of one VM's statistics. */
export class Stam {
  readonly #samples = new Map<string, StamSample>();

  /** Registers a counter; a second registration of the same name returns the first. */
  counter(name: string, desc: string, unit: StamUnit = "count"): StamCounter {
    return this.#register(name, () => new StamCounter(name, unit, desc)) as StamCounter;
  }

  /** Registers a profile. */
  profile(name: string, desc: string, unit: StamUnit = "ns/call"): StamProfile {
    return this.#register(name, () => new StamProfile(name, unit, desc)) as StamProfile;
  }

  /** Registers a computed value. */
  callback(name: string, desc: string, unit: StamUnit, read: () => number): StamCallback {
    return this.#register(name, () => new StamCallback(name, unit, desc, read)) as StamCallback;
  }

  /** Removes every sample whose name starts with the prefix. */
  deregisterPrefix(prefix: string): void {
    for (const k of [...this.#samples.keys()]) if (k.startsWith(prefix)) this.#samples.delete(k);
  }

  /** Resets the samples matching the pattern (see matches()). */
  reset(pattern = "*"): void {
    for (const s of this.#samples.values()) if (matches(pattern, s.name)) s.reset();
  }

  /** The samples matching a pattern, sorted by name. */
  snapshot(pattern = "*"): StamSnapshotEntry[] {
    const out: StamSnapshotEntry[] = [];
    for (const s of this.#samples.values()) {
      if (!matches(pattern, s.name)) continue;
      if (s.kind === "profile") {
        out.push({
          name: s.name,
          kind: s.kind,
          unit: s.unit,
          desc: s.desc,
          value: s.periods ? s.totalNs / s.periods : 0,
          periods: s.periods,
          totalNs: s.totalNs,
          minNs: s.periods ? s.minNs : 0,
          maxNs: s.maxNs,
        });
      } else {
        out.push({
          name: s.name,
          kind: s.kind,
          unit: s.unit,
          desc: s.desc,
          value: s.kind === "counter" ? s.value : s.read(),
        });
      }
    }
    return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  #register(name: string, make: () => StamSample): StamSample {
    if (!name.startsWith("/")) throw new Error(`STAM sample name must start with '/': ${name}`);
    let s = this.#samples.get(name);
    if (!s) {
      s = make();
      this.#samples.set(name, s);
    }
    return s;
  }
}

/**
 * STAM-style pattern match: '*' matches any run of characters, '?' one character, and
 * several patterns may be given separated by '|'. A pattern with no wildcard matches
 * the name exactly or as a path prefix ("/Devices" matches "/Devices/i8254/Irq").
 */
export function matches(pattern: string, name: string): boolean {
  for (const p of pattern.split("|")) {
    if (!/[*?]/.test(p)) {
      if (name === p || name.startsWith(p.endsWith("/") ? p : `${p}/`)) return true;
      continue;
    }
    const re = new RegExp(
      `^${p
        .replace(/[.+^${}()[\]\\]/g, "\\$&")
        .replace(/\*/g, ".*")
        .replace(/\?/g, ".")}$`,
    );
    if (re.test(name)) return true;
  }
  return false;
}
