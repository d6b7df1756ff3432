/**
 * The device models of the PC. Importing this module registers every model with PDM.
 * `pcDevices` lists the instances of the default machine with their Config values.
 */
import "./pic8259/Pic8259.ts";
import "./pci/Pci.ts";
import "./pit8254/Pit8254.ts";
import "./rtc146818/Rtc146818.ts";
import "./uart16550/Uart16550.ts";
import "./i8042/I8042.ts";
import "./port92/Port92.ts";
import "./postcode/PostCode.ts";
import "./debugexit/DebugExit.ts";
import "./ferr/Ferr.ts";

/** One device instance of the default machine. */
export interface DefaultDevice {
  name: string;
  instance: number;
  config: Record<string, number | string>;
}

/** The devices of the default PC, in construction order (interrupt controller first). */
export const pcDevices: DefaultDevice[] = [
  { name: "i8259", instance: 0, config: {} },
  { name: "pci", instance: 0, config: {} },
  { name: "i8254", instance: 0, config: {} },
  { name: "mc146818", instance: 0, config: {} },
  { name: "serial", instance: 0, config: { IOBase: 0x3f8, IRQ: 4, Backend: "serial0" } },
  { name: "serial", instance: 1, config: { IOBase: 0x2f8, IRQ: 3, Backend: "serial1" } },
  { name: "i8042", instance: 0, config: {} },
  { name: "port92", instance: 0, config: {} },
  { name: "postcode", instance: 0, config: {} },
  { name: "ferr", instance: 0, config: {} },
];
