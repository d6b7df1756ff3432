import { test } from "node:test";
import assert from "node:assert/strict";
import { Scrollback } from "./scrollback.ts";

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);
const text = (b: Uint8Array): string => new TextDecoder().decode(b);

test("keeps the last bytes in order across wrap-arounds", () => {
  const s = new Scrollback(8);
  assert.equal(text(s.contents()), "");
  s.append(bytes("abc"));
  assert.equal(text(s.contents()), "abc");
  s.append(bytes("defgh"));
  assert.equal(text(s.contents()), "abcdefgh");
  s.append(bytes("ij"));
  assert.equal(text(s.contents()), "cdefghij");
  assert.equal(s.dropped, 2);
  s.append(bytes("0123456789AB"));
  assert.equal(text(s.contents()), "456789AB");
  assert.equal(s.total, 22);
  s.clear();
  assert.equal(s.contents().length, 0);
});

test("matches a plain string tail for random appends", () => {
  let seed = 12345;
  const rnd = (n: number): number => {
    seed = (seed * 1103515245 + 12345) >>> 0;
    return seed % n;
  };
  for (const cap of [1, 5, 64]) {
    const s = new Scrollback(cap);
    let all = "";
    for (let i = 0; i < 300; i++) {
      const len = rnd(cap * 2 + 2);
      let chunk = "";
      for (let j = 0; j < len; j++) chunk += String.fromCharCode(97 + rnd(26));
      s.append(bytes(chunk));
      all += chunk;
      assert.equal(text(s.contents()), all.slice(-cap), `capacity ${String(cap)} step ${String(i)}`);
    }
  }
});

test("refuses a nonsense capacity", () => {
  assert.throws(() => new Scrollback(0), RangeError);
  assert.throws(() => new Scrollback(1.5), RangeError);
});
