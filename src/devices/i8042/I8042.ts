/**
 * Intel 8042 keyboard controller (PS/2) at 0x60 (data) and 0x64 (status/command), with an MF2
 * keyboard behind it on IRQ 1 and an auxiliary (mouse) port on IRQ 12 with no device attached.
 *
 * References: IBM PS/2 Hardware Interface Technical Reference, "Keyboard/Auxiliary Device
 * Controller" (status register, command byte, controller commands 0x20–0xFF, output port);
 * OSDev wiki "8042 PS/2 Controller" and "PS/2 Keyboard" (keyboard commands and responses).
 *
 * Aux port: present, empty. 0xD3 (write aux output buffer) loops the byte back as aux data with
 * IRQ 12, 0xA9 reports the interface OK, 0xA7/0xA8 flip command-byte bit 5; a byte sent to the
 * aux device with 0xD4 is answered 0xFE (resend: no device) on the aux channel, so the mouse
 * driver gives up at once instead of waiting for timeouts.
 *
 * The guest driver's view (Linux drivers/input/serio/i8042.c, atkbd.c): flush by reading 0x60
 * while status bit 0 is set; 0x20 read CTR; 0xAA self test → 0x55; 0x60 write CTR; 0xAB → 0x00;
 * aux checks 0xD3 0x5A → aux 0x5A, 0xA7/0xA8 + 0x20; IRQ test with 0xD3 0xA5; then atkbd:
 * 0xF2 → FA AB 41 (translated), 0xED LEDs, 0xF4 enable, 0xF5 disable, 0xFF reset → FA AA.
 * Reboot: 0xFE (pulse reset line). A20: 0xD1 + output port byte (bit 1).
 */
import type { CfgmNode } from "../../cfgm/CfgmNode.ts";
import type { DevIns } from "../../pdm/DevIns.ts";
import type { IrqLine } from "../../pdm/IrqLine.ts";
import { registerDevice } from "../../pdm/Pdm.ts";
import type { Device, InfoWriter } from "../../pdm/types.ts";
import type { SsmUnitReader, SsmUnitWriter } from "../../ssm/unit.ts";
import type { StamCounter } from "../../stam/Stam.ts";
import { badState, checkVersion, getU8Max } from "../ssmutil.ts";

/** Current saved-state layout. */
const SSM_VERSION = 1;
/** Oldest layout loadState accepts. */
const SSM_MIN_VERSION = 1;

// Status register (port 0x64 read)
//   bit 0 OBF   output buffer full (data for the host at 0x60)
//   bit 1 IBF   input buffer full (never: commands complete at once)
//   bit 2 SYS   system flag (command byte bit 2)
//   bit 3 A2    last write was a command (0x64) rather than data (0x60)
//   bit 4 INH   1 = keyboard not inhibited
//   bit 5 AUXB  output buffer holds aux data
//   bit 6 TO    timeout error
//   bit 7 PERR  parity error
const ST_OBF = 0x01;
const ST_SYS = 0x04;
const ST_A2 = 0x08;
const ST_INH = 0x10;
const ST_AUXB = 0x20;
// Command byte (controller RAM byte 0)
//   bit 0 keyboard interrupt (IRQ 1) enable   bit 1 aux interrupt (IRQ 12) enable
//   bit 2 system flag   bit 4 keyboard disabled   bit 5 aux disabled   bit 6 translate to set 1
const CB_KBD_INT = 0x01;
const CB_AUX_INT = 0x02;
const CB_SYS = 0x04;
const CB_KBD_DIS = 0x10;
const CB_AUX_DIS = 0x20;
const CB_XLATE = 0x40;
// Output port (0xD0/0xD1): bit 0 system reset (active low), bit 1 A20 gate,
// bit 4 output buffer full (IRQ 1), bit 5 aux output buffer full (IRQ 12)
const OP_RESET = 0x01;
const OP_A20 = 0x02;

/** Keyboard responses. */
const KBD_ACK = 0xfa;
const KBD_RESEND = 0xfe;
const KBD_BAT_OK = 0xaa;
const KBD_ECHO = 0xee;

/** Bytes queued for the host beyond the output buffer; older input is dropped past this. */
const QUEUE_MAX = 64;

/** A controller command that takes a data byte through 0x60. */
const Pending = {
  NONE: 0,
  WRITE_RAM: 1, // 0x60–0x7F
  WRITE_OUTPUT: 2, // 0xD1
  WRITE_KBD_OBUF: 3, // 0xD2
  WRITE_AUX_OBUF: 4, // 0xD3
  WRITE_AUX: 5, // 0xD4
} as const;
type Pending = (typeof Pending)[keyof typeof Pending];

