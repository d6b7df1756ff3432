/**
 * The enums of vmapi.h with the header's values, each exported two ways: as an object
 * (`VMSTATE.CREATED`) and as flat constants (`VMSTATE_CREATED`), plus the small value types of
 * API.md (`Out<T>`, `SrcPos`, `RT_INDEFINITE_WAIT`) and the helper capturing a caller's position.
 */

/** The VM states, in the header's order (VirtualBox's VMSTATE of 2006). */
export const VMSTATE = {
  CREATING: 0,
  CREATED: 1,
  RUNNING: 2,
  LOADING: 3,
  LOAD_FAILURE: 4,
  SAVING: 5,
  SUSPENDED: 6,
  RESETTING: 7,
  GURU_MEDITATION: 8,
  OFF: 9,
  DESTROYING: 10,
  TERMINATED: 11,
} as const;
/** A VM state value. */
export type VMSTATE = (typeof VMSTATE)[keyof typeof VMSTATE];

/** VMSTATE_CREATING: the VM is being created. */
export const VMSTATE_CREATING = VMSTATE.CREATING;
/** VMSTATE_CREATED: created, never powered on. */
export const VMSTATE_CREATED = VMSTATE.CREATED;
/** VMSTATE_RUNNING: executing guest code. */
export const VMSTATE_RUNNING = VMSTATE.RUNNING;
/** VMSTATE_LOADING: a saved state is being loaded. */
export const VMSTATE_LOADING = VMSTATE.LOADING;
/** VMSTATE_LOAD_FAILURE: loading a saved state failed; only power off is left. */
export const VMSTATE_LOAD_FAILURE = VMSTATE.LOAD_FAILURE;
/** VMSTATE_SAVING: the state is being saved. */
export const VMSTATE_SAVING = VMSTATE.SAVING;
/** VMSTATE_SUSPENDED: not executing; can be resumed, saved, reset. */
export const VMSTATE_SUSPENDED = VMSTATE.SUSPENDED;
/** VMSTATE_RESETTING: a reset is in progress. */
export const VMSTATE_RESETTING = VMSTATE.RESETTING;
/** VMSTATE_GURU_MEDITATION: the emulator failed internally; only power off is left. */
export const VMSTATE_GURU_MEDITATION = VMSTATE.GURU_MEDITATION;
/** VMSTATE_OFF: powered off. */
export const VMSTATE_OFF = VMSTATE.OFF;
/** VMSTATE_DESTROYING: being destroyed. */
export const VMSTATE_DESTROYING = VMSTATE.DESTROYING;
/** VMSTATE_TERMINATED: destroyed; the handle is dead. */
export const VMSTATE_TERMINATED = VMSTATE.TERMINATED;

const stateNames: readonly string[] = Object.keys(VMSTATE);

/** The name of a state ("CREATED"), or "Unknown(n)" for a value that is not a state. */
export function vmStateName(state: number): string {
  return stateNames[state] ?? `Unknown(${String(state)})`;
}

/** Request types (VMREQTYPE). */
export const VMREQTYPE = { INVALID: 0, INTERNAL: 1, MAX: 2 } as const;
/** A request type value. */
export type VMREQTYPE = (typeof VMREQTYPE)[keyof typeof VMREQTYPE];
/** VMREQTYPE_INVALID. */
export const VMREQTYPE_INVALID = VMREQTYPE.INVALID;
/** VMREQTYPE_INTERNAL: a call of a function on the EMT. */
export const VMREQTYPE_INTERNAL = VMREQTYPE.INTERNAL;
/** VMREQTYPE_MAX: exclusive upper bound, for validation. */
export const VMREQTYPE_MAX = VMREQTYPE.MAX;

