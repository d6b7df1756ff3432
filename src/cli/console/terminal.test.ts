import { test } from "node:test";
import assert from "node:assert/strict";
import { PassThrough } from "node:stream";
import { setImmediate as tick } from "node:timers/promises";
import type { EscapeCommand } from "./escape.ts";
import { FakeGuestConsole } from "./fake.ts";
import { TerminalConsole } from "./terminal.ts";

function setup(opts = {}) {
  const input = Object.assign(new PassThrough(), {
    isTTY: true,
    rawCalls: [] as boolean[],
    setRawMode(raw: boolean) {
      this.rawCalls.push(raw);
    },
  });
  let out = "";
  const output = { write: (d: Uint8Array | string) => (out += typeof d === "string" ? d : new TextDecoder().decode(d)) };
  const guest = new FakeGuestConsole();
  const cmds: EscapeCommand[] = [];
  const tc = new TerminalConsole({ input, output }, guest, (c) => void cmds.push(c), opts);
  return { input, guest, cmds, tc, out: () => out };
}

test("raw mode on start and off on stop; typed bytes reach the guest; guest bytes reach the terminal", async () => {
  const { input, guest, tc, out } = setup();
  tc.start();
  assert.deepEqual(input.rawCalls, [true]);
  input.write("uname -r\r\x03");
  await tick();
  assert.equal(guest.text, "uname -r\r\x03", "Ctrl-C goes to the guest in raw mode");
  guest.emit("6.1.0-50-686\r\n/ # ");
  assert.equal(out(), "6.1.0-50-686\r\n/ # ");
  tc.stop();
  assert.deepEqual(input.rawCalls, [true, false]);
  assert.equal(guest.listeners, 0);
  input.write("late");
  await tick();
  assert.equal(guest.text, "uname -r\r\x03", "nothing after stop");
});

test("Ctrl-A x and Ctrl-A s reach the handler, not the guest; Ctrl-A h prints help", async () => {
  const { input, guest, cmds, tc, out } = setup();
  tc.start();
  input.write("a\x01xb\x01s");
  await tick();
  assert.deepEqual(cmds, ["exit", "save"]);
  assert.equal(guest.text, "ab");
  guest.emit("partial line");
  input.write("\x01h");
  await tick();
  assert.match(out(), /partial line\r\n\[boxvm\] Ctrl-A x {4}power off/, "help starts on a new line");
  tc.stop();
});

test("with forwardInput off the guest gets nothing but escapes still work", async () => {
  const { input, guest, cmds, tc } = setup({ forwardInput: false });
  tc.start();
  input.write("hello\x01x");
  await tick();
  assert.equal(guest.text, "");
  assert.deepEqual(cmds, ["exit"]);
  tc.stop();
});
