/**
 * STAM in Prometheus's text exposition format (version 0.0.4), for `GET /metrics`.
 *
 * Each STAM sample becomes one metric family, named from its path: "/Devices/i8254/Irq0" →
 * `boxvm_devices_i8254_irq0`. The VM is a label, so one family holds that sample of every VM:
 *   counter  → TYPE counter, `<name>_total`
 *   callback → TYPE gauge,   `<name>`
 *   profile  → TYPE summary, `<name>_ns_sum` (total ns) and `<name>_ns_count` (periods), plus the
 *              gauges `<name>_ns_min` and `<name>_ns_max`
 * and `boxvm_vm_state{state="RUNNING"} 1` tells each VM's state. HELP carries the description, the
 * STAM path and its unit. Two paths that spell the same name get a numbered suffix (by path order).
 */
import type { StamSnapshotEntry } from "../stam/Stam.ts";

/** The content type of the format. */
export const PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/** One VM's part of a scrape. */
export interface VmMetrics {
  id: number;
  name: string;
  state: string;
  stats: readonly StamSnapshotEntry[];
}

/** The metric name for a STAM path (without suffixes). */
export function metricName(path: string): string {
  const words = path
    .replace(/([a-z0-9])([A-Z])/g, "$1_$2")
    .toLowerCase()
    .replace(/[^a-z0-9_]+/g, "_")
    .replace(/_+/g, "_")
    .replace(/^_|_$/g, "");
  return `boxvm_${words === "" ? "unnamed" : words}`;
}

/** A label value with \, " and newline escaped. */
function labelValue(s: string): string {
  return s.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

/** HELP text with \ and newline escaped. */
function helpText(s: string): string {
  return s.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
}

/** A sample value as the format writes floats. */
function num(v: number): string {
  if (Number.isNaN(v)) return "NaN";
  if (v === Infinity) return "+Inf";
  if (v === -Infinity) return "-Inf";
  return String(v);
}

interface Family {
  base: string;
  path: string;
  kind: StamSnapshotEntry["kind"];
  unit: string;
  desc: string;
}

/** Formats the scrape. */
export function formatPrometheus(vms: readonly VmMetrics[]): string {
  const out: string[] = [];
  out.push("# HELP boxvm_vm_state The VM's state (VMR3GetStateName), one sample per VM with value 1");
  out.push("# TYPE boxvm_vm_state gauge");
  for (const vm of vms) {
    out.push(`boxvm_vm_state{vm="${labelValue(vm.name)}",id="${String(vm.id)}",state="${labelValue(vm.state)}"} 1`);
  }

  // The families: every path any VM has, in path order; names made unique.
  const byPath = new Map<string, Family>();
  for (const vm of vms) {
    for (const s of vm.stats) {
      if (!byPath.has(s.name)) byPath.set(s.name, { base: "", path: s.name, kind: s.kind, unit: s.unit, desc: s.desc });
    }
  }
  const families = [...byPath.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  const taken = new Set<string>(["boxvm_vm_state"]);
  for (const f of families) {
    const base = metricName(f.path);
    let name = base;
    for (let n = 2; familyNames(name, f.kind).some((x) => taken.has(x)); n++) name = `${base}_${String(n)}`;
    for (const x of familyNames(name, f.kind)) taken.add(x);
    f.base = name;
  }

  for (const f of families) {
    const help = helpText(`${f.desc === "" ? "STAM sample" : f.desc} (STAM ${f.path}, ${f.unit})`);
    const rows = vms.flatMap((vm) => {
      const s = vm.stats.find((e) => e.name === f.path);
      return s && s.kind === f.kind ? [{ labels: `vm="${labelValue(vm.name)}",id="${String(vm.id)}"`, s }] : [];
    });
    if (f.kind === "counter") {
      out.push(`# HELP ${f.base}_total ${help}`, `# TYPE ${f.base}_total counter`);
      for (const r of rows) out.push(`${f.base}_total{${r.labels}} ${num(r.s.value)}`);
    } else if (f.kind === "callback") {
      out.push(`# HELP ${f.base} ${help}`, `# TYPE ${f.base} gauge`);
      for (const r of rows) out.push(`${f.base}{${r.labels}} ${num(r.s.value)}`);
    } else {
      out.push(`# HELP ${f.base}_ns ${help}`, `# TYPE ${f.base}_ns summary`);
      for (const r of rows) {
        out.push(
          `${f.base}_ns_sum{${r.labels}} ${num(r.s.totalNs ?? 0)}`,
          `${f.base}_ns_count{${r.labels}} ${num(r.s.periods ?? 0)}`,
        );
      }
      out.push(`# HELP ${f.base}_ns_min Shortest period of ${f.path} in ns`, `# TYPE ${f.base}_ns_min gauge`);
      for (const r of rows) out.push(`${f.base}_ns_min{${r.labels}} ${num(r.s.minNs ?? 0)}`);
      out.push(`# HELP ${f.base}_ns_max Longest period of ${f.path} in ns`, `# TYPE ${f.base}_ns_max gauge`);
      for (const r of rows) out.push(`${f.base}_ns_max{${r.labels}} ${num(r.s.maxNs ?? 0)}`);
    }
  }
  return `${out.join("\n")}\n`;
}

/** Every metric name a family of that kind writes (for the uniqueness check). */
function familyNames(base: string, kind: StamSnapshotEntry["kind"]): string[] {
  if (kind === "counter") return [`${base}_total`];
  if (kind === "callback") return [base];
  return [`${base}_ns`, `${base}_ns_sum`, `${base}_ns_count`, `${base}_ns_min`, `${base}_ns_max`];
}
