/**
 * Interrupt and exception delivery in every mode, double/triple fault, and the far transfers
 * (JMP/CALL/RET far, IRET) including call gates, task gates and returns to outer levels and vm86.
 * References: Intel SDM Vol. 3A ch. 6 (interrupt and exception handling: IDT gates, stack switch,
 * error codes, EXT bit, Table 6-5 contributory/benign classes, double fault), ch. 5.8 (call gates),
 * ch. 20 (vm86: INT n IOPL rule, interrupts from vm86), Vol. 2 INT n, IRET, CALL, JMP, RET.
 *
 * Faults during delivery are raised before any register changes; memory below the stack pointer
 * may have been written (the frame) when a later push faults, as on hardware.
 * XXX(approx): EFLAGS.RF is not set in the image pushed for faults (no instruction breakpoints).
 * CR4.VME: INT n redirection through the TSS bitmap and the VIF rules of IRET (the core does
 * CLI/STI/PUSHF/POPF); CR4.PVI only affects CLI/STI (core).
 * Segment selectors pushed in 32-bit frames are zero-extended to 32 bits.
 */
import type { Cpu } from "./cpu.ts";
import { CR4, F, SReg, Slot, STATE_HALTED, STATE_IN_NMI, Vec } from "./state.ts";
import {
  ATTR_DB,
  ATTR_UNUSABLE,
  desc,
  descBase,
  descDpl,
  descLimit,
  descType,
  fetchDesc,
  isCode,
  isPresent,
  nullInvalidSegs,
  segOk,
  setAccessed,
  setRealSeg,
  setSeg,
  setVm86Seg,
} from "./seg.ts";
import { TaskReason, clearTaskTrap, taskDebugTrap, taskSwitch } from "./task.ts";

/** Why interrupt() is called. */
export const IntKind = {
  /** External interrupt (INTR, NMI). */
  HW: 0,
  /** INT n. */
  SOFT: 1,
  /** INT3, INTO (software exceptions: gate DPL checked, no IOPL rule in vm86). */
  SOFT_EXC: 2,
  /** A processor exception. */
  EXC: 3,
} as const;
export type IntKind = (typeof IntKind)[keyof typeof IntKind];


// ---------------------------------------------------------------------------------------------
// Stack access with explicit segment values (the new stack of a privilege change is not loaded
// yet when the frame is written). One frame at a time, module state (no allocation).

let fBase = 0;
let fLimit = 0;
let fAttr = 0;
let fSp = 0;
let fMask = 0;
let fUser = false;
let fErr = 0;

/** Starts a frame on a stack segment; fault error code for #SS is `err`. */
function frameInit(base: number, limit: number, attr: number, sp: number, user: boolean, err: number): void {
  fBase = base;
  fLimit = limit;
  fAttr = attr;
  fMask = (attr & ATTR_DB) !== 0 ? -1 : 0xffff;
  fSp = sp & fMask;
  fUser = user;
  fErr = err;
}

/** Starts a frame on the current SS:ESP. */
function frameCurrent(cpu: Cpu, err: number): void {
  const s = cpu.s;
  frameInit(s.segBase[SReg.SS]!, s.segLimit[SReg.SS]!, s.segAttr[SReg.SS]!, cpu.r32[4]!, cpu.i32[Slot.CPL] === 3, err);
}

/** Pushes 2 or 4 bytes; false with #SS(fErr) or #PF raised. */
function push(cpu: Cpu, v: number, size: number): boolean {
  const sp = (fSp - size) & fMask;
  if (!segOk(fAttr, fLimit, sp, size)) {
    cpu.raise(Vec.SS, fErr);
    return false;
  }
  cpu.mmu.writeAs((fBase + sp) | 0, size, v, fUser);
  if (cpu.faulted) return false;
  fSp = sp;
  return true;
}

/** Reads 2 or 4 bytes at SS:(ESP + off) of the current stack; #SS(0) beyond the limit. */
function peek(cpu: Cpu, off: number, size: number): number {
  const s = cpu.s;
  const attr = s.segAttr[SReg.SS]!;
  const mask = (attr & ATTR_DB) !== 0 ? -1 : 0xffff;
  const sp = (cpu.r32[4]! + off) & mask;
  if (!segOk(attr, s.segLimit[SReg.SS]!, sp, size)) {
    cpu.raise(Vec.SS, 0);
    return 0;
  }
  const v = cpu.mmu.readAs((s.segBase[SReg.SS]! + sp) | 0, size, cpu.i32[Slot.CPL] === 3);
  return size === 2 ? v & 0xffff : v;
}

/** Sets ESP (or SP for a 16-bit stack) to the frame's final pointer. */
function commitSp(cpu: Cpu): void {
  if (fMask === 0xffff) cpu.r16[8] = fSp;
  else cpu.r32[4] = fSp;
}

/** Adds n to ESP (or SP) of the current stack. */
function addSp(cpu: Cpu, n: number): void {
  if (cpu.ss32) cpu.r32[4] = (cpu.r32[4]! + n) | 0;
  else cpu.r16[8] = (cpu.r16[8]! + n) & 0xffff;
}

// ---------------------------------------------------------------------------------------------
// Interrupts

