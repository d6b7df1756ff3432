/**
 * National Semiconductor PC16550D UART ("16550A"): COM1 at 0x3F8/IRQ 4, COM2 at 0x2F8/IRQ 3.
 *
 * References: PC16550D datasheet (register map, FCR/IIR/LSR/MSR bits, interrupt priorities,
 * FIFO trigger levels, character timeout of four character times, loopback wiring); OSDev wiki
 * "Serial Ports"; the PC convention that OUT2 gates the UART's interrupt onto the ISA IRQ line.
 *
 * Config: IOBase, IRQ, Backend (the char backend's name, default "serial<instance>").
 *
 * Transmit: instant drain. A byte written to THR goes to the char backend at once; THR and the
 * transmitter are empty again before the next guest instruction, so LSR always shows THRE and
 * TEMT, and a THRE interrupt follows every write when ETBEI is set. This keeps the console fast
 * and needs no timer; the divisor only matters for the receive timeout.
 * Receive: bytes from the backend's receiver go into a host-side backlog and from there into
 * the 16-byte RX FIFO as room appears (when the guest reads RBR), so a fast host never overruns
 * the guest. RDA is raised at the trigger level; fewer bytes raise the character timeout after
 * four character times at the programmed rate (a virtual-clock timer).
 *
 * The guest driver's view (Linux drivers/tty/serial/8250/8250_port.c autoconfig): IER write
 * 0x00/0x0F read back (upper nibble reads 0), MCR=0x1A loopback with MSR&0xF0 == 0x90, FCR=0x01
 * then IIR>>6 == 3 (16550A), LCR=0xBF reads of IIR/EFR are not 0, no 64-byte FIFO (IIR bit 5 0),
 * IER bit 6 not writable; then set_mctrl(OUT2) and IER THRI/RDI for interrupt-driven I/O.
 */
import type { CfgmNode } from "../../cfgm/CfgmNode.ts";
import type { DevIns } from "../../pdm/DevIns.ts";
import type { IrqLine } from "../../pdm/IrqLine.ts";
import { registerDevice } from "../../pdm/Pdm.ts";
import type { CharBackend, Device, InfoWriter } from "../../pdm/types.ts";
import type { SsmUnitReader, SsmUnitWriter } from "../../ssm/unit.ts";
import type { StamCounter } from "../../stam/Stam.ts";
import type { Timer } from "../../tm/Timer.ts";
import { badState, checkConfig, checkVersion, getDeadline, putDeadline } from "../ssmutil.ts";

/** Current saved-state layout. */
const SSM_VERSION = 1;
/** Oldest layout loadState accepts. */
const SSM_MIN_VERSION = 1;

/** The UART's input clock divided by 16: baud = 115200 / divisor. */
const BAUD_BASE = 115200;
const FIFO_SIZE = 16;
/** Host bytes held for the guest beyond the FIFO; more are dropped (and counted). */
const BACKLOG_MAX = 1 << 20;

// Registers (offset from IOBase; DLAB = LCR bit 7)
//   0 RBR (r) / THR (w) / DLL (DLAB)   1 IER / DLM (DLAB)   2 IIR (r) / FCR (w)
//   3 LCR   4 MCR   5 LSR   6 MSR   7 SCR
// IER: bit 0 ERBFI (RX data + timeout), 1 ETBEI (THR empty), 2 ELSI (line status), 3 EDSSI (modem status)
const IER_RDA = 0x01;
const IER_THRE = 0x02;
const IER_RLS = 0x04;
const IER_MSR = 0x08;
// IIR: bit 0 = 1 no interrupt pending; bits 3:1 the source; bits 7:6 = 11 when FIFOs are enabled
const IIR_NONE = 0x01;
const IIR_RLS = 0x06;
const IIR_RDA = 0x04;
const IIR_TIMEOUT = 0x0c;
const IIR_THRE = 0x02;
const IIR_MSR = 0x00;
const IIR_FIFO = 0xc0;
// FCR: bit 0 FIFO enable, 1 clear RX FIFO, 2 clear TX FIFO, 3 DMA mode, 7:6 RX trigger (1/4/8/14)
const FCR_ENABLE = 0x01;
const FCR_CLEAR_RX = 0x02;
const TRIGGER = [1, 4, 8, 14] as const;
// LCR: bits 1:0 word length - 5, bit 2 stop bits, bit 3 parity enable, bit 6 break, bit 7 DLAB
const LCR_DLAB = 0x80;
// MCR: bit 0 DTR, 1 RTS, 2 OUT1, 3 OUT2 (IRQ enable on the PC), 4 LOOP
const MCR_DTR = 0x01;
const MCR_RTS = 0x02;
const MCR_OUT1 = 0x04;
const MCR_OUT2 = 0x08;
const MCR_LOOP = 0x10;
// LSR: bit 0 DR, 1 OE, 2 PE, 3 FE, 4 BI, 5 THRE, 6 TEMT, 7 error in RX FIFO
const LSR_DR = 0x01;
const LSR_OE = 0x02;
const LSR_THRE = 0x20;
const LSR_TEMT = 0x40;
// MSR: bit 0 DCTS, 1 DDSR, 2 TERI, 3 DDCD, 4 CTS, 5 DSR, 6 RI, 7 DCD
const MSR_CTS = 0x10;
const MSR_DSR = 0x20;
const MSR_RI = 0x40;
const MSR_DCD = 0x80;
/** Modem inputs outside loopback: a connected terminal (CTS, DSR, DCD asserted, no ring). */
const MSR_CONNECTED = MSR_CTS | MSR_DSR | MSR_DCD;

