/**
 * PDM: the device interface (VirtualBox's PDMDEVREG, TinyEMU's access signature, vm-superio's
 * state split). A device is registered once (DeviceReg) and constructed per instance with its
 * DevIns (the services it may use) and its CFGM node.
 */
import type { CfgmNode } from "../cfgm/CfgmNode.ts";
import type { SsmUnitReader, SsmUnitWriter } from "../ssm/unit.ts";
import type { DevIns } from "./DevIns.ts";

/** A read/write handler for I/O ports or MMIO. `offset` is relative to the mapped base. */
export interface IoHandler {
  read(offset: number, size: 1 | 2 | 4): number;
  write(offset: number, value: number, size: 1 | 2 | 4): void;
}

/** Where a device writes text for `info`. */
export interface InfoWriter {
  line(text: string): void;
}

/** One device model, registered by name. */
export interface DeviceReg {
  /** Device name: the CFGM node under /Devices, the SSM unit name and the STAM prefix ("i8254"). */
  readonly name: string;
  readonly description: string;
  /** The unit version saveState() writes. */
  readonly ssmVersion: number;
  /** The oldest unit version loadState() accepts. */
  readonly ssmMinVersion: number;
  /** The keys accepted under the instance's Config node (validated before construct). */
  readonly configKeys: readonly string[];
  /** Most instances allowed (1 for chipset devices). */
  readonly maxInstances: number;
  construct(ins: DevIns, cfg: CfgmNode): Device;
}

/** A constructed device instance. */
export interface Device {
  /** Back to documented power-on values. */
  reset(): void;
  /** Writes the config part first, then the state. */
  saveState(w: SsmUnitWriter): void;
  /** Reads what saveState wrote (any version in [ssmMinVersion, ssmVersion]); throws VBoxError on bad data. */
  loadState(r: SsmUnitReader, version: number): void;
  /** Human-readable state dump. */
  info?(out: InfoWriter): void;
  /** Called when the VM is destroyed. */
  destruct?(): void;
}

/** The interrupt controller seen by the CPU (the PIC, later an APIC). */
export interface InterruptController {
  /** True when an interrupt is pending for the CPU (INTR asserted). */
  hasInterrupt(): boolean;
  /** The CPU's INTA cycle: returns the vector to deliver (and updates the controller's state). */
  acknowledge(): number;
}

/** A byte-stream backend for a serial port (terminal, file, socket); never saved. */
export interface CharBackend {
  /** Bytes from the guest. */
  write(bytes: Uint8Array): void;
  /** Installs the receiver of bytes for the guest (the device polls or is called). */
  setReceiver(fn: ((bytes: Uint8Array) => void) | null): void;
  /** Modem/ready lines as the backend sees them (optional). */
  close?(): void;
}

/**
 * What the machine offers devices beyond their own resources: reset, A20, power off, backends.
 * Implemented by the EMT for a real VM and by a fake in device tests.
 */
export interface MachineServices {
  /** Requests a machine reset (keyboard controller 0xFE, port 0x92 bit 0, triple fault). */
  requestReset(source: string): void;
  /** Requests power off (an exit device, ACPI). `status` is the exit status for `boxvm run`. */
  requestPowerOff(source: string, status?: number): void;
  /** Opens or closes the A20 gate. */
  setA20(enabled: boolean): void;
  /** Current state of the A20 gate. */
  getA20(): boolean;
  /** The char backend configured under a name ("serial0"), or null. */
  charBackend(name: string): CharBackend | null;
}
