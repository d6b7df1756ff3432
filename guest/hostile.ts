/**
 * The hostile guest: writes pseudo-random values (xorshift32, seeded) to every I/O port
 * 0..0xFFFF with OUT of byte, word and dword size, reading each back with IN of the same size,
 * for `rounds` rounds. Interrupts stay off all along.
 *
 * Some writes reset the machine (port 0x92 bit 0, 0xCF9, the keyboard controller's 0xFE or
 * output port), some gate A20 off. So the guest runs at 2 MiB (address bit 20 clear: A20 does not
 * matter to it) and keeps its progress in a RAM block the loader does not touch; after a reset it
 * counts the reset, prints "RESET <n> AT <round>:<port>\r\n" and goes on after the port that
 * reset it. Before each message it programs COM1 again (the random writes scramble it). At the
 * end it prints "HOSTILE DONE RESETS <n> SUM <s>\r\n" and halts with interrupts off.
 *
 * Other output: "HOSTILE START\r\n" at the first boot, "ROUND <r> DONE\r\n" after each round
 * (plus whatever bytes the random writes send through the UARTs).
 */
import { assemble, CC, mem, R, type Asm } from "./asm.ts";
import { elfAt, emitSerialRoutines, inDxAx, inDxEax, multibootHeader, outDxAx, outDxEax } from "./kit.ts";

/** Load address (bit 20 clear). */
export const HOSTILE_ORIGIN = 0x200000;
/** The progress block: magic, round, port, seed, resets, sum (dwords). Bit 20 clear too. */
export const HOSTILE_STATE = 0x2f0000;
const MAGIC = 0x4854494c; // "LITH"
const ST = { magic: 0, round: 4, port: 8, seed: 12, resets: 16, sum: 20 } as const;

/** The ELF file. */
export function buildHostileGuest(rounds: number, seed: number): Uint8Array {
  if (!(rounds >= 1 && rounds <= 255) || (seed >>> 0) === 0) throw new RangeError("bad hostile parameters");
  const s = (field: keyof typeof ST) => mem(null, HOSTILE_STATE + ST[field]);
  const program = (a: Asm): void => {
    const { EAX, ECX, EDX, EBX, EBP, ESI, EDI } = R;
    multibootHeader(a);
    a.label("start");
    a.cli();
    a.movImm(R.ESP, "stack_top");
    a.call("serial_init");
    a.load(EAX, s("magic"));
    a.aluImm("cmp", EAX, MAGIC);
    a.jcc(CC.E, "resumed");
    // first boot
    a.storeImm(s("magic"), MAGIC);
    a.storeImm(s("round"), 0);
    a.storeImm(s("port"), 0);
    a.storeImm(s("seed"), seed >>> 0);
    a.storeImm(s("resets"), 0);
    a.storeImm(s("sum"), 0);
    a.movImm(ESI, "s_start");
    a.call("puts");
    a.jmp("round");

    // after a reset: count it, report it, skip the port
    a.label("resumed");
    a.load(EAX, s("resets"));
    a.inc(EAX);
    a.store(s("resets"), EAX);
    a.movImm(ESI, "s_reset");
    a.call("puts");
    a.call("puthex");
    a.movImm(ESI, "s_at");
    a.call("puts");
    a.load(EAX, s("round"));
    a.call("puthex2");
    a.movImm(EAX, 0x3a); // ':'
    a.call("putc");
    a.load(EAX, s("port"));
    a.call("puthex");
    a.movImm(ESI, "s_crlf");
    a.call("puts");
    a.load(EAX, s("port"));
    a.inc(EAX);
    a.store(s("port"), EAX);
    a.aluImm("cmp", EAX, 0x10000);
    a.jcc(CC.NE, "round");
    a.call("end_round");

    // one round, from the saved port on
    a.label("round");
    a.load(EAX, s("round"));
    a.aluImm("cmp", EAX, rounds);
    a.jcc(CC.E, "done");
    a.load(EBP, s("port"));
    a.load(EDI, s("sum"));
    a.label("port");
    a.store(s("port"), EBP);
    a.mov(EDX, EBP);
    a.call("rand");
    a.outDx();
    a.inDx();
    a.alu("add", EDI, EAX);
    a.call("rand");
    outDxAx(a);
    inDxAx(a);
    a.alu("add", EDI, EAX);
    a.call("rand");
    outDxEax(a);
    inDxEax(a);
    a.alu("add", EDI, EAX);
    a.store(s("sum"), EDI);
    a.inc(EBP);
    a.aluImm("cmp", EBP, 0x10000);
    a.jcc(CC.NE, "port");
    a.call("end_round");
    a.jmp("round");

    // end_round: reports the round, then round++, port = 0
    a.label("end_round");
    a.call("serial_init");
    a.movImm(ESI, "s_round");
    a.call("puts");
    a.load(EAX, s("round"));
    a.call("puthex2");
    a.movImm(ESI, "s_round_done");
    a.call("puts");
    a.load(EAX, s("round"));
    a.inc(EAX);
    a.store(s("round"), EAX);
    a.storeImm(s("port"), 0);
    a.ret();

    // rand: EAX = the next xorshift32 value (state in the block); clobbers ECX
    a.label("rand");
    a.load(EAX, s("seed"));
    a.mov(ECX, EAX);
    a.shl(ECX, 13);
    a.alu("xor", EAX, ECX);
    a.mov(ECX, EAX);
    a.shr(ECX, 17);
    a.alu("xor", EAX, ECX);
    a.mov(ECX, EAX);
    a.shl(ECX, 5);
    a.alu("xor", EAX, ECX);
    a.store(s("seed"), EAX);
    a.ret();

    a.label("done");
    a.call("serial_init");
    a.movImm(ESI, "s_done");
    a.call("puts");
    a.load(EAX, s("resets"));
    a.call("puthex");
    a.movImm(ESI, "s_sum");
    a.call("puts");
    a.load(EAX, s("sum"));
    a.call("puthex");
    a.movImm(ESI, "s_crlf");
    a.call("puts");
    a.label("stop");
    a.cli();
    a.hlt();
    a.jmp("stop");
    void EBX;

    emitSerialRoutines(a);
    a.label("s_start");
    a.asciz("HOSTILE START\r\n");
    a.label("s_reset");
    a.asciz("\r\nRESET ");
    a.label("s_at");
    a.asciz(" AT ");
    a.label("s_round");
    a.asciz("\r\nROUND ");
    a.label("s_round_done");
    a.asciz(" DONE\r\n");
    a.label("s_done");
    a.asciz("\r\nHOSTILE DONE RESETS ");
    a.label("s_sum");
    a.asciz(" SUM ");
    a.label("s_crlf");
    a.asciz("\r\n");
    a.align(16);
    a.space(4096);
    a.label("stack_top");
  };
  const { bytes, labels } = assemble(HOSTILE_ORIGIN, program);
  if (HOSTILE_ORIGIN + bytes.length > HOSTILE_STATE) throw new Error("hostile guest overlaps its state block");
  return elfAt(HOSTILE_ORIGIN, bytes, bytes.length, labels.get("start")!);
}
