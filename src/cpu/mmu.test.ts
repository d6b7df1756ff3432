import { test } from "node:test";
import assert from "node:assert/strict";
import { TestCpu } from "./sys.testkit.ts";
import { CR0, CR4, Slot } from "./state.ts";

const PD = 0x10000;
const PT = 0x11000;

/** Paging on with a page directory at PD; PDE 1 (lin 0x400000..) → page table PT. */
function paged(t: TestCpu, ptFlags = 7): void {
  t.w32(PD + 4, PT | ptFlags);
  t.i32[Slot.CR3] = PD;
  t.i32[Slot.CR0] = CR0.PE | CR0.PG;
  t.mmu.flush(true);
}

test("paging off: identity, A20 wrap, and the TLB is flushed when A20 changes", () => {
  const t = new TestCpu();
  t.w32(0x1234, 0x11223344);
  assert.equal(t.mmu.read32(0x1234), 0x11223344);
  t.mmu.write16(0x2001, 0xbeef);
  assert.equal(t.r16p(0x2001), 0xbeef);
  t.w8(0x100005, 0xaa);
  t.w8(0x5, 0x55);
  assert.equal(t.mmu.read8(0x100005), 0xaa); // cached in the TLB with A20 open
  t.mem.setA20(false);
  assert.equal(t.mmu.read8(0x100005), 0x55, "A20 closed: 1 MiB wraps to 0 (stale TLB would say 0xaa)");
  t.mem.setA20(true);
  assert.equal(t.mmu.read8(0x100005), 0xaa);
  assert.ok(t.pagingChanges >= 2);
});

test("4 KiB page walk sets accessed on read, dirty only on write (also after a read filled the TLB)", () => {
  const t = new TestCpu();
  paged(t);
  t.w32(PT + 5 * 4, 0x30000 | 7); // lin 0x405000 → 0x30000
  t.w32(0x30010, 0xcafef00d);
  assert.equal(t.mmu.read32(0x405010) >>> 0, 0xcafef00d);
  assert.equal(t.r32p(PD + 4) & 0x60, 0x20, "PDE accessed, not dirty");
  assert.equal(t.r32p(PT + 20) & 0x60, 0x20, "PTE accessed, not dirty");
  t.mmu.write8(0x405011, 0x99);
  assert.equal(t.r8p(0x30011), 0x99);
  assert.equal(t.r32p(PT + 20) & 0x60, 0x60, "PTE dirty after the write");
  assert.equal(t.r32p(PD + 4) & 0x40, 0, "PDE dirty bit is not touched for a 4 KiB page");
});

test("#PF error codes and CR2; a faulting walk sets no accessed bits", () => {
  const t = new TestCpu();
  paged(t, 7);
  // lin 0x406000: PTE not present
  assert.equal(t.mmu.read8(0x406123), 0);
  assert.deepEqual(t.takeFault(), [14, 0]);
  assert.equal(t.i32[Slot.CR2], 0x406123);
  assert.equal(t.r32p(PD + 4) & 0x20, 0, "PDE not marked accessed by a failed walk");
  t.mmu.write32(0x406000, 1);
  assert.deepEqual(t.takeFault(), [14, 2]);
  // PDE not present (lin 0x800000)
  t.i32[Slot.CPL] = 3;
  t.mmu.write8(0x800000, 1);
  assert.deepEqual(t.takeFault(), [14, 6]);
  assert.equal(t.i32[Slot.CR2], 0x800000);
  // supervisor page, user read: P=1, U=1
  t.w32(PT + 7 * 4, 0x31000 | 3); // lin 0x407000, supervisor RW
  assert.equal(t.mmu.read8(0x407000), 0);
  assert.deepEqual(t.takeFault(), [14, 5]);
  // read-only user page: user write → 7
  t.w32(PT + 8 * 4, 0x32000 | 5); // lin 0x408000, user RO
  assert.equal(t.mmu.read8(0x408000), 0);
  assert.equal(t.takeFault(), null);
  t.mmu.write8(0x408000, 1);
  assert.deepEqual(t.takeFault(), [14, 7]);
  // a user-accessible PTE under a supervisor PDE is supervisor-only
  t.w32(PD + 12, (PT + 0x1000) | 3);
  t.w32(PT + 0x1000, 0x33000 | 7); // lin 0xC00000
  t.mmu.read8(0xc00000);
  assert.deepEqual(t.takeFault(), [14, 5]);
});

