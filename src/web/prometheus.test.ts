import { test } from "node:test";
import assert from "node:assert/strict";
import type { StamSnapshotEntry } from "../stam/Stam.ts";
import { formatPrometheus, metricName } from "./prometheus.ts";
import { parsePrometheusText } from "./testing/promtext.ts";

const counter = (name: string, value: number, desc = "d"): StamSnapshotEntry => ({
  name,
  kind: "counter",
  unit: "count",
  desc,
  value,
});

test("metric names from STAM paths", () => {
  assert.equal(metricName("/Devices/i8254/Irq0"), "boxvm_devices_i8254_irq0");
  assert.equal(metricName("/VM/EMT/CpuSlices"), "boxvm_vm_emt_cpu_slices");
  assert.equal(metricName("/Devices/isa-debug-exit/BadReads"), "boxvm_devices_isa_debug_exit_bad_reads");
  assert.equal(metricName("/"), "boxvm_unnamed");
});

test("the text parses as Prometheus text, with every kind, two VMs, escapes and name clashes", () => {
  const a: StamSnapshotEntry[] = [
    counter("/Devices/i8254/Irq0", 12, 'Timer "IRQs"\nline two \\ end'),
    counter("/Devices/a-b/X", 1),
    counter("/Devices/a_b/X", 2),
    { name: "/CPU/Instructions", kind: "callback", unit: "instructions", desc: "Retired", value: 1e21 },
    {
      name: "/TM/Run",
      kind: "profile",
      unit: "ns/call",
      desc: "Run",
      value: 5,
      periods: 2,
      totalNs: 10,
      minNs: 4,
      maxNs: 6,
    },
  ];
  const b: StamSnapshotEntry[] = [counter("/Devices/i8254/Irq0", 3)];
  const text = formatPrometheus([
    { id: 0, name: 'vm "one"', state: "RUNNING", stats: a },
    { id: 1, name: "two\\", state: "SUSPENDED", stats: b },
  ]);
  const fams = parsePrometheusText(text);
  const irq = fams.get("boxvm_devices_i8254_irq0_total");
  assert.equal(irq?.type, "counter");
  assert.deepEqual(
    irq?.samples.map((s) => [s.labels["vm"], s.value]),
    [
      ['vm "one"', 12],
      ["two\\", 3],
    ],
  );
  assert.match(irq?.help ?? "", /STAM \/Devices\/i8254\/Irq0/);
  // "/Devices/a-b/X" and "/Devices/a_b/X" spell the same name: the later path gets a suffix.
  assert.equal(fams.get("boxvm_devices_a_b_x_total")?.samples[0]?.value, 1);
  assert.equal(fams.get("boxvm_devices_a_b_x_2_total")?.samples[0]?.value, 2);
  assert.equal(fams.get("boxvm_cpu_instructions")?.type, "gauge");
  assert.equal(fams.get("boxvm_cpu_instructions")?.samples[0]?.value, 1e21);
  const run = fams.get("boxvm_tm_run_ns");
  assert.equal(run?.type, "summary");
  assert.deepEqual(
    run?.samples.map((s) => [s.name, s.value]),
    [
      ["boxvm_tm_run_ns_sum", 10],
      ["boxvm_tm_run_ns_count", 2],
    ],
  );
  assert.equal(fams.get("boxvm_tm_run_ns_max")?.samples[0]?.value, 6);
  const state = fams.get("boxvm_vm_state");
  assert.deepEqual(
    state?.samples.map((s) => s.labels["state"]),
    ["RUNNING", "SUSPENDED"],
  );
});

test("the reader used above rejects broken text (so that passing means something)", () => {
  for (const bad of [
    "m 1",
    "1m 1\n",
    'm{a="x} 1\n',
    'm{a="x\\q"} 1\n',
    "m one\n",
    "# TYPE m counter\n# TYPE m gauge\nm 1\n",
    "m 1\n# TYPE m counter\n",
    "a 1\nb 1\na 2\n",
    'm{a="1"} 1\nm{a="1"} 2\n',
    "# TYPE m counter\nm -1\n",
    'm{__x="1"} 1\n',
  ]) {
    assert.throws(() => parsePrometheusText(bad), Error, JSON.stringify(bad));
  }
  assert.equal(
    parsePrometheusText('# a comment\nm{a="1",b="x\\"y"} 1.5e3 1700000000\n').get("m")?.samples[0]?.value,
    1500,
  );
});
