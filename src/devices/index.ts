/**
 * The device models of the PC. Importing this module registers every model with PDM.
 * `pcDevices` lists the instances of the default machine with their Config values.
 */
import "./pic8259/Pic8259.ts";

/** One device instance of the default machine. */
export interface DefaultDevice {
  name: string;
  instance: number;
  config: Record<string, number | string>;
}

/** The devices of the default PC, in construction order (interrupt controller first). */
export const pcDevices: DefaultDevice[] = [{ name: "i8259", instance: 0, config: {} }];