test("CR0.WP: supervisor writes to read-only pages succeed with WP=0 and fault with WP=1", () => {
  const t = new TestCpu();
  paged(t);
  t.w32(PT + 9 * 4, 0x34000 | 5); // user RO
  t.mmu.write8(0x409004, 0x77);
  assert.equal(t.takeFault(), null);
  assert.equal(t.r8p(0x34004), 0x77);
  t.i32[Slot.CR0] = t.i32[Slot.CR0]! | CR0.WP;
  t.mmu.flush(true);
  t.mmu.write8(0x409005, 0x78);
  assert.deepEqual(t.takeFault(), [14, 3]);
  assert.equal(t.r8p(0x34005), 0);
});

test("4 MiB pages need CR4.PSE; accessed and dirty go to the PDE; reserved bits fault with RSVD", () => {
  const t = new TestCpu(16 << 20);
  t.i32[Slot.CR3] = PD;
  t.i32[Slot.CR0] = CR0.PE | CR0.PG;
  t.w32(PD + 8, 0x400000 | 0x87); // lin 0x800000.. → phys 0x400000 (4 MiB)
  t.i32[Slot.CR4] = CR4.PSE;
  t.mmu.flush(true);
  t.w32(0x400000 + 0x12344, 0x5a5a5a5a);
  assert.equal(t.mmu.read32(0x812344), 0x5a5a5a5a);
  assert.equal(t.r32p(PD + 8) & 0x60, 0x20);
  t.mmu.write8(0x9ffffe, 1);
  assert.equal(t.r8p(0x5ffffe), 1);
  assert.equal(t.r32p(PD + 8) & 0x60, 0x60);
  // without PSE the PS bit is ignored: the PDE points at a page table (at 0x400000)
  t.i32[Slot.CR4] = 0;
  t.mmu.flush(true);
  t.w32(0x400000 + 0x12 * 4, 0x35000 | 7);
  t.w32(0x35344, 0x01020304);
  assert.equal(t.mmu.read32(0x812344), 0x01020304);
  // reserved bits 21..13 in a 4 MiB PDE
  t.i32[Slot.CR4] = CR4.PSE;
  t.w32(PD + 12, 0x400000 | 0x2000 | 0x87);
  t.mmu.flush(true);
  t.mmu.read8(0xc00000);
  assert.deepEqual(t.takeFault(), [14, 9]);
});

test("global pages survive a CR3 reload (PGE), non-global do not; INVLPG drops one page", () => {
  const t = new TestCpu();
  paged(t);
  t.i32[Slot.CR4] = CR4.PGE;
  t.w32(PT + 1 * 4, 0x36000 | 0x107); // global
  t.w32(PT + 2 * 4, 0x37000 | 0x007);
  t.w32(0x36000, 111);
  t.w32(0x37000, 222);
  t.w32(0x38000, 333);
  assert.equal(t.mmu.read32(0x401000), 111);
  assert.equal(t.mmu.read32(0x402000), 222);
  // remap both to 0x38000 without telling the TLB
  t.w32(PT + 1 * 4, 0x38000 | 0x107);
  t.w32(PT + 2 * 4, 0x38000 | 0x007);
  assert.equal(t.mmu.read32(0x401000), 111, "stale until flushed");
  t.mmu.flush(false); // MOV CR3
  assert.equal(t.mmu.read32(0x401000), 111, "global entry kept");
  assert.equal(t.mmu.read32(0x402000), 333, "non-global entry reloaded");
  t.mmu.invlpg(0x401abc);
  assert.equal(t.mmu.read32(0x401000), 333, "INVLPG drops the global entry too");
  // CR4.PGE clear: G bits mean nothing
  t.w32(PT + 3 * 4, 0x36000 | 0x107);
  t.i32[Slot.CR4] = 0;
  t.mmu.flush(true);
  assert.equal(t.mmu.read32(0x403000), 111);
  t.w32(PT + 3 * 4, 0x37000 | 0x107);
  t.mmu.flush(false);
  assert.equal(t.mmu.read32(0x403000), 222);
});

