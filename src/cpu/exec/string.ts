/**
 * String instructions: MOVS CMPS STOS LODS SCAS INS OUTS, with REP/REPE/REPNE.
 * The count/index registers follow the address size (CX/SI/DI or ECX/ESI/EDI); the source
 * segment is DS or the override, the destination always ES. Each iteration commits its register
 * updates, so a fault in the middle restarts the instruction exactly where it stopped. A long REP
 * runs in chunks: after CHUNK iterations EIP goes back to the instruction so that interrupts and
 * the run budget are honoured between chunks.
 */
import type { Cpu } from "../cpu.ts";
import { PF_REP, PF_REPNE } from "../decode/decoder.ts";
import { getZF } from "../flags.ts";
import { F, SReg, Slot } from "../state.ts";
import { alu, readMem, writeMem } from "./ops.ts";
import { ioAllowed } from "./exec.ts";

/** Iterations of a REP string instruction per step. */
const CHUNK = 4096;

/** Executes string opcode `op` (6C..6F, A4..A7, AA..AF). */
export function stringOp(cpu: Cpu, op: number): void {
  const sz = (op & 1) === 0 ? 0 : cpu.o32 ? 2 : 1;
  const bytes = sz === 0 ? 1 : sz === 1 ? 2 : 4;
  const a32 = cpu.a32;
  const r32 = cpu.r32;
  const r16 = cpu.r16;
  const i32 = cpu.i32;
  const step = (i32[Slot.EFLAGS]! & F.DF) !== 0 ? -bytes : bytes;
  const rep = cpu.pfx & (PF_REP | PF_REPNE);
  const port = r16[4]!;
  if (op < 0x70) {
    if (!ioAllowed(cpu, port, bytes)) return;
    cpu.pollIrq = true;
  }
  let count = rep !== 0 ? (a32 ? r32[1]! >>> 0 : r16[2]!) : 1;
  if (count === 0) return;
  if (rep !== 0 && step > 0 && (op === 0xa4 || op === 0xa5 || op === 0xaa || op === 0xab)) {
    // Bulk path straight into guest RAM, a page at a time; anything unusual (segment checks that
    // could fault, MMIO, page crossings of one element) falls through to the per-element loop.
    count = bulk(cpu, op, bytes, a32, count);
    if (cpu.faulted || count === 0 || bulkYield) return;
  }
  let n = count < CHUNK ? count : CHUNK;
  const seg = cpu.seg;
  const io = cpu.bus.io;
  const cmp = op === 0xa6 || op === 0xa7 || op === 0xae || op === 0xaf;
  for (; n > 0; n--) {
    const si = a32 ? r32[6]! >>> 0 : r16[12]!;
    const di = a32 ? r32[7]! >>> 0 : r16[14]!;
    let adv = 0; // bit 0: SI moves, bit 1: DI moves
    switch (op) {
      case 0x6c:
      case 0x6d: {
        // INS: check the destination before the port read (a fault must not consume input)
        if (!cpu.checkSeg(SReg.ES, di, bytes, true)) return;
        const v = io.read(port, bytes as 1 | 2 | 4);
        writeMem(cpu, sz, SReg.ES, di, v);
        if (cpu.faulted) return;
        adv = 2;
        break;
      }
      case 0x6e:
      case 0x6f: {
        const v = readMem(cpu, sz, seg, si);
        if (cpu.faulted) return;
        io.write(port, sz === 2 ? v >>> 0 : v, bytes as 1 | 2 | 4);
        adv = 1;
        break;
      }
      case 0xa4:
      case 0xa5: {
        const v = readMem(cpu, sz, seg, si);
        if (cpu.faulted) return;
        writeMem(cpu, sz, SReg.ES, di, v);
        if (cpu.faulted) return;
        adv = 3;
        break;
      }
      case 0xa6:
      case 0xa7: {
        const a = readMem(cpu, sz, seg, si);
        if (cpu.faulted) return;
        const b = readMem(cpu, sz, SReg.ES, di);
        if (cpu.faulted) return;
        alu(cpu, 7, sz, a, b);
        adv = 3;
        break;
      }
      case 0xaa:
      case 0xab: {
        writeMem(cpu, sz, SReg.ES, di, sz === 0 ? cpu.r8[0]! : sz === 1 ? r16[0]! : r32[0]!);
        if (cpu.faulted) return;
        adv = 2;
        break;
      }
      case 0xac:
      case 0xad: {
        const v = readMem(cpu, sz, seg, si);
        if (cpu.faulted) return;
        if (sz === 0) cpu.r8[0] = v;
        else if (sz === 1) r16[0] = v;
        else r32[0] = v;
        adv = 1;
        break;
      }
      default: {
        // SCAS
        const b = readMem(cpu, sz, SReg.ES, di);
        if (cpu.faulted) return;
        alu(cpu, 7, sz, sz === 0 ? cpu.r8[0]! : sz === 1 ? r16[0]! : r32[0]!, b);
        adv = 2;
        break;
      }
    }
    if ((adv & 1) !== 0) {
      if (a32) r32[6] = (si + step) | 0;
      else r16[12] = (si + step) & 0xffff;
    }
    if ((adv & 2) !== 0) {
      if (a32) r32[7] = (di + step) | 0;
      else r16[14] = (di + step) & 0xffff;
    }
    if (rep === 0) return;
    count--;
    if (a32) r32[1] = count;
    else r16[2] = count;
    if (count === 0) return;
    if (cmp && (rep === PF_REP ? !getZF(i32) : getZF(i32))) return;
  }
  // More iterations left: run the instruction again (interrupts may come in between).
  i32[Slot.EIP] = cpu.instrStart;
}

