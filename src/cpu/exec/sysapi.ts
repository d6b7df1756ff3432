/**
 * The system part's functions as the executor calls them (DESIGN.md "System functions"),
 * gathered in one place so exec/ imports one module.
 */
export { loadSeg, lar, lsl, verr, verw, lldt, ltr } from "../seg.ts";
export { IntKind, interrupt, deliverException, farJmp, farCall, farRet, iret } from "../intr.ts";
export {
  movToCr,
  movFromCr,
  movToDr,
  movFromDr,
  clts,
  lmsw,
  lgdt,
  lidt,
  rdmsr,
  wrmsr,
  cpuid,
  rdtsc,
  sysenter,
  sysexit,
  ioPermitted,
  invlpg,
  resetMsrs,
} from "../sys.ts";
