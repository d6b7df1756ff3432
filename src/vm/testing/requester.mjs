// Bootstrap of a requester worker thread for tests and benchmarks: register tsx, load the .ts module.
import { register } from "tsx/esm/api";

register();
await import("./requester.ts");
