/**
 * v86 (npm package `v86`) as a benchmark peer, in this Node process: SeaBIOS and its VGA BIOS from
 * Debian's seabios package, the kernel and initrd given as bzimage/initrd, the wasm build named
 * explicitly, serial output from the serial0 byte events. Without ACPI the guest cannot power off,
 * so the run is stopped by the caller (stop() stops and destroys the emulator). Power-on is run()
 * after the emulator reported it loaded.
 */
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { processCpuSeconds, type GuestRun } from "./serial.ts";

export const SEABIOS = "/usr/share/seabios/bios.bin";
export const VGABIOS = "/usr/share/seabios/vgabios-stdvga.bin";

/** The v86 package's directory, or null when it is not installed. */
function v86Dir(): string | null {
  try {
    const req = createRequire(import.meta.url);
    return dirname(req.resolve("v86/package.json"));
  } catch {
    return null;
  }
}

/** Why v86 cannot run here, or null. */
export function v86Missing(): string | null {
  const dir = v86Dir();
  if (dir === null) return "npm package v86 not installed (npm i -D v86)";
  if (!existsSync(join(dir, "build", "v86.wasm"))) return `no build/v86.wasm in ${dir}`;
  for (const f of [SEABIOS, VGABIOS]) if (!existsSync(f)) return `${f} missing (apt-get install seabios)`;
  return null;
}

/** The installed v86 version (package.json). */
export function v86Version(): string {
  const dir = v86Dir();
  if (dir === null) return "";
  return (JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as { version?: string }).version ?? "";
}

function fileImage(path: string): { buffer: ArrayBuffer } {
  const b = readFileSync(path);
  const copy = new Uint8Array(b.byteLength);
  copy.set(b);
  return { buffer: copy.buffer };
}

/** Starts v86 on the kernel and initrd; resolves once the emulator runs. */
export async function startV86(kernel: string, initrd: string, cmdline: string, ramMiB: number): Promise<GuestRun> {
  const dir = v86Dir();
  if (dir === null) throw new Error("v86 is not installed");
  const { V86 } = await import("v86");
  const emulator = new V86({
    wasm_path: join(dir, "build", "v86.wasm"),
    memory_size: ramMiB * 1024 * 1024,
    vga_memory_size: 8 * 1024 * 1024,
    bios: fileImage(SEABIOS),
    vga_bios: fileImage(VGABIOS),
    bzimage: fileImage(kernel),
    initrd: fileImage(initrd),
    cmdline,
    autostart: false,
    disable_keyboard: true,
    disable_mouse: true,
    disable_speaker: true,
  });
  await new Promise<void>((resolve) => emulator.add_listener("emulator-loaded", () => resolve()));
  const listeners: ((bytes: Uint8Array) => void)[] = [];
  emulator.add_listener("serial0-output-byte", (byte: number) => {
    const one = Uint8Array.of(byte);
    for (const cb of listeners) cb(one);
  });
  const cpu0 = processCpuSeconds();
  const t0 = performance.now();
  await emulator.run();
  let stopped = false;
  return {
    t0,
    cpu0,
    cpuSeconds: processCpuSeconds,
    serial: {
      onData: (cb) => {
        listeners.push(cb);
      },
      write: (text) => emulator.serial0_send(text),
    },
    stop: async () => {
      if (stopped) return;
      stopped = true;
      await emulator.stop();
      await emulator.destroy();
    },
  };
}