/** EFLAGS bits an interrupt through a gate clears (IF also for interrupt gates). */
const GATE_CLEAR = F.TF | F.NT | F.RF | F.VM;

/**
 * Delivers an interrupt or exception (SDM INT n / 6.12). `errorCode` -1 = none.
 * On a fault during delivery it raises that fault and changes no architectural state.
 */
export function interrupt(cpu: Cpu, vector: number, kind: IntKind, errorCode: number): void {
  const st = cpu.i32;
  st[Slot.STATE] = st[Slot.STATE]! & ~STATE_HALTED;
  if (vector === Vec.NMI && kind === IntKind.HW) st[Slot.STATE] = st[Slot.STATE]! | STATE_IN_NMI;
  if (!cpu.pmode && !cpu.vm86) {
    realInterrupt(cpu, vector);
    return;
  }
  if (cpu.vm86 && kind === IntKind.SOFT) {
    // SDM 20.3.3, Table 20-2: INT n in vm86 by CR4.VME, IOPL and the redirection bitmap.
    const iopl3 = (cpu.getFlags() & F.IOPL) === F.IOPL;
    if ((st[Slot.CR4]! & CR4.VME) !== 0) {
      const bit = redirectionBit(cpu, vector);
      if (bit < 0) return;
      if (bit === 0) {
        vm86Redirect(cpu, vector, iopl3);
        return;
      }
    }
    if (!iopl3) {
      cpu.raise(Vec.GP, 0);
      return;
    }
  }
  pmodeInterrupt(cpu, vector, kind, errorCode);
}

/**
 * The vector's bit in the interrupt redirection bitmap (the 32 bytes below the I/O map base of
 * the 32-bit TSS): 0 = redirect to the vm86 IVT, 1 = protected-mode handler; -1 after #GP(0).
 */
function redirectionBit(cpu: Cpu, vector: number): number {
  const s = cpu.s;
  const type = s.segAttr[SReg.TR]! & 0xf;
  const limit = s.segLimit[SReg.TR]! >>> 0;
  if ((type !== 9 && type !== 0xb) || limit < 0x67) {
    cpu.raise(Vec.GP, 0);
    return -1;
  }
  const base = s.segBase[SReg.TR]!;
  const mapBase = cpu.mmu.readSys16((base + 0x66) | 0);
  if (cpu.faulted) return -1;
  const off = mapBase - 32 + (vector >>> 3);
  if (off < 0 || off > limit) {
    cpu.raise(Vec.GP, 0);
    return -1;
  }
  const b = cpu.mmu.readSys8((base + off) | 0);
  if (cpu.faulted) return -1;
  return (b >>> (vector & 7)) & 1;
}

/**
 * VME redirection of INT n to the vm86 task's own IVT (linear 0): pushes FLAGS, CS, IP on the
 * vm86 stack. With IOPL < 3 the pushed FLAGS carry VIF as IF and IOPL = 3, and VIF is cleared
 * instead of IF. TF is cleared.
 */
function vm86Redirect(cpu: Cpu, vector: number, iopl3: boolean): void {
  const st = cpu.i32;
  const ip = cpu.mmu.readAs(vector << 2, 2, true);
  if (cpu.faulted) return;
  const cs = cpu.mmu.readAs((vector << 2) + 2, 2, true);
  if (cpu.faulted) return;
  const flags = cpu.getFlags();
  const image = iopl3 ? flags : (flags & ~F.IF) | ((flags & F.VIF) !== 0 ? F.IF : 0) | F.IOPL;
  frameCurrent(cpu, 0);
  if (!push(cpu, image, 2)) return;
  if (!push(cpu, cpu.s.segSel[SReg.CS]!, 2)) return;
  if (!push(cpu, st[Slot.EIP]!, 2)) return;
  commitSp(cpu);
  cpu.setFlags(flags & ~(F.TF | (iopl3 ? F.IF : F.VIF)));
  setVm86Seg(cpu, SReg.CS, cs);
  st[Slot.EIP] = ip;
}

/** Real mode: IVT at IDTR.base, push FLAGS, CS, IP; clear IF, TF, AC. */
function realInterrupt(cpu: Cpu, vector: number): void {
  const st = cpu.i32;
  const s = cpu.s;
  const ent = vector << 2;
  if (ent + 3 > st[Slot.IDTR_LIMIT]! >>> 0) {
    cpu.raise(Vec.GP, (vector << 3) | 2);
    return;
  }
  const addr = (st[Slot.IDTR_BASE]! + ent) | 0;
  const ip = cpu.mmu.readSys16(addr);
  if (cpu.faulted) return;
  const cs = cpu.mmu.readSys16((addr + 2) | 0);
  if (cpu.faulted) return;
  const flags = cpu.getFlags();
  frameCurrent(cpu, 0);
  if (!push(cpu, flags, 2)) return;
  if (!push(cpu, s.segSel[SReg.CS]!, 2)) return;
  if (!push(cpu, st[Slot.EIP]!, 2)) return;
  commitSp(cpu);
  cpu.setFlags(flags & ~(F.IF | F.TF | F.AC));
  setRealSeg(cpu, SReg.CS, cs);
  st[Slot.EIP] = ip;
}

