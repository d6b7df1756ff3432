/**
 * printf-style formatting for VMSetError messages (IPRT's RTStrPrintf subset).
 *
 * Directives: %s %d %i %u %x %X %o %c %p %%, flags `-` `0` `#` `+` ` `, a width and a precision
 * (digits or `*`), C length modifiers (h hh l ll z j t, ignored), and the IPRT forms
 * %RX8/16/32/64, %Rx.., %RU.., %RI.. (fixed-width integers) and %Rrc (a status code as
 * "NAME (rc)"). Anything else is printed as written, and a directive that runs out of arguments
 * prints as written too.
 */
import { statusName } from "./err.ts";

const DIRECTIVE = /%([-0#+ ]*)(\d+|\*)?(?:\.(\d+|\*))?(hh|h|ll|l|z|j|t|L)?(R(?:[xXuUiI](?:8|16|32|64)|rc)|[sdiuxXocp%])/g;

/** Formats `fmt` with `args` as described in the module comment. */
export function formatMessage(fmt: string, args: readonly unknown[]): string {
  let next = 0;
  return fmt.replace(
    DIRECTIVE,
    (whole: string, flags: string, width: string | undefined, prec: string | undefined, _len: unknown, conv: string) => {
      if (conv === "%") return "%";
      const need = (width === "*" ? 1 : 0) + (prec === "*" ? 1 : 0) + 1;
      if (next + need > args.length) return whole;
      let w = 0;
      if (width === "*") w = Number(args[next++]);
      else if (width) w = Number(width);
      let p = -1;
      if (prec === "*") p = Number(args[next++]);
      else if (prec !== undefined) p = Number(prec);
      let left = flags.includes("-");
      if (w < 0) {
        left = true;
        w = -w;
      }
      const arg = args[next++];
      let body: string;
      let numeric = true;
      switch (conv) {
        case "s":
          body = String(arg);
          if (p >= 0) body = body.slice(0, p);
          numeric = false;
          break;
        case "c":
          body = typeof arg === "number" ? String.fromCharCode(arg) : String(arg).slice(0, 1);
          numeric = false;
          break;
        case "d":
        case "i":
          body = signed(toInt(arg), flags);
          break;
        case "u":
          body = toUint(arg, cWidth(arg)).toString();
          break;
        case "x":
        case "X":
        case "o":
        case "p": {
          const radix = conv === "o" ? 8 : 16;
          const v = toUint(arg, cWidth(arg));
          body = v.toString(radix);
          if (conv === "X") body = body.toUpperCase();
          if (conv === "p") body = `0x${v.toString(16).padStart(8, "0")}`;
          else if (flags.includes("#") && v !== 0n) body = (conv === "o" ? "0" : conv === "X" ? "0X" : "0x") + body;
          break;
        }
        default: {
          // IPRT forms.
          if (conv === "Rrc") {
            const rc = toInt(arg);
            body = `${statusName(Number(rc))} (${String(rc)})`;
            numeric = false;
            break;
          }
          const kind = conv[1]!;
          const bits = Number(conv.slice(2));
          if (kind === "x" || kind === "X") {
            body = toUint(arg, bits).toString(16);
            if (kind === "X") body = body.toUpperCase();
            if (flags.includes("#")) body = `0x${body}`;
          } else if (kind === "u" || kind === "U") {
            body = toUint(arg, bits).toString();
          } else {
            body = signed(BigInt.asIntN(bits, toInt(arg)), flags);
          }
        }
      }
      if (numeric && p >= 0) {
        const neg = body.startsWith("-");
        const digits = neg ? body.slice(1) : body;
        if (digits.length < p) body = (neg ? "-" : "") + digits.padStart(p, "0");
      }
      if (body.length >= w) return body;
      if (left) return body.padEnd(w, " ");
      if (numeric && flags.includes("0") && p < 0) {
        const m = /^([-+ ]|0[xX])?(.*)$/.exec(body)!;
        const sign = m[1] ?? "";
        return sign + (m[2] ?? "").padStart(w - sign.length, "0");
      }
      return body.padStart(w, " ");
    },
  );
}

function toInt(v: unknown): bigint {
  if (typeof v === "bigint") return v;
  if (typeof v === "boolean") return v ? 1n : 0n;
  const n = Number(v);
  return Number.isFinite(n) ? BigInt(Math.trunc(n)) : 0n;
}

/** C's int is 32 bits: a plain number is read as 32 bits unless it does not fit; a bigint as 64. */
function cWidth(v: unknown): number {
  if (typeof v === "bigint") return 64;
  const n = Number(v);
  return n > 0xffffffff || n < -0x80000000 ? 64 : 32;
}

function toUint(v: unknown, bits: number): bigint {
  return BigInt.asUintN(bits, toInt(v));
}

function signed(v: bigint, flags: string): string {
  const s = v.toString();
  if (v >= 0n && flags.includes("+")) return `+${s}`;
  if (v >= 0n && flags.includes(" ")) return ` ${s}`;
  return s;
}
