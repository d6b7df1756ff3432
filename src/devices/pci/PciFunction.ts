/**
 * One PCI function's configuration space (type 0 header) and the bus it sits on: the small
 * registration API for PCI devices (the chipset's own functions and later ones such as IDE or
 * virtio).
 *
 * References: PCI Local Bus Specification 2.1/3.0 §6.1–6.2 (configuration header, command and
 * status registers, base address registers and their sizing protocol, interrupt line/pin);
 * OSDev wiki "PCI".
 *
 * Use from a device's construct():
 *   const bus = pciBusOf(ins);                         // null when the machine has no "pci" device
 *   const fn = new PciFunction("ide", { vendorId: 0x8086, deviceId: 0x7010, classCode: 0x010180 });
 *   fn.defineBar(4, 16, "io");
 *   fn.onWrite = (off) => { if (off >= 0x10 && off < 0x28) this.remap(); };
 *   bus?.register(pciDevfn(1, 1), fn);
 * and save/restore its 256 bytes with fn.save(w) / fn.load(r) in the device's unit.
 */
import type { DevIns, MachineContext } from "../../pdm/DevIns.ts";
import type { SsmUnitReader, SsmUnitWriter } from "../../ssm/unit.ts";

// Type 0 header offsets
//   0x00 vendor ID (16)   0x02 device ID (16)   0x04 command (16)   0x06 status (16)
//   0x08 revision (8)     0x09 class code (24: prog-if, subclass, base class)
//   0x0C cache line size  0x0D latency timer  0x0E header type (bit 7 multi-function)  0x0F BIST
//   0x10–0x24 BAR0–BAR5   0x2C subsystem vendor ID  0x2E subsystem ID
//   0x3C interrupt line (r/w, for the OS)  0x3D interrupt pin (1 = INTA#)
export const PCI_VENDOR_ID = 0x00;
export const PCI_COMMAND = 0x04;
export const PCI_STATUS = 0x06;
export const PCI_REVISION = 0x08;
export const PCI_CLASS_PROG = 0x09;
export const PCI_HEADER_TYPE = 0x0e;
export const PCI_BAR0 = 0x10;
export const PCI_SUBSYSTEM_VENDOR_ID = 0x2c;
export const PCI_INTERRUPT_LINE = 0x3c;
export const PCI_INTERRUPT_PIN = 0x3d;
// Command: bit 0 I/O space, 1 memory space, 2 bus master, 6 parity error response, 8 SERR#, 10 INTx disable
const COMMAND_WRITABLE = 0x0547;
// Status: bits 15:11 and 8 are write-1-to-clear error bits
const STATUS_W1C = 0xf900;

/** What identifies a function. */
export interface PciIdentity {
  vendorId: number;
  deviceId: number;
  /** 24-bit class code: base class << 16 | subclass << 8 | programming interface. */
  classCode: number;
  revision?: number;
  /** Header type byte (0x00; 0x80 for a multi-function device's function 0). */
  headerType?: number;
  subsystemVendorId?: number;
  subsystemId?: number;
  /** 0 none, 1–4 INTA#–INTD#. */
  interruptPin?: number;
  /** Initial command and status register values. */
  command?: number;
  status?: number;
}

/** A base address register's definition. */
interface BarDef {
  size: number;
  io: boolean;
}

/** The bus/device/function number of a bus-0 function as an 8-bit devfn. */
export function pciDevfn(device: number, fn: number): number {
  return ((device & 0x1f) << 3) | (fn & 7);
}

/** One function's 256-byte configuration space with write masks. */
export class PciFunction {
  readonly name: string;
  /** The configuration space as the guest reads it. */
  readonly config = new Uint8Array(256);
  /** Bits the guest may write. */
  readonly wmask = new Uint8Array(256);
  /** Bits a guest write of 1 clears. */
  readonly w1cmask = new Uint8Array(256);
  readonly #bars: (BarDef | null)[] = [null, null, null, null, null, null];
  /** Called after every guest write, with the offset and size written (BAR remap, command changes). */
  onWrite: ((offset: number, size: 1 | 2 | 4) => void) | null = null;