/** A keyboard command that takes a parameter byte. */
const KbdPending = { NONE: 0, LEDS: 1, TYPEMATIC: 2, SCANSET: 3 } as const;
type KbdPending = (typeof KbdPending)[keyof typeof KbdPending];

/** The 8042 and its keyboard as one PDM device. */
export class I8042 implements Device {
  readonly #ins: DevIns;
  readonly #irqKbd: IrqLine;
  readonly #irqAux: IrqLine;
  /** Bytes for the host: value | 0x100 when from the aux port. The head is the output buffer. */
  queue: number[] = [];
  /** Controller RAM (byte 0 is the command byte). */
  readonly ram = new Uint8Array(32);
  /** Output port (A20, reset). */
  outputPort = OP_RESET | OP_A20;
  /** Last write went to 0x64. */
  lastWasCommand = false;
  pending: Pending = Pending.NONE;
  /** RAM index for a pending 0x60–0x7F write. */
  pendingIndex = 0;
  // The keyboard.
  kbdPending: KbdPending = KbdPending.NONE;
  /** Scanning enabled (0xF4/0xF5). */
  kbdScanning = true;
  kbdLeds = 0;
  kbdTypematic = 0x2b;
  kbdScanSet = 2;
  /** Last byte the keyboard sent (for 0xFE resend). */
  kbdLast = KBD_ACK;
  /** Translation saw a 0xF0 break prefix. */
  xlateBreak = false;
  readonly #stat: {
    cmds: StamCounter;
    unknown: StamCounter;
    kbdCmds: StamCounter;
    resets: StamCounter;
    dropped: StamCounter;
  };

  constructor(ins: DevIns, _cfg: CfgmNode) {
    this.#ins = ins;
    this.#irqKbd = ins.irq(1);
    this.#irqAux = ins.irq(12);
    this.#stat = {
      cmds: ins.counter("Commands", "Controller commands (port 0x64)"),
      unknown: ins.counter("UnknownCommands", "Controller or keyboard commands not implemented"),
      kbdCmds: ins.counter("KbdCommands", "Bytes sent to the keyboard"),
      resets: ins.counter("ResetPulses", "System resets through the output port"),
      dropped: ins.counter("Dropped", "Output bytes dropped because the queue was full"),
    };
    ins.ioPorts.map(
      0x60,
      1,
      { read: () => this.#readData(), write: (_o, v) => this.#writeData(v) },
      { sizes: [1], name: "i8042-data" },
    );
    ins.ioPorts.map(
      0x64,
      1,
      { read: () => this.#readStatus(), write: (_o, v) => this.#command(v) },
      { sizes: [1], name: "i8042-cmd" },
    );
    this.reset();
  }

  /** Power-on: command byte as the BIOS leaves it (IRQ 1, SYS, translate), keyboard defaults. */
  reset(): void {
    this.queue = [];
    this.ram.fill(0);
    this.ram[0] = CB_KBD_INT | CB_SYS | CB_XLATE;
    this.outputPort = OP_RESET | OP_A20;
    this.lastWasCommand = false;
    this.pending = Pending.NONE;
    this.pendingIndex = 0;
    this.#kbdDefaults();
    this.kbdScanning = true;
    this.kbdPending = KbdPending.NONE;
    this.kbdLeds = 0;
    this.kbdLast = KBD_ACK;
    this.xlateBreak = false;
    this.#update();
  }

  #kbdDefaults(): void {
    this.kbdTypematic = 0x2b;
    this.kbdScanSet = 2;
  }

  get #cmdByte(): number {
    return this.ram[0]!;
  }

  /** Queues a byte for the host (from the keyboard, the aux port or the controller itself). */
  #push(b: number, aux: boolean): void {
    if (this.queue.length >= QUEUE_MAX) {
      this.#stat.dropped.value++;
      return;
    }
    this.queue.push((b & 0xff) | (aux ? 0x100 : 0));
    this.#update();
  }

  /** A keyboard byte (remembered for 0xFE resend). */
  #kbdSend(b: number): void {
    this.kbdLast = b;
    this.#push(b, false);
  }

  /**
   * Scan codes from the host keyboard (set 2 bytes, or set 1 when translation is off and the
   * guest asked for it). Dropped while the keyboard is disabled or not scanning.
   */
  sendScancodes(bytes: readonly number[]): void {
    if (!this.kbdScanning || this.#cmdByte & CB_KBD_DIS) return;
    for (const b of bytes) {
      if (!(this.#cmdByte & CB_XLATE)) {
        this.#push(b, false);
        continue;
      }
      // The controller's set 2 → set 1 translation: 0xF0 sets the break bit of the next code.
      // XXX(approx): only the main block's codes are in the table; others pass through as is.
      if (b === 0xf0) {
        this.xlateBreak = true;
        continue;
      }
      const t = SET2_TO_SET1[b] ?? b;
      this.#push(this.xlateBreak ? t | 0x80 : t, false);
      this.xlateBreak = false;
    }
  }

  /** IRQ 1 / IRQ 12 follow the output buffer and the command byte's enables. */
  #update(): void {
    const head = this.queue[0];
    const cb = this.#cmdByte;
    this.#irqKbd.set(head !== undefined && head < 0x100 && (cb & CB_KBD_INT) !== 0);
    this.#irqAux.set(head !== undefined && head >= 0x100 && (cb & CB_AUX_INT) !== 0);
  }

  #readStatus(): number {
    const head = this.queue[0];
    return (
      (head !== undefined ? ST_OBF : 0) |
      (head !== undefined && head >= 0x100 ? ST_AUXB : 0) |
      (this.#cmdByte & CB_SYS ? ST_SYS : 0) |
      (this.lastWasCommand ? ST_A2 : 0) |
      ST_INH
    );
  }

  /** Port 0x60 read: takes the output buffer; the next queued byte moves in (a new IRQ edge). */
  #readData(): number {
    const head = this.queue.shift();
    if (head === undefined) {
      // An empty output buffer reads the last byte again on real controllers; we read 0.
      return 0;
    }
    // Lower the lines first so the next byte makes a fresh edge.
    this.#irqKbd.lower();
    this.#irqAux.lower();
    this.#update();
    return head & 0xff;
  }

  #command(v: number): void {
    this.lastWasCommand = true;
    this.#stat.cmds.value++;
    this.pending = Pending.NONE;
    if (v >= 0x20 && v <= 0x3f) {
      this.#push(this.ram[v & 0x1f]!, false);
      return;
    }
    if (v >= 0x60 && v <= 0x7f) {
      this.pending = Pending.WRITE_RAM;
      this.pendingIndex = v & 0x1f;
      return;
    }
    if (v >= 0xf0) {
      // Pulse output port lines for 6 µs: bit 0 clear = pulse the reset line.
      if (!(v & 1)) this.#systemReset();
      return;
    }
    switch (v) {
      case 0xa7: // disable aux interface
        this.ram[0] = this.#cmdByte | CB_AUX_DIS;
        break;
      case 0xa8: // enable aux interface
        this.ram[0] = this.#cmdByte & ~CB_AUX_DIS;
        break;
      case 0xa9: // aux interface test: 0 = no error
        this.#push(0x00, false);
        break;
      case 0xaa: // controller self test
        this.#push(0x55, false);
        break;
      case 0xab: // keyboard interface test
        this.#push(0x00, false);
        break;
      case 0xad: // disable keyboard
        this.ram[0] = this.#cmdByte | CB_KBD_DIS;
        break;
      case 0xae: // enable keyboard
        this.ram[0] = this.#cmdByte & ~CB_KBD_DIS;
        break;
      case 0xc0: // read input port: keyboard not inhibited, colour display
        this.#push(0x80, false);
        break;
      case 0xd0: {
        const head = this.queue[0];
        const obf = head !== undefined ? (head >= 0x100 ? 0x20 : 0x10) : 0;
        this.#push((this.outputPort & 0xcf) | obf, false);
        break;
      }
      case 0xd1:
        this.pending = Pending.WRITE_OUTPUT;
        break;
      case 0xd2:
        this.pending = Pending.WRITE_KBD_OBUF;
        break;
      case 0xd3:
        this.pending = Pending.WRITE_AUX_OBUF;
        break;
      case 0xd4:
        this.pending = Pending.WRITE_AUX;
        break;
      case 0xdd: // A20 off (HP Vectra extension)
        this.#writeOutputPort(this.outputPort & ~OP_A20);
        break;
      case 0xdf: // A20 on
        this.#writeOutputPort(this.outputPort | OP_A20);
        break;
      case 0xe0: // read test inputs
        this.#push(0x00, false);
        break;
      default:
        this.#stat.unknown.value++;
    }
    this.#update();
  }

  #writeData(v: number): void {
    this.lastWasCommand = false;
    const p = this.pending;
    this.pending = Pending.NONE;
    switch (p) {
      case Pending.WRITE_RAM:
        this.ram[this.pendingIndex] = v;
        break;
      case Pending.WRITE_OUTPUT:
        this.#writeOutputPort(v);
        break;
      case Pending.WRITE_KBD_OBUF:
        this.#push(v, false);
        break;
      case Pending.WRITE_AUX_OBUF:
        this.#push(v, true);
        break;
      case Pending.WRITE_AUX:
        // No aux device: every byte is answered "resend".
        // XXX(approx): a real controller may also set the timeout bit; Linux's psmouse probe
        // fails the same way on either.
        this.#push(KBD_RESEND, true);
        break;
      default:
        // Data to the keyboard. XXX(approx): the keyboard answers even while its interface is
        // disabled in the command byte (a real one would wait for its clock line).
        this.#keyboard(v);
    }
    this.#update();
  }

  #writeOutputPort(v: number): void {
    const a20 = (v & OP_A20) !== 0;
    this.outputPort = v | OP_RESET;
    if (a20 !== this.#ins.machine.getA20()) this.#ins.machine.setA20(a20);
    if (!(v & OP_RESET)) this.#systemReset();
  }

  #systemReset(): void {
    this.#stat.resets.value++;
    this.#ins.machine.requestReset("i8042");
  }

  /** A byte for the keyboard: a command or the parameter of the previous command. */
  #keyboard(v: number): void {
    this.#stat.kbdCmds.value++;
    const p = this.kbdPending;
    this.kbdPending = KbdPending.NONE;
    if (p !== KbdPending.NONE && v < 0xed) {
      switch (p) {
        case KbdPending.LEDS:
          this.kbdLeds = v & 7;
          break;
        case KbdPending.TYPEMATIC:
          this.kbdTypematic = v & 0x7f;
          break;
        default:
          if (v === 0) {
            this.#kbdSend(KBD_ACK);
            this.#kbdSend(this.kbdScanSet);
            return;
          }
          if (v <= 3) this.kbdScanSet = v;
      }
      this.#kbdSend(KBD_ACK);
      return;
    }
    switch (v) {
      case 0xed: // set LEDs
        this.kbdPending = KbdPending.LEDS;
        this.#kbdSend(KBD_ACK);
        break;
      case 0xee: // echo
        this.#kbdSend(KBD_ECHO);
        break;
      case 0xf0: // get/set scan code set
        this.kbdPending = KbdPending.SCANSET;
        this.#kbdSend(KBD_ACK);
        break;
      case 0xf2: // identify: MF2 keyboard (0x83 translates to 0x41)
        this.#kbdSend(KBD_ACK);
        this.#kbdSend(0xab);
        this.#kbdSend(this.#cmdByte & CB_XLATE ? 0x41 : 0x83);
        break;
      case 0xf3: // typematic rate/delay
        this.kbdPending = KbdPending.TYPEMATIC;
        this.#kbdSend(KBD_ACK);
        break;
      case 0xf4: // enable scanning
        this.kbdScanning = true;
        this.#kbdSend(KBD_ACK);
        break;
      case 0xf5: // disable scanning and restore defaults
        this.kbdScanning = false;
        this.#kbdDefaults();
        this.#kbdSend(KBD_ACK);
        break;
      case 0xf6: // set defaults
        this.#kbdDefaults();
        this.#kbdSend(KBD_ACK);
        break;
      case 0xf7:
      case 0xf8:
      case 0xf9:
      case 0xfa:
      case 0xfb:
      case 0xfc:
      case 0xfd: // scan set 3 key types: accepted, no effect
        this.#kbdSend(KBD_ACK);
        break;
      case 0xfe: // resend
        this.#push(this.kbdLast, false);
        break;
      case 0xff: // reset and self test (BAT)
        this.#kbdDefaults();
        this.kbdLeds = 0;
        this.kbdScanning = true;
        this.#kbdSend(KBD_ACK);
        this.#kbdSend(KBD_BAT_OK);
        break;
      default:
        this.#stat.unknown.value++;
        this.#kbdSend(KBD_RESEND);
    }
  }

  /**
   * Unit layout (version 1), no config part: u8 queue length + u16 per queued byte (bit 8 =
   * aux); 32 bytes controller RAM (byte 0 = command byte); u8 output port; bool last write was a
   * command; u8 pending controller command + u8 RAM index; u8 pending keyboard command; bool
   * scanning; u8 LEDs, typematic, scan set, last keyboard byte; bool translation break prefix.
   */
  saveState(w: SsmUnitWriter): void {
    // No config part: the controller has no configuration.
    w.putU8(this.queue.length);
    for (const q of this.queue) w.putU16(q);
    w.putRaw(this.ram);
    w.putU8(this.outputPort);
    w.putBool(this.lastWasCommand);
    w.putU8(this.pending);
    w.putU8(this.pendingIndex);
    w.putU8(this.kbdPending);
    w.putBool(this.kbdScanning);
    w.putU8(this.kbdLeds);
    w.putU8(this.kbdTypematic);
    w.putU8(this.kbdScanSet);
    w.putU8(this.kbdLast);
    w.putBool(this.xlateBreak);
  }

  loadState(r: SsmUnitReader, version: number): void {
    checkVersion(r, version, SSM_MIN_VERSION, SSM_VERSION);
    const n = getU8Max(r, "queue length", QUEUE_MAX);
    const queue: number[] = [];
    for (let i = 0; i < n; i++) {
      const q = r.getU16();
      if (q > 0x1ff) throw badState(r, `queued byte 0x${q.toString(16)}`);
      queue.push(q);
    }
    this.queue = queue;
    this.ram.set(r.getRaw(32));
    this.outputPort = r.getU8() | OP_RESET;
    this.lastWasCommand = r.getBool();
    this.pending = getU8Max(r, "pending command", Pending.WRITE_AUX) as Pending;
    this.pendingIndex = getU8Max(r, "RAM index", 31);
    this.kbdPending = getU8Max(r, "keyboard pending command", KbdPending.SCANSET) as KbdPending;
    this.kbdScanning = r.getBool();
    this.kbdLeds = getU8Max(r, "LEDs", 7);
    this.kbdTypematic = getU8Max(r, "typematic", 0x7f);
    const set = r.getU8();
    if (set < 1 || set > 3) throw badState(r, `scan code set ${String(set)}`);
    this.kbdScanSet = set;
    this.kbdLast = r.getU8();
    this.xlateBreak = r.getBool();
    // Re-derive: IRQ levels. A20 is machine state restored with the memory, not pushed from here.
    this.#irqKbd.lower();
    this.#irqAux.lower();
    this.#update();
  }

  info(out: InfoWriter): void {
    const h = (v: number): string => v.toString(16).padStart(2, "0");
    out.line(
      `status=${h(this.#readStatus())} cmdbyte=${h(this.#cmdByte)} outport=${h(this.outputPort)} queue=[${this.queue.map((q) => (q >= 0x100 ? "aux:" : "") + h(q & 0xff)).join(" ")}] kbd: scanning=${String(this.kbdScanning)} set=${String(this.kbdScanSet)} leds=${String(this.kbdLeds)}`,
    );
  }
}