/** A growable byte queue (host backlog). */
class ByteQueue {
  #buf = new Uint8Array(64);
  #head = 0;
  #len = 0;
  get length(): number {
    return this.#len;
  }
  push(b: number): void {
    if (this.#len === this.#buf.length) {
      const nb = new Uint8Array(this.#buf.length * 2);
      for (let i = 0; i < this.#len; i++) nb[i] = this.#buf[(this.#head + i) % this.#buf.length]!;
      this.#buf = nb;
      this.#head = 0;
    }
    this.#buf[(this.#head + this.#len) % this.#buf.length] = b;
    this.#len++;
  }
  shift(): number {
    const b = this.#buf[this.#head]!;
    this.#head = (this.#head + 1) % this.#buf.length;
    this.#len--;
    return b;
  }
  toArray(): Uint8Array {
    const out = new Uint8Array(this.#len);
    for (let i = 0; i < this.#len; i++) out[i] = this.#buf[(this.#head + i) % this.#buf.length]!;
    return out;
  }
  clear(): void {
    this.#head = 0;
    this.#len = 0;
  }
}

/** One 16550A. */
export class Uart16550 implements Device {
  readonly #ins: DevIns;
  readonly #ioBase: number;
  readonly #irqNo: number;
  readonly #irq: IrqLine;
  readonly #backend: CharBackend | null;
  readonly #timeoutTimer: Timer;
  ier = 0;
  lcr = 0;
  mcr = 0;
  scr = 0;
  dll = 1;
  dlm = 0;
  /** FCR bit 0 and the RX trigger index (FCR bits 7:6). */
  fifoEnabled = false;
  trigger = 0;
  /** RX FIFO (a one-byte holding register when FIFOs are off). */
  rx: number[] = [];
  /** Host bytes waiting for room in the RX FIFO. */
  readonly backlog = new ByteQueue();
  /** LSR overrun error (cleared by reading LSR). */
  overrun = false;
  /** THRE interrupt latched (set when THR empties or ETBEI is enabled; cleared by IIR read or THR write). */
  threPending = false;
  /** Character timeout interrupt latched. */
  timeoutPending = false;
  /** MSR delta bits 3:0. */
  msrDelta = 0;
  readonly #stat: { tx: StamCounter; rx: StamCounter; irq: StamCounter; overrun: StamCounter; dropped: StamCounter };

  constructor(ins: DevIns, cfg: CfgmNode) {
    this.#ins = ins;
    const defBase = ins.instance === 0 ? 0x3f8 : ins.instance === 1 ? 0x2f8 : ins.instance === 2 ? 0x3e8 : 0x2e8;
    this.#ioBase = cfg.queryU16Def("IOBase", defBase);
    this.#irqNo = cfg.queryIntegerDef("IRQ", ins.instance % 2 === 0 ? 4 : 3, 0, 15);
    this.#irq = ins.irq(this.#irqNo);
    this.#backend = ins.machine.charBackend(cfg.queryStringDef("Backend", `serial${String(ins.instance)}`));
    this.#timeoutTimer = ins.timer("rxtimeout", () => this.#onTimeout());
    this.#stat = {
      tx: ins.counter("TxBytes", "Bytes the guest transmitted", "bytes"),
      rx: ins.counter("RxBytes", "Bytes the guest received", "bytes"),
      irq: ins.counter("Irq", "Interrupt line assertions"),
      overrun: ins.counter("Overruns", "Bytes lost to a full RX FIFO (loopback)"),
      dropped: ins.counter("BacklogDropped", "Host bytes dropped because the backlog was full", "bytes"),
    };
    ins.ioPorts.map(
      this.#ioBase,
      8,
      { read: (off) => this.#read(off), write: (off, v) => this.#write(off, v) },
      { sizes: [1], name: `uart16550@${this.#ioBase.toString(16)}` },
    );
    this.#backend?.setReceiver((bytes) => this.receive(bytes));
    this.reset();
  }

  /** Master reset values (datasheet table): divisor and scratch are not affected. */
  reset(): void {
    this.ier = 0;
    this.lcr = 0;
    this.mcr = 0;
    this.fifoEnabled = false;
    this.trigger = 0;
    this.rx = [];
    this.overrun = false;
    this.threPending = false;
    this.timeoutPending = false;
    this.msrDelta = 0;
    this.#timeoutTimer.stop();
    this.#fill();
    this.#update();
  }

  destruct(): void {
    this.#backend?.setReceiver(null);
  }

  /**
   * Bytes from the host (the backend's receiver; must be called on the EMT). They queue in the
   * backlog and enter the RX FIFO as room appears. Ignored in loopback mode (the receiver input
   * is disconnected from the line), as on the chip.
   */
  receive(bytes: Uint8Array): void {
    if (this.mcr & MCR_LOOP) return;
    for (const b of bytes) {
      if (this.backlog.length >= BACKLOG_MAX) {
        this.#stat.dropped.value++;
        continue;
      }
      this.backlog.push(b);
    }
    if (this.#fill()) this.#armTimeout();
    this.#update();
  }

  #capacity(): number {
    return this.fifoEnabled ? FIFO_SIZE : 1;
  }

  /** Moves backlog bytes into the RX FIFO; true when any moved. */
  #fill(): boolean {
    let moved = false;
    while (this.backlog.length > 0 && this.rx.length < this.#capacity()) {
      this.rx.push(this.backlog.shift());
      moved = true;
    }
    return moved;
  }

  /** Four character times at the current line settings, in ns. */
  #charTimeoutNs(): number {
    const divisor = this.dll | (this.dlm << 8) || 0x10000;
    const dataBits = 5 + (this.lcr & 3);
    const stop = this.lcr & 4 ? (dataBits === 5 ? 1.5 : 2) : 1;
    const bits = 1 + dataBits + (this.lcr & 8 ? 1 : 0) + stop;
    return Math.ceil((4 * bits * 1e9 * divisor) / BAUD_BASE);
  }

  /** (Re)starts the character timeout while the FIFO holds data. */
  #armTimeout(): void {
    if (this.fifoEnabled && this.rx.length > 0) this.#timeoutTimer.setRelative(this.#charTimeoutNs());
    else this.#timeoutTimer.stop();
  }

  #onTimeout(): void {
    if (this.fifoEnabled && this.rx.length > 0) {
      this.timeoutPending = true;
      this.#update();
    }
  }

