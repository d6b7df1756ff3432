/**
 * `boxvm serve`: runs VMs in this process and serves a page to watch and drive them from a
 * browser (src/web/): each VM's serial console in a terminal, its controls, statistics, errors.
 *
 *   boxvm serve --demo                         the demo guest, on http://127.0.0.1:7080/?token=…
 *   boxvm serve --kernel bzImage --initrd rd.gz --append console=ttyS0
 *   boxvm serve --config a.json --config b.json    one VM per JSON config (as VM.create takes)
 *   boxvm serve --demo --count 3               three VMs of the same machine
 *   boxvm serve --load state.sav [--start]     a saved machine, loaded (and resumed); Save writes
 *                                              back to that file
 *
 * The guest options are `boxvm run`'s (its planBoot and configureRunMachine). The server listens
 * on 127.0.0.1 unless --host says otherwise and prints a URL with a random access token; every
 * request without it is refused. Save and Load use one file per VM under --state-dir.
 */
import type { Command } from "commander";
import { readFileSync } from "node:fs";
import { basename, join, resolve } from "node:path";
import { isLoopbackHost } from "../../web/access.ts";
import { WebServer } from "../../web/server.ts";
import { VmSession, type VmSpec } from "../../web/session.ts";
import { configureRunMachine, planBoot, type RunOptions } from "./run.ts";
import { cacheRoot } from "./image.ts";
import { inspectStateFile } from "../../ssm/SsmFile.ts";

const MiB = 1024 * 1024;

/** Parsed options. */
export interface ServeOptions {
  config?: string[];
  port: string;
  host: string;
  count: string;
  stateDir?: string;
  scrollback: string;
  start?: boolean;
  load?: string;
  // boxvm run's guest options
  bios?: string;
  kernel?: string;
  initrd?: string;
  append?: string;
  mem: string;
  post?: boolean;
  demo?: boolean;
  fetch: boolean;
}

/** A file-name-safe form of a VM name. */
function fileSafe(name: string): string {
  return name.replace(/[^A-Za-z0-9._-]+/g, "_").slice(0, 64) || "vm";
}

/** Parses an integer option in a range; throws naming the option. */
export function intOption(name: string, s: string, lo: number, hi: number): number {
  const n = Number(s);
  if (!Number.isInteger(n) || n < lo || n > hi)
    throw new Error(`Bad ${name} ${JSON.stringify(s)}: an integer from ${String(lo)} to ${String(hi)}`);
  return n;
}

/** The VMs to create, from --config files or from boxvm run's guest options. */
export async function planVms(o: ServeOptions, log: (s: string) => void): Promise<VmSpec[]> {
  const count = intOption("--count", o.count, 1, 16);
  const stateDir = resolve(o.stateDir ?? join(cacheRoot(), "serve"));
  const specs: VmSpec[] = [];
  const names = new Set<string>();
  const unique = (name: string): string => {
    let n = name;
    for (let i = 2; names.has(n); i++) n = `${name}-${String(i)}`;
    names.add(n);
    return n;
  };
  const stateFile = (name: string): string => join(stateDir, `${fileSafe(name)}.sav`);
  if (o.load !== undefined) {
    if (
      (o.config && o.config.length > 0) ||
      o.kernel ||
      o.bios ||
      o.initrd ||
      o.append !== undefined ||
      o.demo === true
    ) {
      throw new Error(
        "--load serves the saved machine as it was: it takes no --config, --kernel, --bios, --initrd, --append or --demo",
      );
    }
    if (count !== 1) throw new Error("--load serves one saved machine: it takes no --count");
    const file = resolve(o.load);
    const report = await inspectStateFile(file);
    if (report.error || !report.header) {
      throw new Error(`${o.load}: ${report.error ? `${report.error.code}: ${report.error.message}` : "no header"}`);
    }
    const config = JSON.parse(report.header.config) as Record<string, unknown>;
    const own = config["Name"];
    return [
      {
        name: unique(typeof own === "string" && own !== "" ? own : basename(file).replace(/\.sav$/i, "")),
        what: `the machine saved in ${file}, ${String(report.header.ramSize / MiB)} MiB`,
        create: { config },
        stateFile: file,
        loadAtStart: true,
      },
    ];
  }
  if (o.config && o.config.length > 0) {
    if (o.kernel || o.bios || o.initrd || o.append !== undefined || o.demo === true) {
      throw new Error(
        "--config describes the whole machine: it takes no --kernel, --bios, --initrd, --append or --demo",
      );
    }
    for (const file of o.config) {
      let given: unknown;
      try {
        given = JSON.parse(readFileSync(file, "utf8")) as unknown;
      } catch (e) {
        throw new Error(`Cannot read ${file}: ${(e as Error).message}`);
      }
      const own = typeof given === "object" && given !== null ? (given as Record<string, unknown>)["Name"] : undefined;
      for (let i = 0; i < count; i++) {
        const name = unique(typeof own === "string" && own !== "" ? own : basename(file).replace(/\.json$/i, ""));
        specs.push({
          name,
          what: `the machine of ${file}`,
          create: { config: resolve(file) },
          stateFile: stateFile(name),
        });
      }
    }
    return specs;
  }
  const run: RunOptions = { mem: o.mem, serial: "none", fetch: o.fetch };
  if (o.bios !== undefined) run.bios = o.bios;
  if (o.kernel !== undefined) run.kernel = o.kernel;
  if (o.initrd !== undefined) run.initrd = o.initrd;
  if (o.append !== undefined) run.append = o.append;
  if (o.demo !== undefined) run.demo = o.demo;
  const plan = await planBoot(run, log);
  if (plan.fallbackReason) log(`boxvm serve: the demo guest instead of Debian's: ${plan.fallbackReason}`);
  const post = o.post === true;
  for (let i = 0; i < count; i++) {
    const name = unique(count === 1 ? "boxvm" : `boxvm-${String(i + 1)}`);
    specs.push({
      name,
      what: `${plan.what}, ${String(plan.ramMiB)} MiB`,
      create: {
        config: { Name: name, RamSize: plan.ramMiB * MiB, Boot: plan.boot },
        configure: (_vm, root) => configureRunMachine(root, post),
      },
      stateFile: stateFile(name),
    });
  }
  return specs;
}