/**
 * REP MOVS/STOS forward in whole-page runs. Returns the remaining count (registers committed for
 * what was done). Stops at the first run it cannot do in bulk, or after CHUNK elements.
 */
let bulkYield = false;

function bulk(cpu: Cpu, op: number, size: number, a32: boolean, count: number): number {
  bulkYield = false;
  const r32 = cpu.r32;
  const r16 = cpu.r16;
  const ram = cpu.bus.mem.ram;
  const movs = op === 0xa4 || op === 0xa5;
  const srcSeg = cpu.seg;
  let budget = CHUNK * 4;
  while (count > 0 && budget > 0) {
    const di = a32 ? r32[7]! >>> 0 : r16[14]!;
    const dlin = (cpu.segBase[SReg.ES]! + di) | 0;
    let k = Math.floor((4096 - (dlin & 0xfff)) / size);
    if (k > count) k = count;
    if (k > budget) k = budget;
    if (!a32 && k > (0x10000 - di) / size) k = Math.floor((0x10000 - di) / size);
    let si = 0;
    let slin = 0;
    if (movs) {
      si = a32 ? r32[6]! >>> 0 : r16[12]!;
      slin = (cpu.segBase[srcSeg]! + si) | 0;
      const ks = Math.floor((4096 - (slin & 0xfff)) / size);
      if (k > ks) k = ks;
      if (!a32 && k > (0x10000 - si) / size) k = Math.floor((0x10000 - si) / size);
    }
    if (k <= 0) return count;
    const len = k * size;
    if (!cpu.spanOk(SReg.ES, di, len, true)) return count;
    if (movs && !cpu.spanOk(srcSeg, si, len, false)) return count;
    let sp = 0;
    if (movs) {
      sp = cpu.ramAddr(slin, false);
      if (sp < 0) return count;
    }
    const dp = cpu.ramAddr(dlin, true);
    if (dp < 0) return count;
    if (movs) {
      if (dp > sp && dp < sp + len) {
        // forward overlap: element by element, as the hardware does
        for (let i = 0; i < len; i++) ram[dp + i] = ram[sp + i]!;
      } else {
        ram.copyWithin(dp, sp, sp + len);
      }
    } else if (size === 1) {
      ram.fill(cpu.r8[0]!, dp, dp + len);
    } else {
      const v = size === 2 ? r16[0]! : r32[0]!;
      for (let i = 0; i < len; i += size) {
        ram[dp + i] = v & 0xff;
        ram[dp + i + 1] = (v >>> 8) & 0xff;
        if (size === 4) {
          ram[dp + i + 2] = (v >>> 16) & 0xff;
          ram[dp + i + 3] = (v >>> 24) & 0xff;
        }
      }
    }
    if (cpu.codePages[dp >>> 12] !== 0) cpu.codeWritten(dp, len);
    count -= k;
    budget -= k;
    if (a32) {
      r32[7] = (di + len) | 0;
      if (movs) r32[6] = (si + len) | 0;
      r32[1] = count;
    } else {
      r16[14] = (di + len) & 0xffff;
      if (movs) r16[12] = (si + len) & 0xffff;
      r16[2] = count;
    }
  }
  if (count > 0 && budget <= 0) {
    cpu.i32[Slot.EIP] = cpu.instrStart; // the next chunk runs after an interrupt check
    bulkYield = true;
  }
  return count;
}
