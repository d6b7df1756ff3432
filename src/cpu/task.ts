/**
 * Hardware task switches (JMP/CALL to a TSS or task gate, INT through a task gate, IRET with NT).
 * References: Intel SDM Vol. 3A ch. 7 (task management: TSS layouts, 7.3 task switching steps,
 * busy bit and NT/back-link rules, Table 7-1 checks).
 *
 * 32-bit TSS: 0 link, 4 ESP0, 8 SS0, 0C ESP1, 10 SS1, 14 ESP2, 18 SS2, 1C CR3, 20 EIP, 24 EFLAGS,
 *   28..44 EAX ECX EDX EBX ESP EBP ESI EDI, 48 ES, 4C CS, 50 SS, 54 DS, 58 FS, 5C GS, 60 LDT,
 *   64 T bit, 66 I/O map base. Minimum limit 0x67.
 * 16-bit TSS: 0 link, 2 SP0, 4 SS0, 6 SP1, 8 SS1, 0A SP2, 0C SS2, 0E IP, 10 FLAGS,
 *   12..20 AX CX DX BX SP BP SI DI, 22 ES, 24 CS, 26 SS, 28 DS, 2A LDT. Minimum limit 0x2B.
 *
 * The old task's state is written before the new task's descriptors are checked; the segment
 * selectors of the new task are all loaded before their descriptors, and a fault loading one is
 * raised in the new task's context (SDM 7.3 step 13 and Table 7-1).
 */
import type { Cpu } from "./cpu.ts";
import { CR0, F, SReg, Slot, Vec } from "./state.ts";
import {
  desc,
  descBase,
  descDpl,
  descLimit,
  descType,
  fetchDesc,
  isCode,
  isPresent,
  setAccessed,
  setNullSeg,
  setSeg,
  setVm86Seg,
} from "./seg.ts";

/** Why a task switch happens. */
export const TaskReason = { JMP: 0, CALL: 1, IRET: 2, INT: 3 } as const;
export type TaskReason = (typeof TaskReason)[keyof typeof TaskReason];

/** New task state read before anything is committed: EIP, EFLAGS, 8 regs, 6 sregs, LDT, CR3, T bit. */
const N = new Int32Array(19);
const N_EIP = 0;
const N_FLAGS = 1;
const N_REGS = 2;
const N_SEGS = 10; // ES CS SS DS FS GS
const N_LDT = 16;
const N_CR3 = 17;
const N_TRAP = 18;

/**
 * Switches to the task whose TSS selector is `sel`. `ext` is the EXT bit for error codes.
 * Returns false with a fault raised (before the commit point nothing is changed; a fault loading
 * the new task's segments is raised in the new task's context, with cpu.instrStart = new EIP).
 */