  /** Modem status inputs: wired to MCR in loopback, a connected line otherwise. */
  #msrLines(mcr = this.mcr): number {
    if (!(mcr & MCR_LOOP)) return MSR_CONNECTED;
    return (
      (mcr & MCR_RTS ? MSR_CTS : 0) |
      (mcr & MCR_DTR ? MSR_DSR : 0) |
      (mcr & MCR_OUT1 ? MSR_RI : 0) |
      (mcr & MCR_OUT2 ? MSR_DCD : 0)
    );
  }

  /** The highest-priority pending interrupt as IIR bits 3:0. */
  #source(): number {
    if (this.ier & IER_RLS && this.overrun) return IIR_RLS;
    if (this.ier & IER_RDA) {
      const level = this.fifoEnabled ? TRIGGER[this.trigger as 0 | 1 | 2 | 3] : 1;
      if (this.rx.length >= level) return IIR_RDA;
      if (this.timeoutPending) return IIR_TIMEOUT;
    }
    if (this.ier & IER_THRE && this.threPending) return IIR_THRE;
    if (this.ier & IER_MSR && this.msrDelta) return IIR_MSR;
    return IIR_NONE;
  }

  /**
   * Drives the IRQ line: INTR gated by OUT2 (the PC's tri-state buffer). In loopback mode the
   * OUT2 pin is held inactive, so the line is off.
   */
  #update(): void {
    const level = this.#source() !== IIR_NONE && (this.mcr & (MCR_OUT2 | MCR_LOOP)) === MCR_OUT2;
    if (level && !this.#irq.level) this.#stat.irq.value++;
    this.#irq.set(level);
  }

  #read(off: number): number {
    let v: number;
    switch (off) {
      case 0:
        if (this.lcr & LCR_DLAB) return this.dll;
        v = this.#readRbr();
        break;
      case 1:
        return this.lcr & LCR_DLAB ? this.dlm : this.ier;
      case 2: {
        const src = this.#source();
        // Reading IIR when THRE is the source clears it.
        if (src === IIR_THRE) this.threPending = false;
        v = src | (this.fifoEnabled ? IIR_FIFO : 0);
        break;
      }
      case 3:
        return this.lcr;
      case 4:
        return this.mcr;
      case 5:
        v = (this.rx.length > 0 ? LSR_DR : 0) | (this.overrun ? LSR_OE : 0) | LSR_THRE | LSR_TEMT;
        this.overrun = false;
        break;
      case 6:
        v = this.#msrLines() | this.msrDelta;
        this.msrDelta = 0;
        break;
      default:
        return this.scr;
    }
    this.#update();
    return v;
  }

  #readRbr(): number {
    const b = this.rx.shift();
    this.timeoutPending = false;
    this.#fill();
    this.#armTimeout();
    if (b === undefined) return 0;
    this.#stat.rx.value++;
    return b;
  }

  #write(off: number, v: number): void {
    switch (off) {
      case 0:
        if (this.lcr & LCR_DLAB) this.dll = v;
        else this.#transmit(v);
        break;
      case 1:
        if (this.lcr & LCR_DLAB) this.dlm = v;
        else {
          // Enabling ETBEI with THR empty raises THRE at once (drivers rely on it to start TX).
          if (v & IER_THRE && !(this.ier & IER_THRE)) this.threPending = true;
          this.ier = v & 0x0f;
        }
        break;
      case 2:
        this.#writeFcr(v);
        break;
      case 3:
        this.lcr = v;
        break;
      case 4:
        this.#writeMcr(v & 0x1f);
        break;
      case 5:
      case 6:
        break; // LSR and MSR are read-only (factory test writes ignored)
      default:
        this.scr = v;
    }
    this.#update();
  }

  #transmit(v: number): void {
    this.#stat.tx.value++;
    if (this.mcr & MCR_LOOP) {
      // Loopback: the transmitter shift register feeds the receiver.
      if (this.rx.length >= this.#capacity()) {
        this.overrun = true;
        this.#stat.overrun.value++;
      } else {
        this.rx.push(v);
        this.#armTimeout();
      }
    } else this.#backend?.write(Uint8Array.of(v));
    // Instant drain: THR is empty again.
    this.threPending = true;
  }

  #writeFcr(v: number): void {
    const enable = (v & FCR_ENABLE) !== 0;
    if (enable !== this.fifoEnabled) {
      // Changing the FIFO enable clears both FIFOs.
      this.rx = [];
      this.timeoutPending = false;
    }
    this.fifoEnabled = enable;
    if (enable) {
      this.trigger = v >> 6;
      if (v & FCR_CLEAR_RX) {
        this.rx = [];
        this.timeoutPending = false;
      }
    } else this.trigger = 0;
    this.#fill();
    this.#armTimeout();
  }

  #writeMcr(v: number): void {
    const before = this.#msrLines();
    this.mcr = v;
    const after = this.#msrLines();
    const changed = before ^ after;
    if (changed & MSR_CTS) this.msrDelta |= 0x01;
    if (changed & MSR_DSR) this.msrDelta |= 0x02;
    if (before & MSR_RI && !(after & MSR_RI)) this.msrDelta |= 0x04;
    if (changed & MSR_DCD) this.msrDelta |= 0x08;
  }

  /**
   * Unit layout (version 1): config part u16 IOBase, u8 IRQ; then u8 IER, LCR, MCR, SCR, DLL,
   * DLM; bool FIFO enabled; u8 trigger index; bytes RX FIFO; bytes host backlog; bool overrun,
   * THRE pending, timeout pending; u8 MSR deltas; RX-timeout deadline (bool armed + u64 ns).
   */
  saveState(w: SsmUnitWriter): void {
    // Config part (the backend is a constructor argument, never saved).
    w.putU16(this.#ioBase);
    w.putU8(this.#irqNo);
    // State.
    w.putU8(this.ier);
    w.putU8(this.lcr);
    w.putU8(this.mcr);
    w.putU8(this.scr);
    w.putU8(this.dll);
    w.putU8(this.dlm);
    w.putBool(this.fifoEnabled);
    w.putU8(this.trigger);
    w.putBytes(Uint8Array.from(this.rx));
    w.putBytes(this.backlog.toArray());
    w.putBool(this.overrun);
    w.putBool(this.threPending);
    w.putBool(this.timeoutPending);
    w.putU8(this.msrDelta);
    putDeadline(w, this.#timeoutTimer.deadline);
  }

  loadState(r: SsmUnitReader, version: number): void {
    checkVersion(r, version, SSM_MIN_VERSION, SSM_VERSION);
    checkConfig(r, "IOBase", r.getU16(), this.#ioBase);
    checkConfig(r, "IRQ", r.getU8(), this.#irqNo);
    const ier = r.getU8();
    if (ier & 0xf0) throw badState(r, `IER 0x${ier.toString(16)}`);
    this.ier = ier;
    this.lcr = r.getU8();
    const mcr = r.getU8();
    if (mcr & 0xe0) throw badState(r, `MCR 0x${mcr.toString(16)}`);
    this.mcr = mcr;
    this.scr = r.getU8();
    this.dll = r.getU8();
    this.dlm = r.getU8();
    this.fifoEnabled = r.getBool();
    const trigger = r.getU8();
    if (trigger > 3) throw badState(r, `RX trigger ${String(trigger)}`);
    this.trigger = trigger;
    const rx = r.getBytes(FIFO_SIZE);
    if (rx.length > this.#capacity()) throw badState(r, `RX FIFO holds ${String(rx.length)} bytes`);
    this.rx = [...rx];
    const backlog = r.getBytes(BACKLOG_MAX);
    this.backlog.clear();
    for (const b of backlog) this.backlog.push(b);
    this.overrun = r.getBool();
    this.threPending = r.getBool();
    this.timeoutPending = r.getBool();
    const delta = r.getU8();
    if (delta & 0xf0) throw badState(r, `MSR delta 0x${delta.toString(16)}`);
    this.msrDelta = delta;
    const deadline = getDeadline(r);
    // Re-derive: the timeout timer as saved, the IRQ level from the registers.
    if (deadline >= 0) this.#timeoutTimer.setDeadline(deadline);
    else this.#timeoutTimer.stop();
    this.#update();
  }

  info(out: InfoWriter): void {
    const h = (v: number): string => v.toString(16).padStart(2, "0");
    out.line(
      `io=${this.#ioBase.toString(16)} irq=${String(this.#irqNo)} ier=${h(this.ier)} lcr=${h(this.lcr)} mcr=${h(this.mcr)} divisor=${String(this.dll | (this.dlm << 8))} fifo=${this.fifoEnabled ? `on/trigger ${String(TRIGGER[this.trigger as 0 | 1 | 2 | 3])}` : "off"} rx=${String(this.rx.length)} backlog=${String(this.backlog.length)} backend=${this.#backend ? "yes" : "none"}`,
    );
  }
}

registerDevice({
  name: "serial",
  description: "16550A UART (COM1 0x3F8/IRQ 4, COM2 0x2F8/IRQ 3) on a char backend",
  ssmVersion: SSM_VERSION,
  ssmMinVersion: SSM_MIN_VERSION,
  configKeys: ["IOBase", "IRQ", "Backend"],
  maxInstances: 4,
  construct: (ins, cfg) => new Uart16550(ins, cfg),
});