  constructor(name: string, id: PciIdentity) {
    this.name = name;
    this.setU16(PCI_VENDOR_ID, id.vendorId);
    this.setU16(0x02, id.deviceId);
    this.setU16(PCI_COMMAND, id.command ?? 0);
    this.setU16(PCI_STATUS, id.status ?? 0);
    this.config[PCI_REVISION] = id.revision ?? 0;
    this.config[PCI_CLASS_PROG] = id.classCode & 0xff;
    this.config[0x0a] = (id.classCode >> 8) & 0xff;
    this.config[0x0b] = (id.classCode >> 16) & 0xff;
    this.config[PCI_HEADER_TYPE] = id.headerType ?? 0;
    this.setU16(PCI_SUBSYSTEM_VENDOR_ID, id.subsystemVendorId ?? 0);
    this.setU16(0x2e, id.subsystemId ?? 0);
    this.config[PCI_INTERRUPT_PIN] = id.interruptPin ?? 0;
    this.wmask[PCI_COMMAND] = COMMAND_WRITABLE & 0xff;
    this.wmask[PCI_COMMAND + 1] = COMMAND_WRITABLE >> 8;
    this.w1cmask[PCI_STATUS] = STATUS_W1C & 0xff;
    this.w1cmask[PCI_STATUS + 1] = STATUS_W1C >> 8;
    this.wmask[0x0c] = 0xff; // cache line size
    this.wmask[0x0d] = 0xff; // latency timer
    this.wmask[PCI_INTERRUPT_LINE] = 0xff;
  }

  /** Direct (non-guest) writes for device setup: no masks. */
  setU8(off: number, v: number): void {
    this.config[off & 0xff] = v & 0xff;
  }
  setU16(off: number, v: number): void {
    this.setU8(off, v);
    this.setU8(off + 1, v >> 8);
  }
  setU32(off: number, v: number): void {
    this.setU16(off, v);
    this.setU16(off + 2, v >>> 16);
  }
  getU8(off: number): number {
    return this.config[off & 0xff]!;
  }
  getU16(off: number): number {
    return this.getU8(off) | (this.getU8(off + 1) << 8);
  }
  getU32(off: number): number {
    return (this.getU16(off) | (this.getU16(off + 2) << 16)) >>> 0;
  }

  /** Makes bytes [off, off+len) guest-writable under a byte mask (device-specific registers). */
  setWritable(off: number, len: number, mask = 0xff): void {
    for (let i = 0; i < len; i++) this.wmask[(off + i) & 0xff] = mask;
  }

  /**
   * Defines BAR n: `size` bytes (a power of two, >= 4 for I/O, >= 16 for memory) of I/O or 32-bit
   * memory space. The guest sizes it by writing all ones and reading back ~(size-1) | type bits.
   */
  defineBar(n: number, size: number, kind: "io" | "mem32"): void {
    if (n < 0 || n > 5 || size <= 0 || (size & (size - 1)) !== 0)
      throw new RangeError(`Bad BAR ${String(n)} size ${String(size)}`);
    const io = kind === "io";
    if (size < (io ? 4 : 16)) size = io ? 4 : 16;
    this.#bars[n] = { size, io };
    const off = PCI_BAR0 + 4 * n;
    const mask = ~(size - 1) & (io ? 0xfffffffc : 0xfffffff0);
    for (let i = 0; i < 4; i++) this.wmask[off + i] = (mask >>> (8 * i)) & 0xff;
    this.setU32(off, io ? 1 : 0);
  }

  /** The address BAR n is programmed to (type bits stripped), or -1 when undefined. */
  barAddress(n: number): number {
    const b = this.#bars[n];
    if (!b) return -1;
    const v = this.getU32(PCI_BAR0 + 4 * n);
    return (b.io ? v & 0xfffffffc : v & 0xfffffff0) >>> 0;
  }

