/**
 * boxvm: the idiomatic API (the package's main export).
 */
export { VBoxError, Status, RT_SUCCESS, RT_FAILURE, statusName } from "./vm/err.ts";
