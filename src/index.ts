/**
 * boxvm: the idiomatic API (the package's main export). The faithful VirtualBox-style API is the
 * `boxvm/vmapi` export (src/vm/vmapi.ts).
 */
export { VBoxError, Status, RT_SUCCESS, RT_FAILURE, statusName, type VmErrorCode } from "./vm/err.ts";
export {
  VM,
  VMReq,
  MAX_REQ_ARGS,
  toVBoxError,
  type VMCreateOptions,
  type VMShareDescriptor,
  type VMConsole,
  type ErrorCallback,
  type StateCallback,
  type ResetExternalCallback,
  type DtorCallback,
  type CfgmConstructor,
  type ProgressCallback,
  type ReqFunction,
} from "./vm/Vm.ts";
export { EmtVM, type AtResetDevFn, type AtResetIntFn, type RelocateFn } from "./vm/EmtVM.ts";
export {
  VMSTATE,
  VMREQTYPE,
  VMREQSTATE,
  VMREQFLAGS,
  VMINITCOMPLETED,
  RT_INDEFINITE_WAIT,
  RT_SRC_POS,
  vmStateName,
  type Out,
  type SrcPos,
} from "./vm/types.ts";
export { formatMessage } from "./vm/format.ts";
export { registerRequestFunction, deregisterRequestFunction } from "./req/registry.ts";
export { CfgmNode, cfgmFromObject, type CfgmValue, type CfgmPlain } from "./cfgm/CfgmNode.ts";
export { DEFAULT_RAM_SIZE, canonicalConfig } from "./vm/config.ts";
export type { StamSnapshotEntry, StamUnit } from "./stam/Stam.ts";
