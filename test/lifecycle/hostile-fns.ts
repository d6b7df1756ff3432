/**
 * Request functions of hostile.test.ts, imported by the EMT through VM.create's `modules`.
 *
 * lifecycle.pokeAllPorts(seed, rounds): from the host side, writes pseudo-random values
 * (xorshift32) to every I/O port 0..0xFFFF through the machine's IoPortSpace with sizes 1, 2 and
 * 4, reading each back. An access that throws is recorded (port, size, direction, message) and the
 * poking goes on; the function returns the count of accesses, a sum of what was read and the
 * recorded throws (none expected).
 */
import { registerRequestFunction } from "../../src/req/registry.ts";
import type { EmtVM } from "../../src/vm/EmtVM.ts";

/** What pokeAllPorts did. */
export interface PokeResult {
  accesses: number;
  sum: number;
  thrown: { port: number; size: number; dir: "in" | "out"; message: string }[];
}

/** Pokes every port; see the module comment. */
export function pokeAllPorts(vm: EmtVM, seed: number, rounds: number): PokeResult {
  let x = seed >>> 0 || 1;
  const rand = (): number => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
  const res: PokeResult = { accesses: 0, sum: 0, thrown: [] };
  for (let r = 0; r < rounds; r++) {
    for (let port = 0; port <= 0xffff; port++) {
      for (const size of [1, 2, 4] as const) {
        const v = rand();
        try {
          vm.io.write(port, v, size);
        } catch (e) {
          res.thrown.push({ port, size, dir: "out", message: e instanceof Error ? e.message : String(e) });
        }
        try {
          res.sum = (res.sum + vm.io.read(port, size)) >>> 0;
        } catch (e) {
          res.thrown.push({ port, size, dir: "in", message: e instanceof Error ? e.message : String(e) });
        }
        res.accesses += 2;
      }
    }
  }
  return res;
}

registerRequestFunction("lifecycle.pokeAllPorts", pokeAllPorts);
