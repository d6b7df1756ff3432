/**
 * The executor: one switch over the decoded opcode (one-byte map here, the 0F map in ops0f.ts,
 * string instructions in string.ts). Every handler follows DESIGN.md: faults through cpu.raise()
 * and an early return before any architectural state is committed; no allocation.
 * Reference: Intel SDM Vol. 2 (instruction pages), the one-byte opcode map (Vol. 2 Appendix A).
 */
import type { Cpu } from "../cpu.ts";
import { OP_UD } from "../decode/decoder.ts";
import { LZ_ADD, LZ_LOGIC, LZ_SUB, ALL_ARITH, RES_FLAGS, flushFlags, getCF, getOF, setLazy, testCC } from "../flags.ts";
import { F, R8, SReg, Slot, STATE_HALTED, STATE_INHIBIT_IRQ, Vec, CR4 } from "../state.ts";
import {
  alu,
  div64,
  divQ,
  divR,
  getReg,
  idiv64,
  imul32,
  incDec,
  jumpNear,
  mul32,
  mulHi,
  mulLo,
  readMem,
  readRm,
  relTarget,
  resultFlags,
  setArith,
  setReg,
  shift,
  vsz,
  writeMem,
  writeRm,
} from "./ops.ts";
import { exec0f } from "./ops0f.ts";
import { stringOp } from "./string.ts";
import { IntKind, farCall, farJmp, farRet, interrupt, ioPermitted, iret, loadSeg } from "./sysapi.ts";