test("INVLPG anywhere in a 4 MiB page drops all of it", () => {
  const t = new TestCpu(16 << 20);
  t.i32[Slot.CR3] = PD;
  t.i32[Slot.CR0] = CR0.PE | CR0.PG;
  t.i32[Slot.CR4] = CR4.PSE;
  t.w32(PD + 8, 0x400000 | 0x87);
  t.mmu.flush(true);
  t.w32(0x400000 + 0x5000, 1);
  t.w32(0x800000 + 0x5000, 2);
  assert.equal(t.mmu.read32(0x805000), 1);
  t.w32(PD + 8, 0x800000 | 0x87);
  t.mmu.invlpg(0x800000);
  assert.equal(t.mmu.read32(0x805000), 2);
});

test("a page-crossing write checks both pages before writing either", () => {
  const t = new TestCpu();
  paged(t);
  t.w32(PT + 0x10 * 4, 0x39000 | 7); // lin 0x410000, next page not present
  t.mmu.write32(0x410ffe, 0x11223344);
  assert.deepEqual(t.takeFault(), [14, 2]);
  assert.equal(t.i32[Slot.CR2], 0x411000, "CR2 is the second page");
  assert.equal(t.r16p(0x39ffe), 0, "first page not written");
  // both present, different physical pages
  t.w32(PT + 0x11 * 4, 0x3b000 | 7);
  t.mmu.write32(0x410ffe, 0x11223344);
  assert.equal(t.takeFault(), null);
  assert.equal(t.r16p(0x39ffe), 0x3344);
  assert.equal(t.r16p(0x3b000), 0x1122);
  assert.equal(t.mmu.read32(0x410ffe), 0x11223344);
  assert.equal(t.mmu.read16(0x410fff), 0x2233);
});

test("writes to pages holding decoded code are reported to the core", () => {
  const t = new TestCpu();
  paged(t);
  t.w32(PT + 0x20 * 4, 0x3c000 | 7);
  t.codePages[0x3c] = 1;
  t.mmu.write16(0x420010, 0x9090);
  t.mmu.write8(0x421000 - 0x1000, 0xcc);
  assert.deepEqual(t.written, [
    [0x3c010, 2],
    [0x3c000, 1],
  ]);
  t.mmu.read32(0x420010);
  assert.equal(t.written.length, 2);
});

test("MMIO and unassigned pages go through PhysMem; ROM reads but drops writes", () => {
  const t = new TestCpu();
  const seen: string[] = [];
  t.mem.mapMmio(0x200000, 0x1000, {
    read: (off, size) => {
      seen.push(`r${String(size)}@${off.toString(16)}`);
      return 0x1234;
    },
    write: (off, v, size) => {
      seen.push(`w${String(size)}@${off.toString(16)}=${v.toString(16)}`);
    },
  });
  assert.equal(t.mmu.read16(0x200010), 0x1234);
  t.mmu.write32(0x200020, 0xabcdef01);
  assert.deepEqual(seen, ["r2@10", "w4@20=abcdef01"]);
  assert.equal(t.mmu.read8(0x7ff00000), 0xff, "unassigned reads float");
  t.mem.mapRom(0x300000, new Uint8Array([1, 2, 3, 4]));
  assert.equal(t.mmu.read32(0x300000), 0x04030201);
  t.mmu.write8(0x300000, 9);
  assert.equal(t.mmu.read8(0x300000), 1);
});

test("user/supervisor fast paths use the same TLB entry with the current CPL", () => {
  const t = new TestCpu();
  paged(t);
  t.w32(PT + 0x30 * 4, 0x3d000 | 3); // supervisor RW
  t.w32(0x3d000, 42);
  assert.equal(t.mmu.read32(0x430000), 42);
  t.i32[Slot.CPL] = 3;
  assert.equal(t.mmu.read32(0x430000), 0);
  assert.deepEqual(t.takeFault(), [14, 5]);
  assert.equal(t.mmu.translate(0x430004, false, false), 0x3d004);
  assert.equal(t.mmu.readSys32(0x430000), 42, "supervisor access at CPL 3");
});

