import { test } from "node:test";
import assert from "node:assert/strict";
import { EscapeFilter } from "./escape.ts";

const b = (s: string): Uint8Array => Uint8Array.from(s, (c) => c.charCodeAt(0));

test("plain input passes through as data", () => {
  assert.deepEqual(new EscapeFilter().push(b("ls -l\r")), [{ kind: "data", bytes: b("ls -l\r") }]);
});

test("Ctrl-A x, s, r, p, h are commands, in order with the data around them", () => {
  const f = new EscapeFilter();
  assert.deepEqual(f.push(b("ab\x01xcd")), [
    { kind: "data", bytes: b("ab") },
    { kind: "command", command: "exit" },
    { kind: "data", bytes: b("cd") },
  ]);
  assert.deepEqual(f.push(b("\x01S\x01r\x01p\x01h")), [
    { kind: "command", command: "save" },
    { kind: "command", command: "reset" },
    { kind: "command", command: "pause" },
    { kind: "command", command: "help" },
  ]);
});

test("Ctrl-A Ctrl-A sends one Ctrl-A; an unknown key is reported and dropped", () => {
  const f = new EscapeFilter();
  assert.deepEqual(f.push(b("a\x01\x01b")), [{ kind: "data", bytes: b("a\x01b") }]);
  assert.deepEqual(f.push(b("\x01z")), [{ kind: "unknown", key: 0x7a }]);
});

test("a Ctrl-A at the end of a chunk applies to the next chunk", () => {
  const f = new EscapeFilter();
  assert.deepEqual(f.push(b("q\x01")), [{ kind: "data", bytes: b("q") }]);
  assert.deepEqual(f.push(b("x")), [{ kind: "command", command: "exit" }]);
  assert.deepEqual(f.push(b("x")), [{ kind: "data", bytes: b("x") }]);
});