/** Executes the instruction in cpu's per-instruction fields. */
export function execute(cpu: Cpu): void {
  const op = cpu.op;
  if (op < 0x40) {
    execAlu(cpu, op);
    return;
  }
  if (op >= 0x100) {
    if (op === OP_UD) cpu.raise(Vec.UD);
    else exec0f(cpu, op & 0xff);
    return;
  }
  const r32 = cpu.r32;
  const i32 = cpu.i32;
  switch (op) {
    case 0x40:
    case 0x41:
    case 0x42:
    case 0x43:
    case 0x44:
    case 0x45:
    case 0x46:
    case 0x47:
    case 0x48:
    case 0x49:
    case 0x4a:
    case 0x4b:
    case 0x4c:
    case 0x4d:
    case 0x4e:
    case 0x4f: {
      const sz = vsz(cpu);
      const n = op & 7;
      setReg(cpu, sz, n, incDec(cpu, sz, getReg(cpu, sz, n), op >= 0x48));
      return;
    }
    case 0x50:
    case 0x51:
    case 0x52:
    case 0x53:
    case 0x54:
    case 0x55:
    case 0x56:
    case 0x57:
      if (cpu.o32) cpu.push32(r32[op & 7]!);
      else cpu.push16(cpu.r16[(op & 7) << 1]!);
      return;
    case 0x58:
    case 0x59:
    case 0x5a:
    case 0x5b:
    case 0x5c:
    case 0x5d:
    case 0x5e:
    case 0x5f: {
      if (cpu.o32) {
        const v = cpu.pop32();
        if (!cpu.faulted) r32[op & 7] = v;
      } else {
        const v = cpu.pop16();
        if (!cpu.faulted) cpu.r16[(op & 7) << 1] = v;
      }
      return;
    }
    case 0x60:
      pusha(cpu);
      return;
    case 0x61:
      popa(cpu);
      return;
    case 0x62:
      bound(cpu);
      return;
    case 0x63: {
      // ARPL Ew, Gw (protected mode only)
      if (!cpu.pmode) {
        cpu.raise(Vec.UD);
        return;
      }
      const d = readRm(cpu, 1);
      if (cpu.faulted) return;
      const s = cpu.r16[((cpu.modrm >> 3) & 7) << 1]!;
      if ((d & 3) < (s & 3)) {
        writeRm(cpu, 1, (d & ~3) | (s & 3));
        if (cpu.faulted) return;
        setArith(cpu, F.ZF, F.ZF);
      } else {
        setArith(cpu, F.ZF, 0);
      }
      return;
    }
    case 0x68:
    case 0x6a:
      // PUSH imm (imm8 sign-extended by the decoder)
      if (cpu.o32) cpu.push32(cpu.imm);
      else cpu.push16(cpu.imm & 0xffff);
      return;
    case 0x69:
    case 0x6b: {
      const sz = vsz(cpu);
      const src = readRm(cpu, sz);
      if (cpu.faulted) return;
      setReg(cpu, sz, (cpu.modrm >> 3) & 7, imul3(cpu, sz, src, cpu.imm));
      return;
    }
    case 0x6c:
    case 0x6d:
    case 0x6e:
    case 0x6f:
      stringOp(cpu, op);
      return;
    case 0x70:
    case 0x71:
    case 0x72:
    case 0x73:
    case 0x74:
    case 0x75:
    case 0x76:
    case 0x77:
    case 0x78:
    case 0x79:
    case 0x7a:
    case 0x7b:
    case 0x7c:
    case 0x7d:
    case 0x7e:
    case 0x7f:
      if (testCC(i32, op & 15)) jumpNear(cpu, relTarget(cpu, cpu.imm));
      return;
    case 0x80:
    case 0x81:
    case 0x82:
    case 0x83: {
      const sz = op === 0x81 || op === 0x83 ? vsz(cpu) : 0;
      const k = (cpu.modrm >> 3) & 7;
      const a = readRm(cpu, sz);
      if (cpu.faulted) return;
      const r = alu(cpu, k, sz, a, cpu.imm);
      if (k !== 7) writeRm(cpu, sz, r);
      return;
    }
    case 0x84:
    case 0x85: {
      const sz = op === 0x84 ? 0 : vsz(cpu);
      const a = readRm(cpu, sz);
      if (cpu.faulted) return;
      alu(cpu, 4, sz, a, getReg(cpu, sz, (cpu.modrm >> 3) & 7));
      return;
    }
    case 0x86:
    case 0x87: {
      const sz = op === 0x86 ? 0 : vsz(cpu);
      const reg = (cpu.modrm >> 3) & 7;
      const a = readRm(cpu, sz);
      if (cpu.faulted) return;
      const b = getReg(cpu, sz, reg);
      writeRm(cpu, sz, b);
      if (cpu.faulted) return;
      setReg(cpu, sz, reg, a);
      return;
    }
    case 0x88:
    case 0x89: {
      const sz = op === 0x88 ? 0 : vsz(cpu);
      writeRm(cpu, sz, getReg(cpu, sz, (cpu.modrm >> 3) & 7));
      return;
    }
    case 0x8a:
    case 0x8b: {
      const sz = op === 0x8a ? 0 : vsz(cpu);
      const v = readRm(cpu, sz);
      if (cpu.faulted) return;
      setReg(cpu, sz, (cpu.modrm >> 3) & 7, v);
      return;
    }
    case 0x8c: {
      // MOV Ev, Sreg
      const sr = (cpu.modrm >> 3) & 7;
      if (sr > 5) {
        cpu.raise(Vec.UD);
        return;
      }
      const v = cpu.segSel[sr]! & 0xffff;
      if (cpu.modrm >= 0xc0) setReg(cpu, vsz(cpu), cpu.modrm & 7, v);
      else cpu.write16(cpu.seg, cpu.ea, v);
      return;
    }
    case 0x8d: {
      // LEA
      if (cpu.modrm >= 0xc0) {
        cpu.raise(Vec.UD);
        return;
      }
      setReg(cpu, vsz(cpu), (cpu.modrm >> 3) & 7, cpu.ea);
      return;
    }
    case 0x8e: {
      // MOV Sreg, Ew
      const sr = (cpu.modrm >> 3) & 7;
      if (sr > 5 || sr === SReg.CS) {
        cpu.raise(Vec.UD);
        return;
      }
      const v = readRm(cpu, 1);
      if (cpu.faulted) return;
      if (!loadSeg(cpu, sr, v)) return;
      if (sr === SReg.SS) {
        cpu.modeChanged();
        i32[Slot.STATE] = i32[Slot.STATE]! | STATE_INHIBIT_IRQ;
      }
      return;
    }
    case 0x8f: {
      // POP Ev
      if ((cpu.modrm & 0x38) !== 0) {
        cpu.raise(Vec.UD);
        return;
      }
      const sz = vsz(cpu);
      const v = sz === 2 ? cpu.read32(SReg.SS, cpu.stackOff(0)) : cpu.read16(SReg.SS, cpu.stackOff(0));
      if (cpu.faulted) return;
      if (cpu.modrm >= 0xc0) {
        cpu.setSp(cpu.stackOff(sz === 2 ? 4 : 2));
        setReg(cpu, sz, cpu.modrm & 7, v);
        return;
      }
      // The address is computed with ESP already incremented.
      const oldEsp = r32[4]!;
      cpu.setSp(cpu.stackOff(sz === 2 ? 4 : 2));
      const ea = cpu.calcEa();
      writeMem(cpu, sz, cpu.seg, ea, v);
      if (cpu.faulted) r32[4] = oldEsp;
      return;
    }
    case 0x90:
      return;
    case 0x91:
    case 0x92:
    case 0x93:
    case 0x94:
    case 0x95:
    case 0x96:
    case 0x97: {
      const sz = vsz(cpu);
      const n = op & 7;
      const t = getReg(cpu, sz, 0);
      setReg(cpu, sz, 0, getReg(cpu, sz, n));
      setReg(cpu, sz, n, t);
      return;
    }
    case 0x98:
      if (cpu.o32) r32[0] = (cpu.r16[0]! << 16) >> 16;
      else cpu.r16[0] = (cpu.r8[0]! << 24) >> 24;
      return;
    case 0x99:
      if (cpu.o32) r32[2] = r32[0]! >> 31;
      else cpu.r16[4] = (cpu.r16[0]! & 0x8000) !== 0 ? 0xffff : 0;
      return;
    case 0x9a:
      farCall(cpu, cpu.imm2, cpu.o32 ? cpu.imm : cpu.imm & 0xffff, cpu.o32);
      return;
    case 0x9b:
      cpu.fpu.wait();
      return;
    case 0x9c:
      pushf(cpu);
      return;
    case 0x9d:
      popf(cpu);
      return;
    case 0x9e: {
      // SAHF
      const ah = cpu.r8[1]!;
      setArith(cpu, F.SF | F.ZF | F.AF | F.PF | F.CF, ah);
      return;
    }
    case 0x9f:
      cpu.r8[1] = (cpu.getFlags() & 0xd5) | 2;
      return;
    case 0xa0:
    case 0xa1: {
      const sz = op === 0xa0 ? 0 : vsz(cpu);
      const v = readMem(cpu, sz, cpu.seg, cpu.ea);
      if (!cpu.faulted) setReg(cpu, sz, 0, v);
      return;
    }
    case 0xa2:
    case 0xa3: {
      const sz = op === 0xa2 ? 0 : vsz(cpu);
      writeMem(cpu, sz, cpu.seg, cpu.ea, getReg(cpu, sz, 0));
      return;
    }
    case 0xa4:
    case 0xa5:
    case 0xa6:
    case 0xa7:
    case 0xaa:
    case 0xab:
    case 0xac:
    case 0xad:
    case 0xae:
    case 0xaf:
      stringOp(cpu, op);
      return;
    case 0xa8:
      alu(cpu, 4, 0, cpu.r8[0]!, cpu.imm);
      return;
    case 0xa9: {
      const sz = vsz(cpu);
      alu(cpu, 4, sz, getReg(cpu, sz, 0), cpu.imm);
      return;
    }
    case 0xb0:
    case 0xb1:
    case 0xb2:
    case 0xb3:
    case 0xb4:
    case 0xb5:
    case 0xb6:
    case 0xb7:
      cpu.r8[R8[op & 7]!] = cpu.imm;
      return;
    case 0xb8:
    case 0xb9:
    case 0xba:
    case 0xbb:
    case 0xbc:
    case 0xbd:
    case 0xbe:
    case 0xbf:
      if (cpu.o32) r32[op & 7] = cpu.imm;
      else cpu.r16[(op & 7) << 1] = cpu.imm;
      return;
    case 0xc0:
    case 0xc1:
    case 0xd0:
    case 0xd1:
    case 0xd2:
    case 0xd3: {
      const sz = (op & 1) === 0 ? 0 : vsz(cpu);
      const count = (op < 0xd0 ? cpu.imm : op < 0xd2 ? 1 : cpu.r8[4]!) & 0x1f;
      const v = readRm(cpu, sz);
      if (cpu.faulted || count === 0) return;
      const r = shift(cpu, (cpu.modrm >> 3) & 7, sz, v, count);
      writeRm(cpu, sz, r);
      return;
    }
    case 0xc2:
    case 0xc3: {
      // RET near
      const sz = cpu.o32 ? 4 : 2;
      const t = sz === 4 ? cpu.read32(SReg.SS, cpu.stackOff(0)) : cpu.read16(SReg.SS, cpu.stackOff(0));
      if (cpu.faulted) return;
      if (!jumpNear(cpu, t)) return;
      cpu.setSp(cpu.stackOff(sz + (op === 0xc2 ? cpu.imm : 0)));
      return;
    }
    case 0xc4:
    case 0xc5:
      loadFar(cpu, op === 0xc4 ? SReg.ES : SReg.DS);
      return;
    case 0xc6:
    case 0xc7: {
      if ((cpu.modrm & 0x38) !== 0) {
        cpu.raise(Vec.UD);
        return;
      }
      writeRm(cpu, op === 0xc6 ? 0 : vsz(cpu), cpu.imm);
      return;
    }
    case 0xc8:
      enter(cpu);
      return;
    case 0xc9: {
      // LEAVE
      const bp = cpu.ss32 ? r32[5]! >>> 0 : cpu.r16[10]!;
      const v = cpu.o32 ? cpu.read32(SReg.SS, bp) : cpu.read16(SReg.SS, bp);
      if (cpu.faulted) return;
      cpu.setSp(cpu.ss32 ? (bp + (cpu.o32 ? 4 : 2)) | 0 : (bp + (cpu.o32 ? 4 : 2)) & 0xffff);
      if (cpu.o32) r32[5] = v;
      else cpu.r16[10] = v;
      return;
    }
    case 0xca:
      farRet(cpu, cpu.o32, cpu.imm);
      return;
    case 0xcb:
      farRet(cpu, cpu.o32, 0);
      return;
    case 0xcc:
      cpu.noSingleStep = true;
      interrupt(cpu, Vec.BP, IntKind.SOFT_EXC, -1);
      return;
    case 0xcd:
      cpu.noSingleStep = true;
      interrupt(cpu, cpu.imm & 0xff, IntKind.SOFT, -1);
      return;
    case 0xce:
      if (getOF(i32)) {
        cpu.noSingleStep = true;
        interrupt(cpu, Vec.OF, IntKind.SOFT_EXC, -1);
      }
      return;
    case 0xcf:
      iret(cpu, cpu.o32);
      return;
    case 0xd4: {
      // AAM
      const base = cpu.imm & 0xff;
      if (base === 0) {
        cpu.raise(Vec.DE);
        return;
      }
      const al = cpu.r8[0]!;
      cpu.r8[1] = (al / base) | 0;
      cpu.r8[0] = al % base;
      setLazy(i32, LZ_LOGIC, cpu.r8[0]!, 0, 0, ALL_ARITH);
      return;
    }
    case 0xd5: {
      // AAD: flags as the 8-bit addition AL + AH*base
      const base = cpu.imm & 0xff;
      const al = cpu.r8[0]!;
      const t = (cpu.r8[1]! * base) & 0xff;
      const r = (al + t) & 0xff;
      cpu.r16[0] = r;
      setLazy(i32, LZ_ADD, (al + t) | 0, al, t, ALL_ARITH);
      return;
    }
    case 0xd6:
      // SALC (undocumented, present on every Intel x86)
      cpu.r8[0] = getCF(i32) !== 0 ? 0xff : 0;
      return;
    case 0xd7: {
      // XLAT
      const off = cpu.a32 ? (r32[3]! + cpu.r8[0]!) >>> 0 : (cpu.r16[6]! + cpu.r8[0]!) & 0xffff;
      const v = cpu.read8(cpu.seg, off);
      if (!cpu.faulted) cpu.r8[0] = v;
      return;
    }
    case 0xd8:
    case 0xd9:
    case 0xda:
    case 0xdb:
    case 0xdc:
    case 0xdd:
    case 0xde:
    case 0xdf:
      cpu.fpu.exec(op, cpu.modrm, cpu.modrm >= 0xc0 ? -1 : cpu.seg, cpu.ea);
      return;
    case 0xe0:
    case 0xe1:
    case 0xe2: {
      // LOOPNE, LOOPE, LOOP: the count register by address size
      const cnt = cpu.a32 ? (r32[1]! - 1) | 0 : (cpu.r16[2]! - 1) & 0xffff;
      let take = cnt !== 0;
      if (op === 0xe0) take = take && !testCC(i32, 4);
      else if (op === 0xe1) take = take && testCC(i32, 4);
      if (take && !jumpNear(cpu, relTarget(cpu, cpu.imm))) return;
      if (cpu.a32) r32[1] = cnt;
      else cpu.r16[2] = cnt;
      return;
    }
    case 0xe3: {
      const c = cpu.a32 ? r32[1]! : cpu.r16[2]!;
      if (c === 0) jumpNear(cpu, relTarget(cpu, cpu.imm));
      return;
    }
    case 0xe4:
    case 0xe5:
    case 0xec:
    case 0xed: {
      const size = (op & 1) === 0 ? 1 : cpu.o32 ? 4 : 2;
      const port = op < 0xe8 ? cpu.imm & 0xff : cpu.r16[4]!;
      if (!ioAllowed(cpu, port, size)) return;
      cpu.pollIrq = true;
      const v = cpu.bus.io.read(port, size);
      if (size === 1) cpu.r8[0] = v;
      else if (size === 2) cpu.r16[0] = v;
      else r32[0] = v;
      return;
    }
    case 0xe6:
    case 0xe7:
    case 0xee:
    case 0xef: {
      const size = (op & 1) === 0 ? 1 : cpu.o32 ? 4 : 2;
      const port = op < 0xe8 ? cpu.imm & 0xff : cpu.r16[4]!;
      if (!ioAllowed(cpu, port, size)) return;
      const v = size === 1 ? cpu.r8[0]! : size === 2 ? cpu.r16[0]! : r32[0]! >>> 0;
      cpu.pollIrq = true;
      cpu.bus.io.write(port, v, size);
      return;
    }
    case 0xe8: {
      // CALL rel
      const t = relTarget(cpu, cpu.imm);
      if (t >>> 0 > cpu.segLimit[SReg.CS]! >>> 0) {
        cpu.raise(Vec.GP, 0);
        return;
      }
      if (cpu.o32) cpu.push32(i32[Slot.EIP]!);
      else cpu.push16(i32[Slot.EIP]! & 0xffff);
      if (!cpu.faulted) i32[Slot.EIP] = t;
      return;
    }
    case 0xe9:
    case 0xeb:
      jumpNear(cpu, relTarget(cpu, cpu.imm));
      return;
    case 0xea:
      farJmp(cpu, cpu.imm2, cpu.o32 ? cpu.imm : cpu.imm & 0xffff, cpu.o32);
      return;
    case 0xf1:
      // INT1 / ICEBP: a #DB trap without the privilege checks of INT n
      cpu.noSingleStep = true;
      interrupt(cpu, Vec.DB, IntKind.EXC, -1);
      return;
    case 0xf4:
      // HLT
      if (cpu.vm86 || (cpu.pmode && i32[Slot.CPL] !== 0)) {
        cpu.raise(Vec.GP, 0);
        return;
      }
      i32[Slot.STATE] = i32[Slot.STATE]! | STATE_HALTED;
      return;
    case 0xf5:
      setArith(cpu, F.CF, getCF(i32) !== 0 ? 0 : F.CF);
      return;
    case 0xf6:
    case 0xf7:
      group3(cpu, op === 0xf6 ? 0 : vsz(cpu));
      return;
    case 0xf8:
      setArith(cpu, F.CF, 0);
      return;
    case 0xf9:
      setArith(cpu, F.CF, F.CF);
      return;
    case 0xfa:
    case 0xfb:
      cliSti(cpu, op === 0xfb);
      return;
    case 0xfc:
      i32[Slot.EFLAGS] = i32[Slot.EFLAGS]! & ~F.DF;
      return;
    case 0xfd:
      i32[Slot.EFLAGS] = i32[Slot.EFLAGS]! | F.DF;
      return;
    case 0xfe: {
      const k = (cpu.modrm >> 3) & 7;
      if (k > 1) {
        cpu.raise(Vec.UD);
        return;
      }
      const v = readRm(cpu, 0);
      if (cpu.faulted) return;
      writeRm(cpu, 0, incDec(cpu, 0, v, k === 1));
      return;
    }
    case 0xff:
      group5(cpu);
      return;
    default:
      // 0x06.. segment pushes/pops and BCD live in execAlu; prefixes never reach here
      cpu.raise(Vec.UD);
      return;
  }
}

