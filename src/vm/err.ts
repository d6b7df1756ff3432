/**
 * VirtualBox status codes (iprt/err.h and VBox/err.h), the names and values the faithful API returns,
 * and VBoxError, the exception the idiomatic API throws.
 *
 * Success is >= 0 (VINF_*), failure < 0 (VERR_*), as in IPRT.
 */

/** Every status code boxvm returns, by its VirtualBox name. */
export const Status = {
  VINF_SUCCESS: 0,

  // IPRT (iprt/err.h).
  VERR_GENERAL_FAILURE: -1,
  VERR_INVALID_PARAMETER: -2,
  VERR_INVALID_MAGIC: -3,
  VERR_INVALID_HANDLE: -4,
  VERR_INVALID_POINTER: -6,
  VERR_NO_MEMORY: -8,
  VERR_VERSION_MISMATCH: -11,
  VERR_NOT_IMPLEMENTED: -12,
  VERR_INVALID_FLAGS: -13,
  VERR_INVALID_FUNCTION: -36,
  VERR_NOT_SUPPORTED: -37,
  VERR_ACCESS_DENIED: -38,
  VERR_INTERRUPTED: -39,
  VERR_TIMEOUT: -40,
  VERR_BUFFER_OVERFLOW: -41,
  VERR_TOO_MUCH_DATA: -42,
  VERR_OUT_OF_RANGE: -54,
  VERR_CANCELLED: -70,
  VERR_NOT_FOUND: -78,
  VERR_INVALID_STATE: -79,
  VERR_FILE_IO_ERROR: -100,
  VERR_OPEN_FAILED: -101,
  VERR_FILE_NOT_FOUND: -102,
  VERR_PATH_NOT_FOUND: -103,
  VERR_ALREADY_EXISTS: -105,
  VERR_EOF: -110,
  VERR_READ_ERROR: -111,
  VERR_WRITE_ERROR: -112,
  VERR_INTERNAL_ERROR: -225,

  // EM (VBox/err.h): execution.
  VERR_EM_INTERNAL_ERROR: -1149,
  VINF_EM_TRIPLE_FAULT: 1155,

  // SSM (VBox/err.h, the numbering of VirtualBox 3.x and later, which has every name used here).
  VERR_SSM_UNIT_EXISTS: -1800,
  VERR_SSM_UNIT_NOT_FOUND: -1801,
  VERR_SSM_UNIT_NOT_OWNER: -1802,
  VERR_SSM_INTEGRITY: -1810,
  VERR_SSM_INTEGRITY_MAGIC: -1811,
  VERR_SSM_INTEGRITY_VERSION: -1812,
  VERR_SSM_INTEGRITY_SIZE: -1813,
  VERR_SSM_INTEGRITY_CRC: -1814,
  VERR_SSM_INTEGRITY_HEADER: -1816,
  VERR_SSM_INTEGRITY_UNIT: -1817,
  VERR_SSM_INTEGRITY_UNIT_MAGIC: -1818,
  VERR_SSM_INTEGRITY_UNIT_NOT_FOUND: -1819,
  VERR_SSM_INTEGRITY_FOOTER: -1821,
  VERR_SSM_INTEGRITY_REC_HDR: -1822,
  VERR_SSM_NO_LOAD_EXEC: -1830,
  VERR_SSM_LOADED_TOO_MUCH: -1831,
  VERR_SSM_INVALID_STATE: -1832,
  VERR_SSM_LOADED_TOO_LITTLE: -1833,
  VERR_SSM_UNSUPPORTED_DATA_UNIT_VERSION: -1840,
  VERR_SSM_DATA_UNIT_FORMAT_CHANGED: -1841,
  VERR_SSM_LOAD_MEMORY_SIZE_MISMATCH: -1843,
  VERR_SSM_LOAD_CONFIG_MISMATCH: -1844,
  VERR_SSM_UNEXPECTED_DATA: -1848,
  VERR_SSM_CANCELLED: -1858,

  // VM (VBox/err.h).
  VERR_VM_ATRESET_NOT_FOUND: -1900,
  VERR_VM_REQUEST_INVALID_TYPE: -1901,
  VERR_VM_REQUEST_STATE: -1902,
  VERR_VM_REQUEST_INVALID_PACKAGE: -1903,
  VERR_VM_REQUEST_STATUS_STILL_PENDING: -1904,
  VERR_VM_REQUEST_STATUS_FREED: -1905,
  VERR_VM_THREAD_NOT_EMT: -1906,
  VERR_VM_INVALID_VM_STATE: -1907,
  VERR_VM_THREAD_IS_EMT: -1914,
  VERR_VM_REQUEST_KILLED: -1919,

  // CFGM (VBox/err.h).
  VERR_CFGM_INTEGER_TOO_BIG: -2100,
  VERR_CFGM_CHILD_NOT_FOUND: -2101,
  VERR_CFGM_INVALID_CHILD_PATH: -2102,
  VERR_CFGM_VALUE_NOT_FOUND: -2103,
  VERR_CFGM_NO_PARENT: -2104,
  VERR_CFGM_NO_NODE: -2105,
  VERR_CFGM_NOT_INTEGER: -2106,
  VERR_CFGM_NOT_STRING: -2107,
  VERR_CFGM_NOT_BYTES: -2108,
  VERR_CFGM_NOT_ENOUGH_SPACE: -2109,
  VERR_CFGM_INVALID_NODE_PATH: -2160,
  VERR_CFGM_NODE_EXISTS: -2161,
  VERR_CFGM_LEAF_EXISTS: -2162,
  VERR_CFGM_CONFIG_UNKNOWN_VALUE: -2163,
  VERR_CFGM_CONFIG_UNKNOWN_NODE: -2164,
  /** Not a VirtualBox name: kept for existing callers; same value as VERR_CFGM_INVALID_CHILD_PATH. */
  VERR_CFGM_INVALID_CHILD_NODE: -2102,

  // IOM (VBox/err.h).
  VERR_IOM_IOPORT_RANGE_CONFLICT: -2602,
  VERR_IOM_MMIO_RANGE_CONFLICT: -2608,

  // PDM (VBox/err.h).
  VERR_PDM_DEVINS_UNKNOWN_CFG_VALUES: -2801,
  VERR_PDM_DEVICE_NOT_FOUND: -2840,
  VERR_PDM_DEVICE_INSTANCE_NOT_FOUND: -2841,
  /**
   * Not a VirtualBox name (VirtualBox returns the constructor's own status): boxvm's code for a device
   * constructor that threw something other than a VBoxError.
   */
  VERR_PDM_DEVICE_INIT_FAILED: -2899,
} as const;

