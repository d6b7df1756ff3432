/**
 * Intel 8254 programmable interval timer at 0x40–0x43 (1.193182 MHz input clock), plus the PC's
 * system control port B at 0x61 (channel 2 gate, speaker data, OUT2, refresh toggle).
 *
 * References: Intel 8254 datasheet (order 231164): control word, modes 0–5, counter latch,
 * read-back command and status byte, BCD counting, read/write sequences; OSDev wiki
 * "Programmable Interval Timer"; IBM PC/AT technical reference, port 61h bit layout.
 *
 * Time model: nothing is polled. Each channel keeps the virtual time at which it last started
 * counting (`base`) and the counting-element value at that time (`baseCount`); the current count
 * and OUT are computed from the virtual clock on every read. Channel 0 arms one virtual-clock
 * timer at its next OUT rising edge and raises IRQ 0 there. Because PIT, RTC and the CPU's TSC
 * all read the same virtual clock, Linux's TSC calibration against channel 2 sees consistent time.
 *
 * The guest driver's view (Linux drivers/clocksource/i8253.c and arch/x86/kernel/tsc.c):
 *   periodic tick: out 0x43,0x34 (ch0, lobyte/hibyte, mode 2); out 0x40,lo; out 0x40,hi
 *   one-shot:      out 0x43,0x38 (ch0, mode 4); then lo/hi count per event
 *   shutdown:      out 0x43,0x30; out 0x40,0; out 0x40,0
 *   calibration:   port 0x61 gate on, out 0x43,0xb0 (ch2, mode 0), count 0xffff, then read
 *                  the MSB of ch2 repeatedly (quick_pit_calibrate) or poll 0x61 bit 5 (OUT2).
 */
import type { CfgmNode } from "../../cfgm/CfgmNode.ts";
import type { DevIns } from "../../pdm/DevIns.ts";
import type { IrqLine } from "../../pdm/IrqLine.ts";
import { registerDevice } from "../../pdm/Pdm.ts";
import type { Device, InfoWriter } from "../../pdm/types.ts";
import type { SsmUnitReader, SsmUnitWriter } from "../../ssm/unit.ts";
import type { StamCounter } from "../../stam/Stam.ts";
import type { Timer } from "../../tm/Timer.ts";
import { badState, checkVersion, getU8Max } from "../ssmutil.ts";

/** Current saved-state layout. */
const SSM_VERSION = 1;
/** Oldest layout loadState accepts. */
const SSM_MIN_VERSION = 1;

/** The PIT input clock in Hz (14.31818 MHz / 12). */
export const PIT_HZ = 1_193_182;
const NS_PER_S = 1_000_000_000;
/** Length of one DRAM refresh period on the AT (port 61h bit 4 toggles once per period), in ns. */
const REFRESH_NS = 15_085;

// Control word (port 0x43)
//   bits 7:6 SC    channel 0–2, 3 = read-back command
//   bits 5:4 RW    00 counter latch, 01 LSB only, 10 MSB only, 11 LSB then MSB
//   bits 3:1 M     mode 0–5 (6 and 7 alias 2 and 3)
//   bit  0   BCD   binary (0) or 4-decade BCD (1) counting
// Read-back command (SC = 11)
//   bit 5 !COUNT  latch the counts of the selected channels
//   bit 4 !STATUS latch their status bytes
//   bits 3:1      select channel 2, 1, 0
// Status byte: bit 7 OUT, bit 6 null count, bits 5:0 as the control word's RW/M/BCD
// Port 0x61 (system control port B)
//   bit 0 timer 2 gate         (r/w)
//   bit 1 speaker data enable  (r/w)
//   bit 2 parity check enable  (r/w, held)
//   bit 3 I/O check enable     (r/w, held)
//   bit 4 refresh toggle       (r)
//   bit 5 OUT2                 (r)
//   bits 7:6 I/O check / parity error (r, always 0 here)

