/**
 * Test support for the device models: a fake machine (PDM context on a ManualClock with
 * recording machine services and char backends), a seeded port fuzzer, and the shared
 * saved-state conformance suite (crosvm-style): save→mutate→load→save is equal, save after a
 * mutation differs, a fresh machine restores the same state, bad versions and truncated units
 * are refused. Used by every `src/devices/<dev>/<Dev>.test.ts`; not part of the VMM.
 */
import assert from "node:assert/strict";
import { cfgmFromObject } from "../cfgm/CfgmNode.ts";
import { PhysMem } from "../mem/PhysMem.ts";
import { IoPortSpace } from "../pdm/IoPortSpace.ts";
import { IrqRouter } from "../pdm/IrqLine.ts";
import { Pdm, findDevice, type DeviceInstance } from "../pdm/Pdm.ts";
import type { CharBackend, MachineServices } from "../pdm/types.ts";
import { SsmUnitReader, SsmUnitWriter } from "../ssm/unit.ts";
import { Stam } from "../stam/Stam.ts";
import { TimerScheduler } from "../tm/Timer.ts";
import { ManualClock } from "../tm/VirtualClock.ts";
import { Status, VBoxError } from "../vm/err.ts";
import type { DevIns } from "../pdm/DevIns.ts";
import "./index.ts";

/** A char backend that records what the guest wrote and lets a test send bytes to the guest. */
export class FakeCharBackend implements CharBackend {
  /** Every byte the guest wrote, in order. */
  readonly written: number[] = [];
  receiver: ((bytes: Uint8Array) => void) | null = null;
  write(bytes: Uint8Array): void {
    for (const b of bytes) this.written.push(b);
  }
  setReceiver(fn: ((bytes: Uint8Array) => void) | null): void {
    this.receiver = fn;
  }
  /** Bytes from the host side to the guest (what a terminal would type). */
  send(bytes: number[] | string): void {
    const data = typeof bytes === "string" ? new TextEncoder().encode(bytes) : Uint8Array.from(bytes);
    this.receiver?.(data);
  }
  /** The written bytes as a latin-1 string. */
  text(): string {
    return String.fromCharCode(...this.written);
  }
}

/** A fake machine for device tests. */
export class FakeMachine {
  readonly clock: ManualClock;
  readonly io = new IoPortSpace();
  readonly irqs = new IrqRouter();
  readonly timers: TimerScheduler;
  readonly stam = new Stam();
  readonly mem: PhysMem;
  readonly pdm: Pdm;
  /** Sources of requestReset() calls. */
  readonly resets: string[] = [];
  /** requestPowerOff() calls. */
  readonly powerOffs: { source: string; status: number | undefined }[] = [];
  /** A20 gate state as setA20 left it. */
  a20 = true;
  /** Char backends by name; charBackend(name) returns null for absent names. */
  readonly backends = new Map<string, FakeCharBackend>();

  constructor(opts: { ramSize?: number; startNs?: number; backends?: string[] } = {}) {
    this.clock = new ManualClock(opts.startNs ?? 0);
    this.timers = new TimerScheduler(this.clock);
    this.mem = new PhysMem(opts.ramSize ?? 4096);
    for (const b of opts.backends ?? []) this.backends.set(b, new FakeCharBackend());
    const machine: MachineServices = {
      requestReset: (source) => {
        this.resets.push(source);
      },
      requestPowerOff: (source, status) => {
        this.powerOffs.push({ source, status });
      },
      setA20: (en) => {
        this.a20 = en;
      },
      getA20: () => this.a20,
      charBackend: (name) => this.backends.get(name) ?? null,
    };
    this.pdm = new Pdm({ mem: this.mem, io: this.io, irqs: this.irqs, timers: this.timers, stam: this.stam, machine });
  }

