/**
 * A 64 KiB test system ROM for `boxvm run --bios`: real-mode code from the reset vector that writes
 * a POST code to port 0x80, prints a message on COM1 and leaves through the exit device (0xF4).
 * It checks what --bios promises: the ROM's top at 4 GiB (the reset vector F000:FFF0 with CS base
 * FFFF0000) and its copy below 1 MiB (after the far jump, CS base F0000).
 *
 * Hand-encoded 16-bit code (Intel SDM encodings), at ROM offset 0xF000 = F000:F000:
 *   B0 ib        mov al, POST          E6 80     out 0x80, al
 *   BA F8 03     mov dx, 0x3F8         BE iw     mov si, message
 *   2E AC        cs lodsb              84 C0     test al, al
 *   74 03        jz +3                 EE        out dx, al
 *   EB F7        jmp back to lodsb     B0 ib     mov al, code
 *   E6 F4        out 0xF4, al          FA F4     cli; hlt     EB FC  jmp to cli
 * At ROM offset 0xFFF0 (the reset vector): EA 00 F0 00 F0 = jmp far F000:F000.
 */

/** POST code the ROM writes first. */
export const BIOS_POST_CODE = 0x55;

/** The ROM image (65536 bytes, 0xFF filled). */
export function buildTestBios(message: string, exitCode: number): Uint8Array {
  const rom = new Uint8Array(0x10000).fill(0xff);
  const code = [
    0xb0, BIOS_POST_CODE, 0xe6, 0x80,
    0xba, 0xf8, 0x03,
    0xbe, 0x00, 0x00, // mov si, message (patched below)
    0x2e, 0xac, // loop: cs lodsb
    0x84, 0xc0,
    0x74, 0x03,
    0xee,
    0xeb, 0xf7, // jmp loop (-9: back over eb f7, ee, 74 03, 84 c0, 2e ac)
    0xb0, exitCode & 0xff, 0xe6, 0xf4,
    0xfa, 0xf4, 0xeb, 0xfc,
  ];
  const msgOff = 0xf000 + code.length;
  code[8] = msgOff & 0xff;
  code[9] = msgOff >> 8;
  rom.set(code, 0xf000);
  const text = Uint8Array.from(`${message}\r\n`, (c) => c.charCodeAt(0));
  rom.set(text, msgOff);
  rom[msgOff + text.length] = 0;
  rom.set([0xea, 0x00, 0xf0, 0x00, 0xf0], 0xfff0);
  return rom;
}