/** Whole PIT input ticks between two virtual times (exact for any span: no 2^53 overflow). */
export function ticksBetween(from: number, to: number): number {
  const d = to - from;
  if (d <= 0) return 0;
  const q = Math.floor(d / NS_PER_S);
  const r = d - q * NS_PER_S;
  return q * PIT_HZ + Math.floor((r * PIT_HZ) / NS_PER_S);
}

/** The virtual-time offset (ns, rounded up) at which `ticks` input ticks have elapsed. */
export function ticksToNs(ticks: number): number {
  const a = Math.floor(ticks / PIT_HZ);
  const b = ticks - a * PIT_HZ;
  return a * NS_PER_S + Math.ceil((b * NS_PER_S) / PIT_HZ);
}

function bcdToBin(v: number): number {
  // Invalid digits count as their binary value (the counter's decade logic is undefined there).
  return ((v >> 12) & 0xf) * 1000 + ((v >> 8) & 0xf) * 100 + ((v >> 4) & 0xf) * 10 + (v & 0xf);
}

function binToBcd(v: number): number {
  return (
    ((Math.floor(v / 1000) % 10) << 12) |
    ((Math.floor(v / 100) % 10) << 8) |
    ((Math.floor(v / 10) % 10) << 4) |
    (v % 10)
  );
}

/** One counter of the 8254. */
class Channel {
  mode = 0;
  /** RW field: 1 LSB, 2 MSB, 3 LSB then MSB. */
  access = 3;
  bcd = false;
  /** The count register as written (0 stands for the maximum count). */
  count = 0;
  /** A count has been written since the control word (clears the status null-count bit). */
  loaded = false;
  /** LSB-then-MSB write: the LSB was written and the MSB is awaited. */
  writeMsbNext = false;
  writeLsb = 0;
  /** LSB-then-MSB read of the live count: the MSB comes next. */
  readMsbNext = false;
  /** Latched count (counter latch / read-back), -1 when none. */
  latch = -1;
  /** Latched count: the MSB comes next (LSB-then-MSB access). */
  latchMsbNext = false;
  /** Latched status byte, -1 when none. */
  status = -1;
  /** GATE input level. */
  gate = true;
  /** The counting element is counting (started, and for modes 0/4 not suspended by the gate). */
  running = false;
  /** Virtual time at which counting (re)started. */
  base = 0;
  /** Counting-element value at `base` (1..modulus; the modulus stands for a loaded 0). */
  baseCount = 0;
  /** The value the counting element holds while not running. */
  frozen = 0;
  /** One-shot modes: the terminal event happened before `base` (OUT is high again for good). */
  fired = false;

  /** 0x10000 for binary counting, 10000 for BCD. */
  get modulus(): number {
    return this.bcd ? 10000 : 0x10000;
  }

  /** The initial count N as a number of input ticks (a written 0 is the modulus). */
  get reload(): number {
    const n = this.bcd ? bcdToBin(this.count) % 10000 : this.count;
    return n === 0 ? this.modulus : n;
  }

  /** Power-on state: mode 0, LSB-then-MSB, binary, no count, OUT high. */
  reset(gate: boolean): void {
    this.mode = 0;
    this.access = 3;
    this.bcd = false;
    this.count = 0;
    this.loaded = false;
    this.writeMsbNext = false;
    this.writeLsb = 0;
    this.readMsbNext = false;
    this.latch = -1;
    this.latchMsbNext = false;
    this.status = -1;
    this.gate = gate;
    this.running = false;
    this.base = 0;
    this.baseCount = 0;
    this.frozen = 0;
    // The power-on state of the 8254 is undefined until a control word is written; we start
    // with OUT high (as after terminal count) so the first control word of a mode other than 0
    // does not make an edge on IRQ 0.
    this.fired = true;
  }

  /** Input ticks since `base` (0 while not running). */
  ticks(now: number): number {
    return this.running ? ticksBetween(this.base, now) : 0;
  }

