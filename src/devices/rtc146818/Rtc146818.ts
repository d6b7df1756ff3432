/**
 * Motorola MC146818 real-time clock and 128-byte CMOS RAM at 0x70 (index, bit 7 = NMI disable)
 * and 0x71 (data), interrupt on IRQ 8.
 *
 * References: Motorola MC146818A datasheet (address map, registers A–D, divider and rate
 * selection table, update cycle and UIP timing, interrupt flags); Dallas DS12887 datasheet
 * (same register set); OSDev wiki "CMOS" and "RTC"; the IBM AT CMOS map for 0x0E–0x3F
 * (memory size at 0x15–0x18 and 0x30–0x31, AMI/Bochs extension 0x34–0x35, century at 0x32).
 *
 * Time model: the RTC keeps "epoch seconds at the divider phase origin" and the virtual time of
 * that origin; the time registers are computed from the virtual clock when read, so nothing
 * ticks while nobody looks. The 1 Hz update and the periodic interrupt arm virtual-clock timers
 * only while their interrupt is enabled; otherwise UF and PF are worked out when register C is
 * read. The time base is UTC: Config StartTime (epoch seconds or an ISO date string) or, when
 * absent, the host time at construction.
 *
 * The guest driver's view (Linux drivers/rtc/rtc-mc146818-lib.c, arch/x86/kernel/rtc.c):
 * mc146818_get_time waits for UIP (reg A bit 7) to clear, reads 0x00/0x02/0x04/0x07/0x08/0x09 and
 * register B for the format; rtc-cmos enables PIE/AIE/UIE in B and reads C in its IRQ 8 handler.
 */
import type { CfgmNode } from "../../cfgm/CfgmNode.ts";
import type { DevIns } from "../../pdm/DevIns.ts";
import type { IrqLine } from "../../pdm/IrqLine.ts";
import { registerDevice } from "../../pdm/Pdm.ts";
import type { Device, InfoWriter } from "../../pdm/types.ts";
import type { SsmUnitReader, SsmUnitWriter } from "../../ssm/unit.ts";
import type { StamCounter } from "../../stam/Stam.ts";
import type { Timer } from "../../tm/Timer.ts";
import { Status, VBoxError } from "../../vm/err.ts";
import { badState, checkConfig, checkVersion } from "../ssmutil.ts";

/** Current saved-state layout. */
const SSM_VERSION = 1;
/** Oldest layout loadState accepts. */
const SSM_MIN_VERSION = 1;

// Register indexes
//   0x00 seconds  0x01 seconds alarm  0x02 minutes  0x03 minutes alarm  0x04 hours
//   0x05 hours alarm  0x06 day of week (1 = Sunday)  0x07 date  0x08 month  0x09 year
//   0x0A A  0x0B B  0x0C C  0x0D D  0x0E–0x7F battery-backed RAM
const REG_A = 0x0a;
const REG_B = 0x0b;
const REG_C = 0x0c;
const REG_D = 0x0d;
const REG_CENTURY = 0x32;
// Register A
//   bit 7    UIP  update in progress (read-only)
//   bits 6:4 DV   divider: 010 = 32.768 kHz time base running, 11x = divider held in reset
//   bits 3:0 RS   periodic rate select
const A_UIP = 0x80;
// Register B
//   bit 7 SET   halt updates so the time can be set
//   bit 6 PIE   periodic interrupt enable
//   bit 5 AIE   alarm interrupt enable
//   bit 4 UIE   update-ended interrupt enable
//   bit 3 SQWE  square-wave output enable (no pin here)
//   bit 2 DM    data mode: 1 binary, 0 BCD
//   bit 1 24/12 1 = 24-hour mode
//   bit 0 DSE   daylight saving enable (XXX(approx): not applied)
const B_SET = 0x80;
const B_PIE = 0x40;
const B_AIE = 0x20;
const B_UIE = 0x10;
const B_SQWE = 0x08;
const B_DM = 0x04;
const B_24H = 0x02;
// Register C (read clears): bit 7 IRQF, bit 6 PF, bit 5 AF, bit 4 UF
const C_IRQF = 0x80;
const C_PF = 0x40;
const C_AF = 0x20;
const C_UF = 0x10;
/** Register D: bit 7 VRT (valid RAM and time: the battery is good). */
const D_VRT = 0x80;