  /** Guest config read of 1, 2 or 4 bytes at `off` (within the dword). */
  read(off: number, size: 1 | 2 | 4): number {
    let v = 0;
    for (let i = 0; i < size; i++) v |= this.getU8(off + i) << (8 * i);
    return v >>> 0;
  }

  /** Guest config write: read-only bits kept, write-1-to-clear bits cleared. */
  write(off: number, value: number, size: 1 | 2 | 4): void {
    for (let i = 0; i < size; i++) {
      const o = (off + i) & 0xff;
      const b = (value >>> (8 * i)) & 0xff;
      const wm = this.wmask[o]!;
      const w1c = this.w1cmask[o]!;
      let cur = this.config[o]!;
      cur = (cur & ~wm) | (b & wm);
      cur &= ~(b & w1c);
      this.config[o] = cur;
    }
    this.onWrite?.(off, size);
  }

  /** Saves the configuration space (the masks are construction-time constants). */
  save(w: SsmUnitWriter): void {
    w.putRaw(this.config);
  }

  /** Restores the configuration space; identity bytes are kept from construction. */
  load(r: SsmUnitReader): void {
    const data = r.getRaw(256);
    for (let o = 0; o < 256; o++) {
      // Bytes the guest cannot write stay as constructed unless they are status-style w1c bits.
      const keep = ~(this.wmask[o]! | this.w1cmask[o]!) & 0xff;
      this.config[o] = (this.config[o]! & keep) | (data[o]! & ~keep & 0xff);
    }
  }
}

/** The functions on PCI bus 0. */
export class PciBus {
  readonly #fns = new Map<number, PciFunction>();

  /** Places a function at a devfn; a second function at the same place is a configuration error. */
  register(devfn: number, fn: PciFunction): void {
    if (devfn < 0 || devfn > 0xff) throw new RangeError(`Bad PCI devfn ${String(devfn)}`);
    const cur = this.#fns.get(devfn);
    if (cur) throw new RangeError(`PCI slot ${fmtDevfn(devfn)} taken by ${cur.name}, cannot add ${fn.name}`);
    this.#fns.set(devfn, fn);
  }

  /** The function at a devfn, if any. */
  find(devfn: number): PciFunction | undefined {
    return this.#fns.get(devfn);
  }

  /** Every function, sorted by devfn. */
  functions(): [number, PciFunction][] {
    return [...this.#fns.entries()].sort((a, b) => a[0] - b[0]);
  }

  /** Config read; an absent function (or bus other than 0) reads all ones. */
  read(bus: number, devfn: number, off: number, size: 1 | 2 | 4): number {
    const fn = bus === 0 ? this.#fns.get(devfn) : undefined;
    if (!fn) return size === 4 ? 0xffffffff : (1 << (8 * size)) - 1;
    return fn.read(off, size);
  }

  /** Config write; writes to absent functions are dropped. Returns false when nobody took it. */
  write(bus: number, devfn: number, off: number, value: number, size: 1 | 2 | 4): boolean {
    const fn = bus === 0 ? this.#fns.get(devfn) : undefined;
    if (!fn) return false;
    fn.write(off, value, size);
    return true;
  }
}

/** "00:01.0" for a bus-0 devfn. */
export function fmtDevfn(devfn: number): string {
  return `00:${(devfn >> 3).toString(16).padStart(2, "0")}.${String(devfn & 7)}`;
}

/** The bus of each machine, set by the "pci" device (keyed by the machine's context). */
const buses = new WeakMap<MachineContext, PciBus>();

/** Called by the host bridge device when it constructs the bus. */
export function attachPciBus(ins: DevIns, bus: PciBus): void {
  buses.set(ins.ctx, bus);
}

/** The machine's PCI bus, or null when it has no "pci" device (constructed earlier). */
export function pciBusOf(ins: DevIns): PciBus | null {
  return buses.get(ins.ctx) ?? null;
}