test("flushes stay exact after the TLB's page lists overflow", () => {
  const t = new TestCpu(16 << 20);
  t.i32[Slot.CR3] = PD;
  t.i32[Slot.CR0] = CR0.PE | CR0.PG;
  t.i32[Slot.CR4] = CR4.PSE | CR4.PGE;
  // 20 4 MiB pages at lin 0x4000000.. all mapping phys 0x400000; the first one global
  for (let i = 0; i < 20; i++) t.w32(PD + (16 + i) * 4, 0x400000 | 0x87 | (i === 0 ? 0x100 : 0));
  t.mmu.flush(true);
  t.w32(0x400000 + 0x123000, 7);
  for (let i = 0; i < 20 * 1024; i++) t.mmu.read8(0x4000000 + i * 0x1000); // 20480 pages > list size
  assert.equal(t.mmu.read32(0x4123000), 7);
  assert.equal(t.mmu.read32(0x4523000), 7);
  // remap everything to phys 0x800000
  t.w32(0x800000 + 0x123000, 9);
  for (let i = 0; i < 20; i++) t.w32(PD + (16 + i) * 4, 0x800000 | 0x87 | (i === 0 ? 0x100 : 0));
  t.mmu.flush(false);
  assert.equal(t.mmu.read32(0x4123000), 7, "global entry kept");
  assert.equal(t.mmu.read32(0x4523000), 9, "non-global entry dropped");
  t.mmu.flush(true);
  assert.equal(t.mmu.read32(0x4123000), 9, "global flush drops it");
});

test("random page tables: every access agrees with a plain reference walk (TLB never over-grants)", () => {
  let seed = 12345;
  const rnd = (n: number): number => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return (seed >>> 8) % n;
  };
  for (let round = 0; round < 4; round++) {
    const t = new TestCpu(16 << 20);
    const pse = rnd(2) === 1;
    t.i32[Slot.CR3] = PD;
    t.i32[Slot.CR0] = CR0.PE | CR0.PG | (rnd(2) ? CR0.WP : 0);
    t.i32[Slot.CR4] = pse ? CR4.PSE : 0;
    // 8 directory entries, each a random mix of P/W/U/PS over its own page table
    for (let d = 0; d < 8; d++) {
      const pt = 0x200000 + d * 0x1000;
      const flags = rnd(8) | 1 * (rnd(5) === 0 ? 0 : 1) | (rnd(3) === 0 ? 0x80 : 0);
      t.w32(PD + d * 4, (flags & 0x80) !== 0 && pse ? 0x400000 * (1 + (d & 1)) | (flags & 0x87) : pt | (flags & 7));
      for (let i = 0; i < 16; i++) t.w32(pt + i * 4, (0x800000 + ((d * 16 + i) << 12)) | (rnd(8) & 7));
    }
    t.mmu.flush(true);
    const ref = (lin: number, write: boolean, user: boolean): number => {
      const pde = t.r32p(PD + (lin >>> 22) * 4);
      const err = (write ? 2 : 0) | (user ? 4 : 0);
      if ((pde & 1) === 0) return -1 - err;
      let perm: number;
      let phys: number;
      if ((pde & 0x80) !== 0 && pse) {
        perm = pde;
        phys = (pde & 0xffc00000) + (lin & 0x3fffff);
      } else {
        const pte = t.r32p((pde & ~0xfff) + ((lin >>> 12) & 0x3ff) * 4);
        if ((pte & 1) === 0) return -1 - err;
        perm = pde & pte;
        phys = (pte & ~0xfff) + (lin & 0xfff);
      }
      const ok = user ? (perm & 4) !== 0 && (!write || (perm & 2) !== 0) : !write || (perm & 2) !== 0 || (t.i32[Slot.CR0]! & CR0.WP) === 0;
      return ok ? phys : -1 - (err | 1);
    };
    for (let k = 0; k < 4000; k++) {
      const lin = ((rnd(8) << 22) | (rnd(16) << 12) | rnd(0x1000)) >>> 0;
      const write = rnd(2) === 1;
      const user = rnd(2) === 1;
      const want = ref(lin, write, user);
      const got = t.mmu.translate(lin, write, user);
      const fault = t.takeFault();
      if (want >= 0) {
        assert.equal(got, want, `lin ${lin.toString(16)} w=${String(write)} u=${String(user)}`);
        assert.equal(fault, null);
      } else {
        assert.equal(got, -1);
        assert.deepEqual(fault, [14, -1 - want], `lin ${lin.toString(16)} w=${String(write)} u=${String(user)}`);
      }
    }
  }
});
