/**
 * PCI host bridge with configuration mechanism #1 at 0xCF8 (address) / 0xCFC–0xCFF (data), the
 * Intel 440FX host bridge (8086:1237) at 00:00.0 and the PIIX3 PCI-to-ISA bridge (8086:7000) at
 * 00:01.0, plus the PIIX3 reset control register at 0xCF9.
 *
 * References: PCI Local Bus Specification §3.2.2.3.2 (configuration mechanism #1: CONFIG_ADDRESS
 * bit 31 enable, bits 23:16 bus, 15:11 device, 10:8 function, 7:2 register); Intel 82441FX
 * (PMC) datasheet (ID, class 06 00 00, PAM/DRB/SMRAM registers); Intel 82371SB (PIIX3) datasheet
 * §2.2 (function 0 ID 7000h, class 06 01 00, header type 80h, PIRQRC[A:D] at 60h–63h default 80h,
 * reset control register at I/O CF9h).
 *
 * The guest driver's view (Linux arch/x86/pci/direct.c, early.c, irq.c): pci_check_type1 writes
 * 0x01 to 0xCFB, saves/writes 0x80000000 to 0xCF8 as a dword and reads it back; then
 * pci_sanity_check reads the class/vendor of 00:00.0..; the bus scan reads vendor IDs (0xFFFF =
 * absent) and header types (bit 7: probe functions 1–7); the PIIX IRQ router reads/writes 0x60–0x63.
 * Reboot through 0xCF9: write 0x02 then 0x06.
 */
import type { CfgmNode } from "../../cfgm/CfgmNode.ts";
import type { DevIns } from "../../pdm/DevIns.ts";
import { registerDevice } from "../../pdm/Pdm.ts";
import type { Device, InfoWriter } from "../../pdm/types.ts";
import type { SsmUnitReader, SsmUnitWriter } from "../../ssm/unit.ts";
import type { StamCounter } from "../../stam/Stam.ts";
import { checkConfig, checkVersion } from "../ssmutil.ts";
import { PciBus, PciFunction, attachPciBus, fmtDevfn, pciDevfn } from "./PciFunction.ts";

/** Current saved-state layout. */
const SSM_VERSION = 1;
/** Oldest layout loadState accepts. */
const SSM_MIN_VERSION = 1;

// CONFIG_ADDRESS (0xCF8, dword): bit 31 enable, 30:24 reserved (0), 23:16 bus, 15:11 device,
// 10:8 function, 7:2 register, 1:0 zero
const ADDR_ENABLE = 0x80000000;
const ADDR_MASK = 0x80fffffc;
// Reset control register (0xCF9, byte): bit 1 SRST (hard reset), bit 2 RCPU (reset on 0→1)
const RC_SRST = 0x02;
const RC_RCPU = 0x04;

/** PIIX3 PIRQ route control registers. */
export const PIIX3_PIRQRC = 0x60;

function makeI440fx(ramSize: number): PciFunction {
  const f = new PciFunction("i440fx", {
    vendorId: 0x8086,
    deviceId: 0x1237,
    revision: 0x02,
    classCode: 0x060000,
    headerType: 0x00,
    command: 0x0006,
    status: 0x0280,
  });
  // Device-specific registers 0x40–0xFF are held as written.
  // XXX(approx): PAM (0x59–0x5F) and SMRAM (0x72) do not remap memory; DRB is informational.
  f.setWritable(0x40, 0xc0);
  f.setU8(0x72, 0x02); // SMRAM: C_BASE_SEG = 010 (A0000h)
  const rows = Math.min(0xff, Math.ceil(ramSize / (8 * 1024 * 1024)));
  for (let i = 0; i < 8; i++) f.setU8(0x60 + i, rows); // DRB0–7 in 8 MB units, all in row 0
  return f;
}

function makePiix3(): PciFunction {
  const f = new PciFunction("piix3", {
    vendorId: 0x8086,
    deviceId: 0x7000,
    revision: 0x00,
    classCode: 0x060100,
    headerType: 0x80, // multi-function (IDE and USB are functions 1 and 2 on the real chip)
    command: 0x0007,
    status: 0x0200,
  });
  f.setWritable(0x40, 0xc0);
  f.setU8(0x4c, 0x4d); // IORT: ISA I/O recovery timer
  f.setU16(0x4e, 0x0003); // XBCS: X-bus chip select
  for (let i = 0; i < 4; i++) f.setU8(PIIX3_PIRQRC + i, 0x80); // PIRQ[A:D] routing disabled
  f.setWritable(PIIX3_PIRQRC, 4, 0x8f); // bits 6:4 reserved
  f.setU8(0x69, 0x02); // TOM: top of memory
  f.setU8(0x70, 0x80); // MBIRQ0 disabled
  f.setU8(0x71, 0x80); // MBIRQ1 disabled
  f.setU8(0x76, 0x0c); // MBDMA0
  f.setU8(0x77, 0x0c); // MBDMA1
  f.setU16(0x78, 0x0002); // PCSC
  f.setU8(0xa0, 0x08); // SMICNTL
  return f;
}

/** The PCI host bridge, i440FX and PIIX3 function 0 as one PDM device. */
export class PciHost implements Device {
  readonly #ins: DevIns;
  readonly bus = new PciBus();
  readonly i440fx: PciFunction;
  readonly piix3: PciFunction;
  /** CONFIG_ADDRESS. */
  address = 0;
  /** Reset control register (bit 1 held). */
  resetControl = 0;
  readonly #ramSize: number;
  readonly #stat: { cfgReads: StamCounter; cfgWrites: StamCounter; absent: StamCounter; resets: StamCounter };