/** Set 2 make codes → set 1 (letters, digits, Enter, Space, Backspace, Esc, Tab, shifts, Ctrl, Alt). */
// prettier-ignore
const SET2_TO_SET1: Record<number, number> = {
  0x76: 0x01, 0x16: 0x02, 0x1e: 0x03, 0x26: 0x04, 0x25: 0x05, 0x2e: 0x06, 0x36: 0x07, 0x3d: 0x08,
  0x3e: 0x09, 0x46: 0x0a, 0x45: 0x0b, 0x4e: 0x0c, 0x55: 0x0d, 0x66: 0x0e, 0x0d: 0x0f, 0x15: 0x10,
  0x1d: 0x11, 0x24: 0x12, 0x2d: 0x13, 0x2c: 0x14, 0x35: 0x15, 0x3c: 0x16, 0x43: 0x17, 0x44: 0x18,
  0x4d: 0x19, 0x54: 0x1a, 0x5b: 0x1b, 0x5a: 0x1c, 0x14: 0x1d, 0x1c: 0x1e, 0x1b: 0x1f, 0x23: 0x20,
  0x2b: 0x21, 0x34: 0x22, 0x33: 0x23, 0x3b: 0x24, 0x42: 0x25, 0x4b: 0x26, 0x4c: 0x27, 0x52: 0x28,
  0x0e: 0x29, 0x12: 0x2a, 0x5d: 0x2b, 0x1a: 0x2c, 0x22: 0x2d, 0x21: 0x2e, 0x2a: 0x2f, 0x32: 0x30,
  0x31: 0x31, 0x3a: 0x32, 0x41: 0x33, 0x49: 0x34, 0x4a: 0x35, 0x59: 0x36, 0x11: 0x38, 0x29: 0x39,
  0x58: 0x3a,
};

registerDevice({
  name: "i8042",
  description: "Intel 8042 PS/2 keyboard controller (0x60/0x64, IRQ 1/12) with an MF2 keyboard",
  ssmVersion: SSM_VERSION,
  ssmMinVersion: SSM_MIN_VERSION,
  configKeys: [],
  maxInstances: 1,
  construct: (ins, cfg) => new I8042(ins, cfg),
});
