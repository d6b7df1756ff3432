/**
 * The faithful API (vmapi.ts), function by function, over real EMT worker threads.
 */
import { after, afterEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { CfgmNode } from "../cfgm/CfgmNode.ts";
import * as api from "./vmapi.ts";
import {
  RT_INDEFINITE_WAIT,
  RT_SRC_POS,
  Status,
  VM,
  VMR3AtDtorDeregister,
  VMR3AtDtorRegister,
  VMR3AtErrorDeregister,
  VMR3AtErrorRegister,
  VMR3AtResetDeregister,
  VMR3AtResetDeregisterExternal,
  VMR3AtResetDeregisterInternal,
  VMR3AtResetRegister,
  VMR3AtResetRegisterExternal,
  VMR3AtResetRegisterInternal,
  VMR3AtStateDeregister,
  VMR3AtStateRegister,
  VMR3Create,
  VMR3Destroy,
  VMR3EnumVMs,
  VMR3GetState,
  VMR3GetStateName,
  VMR3Load,
  VMR3NotifyFF,
  VMR3PowerOff,
  VMR3PowerOn,
  VMR3Relocate,
  VMR3ReqAlloc,
  VMR3ReqCall,
  VMR3ReqCallEx,
  VMR3ReqCallV,
  VMR3ReqCallVoid,
  VMR3ReqFree,
  VMR3ReqProcess,
  VMR3ReqQueue,
  VMR3ReqWait,
  VMR3Reset,
  VMR3Resume,
  VMR3Save,
  VMR3SetErrorWorker,
  VMR3Suspend,
  VMR3Wait,
  VMR3WaitHalted,
  VMREQFLAGS_NO_WAIT,
  VMREQFLAGS_VOID,
  VMREQSTATE,
  VMREQTYPE,
  VMREQTYPE_INTERNAL,
  VMSTATE,
  VMSTATE_CREATED,
  VMSetError,
  VMSetErrorV,
  VM_GUEST_ADDR,
  VM_HOST_ADDR,
  VM_PHYS_ADDR,
  VM_SET_ERROR,
  type Out,
  type VMReq,
} from "./vmapi.ts";

const RT_FAILURE_ = api.RT_FAILURE;
const FNS = new URL("./testing/reqfns.ts", import.meta.url).href;
const mod = (name: string) => ({ module: FNS, export: name });
const tmp = mkdtempSync(join(tmpdir(), "boxvm-vmapi-"));
const created: VM[] = [];

/** Destroys every VM a test made (a running VM keeps a core busy: the machine is shared). */
async function cleanup(): Promise<void> {
  for (const vm of created.splice(0)) {
    if (!vm.alive) continue;
    const s = vm.state;
    if (s !== VMSTATE.OFF && s !== VMSTATE.CREATED) await vm.powerOff().catch(() => undefined);
    await vm.destroy().catch(() => undefined);
  }
}
afterEach(cleanup);
after(async () => {
  await cleanup();
  rmSync(tmp, { recursive: true, force: true });
});

/** A VM with the test functions loaded; extra config optional. */
async function newVM(config?: object): Promise<VM> {
  const vm = await VM.create(config ? { modules: [FNS], config } : { modules: [FNS] });
  if (process.env["DBG"]) vm.onError((_v, _u, rc, _p, _f, _a, msg) => console.log("DBG ERR", rc, msg));
  created.push(vm);
  return vm;
}

type Call = "powerOn" | "suspend" | "resume" | "reset" | "powerOff" | "save" | "load" | "destroy";
const calls: Call[] = ["powerOn", "suspend", "resume", "reset", "powerOff", "save", "load", "destroy"];

let fileNo = 0;
let goodState: string | null = null;

function doCall(vm: VM, c: Call): Promise<number> {
  switch (c) {
    case "powerOn":
      return VMR3PowerOn(vm);
    case "suspend":
      return VMR3Suspend(vm);
    case "resume":
      return VMR3Resume(vm);
    case "reset":
      return VMR3Reset(vm);
    case "powerOff":
      return VMR3PowerOff(vm);
    case "save":
      return VMR3Save(vm, join(tmp, `s${String(fileNo++)}.sav`), null, null);
    case "load":
      return VMR3Load(vm, goodState ?? join(tmp, "missing.sav"), null, null);
    case "destroy":
      return VMR3Destroy(vm);
  }
}

/** Brings a new VM into a state (stable states only). */
async function inState(s: VMSTATE): Promise<VM> {
  const vm = await newVM();
  const S = VMSTATE;
  if (s === S.CREATED) return vm;
  if (s === S.LOAD_FAILURE) {
    const bad = join(tmp, "garbage.sav");
    writeFileSync(bad, "this is not a saved state");
    assert.notEqual(await VMR3Load(vm, bad, null, null), Status.VINF_SUCCESS);
    assert.equal(VMR3GetState(vm), S.LOAD_FAILURE);
    return vm;
  }
  assert.equal(await VMR3PowerOn(vm), 0);
  if (s === S.RUNNING) return vm;
  if (s === S.SUSPENDED) {
    assert.equal(await VMR3Suspend(vm), 0);
    return vm;
  }
  if (s === S.GURU_MEDITATION) {
    await vm.call("crash", "into guru").catch(() => undefined);
    assert.equal(VMR3GetState(vm), S.GURU_MEDITATION);
    return vm;
  }
  if (s === S.OFF) {
    assert.equal(await VMR3PowerOff(vm), 0);
    return vm;
  }
  throw new Error(`inState: ${String(s)}`);
}

describe("enums and helpers", () => {
  test("VMSTATE both ways, names, header values", () => {
    assert.equal(VMSTATE.CREATED, VMSTATE_CREATED);
    assert.equal(api.VMSTATE_TERMINATED, 11);
    const names = ["CREATING", "CREATED", "RUNNING", "LOADING", "LOAD_FAILURE", "SAVING", "SUSPENDED", "RESETTING", "GURU_MEDITATION", "OFF", "DESTROYING", "TERMINATED"];
    names.forEach((n, i) => {
      assert.equal(VMR3GetStateName(i as VMSTATE), n);
      assert.equal((api as unknown as Record<string, number>)[`VMSTATE_${n}`], i);
    });
    assert.match(VMR3GetStateName(99 as VMSTATE), /Unknown/);
  });

  test("request enums have the header's values", () => {
    assert.deepEqual([api.VMREQTYPE_INVALID, api.VMREQTYPE_INTERNAL, api.VMREQTYPE_MAX], [0, 1, 2]);
    assert.deepEqual(
      [api.VMREQSTATE_INVALID, api.VMREQSTATE_ALLOCATED, api.VMREQSTATE_QUEUED, api.VMREQSTATE_PROCESSING, api.VMREQSTATE_COMPLETED, api.VMREQSTATE_FREE],
      [0, 1, 2, 3, 4, 5],
    );
    assert.deepEqual([api.VMREQFLAGS_VBOX_STATUS, api.VMREQFLAGS_VOID, api.VMREQFLAGS_RETURN_MASK, api.VMREQFLAGS_NO_WAIT], [0, 1, 1, 2]);
    assert.deepEqual([api.VMINITCOMPLETED_RING3, api.VMINITCOMPLETED_RING0, api.VMINITCOMPLETED_GC], [1, 2, 3]);
    assert.equal(api.VMINITCOMPLETED.GC, 3);
    assert.equal(RT_INDEFINITE_WAIT, 0xffffffff);
  });

  test("status codes, RT_SUCCESS/RT_FAILURE and names", () => {
    assert.equal(api.VERR_VM_INVALID_VM_STATE, -1907);
    assert.equal(api.VERR_TIMEOUT, -40);
    assert.equal(api.VERR_VM_REQUEST_STATE, -1902);
    assert.ok(api.RT_SUCCESS(0) && api.RT_SUCCESS(1155) && !api.RT_SUCCESS(-1));
    assert.ok(api.RT_FAILURE(-1907) && !api.RT_FAILURE(0));
    assert.equal(api.statusName(-1907), "VERR_VM_INVALID_VM_STATE");
    assert.equal(api.statusName(-123456), "rc=-123456");
  });

  test("RT_SRC_POS captures the caller", () => {
    const pos = RT_SRC_POS();
    assert.match(pos.file, /vmapi\.test\.ts$/);
    assert.ok(pos.line > 0);
  });

  test("VM structure addresses: identity on offsets, no physical address", () => {
    assert.equal(VM_GUEST_ADDR(null as never, 24), 24);
    assert.equal(VM_HOST_ADDR(null as never, 4), 4);
    assert.equal(VM_PHYS_ADDR(null as never, 4), null);
  });
});

describe("creation", () => {
  test("VMR3Create with a null constructor builds the default machine", async () => {
    const states: number[] = [];
    const out: Out<VM> = { value: null };
    const rc = await VMR3Create(null, null, null, null, out);
    assert.equal(rc, Status.VINF_SUCCESS);
    assert.ok(out.value);
    created.push(out.value);
    assert.equal(VMR3GetState(out.value), VMSTATE.CREATED);
    assert.equal(out.value.ramSize, 128 * 1024 * 1024);
    VMR3AtStateRegister(out.value, (_vm, s) => states.push(s), null);
    assert.equal(await VMR3Destroy(out.value), 0);
    assert.deepEqual(states, [VMSTATE.DESTROYING, VMSTATE.TERMINATED]);
    assert.equal(await VMR3Destroy(out.value), Status.VERR_INVALID_HANDLE);
    assert.equal(await VMR3PowerOn(out.value), Status.VERR_INVALID_HANDLE);
    assert.equal(VMR3GetState(out.value), VMSTATE.TERMINATED);
  });

  test("the constructor gets the root node and the VM; its callbacks see CREATING → CREATED", async () => {
    const seen: string[] = [];
    const out: Out<VM> = { value: null };
    const rc = await VMR3Create(
      null,
      null,
      (vm: VM, root: CfgmNode, user: unknown) => {
        seen.push(`user=${String(user)} state=${VMR3GetStateName(vm.state)}`);
        root.insertInteger("RamSize", 8 * 1024 * 1024);
        VMR3AtStateRegister(vm, (_v, s, o) => seen.push(`${VMR3GetStateName(o)}->${VMR3GetStateName(s)}`), null);
        return Status.VINF_SUCCESS;
      },
      "cfg-user",
      out,
    );
    assert.equal(rc, 0);
    created.push(out.value!);
    assert.equal(out.value!.ramSize, 8 * 1024 * 1024);
    assert.deepEqual(seen, ["user=cfg-user state=CREATING", "CREATING->CREATED"]);
  });

  test("a failing constructor or bad config: error callback, ppVM null, nothing left", async () => {
    const errors: { vm: unknown; rc: number; msg: string }[] = [];
    const onErr = (vm: VM | null, _u: unknown, rc: number, _p: unknown, _f: string, _a: unknown[], msg: string) =>
      errors.push({ vm, rc, msg });
    const before = VM.list().length;
    const out: Out<VM> = { value: null };
    assert.equal(await VMR3Create(onErr, null, () => Status.VERR_NOT_SUPPORTED, null, out), Status.VERR_NOT_SUPPORTED);
    assert.equal(out.value, null);
    const rc2 = await VMR3Create(onErr, null, (_vm, root) => root.insertInteger("RamSise", 1), null, out);
    assert.equal(rc2, Status.VERR_CFGM_CONFIG_UNKNOWN_VALUE);
    assert.equal(out.value, null);
    const rc3 = await VMR3Create(onErr, null, (_vm, root) => {
      root.ensureChild("Devices/no-such-device/0");
    }, null, out);
    assert.equal(rc3, Status.VERR_PDM_DEVICE_NOT_FOUND);
    assert.equal(errors.length, 3);
    assert.equal(errors[0]!.vm, null);
    assert.match(errors[1]!.msg, /\/RamSise/);
    assert.match(errors[2]!.msg, /no-such-device/);
    assert.equal(VM.list().length, before);
    assert.equal(await VMR3Create(null, null, null, null, null as never), Status.VERR_INVALID_POINTER);
  });

  test("JSON config: object and file; errors name the path", async () => {
    const vm = await newVM({ RamSize: 4 * 1024 * 1024, Name: "json" });
    assert.equal(vm.ramSize, 4 * 1024 * 1024);
    const file = join(tmp, "cfg.json");
    writeFileSync(file, JSON.stringify({ RamSize: 2 * 1024 * 1024, Devices: { "test-busy": { "0": { Config: { BusyUs: 1, PeriodUs: 1000 } } } } }));
    const vm2 = await VM.create({ config: file, modules: [FNS] });
    created.push(vm2);
    assert.equal(vm2.ramSize, 2 * 1024 * 1024);
    const names = (await vm2.stats("/Devices")).map((e) => e.name);
    assert.equal(names.length, 0, "busy device registers no stats");
    await assert.rejects(VM.create({ config: { RamSize: "big" } }), /RamSize/);
    await assert.rejects(VM.create({ config: { Devices: { "test-busy": { "0": { Config: { Bogus: 1 } } } } }, modules: [FNS] }), (e: Error & { rc?: number }) => {
      assert.equal(e.rc, Status.VERR_CFGM_CONFIG_UNKNOWN_VALUE);
      assert.match(e.message, /\/Devices\/test-busy\/0\/Config\/Bogus/);
      return true;
    });
    await assert.rejects(VM.create({ config: join(tmp, "nope.json") }), (e: Error & { rc?: number }) => e.rc === Status.VERR_FILE_NOT_FOUND);
    writeFileSync(join(tmp, "bad.json"), "{ nope");
    await assert.rejects(VM.create({ config: join(tmp, "bad.json") }), /bad\.json is not valid JSON/);
    await assert.rejects(VM.create({ config: { RamSize: 12345 } }), /RamSize/);
  });
});

describe("state machine", () => {
  const legal: Record<string, Partial<Record<Call, VMSTATE>>> = {
    CREATED: { powerOn: VMSTATE.RUNNING, load: VMSTATE.SUSPENDED, destroy: VMSTATE.TERMINATED },
    RUNNING: { suspend: VMSTATE.SUSPENDED, reset: VMSTATE.RUNNING, powerOff: VMSTATE.OFF },
    SUSPENDED: { resume: VMSTATE.RUNNING, reset: VMSTATE.SUSPENDED, save: VMSTATE.SUSPENDED, load: VMSTATE.SUSPENDED, powerOff: VMSTATE.OFF },
    OFF: { destroy: VMSTATE.TERMINATED },
    GURU_MEDITATION: { powerOff: VMSTATE.OFF },
    LOAD_FAILURE: { powerOff: VMSTATE.OFF },
  };

  test("a saved state to load in the matrix", async () => {
    const vm = await inState(VMSTATE.SUSPENDED);
    goodState = join(tmp, "good.sav");
    assert.equal(await VMR3Save(vm, goodState, null, null), 0);
    assert.ok(existsSync(goodState));
  });

  for (const [name, moves] of Object.entries(legal)) {
    test(`state × call: ${name}`, async () => {
      const s = VMSTATE[name as keyof typeof VMSTATE];
      let vm = await inState(s);
      for (const c of calls) {
        if (moves[c] !== undefined) continue;
        assert.equal(await doCall(vm, c), Status.VERR_VM_INVALID_VM_STATE, `${name}: ${c} must be refused`);
        assert.equal(VMR3GetState(vm), s, `${name}: ${c} must not change the state`);
      }
      for (const c of calls) {
        const to = moves[c];
        if (to === undefined) continue;
        if (VMR3GetState(vm) !== s || !vm.alive) {
          await cleanup();
          vm = await inState(s);
        }
        const rc = await doCall(vm, c);
        assert.equal(rc, 0, `${name}: ${c} must succeed (${api.statusName(rc)})`);
        assert.equal(VMR3GetState(vm), to, `${name}: ${c} → ${VMR3GetStateName(to)}`);
      }
    });
  }

  test("transient states SAVING and LOADING refuse every call (from the progress callbacks)", async () => {
    const vm = await inState(VMSTATE.SUSPENDED);
    const during: { state: VMSTATE; rcs: Promise<number>[] }[] = [];
    const probe = (v: VM): number => {
      if (during.length === 0) during.push({ state: VMR3GetState(v), rcs: calls.map((c) => doCall(v, c)) });
      return 0;
    };
    assert.equal(await VMR3Save(vm, join(tmp, "t.sav"), probe, null), 0);
    assert.equal(during[0]!.state, VMSTATE.SAVING);
    for (const rc of await Promise.all(during[0]!.rcs)) assert.equal(rc, Status.VERR_VM_INVALID_VM_STATE);
    during.length = 0;
    assert.equal(await VMR3Load(vm, join(tmp, "t.sav"), probe, null), 0);
    assert.equal(during[0]!.state, VMSTATE.LOADING);
    for (const rc of await Promise.all(during[0]!.rcs)) assert.equal(rc, Status.VERR_VM_INVALID_VM_STATE);
    assert.equal(VMR3GetState(vm), VMSTATE.SUSPENDED);
  });

  test("at-state callbacks: in order, once each, (vm, new, old, user); deregister by fn and user", async () => {
    const vm = await newVM();
    const log: string[] = [];
    const cb = (v: VM, s: VMSTATE, o: VMSTATE, user: unknown) => {
      assert.equal(v, vm);
      log.push(`${String(user)}:${VMR3GetStateName(o)}->${VMR3GetStateName(s)}`);
    };
    assert.equal(VMR3AtStateRegister(vm, cb, "a"), 0);
    assert.equal(VMR3AtStateRegister(vm, cb, "b"), 0);
    await VMR3PowerOn(vm);
    assert.equal(VMR3AtStateDeregister(vm, cb, "b"), 0);
    assert.equal(VMR3AtStateDeregister(vm, cb, "b"), Status.VERR_NOT_FOUND);
    await VMR3Reset(vm);
    await VMR3Suspend(vm);
    await VMR3Resume(vm);
    await VMR3PowerOff(vm);
    assert.deepEqual(log, [
      "a:CREATED->RUNNING",
      "b:CREATED->RUNNING",
      "a:RUNNING->RESETTING",
      "a:RESETTING->RUNNING",
      "a:RUNNING->SUSPENDED",
      "a:SUSPENDED->RUNNING",
      "a:RUNNING->OFF",
    ]);
  });

  test("a state callback may change no state but may destroy", async () => {
    const vm = await newVM();
    let inCb: Promise<number> | null = null;
    let destroyed: Promise<number> | null = null;
    VMR3AtStateRegister(vm, (v, s) => {
      if (s === VMSTATE.RUNNING) inCb = VMR3Suspend(v);
      if (s === VMSTATE.OFF) destroyed = VMR3Destroy(v);
    }, null);
    await VMR3PowerOn(vm);
    assert.equal(await inCb!, Status.VERR_VM_INVALID_VM_STATE);
    assert.equal(VMR3GetState(vm), VMSTATE.RUNNING);
    await VMR3PowerOff(vm);
    assert.equal(await destroyed!, 0);
    assert.equal(vm.alive, false);
  });
});

describe("requests", () => {
  test("VMR3ReqCall: iStatus is the function's status; the packet shows the header's fields", async () => {
    const vm = await newVM();
    const out: Out<VMReq> = { value: null };
    assert.equal(await VMR3ReqCall(vm, out, RT_INDEFINITE_WAIT, "add", 2, 40, 2), 0);
    const req = out.value!;
    assert.equal(req.iStatus, 42);
    assert.equal(req.enmState, VMREQSTATE.COMPLETED);
    assert.equal(req.enmType, VMREQTYPE.INTERNAL);
    assert.equal(req.fFlags, 0);
    assert.equal(req.pVM, vm);
    assert.deepEqual(req.u.Internal, { pfn: "add", cArgs: 2, aArgs: [40, 2] });
    assert.equal(VMR3ReqFree(req), 0);
    assert.equal(req.enmState, VMREQSTATE.FREE);
    // cArgs limits the arguments passed.
    assert.equal(await VMR3ReqCall(vm, out, RT_INDEFINITE_WAIT, mod("countArgs"), 2, 1, 2, 3), 0);
    assert.deepEqual(out.value!.value, { n: 2, sum: 3 });
    const many = Array.from({ length: 64 }, (_, i) => i);
    assert.equal(await VMR3ReqCallV(vm, out, RT_INDEFINITE_WAIT, 0, "countArgs", 64, many), 0);
    assert.deepEqual(out.value!.value, { n: 64, sum: 2016 });
    assert.equal(await VMR3ReqCallV(vm, out, RT_INDEFINITE_WAIT, 0, "countArgs", 65, [...many, 64]), Status.VERR_INVALID_PARAMETER);
    assert.equal(await VMR3ReqCall(vm, out, RT_INDEFINITE_WAIT, "add", 3, 1, 2), Status.VERR_INVALID_PARAMETER);
    assert.equal(await VMR3ReqCallEx(vm, out, RT_INDEFINITE_WAIT, 0x80, "add", 0), Status.VERR_INVALID_FLAGS);
    assert.equal(await VMR3ReqCall(vm, null, RT_INDEFINITE_WAIT, "add", 0), Status.VERR_INVALID_POINTER);
    // Unknown function: the request completes with VERR_NOT_FOUND.
    assert.equal(await VMR3ReqCall(vm, out, RT_INDEFINITE_WAIT, "no-such-fn", 0), 0);
    assert.equal(out.value!.iStatus, Status.VERR_NOT_FOUND);
    assert.equal(await VMR3ReqCall(vm, out, RT_INDEFINITE_WAIT, mod("nope"), 0), 0);
    assert.equal(out.value!.iStatus, Status.VERR_NOT_FOUND);
    // A function throwing VBoxError: its rc, no guru meditation.
    assert.equal(await VMR3ReqCall(vm, out, RT_INDEFINITE_WAIT, "fail", 1, Status.VERR_CANCELLED), 0);
    assert.equal(out.value!.iStatus, Status.VERR_CANCELLED);
    assert.equal(VMR3GetState(vm), VMSTATE.CREATED);
    // Arguments that cannot be cloned.
    assert.equal(await VMR3ReqCall(vm, out, RT_INDEFINITE_WAIT, "echo", 1, () => 1), Status.VERR_INVALID_PARAMETER);
  });

  test("VMR3ReqCallVoid: iStatus is VINF_SUCCESS whatever the function returns", async () => {
    const vm = await newVM();
    const out: Out<VMReq> = { value: null };
    assert.equal(await VMR3ReqCallVoid(vm, out, RT_INDEFINITE_WAIT, "add", 2, -5, -6), 0);
    assert.equal(out.value!.iStatus, 0);
    assert.equal(out.value!.fFlags, VMREQFLAGS_VOID);
  });

  test("timeouts leave the request queued; VMR3ReqWait waits again; free refuses queued/processing", async () => {
    const vm = await newVM();
    const out: Out<VMReq> = { value: null };
    const rc = await VMR3ReqCall(vm, out, 20, "spin", 2, 300, 7);
    assert.equal(rc, Status.VERR_TIMEOUT);
    const req = out.value!;
    assert.ok(req.enmState === VMREQSTATE.PROCESSING || req.enmState === VMREQSTATE.QUEUED);
    assert.equal(req.iStatus, Status.VERR_VM_REQUEST_STATUS_STILL_PENDING);
    assert.equal(VMR3ReqFree(req), Status.VERR_VM_REQUEST_STATE);
    // A second request queued behind it: QUEUED (not processing).
    const out2: Out<VMReq> = { value: null };
    assert.equal(await VMR3ReqCall(vm, out2, 0, "add", 2, 1, 1), Status.VERR_TIMEOUT);
    assert.equal(out2.value!.enmState, VMREQSTATE.QUEUED);
    assert.equal(VMR3ReqFree(out2.value!), Status.VERR_VM_REQUEST_STATE);
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(req.enmState, VMREQSTATE.PROCESSING);
    assert.equal(await VMR3ReqWait(req, 1), Status.VERR_TIMEOUT);
    assert.equal(await VMR3ReqWait(req, RT_INDEFINITE_WAIT), 0);
    assert.equal(req.iStatus, 7);
    assert.equal(await VMR3ReqWait(out2.value!, RT_INDEFINITE_WAIT), 0);
    assert.equal(out2.value!.iStatus, 2);
    assert.equal(VMR3ReqFree(req), 0);
    assert.equal(VMR3ReqFree(req), Status.VERR_VM_REQUEST_STATE);
    assert.equal(await VMR3ReqWait(req, 0), Status.VERR_VM_REQUEST_STATE);
  });

  test("VMREQFLAGS_NO_WAIT: ppReq optional and null; the request still runs", async () => {
    const vm = await newVM();
    const out: Out<VMReq> = { value: null };
    assert.equal(await VMR3ReqCallEx(vm, null, 0, VMREQFLAGS_NO_WAIT, "ledgerPut", 2, 900, 0), 0);
    assert.equal(await VMR3ReqCallEx(vm, out, RT_INDEFINITE_WAIT, VMREQFLAGS_NO_WAIT, "ledgerPut", 2, 900, 1), 0);
    assert.equal(out.value, null);
    const ledger = (await vm.call("ledgerGet")) as { w: number; next: number; bad: number }[];
    assert.deepEqual(ledger.find((e) => e.w === 900), { w: 900, next: 2, bad: 0, total: 2 });
  });

  test("VMR3ReqAlloc/Queue/Wait/Free: the packet's life", async () => {
    const vm = await newVM();
    const out: Out<VMReq> = { value: null };
    assert.equal(VMR3ReqAlloc(vm, out, VMREQTYPE.INVALID), Status.VERR_VM_REQUEST_INVALID_TYPE);
    assert.equal(VMR3ReqAlloc(vm, out, VMREQTYPE.MAX), Status.VERR_VM_REQUEST_INVALID_TYPE);
    assert.equal(VMR3ReqAlloc(vm, out, VMREQTYPE_INTERNAL), 0);
    const req = out.value!;
    assert.equal(req.enmState, VMREQSTATE.ALLOCATED);
    assert.equal(await VMR3ReqWait(req, 0), Status.VERR_VM_REQUEST_STATE);
    req.u.Internal.pfn = "add";
    req.u.Internal.cArgs = 2;
    req.u.Internal.aArgs = [20, 22];
    assert.equal(await VMR3ReqQueue(req, RT_INDEFINITE_WAIT), 0);
    assert.equal(req.enmState, VMREQSTATE.COMPLETED);
    assert.equal(req.iStatus, 42);
    assert.equal(await VMR3ReqQueue(req, RT_INDEFINITE_WAIT), Status.VERR_VM_REQUEST_STATE);
    assert.equal(VMR3ReqFree(req), 0);
    // Freeing an allocated packet is fine.
    VMR3ReqAlloc(vm, out, VMREQTYPE_INTERNAL);
    assert.equal(VMR3ReqFree(out.value!), 0);
    assert.equal(VMR3ReqFree(null), 0);
  });

  test("a request made on the EMT runs at once; EMT-only functions refuse the API side", async () => {
    const vm = await newVM();
    const r = (await vm.call("nested", 3, 4)) as number[];
    assert.deepEqual(r, [0, 7, VMREQSTATE.COMPLETED]);
    assert.deepEqual(await vm.call("allocQueue", 5, 6), [0, 0, 11, VMREQSTATE.COMPLETED, 0, Status.VERR_VM_REQUEST_STATE]);
    assert.equal(VMR3ReqProcess(vm), Status.VERR_VM_THREAD_NOT_EMT);
    assert.equal(VMR3WaitHalted(vm, false), Status.VERR_VM_THREAD_NOT_EMT);
    assert.equal(VMR3Wait(vm), Status.VERR_VM_THREAD_NOT_EMT);
    assert.equal(VMR3AtResetRegister(vm, {} as never, () => 0, null), Status.VERR_VM_THREAD_NOT_EMT);
    assert.equal(VMR3AtResetRegisterInternal(vm, () => 0, null), Status.VERR_VM_THREAD_NOT_EMT);
    assert.equal(VMR3AtResetDeregister(vm, {} as never, () => 0), Status.VERR_VM_THREAD_NOT_EMT);
    assert.equal(VMR3AtResetDeregisterInternal(vm, () => 0), Status.VERR_VM_THREAD_NOT_EMT);
    const where = (await vm.call("whereAmI")) as { isMainThread: boolean };
    assert.equal(where.isMainThread, false);
  });

  test("on the EMT: VMR3Wait until VMR3NotifyFF, VMR3WaitHalted until a timer, VMR3ReqProcess", async () => {
    const vm = await newVM();
    const p = vm.call("waitForNotify") as Promise<number[]>;
    await new Promise((r) => setTimeout(r, 100));
    VMR3NotifyFF(vm, true);
    const [ms, rc, rcProcess] = (await p) as [number, number, number];
    assert.ok(ms >= 50 && ms < 2500, `slept ${String(ms)} ms`);
    assert.equal(rc, 0);
    assert.equal(rcProcess, 0);
    await VMR3PowerOn(vm);
    const [slept, rcHalt] = (await vm.call("haltFor", 30)) as [number, number];
    assert.equal(rcHalt, 0);
    assert.ok(slept >= 20 && slept < 1000, `halted ${String(slept)} ms`);
  });

  test("VMR3NotifyFF wakes a sleeping EMT at once", async () => {
    const vm = await newVM();
    await new Promise((r) => setTimeout(r, 30));
    const before = (await vm.stats("/VM/EMT/Wakeups"))[0]!.value;
    await new Promise((r) => setTimeout(r, 30));
    VMR3NotifyFF(vm, false);
    await new Promise((r) => setTimeout(r, 30));
    const after = (await vm.stats("/VM/EMT/Wakeups"))[0]!.value;
    // The stats request itself wakes the EMT once; the notify adds one more.
    assert.ok(after >= before + 2, `wakeups ${String(before)} → ${String(after)}`);
  });
});

describe("errors, resets, relocation, guru meditation", () => {
  test("VMSetError formats and reaches the callbacks; VM_SET_ERROR; deregistration", async () => {
    const vm = await newVM();
    const got: string[] = [];
    const cb = (v: VM | null, user: unknown, rc: number, pos: { file: string; line: number }, fmt: string, args: unknown[], msg: string) => {
      assert.equal(v, vm);
      got.push(`${String(user)}|${String(rc)}|${fmt}|${JSON.stringify(args)}|${msg}|${pos.file}:${String(pos.line > 0)}`);
    };
    assert.equal(VMR3AtErrorRegister(vm, cb, "u"), 0);
    assert.equal(VMSetError(vm, -42, RT_SRC_POS(), "x=%#x n=%5d s=%s %RX32 %% %c", 255, 42, "hi", 0xabc, 65), -42);
    assert.equal(VMSetErrorV(vm, -43, RT_SRC_POS(), "%-4s|", ["ab"]), -43);
    assert.equal(VM_SET_ERROR(vm, -44, "plain 100%"), -44);
    assert.deepEqual(got, [
      'u|-42|x=%#x n=%5d s=%s %RX32 %% %c|[255,42,"hi",2748,65]|x=0xff n=   42 s=hi ABC % A|' + got[0]!.split("|").pop(),
      'u|-43|%-4s||["ab"]|ab  ||' + got[1]!.split("|").pop(),
      'u|-44|%s|["plain 100%"]|plain 100%|' + got[2]!.split("|").pop(),
    ]);
    assert.match(got[2]!, /vmapi\.test\.ts:true$/);
    assert.equal(VMR3AtErrorDeregister(vm, cb, "u"), 0);
    assert.equal(VMR3AtErrorDeregister(vm, cb, "u"), Status.VERR_NOT_FOUND);
    VMSetError(vm, -1, RT_SRC_POS(), "gone");
    assert.equal(got.length, 3);
  });

  test("errors raised on the EMT reach the API side (VMSetError, VMR3SetErrorWorker)", async () => {
    const vm = await newVM();
    const got: string[] = [];
    VMR3AtErrorRegister(vm, (_v, _u, rc, pos, _f, _a, msg) => got.push(`${String(rc)} ${msg} @${pos.func}`), null);
    assert.equal(await vm.call("raiseError", -77, "disk %s at %u", "hda", 3), -77);
    assert.deepEqual(got, ["-77 disk hda at 3 @raiseError"]);
    await vm.call("recordError", -78, "held back");
    assert.equal(got.length, 1);
    VMR3SetErrorWorker(vm); // API side: no-op
    await vm.call({ module: new URL("./testing/setErrorWorker.ts", import.meta.url).href, export: "deliver" });
    assert.deepEqual(got[1], "-78 held back @recordError");
  });

  test("at-reset callbacks: device, internal (EMT) and external (API side), then deregistration", async () => {
    const vm = await newVM();
    const ext: string[] = [];
    const extCb = (user: unknown) => ext.push(`ext:${String(user)}`);
    assert.equal(VMR3AtResetRegisterExternal(vm, extCb, "x", "external"), 0);
    assert.deepEqual(await vm.call("hookReset"), [0, 0]);
    await VMR3PowerOn(vm);
    assert.equal(await VMR3Reset(vm), 0);
    assert.deepEqual(await vm.call("getResetLog"), ["int:u1", "dev:i8259:u2"]);
    assert.deepEqual(ext, ["ext:x"]);
    assert.equal(VMR3AtResetDeregisterExternal(vm, extCb), 0);
    assert.equal(VMR3AtResetDeregisterExternal(vm, extCb), Status.VERR_VM_ATRESET_NOT_FOUND);
    assert.deepEqual(await vm.call("unhookReset"), [0, 0]);
    assert.deepEqual(await vm.call("unhookReset"), [Status.VERR_VM_ATRESET_NOT_FOUND, Status.VERR_VM_ATRESET_NOT_FOUND]);
    await VMR3Reset(vm);
    assert.equal(ext.length, 1);
    assert.deepEqual(await vm.call("getResetLog"), ["int:u1", "dev:i8259:u2"]);
  });

  test("a device asking for reset, a triple fault, a device asking for power off (exit status)", async () => {
    const vm = await newVM();
    const states: string[] = [];
    VMR3AtStateRegister(vm, (_v, s) => states.push(VMR3GetStateName(s)), null);
    await VMR3PowerOn(vm);
    await vm.call("machineAction", "reset");
    await vm.call("tripleFault");
    const t1 = Date.now();
    while (states.length < 5 && Date.now() - t1 < 5000) await vm.stats("x");
    assert.equal((await vm.stats("/VM/EMT/Resets"))[0]!.value, 2);
    await vm.call("machineAction", "poweroff", 3);
    const t0 = Date.now();
    while (vm.state !== VMSTATE.OFF && Date.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 5));
    await vm.stats("x"); // a round trip: every event before it has been dispatched
    assert.deepEqual(states, ["RUNNING", "RESETTING", "RUNNING", "RESETTING", "RUNNING", "OFF"]);
    assert.equal(vm.exitStatus, 3);
  });

  test("VMR3Relocate calls the relocation handlers (EMT only)", async () => {
    const vm = await newVM();
    VMR3Relocate(vm, 0x1000); // API side: nothing happens
    await vm.relocate(0x1000);
    await vm.relocate(-0x10);
    assert.equal(await vm.call({ module: new URL("./testing/setErrorWorker.ts", import.meta.url).href, export: "relocDelta" }), 0xff0);
  });

  test("an exception in the emulator: GURU_MEDITATION with an error report, the host lives on", async () => {
    const vm = await newVM({ Devices: { "test-fault": { "0": { Config: { AfterMs: 5 } } } } });
    const errs: { rc: number; msg: string }[] = [];
    VMR3AtErrorRegister(vm, (_v, _u, rc, _p, _f, _a, msg) => errs.push({ rc, msg }), null);
    await VMR3PowerOn(vm);
    const t0 = Date.now();
    while (vm.state !== VMSTATE.GURU_MEDITATION && Date.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 5));
    assert.equal(vm.state, VMSTATE.GURU_MEDITATION);
    await vm.stats("x");
    assert.equal(errs[0]!.rc, Status.VERR_EM_INTERNAL_ERROR);
    assert.match(errs[0]!.msg, /Guru meditation.*test-fault device failed on purpose/);
    // The EMT still serves requests, and power off works.
    assert.equal(await vm.call("add", 1, 1), 2);
    assert.equal(await VMR3PowerOff(vm), 0);
    // A request function throwing while RUNNING does the same.
    const vm2 = await inState(VMSTATE.RUNNING);
    const out: Out<VMReq> = { value: null };
    assert.equal(await VMR3ReqCall(vm2, out, RT_INDEFINITE_WAIT, "crash", 1, "boom"), 0);
    assert.equal(out.value!.iStatus, Status.VERR_INTERNAL_ERROR);
    assert.equal(VMR3GetState(vm2), VMSTATE.GURU_MEDITATION);
  });
});

