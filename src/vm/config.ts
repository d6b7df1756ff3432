/**
 * The VM's configuration: the default machine, JSON config files mapped onto the CFGM tree, the
 * keys the VM itself accepts at the root, and the canonical JSON form saved states compare.
 *
 * Root of the tree:
 *   Name      string   the VM's name (informational)
 *   RamSize   integer  guest RAM in bytes, a multiple of 4 KiB, 1 MiB .. 3 GiB (default 128 MiB)
 *   Devices/  node     /Devices/<model>/<instance>/Config/... (PDM; each device validates its keys)
 *   Boot/     node     read by the loader (src/loader/boot.ts), which validates it: Bios, Kernel,
 *                      KernelFormat, Initrd, Cmdline (strings) and HostDecompress (boolean 0/1,
 *                      default 1: a Linux kernel's XZ payload is decompressed on the host and the
 *                      CPU starts in the decompressed kernel; 0 runs its decompressor in the guest)
 *                      and RngSeed (boolean 0/1, default 1: 32 host-random bytes for Linux's RNG as
 *                      a SETUP_RNG_SEED setup_data entry)
 */
import { readFileSync } from "node:fs";
import { CfgmNode, cfgmFromObject } from "../cfgm/CfgmNode.ts";
import { Status, VBoxError } from "./err.ts";

/** Default RAM size: 128 MiB. */
export const DEFAULT_RAM_SIZE = 128 * 1024 * 1024;
/** Smallest RAM accepted (1 MiB). */
export const MIN_RAM_SIZE = 1024 * 1024;
/** Largest RAM accepted (3 GiB, below the PCI hole). */
export const MAX_RAM_SIZE = 0xc0000000;

/** Value names the VM accepts at the root. */
export const rootValueKeys: readonly string[] = ["Name", "RamSize"];
/** Child nodes the VM accepts at the root. */
export const rootNodeKeys: readonly string[] = ["Devices", "Boot"];

/** One device instance of a machine description. */
export interface MachineDevice {
  name: string;
  instance: number;
  config: Record<string, number | string>;
}

/** Writes the default machine (RAM size and the given devices) into a root node. */
export function applyDefaultMachine(root: CfgmNode, devices: readonly MachineDevice[]): CfgmNode {
  if (root.queryValue("RamSize") === undefined) root.insertInteger("RamSize", DEFAULT_RAM_SIZE);
  if (!root.getChild("Devices")) {
    const devs = root.ensureChild("Devices");
    for (const d of devices) {
      const cfg = devs.ensureChild(`${d.name}/${String(d.instance)}/Config`);
      for (const [k, v] of Object.entries(d.config)) {
        if (typeof v === "number") cfg.insertInteger(k, v);
        else cfg.insertString(k, v);
      }
    }
  }
  return root;
}

/**
 * Reads a JSON config (a file path or an already parsed object) onto a tree. Errors are
 * VBoxErrors naming the file and the path inside it.
 */
export function configFromJson(config: string | object, root = new CfgmNode()): CfgmNode {
  let obj: unknown = config;
  let where = "configuration";
  if (typeof config === "string") {
    where = config;
    let text: string;
    try {
      text = readFileSync(config, "utf8");
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new VBoxError(
        code === "ENOENT" ? Status.VERR_FILE_NOT_FOUND : Status.VERR_OPEN_FAILED,
        `Cannot read configuration file ${config}: ${(e as Error).message}`,
      );
    }
    try {
      obj = JSON.parse(text) as unknown;
    } catch (e) {
      throw new VBoxError(Status.VERR_INVALID_PARAMETER, `Configuration file ${config} is not valid JSON: ${(e as Error).message}`);
    }
  }
  try {
    return cfgmFromObject(obj, root);
  } catch (e) {
    if (e instanceof VBoxError && where !== "configuration") throw new VBoxError(e.rc, `${where}: ${e.message}`);
    throw e;
  }
}

/** Checks the root keys and the RAM size; throws a VBoxError naming the path and the problem. */
export function validateRootConfig(root: CfgmNode): void {
  root.validateKeys(rootValueKeys, rootNodeKeys);
  root.queryStringDef("Name", "");
  const ram = root.queryIntegerDef("RamSize", DEFAULT_RAM_SIZE);
  if (ram < MIN_RAM_SIZE || ram > MAX_RAM_SIZE || ram % 4096 !== 0) {
    throw new VBoxError(
      Status.VERR_OUT_OF_RANGE,
      `Invalid /RamSize: ${String(ram)} (a multiple of 4096 from ${String(MIN_RAM_SIZE)} to ${String(MAX_RAM_SIZE)})`,
    );
  }
  const devices = root.getChild("Devices");
  if (devices) {
    for (const model of devices.children()) {
      if (model.valueNames().length > 0) {
        throw new VBoxError(
          Status.VERR_CFGM_CONFIG_UNKNOWN_VALUE,
          `Unexpected value under ${model.path}: ${model.valueNames()[0] ?? ""} (a device node holds instance nodes 0, 1, ...)`,
        );
      }
    }
  }
}

/** The configuration as canonical JSON (keys sorted, bytes as base64): what a saved state compares. */
export function canonicalConfig(root: CfgmNode): string {
  const walk = (n: CfgmNode): Record<string, unknown> => {
    const o: Record<string, unknown> = {};
    const keys = [...n.valueNames(), ...n.children().map((c) => c.name)].sort();
    for (const k of keys) {
      const child = n.getChild(k);
      if (child && n.children().includes(child)) o[k] = walk(child);
      else {
        const v = n.queryValue(k);
        o[k] = v instanceof Uint8Array ? { base64: Buffer.from(v).toString("base64") } : v;
      }
    }
    return o;
  };
  return JSON.stringify(walk(root));
}
