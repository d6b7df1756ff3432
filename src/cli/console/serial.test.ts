import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FakeGuestConsole } from "./fake.ts";
import { attachFile, attachTcp, parseSerialSpec } from "./serial.ts";

test("parseSerialSpec accepts stdio, none, file:, tcp: forms and explains bad ones", () => {
  assert.deepEqual(parseSerialSpec("stdio"), { kind: "stdio" });
  assert.deepEqual(parseSerialSpec("none"), { kind: "none" });
  assert.deepEqual(parseSerialSpec("file:/tmp/x.log"), { kind: "file", path: "/tmp/x.log" });
  assert.deepEqual(parseSerialSpec("tcp:4555"), { kind: "tcp", port: 4555 });
  assert.deepEqual(parseSerialSpec("tcp::4555,server,nowait"), { kind: "tcp", port: 4555 });
  assert.deepEqual(parseSerialSpec("tcp:127.0.0.1:0"), { kind: "tcp", port: 0 });
  assert.throws(() => parseSerialSpec("tcp:10.0.0.1:80"), /Bad --serial/);
  assert.throws(() => parseSerialSpec("tcp:99999"), /Bad --serial/);
  assert.throws(() => parseSerialSpec("pty"), /stdio, file:<path>, tcp:<port>/);
});

test("file: guest output lands in the file", async () => {
  const dir = mkdtempSync(join(tmpdir(), "boxvm-serial-"));
  try {
    const g = new FakeGuestConsole();
    const a = await attachFile(g, join(dir, "out.log"));
    g.emit("hello ");
    g.emit("world\n");
    await a.close();
    assert.equal(readFileSync(join(dir, "out.log"), "utf8"), "hello world\n");
    assert.equal(g.listeners, 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("tcp: output before the client connects is kept; client bytes reach the guest", async () => {
  const g = new FakeGuestConsole();
  const a = await attachTcp(g, 0);
  assert.ok(a.port > 0);
  g.emit("early boot\n");
  const sock = connect(a.port, "127.0.0.1");
  const got = await new Promise<string>((resolve) => {
    let s = "";
    sock.on("data", (d: Buffer) => {
      s += d.toString();
      if (s.includes("later")) resolve(s);
    });
    sock.on("connect", () => setTimeout(() => g.emit("later"), 50));
  });
  assert.equal(got, "early boot\nlater");
  sock.write("ls\r");
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(g.text, "ls\r");
  sock.destroy();
  await a.close();
});