/** 00..3F: the ALU block plus segment push/pop and BCD adjustments. */
function execAlu(cpu: Cpu, op: number): void {
  const form = op & 7;
  if (form < 6) {
    const k = op >> 3;
    const sz = (op & 1) === 0 ? 0 : vsz(cpu);
    if (form < 4) {
      const reg = (cpu.modrm >> 3) & 7;
      const rmv = readRm(cpu, sz);
      if (cpu.faulted) return;
      const regv = getReg(cpu, sz, reg);
      if (form < 2) {
        const r = alu(cpu, k, sz, rmv, regv);
        if (k !== 7) writeRm(cpu, sz, r);
      } else {
        const r = alu(cpu, k, sz, regv, rmv);
        if (k !== 7) setReg(cpu, sz, reg, r);
      }
    } else {
      const r = alu(cpu, k, sz, getReg(cpu, sz, 0), cpu.imm);
      if (k !== 7) setReg(cpu, sz, 0, r);
    }
    return;
  }
  switch (op) {
    case 0x06:
    case 0x0e:
    case 0x16:
    case 0x1e: {
      const v = cpu.segSel[op >> 3]! & 0xffff;
      if (cpu.o32) cpu.push32(v);
      else cpu.push16(v);
      return;
    }
    case 0x07:
    case 0x17:
    case 0x1f:
      popSeg(cpu, op >> 3);
      return;
    case 0x27:
    case 0x2f:
      daaDas(cpu, op === 0x2f);
      return;
    case 0x37:
    case 0x3f:
      aaaAas(cpu, op === 0x3f);
      return;
    default:
      // 0F is decoded as a map; 26/2E/36/3E are prefixes
      cpu.raise(Vec.UD);
      return;
  }
}