export function taskSwitch(cpu: Cpu, sel: number, reason: TaskReason, ext: number): boolean {
  const s = cpu.s;
  const st = cpu.i32;
  const mmu = cpu.mmu;
  sel &= 0xffff;
  const selErr = (sel & 0xfffc) | ext;
  const badVec = reason === TaskReason.IRET ? Vec.TS : Vec.GP;
  if ((sel & 4) !== 0 || (sel & 0xfffc) === 0) {
    cpu.raise(badVec, selErr);
    return false;
  }
  const r = fetchDesc(cpu, sel);
  if (r < 0) return false;
  const nlo = desc.lo;
  let nhi = desc.hi;
  const naddr = desc.addr;
  const t = descType(nhi);
  const wantBusy = reason === TaskReason.IRET;
  if (r === 0 || (wantBusy ? t !== 3 && t !== 0xb : t !== 1 && t !== 9)) {
    cpu.raise(badVec, selErr);
    return false;
  }
  if (!isPresent(nhi)) {
    cpu.raise(Vec.NP, selErr);
    return false;
  }
  const n32 = (t & 8) !== 0;
  const nbase = descBase(nlo, nhi);
  const nlimit = descLimit(nlo, nhi) >>> 0;
  if (nlimit < (n32 ? 0x67 : 0x2b)) {
    cpu.raise(Vec.TS, selErr);
    return false;
  }
  // Read the new task's state.
  if (n32) {
    N[N_CR3] = mmu.readSys32((nbase + 0x1c) | 0);
    N[N_EIP] = mmu.readSys32((nbase + 0x20) | 0);
    N[N_FLAGS] = mmu.readSys32((nbase + 0x24) | 0);
    for (let i = 0; i < 8; i++) N[N_REGS + i] = mmu.readSys32((nbase + 0x28 + i * 4) | 0);
    for (let i = 0; i < 6; i++) N[N_SEGS + i] = mmu.readSys16((nbase + 0x48 + i * 4) | 0);
    N[N_LDT] = mmu.readSys16((nbase + 0x60) | 0);
    N[N_TRAP] = mmu.readSys16((nbase + 0x64) | 0) & 1;
  } else {
    N[N_CR3] = st[Slot.CR3]!;
    N[N_EIP] = mmu.readSys16((nbase + 0x0e) | 0);
    N[N_FLAGS] = mmu.readSys16((nbase + 0x10) | 0);
    for (let i = 0; i < 8; i++) N[N_REGS + i] = mmu.readSys16((nbase + 0x12 + i * 2) | 0);
    for (let i = 0; i < 4; i++) N[N_SEGS + i] = mmu.readSys16((nbase + 0x22 + i * 2) | 0);
    N[N_SEGS + 4] = 0;
    N[N_SEGS + 5] = 0;
    N[N_LDT] = mmu.readSys16((nbase + 0x2a) | 0);
    N[N_TRAP] = 0;
  }
  if (cpu.faulted) return false;

  // Save the current task into its TSS.
  const otr = s.segSel[SReg.TR]!;
  const obase = s.segBase[SReg.TR]!;
  const o32 = (s.segAttr[SReg.TR]! & 8) !== 0;
  if (s.segLimit[SReg.TR]! >>> 0 < (o32 ? 0x67 : 0x2b)) {
    cpu.raise(Vec.TS, (otr & 0xfffc) | ext);
    return false;
  }
  let oflags = cpu.getFlags();
  if (reason === TaskReason.IRET) oflags &= ~F.NT;
  if (o32) {
    mmu.writeSys32((obase + 0x20) | 0, st[Slot.EIP]!);
    mmu.writeSys32((obase + 0x24) | 0, oflags);
    for (let i = 0; i < 8; i++) mmu.writeSys32((obase + 0x28 + i * 4) | 0, cpu.r32[i]!);
    for (let i = 0; i < 6; i++) mmu.writeSys16((obase + 0x48 + i * 4) | 0, s.segSel[i]!);
  } else {
    mmu.writeSys16((obase + 0x0e) | 0, st[Slot.EIP]!);
    mmu.writeSys16((obase + 0x10) | 0, oflags);
    for (let i = 0; i < 8; i++) mmu.writeSys16((obase + 0x12 + i * 2) | 0, cpu.r32[i]!);
    for (let i = 0; i < 4; i++) mmu.writeSys16((obase + 0x22 + i * 2) | 0, s.segSel[i]!);
  }
  if (cpu.faulted) return false;
  // Old task's busy bit: cleared by JMP and IRET (the old task is left), kept by CALL/INT (nested).
  if (reason === TaskReason.JMP || reason === TaskReason.IRET) {
    if (fetchDesc(cpu, otr) > 0) {
      mmu.writeSys8((desc.addr + 5) | 0, (desc.hi >>> 8) & ~2 & 0xff);
    }
    if (cpu.faulted) return false;
  }
  let nflags = N[N_FLAGS]!;
  if (reason === TaskReason.CALL || reason === TaskReason.INT) {
    mmu.writeSys16(nbase, otr);
    if (cpu.faulted) return false;
    nflags |= F.NT;
  }
  if (reason !== TaskReason.IRET) {
    nhi |= 0x200;
    mmu.writeSys8((naddr + 5) | 0, (nhi >>> 8) & 0xff);
    if (cpu.faulted) return false;
  }

  // ---- Commit point: from here the new task's context is current. ----
  setSeg(cpu, SReg.TR, sel, nlo, nhi);
  st[Slot.CR0] = st[Slot.CR0]! | CR0.TS;
  if (n32) {
    // SDM 7.3 step 12: CR3 is part of the state a 32-bit TSS loads.
    st[Slot.CR3] = N[N_CR3]! & ~0xfe7;
    mmu.flush(false);
    cpu.pagingChanged();
  }
  for (let i = 0; i < 8; i++) {
    if (n32) cpu.r32[i] = N[N_REGS + i]!;
    else cpu.r16[i << 1] = N[N_REGS + i]!;
  }
  st[Slot.EIP] = n32 ? N[N_EIP]! : N[N_EIP]! & 0xffff;
  cpu.setFlags(n32 ? nflags : (cpu.getFlags() & ~0xffff) | (nflags & 0xffff));
  cpu.instrStart = st[Slot.EIP]!;
  for (let i = 0; i < 6; i++) s.segSel[i] = N[N_SEGS + i]!;
  cpu.modeChanged();

  // LDT (a null selector makes LDTR unusable).
  const ldt = N[N_LDT]!;
  if ((ldt & 0xfffc) === 0) setNullSeg(cpu, SReg.LDTR, ldt);
  else {
    if ((ldt & 4) !== 0) {
      cpu.raise(Vec.TS, (ldt & 0xfffc) | ext);
      return false;
    }
    const rl = fetchDesc(cpu, ldt);
    if (rl < 0) return false;
    if (rl === 0 || descType(desc.hi) !== 2 || !isPresent(desc.hi)) {
      cpu.raise(Vec.TS, (ldt & 0xfffc) | ext);
      return false;
    }
    setSeg(cpu, SReg.LDTR, ldt, desc.lo, desc.hi);
  }

  if ((cpu.getFlags() & F.VM) !== 0) {
    for (let i = 0; i < 6; i++) setVm86Seg(cpu, i, N[N_SEGS + i]!);
    st[Slot.CPL] = 3;
    cpu.modeChanged();
    return true;
  }

  // CS: sets CPL.
  const cs = N[N_SEGS + 1]!;
  const cpl = cs & 3;
  if ((cs & 0xfffc) === 0) {
    cpu.raise(Vec.TS, ext);
    return false;
  }
  const rc = fetchDesc(cpu, cs);
  if (rc < 0) return false;
  {
    const hi = desc.hi;
    const dpl = descDpl(hi);
    if (rc === 0 || !isCode(hi) || ((hi & 0x400) !== 0 ? dpl > cpl : dpl !== cpl)) {
      cpu.raise(Vec.TS, (cs & 0xfffc) | ext);
      return false;
    }
    if (!isPresent(hi)) {
      cpu.raise(Vec.NP, (cs & 0xfffc) | ext);
      return false;
    }
    setAccessed(cpu);
    setSeg(cpu, SReg.CS, cs, desc.lo, desc.hi);
    st[Slot.CPL] = cpl;
  }
  // SS
  const ss = N[N_SEGS + 2]!;
  if ((ss & 0xfffc) === 0) {
    cpu.raise(Vec.TS, ext);
    return false;
  }
  const rs = fetchDesc(cpu, ss);
  if (rs < 0) return false;
  if (rs === 0 || (ss & 3) !== cpl || (desc.hi & 0x1a00) !== 0x1200 || descDpl(desc.hi) !== cpl) {
    cpu.raise(Vec.TS, (ss & 0xfffc) | ext);
    return false;
  }
  if (!isPresent(desc.hi)) {
    cpu.raise(Vec.SS, (ss & 0xfffc) | ext);
    return false;
  }
  setAccessed(cpu);
  setSeg(cpu, SReg.SS, ss, desc.lo, desc.hi);
  cpu.modeChanged();
  // Data segments
  for (let i = 0; i < DATA_SEGS.length; i++) {
    const r2 = DATA_SEGS[i]!;
    const sl = N[N_SEGS + r2]!;
    if ((sl & 0xfffc) === 0) {
      setNullSeg(cpu, r2, sl);
      continue;
    }
    const rd = fetchDesc(cpu, sl);
    if (rd < 0) return false;
    const hi = desc.hi;
    let bad = rd === 0 || (hi & 0x1000) === 0 || (hi & 0x0a00) === 0x0800;
    if (!bad && (hi & 0x0c00) !== 0x0c00) {
      const dpl = descDpl(hi);
      if (dpl < cpl || dpl < (sl & 3)) bad = true;
    }
    if (bad) {
      cpu.raise(Vec.TS, (sl & 0xfffc) | ext);
      return false;
    }
    if (!isPresent(hi)) {
      cpu.raise(Vec.NP, (sl & 0xfffc) | ext);
      return false;
    }
    setAccessed(cpu);
    setSeg(cpu, r2, sl, desc.lo, desc.hi);
  }
  return true;
}

/**
 * After a successful JMP/CALL/IRET task switch: the new TSS's T bit raises #DB before the new
 * task's first instruction, with DR6.BT set (SDM 17.3.1.5). It is raised as a fault at the new
 * task's EIP (cpu.instrStart), which is where the trap returns.
 * XXX(approx): task switches through interrupt/exception task gates ignore the T bit.
 */
export function taskDebugTrap(cpu: Cpu): void {
  if (N[N_TRAP] === 0) return;
  N[N_TRAP] = 0;
  cpu.i32[Slot.DR0 + 6] = cpu.i32[Slot.DR0 + 6]! | (1 << 15);
  cpu.raise(Vec.DB);
}

const DATA_SEGS = [SReg.ES, SReg.DS, SReg.FS, SReg.GS] as const;

/** Forgets the T bit of the last task switch (interrupt task gates; see taskDebugTrap). */
export function clearTaskTrap(): void {
  N[N_TRAP] = 0;
}