  /** The counting element's value now, as a number 0..modulus-1. */
  value(now: number): number {
    if (!this.running) return this.frozen % this.modulus;
    const t = this.ticks(now);
    const m = this.modulus;
    switch (this.mode) {
      case 2: {
        const n = this.reload;
        return (n - (t % n)) % m;
      }
      case 3: {
        // Mode 3 decrements by two, twice per period (once per OUT half).
        // XXX(approx): for odd counts the real chip loads N-1 / N+1 on alternate halves; we show N&~1 downwards.
        const n = this.reload;
        const p = t % n;
        const hi = Math.ceil(n / 2);
        const h = p < hi ? p : p - hi;
        return Math.max(0, (n & ~1) - 2 * h) % m;
      }
      default:
        return (((this.baseCount - t) % m) + m) % m;
    }
  }

  /** The OUT pin now. */
  out(now: number): boolean {
    if (!this.running) {
      // Mode 0 holds OUT low until terminal count; every other mode idles high.
      return this.mode === 0 || this.mode === 1 ? this.fired : true;
    }
    const t = this.ticks(now);
    switch (this.mode) {
      case 0:
      case 1:
        return this.fired || t >= this.baseCount;
      case 2: {
        const n = this.reload;
        return n === 1 || t % n !== n - 1;
      }
      case 3: {
        const n = this.reload;
        return t % n < Math.ceil(n / 2);
      }
      default:
        return this.fired || t !== this.baseCount;
    }
  }

  /** Ticks since `base` of the next OUT rising edge after `now`, or -1 when none is coming. */
  nextRise(now: number): number {
    if (!this.running) return -1;
    const t = this.ticks(now);
    switch (this.mode) {
      case 0:
      case 1:
        return !this.fired && t < this.baseCount ? this.baseCount : -1;
      case 2:
      case 3: {
        const n = this.reload;
        return (Math.floor(t / n) + 1) * n;
      }
      default:
        return !this.fired && t <= this.baseCount ? this.baseCount + 1 : -1;
    }
  }

  /** Starts counting from `count` at `now`. */
  start(now: number, count: number): void {
    this.running = true;
    // Whole ns (the saved-state field is a u64; a ManualClock may stand at a fraction).
    this.base = Math.floor(now);
    this.baseCount = count;
  }

  /** Stops counting, freezing the counting element (gate low in modes 0/4, first byte in mode 0). */
  suspend(now: number): void {
    if (!this.running) return;
    const t = this.ticks(now);
    if (this.mode === 0 || this.mode === 1) this.fired ||= t >= this.baseCount;
    else if (this.mode === 4 || this.mode === 5) this.fired ||= t > this.baseCount;
    this.frozen = this.value(now);
    this.running = false;
  }

  /** The status byte (read-back). */
  statusByte(now: number): number {
    return (
      (this.out(now) ? 0x80 : 0) | (this.loaded ? 0 : 0x40) | (this.access << 4) | (this.mode << 1) | (this.bcd ? 1 : 0)
    );
  }
}

/** The 8254 with port 0x61 as one PDM device. */
export class Pit8254 implements Device {
  readonly #ins: DevIns;
  readonly channels = [new Channel(), new Channel(), new Channel()] as const;
  readonly #irq: IrqLine;
  readonly #timer: Timer;
  /** Port 0x61 bits 3:0 as written. */
  portB = 0;
  readonly #stat: { irq0: StamCounter; bad: StamCounter; readBack: StamCounter };

