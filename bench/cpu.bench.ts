/**
 * CPU speed: guest instructions per second of CPU time (process.cpuUsage, user + system) and of
 * wall time, median of several runs, for
 *   - "decompressor": the first N instructions of Debian's 686 kernel (its XZ decompressor) loaded
 *     as a bzImage from ~/.cache/boxvm/debian-6.1.0-50-686/vmlinuz (skipped with a message when absent);
 *   - synthetic loops in flat 32-bit code: ALU, memory (SIB addressing, read-modify-write), string
 *     (REP MOVSD, LODSB/STOSB/LOOP), CALL/RET with a stack frame, NOPs (the fixed cost per
 *     instruction), and the memory loop with paging on (data at low addresses, and at 0xC0000000+
 *     like a Linux kernel's).
 * Each case also prints a checksum of the final registers and part of RAM: it must not change when
 * the CPU gets faster (the run is deterministic).
 *
 * Environment: BOXVM_BENCH_CPU_N (decompressor instructions, default 300e6), BOXVM_BENCH_CPU_SYNTH_N
 * (instructions per synthetic case, default 30e6), BOXVM_BENCH_CPU_RUNS (runs per case, default 3),
 * BOXVM_BENCH_CPU_CASES (comma-separated case names to run, default all).
 *
 * Run alone: npm run bench -- cpu
 */
import { existsSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { Cpu } from "../src/cpu/cpu.ts";
import { SReg, Slot } from "../src/cpu/state.ts";
import { CpuExit } from "../src/cpu/types.ts";
import { loadLinux } from "../src/loader/bzimage.ts";
import { PhysMem } from "../src/mem/PhysMem.ts";
import { IoPortSpace } from "../src/pdm/IoPortSpace.ts";
import { IrqRouter } from "../src/pdm/IrqLine.ts";
import { ManualClock } from "../src/tm/VirtualClock.ts";

const MiB = 1024 * 1024;
const KERNEL = join(homedir(), ".cache/boxvm/debian-6.1.0-50-686/vmlinuz");

function envNum(name: string, def: number): number {
  const v = process.env[name];
  if (v === undefined || v === "") return def;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${name}: not a positive number: ${v}`);
  return Math.floor(n);
}

interface Machine {
  cpu: Cpu;
  mem: PhysMem;
}

function machine(ramBytes: number): Machine {
  const mem = new PhysMem(ramBytes);
  const cpu = new Cpu({
    mem,
    io: new IoPortSpace(),
    irqs: new IrqRouter(),
    clock: new ManualClock(),
    onTripleFault: () => undefined,
  });
  return { cpu, mem };
}

/** Flat 32-bit segments (big real mode with D=1, or protected mode when `pmode`), code at `at`. */
function flat32(m: Machine, code: number[], at: number, pmode: boolean): void {
  const { cpu, mem } = m;
  mem.ram.set(code, at);
  cpu.codeWritten(at, code.length);
  for (let sr = 0; sr < 6; sr++) {
    cpu.segSel[sr] = pmode ? (sr === SReg.CS ? 8 : 16) : 0;
    cpu.segBase[sr] = 0;
    cpu.segLimit[sr] = -1;
    cpu.segAttr[sr] = (sr === SReg.CS ? 0x9b : 0x93) | 0xc000;
  }
  cpu.i32[Slot.EIP] = at;
  cpu.r32[4] = 0x80000;
  cpu.modeChanged();
}

/** Identity-maps the first `bytes` of memory with 4 KiB pages (tables at `at`) and turns paging on. */
function pagingOn(m: Machine, bytes: number, at: number): void {
  const { cpu, mem } = m;
  const pages = bytes / 4096;
  const tables = Math.ceil(pages / 1024);
  const dv = new DataView(mem.ram.buffer, mem.ram.byteOffset);
  for (let t = 0; t < tables; t++) {
    dv.setUint32(at + t * 4, (at + 4096 * (t + 1)) | 7, true);
    // the same memory at 0xC0000000 too, where Linux keeps its kernel
    dv.setUint32(at + (0x300 + t) * 4, (at + 4096 * (t + 1)) | 7, true);
  }
  for (let p = 0; p < pages; p++) dv.setUint32(at + 4096 + p * 4, (p * 4096) | 7, true);
  cpu.i32[Slot.CR3] = at;
  cpu.i32[Slot.CR0] = 0x80000011 | 0;
  cpu.modeChanged();
  cpu.mmu.flush(true);
  cpu.pagingChanged();
}

function le32(v: number): number[] {
  return [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff];
}

/** Short jump from the instruction at `from` (2 bytes) back to `to`. */
function jmpBack(from: number, to: number): number[] {
  const rel = to - (from + 2);
  if (rel < -128) throw new Error("jump too far");
  return [0xeb, rel & 0xff];
}

const CODE = 0x1000;

/** ALU loop: register ALU ops, a shift, a compare with a not-taken/taken branch. */
function aluCode(): number[] {
  const c = [
    0x01, 0xd8, // add eax, ebx
    0x31, 0xc1, // xor ecx, eax
    0x83, 0xea, 0x03, // sub edx, 3
    0x21, 0xfe, // and esi, edi
    0x09, 0xf0, // or eax, esi
    0xc1, 0xe0, 0x03, // shl eax, 3
    0x39, 0xd1, // cmp ecx, edx
    0x72, 0x00, // jb +0
    0x8d, 0x5c, 0x1b, 0x01, // lea ebx, [ebx+ebx+1]
    0x11, 0xc7, // adc edi, eax
    0x4d, // dec ebp
    0x75, 0x00, // jnz +0
  ];
  return [...c, ...jmpBack(CODE + c.length, CODE)];
}

/** Memory loop: SIB loads/stores, read-modify-write, MOVZX, byte stores (ESI/EDI set by the caller). */
function memCode(): number[] {
  const c = [
    0x8b, 0x04, 0x8e, // mov eax, [esi+ecx*4]
    0x01, 0x04, 0x8f, // add [edi+ecx*4], eax
    0x8b, 0x5c, 0x8e, 0x04, // mov ebx, [esi+ecx*4+4]
    0x89, 0x1c, 0x8f, // mov [edi+ecx*4], ebx
    0x41, // inc ecx
    0x81, 0xe1, ...le32(0x3fff), // and ecx, 0x3fff
    0x0f, 0xb6, 0x14, 0x0e, // movzx edx, byte [esi+ecx]
    0x88, 0x14, 0x0f, // mov [edi+ecx], dl
    0x85, 0xd2, // test edx, edx
    0x74, 0x00, // jz +0
  ];
  return [...c, ...jmpBack(CODE + c.length, CODE)];
}

/** String loop: REP MOVSD of 4 KiB, then 256 × (LODSB, STOSB, LOOP). */
function stringCode(): number[] {
  const c = [
    0xbe, ...le32(0x100000), // mov esi, 0x100000
    0xbf, ...le32(0x200000), // mov edi, 0x200000
    0xb9, ...le32(1024), // mov ecx, 1024
    0xf3, 0xa5, // rep movsd
    0xbe, ...le32(0x100000), // mov esi, 0x100000
    0xb9, ...le32(256), // mov ecx, 256
    0xac, // lodsb
    0xaa, // stosb
    0xe2, 0xfc, // loop lodsb
  ];
  return [...c, ...jmpBack(CODE + c.length, CODE)];
}

/** CALL/RET loop: call a function that builds a frame, loads an argument, returns. */
function callCode(): number[] {
  const c = new Array<number>(0x20).fill(0x90);
  // 0x00: push ecx; call f (at +0x10); pop ecx; jmp 0
  const main = [0x51, 0xe8, ...le32(0x10 - 6), 0x59];
  main.push(...jmpBack(CODE + main.length, CODE));
  c.splice(0, main.length, ...main);
  // f: push ebp; mov ebp, esp; mov eax, [ebp+8]; inc eax; pop ebp; ret
  const f = [0x55, 0x89, 0xe5, 0x8b, 0x45, 0x08, 0x40, 0x5d, 0xc3];
  c.splice(0x10, f.length, ...f);
  return c;
}

/** NOP loop: the fixed fetch/dispatch cost. */
function nopCode(): number[] {
  const c = new Array<number>(30).fill(0x90);
  return [...c, ...jmpBack(CODE + c.length, CODE)];
}

/** FNV-1a over the general registers, EIP, EFLAGS and `ram[from, from+len)`. */
function checksum(m: Machine, from: number, len: number): string {
  let h = 0x811c9dc5;
  const mix = (b: number): void => {
    h = Math.imul(h ^ (b & 0xff), 0x01000193);
  };
  const word = (v: number): void => {
    mix(v);
    mix(v >>> 8);
    mix(v >>> 16);
    mix(v >>> 24);
  };
  for (let r = 0; r < 8; r++) word(m.cpu.r32[r]!);
  word(m.cpu.i32[Slot.EIP]!);
  word(m.cpu.getFlags());
  const ram = m.mem.ram;
  for (let i = from; i < from + len; i++) mix(ram[i]!);
  return (h >>> 0).toString(16).padStart(8, "0");
}

interface Sample {
  instructions: number;
  wallMs: number;
  cpuMs: number;
  sum: string;
  decoded: number;
}

interface Case {
  name: string;
  n: number;
  /** Builds a fresh machine ready to run. */
  setup(): Machine;
  /** RAM range for the checksum. */
  sumRange: [number, number];
}

function runCase(c: Case): Sample {
  const m = c.setup();
  const cpu = m.cpu;
  const before = cpu.instructionCount;
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  let left = c.n;
  while (left > 0) {
    const chunk = left < 10_000_000 ? left : 10_000_000;
    const start = cpu.instructionCount;
    const exit = cpu.run(chunk);
    left -= cpu.instructionCount - start;
    if (exit !== CpuExit.BUDGET) {
      console.log(`  ${c.name}: run() stopped early (exit ${String(exit)}) at EIP ${(cpu.i32[Slot.EIP]! >>> 0).toString(16)}`);
      break;
    }
  }
  const t1 = performance.now();
  const cu = process.cpuUsage(c0);
  return {
    instructions: cpu.instructionCount - before,
    wallMs: t1 - t0,
    cpuMs: (cu.user + cu.system) / 1000,
    sum: checksum(m, c.sumRange[0], c.sumRange[1]),
    decoded: cpu.decodeCount,
  };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const k = s.length >> 1;
  return s.length % 2 === 1 ? s[k]! : (s[k - 1]! + s[k]!) / 2;
}

function seedData(m: Machine): void {
  const ram = m.mem.ram;
  let x = 12345;
  for (let i = 0x100000; i < 0x140000; i++) {
    x = (Math.imul(x, 1103515245) + 12345) | 0;
    ram[i] = x >>> 24;
  }
}

function synthetic(
  name: string,
  code: () => number[],
  n: number,
  opts: { paging?: boolean; mem?: boolean; high?: boolean },
): Case {
  return {
    name,
    n,
    sumRange: [0x200000, 0x10000],
    setup(): Machine {
      const m = machine(8 * MiB);
      seedData(m);
      flat32(m, code(), CODE, opts.paging === true);
      const r = m.cpu.r32;
      r[0] = 1;
      r[1] = 0;
      r[2] = 0x12345;
      r[3] = 7;
      r[5] = 1000;
      const high = opts.high === true ? 0xc0000000 | 0 : 0;
      r[6] = opts.mem === true ? 0x100000 + high : 0x5555;
      r[7] = opts.mem === true ? 0x200000 + high : 0x3333;
      if (opts.paging === true) pagingOn(m, 8 * MiB, 0x700000);
      return m;
    },
  };
}

function decompressorCase(n: number): Case | null {
  if (!existsSync(KERNEL)) {
    console.log(`  decompressor: skipped (${KERNEL} not found)`);
    return null;
  }
  const kernel = new Uint8Array(readFileSync(KERNEL));
  return {
    name: "decompressor",
    n,
    sumRange: [0x1000000, 0x100000],
    setup(): Machine {
      const m = machine(256 * MiB);
      loadLinux(m.mem, m.cpu, { kernel, cmdline: "console=ttyS0" });
      return m;
    },
  };
}

export default async function cpuBench(): Promise<void> {
  const runs = envNum("BOXVM_BENCH_CPU_RUNS", 3);
  const decompN = envNum("BOXVM_BENCH_CPU_N", 300e6);
  const synthN = envNum("BOXVM_BENCH_CPU_SYNTH_N", 30e6);
  const only = (process.env["BOXVM_BENCH_CPU_CASES"] ?? "").split(",").filter((s) => s !== "");
  const cases: Case[] = [];
  const want = (name: string): boolean => only.length === 0 || only.includes(name);
  if (want("decompressor")) {
    const d = decompressorCase(decompN);
    if (d) cases.push(d);
  }
  if (want("nop")) cases.push(synthetic("nop", nopCode, synthN, {}));
  if (want("alu")) cases.push(synthetic("alu", aluCode, synthN, {}));
  if (want("mem")) cases.push(synthetic("mem", memCode, synthN, { mem: true }));
  if (want("string")) cases.push(synthetic("string", stringCode, synthN, { mem: true }));
  if (want("call")) cases.push(synthetic("call", callCode, synthN, {}));
  if (want("mem-paging")) cases.push(synthetic("mem-paging", memCode, synthN, { mem: true, paging: true }));
  if (want("mem-paging-hi")) {
    cases.push(synthetic("mem-paging-hi", memCode, synthN, { mem: true, paging: true, high: true }));
  }
  console.log(`  ${String(runs)} runs per case; MIPS = instructions / CPU time (wall in parentheses), medians`);
  for (const c of cases) {
    const samples: Sample[] = [];
    for (let i = 0; i < runs; i++) samples.push(runCase(c));
    const ins = samples[0]!.instructions;
    const cpuMips = median(samples.map((s) => s.instructions / s.cpuMs / 1000));
    const wallMips = median(samples.map((s) => s.instructions / s.wallMs / 1000));
    const sums = [...new Set(samples.map((s) => s.sum))].join(",");
    console.log(
      `  ${c.name.padEnd(13)} ${cpuMips.toFixed(1).padStart(7)} MIPS cpu (${wallMips.toFixed(1)} wall)` +
        `  ${String(ins)} instr, cpu ms ${samples.map((s) => s.cpuMs.toFixed(0)).join("/")},` +
        ` ${String(samples[0]!.decoded)} decoded, sum ${sums}`,
    );
  }
  await Promise.resolve();
}
