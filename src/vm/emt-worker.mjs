// The EMT worker's bootstrap: the sources are TypeScript, so register tsx's loader in this thread
// (loader hooks of the parent thread do not reach a worker on Node 20), then load the EMT module.
import { register } from "tsx/esm/api";

register();
await import("./emt-main.ts");