/** Protected mode and vm86: through the IDT (interrupt, trap and task gates). */
function pmodeInterrupt(cpu: Cpu, vector: number, kind: IntKind, errorCode: number): void {
  const st = cpu.i32;
  const s = cpu.s;
  const ext = kind === IntKind.HW || kind === IntKind.EXC ? 1 : 0;
  const idtErr = (vector << 3) | 2 | ext;
  const ent = vector << 3;
  if (ent + 7 > st[Slot.IDTR_LIMIT]! >>> 0) {
    cpu.raise(Vec.GP, idtErr);
    return;
  }
  const ga = (st[Slot.IDTR_BASE]! + ent) | 0;
  const glo = cpu.mmu.readSys32(ga);
  if (cpu.faulted) return;
  const ghi = cpu.mmu.readSys32((ga + 4) | 0);
  if (cpu.faulted) return;
  const gtype = descType(ghi);
  if (gtype !== 5 && gtype !== 6 && gtype !== 7 && gtype !== 0xe && gtype !== 0xf) {
    cpu.raise(Vec.GP, idtErr);
    return;
  }
  const cpl = st[Slot.CPL]!;
  if ((kind === IntKind.SOFT || kind === IntKind.SOFT_EXC) && descDpl(ghi) < cpl) {
    cpu.raise(Vec.GP, idtErr);
    return;
  }
  if (!isPresent(ghi)) {
    cpu.raise(Vec.NP, idtErr);
    return;
  }
  const gsel = glo >>> 16;
  if (gtype === 5) {
    taskGate(cpu, gsel, ext, errorCode);
    return;
  }
  const gate32 = (gtype & 8) !== 0;
  const size = gate32 ? 4 : 2;
  const offset = gate32 ? (ghi & 0xffff0000) | (glo & 0xffff) : glo & 0xffff;
  if ((gsel & 0xfffc) === 0) {
    cpu.raise(Vec.GP, ext);
    return;
  }
  const r = fetchDesc(cpu, gsel);
  if (r < 0) return;
  const chi = desc.hi;
  const clo = desc.lo;
  const cdpl = descDpl(chi);
  if (r === 0 || !isCode(chi) || cdpl > cpl) {
    cpu.raise(Vec.GP, (gsel & 0xfffc) | ext);
    return;
  }
  if (!isPresent(chi)) {
    cpu.raise(Vec.NP, (gsel & 0xfffc) | ext);
    return;
  }
  const climit = descLimit(clo, chi);
  if (offset >>> 0 > climit >>> 0) {
    cpu.raise(Vec.GP, ext);
    return;
  }
  const caddr = desc.addr;
  const conforming = (chi & 0x400) !== 0;
  const flags = cpu.getFlags();
  const vm86 = cpu.vm86;
  let newCpl = cpl;
  if (!conforming && cdpl < cpl) {
    // To an inner level: new stack from the TSS.
    if (vm86 && cdpl !== 0) {
      cpu.raise(Vec.GP, (gsel & 0xfffc) | ext);
      return;
    }
    newCpl = cdpl;
    if (!tssStack(cpu, newCpl, ext)) return;
    const ssSel = tSs;
    if (!checkNewSs(cpu, ssSel, newCpl, ext, Vec.TS)) return;
    const sslo = desc.lo;
    const sshi = desc.hi;
    const ssaddr = desc.addr;
    const ssAttr = (sshi >>> 8) & 0xf0ff;
    frameInit(descBase(sslo, sshi), descLimit(sslo, sshi), ssAttr, tEsp, newCpl === 3, (ssSel & 0xfffc) | ext);
    if (vm86) {
      if (!push(cpu, s.segSel[SReg.GS]!, size)) return;
      if (!push(cpu, s.segSel[SReg.FS]!, size)) return;
      if (!push(cpu, s.segSel[SReg.DS]!, size)) return;
      if (!push(cpu, s.segSel[SReg.ES]!, size)) return;
    }
    if (!push(cpu, s.segSel[SReg.SS]!, size)) return;
    if (!push(cpu, cpu.r32[4]!, size)) return;
    if (!push(cpu, flags, size)) return;
    if (!push(cpu, s.segSel[SReg.CS]!, size)) return;
    if (!push(cpu, st[Slot.EIP]!, size)) return;
    if (errorCode >= 0 && !push(cpu, errorCode, size)) return;
    // Accessed bits, then commit.
    desc.lo = sslo;
    desc.hi = sshi;
    desc.addr = ssaddr;
    setAccessed(cpu);
    if (cpu.faulted) return;
    setSeg(cpu, SReg.SS, (ssSel & 0xfffc) | newCpl, sslo, desc.hi);
    if (fMask === 0xffff) cpu.r32[4] = (tEsp & ~0xffff) | fSp;
    else cpu.r32[4] = fSp;
    if (vm86) {
      for (let i = 0; i < DATA_SEGS.length; i++) {
        const r2 = DATA_SEGS[i]!;
        s.segSel[r2] = 0;
        s.segBase[r2] = 0;
        s.segLimit[r2] = 0;
        s.segAttr[r2] = ATTR_UNUSABLE;
      }
    }
  } else {
    if (vm86) {
      cpu.raise(Vec.GP, (gsel & 0xfffc) | ext);
      return;
    }
    frameCurrent(cpu, ext);
    if (!push(cpu, flags, size)) return;
    if (!push(cpu, s.segSel[SReg.CS]!, size)) return;
    if (!push(cpu, st[Slot.EIP]!, size)) return;
    if (errorCode >= 0 && !push(cpu, errorCode, size)) return;
    commitSp(cpu);
  }
  desc.lo = clo;
  desc.hi = chi;
  desc.addr = caddr;
  setAccessed(cpu);
  setSeg(cpu, SReg.CS, (gsel & 0xfffc) | newCpl, clo, desc.hi);
  st[Slot.CPL] = newCpl;
  st[Slot.EIP] = offset;
  let nf = flags & ~GATE_CLEAR;
  if ((gtype & 1) === 0) nf &= ~F.IF;
  cpu.setFlags(nf);
  cpu.modeChanged();
}