/** The union of the status names. */
export type VmErrorCode = keyof typeof Status;

const byValue = new Map<number, VmErrorCode>();
for (const [name, value] of Object.entries(Status) as [VmErrorCode, number][]) {
  if (!byValue.has(value)) byValue.set(value, name);
}

/** True for success and informational codes (rc >= 0), as IPRT's RT_SUCCESS. */
export function RT_SUCCESS(rc: number): boolean {
  return rc >= 0;
}

/** True for error codes (rc < 0), as IPRT's RT_FAILURE. */
export function RT_FAILURE(rc: number): boolean {
  return rc < 0;
}

/** The name of a status code ("VERR_TIMEOUT"), or its number as text when it has none. */
export function statusName(rc: number): string {
  return byValue.get(rc) ?? `rc=${String(rc)}`;
}

/**
 * The error the idiomatic API throws. `rc` is the VirtualBox status, `code` its name.
 * Messages are capitalized, have no trailing period, and put detail after a colon.
 */
export class VBoxError extends Error {
  readonly rc: number;
  readonly code: VmErrorCode | string;
  constructor(rc: number | VmErrorCode, message?: string) {
    const value = typeof rc === "number" ? rc : Status[rc];
    const name = statusName(value);
    super(message ?? name);
    this.name = "VBoxError";
    this.rc = value;
    this.code = name;
  }
}

/** Shorthand: a VBoxError for a status name with a message. */
export function vboxError(code: VmErrorCode, message: string): VBoxError {
  return new VBoxError(Status[code], message);
}