/** Runs the command until SIGINT/SIGTERM; resolves with the exit status. */
export async function serve(o: ServeOptions): Promise<number> {
  const err = (s: string): void => void process.stderr.write(`${s}\n`);
  const port = intOption("--port", o.port, 0, 65535);
  const scrollbackBytes = intOption("--scrollback", o.scrollback, 1024, 64 * MiB);
  if (!isLoopbackHost(o.host)) {
    err(`boxvm serve: listening on ${o.host}, reachable from other machines: anyone with the token can drive the VMs`);
  }
  const specs = await planVms(o, err);
  const sessions: VmSession[] = [];
  const closeAll = async (): Promise<void> => {
    for (const s of sessions) await s.close();
  };
  try {
    for (const [i, spec] of specs.entries()) sessions.push(await VmSession.create(i, spec, scrollbackBytes));
  } catch (e) {
    await closeAll();
    throw e;
  }
  let server: WebServer;
  try {
    server = await WebServer.start(sessions, { host: o.host, port, scrollbackBytes });
  } catch (e) {
    await closeAll();
    throw e;
  }
  for (const s of specs) err(`boxvm serve: ${s.name}: ${s.what}; saves to ${s.stateFile}`);
  for (const s of sessions) {
    if (s.spec.loadAtStart !== true) continue;
    const failed = await s.run("load");
    if (failed !== null) {
      await server.close();
      await closeAll();
      throw new Error(`${s.spec.stateFile}: ${failed}`);
    }
  }
  if (o.start === true) {
    for (const s of sessions) {
      const failed = await s.run(s.spec.loadAtStart === true ? "resume" : "powerOn");
      if (failed !== null) err(`boxvm serve: ${s.spec.name}: ${failed}`);
    }
  }
  err("boxvm serve: open this URL (it holds the access token); Ctrl-C stops the server and the VMs");
  process.stdout.write(`${server.url}\n`);

  await new Promise<void>((done) => {
    const stop = (): void => {
      process.off("SIGINT", stop);
      process.off("SIGTERM", stop);
      done();
    };
    process.on("SIGINT", stop);
    process.on("SIGTERM", stop);
  });
  err("boxvm serve: stopping");
  await server.close();
  await closeAll();
  return 0;
}

/** Adds `serve` to the CLI. */
export function register(program: Command): void {
  program
    .command("serve")
    .description("Run VMs and serve a web page with their consoles, controls and statistics (token-protected)")
    .option(
      "-c, --config <file>",
      "a VM from a JSON configuration (repeatable: one VM per file)",
      (v: string, prev: string[] = []) => [...prev, v],
    )
    .option("-p, --port <n>", "port to listen on (0: any free port)", "7080")
    .option(
      "--host <address>",
      "address to listen on; anything but loopback exposes the VMs to the network",
      "127.0.0.1",
    )
    .option("--count <n>", "VMs of each machine", "1")
    .option("--state-dir <dir>", "where Save writes and Load reads (default: boxvm's cache, serve/)")
    .option("--scrollback <bytes>", "console output kept per VM for tabs opened later", String(256 * 1024))
    .option("--start", "power the VMs on at once (with --load: resume the loaded machine)")
    .option(
      "--load <state>",
      "serve a saved machine (from boxvm run's Ctrl-A s, the page's Save or the VM API), loaded; Save writes back to it",
    )
    .option("--bios <rom>", "system ROM image, started at the reset vector")
    .option("--kernel <file>", "Linux bzImage or Multiboot kernel (ELF)")
    .option("--initrd <file>", "initrd / initramfs (Multiboot: the first module)")
    .option("--append <cmdline>", "kernel command line")
    .option("-m, --mem <MiB>", "guest RAM in MiB", "128")
    .option("--post", "add the POST code device (port 0x80)")
    .option("--demo", "boot boxvm's own demo guest")
    .option("--no-fetch", "do not fetch Debian's guest when it is not cached")
    .action(async (o: ServeOptions) => {
      try {
        process.exitCode = await serve(o);
      } catch (e) {
        process.stderr.write(`boxvm serve: ${(e as Error).message}\n`);
        process.exitCode = 1;
      }
      setImmediate(() => process.exit(process.exitCode ?? 0));
    });
}