  constructor(ins: DevIns, _cfg: CfgmNode) {
    this.#ins = ins;
    this.#irq = ins.irq(0);
    this.#timer = ins.timer("ch0", (now) => this.#onTimer(now));
    this.#stat = {
      irq0: ins.counter("Irq0", "Channel 0 OUT rising edges raised on IRQ 0"),
      bad: ins.counter("BadAccess", "Reads of the write-only control port 0x43"),
      readBack: ins.counter("ReadBack", "Read-back commands"),
    };
    ins.ioPorts.map(
      0x40,
      4,
      { read: (off) => this.#read(off), write: (off, v) => this.#write(off, v) },
      { sizes: [1], name: "i8254" },
    );
    ins.ioPorts.map(
      0x61,
      1,
      { read: () => this.#readPortB(), write: (_o, v) => this.#writePortB(v) },
      { sizes: [1], name: "i8254-port61" },
    );
    this.reset();
  }

  reset(): void {
    this.channels[0].reset(true);
    this.channels[1].reset(true);
    this.channels[2].reset(false);
    this.portB = 0;
    this.#syncIrq0();
  }

  get #now(): number {
    return this.#ins.clock.now();
  }

  /**
   * Sets IRQ 0 to channel 0's OUT and arms the timer at its next rising edge. The line follows
   * OUT at events only: in modes 2/3 it is pulsed low-high at each period's rising edge.
   * XXX(approx): mode 3's low half and mode 2's one-tick low are not shown on the IRQ line.
   */
  #syncIrq0(): void {
    const now = this.#now;
    const c = this.channels[0];
    this.#irq.set(c.out(now));
    this.#armTimer(now);
  }

  #armTimer(now: number): void {
    const c = this.channels[0];
    const k = c.nextRise(now);
    if (k < 0) this.#timer.stop();
    else this.#timer.setDeadline(c.base + ticksToNs(k));
  }

  /** Channel 0's OUT rises: an edge on IRQ 0. */
  #onTimer(now: number): void {
    const c = this.channels[0];
    if (!c.running) return;
    this.#irq.lower();
    this.#irq.raise();
    this.#stat.irq0.value++;
    this.#armTimer(now);
  }

  #read(off: number): number {
    if (off === 3) {
      this.#stat.bad.value++;
      return 0xff;
    }
    const c = this.channels[off as 0 | 1 | 2];
    if (c.status >= 0) {
      const s = c.status;
      c.status = -1;
      return s;
    }
    let v: number;
    let msb: boolean;
    if (c.latch >= 0) {
      v = c.latch;
      if (c.access === 3) {
        msb = c.latchMsbNext;
        c.latchMsbNext = !msb;
        if (msb) c.latch = -1;
      } else {
        msb = c.access === 2;
        c.latch = -1;
      }
    } else {
      v = this.#output(c);
      if (c.access === 3) {
        msb = c.readMsbNext;
        c.readMsbNext = !msb;
      } else msb = c.access === 2;
    }
    return msb ? (v >> 8) & 0xff : v & 0xff;
  }

  /** The counting element as the guest reads it (BCD-encoded in BCD mode). */
  #output(c: Channel): number {
    const v = c.value(this.#now);
    return c.bcd ? binToBcd(v) : v & 0xffff;
  }

  #write(off: number, v: number): void {
    if (off === 3) {
      this.#control(v);
      return;
    }
    const idx = off as 0 | 1 | 2;
    const c = this.channels[idx];
    const now = this.#now;
    if (c.access === 3 && !c.writeMsbNext) {
      c.writeLsb = v;
      c.writeMsbNext = true;
      // Mode 0: writing the first byte stops counting and sets OUT low.
      if (c.mode === 0) {
        c.suspend(now);
        c.fired = false;
        if (idx === 0) this.#syncIrq0();
      }
      return;
    }
    let count: number;
    if (c.access === 3) {
      count = c.writeLsb | (v << 8);
      c.writeMsbNext = false;
    } else count = c.access === 1 ? v : v << 8;
    this.#load(idx, count, now);
  }

  /** A complete count was written: load it per the mode's rules. */
  #load(idx: 0 | 1 | 2, count: number, now: number): void {
    const c = this.channels[idx];
    c.count = count & 0xffff;
    c.loaded = true;
    switch (c.mode) {
      case 0:
      case 4:
        c.fired = false;
        if (c.gate) c.start(now, c.reload);
        else {
          c.running = false;
          c.frozen = c.reload;
        }
        break;
      case 2:
      case 3:
        // XXX(approx): a new count written while counting restarts the period at once instead
        // of taking effect at the end of the current period.
        if (c.gate) c.start(now, c.reload);
        break;
      default:
        // Modes 1 and 5 wait for a gate rising edge.
        break;
    }
    if (idx === 0) this.#syncIrq0();
  }

  /** Port 0x43: control word, counter latch or read-back. */
  #control(v: number): void {
    const now = this.#now;
    const sc = v >> 6;
    if (sc === 3) {
      this.#stat.readBack.value++;
      for (let i = 0; i < 3; i++) {
        if (!(v & (2 << i))) continue;
        const c = this.channels[i as 0 | 1 | 2];
        if (!(v & 0x20) && c.latch < 0) this.#latchCount(c);
        if (!(v & 0x10) && c.status < 0) c.status = c.statusByte(now);
      }
      return;
    }
    const c = this.channels[sc as 0 | 1 | 2];
    const rw = (v >> 4) & 3;
    if (rw === 0) {
      // Counter latch command: a second latch before the first is read is ignored.
      if (c.latch < 0) this.#latchCount(c);
      return;
    }
    let mode = (v >> 1) & 7;
    if (mode > 5) mode -= 4;
    c.mode = mode;
    c.access = rw;
    c.bcd = (v & 1) !== 0;
    c.loaded = false;
    c.running = false;
    c.frozen = 0;
    c.writeMsbNext = false;
    c.readMsbNext = false;
    c.latch = -1;
    c.status = -1;
    // After a control word OUT is low in mode 0 and high in every other mode.
    c.fired = mode !== 0;
    if (sc === 0) this.#syncIrq0();
  }

  #latchCount(c: Channel): void {
    c.latch = this.#output(c);
    c.latchMsbNext = false;
  }

  /** GATE input of a channel (only channel 2's is wired, to port 0x61 bit 0). */
  #setGate(idx: 0 | 1 | 2, gate: boolean): void {
    const c = this.channels[idx];
    if (c.gate === gate) return;
    const now = this.#now;
    c.gate = gate;
    if (!gate) {
      if (c.mode === 0 || c.mode === 4) c.suspend(now);
      else if (c.mode === 2 || c.mode === 3) {
        // Counting stops (OUT is forced high); the gate's rising edge reloads.
        c.frozen = c.value(now);
        c.running = false;
      }
    } else if (c.loaded) {
      if (c.mode === 0 || c.mode === 4) {
        if (!c.running) c.start(now, c.frozen === 0 ? c.modulus : c.frozen);
      } else {
        // Modes 1, 5: trigger; modes 2, 3: reload and restart.
        if (c.mode === 1 || c.mode === 5) c.fired = false;
        c.start(now, c.reload);
      }
    }
    if (idx === 0) this.#syncIrq0();
  }

  #readPortB(): number {
    const now = this.#now;
    const refresh = Math.floor(now / REFRESH_NS) & 1;
    return (this.portB & 0x0f) | (refresh << 4) | (this.channels[2].out(now) ? 0x20 : 0);
  }

  #writePortB(v: number): void {
    this.portB = v & 0x0f;
    this.#setGate(2, (v & 1) !== 0);
  }

  /** Speaker output: channel 2's OUT gated by port 0x61 bit 1 (for a future audio backend). */
  speakerLevel(): boolean {
    return (this.portB & 2) !== 0 && this.channels[2].out(this.#now);
  }

  /**
   * Unit layout (version 1), no config part: u8 port 0x61 bits 3:0; per channel u8 mode, u8
   * access, bool BCD, u16 count register, bool loaded, bool/u8 pending LSB write, bool read
   * toggle, i32 latched count (-1 none), bool latch toggle, i32 latched status (-1 none), bool
   * gate, bool running, u64 base (virtual ns), u32 count at base, u32 frozen count, bool fired.
   * The channel 0 timer and IRQ 0 level are derived on load.
   */
  saveState(w: SsmUnitWriter): void {
    // No config part: the PIT has no configuration.
    w.putU8(this.portB);
    for (const c of this.channels) {
      w.putU8(c.mode);
      w.putU8(c.access);
      w.putBool(c.bcd);
      w.putU16(c.count);
      w.putBool(c.loaded);
      w.putBool(c.writeMsbNext);
      w.putU8(c.writeLsb);
      w.putBool(c.readMsbNext);
      w.putI32(c.latch);
      w.putBool(c.latchMsbNext);
      w.putI32(c.status);
      w.putBool(c.gate);
      w.putBool(c.running);
      w.putU64(c.base);
      w.putU32(c.baseCount);
      w.putU32(c.frozen);
      w.putBool(c.fired);
    }
  }

  loadState(r: SsmUnitReader, version: number): void {
    checkVersion(r, version, SSM_MIN_VERSION, SSM_VERSION);
    this.portB = getU8Max(r, "port 0x61", 0x0f);
    for (let i = 0; i < 3; i++) {
      const c = this.channels[i as 0 | 1 | 2];
      c.mode = getU8Max(r, "mode", 5);
      const access = r.getU8();
      if (access < 1 || access > 3) throw badState(r, `channel ${String(i)} access mode ${String(access)}`);
      c.access = access;
      c.bcd = r.getBool();
      c.count = r.getU16();
      c.loaded = r.getBool();
      c.writeMsbNext = r.getBool();
      c.writeLsb = r.getU8();
      c.readMsbNext = r.getBool();
      c.latch = r.getI32();
      if (c.latch < -1 || c.latch > 0xffff) throw badState(r, `channel ${String(i)} latch ${String(c.latch)}`);
      c.latchMsbNext = r.getBool();
      c.status = r.getI32();
      if (c.status < -1 || c.status > 0xff) throw badState(r, `channel ${String(i)} status ${String(c.status)}`);
      c.gate = r.getBool();
      c.running = r.getBool();
      c.base = r.getU64();
      c.baseCount = r.getU32();
      if (c.baseCount > 0x10000) throw badState(r, `channel ${String(i)} count ${String(c.baseCount)}`);
      c.frozen = r.getU32();
      if (c.frozen > 0x10000) throw badState(r, `channel ${String(i)} frozen count ${String(c.frozen)}`);
      c.fired = r.getBool();
    }
    if (this.channels[2].gate !== ((this.portB & 1) !== 0))
      throw badState(r, "channel 2 gate disagrees with port 0x61");
    // Re-derive: IRQ 0 level and the channel 0 timer from the restored state and the clock.
    this.#syncIrq0();
  }

  info(out: InfoWriter): void {
    const now = this.#now;
    this.channels.forEach((c, i) => {
      out.line(
        `ch${String(i)}: mode=${String(c.mode)} rw=${String(c.access)} bcd=${String(c.bcd)} count=0x${c.count.toString(16)} value=0x${c.value(now).toString(16)} out=${String(c.out(now))} gate=${String(c.gate)} running=${String(c.running)}`,
      );
    });
    out.line(
      `port61=0x${this.#readPortB().toString(16)} timer=${this.#timer.active ? String(this.#timer.deadline) : "stopped"}`,
    );
  }
}

registerDevice({
  name: "i8254",
  description: "Intel 8254 PIT (0x40-0x43, IRQ 0) with system control port B (0x61)",
  ssmVersion: SSM_VERSION,
  ssmMinVersion: SSM_MIN_VERSION,
  configKeys: [],
  maxInstances: 1,
  construct: (ins, cfg) => new Pit8254(ins, cfg),
});
