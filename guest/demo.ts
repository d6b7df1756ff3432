/**
 * boxvm's demo guest: a Multiboot v1 ELF kernel of our own, assembled from this source by asm.ts
 * when `boxvm run` needs it (no toolchain required). It runs in 32-bit protected mode with its own
 * GDT and IDT, takes serial input through IRQ 4 and the 8259 PIC (so it HLTs while idle), and
 * offers a tiny shell on COM1:
 *
 *   help            the commands            info    memory, CPU vendor, command line
 *   echo <text>     prints the text         count   counts until a key is pressed
 *   exit [0-9]      writes to the exit device (port 0xF4: boxvm/QEMU exit status (n << 1) | 1)
 *   reboot          resets through the keyboard controller (0xFE to port 0x64)
 *   halt            stops the CPU
 *
 * Memory map: loaded at 1 MiB; stack, line buffer and ring buffer in its .bss.
 */
import { assemble, CC, mem, R, R8, SR, type Asm } from "./asm.ts";

/** Load address. */
export const DEMO_ORIGIN = 0x100000;
const COM1 = 0x3f8;
/** The prompt the shell prints. */
export const DEMO_PROMPT = "demo> ";

const KERNEL_CS = 0x08;
const KERNEL_DS = 0x10;

function program(a: Asm): void {
  const { EAX, ECX, EDX, EBX, ESI, EDI } = R;

  // ---- Multiboot header (ELF: no address fields). flags: bit 0 align modules, bit 1 memory info.
  const MB_FLAGS = 0x3;
  a.dd(0x1badb002);
  a.dd(MB_FLAGS);
  a.dd((-(0x1badb002 + MB_FLAGS)) >>> 0);

  // ---- Entry: EAX = magic, EBX = info.
  a.label("start");
  a.cli();
  a.store(mem(null, "mb_magic"), EAX);
  a.store(mem(null, "mb_info"), EBX);
  a.lgdt("gdt_desc");
  a.jmpFar(KERNEL_CS, "reload");
  a.label("reload");
  a.movImm(EAX, KERNEL_DS);
  for (const s of [SR.DS, SR.ES, SR.SS, SR.FS, SR.GS]) a.movSreg(s, EAX);
  a.movImm(R.ESP, "stack_top");
  a.call("serial_init");
  a.call("pic_init");
  a.lidt("idt_desc");
  a.movImm(ESI, "s_banner");
  a.call("puts");
  a.call("cmd_info");
  a.movImm(ESI, "s_hint");
  a.call("puts");
  a.sti();

  // ---- The shell loop.
  a.label("shell");
  a.movImm(ESI, "s_prompt");
  a.call("puts");
  a.call("readline");
  a.movImm(ESI, "line");
  for (const [word, handler] of [
    ["help", "cmd_help"],
    ["info", "cmd_info"],
    ["echo", "cmd_echo"],
    ["count", "cmd_count"],
    ["exit", "cmd_exit"],
    ["reboot", "cmd_reboot"],
    ["halt", "cmd_halt"],
  ] as const) {
    const next = a.fresh();
    a.movImm(EDI, `w_${word}`);
    a.call("match"); // EAX = argument pointer or 0
    a.aluImm("cmp", EAX, 0);
    a.jcc(CC.E, next);
    a.call(handler);
    a.jmp("shell");
    a.label(next);
  }
  // empty line?
  a.cmpByteImm(mem(null, "line"), 0);
  a.jcc(CC.E, "shell");
  a.movImm(ESI, "s_unknown");
  a.call("puts");
  a.movImm(ESI, "line");
  a.call("puts");
  a.movImm(ESI, "s_tryhelp");
  a.call("puts");
  a.jmp("shell");

  // ---- match: ESI = line, EDI = word (asciz). EAX = pointer after "word " (or at the NUL), or 0.
  a.label("match");
  a.push(ESI);
  a.push(EDI);
  a.label("match_loop");
  a.loadByte(EAX, mem(EDI, 0));
  a.aluImm("cmp", EAX, 0);
  a.jcc(CC.E, "match_end");
  a.loadByte(ECX, mem(ESI, 0));
  a.alu("cmp", EAX, ECX);
  a.jcc(CC.NE, "match_no");
  a.inc(ESI);
  a.inc(EDI);
  a.jmp("match_loop");
  a.label("match_end");
  a.loadByte(ECX, mem(ESI, 0));
  a.aluImm("cmp", ECX, 0);
  a.jcc(CC.E, "match_yes");
  a.aluImm("cmp", ECX, 0x20);
  a.jcc(CC.NE, "match_no");
  a.inc(ESI);
  a.label("match_yes");
  a.mov(EAX, ESI);
  a.pop(EDI);
  a.pop(ESI);
  a.ret();
  a.label("match_no");
  a.movImm(EAX, 0);
  a.pop(EDI);
  a.pop(ESI);
  a.ret();

  // ---- Commands (EAX = argument pointer).
  a.label("cmd_help");
  a.movImm(ESI, "s_help");
  a.call("puts");
  a.ret();

  a.label("cmd_echo");
  a.mov(ESI, EAX);
  a.call("puts");
  a.movImm(ESI, "s_nl");
  a.call("puts");
  a.ret();

  a.label("cmd_info");
  // memory (info flag 0)
  a.load(EBX, mem(null, "mb_info"));
  a.load(EAX, mem(null, "mb_magic"));
  a.aluImm("cmp", EAX, 0x2badb002);
  a.jcc(CC.NE, "info_nomb");
  a.load(EAX, mem(EBX, 0));
  a.testAl(1);
  a.jcc(CC.E, "info_nomem");
  a.movImm(ESI, "s_mem");
  a.call("puts");
  a.load(EAX, mem(EBX, 8));
  a.shr(EAX, 10);
  a.inc(EAX); // + the first MiB
  a.call("print_dec");
  a.movImm(ESI, "s_mib");
  a.call("puts");
  a.label("info_nomem");
  // command line (info flag 2)
  a.load(EAX, mem(EBX, 0));
  a.testAl(4);
  a.jcc(CC.E, "info_cpu");
  a.movImm(ESI, "s_cmdline");
  a.call("puts");
  a.load(ESI, mem(EBX, 16));
  a.call("puts");
  a.movImm(ESI, "s_nl");
  a.call("puts");
  a.jmp("info_cpu");
  a.label("info_nomb");
  a.movImm(ESI, "s_nomb");
  a.call("puts");
  a.label("info_cpu");
  a.movImm(ESI, "s_cpu");
  a.call("puts");
  a.movImm(EAX, 0);
  a.cpuid();
  a.store(mem(null, "vendor"), EBX);
  a.store(mem(null, "vendor_4"), EDX);
  a.store(mem(null, "vendor_8"), ECX);
  a.movImm(ESI, "vendor");
  a.call("puts");
  a.movImm(ESI, "s_nl");
  a.call("puts");
  a.ret();

  // count: prints 1, 2, 3, ... every 2^22 loop iterations until a key arrives.
  a.label("cmd_count");
  a.movImm(EBX, 0);
  a.label("count_outer");
  a.movImm(ECX, 0x400000);
  a.label("count_inner");
  a.dec(ECX);
  a.jcc(CC.NE, "count_inner");
  a.inc(EBX);
  a.mov(EAX, EBX);
  a.call("print_dec");
  a.movImm(ESI, "s_nl");
  a.call("puts");
  a.call("pollc");
  a.aluImm("cmp", EAX, -1);
  a.jcc(CC.E, "count_outer");
  a.ret();

  // exit [digit]
  a.label("cmd_exit");
  a.loadByte(ECX, mem(EAX, 0));
  a.movImm(EAX, 0);
  a.aluImm("cmp", ECX, 0x30);
  a.jcc(CC.B, "exit_go");
  a.aluImm("cmp", ECX, 0x39);
  a.jcc(CC.A, "exit_go");
  a.mov(EAX, ECX);
  a.aluImm("sub", EAX, 0x30);
  a.label("exit_go");
  a.outImm(0xf4);
  a.movImm(ESI, "s_noexit");
  a.call("puts");
  a.ret();

  a.label("cmd_reboot");
  a.movImm(ESI, "s_reboot");
  a.call("puts");
  a.movImm(EAX, 0xfe);
  a.outImm(0x64);
  a.ret();

  a.label("cmd_halt");
  a.movImm(ESI, "s_halt");
  a.call("puts");
  a.label("halt_forever");
  a.cli();
  a.hlt();
  a.jmp("halt_forever");

  // ---- Serial port (16550 at COM1): 115200 8N1, FIFO, receive interrupt, OUT2 (IRQ gate).
  a.label("serial_init");
  for (const [off, val] of [
    [1, 0x00], // IER off
    [3, 0x80], // LCR: DLAB
    [0, 0x01], // divisor 1 = 115200
    [1, 0x00],
    [3, 0x03], // 8N1
    [2, 0xc7], // FIFO on, cleared, 14-byte trigger
    [4, 0x0b], // MCR: DTR, RTS, OUT2
    [1, 0x01], // IER: received data available
  ] as const) {
    a.movImm(EDX, COM1 + off);
    a.movImm(EAX, val);
    a.outDx();
  }
  a.ret();

  // putc: AL (preserves registers). Waits for THR empty (LSR bit 5).
  a.label("putc");
  a.push(EDX);
  a.push(EAX);
  a.movImm(EDX, COM1 + 5);
  a.label("putc_wait");
  a.inDx();
  a.testAl(0x20);
  a.jcc(CC.E, "putc_wait");
  a.pop(EAX);
  a.movImm(EDX, COM1);
  a.outDx();
  a.pop(EDX);
  a.ret();

  // puts: ESI = asciz; "\n" goes out as "\r\n". Preserves registers but ESI.
  a.label("puts");
  a.push(EAX);
  a.label("puts_loop");
  a.lodsb();
  a.testAl(0xff);
  a.jcc(CC.E, "puts_done");
  a.cmpAl(0x0a);
  a.jcc(CC.NE, "puts_char");
  a.movImm(EAX, 0x0d);
  a.call("putc");
  a.movImm(EAX, 0x0a);
  a.label("puts_char");
  a.call("putc");
  a.jmp("puts_loop");
  a.label("puts_done");
  a.pop(EAX);
  a.ret();

  // print_dec: EAX unsigned, in decimal.
  a.label("print_dec");
  a.pushad();
  a.movImm(ECX, 10);
  a.movImm(EBX, 0); // digit count
  a.label("pd_div");
  a.movImm(EDX, 0);
  a.div(ECX);
  a.push(EDX);
  a.inc(EBX);
  a.aluImm("cmp", EAX, 0);
  a.jcc(CC.NE, "pd_div");
  a.label("pd_out");
  a.pop(EAX);
  a.aluImm("add", EAX, 0x30);
  a.call("putc");
  a.dec(EBX);
  a.jcc(CC.NE, "pd_out");
  a.popad();
  a.ret();

  // getc: EAX = next received byte, waiting with interrupts on (STI; HLT has no gap).
  a.label("getc");
  a.cli();
  a.load(ECX, mem(null, "rb_tail"));
  a.cmpMem(ECX, mem(null, "rb_head"));
  a.jcc(CC.NE, "getc_have");
  a.sti();
  a.hlt();
  a.jmp("getc");
  a.label("getc_have");
  a.loadByte(EAX, mem(ECX, "rb_buf"));
  a.inc(ECX);
  a.aluImm("and", ECX, 0xff);
  a.store(mem(null, "rb_tail"), ECX);
  a.sti();
  a.ret();

  // pollc: EAX = next received byte or -1.
  a.label("pollc");
  a.push(ECX);
  a.cli();
  a.load(ECX, mem(null, "rb_tail"));
  a.cmpMem(ECX, mem(null, "rb_head"));
  a.jcc(CC.NE, "pollc_have");
  a.sti();
  a.pop(ECX);
  a.movImm(EAX, -1);
  a.ret();
  a.label("pollc_have");
  a.pop(ECX);
  a.sti();
  a.jmp("getc");

  // readline: into `line` (at most 78 chars), echoing; backspace edits; Ctrl-C cancels.
  a.label("readline");
  a.movImm(EDI, "line");
  a.label("rl_loop");
  a.call("getc");
  a.cmpAl(0x0d);
  a.jcc(CC.E, "rl_done");
  a.cmpAl(0x0a);
  a.jcc(CC.E, "rl_done");
  a.cmpAl(0x03);
  a.jcc(CC.E, "rl_cancel");
  a.cmpAl(0x08);
  a.jcc(CC.E, "rl_bs");
  a.cmpAl(0x7f);
  a.jcc(CC.E, "rl_bs");
  a.cmpAl(0x20);
  a.jcc(CC.B, "rl_loop");
  a.cmpAl(0x7e);
  a.jcc(CC.A, "rl_loop");
  a.movImm(ECX, "line_end");
  a.alu("cmp", EDI, ECX);
  a.jcc(CC.AE, "rl_loop");
  a.storeByte(mem(EDI, 0), R8.AL);
  a.inc(EDI);
  a.call("putc");
  a.jmp("rl_loop");
  a.label("rl_bs");
  a.movImm(ECX, "line");
  a.alu("cmp", EDI, ECX);
  a.jcc(CC.E, "rl_loop");
  a.dec(EDI);
  a.movImm(ESI, "s_bs");
  a.call("puts");
  a.jmp("rl_loop");
  a.label("rl_cancel");
  a.movImm(EDI, "line");
  a.movImm(ESI, "s_cancel");
  a.call("puts");
  a.label("rl_done");
  a.movImm(EAX, 0);
  a.storeByte(mem(EDI, 0), R8.AL);
  a.movImm(ESI, "s_nl");
  a.call("puts");
  a.ret();

  // ---- PIC: ICW1..4, vectors 0x20 / 0x28; only IRQ 4 (COM1) and the cascade unmasked.
  a.label("pic_init");
  for (const [port, val] of [
    [0x20, 0x11],
    [0xa0, 0x11],
    [0x21, 0x20],
    [0xa1, 0x28],
    [0x21, 0x04],
    [0xa1, 0x02],
    [0x21, 0x01],
    [0xa1, 0x01],
    [0x21, 0xeb], // mask: all but IRQ 2 and 4
    [0xa1, 0xff],
  ] as const) {
    a.movImm(EAX, val);
    a.outImm(port);
  }
  a.ret();

  // ---- Interrupt handlers.
  // IRQ 4: move every received byte into the ring buffer (dropped when full), EOI.
  a.label("irq_serial");
  a.pushad();
  a.label("irq_rx");
  a.movImm(EDX, COM1 + 5);
  a.inDx();
  a.testAl(1);
  a.jcc(CC.E, "irq_rx_done");
  a.movImm(EDX, COM1);
  a.inDx();
  a.load(ECX, mem(null, "rb_head"));
  a.mov(EBX, ECX);
  a.inc(EBX);
  a.aluImm("and", EBX, 0xff);
  a.cmpMem(EBX, mem(null, "rb_tail"));
  a.jcc(CC.E, "irq_rx"); // full: drop
  a.storeByte(mem(ECX, "rb_buf"), R8.AL);
  a.store(mem(null, "rb_head"), EBX);
  a.jmp("irq_rx");
  a.label("irq_rx_done");
  a.movImm(EAX, 0x20);
  a.outImm(0x20);
  a.popad();
  a.iret();

  // Other IRQs: EOI to both PICs.
  a.label("irq_other");
  a.push(EAX);
  a.movImm(EAX, 0x20);
  a.outImm(0xa0);
  a.outImm(0x20);
  a.pop(EAX);
  a.iret();

  // Exceptions: each stub pushes its vector; the common part reports it and halts.
  for (let v = 0; v < 32; v++) {
    a.label(`exc_${String(v)}`);
    a.pushImm8(v);
    a.jmp("exc_common");
  }
  a.label("exc_common");
  a.movImm(ESI, "s_exc");
  a.call("puts");
  a.pop(EAX);
  a.call("print_dec");
  a.movImm(ESI, "s_nl");
  a.call("puts");
  a.jmp("halt_forever");

  // ---- Data.
  a.align(8);
  a.label("gdt");
  a.dd(0);
  a.dd(0);
  a.dd(0x0000ffff); // 0x08: code, flat, 32-bit
  a.dd(0x00cf9a00);
  a.dd(0x0000ffff); // 0x10: data, flat
  a.dd(0x00cf9200);
  a.label("gdt_end");
  a.label("gdt_desc");
  a.dw(0x17);
  a.dd("gdt");

  a.align(8);
  a.label("idt");
  for (let v = 0; v < 48; v++) {
    const h = v < 32 ? `exc_${String(v)}` : v === 0x24 ? "irq_serial" : "irq_other";
    const off = a.addr(h);
    a.dw(off & 0xffff);
    a.dw(KERNEL_CS);
    a.db(0, 0x8e); // present, DPL 0, 32-bit interrupt gate
    a.dw(off >>> 16);
  }
  a.label("idt_desc");
  a.dw(48 * 8 - 1);
  a.dd("idt");

  a.label("s_banner");
  a.asciz("\nboxvm demo guest: 32-bit protected mode, serial console on IRQ 4 (source: guest/demo.ts)\n");
  a.label("s_hint");
  a.asciz("Type help for the commands.\n");
  a.label("s_prompt");
  a.asciz(DEMO_PROMPT);
  a.label("s_help");
  a.asciz(
    "help          this list\n" +
      "info          memory, CPU vendor, command line\n" +
      "echo <text>   print the text\n" +
      "count         count until a key is pressed\n" +
      "exit [0-9]    power off through the exit device (status (n << 1) | 1)\n" +
      "reboot        reset through the keyboard controller\n" +
      "halt          stop the CPU\n",
  );
  a.label("s_unknown");
  a.asciz("unknown command: ");
  a.label("s_tryhelp");
  a.asciz(" (try help)\n");
  a.label("s_mem");
  a.asciz("memory: ");
  a.label("s_mib");
  a.asciz(" MiB\n");
  a.label("s_cmdline");
  a.asciz("command line: ");
  a.label("s_nomb");
  a.asciz("not started by a Multiboot loader\n");
  a.label("s_cpu");
  a.asciz("cpu: ");
  a.label("s_noexit");
  a.asciz("no exit device at port 0xF4\n");
  a.label("s_reboot");
  a.asciz("rebooting\n");
  a.label("s_halt");
  a.asciz("halted\n");
  a.label("s_exc");
  a.asciz("\nexception ");
  a.label("s_bs");
  a.asciz("\b \b");
  a.label("s_cancel");
  a.asciz("^C");
  a.label("s_nl");
  a.asciz("\n");
  for (const w of ["help", "info", "echo", "count", "exit", "reboot", "halt"]) {
    a.label(`w_${w}`);
    a.asciz(w);
  }
  a.align(4);
  a.label("vendor");
  a.dd(0);
  a.label("vendor_4");
  a.dd(0);
  a.label("vendor_8");
  a.dd(0);
  a.dd(0); // NUL terminator
  a.label("mb_magic");
  a.dd(0);
  a.label("mb_info");
  a.dd(0);
  a.label("rb_head");
  a.dd(0);
  a.label("rb_tail");
  a.dd(0);
  a.label("load_end");
}