/** POP ES/SS/DS/FS/GS. */
export function popSeg(cpu: Cpu, sr: number): void {
  const sz = cpu.o32 ? 4 : 2;
  const v = cpu.read16(SReg.SS, cpu.stackOff(0));
  if (cpu.faulted) return;
  const newSp = cpu.stackOff(sz);
  if (!loadSeg(cpu, sr, v)) return;
  cpu.setSp(newSp);
  if (sr === SReg.SS) {
    cpu.modeChanged();
    cpu.i32[Slot.STATE] = cpu.i32[Slot.STATE]! | STATE_INHIBIT_IRQ;
  }
}

/** LES/LDS/LSS/LFS/LGS Gv, Mp. */
export function loadFar(cpu: Cpu, sr: number): void {
  if (cpu.modrm >= 0xc0) {
    cpu.raise(Vec.UD);
    return;
  }
  const off = cpu.o32 ? cpu.read32(cpu.seg, cpu.ea) : cpu.read16(cpu.seg, cpu.ea);
  if (cpu.faulted) return;
  const sel = cpu.read16(cpu.seg, cpu.a32 ? (cpu.ea + (cpu.o32 ? 4 : 2)) >>> 0 : (cpu.ea + (cpu.o32 ? 4 : 2)) & 0xffff);
  if (cpu.faulted) return;
  if (!loadSeg(cpu, sr, sel)) return;
  if (sr === SReg.SS) {
    cpu.modeChanged();
  }
  setReg(cpu, vsz(cpu), (cpu.modrm >> 3) & 7, off);
}