/** Request states (VMREQSTATE). */
export const VMREQSTATE = { INVALID: 0, ALLOCATED: 1, QUEUED: 2, PROCESSING: 3, COMPLETED: 4, FREE: 5 } as const;
/** A request state value. */
export type VMREQSTATE = (typeof VMREQSTATE)[keyof typeof VMREQSTATE];
/** VMREQSTATE_INVALID. */
export const VMREQSTATE_INVALID = VMREQSTATE.INVALID;
/** VMREQSTATE_ALLOCATED: allocated, being filled in. */
export const VMREQSTATE_ALLOCATED = VMREQSTATE.ALLOCATED;
/** VMREQSTATE_QUEUED: queued for the EMT. */
export const VMREQSTATE_QUEUED = VMREQSTATE.QUEUED;
/** VMREQSTATE_PROCESSING: the EMT is running it. */
export const VMREQSTATE_PROCESSING = VMREQSTATE.PROCESSING;
/** VMREQSTATE_COMPLETED: done; iStatus holds the function's status. */
export const VMREQSTATE_COMPLETED = VMREQSTATE.COMPLETED;
/** VMREQSTATE_FREE: freed. */
export const VMREQSTATE_FREE = VMREQSTATE.FREE;

/** Request flags (VMREQFLAGS). */
export const VMREQFLAGS = { VBOX_STATUS: 0, VOID: 1, RETURN_MASK: 1, NO_WAIT: 2 } as const;
/** A request flags value. */
export type VMREQFLAGS = (typeof VMREQFLAGS)[keyof typeof VMREQFLAGS];
/** VMREQFLAGS_VBOX_STATUS: the function returns a status code. */
export const VMREQFLAGS_VBOX_STATUS = VMREQFLAGS.VBOX_STATUS;
/** VMREQFLAGS_VOID: the function returns nothing; iStatus is VINF_SUCCESS. */
export const VMREQFLAGS_VOID = VMREQFLAGS.VOID;
/** VMREQFLAGS_RETURN_MASK: the return-type bits. */
export const VMREQFLAGS_RETURN_MASK = VMREQFLAGS.RETURN_MASK;
/** VMREQFLAGS_NO_WAIT: the caller does not wait; the EMT frees the packet. */
export const VMREQFLAGS_NO_WAIT = VMREQFLAGS.NO_WAIT;

/** Init completion notification codes (VMINITCOMPLETED). */
export const VMINITCOMPLETED = { RING3: 1, RING0: 2, GC: 3 } as const;
/** A VMINITCOMPLETED value. */
export type VMINITCOMPLETED = (typeof VMINITCOMPLETED)[keyof typeof VMINITCOMPLETED];
/** VMINITCOMPLETED_RING3. */
export const VMINITCOMPLETED_RING3 = VMINITCOMPLETED.RING3;
/** VMINITCOMPLETED_RING0. */
export const VMINITCOMPLETED_RING0 = VMINITCOMPLETED.RING0;
/** VMINITCOMPLETED_GC. */
export const VMINITCOMPLETED_GC = VMINITCOMPLETED.GC;

/** RT_INDEFINITE_WAIT: wait without a time limit (cMillies). */
export const RT_INDEFINITE_WAIT = 0xffffffff;

/** An out parameter (`PVM *ppVM`, `PVMREQ *ppReq`). */
export interface Out<T> {
  value: T | null;
}

/** A source position (RT_SRC_POS). */
export interface SrcPos {
  file: string;
  line: number;
  func: string;
}

/**
 * The caller's source position (RT_SRC_POS), read from a stack trace. `depth` 0 is the function
 * calling RT_SRC_POS(). Unknown parts are "" and 0.
 */
export function RT_SRC_POS(depth = 0): SrcPos {
  const holder: { stack?: string } = {};
  Error.captureStackTrace(holder, RT_SRC_POS);
  const lines = (holder.stack ?? "").split("\n").slice(1);
  const line = lines[depth] ?? "";
  // "    at func (file:line:col)" or "    at file:line:col"
  const m = /^\s*at (?:(.*?) \()?(.*?):(\d+):\d+\)?$/.exec(line);
  if (!m) return { file: "", line: 0, func: "" };
  return { file: m[2] ?? "", line: Number(m[3] ?? 0), func: m[1] ?? "" };
}
