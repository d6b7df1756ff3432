/**
 * The triple-fault guest: counts its boots in CMOS RAM (which a machine reset keeps) and, on the
 * first boot, triple-faults on purpose: it loads an empty IDT (LIDT with limit 0), then raises an
 * exception — INT3, or a #GP from loading DS with a selector beyond the GDT limit. Delivery needs
 * an IDT entry that is beyond the limit: #GP, then #DF, then shutdown (a triple fault), which
 * the machine turns into a reset. On the second boot it prints SECOND BOOT OK and halts with
 * interrupts off (the machine stays running).
 *
 * COM1 output: "BOOT 01\r\nTRIPLE FAULT NOW\r\n" then, after the reset, "BOOT 02\r\nSECOND BOOT OK\r\n".
 * CMOS bytes used: 0x40 (boot count), 0x41 (0xA5 once initialised).
 */
import { assemble, CC, R, SR, type Asm } from "./asm.ts";
import { cmosRead, cmosWrite, COM1, elfAt, emitSerialRoutines, int3, movAl, multibootHeader } from "./kit.ts";

/** Load address. */
export const TRIPLEFAULT_ORIGIN = 0x100000;
const CMOS_COUNT = 0x40;
const CMOS_MAGIC = 0x41;
const MAGIC = 0xa5;

/** How the first boot faults. */
export type TripleFaultHow = "int3" | "gp";

/** The ELF file. */
export function buildTripleFaultGuest(how: TripleFaultHow): Uint8Array {
  const program = (a: Asm): void => {
    const { EAX, EBX, EDX, ESI } = R;
    multibootHeader(a);
    a.label("start");
    a.cli();
    a.movImm(R.ESP, "stack_top");
    a.call("serial_init");
    // first power-on: initialise the counter
    cmosRead(a, CMOS_MAGIC);
    a.cmpAl(MAGIC);
    a.jcc(CC.E, "counted");
    movAl(a, MAGIC);
    cmosWrite(a, CMOS_MAGIC);
    movAl(a, 0);
    cmosWrite(a, CMOS_COUNT);
    a.label("counted");
    cmosRead(a, CMOS_COUNT);
    a.inc(EAX);
    cmosWrite(a, CMOS_COUNT);
    a.aluImm("and", EAX, 0xff);
    a.mov(EBX, EAX);
    a.movImm(ESI, "s_boot");
    a.call("puts");
    a.mov(EAX, EBX);
    a.call("puthex2");
    a.movImm(ESI, "s_crlf");
    a.call("puts");
    a.aluImm("cmp", EBX, 1);
    a.jcc(CC.NE, "second");
    a.movImm(ESI, "s_fault");
    a.call("puts");
    // let the UART finish sending (LSR.TEMT) before the reset clears it
    a.movImm(EDX, COM1 + 5);
    a.label("drain");
    a.inDx();
    a.testAl(0x40);
    a.jcc(CC.E, "drain");
    a.lidt("idt_empty");
    if (how === "int3") {
      int3(a);
    } else {
      a.movImm(EAX, 0xfff8); // GDT index 0x1FFF: beyond any small GDT's limit
      a.movSreg(SR.DS, EAX);
    }
    a.movImm(ESI, "s_survived");
    a.call("puts");
    a.jmp("stop");
    a.label("second");
    a.movImm(ESI, "s_ok");
    a.call("puts");
    a.label("stop");
    a.cli();
    a.hlt();
    a.jmp("stop");

    emitSerialRoutines(a);
    a.label("s_boot");
    a.asciz("BOOT ");
    a.label("s_crlf");
    a.asciz("\r\n");
    a.label("s_fault");
    a.asciz("TRIPLE FAULT NOW\r\n");
    a.label("s_survived");
    a.asciz("FAULT DID NOT HAPPEN\r\n");
    a.label("s_ok");
    a.asciz("SECOND BOOT OK\r\n");
    a.align(4);
    a.db(0, 0); // padding: the pseudo-descriptor's base is then 4-aligned
    a.label("idt_empty");
    a.dw(0); // limit 0
    a.dd(0); // base 0
    a.space(4096);
    a.label("stack_top");
  };
  const { bytes, labels } = assemble(TRIPLEFAULT_ORIGIN, program);
  return elfAt(TRIPLEFAULT_ORIGIN, bytes, bytes.length, labels.get("start")!);
}