function daaDas(cpu: Cpu, das: boolean): void {
  const f = flushFlags(cpu.i32);
  const oldAl = cpu.r8[0]!;
  const oldCf = (f & F.CF) !== 0;
  let al = oldAl;
  let cf = false;
  let af = false;
  if ((al & 0xf) > 9 || (f & F.AF) !== 0) {
    if (das) {
      cf = oldCf || al < 6;
      al = (al - 6) & 0xff;
    } else {
      cf = oldCf || al + 6 > 0xff;
      al = (al + 6) & 0xff;
    }
    af = true;
  }
  if (oldAl > 0x99 || oldCf) {
    al = das ? (al - 0x60) & 0xff : (al + 0x60) & 0xff;
    cf = true;
  }
  cpu.r8[0] = al;
  // OF is undefined; the P6 leaves the value an 8-bit add/sub of the adjustment would give.
  const adj = (al - oldAl) & 0xff;
  const of = das ? ((oldAl ^ adj) & (oldAl ^ al) & 0x80) !== 0 : ((oldAl ^ al) & (adj ^ al) & 0x80) !== 0;
  setArith(cpu, F.CF | F.AF | F.OF, (cf ? F.CF : 0) | (af ? F.AF : 0) | (of ? F.OF : 0));
  setLazy(cpu.i32, LZ_LOGIC, al, 0, 0, F.PF | F.ZF | F.SF);
}

function aaaAas(cpu: Cpu, aas: boolean): void {
  const f = flushFlags(cpu.i32);
  if ((cpu.r8[0]! & 0xf) > 9 || (f & F.AF) !== 0) {
    if (aas) {
      cpu.r16[0] = (cpu.r16[0]! - 6) & 0xffff;
      cpu.r8[1] = (cpu.r8[1]! - 1) & 0xff;
    } else {
      cpu.r16[0] = (cpu.r16[0]! + 0x106) & 0xffff;
    }
    setArith(cpu, F.CF | F.AF, F.CF | F.AF);
  } else {
    setArith(cpu, F.CF | F.AF, 0);
  }
  cpu.r8[0] = cpu.r8[0]! & 0xf;
  // SF/ZF/PF/OF undefined: computed from AL like a logic result
  setLazy(cpu.i32, LZ_LOGIC, cpu.r8[0]!, 0, 0, F.PF | F.ZF | F.SF | F.OF);
}

