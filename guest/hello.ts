/**
 * A minimal Multiboot guest for smoke tests: prints a message on COM1 (polling the transmitter),
 * writes POST code 0x42 to port 0x80, reports the Multiboot magic it got, and leaves through the exit device (port 0xF4), so a
 * machine that runs it ends with status (code << 1) | 1. Built by asm.ts, like demo.ts.
 */
import { assemble, CC, R, type Asm } from "./asm.ts";
import { DEMO_ORIGIN, elf32 } from "./demo.ts";

const COM1 = 0x3f8;
/** The POST code the guest writes to port 0x80 first. */
export const POST_CODE = 0x42;

/** The ELF file: prints `message` + "magic ok\n" (or "magic bad\n"), then writes `code` to port 0xF4. */
export function buildHelloGuest(message: string, code: number): Uint8Array {
  const program = (a: Asm): void => {
    const { EAX, EBX, EDX, ESI } = R;
    a.dd(0x1badb002);
    a.dd(0);
    a.dd((-0x1badb002) >>> 0);
    a.label("start");
    a.mov(EBX, EAX);
    a.movImm(EAX, POST_CODE);
    a.outImm(0x80); // a POST code, for boxvm run --post
    a.aluImm("cmp", EBX, 0x2badb002);
    a.movImm(ESI, "s_bad");
    a.jcc(CC.NE, "print");
    a.movImm(ESI, "s_msg");
    a.label("print");
    a.label("loop");
    a.lodsb();
    a.testAl(0xff);
    a.jcc(CC.E, "done");
    a.push(EAX);
    a.movImm(EDX, COM1 + 5);
    a.label("wait");
    a.inDx();
    a.testAl(0x20);
    a.jcc(CC.E, "wait");
    a.pop(EAX);
    a.movImm(EDX, COM1);
    a.outDx();
    a.jmp("loop");
    a.label("done");
    a.movImm(EAX, code & 0xff);
    a.outImm(0xf4);
    a.label("stop");
    a.cli();
    a.hlt();
    a.jmp("stop");
    a.label("s_msg");
    a.asciz(`${message}\r\nmagic ok\r\n`);
    a.label("s_bad");
    a.asciz(`${message}\r\nmagic bad\r\n`);
  };
  const { bytes, labels } = assemble(DEMO_ORIGIN, program);
  return elf32(bytes, bytes.length, labels.get("start")!);
}