  constructor(ins: DevIns, _cfg: CfgmNode) {
    this.#ins = ins;
    this.#ramSize = ins.mem.ramSize;
    this.i440fx = makeI440fx(this.#ramSize);
    this.piix3 = makePiix3();
    this.bus.register(pciDevfn(0, 0), this.i440fx);
    this.bus.register(pciDevfn(1, 0), this.piix3);
    attachPciBus(ins, this.bus);
    this.#stat = {
      cfgReads: ins.counter("ConfigReads", "Configuration space reads"),
      cfgWrites: ins.counter("ConfigWrites", "Configuration space writes"),
      absent: ins.counter("AbsentAccesses", "Configuration accesses to absent functions or disabled CONFIG_ADDRESS"),
      resets: ins.counter("Resets", "Resets through the reset control register 0xCF9"),
    };
    ins.ioPorts.map(
      0xcf8,
      8,
      { read: (off, size) => this.#read(off, size), write: (off, v, size) => this.#write(off, v, size) },
      { name: "pci-host" },
    );
    this.reset();
  }

  reset(): void {
    this.address = 0;
    this.resetControl = 0;
    const fresh = [makeI440fx(this.#ramSize), makePiix3()] as const;
    this.i440fx.config.set(fresh[0].config);
    this.piix3.config.set(fresh[1].config);
  }

  #read(off: number, size: 1 | 2 | 4): number {
    if (off < 4) {
      if (off === 0 && size === 4) return this.address >>> 0;
      if (off === 1 && size === 1) return this.resetControl;
      // Byte/word accesses to 0xCF8–0xCFB are not CONFIG_ADDRESS: nothing answers on the ISA side.
      return size === 4 ? 0xffffffff : (1 << (8 * size)) - 1;
    }
    this.#stat.cfgReads.value++;
    if (!(this.address & ADDR_ENABLE)) {
      this.#stat.absent.value++;
      return size === 4 ? 0xffffffff : (1 << (8 * size)) - 1;
    }
    const bus = (this.address >>> 16) & 0xff;
    const devfn = (this.address >>> 8) & 0xff;
    if (bus !== 0 || !this.bus.find(devfn)) this.#stat.absent.value++;
    return this.bus.read(bus, devfn, (this.address & 0xfc) + (off - 4), size);
  }

  #write(off: number, v: number, size: 1 | 2 | 4): void {
    if (off < 4) {
      if (off === 0 && size === 4) this.address = (v & ADDR_MASK) >>> 0;
      else if (off === 1 && size === 1) this.#writeResetControl(v);
      return;
    }
    this.#stat.cfgWrites.value++;
    if (!(this.address & ADDR_ENABLE)) {
      this.#stat.absent.value++;
      return;
    }
    const bus = (this.address >>> 16) & 0xff;
    const devfn = (this.address >>> 8) & 0xff;
    if (!this.bus.write(bus, devfn, (this.address & 0xfc) + (off - 4), v, size)) this.#stat.absent.value++;
  }

  /** 0xCF9: a 0→1 transition of RCPU resets the machine (SRST selects hard vs soft: same here). */
  #writeResetControl(v: number): void {
    const rising = (v & RC_RCPU) !== 0 && (this.resetControl & RC_RCPU) === 0;
    this.resetControl = v & RC_SRST;
    if (rising) {
      this.#stat.resets.value++;
      this.#ins.machine.requestReset("pci-cf9");
    }
  }

  /** PIIX3 PIRQ route for INTA#..INTD# (0..3): the ISA IRQ, or -1 when routing is disabled. */
  pirqRoute(pirq: number): number {
    const v = this.piix3.getU8(PIIX3_PIRQRC + (pirq & 3));
    return v & 0x80 ? -1 : v & 0x0f;
  }

  /**
   * Unit layout (version 1): config part u64 RAM size (the DRB values derive from it); then u32
   * CONFIG_ADDRESS, u8 reset control, 256 bytes i440FX config space, 256 bytes PIIX3 function 0.
   * Functions registered by other devices are saved in those devices' units.
   */
  saveState(w: SsmUnitWriter): void {
    // Config part: the RAM size the DRB registers were derived from.
    w.putU64(this.#ramSize);
    w.putU32(this.address);
    w.putU8(this.resetControl);
    this.i440fx.save(w);
    this.piix3.save(w);
  }

  loadState(r: SsmUnitReader, version: number): void {
    checkVersion(r, version, SSM_MIN_VERSION, SSM_VERSION);
    checkConfig(r, "RAM size", r.getU64(), this.#ramSize);
    this.address = (r.getU32() & ADDR_MASK) >>> 0;
    this.resetControl = r.getU8() & RC_SRST;
    this.i440fx.load(r);
    this.piix3.load(r);
  }

  info(out: InfoWriter): void {
    out.line(`CONFIG_ADDRESS=0x${this.address.toString(16).padStart(8, "0")}`);
    for (const [devfn, f] of this.bus.functions()) {
      out.line(
        `${fmtDevfn(devfn)} ${f.getU16(0).toString(16).padStart(4, "0")}:${f.getU16(2).toString(16).padStart(4, "0")} class ${f.getU8(0x0b).toString(16).padStart(2, "0")}${f.getU8(0x0a).toString(16).padStart(2, "0")} ${f.name}`,
      );
    }
    out.line(`PIRQ A-D: ${[0, 1, 2, 3].map((i) => String(this.pirqRoute(i))).join(" ")}`);
  }
}

registerDevice({
  name: "pci",
  description: "PCI host bridge (mechanism #1 at 0xCF8/0xCFC) with i440FX at 00:00.0 and PIIX3 at 00:01.0",
  ssmVersion: SSM_VERSION,
  ssmMinVersion: SSM_MIN_VERSION,
  configKeys: [],
  maxInstances: 1,
  construct: (ins, cfg) => new PciHost(ins, cfg),
});