describe("many VMs, destruction, save/load", () => {
  test("three VMs alive at once: enumeration, independence, at-dtor callbacks", async () => {
    const dtor: VM[] = [];
    const dcb = (vm: VM) => dtor.push(vm);
    assert.equal(VMR3AtDtorRegister(dcb, null), 0);
    const vms = [await newVM(), await newVM(), await newVM()];
    const listed: VM[] = [];
    for (let v = VMR3EnumVMs(null); v; v = VMR3EnumVMs(v)) listed.push(v);
    for (const v of vms) assert.ok(listed.includes(v));
    await VMR3PowerOn(vms[1]!);
    assert.deepEqual(vms.map((v) => VMR3GetState(v)), [VMSTATE.CREATED, VMSTATE.RUNNING, VMSTATE.CREATED]);
    const sums = await Promise.all(vms.map((v, i) => v.call("add", i, 10)));
    assert.deepEqual(sums, [10, 11, 12]);
    await VMR3Destroy(vms[0]!);
    await VMR3PowerOff(vms[1]!);
    await VMR3Destroy(vms[1]!);
    assert.deepEqual(dtor, [vms[0], vms[1]]);
    assert.equal(VMR3AtDtorDeregister(dcb), 0);
    assert.equal(VMR3AtDtorDeregister(dcb), Status.VERR_NOT_FOUND);
    await VMR3Destroy(vms[2]!);
    assert.equal(dtor.length, 2);
    let n = 0;
    for (let v = VMR3EnumVMs(null); v; v = VMR3EnumVMs(v)) if (vms.includes(v)) n++;
    assert.equal(n, 0);
  });

  test("save and load keep RAM; progress is reported; a failing progress cancels with its status", async () => {
    const vm = await inState(VMSTATE.SUSPENDED);
    vm.ram.set([1, 2, 3, 4], 0x1000);
    const file = join(tmp, "ram.sav");
    const pct: number[] = [];
    assert.equal(await VMR3Save(vm, file, (_v, p, user) => (pct.push(p), user === "u" ? 0 : -1), "u"), 0);
    assert.ok(pct.length > 0 && pct.every((p) => p >= 0 && p <= 100));
    const first = readFileSync(file);
    vm.ram.fill(0, 0x1000, 0x1004);
    assert.equal(await VMR3Load(vm, file, null, null), 0);
    assert.deepEqual([...vm.ram.subarray(0x1000, 0x1004)], [1, 2, 3, 4]);
    // Cancel: the save fails with the callback's status, the VM stays SUSPENDED, the old file is intact.
    const rc = await VMR3Save(vm, file, () => Status.VERR_CANCELLED, null);
    assert.equal(rc, Status.VERR_CANCELLED);
    assert.equal(VMR3GetState(vm), VMSTATE.SUSPENDED);
    assert.deepEqual(readFileSync(file), first);
    // A file that cannot be written: an error report, still SUSPENDED.
    const errs0: string[] = [];
    VMR3AtErrorRegister(vm, (_v, _u, _rc, _p, _f, _a, msg) => errs0.push(msg), null);
    assert.ok(RT_FAILURE_(await VMR3Save(vm, join(tmp, "no-such-dir", "x.sav"), null, null)));
    assert.equal(VMR3GetState(vm), VMSTATE.SUSPENDED);
    assert.match(errs0[0] ?? "", /no-such-dir/);
    // Cancel a load: LOAD_FAILURE.
    const rc2 = await VMR3Load(vm, file, () => Status.VERR_CANCELLED, null);
    assert.equal(rc2, Status.VERR_CANCELLED);
    assert.equal(VMR3GetState(vm), VMSTATE.LOAD_FAILURE);
    // A VM with a different configuration refuses the file.
    const other = await newVM({ RamSize: 2 * 1024 * 1024 });
    const errs: string[] = [];
    VMR3AtErrorRegister(other, (_v, _u, _rc, _p, _f, _a, msg) => errs.push(msg), null);
    assert.notEqual(await VMR3Load(other, file, null, null), 0);
    assert.equal(VMR3GetState(other), VMSTATE.LOAD_FAILURE);
    assert.equal(errs.length, 1);
  });
});