/** Bytes of .bss after the loaded image: ring buffer, line buffer, stack. */
const BSS = { rb: 256, line: 80, stack: 4096 } as const;

/** The demo guest as a Multiboot ELF32 file (entry "start", one PT_LOAD segment at 1 MiB). */
export function buildDemoGuest(): Uint8Array {
  const full = (a: Asm): void => {
    program(a);
    // .bss labels: addresses past the image; memsz covers them, the file does not.
    const end = a.here;
    a.labels.set("rb_buf", end);
    a.labels.set("line", end + BSS.rb);
    a.labels.set("line_end", end + BSS.rb + BSS.line - 2);
    a.labels.set("stack_top", end + BSS.rb + BSS.line + BSS.stack);
  };
  const { bytes, labels } = assemble(DEMO_ORIGIN, full);
  const memsz = bytes.length + BSS.rb + BSS.line + BSS.stack;
  return elf32(bytes, memsz, labels.get("start")!);
}

/** Wraps a flat image in an ELF32 executable: headers, then the image at file offset 0x100. */
export function elf32(image: Uint8Array, memsz: number, entry: number): Uint8Array {
  const OFF = 0x100;
  const f = new Uint8Array(OFF + image.length);
  const v = new DataView(f.buffer);
  f.set([0x7f, 0x45, 0x4c, 0x46, 1, 1, 1]); // ELF, 32-bit, little-endian, version 1
  v.setUint16(0x10, 2, true); // ET_EXEC
  v.setUint16(0x12, 3, true); // EM_386
  v.setUint32(0x14, 1, true);
  v.setUint32(0x18, entry, true);
  v.setUint32(0x1c, 0x34, true); // e_phoff
  v.setUint16(0x28, 0x34, true); // e_ehsize
  v.setUint16(0x2a, 0x20, true); // e_phentsize
  v.setUint16(0x2c, 1, true); // e_phnum
  v.setUint16(0x2e, 0x28, true); // e_shentsize
  const ph = 0x34;
  v.setUint32(ph, 1, true); // PT_LOAD
  v.setUint32(ph + 4, OFF, true);
  v.setUint32(ph + 8, DEMO_ORIGIN, true);
  v.setUint32(ph + 12, DEMO_ORIGIN, true);
  v.setUint32(ph + 16, image.length, true);
  v.setUint32(ph + 20, memsz, true);
  v.setUint32(ph + 24, 7, true); // RWX
  v.setUint32(ph + 28, 0x1000, true);
  f.set(image, OFF);
  return f;
}
