/**
 * A strict reader of Prometheus's text exposition format (0.0.4), for tests: it throws on the
 * first line a Prometheus server would reject or that breaks the format's rules (names, label
 * syntax and escapes, values, one TYPE per family before its samples, a family's samples kept
 * together, no duplicate series).
 */

/** One sample line. */
export interface PromSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** One metric family. */
export interface PromFamily {
  name: string;
  type: string;
  help: string | null;
  samples: PromSample[];
}

const METRIC = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set(["counter", "gauge", "histogram", "summary", "untyped"]);

function parseValue(s: string, line: number): number {
  if (s === "NaN") return NaN;
  if (s === "+Inf" || s === "Inf") return Infinity;
  if (s === "-Inf") return -Infinity;
  if (!/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(s))
    throw new Error(`line ${String(line)}: bad value ${JSON.stringify(s)}`);
  return Number(s);
}

/** The family a sample name belongs to, given the families declared so far. */
function familyOf(name: string, families: Map<string, PromFamily>): PromFamily | undefined {
  const own = families.get(name);
  if (own) return own;
  for (const suffix of ["_sum", "_count", "_bucket"]) {
    if (name.endsWith(suffix)) {
      const f = families.get(name.slice(0, -suffix.length));
      if (f && (f.type === "summary" || f.type === "histogram")) return f;
    }
  }
  return undefined;
}

/** Parses the text; throws an Error naming the line on anything wrong. */
export function parsePrometheusText(text: string): Map<string, PromFamily> {
  if (!text.endsWith("\n")) throw new Error("the text must end with a line feed");
  const families = new Map<string, PromFamily>();
  const closed = new Set<string>();
  const seen = new Set<string>();
  let currentFamily: string | null = null;
  const lines = text.split("\n");
  lines.pop();
  lines.forEach((raw, i) => {
    const n = i + 1;
    if (raw.trim() === "") return;
    if (raw.startsWith("#")) {
      const m = /^#\s+(HELP|TYPE)\s+(\S+)(?:\s(.*))?$/.exec(raw);
      if (!m) return; // a plain comment
      const [, kind, name = "", rest = ""] = m;
      if (!METRIC.test(name)) throw new Error(`line ${String(n)}: bad metric name ${name}`);
      let f = families.get(name);
      if (!f) {
        if (closed.has(name)) throw new Error(`line ${String(n)}: family ${name} appears twice`);
        f = { name, type: "untyped", help: null, samples: [] };
        families.set(name, f);
      }
      if (kind === "TYPE") {
        if (!TYPES.has(rest.trim())) throw new Error(`line ${String(n)}: bad type ${rest}`);
        if (f.samples.length > 0) throw new Error(`line ${String(n)}: TYPE of ${name} after its samples`);
        if (f.type !== "untyped") throw new Error(`line ${String(n)}: second TYPE for ${name}`);
        f.type = rest.trim();
      } else {
        if (f.help !== null) throw new Error(`line ${String(n)}: second HELP for ${name}`);
        if (/\\[^\\n]/.test(rest.replace(/\\\\/g, ""))) throw new Error(`line ${String(n)}: bad escape in HELP`);
        f.help = rest;
      }
      if (currentFamily !== null && currentFamily !== name) closed.add(currentFamily);
      currentFamily = name;
      return;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})?\s+(\S+)(?:\s+(-?\d+))?$/.exec(raw);
    if (!m) throw new Error(`line ${String(n)}: not a sample: ${raw}`);
    const [, name = "", labelText, valueText = ""] = m;
    const labels: Record<string, string> = {};
    if (labelText !== undefined) {
      let s = labelText.slice(1, -1);
      while (s.length > 0) {
        const lm = /^([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\[\\"n])*)"(,|$)/.exec(s);
        if (!lm) throw new Error(`line ${String(n)}: bad labels ${labelText}`);
        const [all, ln = "", lv = ""] = lm;
        if (!LABEL.test(ln) || ln.startsWith("__")) throw new Error(`line ${String(n)}: bad label name ${ln}`);
        if (ln in labels) throw new Error(`line ${String(n)}: label ${ln} twice`);
        labels[ln] = lv.replace(/\\(.)/g, (_x, c: string) => (c === "n" ? "\n" : c));
        s = s.slice(all.length);
      }
    }
    const value = parseValue(valueText, n);
    let f = familyOf(name, families);
    if (!f) {
      if (closed.has(name)) throw new Error(`line ${String(n)}: family ${name} appears twice`);
      f = { name, type: "untyped", help: null, samples: [] };
      families.set(name, f);
    }
    if (closed.has(f.name)) throw new Error(`line ${String(n)}: samples of ${f.name} are not together`);
    if (currentFamily !== null && currentFamily !== f.name) closed.add(currentFamily);
    currentFamily = f.name;
    if (f.type === "counter" && value < 0) throw new Error(`line ${String(n)}: negative counter ${name}`);
    const key = `${name}{${Object.entries(labels)
      .sort()
      .map(([k, v]) => `${k}=${v}`)
      .join(",")}}`;
    if (seen.has(key)) throw new Error(`line ${String(n)}: duplicate series ${key}`);
    seen.add(key);
    f.samples.push({ name, labels, value });
  });
  return families;
}