const DATA_SEGS = [SReg.ES, SReg.DS, SReg.FS, SReg.GS] as const;


/** Stack of an inner level read from the TSS by tssStack(). */
let tSs = 0;
let tEsp = 0;

/** Reads SS:ESP for privilege level `dpl` from the current TSS; #TS(TR) if beyond its limit. */
function tssStack(cpu: Cpu, dpl: number, ext: number): boolean {
  const s = cpu.s;
  const type = s.segAttr[SReg.TR]! & 0xf;
  const base = s.segBase[SReg.TR]!;
  const limit = s.segLimit[SReg.TR]! >>> 0;
  if ((type & 8) !== 0) {
    const off = 4 + dpl * 8;
    if (off + 5 > limit) {
      cpu.raise(Vec.TS, (s.segSel[SReg.TR]! & 0xfffc) | ext);
      return false;
    }
    tEsp = cpu.mmu.readSys32((base + off) | 0);
    if (cpu.faulted) return false;
    tSs = cpu.mmu.readSys16((base + off + 4) | 0);
  } else {
    const off = 2 + dpl * 4;
    if (off + 3 > limit) {
      cpu.raise(Vec.TS, (s.segSel[SReg.TR]! & 0xfffc) | ext);
      return false;
    }
    tEsp = cpu.mmu.readSys16((base + off) | 0);
    if (cpu.faulted) return false;
    tSs = cpu.mmu.readSys16((base + off + 2) | 0);
  }
  return !cpu.faulted;
}

/**
 * Checks a new SS for a privilege change to `cpl` (interrupt or call gate: faults #TS; RET/IRET
 * to an outer level: #GP). Leaves the descriptor in `desc`.
 */
function checkNewSs(cpu: Cpu, sel: number, cpl: number, ext: number, vec: number): boolean {
  if ((sel & 0xfffc) === 0) {
    cpu.raise(vec, ext);
    return false;
  }
  if ((sel & 3) !== cpl) {
    cpu.raise(vec, (sel & 0xfffc) | ext);
    return false;
  }
  const r = fetchDesc(cpu, sel);
  if (r < 0) return false;
  if (r === 0 || (desc.hi & 0x1a00) !== 0x1200 || descDpl(desc.hi) !== cpl) {
    cpu.raise(vec, (sel & 0xfffc) | ext);
    return false;
  }
  if (!isPresent(desc.hi)) {
    cpu.raise(Vec.SS, (sel & 0xfffc) | ext);
    return false;
  }
  return true;
}

/** Interrupt through a task gate: switch tasks, then push the error code on the new stack. */
function taskGate(cpu: Cpu, tssSel: number, ext: number, errorCode: number): void {
  if (!taskSwitch(cpu, tssSel, TaskReason.INT, ext)) return;
  clearTaskTrap();
  if (errorCode >= 0) {
    const size = (cpu.s.segAttr[SReg.TR]! & 8) !== 0 ? 4 : 2;
    frameCurrent(cpu, 0);
    if (!push(cpu, errorCode, size)) return;
    commitSp(cpu);
  }
}

// ---------------------------------------------------------------------------------------------
// Exceptions: double and triple fault

/** Contributory exceptions (SDM Table 6-5): #DE, #TS, #NP, #SS, #GP. */
function contributory(v: number): boolean {
  return v === Vec.DE || v === Vec.TS || v === Vec.NP || v === Vec.SS || v === Vec.GP;
}

/**
 * Delivers an exception the core recorded (EIP already back at the faulting instruction for
 * faults). A fault while delivering becomes #DF per SDM Table 6-5 (contributory+contributory,
 * #PF+contributory, #PF+#PF) or is delivered itself (benign); a fault while delivering #DF is a
 * triple fault: cpu.tripleFault() (bus.onTripleFault(), run() returns TRIPLE_FAULT), true is returned.
 */
export function deliverException(cpu: Cpu, vector: number, errorCode: number): boolean {
  let v = vector;
  let e = hasErrorCode(v) ? errorCode : -1;
  for (;;) {
    cpu.faulted = false;
    interrupt(cpu, v, IntKind.EXC, e);
    if (!cpu.faulted) return false;
    const v2 = cpu.excVector;
    const e2 = cpu.excError;
    cpu.faulted = false;
    if (v === Vec.DF) {
      cpu.tripleFault();
      return true;
    }
    if ((contributory(v) && contributory(v2)) || (v === Vec.PF && (contributory(v2) || v2 === Vec.PF))) {
      v = Vec.DF;
      e = 0;
    } else {
      v = v2;
      e = hasErrorCode(v2) ? e2 : -1;
    }
  }
}