const NS_PER_S = 1_000_000_000;
/** UIP is set this long before each update (datasheet: 244 µs). */
const UIP_LEAD_NS = 244_000;

function toBcd(v: number): number {
  return ((Math.floor(v / 10) % 10) << 4) | (v % 10);
}
function fromBcd(v: number): number {
  return (v >> 4) * 10 + (v & 0x0f);
}

/** Parses Config StartTime: epoch seconds (number) or a date string; null when absent/zero. */
function parseStart(cfg: CfgmNode): number | null {
  const v = cfg.queryValue("StartTime");
  if (v === undefined || v === 0) return null;
  if (typeof v === "number") return v;
  if (typeof v === "string") {
    const ms = Date.parse(v);
    if (Number.isNaN(ms))
      throw new VBoxError(Status.VERR_INVALID_PARAMETER, `Invalid date in ${cfg.path}/StartTime: ${v}`);
    return Math.floor(ms / 1000);
  }
  throw new VBoxError(Status.VERR_CFGM_NOT_INTEGER, `${cfg.path}/StartTime must be epoch seconds or a date string`);
}

/** The MC146818 with its CMOS RAM as one PDM device. */
export class Rtc146818 implements Device {
  readonly #ins: DevIns;
  readonly #irq: IrqLine;
  readonly #periodicTimer: Timer;
  readonly #updateTimer: Timer;
  readonly #ioBase: number;
  readonly #irqNo: number;
  readonly #ramSize: number;
  /** CMOS contents. Indexes 0x00–0x09 hold only the alarm bytes (the time is computed); C's flags live in #flags. */
  readonly cmos = new Uint8Array(128);
  /** Index register (port 0x70 bits 6:0). */
  index = 0;
  /** Port 0x70 bit 7: NMI disabled. */
  nmiDisabled = false;
  /** Epoch seconds at `phaseNs` (while running). */
  epochAtPhase = 0;
  /** Virtual time of a one-second boundary of the divider chain. */
  phaseNs = 0;
  /** The time while updates are halted (SET bit or divider reset). */
  frozenSec = 0;
  /** Register C flags (PF/AF/UF) not yet read. */
  flags = 0;
  /** Virtual time up to which PF and UF have been accounted for. */
  checkedNs = 0;
  /** Index of the next periodic boundary the periodic timer is armed for. */
  #nextPeriodic = 0;
  readonly #stat: {
    irq: StamCounter;
    periodic: StamCounter;
    update: StamCounter;
    alarm: StamCounter;
    cReads: StamCounter;
    bad: StamCounter;
  };

  constructor(ins: DevIns, cfg: CfgmNode) {
    this.#ins = ins;
    this.#ioBase = cfg.queryU16Def("IOBase", 0x70);
    this.#irqNo = cfg.queryIntegerDef("Irq", 8, 0, 15);
    this.#ramSize = cfg.queryIntegerDef("RamSize", ins.mem.ramSize, 0, 0x1_0000_0000);
    this.#irq = ins.irq(this.#irqNo);
    this.#periodicTimer = ins.timer("periodic", (now) => this.#onPeriodic(now));
    this.#updateTimer = ins.timer("update", (now) => this.#onUpdate(now));
    this.#stat = {
      irq: ins.counter("Irq", "IRQ 8 assertions (IRQF 0→1)"),
      periodic: ins.counter("PeriodicTicks", "Periodic interrupt flags set by the timer"),
      update: ins.counter("UpdateEnded", "Update-ended events seen by the timer"),
      alarm: ins.counter("Alarm", "Alarm matches"),
      cReads: ins.counter("RegCReads", "Reads of register C (acknowledge)"),
      bad: ins.counter("BadAccess", "Reads of the write-only index port and writes to read-only C/D"),
    };
    ins.ioPorts.map(
      this.#ioBase,
      2,
      { read: (off) => this.#read(off), write: (off, v) => this.#write(off, v) },
      { sizes: [1], name: "mc146818" },
    );
    // Power-on: registers A/B/D at their documented values, the time base from the config.
    const start = parseStart(cfg) ?? Math.floor(Date.now() / 1000);
    this.cmos[REG_A] = 0x26;
    this.cmos[REG_B] = B_24H;
    this.cmos[REG_D] = D_VRT;
    this.phaseNs = ins.clock.now();
    this.checkedNs = this.phaseNs;
    this.epochAtPhase = start;
    this.frozenSec = start;
    this.#fillNvram();
    this.reset();
  }

  /** The CMOS fields the BIOS would set: memory sizes, equipment, century, checksum. */
  #fillNvram(): void {
    const c = this.cmos;
    const kb = Math.floor(this.#ramSize / 1024);
    const base = Math.min(640, kb);
    const ext = Math.min(0xffff, Math.max(0, kb - 1024));
    const above16 = Math.min(0xffff, Math.max(0, Math.floor((this.#ramSize - 16 * 1024 * 1024) / 65536)));
    c[0x15] = base & 0xff;
    c[0x16] = base >> 8;
    c[0x17] = ext & 0xff;
    c[0x18] = ext >> 8;
    c[0x30] = ext & 0xff;
    c[0x31] = ext >> 8;
    c[0x34] = above16 & 0xff;
    c[0x35] = above16 >> 8;
    c[0x14] = 0x02; // equipment: math coprocessor present, VGA, no floppy
    c[REG_CENTURY] = toBcd(Math.floor(new Date(this.frozenSec * 1000).getUTCFullYear() / 100) % 100);
    let sum = 0;
    for (let i = 0x10; i <= 0x2d; i++) sum += c[i]!;
    c[0x2e] = (sum >> 8) & 0xff;
    c[0x2f] = sum & 0xff;
  }

  /** Machine reset: the RTC keeps time and RAM; interrupt enables and flags clear (datasheet RESET pin). */
  reset(): void {
    const now = this.#now;
    this.#catchUp(now);
    this.cmos[REG_B] = this.cmos[REG_B]! & ~(B_PIE | B_AIE | B_UIE | B_SQWE);
    this.flags = 0;
    this.index = 0;
    this.nmiDisabled = false;
    this.#rearm(now);
  }

  get #now(): number {
    return this.#ins.clock.now();
  }

  /** Updates are halted (SET, or the divider held in reset). */
  #halted(): boolean {
    return (this.cmos[REG_B]! & B_SET) !== 0 || this.#dividerReset();
  }

  #dividerReset(): boolean {
    return (this.cmos[REG_A]! & 0x60) === 0x60;
  }

  /** Current time in epoch seconds. */
  #seconds(now: number): number {
    if (this.#halted()) return this.frozenSec;
    return this.epochAtPhase + Math.floor((now - this.phaseNs) / NS_PER_S);
  }

  /** Sets the current time (epoch seconds) keeping the divider phase. */
  #setSeconds(now: number, secs: number): void {
    if (!Number.isFinite(secs)) return; // a date Date.UTC cannot represent: keep the old time
    if (this.#halted()) this.frozenSec = secs;
    else this.epochAtPhase = secs - Math.floor((now - this.phaseNs) / NS_PER_S);
  }

  /** The periodic interrupt period in ns for the current RS, or 0 when off. */
  #periodNs(): number {
    if (this.#dividerReset()) return 0;
    let rs = this.cmos[REG_A]! & 0x0f;
    if (rs === 0) return 0;
    if (rs < 3) rs += 7; // RS 1 and 2 repeat rates 8 and 9 with a 32.768 kHz time base
    // XXX(approx): the 4.194304 and 1.048576 MHz time bases (DV 000/001) use the 32.768 kHz table.
    return ((1 << (rs - 1)) * NS_PER_S) / 32768;
  }

  /** Sets PF and UF for the boundaries passed since the last check (the lazy path). */
  #catchUp(now: number): void {
    if (now <= this.checkedNs) return;
    const period = this.#periodNs();
    if (
      period > 0 &&
      Math.floor((now - this.phaseNs) / period) > Math.floor((this.checkedNs - this.phaseNs) / period)
    ) {
      this.flags |= C_PF;
    }
    if (
      !this.#halted() &&
      Math.floor((now - this.phaseNs) / NS_PER_S) > Math.floor((this.checkedNs - this.phaseNs) / NS_PER_S)
    ) {
      this.flags |= C_UF;
      // XXX(approx): with AIE clear, the alarm is compared with the current second only.
      if (this.#alarmMatches(now)) this.flags |= C_AF;
    }
    this.checkedNs = now;
  }

  /** Register C as it reads now: IRQF = (PF·PIE) + (AF·AIE) + (UF·UIE). */
  #regC(): number {
    const b = this.cmos[REG_B]!;
    const irqf = this.flags & b & (C_PF | C_AF | C_UF) ? C_IRQF : 0;
    return irqf | this.flags;
  }

  /** Drives IRQ 8 from IRQF (the IRQ output stays asserted until C is read). */
  #updateIrq(): void {
    const level = (this.#regC() & C_IRQF) !== 0;
    if (level && !this.#irq.level) this.#stat.irq.value++;
    this.#irq.set(level);
  }

  /** Arms the periodic and update timers for what is enabled (no timer runs otherwise). */
  #rearm(now: number): void {
    const b = this.cmos[REG_B]!;
    const period = this.#periodNs();
    if (b & B_PIE && period > 0) {
      this.#nextPeriodic = Math.floor((now - this.phaseNs) / period) + 1;
      this.#periodicTimer.setDeadline(Math.ceil(this.phaseNs + this.#nextPeriodic * period));
    } else this.#periodicTimer.stop();
    if (b & (B_UIE | B_AIE) && !this.#halted()) {
      const k = Math.floor((now - this.phaseNs) / NS_PER_S) + 1;
      this.#updateTimer.setDeadline(this.phaseNs + k * NS_PER_S);
    } else this.#updateTimer.stop();
    this.#updateIrq();
  }

  #onPeriodic(now: number): void {
    const period = this.#periodNs();
    if (period <= 0) return;
    this.flags |= C_PF;
    this.#stat.periodic.value++;
    // Strictly increasing boundary index: never re-arms at a deadline already passed twice.
    this.#nextPeriodic = Math.max(this.#nextPeriodic + 1, Math.floor((now - this.phaseNs) / period) + 1);
    this.#periodicTimer.setDeadline(Math.ceil(this.phaseNs + this.#nextPeriodic * period));
    this.#updateIrq();
  }

  #onUpdate(now: number): void {
    if (this.#halted()) return;
    this.#catchUp(now);
    this.flags |= C_UF;
    this.#stat.update.value++;
    if (this.#alarmMatches(now)) {
      this.flags |= C_AF;
      this.#stat.alarm.value++;
    }
    const k = Math.floor((now - this.phaseNs) / NS_PER_S) + 1;
    this.#updateTimer.setDeadline(this.phaseNs + k * NS_PER_S);
    this.#updateIrq();
  }

  /** Alarm bytes 0x01/0x03/0x05 against the current time (0xC0–0xFF = don't care). */
  #alarmMatches(now: number): boolean {
    const pairs = [
      [0x01, 0x00],
      [0x03, 0x02],
      [0x05, 0x04],
    ] as const;
    for (const [alarm, reg] of pairs) {
      const a = this.cmos[alarm]!;
      if ((a & 0xc0) === 0xc0) continue;
      if (a !== this.#timeReg(reg, now)) return false;
    }
    return true;
  }

  /** Encodes a value per register B's data mode. */
  #enc(v: number): number {
    return this.cmos[REG_B]! & B_DM ? v : toBcd(v);
  }
  #dec(v: number): number {
    return this.cmos[REG_B]! & B_DM ? v : fromBcd(v);
  }

  /** A time register (0x00, 0x02, 0x04, 0x06–0x09, 0x32) as the guest reads it now. */
  #timeReg(reg: number, now: number): number {
    const d = new Date(this.#seconds(now) * 1000);
    switch (reg) {
      case 0x00:
        return this.#enc(d.getUTCSeconds());
      case 0x02:
        return this.#enc(d.getUTCMinutes());
      case 0x04: {
        const h = d.getUTCHours();
        if (this.cmos[REG_B]! & B_24H) return this.#enc(h);
        const h12 = h % 12 === 0 ? 12 : h % 12;
        return this.#enc(h12) | (h >= 12 ? 0x80 : 0);
      }
      case 0x06:
        return this.#enc(d.getUTCDay() + 1);
      case 0x07:
        return this.#enc(d.getUTCDate());
      case 0x08:
        return this.#enc(d.getUTCMonth() + 1);
      case 0x09:
        return this.#enc(((d.getUTCFullYear() % 100) + 100) % 100);
      default:
        return this.#enc(Math.floor(d.getUTCFullYear() / 100) % 100);
    }
  }

  /** A guest write to a time register: changes that field of the current date. */
  #writeTime(reg: number, v: number, now: number): void {
    const d = new Date(this.#seconds(now) * 1000);
    let y = d.getUTCFullYear();
    let mo = d.getUTCMonth();
    let day = d.getUTCDate();
    let h = d.getUTCHours();
    let mi = d.getUTCMinutes();
    let s = d.getUTCSeconds();
    switch (reg) {
      case 0x00:
        s = this.#dec(v & 0x7f);
        break;
      case 0x02:
        mi = this.#dec(v & 0x7f);
        break;
      case 0x04:
        if (this.cmos[REG_B]! & B_24H) h = this.#dec(v & 0x3f);
        else h = (this.#dec(v & 0x7f) % 12) + (v & 0x80 ? 12 : 0);
        break;
      case 0x06:
        // XXX(approx): the day of week is derived from the date; writes to it are ignored.
        return;
      case 0x07:
        day = this.#dec(v);
        break;
      case 0x08:
        mo = this.#dec(v) - 1;
        break;
      case 0x09:
        y = Math.floor(y / 100) * 100 + (this.#dec(v) % 100);
        break;
      default:
        y = this.#dec(v) * 100 + (((y % 100) + 100) % 100);
        break;
    }
    // XXX(approx): out-of-range values carry into the next field (Date.UTC normalization)
    // instead of the chip's undefined behaviour.
    this.#setSeconds(now, Math.floor(Date.UTC(y, mo, day, h, mi, s) / 1000));
  }

  #read(off: number): number {
    if (off === 0) {
      this.#stat.bad.value++;
      return 0xff; // the index port is write-only on the AT
    }
    const now = this.#now;
    const i = this.index;
    switch (i) {
      case 0x00:
      case 0x02:
      case 0x04:
      case 0x06:
      case 0x07:
      case 0x08:
      case 0x09:
        return this.#timeReg(i, now);
      case REG_A: {
        const phase = (((now - this.phaseNs) % NS_PER_S) + NS_PER_S) % NS_PER_S;
        const uip = !this.#halted() && phase >= NS_PER_S - UIP_LEAD_NS;
        return (this.cmos[REG_A]! & 0x7f) | (uip ? A_UIP : 0);
      }
      case REG_C: {
        this.#catchUp(now);
        const v = this.#regC();
        this.#stat.cReads.value++;
        this.flags = 0;
        this.#updateIrq();
        return v;
      }
      case REG_D:
        return D_VRT;
      default:
        return this.cmos[i]!;
    }
  }

  #write(off: number, v: number): void {
    if (off === 0) {
      this.index = v & 0x7f;
      this.nmiDisabled = (v & 0x80) !== 0;
      return;
    }
    const now = this.#now;
    const i = this.index;
    switch (i) {
      case 0x00:
      case 0x02:
      case 0x04:
      case 0x06:
      case 0x07:
      case 0x08:
      case 0x09:
      case REG_CENTURY:
        this.#writeTime(i, v, now);
        if (i === REG_CENTURY) this.cmos[REG_CENTURY] = v;
        return;
      case REG_A: {
        this.#catchUp(now);
        const wasReset = this.#dividerReset();
        const secs = this.#seconds(now);
        this.cmos[REG_A] = v & 0x7f;
        if (!wasReset && this.#dividerReset()) this.frozenSec = secs;
        else if (wasReset && !this.#dividerReset()) {
          // Leaving divider reset: the first update comes half a second later.
          this.phaseNs = now - NS_PER_S / 2;
          this.checkedNs = now;
          if (!(this.cmos[REG_B]! & B_SET)) this.epochAtPhase = this.frozenSec;
        }
        this.#rearm(now);
        return;
      }
      case REG_B: {
        this.#catchUp(now);
        const old = this.cmos[REG_B]!;
        const secs = this.#seconds(now);
        // Setting SET halts updates and clears UIE (datasheet).
        if (v & B_SET) v &= ~B_UIE;
        this.cmos[REG_B] = v;
        if (!(old & B_SET) && v & B_SET) this.frozenSec = secs;
        else if (old & B_SET && !(v & B_SET) && !this.#dividerReset()) {
          this.epochAtPhase = this.frozenSec - Math.floor((now - this.phaseNs) / NS_PER_S);
          this.checkedNs = now;
        }
        this.#rearm(now);
        return;
      }
      case REG_C:
      case REG_D:
        this.#stat.bad.value++;
        return; // read-only
      default:
        this.cmos[i] = v;
    }
  }

  /** NMI disable bit as last written to port 0x70 (for an NMI source, none yet). */
  get nmiMasked(): boolean {
    return this.nmiDisabled;
  }

  /**
   * Unit layout (version 1): config part u16 IOBase, u8 IRQ; then 128 bytes CMOS (time bytes
   * 0x00/0x02/0x04/0x06–0x09 unused: the time is computed), u8 index, bool NMI disabled, f64
   * epoch seconds at the divider phase, f64 phase origin (virtual ns), f64 frozen time, u8
   * pending C flags, f64 time up to which PF/UF were accounted.
   */
  saveState(w: SsmUnitWriter): void {
    // Config part.
    w.putU16(this.#ioBase);
    w.putU8(this.#irqNo);
    // State.
    w.putRaw(this.cmos);
    w.putU8(this.index);
    w.putBool(this.nmiDisabled);
    w.putF64(this.epochAtPhase);
    w.putF64(this.phaseNs);
    w.putF64(this.frozenSec);
    w.putU8(this.flags);
    w.putF64(this.checkedNs);
  }

  loadState(r: SsmUnitReader, version: number): void {
    checkVersion(r, version, SSM_MIN_VERSION, SSM_VERSION);
    checkConfig(r, "IOBase", r.getU16(), this.#ioBase);
    checkConfig(r, "Irq", r.getU8(), this.#irqNo);
    const cmos = r.getRaw(128);
    const index = r.getU8();
    if (index > 0x7f) throw badState(r, `index 0x${index.toString(16)}`);
    const nmi = r.getBool();
    const epoch = r.getF64();
    const phase = r.getF64();
    const frozen = r.getF64();
    const flags = r.getU8();
    const checked = r.getF64();
    for (const [n, v] of [
      ["epoch", epoch],
      ["phase", phase],
      ["frozen time", frozen],
      ["check time", checked],
    ] as const) {
      if (!Number.isFinite(v)) throw badState(r, `${n} is not finite`);
    }
    if (flags & ~(C_PF | C_AF | C_UF)) throw badState(r, `register C flags 0x${flags.toString(16)}`);
    this.cmos.set(cmos);
    this.index = index;
    this.nmiDisabled = nmi;
    this.epochAtPhase = epoch;
    this.phaseNs = phase;
    this.frozenSec = frozen;
    this.flags = flags;
    this.checkedNs = checked;
    // Re-derive: timers for the enabled interrupts and the IRQ 8 level.
    this.#rearm(this.#now);
  }

  info(out: InfoWriter): void {
    const now = this.#now;
    const iso = new Date(this.#seconds(now) * 1000).toISOString();
    const h = (v: number): string => v.toString(16).padStart(2, "0");
    out.line(
      `time=${iso} A=${h(this.cmos[REG_A]!)} B=${h(this.cmos[REG_B]!)} C=${h(this.#regC())} index=${h(this.index)} nmi=${this.nmiDisabled ? "off" : "on"} halted=${String(this.#halted())}`,
    );
  }
}

registerDevice({
  name: "mc146818",
  description: "Motorola MC146818 RTC with 128 bytes of CMOS RAM (0x70/0x71, IRQ 8)",
  ssmVersion: SSM_VERSION,
  ssmMinVersion: SSM_MIN_VERSION,
  configKeys: ["IOBase", "Irq", "StartTime", "RamSize"],
  maxInstances: 1,
  construct: (ins, cfg) => new Rtc146818(ins, cfg),
});