  /** Constructs a registered device with the given Config values. */
  add(name: string, config: Record<string, number | string> = {}, instance = 0): DeviceInstance {
    const node = cfgmFromObject({ Config: config });
    return this.pdm.construct(name, instance, node);
  }

  /** Moves virtual time forward and runs the timers that fell due (QEMU qtest clock_step). */
  step(ns: number): void {
    this.clock.step(ns);
    this.timers.runDue();
  }

  /** IN. */
  inb(port: number): number {
    return this.io.read(port, 1);
  }
  inw(port: number): number {
    return this.io.read(port, 2);
  }
  inl(port: number): number {
    return this.io.read(port, 4);
  }
  /** OUT. */
  outb(port: number, v: number): void {
    this.io.write(port, v, 1);
  }
  outw(port: number, v: number): void {
    this.io.write(port, v, 2);
  }
  outl(port: number, v: number): void {
    this.io.write(port, v, 4);
  }

  /** A STAM counter's value by full name ("/Devices/i8254/Irq0"); throws when absent. */
  stat(name: string): number {
    const s = this.stam.snapshot(name).find((e) => e.name === name);
    if (!s) throw new Error(`No STAM sample ${name}`);
    return s.value;
  }
}

/** Saves one device instance's unit. */
export function saveUnit(d: DeviceInstance): Uint8Array {
  const w = new SsmUnitWriter();
  d.dev.saveState(w);
  return w.finish();
}

/** Loads a unit into an instance through PDM (version range and unit-end checks included). */
export function loadUnit(m: FakeMachine, d: DeviceInstance, data: Uint8Array, version = d.reg.ssmVersion): void {
  m.pdm.load(d, new SsmUnitReader(data, d.reg.name), version);
}

/** A small deterministic PRNG (xorshift32) for fuzz loops. */
export function prng(seed: number): () => number {
  let s = seed >>> 0 || 0x9e3779b9;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s;
  };
}

/**
 * Random reads and writes of random widths over the given ports, with virtual time moving in
 * between (QEMU fuzz_registers). Nothing a guest does may throw.
 */
export function fuzzPorts(m: FakeMachine, ports: readonly number[], iterations: number, seed: number): void {
  const rnd = prng(seed);
  const sizes = [1, 1, 1, 2, 4] as const;
  for (let i = 0; i < iterations; i++) {
    const port = ports[rnd() % ports.length]!;
    const size = sizes[rnd() % sizes.length]!;
    const r = rnd();
    if (r % 3 === 0) m.io.read(port, size);
    else m.io.write(port, rnd(), size);
    if (r % 7 === 0) m.step(rnd() % 5_000_000);
    if (r % 101 === 0) m.irqs.controller?.acknowledge();
  }
}

/** What the conformance suite needs to know about one device. */
export interface ConformanceSpec {
  /** Registered device name. */
  name: string;
  /** Config values of the instance under test. */
  config?: Record<string, number | string>;
  /** Char backends the machine offers. */
  backends?: string[];
  /** Devices to construct first (an interrupt controller), by name. */
  before?: string[];
  /** Brings the device into a non-trivial state before the first save. */
  setup?: (m: FakeMachine, d: DeviceInstance) => void;
  /**
   * Changes guest-visible state so that a save differs. Omit only for a device without state
   * (its unit is the config part), where no guest action can change the saved bytes.
   */
  mutate?: (m: FakeMachine, d: DeviceInstance) => void;
  /** A config under which the saved unit must be refused with VERR_SSM_LOAD_CONFIG_MISMATCH. */
  mismatchConfig?: Record<string, number | string>;
}

function machineFor(
  spec: ConformanceSpec,
  config: Record<string, number | string> | undefined,
): { m: FakeMachine; d: DeviceInstance } {
  const m = new FakeMachine({ backends: spec.backends ?? [] });
  for (const b of spec.before ?? []) m.add(b);
  const d = m.add(spec.name, config ?? {});
  return { m, d };
}