/** Exceptions that push an error code in protected mode. */
function hasErrorCode(v: number): boolean {
  return v === Vec.DF || (v >= Vec.TS && v <= Vec.PF) || v === Vec.AC;
}

// ---------------------------------------------------------------------------------------------
// Far transfers

/** Checks a code-segment target for JMP/CALL without a gate (and the gate's target). */
function codeTargetOk(cpu: Cpu, sel: number, hi: number, cpl: number, viaGate: boolean): boolean {
  const dpl = descDpl(hi);
  if (!isCode(hi)) {
    cpu.raise(Vec.GP, sel & 0xfffc);
    return false;
  }
  if ((hi & 0x400) !== 0) {
    if (dpl > cpl) {
      cpu.raise(Vec.GP, sel & 0xfffc);
      return false;
    }
  } else if (viaGate ? dpl > cpl : (sel & 3) > cpl || dpl !== cpl) {
    cpu.raise(Vec.GP, sel & 0xfffc);
    return false;
  }
  if (!isPresent(hi)) {
    cpu.raise(Vec.NP, sel & 0xfffc);
    return false;
  }
  return true;
}

/** Loads CS with RPL = CPL (same level) and EIP; checks EIP against the limit first. */
function loadCsSame(cpu: Cpu, sel: number, eip: number): boolean {
  const lim = descLimit(desc.lo, desc.hi);
  if (eip >>> 0 > lim >>> 0) {
    cpu.raise(Vec.GP, 0);
    return false;
  }
  setAccessed(cpu);
  if (cpu.faulted) return false;
  const cpl = cpu.i32[Slot.CPL]!;
  setSeg(cpu, SReg.CS, (sel & 0xfffc) | cpl, desc.lo, desc.hi);
  cpu.i32[Slot.EIP] = eip;
  cpu.modeChanged();
  return true;
}

/** Real mode and vm86 far JMP/CALL target. */
function realCs(cpu: Cpu, sel: number, eip: number): boolean {
  if (eip >>> 0 > cpu.s.segLimit[SReg.CS]! >>> 0) {
    cpu.raise(Vec.GP, 0);
    return false;
  }
  if (cpu.vm86) setVm86Seg(cpu, SReg.CS, sel);
  else setRealSeg(cpu, SReg.CS, sel);
  cpu.i32[Slot.EIP] = eip;
  cpu.modeChanged();
  return true;
}

/** JMP ptr16:16/32 and JMP m16:16/32. `off` is already the operand (16 or 32 bits). */
/**
 * Reads the descriptor a protected-mode far JMP/CALL (or a call gate) names into `desc`: a null selector is #GP(0),
 * one outside its table #GP(selector). False when a fault was raised.
 */
function farTarget(cpu: Cpu, sel: number): boolean {
  if ((sel & 0xfffc) === 0) {
    cpu.raise(Vec.GP, 0);
    return false;
  }
  const r = fetchDesc(cpu, sel);
  if (r < 0) return false;
  if (r === 0) {
    cpu.raise(Vec.GP, sel & 0xfffc);
    return false;
  }
  return true;
}

/**
 * The checks JMP and CALL make on a call gate, task gate or TSS they name (other system types fall
 * through to the caller's #GP): DPL >= CPL and >= RPL, else #GP(selector); present, else #NP.
 */
function gateOrTssOk(cpu: Cpu, sel: number, hi: number, type: number, cpl: number): boolean {
  if (type === 4 || type === 0xc || type === 5 || type === 1 || type === 9) {
    const dpl = descDpl(hi);
    if (dpl < cpl || dpl < (sel & 3)) {
      cpu.raise(Vec.GP, sel & 0xfffc);
      return false;
    }
    if (!isPresent(hi)) {
      cpu.raise(Vec.NP, sel & 0xfffc);
      return false;
    }
  }
  return true;
}

/** A far JMP/CALL to a task gate (type 5) or an available TSS (1, 9) switches tasks; true if it was one. */
function farTask(cpu: Cpu, sel: number, type: number, reason: TaskReason): boolean {
  if (type === 5) {
    if (taskSwitch(cpu, desc.lo >>> 16, reason, 0)) taskDebugTrap(cpu);
    return true;
  }
  if (type === 1 || type === 9) {
    if (taskSwitch(cpu, sel, reason, 0)) taskDebugTrap(cpu);
    return true;
  }
  return false;
}

