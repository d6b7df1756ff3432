/**
 * PDM: the device manager. Holds the registry of device models, constructs the instances the
 * configuration asks for (/Devices/<name>/<instance>/Config), and drives reset and saved state
 * over all of them in construction order.
 */
import type { CfgmNode } from "../cfgm/CfgmNode.ts";
import { VBoxError, Status } from "../vm/err.ts";
import type { SsmUnitReader, SsmUnitWriter } from "../ssm/unit.ts";
import { DevIns, type MachineContext } from "./DevIns.ts";
import type { Device, DeviceReg } from "./types.ts";

const registry = new Map<string, DeviceReg>();

/** Registers a device model (module load time). A second registration of a name is an error. */
export function registerDevice(reg: DeviceReg): void {
  const cur = registry.get(reg.name);
  if (cur && cur !== reg) throw new Error(`Device already registered: ${reg.name}`);
  registry.set(reg.name, reg);
}

/** A registered model by name. */
export function findDevice(name: string): DeviceReg | undefined {
  return registry.get(name);
}

/** The names of the registered models. */
export function registeredDevices(): string[] {
  return [...registry.keys()].sort();
}

/** One constructed instance. */
export interface DeviceInstance {
  reg: DeviceReg;
  ins: DevIns;
  dev: Device;
}

/** The devices of one machine. */
export class Pdm {
  readonly #instances: DeviceInstance[] = [];
  readonly ctx: MachineContext;
  constructor(ctx: MachineContext) {
    this.ctx = ctx;
  }

  /** Constructs one instance of a registered model. */
  construct(name: string, instance: number, node: CfgmNode): DeviceInstance {
    const reg = registry.get(name);
    if (!reg) {
      throw new VBoxError(
        Status.VERR_PDM_DEVICE_NOT_FOUND,
        `Unknown device at ${node.path}: ${name} (known: ${registeredDevices().join(", ")})`,
      );
    }
    if (instance >= reg.maxInstances) {
      throw new VBoxError(
        Status.VERR_INVALID_PARAMETER,
        `Too many instances of ${name} at ${node.path}: at most ${String(reg.maxInstances)}`,
      );
    }
    const cfg = node.ensureChild("Config");
    cfg.validateKeys(reg.configKeys);
    const ins = new DevIns(name, instance, cfg, this.ctx);
    const dev = reg.construct(ins, cfg);
    const di = { reg, ins, dev };
    this.#instances.push(di);
    return di;
  }

  /**
   * Constructs every instance under a /Devices node: each child is a model name, each grandchild
   * an instance number with an optional Config node.
   */
  constructAll(devices: CfgmNode): void {
    for (const model of devices.children()) {
      for (const inst of model.children()) {
        const n = Number(inst.name);
        if (!Number.isInteger(n) || n < 0) {
          throw new VBoxError(Status.VERR_CFGM_INVALID_NODE_PATH, `Device instance must be a number: ${inst.path}`);
        }
        inst.validateKeys([], ["Config"]);
        this.construct(model.name, n, inst);
      }
    }
  }

  /** The instances in construction order. */
  instances(): readonly DeviceInstance[] {
    return this.#instances;
  }

  /** The instance of a model, or undefined. */
  find(name: string, instance = 0): DeviceInstance | undefined {
    return this.#instances.find((d) => d.reg.name === name && d.ins.instance === instance);
  }

  /** Resets every device. */
  reset(): void {
    for (const d of this.#instances) d.dev.reset();
  }

  /** Saves one device's unit data. */
  save(d: DeviceInstance, w: SsmUnitWriter): void {
    d.dev.saveState(w);
  }

  /** Loads one device's unit, checking the version range and that the unit is read to its end. */
  load(d: DeviceInstance, r: SsmUnitReader, version: number): void {
    if (version < d.reg.ssmMinVersion || version > d.reg.ssmVersion) {
      throw new VBoxError(
        Status.VERR_SSM_UNSUPPORTED_DATA_UNIT_VERSION,
        `Saved state unit '${d.reg.name}' instance ${String(d.ins.instance)}: version ${String(version)} not in ${String(d.reg.ssmMinVersion)}..${String(d.reg.ssmVersion)}`,
      );
    }
    d.dev.loadState(r, version);
    r.expectEnd();
  }

  /** Calls every device's destructor. */
  destruct(): void {
    for (const d of this.#instances) d.dev.destruct?.();
  }
}
