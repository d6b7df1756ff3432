/**
 * The idiomatic API: VM with Promise methods and VBoxError.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { Status, VBoxError } from "./err.ts";
import { VMSTATE } from "./types.ts";
import { VM } from "./Vm.ts";

const FNS = new URL("./testing/reqfns.ts", import.meta.url).href;

test("lifecycle, calls, errors as VBoxError, stats, console, share/attach", async () => {
  const vm = await VM.create({ modules: [FNS], config: { RamSize: 4 << 20 } });
  try {
    assert.equal(vm.state, VMSTATE.CREATED);
    assert.equal(vm.stateName, "CREATED");
    assert.equal(await vm.call("add", 2, 2), 4);
    assert.deepEqual(await vm.call("echo", { a: [1, 2], b: new Uint8Array([3]) }), { a: [1, 2], b: new Uint8Array([3]) });
    await assert.rejects(vm.call("fail", Status.VERR_CANCELLED), (e: VBoxError) => e instanceof VBoxError && e.rc === Status.VERR_CANCELLED && e.code === "VERR_CANCELLED");
    await assert.rejects(vm.suspend(), (e: VBoxError) => {
      assert.equal(e.rc, Status.VERR_VM_INVALID_VM_STATE);
      assert.equal(e.code, "VERR_VM_INVALID_VM_STATE");
      assert.match(e.message, /Cannot suspend a VM in state CREATED/);
      return true;
    });
    await assert.rejects(vm.call("nope"), (e: VBoxError) => e.rc === Status.VERR_NOT_FOUND && /nope/.test(e.message));
    assert.throws(() => vm.allocRequest(0 as never), (e: VBoxError) => e.rc === Status.VERR_VM_REQUEST_INVALID_TYPE);

    // post(): nothing comes back, but it runs, in order with later calls.
    vm.post("ledgerPut", 7, 0);
    vm.post("ledgerPut", 7, 1);
    const ledger = (await vm.call("ledgerGet")) as { w: number; next: number; bad: number }[];
    assert.equal(ledger.find((e) => e.w === 7)?.next, 2);

    await vm.powerOn();
    // Console: guest output arrives batched; API-side input reaches the device's receiver.
    const got: string[] = [];
    const off = vm.console("serial0").onData((b) => got.push(new TextDecoder().decode(b)));
    await vm.call("consoleListen", "serial0");
    await vm.call("consoleOut", "serial0", "hello ");
    await vm.call("consoleOut", "serial0", "world");
    const t0 = Date.now();
    while (got.join("") !== "hello world" && Date.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 5));
    assert.equal(got.join(""), "hello world");
    vm.console("serial0").write("typed");
    assert.equal(await vm.call("consoleHeard"), "typed");
    off();

    const stats = await vm.stats("/VM/EMT/*|/CPU/*");
    const names = stats.map((s) => s.name);
    for (const n of ["/VM/EMT/Requests", "/VM/EMT/Halts", "/VM/EMT/CpuSlices", "/CPU/Instructions"]) assert.ok(names.includes(n), n);
    assert.ok(stats.find((s) => s.name === "/VM/EMT/Requests")!.value >= 8);

    // A second handle in this thread, through share/attach: same VM, same state, its own callbacks.
    const other = VM.attach(vm.share());
    assert.equal(other.state, VMSTATE.RUNNING);
    assert.equal(await other.call("add", 1, 2), 3);
    const seen: number[] = [];
    other.onState((_v, s) => seen.push(s));
    await vm.suspend();
    await other.call("add", 0, 0);
    assert.deepEqual(seen, [VMSTATE.SUSPENDED]);
    await assert.rejects(other.destroy(), (e: VBoxError) => e.rc === Status.VERR_INVALID_PARAMETER);
    other.detach();
    await assert.rejects(other.call("add", 1, 1), (e: VBoxError) => e.rc === Status.VERR_INVALID_HANDLE);
    assert.equal(await vm.call("add", 1, 1), 2);
    assert.throws(() => vm.detach(), /destroy/);

    // RAM is shared with the API side.
    await vm.call("echo", 0);
    assert.equal(vm.ram.length, 4 << 20);
    await vm.powerOff();
    assert.ok(VM.list().includes(vm));
  } finally {
    if (vm.alive) await vm.destroy();
  }
  assert.ok(!VM.list().includes(vm));
  await assert.rejects(vm.destroy(), (e: VBoxError) => e.rc === Status.VERR_INVALID_HANDLE);
  await assert.rejects(vm.call("add", 1, 1), (e: VBoxError) => e.rc === Status.VERR_INVALID_HANDLE);
});

test("an exception in a state callback does not break the VM", async () => {
  const vm = await VM.create({ modules: [FNS] });
  const orig = console.error;
  let printed = 0;
  console.error = () => {
    printed++;
  };
  try {
    vm.onState(() => {
      throw new Error("callback bug");
    });
    const states: number[] = [];
    vm.onState((_v, s) => states.push(s));
    await vm.powerOn();
    assert.deepEqual(states, [VMSTATE.RUNNING]);
    assert.equal(printed, 1);
    await vm.powerOff();
  } finally {
    console.error = orig;
    await vm.destroy();
  }
});

test("the EMT thread dying (exit or uncaught exception) kills the handle, not the process", async () => {
  for (const fn of ["exitThread", "throwLater"]) {
    const vm = await VM.create({ modules: [FNS] });
    const errors: string[] = [];
    const states: number[] = [];
    vm.onError((_v, _u, _rc, _p, _f, _a, msg) => errors.push(msg));
    vm.onState((_v, s) => states.push(s));
    const settle = (p: Promise<unknown>) =>
      p.then(
        () => "resolved",
        (e: VBoxError) => e.code,
      );
    let pending: Promise<string>;
    if (fn === "exitThread") {
      vm.post("exitThread");
      pending = settle(vm.call("add", 1, 1)); // never runs: the thread is gone first
    } else {
      await vm.call("throwLater");
      // The timer fires when the EMT lets its event loop turn (every 10 ms of loop time).
      pending = settle(vm.call("spin", 50));
    }
    const t0 = Date.now();
    while (vm.alive && Date.now() - t0 < 20_000) await new Promise((r) => setTimeout(r, 10));
    assert.equal(vm.alive, false, fn);
    assert.equal(vm.state, VMSTATE.TERMINATED);
    assert.deepEqual(states, [VMSTATE.TERMINATED]);
    assert.equal(errors.length, 1);
    assert.match(errors[0]!, /EMT/);
    assert.ok(["resolved", "VERR_VM_REQUEST_KILLED"].includes(await pending));
    if (fn === "exitThread") assert.equal(await pending, "VERR_VM_REQUEST_KILLED");
    await assert.rejects(vm.call("add", 1, 1), (e: VBoxError) => e.rc === Status.VERR_INVALID_HANDLE);
  }
});