function expectRc(fn: () => void, rc: number, what: string): void {
  assert.throws(fn, (e: unknown) => e instanceof VBoxError && e.rc === rc, what);
}

/** Runs the saved-state conformance suite for one device; fails with an assertion on any violation. */
export function checkConformance(spec: ConformanceSpec): void {
  const reg = findDevice(spec.name);
  assert.ok(reg, `device ${spec.name} is registered`);
  const { m, d } = machineFor(spec, spec.config);
  spec.setup?.(m, d);
  const s1 = saveUnit(d);
  assert.deepEqual(saveUnit(d), s1, "two saves without a change are equal");

  if (spec.mutate) {
    spec.mutate(m, d);
    const s2 = saveUnit(d);
    assert.notDeepEqual(s2, s1, "save after mutate differs");
  }

  loadUnit(m, d, s1);
  assert.deepEqual(saveUnit(d), s1, "save → mutate → load → save is equal");

  // A fresh machine at the same virtual time restores the same state.
  const fresh = machineFor(spec, spec.config);
  fresh.m.clock.set(m.clock.now());
  loadUnit(fresh.m, fresh.d, s1);
  assert.deepEqual(saveUnit(fresh.d), s1, "a fresh instance restores the same state");

  // Versions outside the range and truncated or overlong units are refused.
  expectRc(
    () => loadUnit(m, d, s1, reg.ssmVersion + 1),
    Status.VERR_SSM_UNSUPPORTED_DATA_UNIT_VERSION,
    "newer version refused",
  );
  if (reg.ssmMinVersion > 0) {
    expectRc(
      () => loadUnit(m, d, s1, reg.ssmMinVersion - 1),
      Status.VERR_SSM_UNSUPPORTED_DATA_UNIT_VERSION,
      "older version refused",
    );
  }
  assert.throws(() => loadUnit(m, d, s1.subarray(0, s1.length - 1)), VBoxError, "truncated unit refused");
  const long = new Uint8Array(s1.length + 1);
  long.set(s1);
  expectRc(() => loadUnit(m, d, long), Status.VERR_SSM_LOADED_TOO_LITTLE, "overlong unit refused");

  if (spec.mismatchConfig) {
    const other = machineFor(spec, spec.mismatchConfig);
    expectRc(() => loadUnit(other.m, other.d, s1), Status.VERR_SSM_LOAD_CONFIG_MISMATCH, "config mismatch refused");
  }

  // Reset, then the saved state still loads and comes back equal.
  d.dev.reset();
  loadUnit(m, d, s1);
  assert.deepEqual(saveUnit(d), s1, "load after reset restores the state");
}

/** The DevIns type, re-exported for tests that reach into an instance. */
export type { DevIns };

/** A saved unit kept as a test fixture: the bytes (hex) and the unit version that wrote them. */
export interface SsmFixture {
  version: number;
  hex: string;
}

/**
 * Old-fixture check: a unit saved by an earlier build (kept as hex in the device's test) still
 * loads into a fresh instance. For a fixture of the current version, saving again gives the same
 * bytes, so a layout change without a version bump fails here.
 */
export function checkFixture(
  spec: Pick<ConformanceSpec, "name" | "config" | "backends" | "before">,
  fx: SsmFixture,
): void {
  const reg = findDevice(spec.name);
  assert.ok(reg, `device ${spec.name} is registered`);
  const { m, d } = machineFor({ ...spec, mutate: () => undefined }, spec.config);
  const data = Uint8Array.from(Buffer.from(fx.hex, "hex"));
  loadUnit(m, d, data, fx.version);
  if (fx.version === reg.ssmVersion)
    assert.deepEqual(saveUnit(d), data, "the current-version fixture saves back unchanged");
}

/** The hex of a unit (for writing a fixture into a test). */
export function unitHex(d: DeviceInstance): string {
  return Buffer.from(saveUnit(d)).toString("hex");
}