export function farJmp(cpu: Cpu, sel: number, off: number, o32: boolean): void {
  sel &= 0xffff;
  if (!o32) off &= 0xffff;
  if (!cpu.pmode) {
    realCs(cpu, sel, off);
    return;
  }
  const cpl = cpu.i32[Slot.CPL]!;
  if (!farTarget(cpu, sel)) return;
  const hi = desc.hi;
  if ((hi & 0x1000) !== 0) {
    if (!codeTargetOk(cpu, sel, hi, cpl, false)) return;
    loadCsSame(cpu, sel, off);
    return;
  }
  const type = descType(hi);
  if (!gateOrTssOk(cpu, sel, hi, type, cpl)) return;
  if (type === 4 || type === 0xc) {
    const lo = desc.lo;
    const tsel = lo >>> 16;
    const toff = type === 0xc ? (hi & 0xffff0000) | (lo & 0xffff) : lo & 0xffff;
    if (!farTarget(cpu, tsel)) return;
    // JMP through a call gate cannot change the privilege level.
    const thi = desc.hi;
    if (isCode(thi) && (thi & 0x400) === 0 && descDpl(thi) !== cpl) {
      cpu.raise(Vec.GP, tsel & 0xfffc);
      return;
    }
    if (!codeTargetOk(cpu, tsel, thi, cpl, true)) return;
    loadCsSame(cpu, tsel, toff);
    return;
  }
  if (farTask(cpu, sel, type, TaskReason.JMP)) return;
  cpu.raise(Vec.GP, sel & 0xfffc);
}

/** CALL ptr16:16/32 and CALL m16:16/32 (pushes CS:IP of the next instruction). */
export function farCall(cpu: Cpu, sel: number, off: number, o32: boolean): void {
  sel &= 0xffff;
  if (!o32) off &= 0xffff;
  const s = cpu.s;
  const st = cpu.i32;
  const size = o32 ? 4 : 2;
  if (!cpu.pmode) {
    if (off >>> 0 > s.segLimit[SReg.CS]! >>> 0) {
      cpu.raise(Vec.GP, 0);
      return;
    }
    frameCurrent(cpu, 0);
    if (!push(cpu, s.segSel[SReg.CS]!, size)) return;
    if (!push(cpu, st[Slot.EIP]!, size)) return;
    commitSp(cpu);
    realCs(cpu, sel, off);
    return;
  }
  const cpl = st[Slot.CPL]!;
  if (!farTarget(cpu, sel)) return;
  const hi = desc.hi;
  if ((hi & 0x1000) !== 0) {
    if (!codeTargetOk(cpu, sel, hi, cpl, false)) return;
    if (off >>> 0 > descLimit(desc.lo, hi) >>> 0) {
      cpu.raise(Vec.GP, 0);
      return;
    }
    frameCurrent(cpu, 0);
    if (!push(cpu, s.segSel[SReg.CS]!, size)) return;
    if (!push(cpu, st[Slot.EIP]!, size)) return;
    if (!loadCsSame(cpu, sel, off)) return;
    commitSp(cpu);
    return;
  }
  const type = descType(hi);
  if (!gateOrTssOk(cpu, sel, hi, type, cpl)) return;
  if (farTask(cpu, sel, type, TaskReason.CALL)) return;
  if (type !== 4 && type !== 0xc) {
    cpu.raise(Vec.GP, sel & 0xfffc);
    return;
  }
  callGate(cpu, desc.lo, hi);
}

/** CALL through a call gate (SDM 5.8.5): same level, or inner level with stack switch and parameters. */
function callGate(cpu: Cpu, glo: number, ghi: number): void {
  const s = cpu.s;
  const st = cpu.i32;
  const cpl = st[Slot.CPL]!;
  const gate32 = (ghi & 0x800) !== 0;
  const size = gate32 ? 4 : 2;
  const tsel = glo >>> 16;
  const toff = gate32 ? (ghi & 0xffff0000) | (glo & 0xffff) : glo & 0xffff;
  const count = ghi & 0x1f;
  if ((tsel & 0xfffc) === 0) {
    cpu.raise(Vec.GP, 0);
    return;
  }
  const r = fetchDesc(cpu, tsel);
  if (r < 0) return;
  if (r === 0) {
    cpu.raise(Vec.GP, tsel & 0xfffc);
    return;
  }
  const chi = desc.hi;
  const clo = desc.lo;
  const caddr = desc.addr;
  if (!codeTargetOk(cpu, tsel, chi, cpl, true)) return;
  const cdpl = descDpl(chi);
  if (toff >>> 0 > descLimit(clo, chi) >>> 0) {
    cpu.raise(Vec.GP, 0);
    return;
  }
  if ((chi & 0x400) === 0 && cdpl < cpl) {
    // More privileged: stack from the TSS, copy `count` parameters.
    if (!tssStack(cpu, cdpl, 0)) return;
    const ssSel = tSs;
    if (!checkNewSs(cpu, ssSel, cdpl, 0, Vec.TS)) return;
    const sslo = desc.lo;
    const sshi = desc.hi;
    const ssaddr = desc.addr;
    frameInit(descBase(sslo, sshi), descLimit(sslo, sshi), (sshi >>> 8) & 0xf0ff, tEsp, false, ssSel & 0xfffc);
    if (!push(cpu, s.segSel[SReg.SS]!, size)) return;
    if (!push(cpu, cpu.r32[4]!, size)) return;
    for (let i = count - 1; i >= 0; i--) {
      const p = peek(cpu, i * size, size);
      if (cpu.faulted) return;
      if (!push(cpu, p, size)) return;
    }
    if (!push(cpu, s.segSel[SReg.CS]!, size)) return;
    if (!push(cpu, st[Slot.EIP]!, size)) return;
    desc.lo = sslo;
    desc.hi = sshi;
    desc.addr = ssaddr;
    setAccessed(cpu);
    if (cpu.faulted) return;
    setSeg(cpu, SReg.SS, (ssSel & 0xfffc) | cdpl, sslo, desc.hi);
    if (fMask === 0xffff) cpu.r32[4] = (tEsp & ~0xffff) | fSp;
    else cpu.r32[4] = fSp;
    desc.lo = clo;
    desc.hi = chi;
    desc.addr = caddr;
    setAccessed(cpu);
    st[Slot.CPL] = cdpl;
    setSeg(cpu, SReg.CS, (tsel & 0xfffc) | cdpl, clo, desc.hi);
    st[Slot.EIP] = toff;
    cpu.modeChanged();
    return;
  }
  frameCurrent(cpu, 0);
  if (!push(cpu, s.segSel[SReg.CS]!, size)) return;
  if (!push(cpu, st[Slot.EIP]!, size)) return;
  desc.lo = clo;
  desc.hi = chi;
  desc.addr = caddr;
  if (!loadCsSame(cpu, tsel, toff)) return;
  commitSp(cpu);
}