/** IMUL r, r/m, imm and IMUL r, r/m: the truncated product with CF=OF=overflow. */
export function imul3(cpu: Cpu, sz: number, a: number, b: number): number {
  if (sz === 1) {
    const p = ((a << 16) >> 16) * ((b << 16) >> 16);
    const r = p & 0xffff;
    const ov = p !== (r << 16) >> 16;
    resultFlags(cpu, 1, r, ov, ov);
    return r;
  }
  imul32(a, b);
  const r = mulLo;
  const ov = mulHi !== r >> 31;
  resultFlags(cpu, 2, r, ov, ov);
  return r;
}

/** F6/F7: TEST NOT NEG MUL IMUL DIV IDIV. */
function group3(cpu: Cpu, sz: number): void {
  const k = (cpu.modrm >> 3) & 7;
  const v = readRm(cpu, sz);
  if (cpu.faulted) return;
  const r32 = cpu.r32;
  const r16 = cpu.r16;
  switch (k) {
    case 0:
    case 1:
      alu(cpu, 4, sz, v, cpu.imm);
      return;
    case 2: {
      const m = sz === 0 ? 0xff : sz === 1 ? 0xffff : -1;
      writeRm(cpu, sz, ~v & m);
      return;
    }
    case 3: {
      const m = sz === 0 ? 0xff : sz === 1 ? 0xffff : -1;
      const r = (0 - (v & m)) | 0;
      writeRm(cpu, sz, r & m);
      if (cpu.faulted) return;
      setLazy(cpu.i32, LZ_SUB | sz, r, 0, v & m, ALL_ARITH);
      return;
    }
    case 4: {
      // MUL
      if (sz === 0) {
        const p = cpu.r8[0]! * v;
        r16[0] = p;
        resultFlags(cpu, 0, p & 0xff, p > 0xff, p > 0xff);
      } else if (sz === 1) {
        const p = r16[0]! * v;
        r16[0] = p & 0xffff;
        r16[4] = p >>> 16;
        resultFlags(cpu, 1, p & 0xffff, p > 0xffff, p > 0xffff);
      } else {
        mul32(r32[0]!, v);
        r32[0] = mulLo;
        r32[2] = mulHi;
        resultFlags(cpu, 2, mulLo, mulHi !== 0, mulHi !== 0);
      }
      return;
    }
    case 5: {
      // IMUL (one operand)
      if (sz === 0) {
        const p = ((cpu.r8[0]! << 24) >> 24) * ((v << 24) >> 24);
        r16[0] = p & 0xffff;
        const ov = p !== (p << 24) >> 24;
        resultFlags(cpu, 0, p & 0xff, ov, ov);
      } else if (sz === 1) {
        const p = ((r16[0]! << 16) >> 16) * ((v << 16) >> 16);
        r16[0] = p & 0xffff;
        r16[4] = (p >> 16) & 0xffff;
        const ov = p !== (p << 16) >> 16;
        resultFlags(cpu, 1, p & 0xffff, ov, ov);
      } else {
        imul32(r32[0]!, v);
        r32[0] = mulLo;
        r32[2] = mulHi;
        const ov = mulHi !== mulLo >> 31;
        resultFlags(cpu, 2, mulLo, ov, ov);
      }
      return;
    }
    case 6: {
      // DIV
      if (sz === 0) {
        const n = r16[0]!;
        if (v === 0 || ((n / v) | 0) > 0xff) {
          cpu.raise(Vec.DE);
          return;
        }
        cpu.r8[0] = (n / v) | 0;
        cpu.r8[1] = n % v;
      } else if (sz === 1) {
        const n = r16[4]! * 65536 + r16[0]!;
        if (v === 0 || Math.floor(n / v) > 0xffff) {
          cpu.raise(Vec.DE);
          return;
        }
        r16[0] = Math.floor(n / v);
        r16[4] = n % v;
      } else {
        if (!div64(r32[2]!, r32[0]!, v)) {
          cpu.raise(Vec.DE);
          return;
        }
        r32[0] = divQ;
        r32[2] = divR;
      }
      return;
    }
    default: {
      // IDIV
      if (sz === 0) {
        const n = (r16[0]! << 16) >> 16;
        const d = (v << 24) >> 24;
        if (d === 0) {
          cpu.raise(Vec.DE);
          return;
        }
        const q = (n / d) | 0;
        if (q > 127 || q < -128) {
          cpu.raise(Vec.DE);
          return;
        }
        cpu.r8[0] = q;
        cpu.r8[1] = n % d;
      } else if (sz === 1) {
        const n = (r16[4]! << 16) | r16[0]!;
        const d = (v << 16) >> 16;
        if (d === 0) {
          cpu.raise(Vec.DE);
          return;
        }
        const q = Math.trunc(n / d);
        if (q > 32767 || q < -32768) {
          cpu.raise(Vec.DE);
          return;
        }
        r16[0] = q;
        r16[4] = n % d;
      } else {
        if (!idiv64(r32[2]!, r32[0]!, v)) {
          cpu.raise(Vec.DE);
          return;
        }
        r32[0] = divQ;
        r32[2] = divR;
      }
      return;
    }
  }
}

/** FF: INC DEC CALL CALLF JMP JMPF PUSH. */
function group5(cpu: Cpu): void {
  const k = (cpu.modrm >> 3) & 7;
  const sz = vsz(cpu);
  const i32 = cpu.i32;
  switch (k) {
    case 0:
    case 1: {
      const v = readRm(cpu, sz);
      if (cpu.faulted) return;
      writeRm(cpu, sz, incDec(cpu, sz, v, k === 1));
      return;
    }
    case 2: {
      // CALL near indirect
      const t = readRm(cpu, sz);
      if (cpu.faulted) return;
      const tt = sz === 2 ? t : t & 0xffff;
      if (tt >>> 0 > cpu.segLimit[SReg.CS]! >>> 0) {
        cpu.raise(Vec.GP, 0);
        return;
      }
      if (sz === 2) cpu.push32(i32[Slot.EIP]!);
      else cpu.push16(i32[Slot.EIP]! & 0xffff);
      if (!cpu.faulted) i32[Slot.EIP] = tt;
      return;
    }
    case 4: {
      const t = readRm(cpu, sz);
      if (cpu.faulted) return;
      jumpNear(cpu, sz === 2 ? t : t & 0xffff);
      return;
    }
    case 3:
    case 5: {
      if (cpu.modrm >= 0xc0) {
        cpu.raise(Vec.UD);
        return;
      }
      const off = sz === 2 ? cpu.read32(cpu.seg, cpu.ea) : cpu.read16(cpu.seg, cpu.ea);
      if (cpu.faulted) return;
      const sel = cpu.read16(
        cpu.seg,
        cpu.a32 ? (cpu.ea + (sz === 2 ? 4 : 2)) >>> 0 : (cpu.ea + (sz === 2 ? 4 : 2)) & 0xffff,
      );
      if (cpu.faulted) return;
      if (k === 3) farCall(cpu, sel, off, cpu.o32);
      else farJmp(cpu, sel, off, cpu.o32);
      return;
    }
    case 6: {
      const v = readRm(cpu, sz);
      if (cpu.faulted) return;
      if (sz === 2) cpu.push32(v);
      else cpu.push16(v);
      return;
    }
    default:
      cpu.raise(Vec.UD);
      return;
  }
}

function pusha(cpu: Cpu): void {
  const r32 = cpu.r32;
  if (cpu.o32) {
    for (let n = 0; n < 8; n++) cpu.write32(SReg.SS, cpu.stackOff(-4 * (n + 1)), r32[n]!);
    if (!cpu.faulted) cpu.setSp(cpu.stackOff(-32));
  } else {
    for (let n = 0; n < 8; n++) cpu.write16(SReg.SS, cpu.stackOff(-2 * (n + 1)), cpu.r16[n << 1]!);
    if (!cpu.faulted) cpu.setSp(cpu.stackOff(-16));
  }
}

function popa(cpu: Cpu): void {
  const sz = cpu.o32 ? 4 : 2;
  // Read the whole frame first so that no register changes on a fault.
  for (let n = 7; n >= 0; n--) {
    const off = cpu.stackOff((7 - n) * sz);
    const v = sz === 4 ? cpu.read32(SReg.SS, off) : cpu.read16(SReg.SS, off);
    if (cpu.faulted) return;
    if (n === 4) continue;
    scratch[n] = v;
  }
  for (let n = 0; n < 8; n++) {
    if (n === 4) continue;
    if (sz === 4) cpu.r32[n] = scratch[n]!;
    else cpu.r16[n << 1] = scratch[n]!;
  }
  cpu.setSp(cpu.stackOff(8 * sz));
}
const scratch = new Int32Array(8);

function bound(cpu: Cpu): void {
  if (cpu.modrm >= 0xc0) {
    cpu.raise(Vec.UD);
    return;
  }
  const reg = (cpu.modrm >> 3) & 7;
  if (cpu.o32) {
    const lo = cpu.read32(cpu.seg, cpu.ea);
    const hi = cpu.read32(cpu.seg, cpu.a32 ? (cpu.ea + 4) >>> 0 : (cpu.ea + 4) & 0xffff);
    if (cpu.faulted) return;
    const v = cpu.r32[reg]!;
    if (v < lo || v > hi) cpu.raise(Vec.BR);
  } else {
    const lo = (cpu.read16(cpu.seg, cpu.ea) << 16) >> 16;
    const hi = (cpu.read16(cpu.seg, cpu.a32 ? (cpu.ea + 2) >>> 0 : (cpu.ea + 2) & 0xffff) << 16) >> 16;
    if (cpu.faulted) return;
    const v = (cpu.r16[reg << 1]! << 16) >> 16;
    if (v < lo || v > hi) cpu.raise(Vec.BR);
  }
}