/**
 * Checks a CS popped by RET/IRET in protected mode: not null, RPL >= CPL, code, DPL rules,
 * present. Leaves the descriptor in `desc`.
 */
function checkRetCs(cpu: Cpu, sel: number): boolean {
  const cpl = cpu.i32[Slot.CPL]!;
  if ((sel & 0xfffc) === 0) {
    cpu.raise(Vec.GP, 0);
    return false;
  }
  const rpl = sel & 3;
  if (rpl < cpl) {
    cpu.raise(Vec.GP, sel & 0xfffc);
    return false;
  }
  const r = fetchDesc(cpu, sel);
  if (r < 0) return false;
  const hi = desc.hi;
  const dpl = descDpl(hi);
  if (r === 0 || !isCode(hi) || ((hi & 0x400) !== 0 ? dpl > rpl : dpl !== rpl)) {
    cpu.raise(Vec.GP, sel & 0xfffc);
    return false;
  }
  if (!isPresent(hi)) {
    cpu.raise(Vec.NP, sel & 0xfffc);
    return false;
  }
  return true;
}

/**
 * Return to an outer level (RET/IRET): the frame at ESP+`at` holds ESP, SS. Loads CS (in `desc`
 * on entry), SS, ESP (+ popBytes), CPL, nulls data segments the new level may not use.
 */
function returnOuter(cpu: Cpu, csSel: number, eip: number, at: number, size: number, popBytes: number): boolean {
  const clo = desc.lo;
  const chi = desc.hi;
  const caddr = desc.addr;
  const rpl = csSel & 3;
  const nEsp = peek(cpu, at, size);
  if (cpu.faulted) return false;
  const nSs = peek(cpu, at + size, size) & 0xffff;
  if (cpu.faulted) return false;
  if (!checkNewSs(cpu, nSs, rpl, 0, Vec.GP)) return false;
  if (eip >>> 0 > descLimit(clo, chi) >>> 0) {
    cpu.raise(Vec.GP, 0);
    return false;
  }
  setAccessed(cpu);
  if (cpu.faulted) return false;
  setSeg(cpu, SReg.SS, nSs, desc.lo, desc.hi);
  desc.lo = clo;
  desc.hi = chi;
  desc.addr = caddr;
  setAccessed(cpu);
  setSeg(cpu, SReg.CS, csSel, clo, desc.hi);
  cpu.i32[Slot.CPL] = rpl;
  cpu.i32[Slot.EIP] = eip;
  cpu.modeChanged();
  const e = size === 2 ? nEsp & 0xffff : nEsp;
  if (cpu.ss32) cpu.r32[4] = (e + popBytes) | 0;
  else cpu.r16[8] = (e + popBytes) & 0xffff;
  nullInvalidSegs(cpu);
  return true;
}

/** RETF [imm16]: pops EIP/IP and CS (and SS:ESP for an outer level), then releases popBytes. */
export function farRet(cpu: Cpu, o32: boolean, popBytes: number): void {
  const size = o32 ? 4 : 2;
  const st = cpu.i32;
  let eip = peek(cpu, 0, size);
  if (cpu.faulted) return;
  const cs = peek(cpu, size, size) & 0xffff;
  if (cpu.faulted) return;
  if (!o32) eip &= 0xffff;
  if (!cpu.pmode) {
    if (!realCs(cpu, cs, eip)) return;
    addSp(cpu, 2 * size + popBytes);
    return;
  }
  if (!checkRetCs(cpu, cs)) return;
  if ((cs & 3) === st[Slot.CPL]) {
    if (!loadCsSame(cpu, cs, eip)) return;
    addSp(cpu, 2 * size + popBytes);
    return;
  }
  returnOuter(cpu, cs, eip, 2 * size + popBytes, size, popBytes);
}

/** EFLAGS bits IRET may change at any level (CF PF AF ZF SF TF DF OF NT RF AC ID). */
const IRET_BASE = 0x254dd5;