function enter(cpu: Cpu): void {
  const size = cpu.imm & 0xffff;
  const level = cpu.imm2 & 31;
  const o32 = cpu.o32;
  const sz = o32 ? 4 : 2;
  const r32 = cpu.r32;
  let sp = cpu.stackOff(-sz);
  const ebp = r32[5]!;
  if (o32) cpu.write32(SReg.SS, sp, ebp);
  else cpu.write16(SReg.SS, sp, ebp & 0xffff);
  if (cpu.faulted) return;
  const frame = sp;
  let bp = cpu.ss32 ? ebp >>> 0 : ebp & 0xffff;
  const wrap = cpu.ss32 ? -1 : 0xffff;
  if (level > 0) {
    for (let i = 1; i < level; i++) {
      bp = ((bp - sz) & wrap) >>> 0;
      const v = o32 ? cpu.read32(SReg.SS, bp) : cpu.read16(SReg.SS, bp);
      if (cpu.faulted) return;
      sp = ((sp - sz) & wrap) >>> 0;
      if (o32) cpu.write32(SReg.SS, sp, v);
      else cpu.write16(SReg.SS, sp, v);
      if (cpu.faulted) return;
    }
    sp = ((sp - sz) & wrap) >>> 0;
    if (o32) cpu.write32(SReg.SS, sp, frame);
    else cpu.write16(SReg.SS, sp, frame);
    if (cpu.faulted) return;
  }
  const newSp = ((sp - size) & wrap) >>> 0;
  // the new stack top must be writable (SDM: #SS if ESP - size is beyond the limit)
  if (size !== 0 && !cpu.checkSeg(SReg.SS, newSp, 1, true)) return;
  if (o32) r32[5] = frame;
  else cpu.r16[10] = frame;
  cpu.setSp(newSp);
}

/** PUSHF/PUSHFD: VM and RF read as 0; vm86 with IOPL < 3 faults. */
function pushf(cpu: Cpu): void {
  const f = cpu.getFlags();
  if (cpu.vm86 && (f & F.IOPL) !== F.IOPL) {
    if (!cpu.o32 && (cpu.i32[Slot.CR4]! & CR4.VME) !== 0) {
      // VME: IF reads as VIF, IOPL as 3
      cpu.push16(((f & ~F.IF) | ((f & F.VIF) !== 0 ? F.IF : 0) | F.IOPL) & 0xffff);
      return;
    }
    cpu.raise(Vec.GP, 0);
    return;
  }
  if (cpu.o32) cpu.push32(f & 0x00fcffff);
  else cpu.push16(f & 0xffff);
}

/** POPF/POPFD with the privilege rules for IOPL and IF. */
function popf(cpu: Cpu): void {
  const i32 = cpu.i32;
  const old = cpu.getFlags();
  const iopl = (old >> 12) & 3;
  if (cpu.vm86 && iopl !== 3) {
    if (!cpu.o32 && (i32[Slot.CR4]! & CR4.VME) !== 0) {
      const v = cpu.pop16();
      if (cpu.faulted) return;
      if ((v & F.TF) !== 0 || ((v & F.IF) !== 0 && (old & F.VIP) !== 0)) {
        // restore SP: the fault must not commit the pop
        cpu.setSp(cpu.stackOff(-2));
        cpu.raise(Vec.GP, 0);
        return;
      }
      const nf = (old & ~(0x4dd5 | F.VIF)) | (v & 0x4dd5) | ((v & F.IF) !== 0 ? F.VIF : 0);
      cpu.setFlags(nf);
      return;
    }
    cpu.raise(Vec.GP, 0);
    return;
  }
  const v = cpu.o32 ? cpu.pop32() : cpu.pop16();
  if (cpu.faulted) return;
  // bits POPF may change: CF PF AF ZF SF TF DF OF NT, plus IOPL (CPL 0) and IF (CPL <= IOPL)
  let mask = 0x4dd5;
  const cpl = cpu.pmode ? i32[Slot.CPL]! : cpu.vm86 ? 3 : 0;
  if (cpl === 0 && !cpu.vm86) mask |= F.IOPL;
  if (cpl <= iopl) mask |= F.IF;
  if (cpu.o32) mask |= F.AC | F.ID;
  else mask &= 0xffff;
  let nf = (old & ~mask) | (v & mask);
  if (cpu.o32) nf &= ~F.RF;
  cpu.setFlags(nf);
}

/** CLI/STI with the IOPL (and VME/PVI) rules. */
function cliSti(cpu: Cpu, sti: boolean): void {
  const i32 = cpu.i32;
  const f = i32[Slot.EFLAGS]!;
  const iopl = (f >> 12) & 3;
  let toVif = false;
  if (cpu.vm86) {
    if (iopl !== 3) {
      if ((i32[Slot.CR4]! & CR4.VME) === 0) {
        cpu.raise(Vec.GP, 0);
        return;
      }
      toVif = true;
    }
  } else if (cpu.pmode && i32[Slot.CPL]! > iopl) {
    if (i32[Slot.CPL] === 3 && (i32[Slot.CR4]! & CR4.PVI) !== 0) toVif = true;
    else {
      cpu.raise(Vec.GP, 0);
      return;
    }
  }
  if (toVif) {
    if (sti && (f & F.VIP) !== 0) {
      cpu.raise(Vec.GP, 0);
      return;
    }
    i32[Slot.EFLAGS] = sti ? f | F.VIF : f & ~F.VIF;
    return;
  }
  if (sti) {
    if ((f & F.IF) === 0) i32[Slot.STATE] = i32[Slot.STATE]! | STATE_INHIBIT_IRQ;
    i32[Slot.EFLAGS] = f | F.IF;
  } else {
    i32[Slot.EFLAGS] = f & ~F.IF;
  }
}

/** I/O permission: free in real mode and at CPL <= IOPL; otherwise the TSS bitmap (sys.ts). */
export function ioAllowed(cpu: Cpu, port: number, size: number): boolean {
  if (!cpu.pmode && !cpu.vm86) return true;
  if (!cpu.vm86 && cpu.i32[Slot.CPL]! <= ((cpu.i32[Slot.EFLAGS]! >> 12) & 3)) return true;
  return ioPermitted(cpu, port, size);
}