/** IRET/IRETD in every mode (task return when NT in protected mode). */
export function iret(cpu: Cpu, o32: boolean): void {
  const st = cpu.i32;
  const size = o32 ? 4 : 2;
  if (cpu.pmode && (cpu.getFlags() & F.NT) !== 0) {
    const link = cpu.mmu.readSys16(cpu.s.segBase[SReg.TR]!);
    if (cpu.faulted) return;
    if ((link & 4) !== 0) {
      cpu.raise(Vec.TS, link & 0xfffc);
      return;
    }
    if (taskSwitch(cpu, link, TaskReason.IRET, 0)) {
      endNmi(cpu);
      taskDebugTrap(cpu);
    }
    return;
  }
  let eip = peek(cpu, 0, size);
  if (cpu.faulted) return;
  const cs = peek(cpu, size, size) & 0xffff;
  if (cpu.faulted) return;
  const fl = peek(cpu, 2 * size, size);
  if (cpu.faulted) return;
  if (!o32) eip &= 0xffff;
  const old = cpu.getFlags();
  if (!cpu.pmode && !cpu.vm86) {
    if (!realCs(cpu, cs, eip)) return;
    addSp(cpu, 3 * size);
    // Real mode: every flag but VM/VIP/VIF (32-bit) or the low word (16-bit).
    cpu.setFlags(o32 ? (fl & 0x257fd5) | (old & 0x1a0000) : (old & ~0xffff) | (fl & 0x7fd5));
    endNmi(cpu);
    return;
  }
  if (cpu.vm86) {
    if ((old & F.IOPL) !== F.IOPL) {
      // CR4.VME, 16-bit IRET: IF goes to VIF; #GP(0) if that would enable a pending virtual
      // interrupt or set TF (SDM 20.4.3). Anything else at IOPL < 3 is #GP(0).
      if (o32 || (cpu.i32[Slot.CR4]! & CR4.VME) === 0 || (fl & F.TF) !== 0 || ((fl & F.IF) !== 0 && (old & F.VIP) !== 0)) {
        cpu.raise(Vec.GP, 0);
        return;
      }
      if (!realCs(cpu, cs, eip)) return;
      addSp(cpu, 6);
      cpu.setFlags((old & ~(0x4dd5 | F.VIF)) | (fl & 0x4dd5) | ((fl & F.IF) !== 0 ? F.VIF : 0));
      endNmi(cpu);
      return;
    }
    if (!realCs(cpu, cs, eip)) return;
    addSp(cpu, 3 * size);
    // IOPL (and VM, VIP, VIF) are not changed by IRET in vm86.
    const keep = F.IOPL | F.VM | F.VIP | F.VIF;
    cpu.setFlags(o32 ? (fl & 0x3f7fd5 & ~keep) | (old & keep) : (old & ~0xffff) | (fl & 0x7fd5 & ~F.IOPL) | (old & F.IOPL));
    endNmi(cpu);
    return;
  }
  const cpl = st[Slot.CPL]!;
  if (o32 && (fl & F.VM) !== 0 && cpl === 0) {
    iretToVm86(cpu, eip, cs, fl);
    return;
  }
  if (!checkRetCs(cpu, cs)) return;
  // Flags the new value may change, decided by the level before the return.
  let mask = o32 ? IRET_BASE : 0x4dd5;
  const iopl = (old >>> 12) & 3;
  if (cpl <= iopl) mask |= F.IF;
  if (cpl === 0) mask |= F.IOPL | (o32 ? F.VIF | F.VIP : 0);
  const nf = (old & ~mask) | (fl & mask);
  if ((cs & 3) === cpl) {
    if (!loadCsSame(cpu, cs, eip)) return;
    addSp(cpu, 3 * size);
  } else if (!returnOuter(cpu, cs, eip, 3 * size, size, 0)) return;
  cpu.setFlags(nf);
  cpu.modeChanged();
  endNmi(cpu);
}

/** IRETD at CPL 0 with VM set in the popped EFLAGS: the frame continues ESP, SS, ES, DS, FS, GS. */
function iretToVm86(cpu: Cpu, eip: number, cs: number, fl: number): void {
  const vals = VM86_POP;
  for (let i = 0; i < 6; i++) {
    vals[i] = peek(cpu, 12 + i * 4, 4);
    if (cpu.faulted) return;
  }
  cpu.setFlags(fl & 0x3f7fd5);
  cpu.i32[Slot.CPL] = 3;
  // EFLAGS.VM is now set: segments load the vm86 way.
  setVm86Seg(cpu, SReg.CS, cs);
  setVm86Seg(cpu, SReg.SS, vals[1]!);
  setVm86Seg(cpu, SReg.ES, vals[2]!);
  setVm86Seg(cpu, SReg.DS, vals[3]!);
  setVm86Seg(cpu, SReg.FS, vals[4]!);
  setVm86Seg(cpu, SReg.GS, vals[5]!);
  cpu.r32[4] = vals[0]!;
  cpu.i32[Slot.EIP] = eip & 0xffff;
  cpu.modeChanged();
  endNmi(cpu);
}
const VM86_POP = new Int32Array(6);

/** IRET ends NMI blocking. */
function endNmi(cpu: Cpu): void {
  cpu.i32[Slot.STATE] = cpu.i32[Slot.STATE]! & ~STATE_IN_NMI;
}
