/**
 * x87 numeric helpers: the 80-bit extended format, its unpacked working form and rounding.
 *
 * A register value is stored exactly as the 80-bit format (64-bit mantissa `hi:lo` with an explicit
 * integer bit J = bit 63, 15-bit biased exponent, sign). Arithmetic works on an unpacked form
 *   value = (-1)^sign * m * 2^e,  m a double in [1, 2) (53 significant bits), e any integer,
 * plus `t`, the sign of (|exact| - m * 2^e) when the 64-bit mantissa had more than 53 bits (or when
 * an operation's double result was rounded). Exponents are plain integers, so the full 15-bit
 * exponent range of the extended format is kept; only the mantissa is limited to 53 bits.
 *
 * `round()` rounds such a value (magnitude plus residual direction) to a precision and exponent
 * range under a rounding direction, exactly as if the exact value had been rounded, provided the
 * only earlier loss was one round-to-nearest to 53 bits whose direction `t` records (error-free
 * transforms give that `t` for +, -, *, / and square root).
 *
 * All outputs go to module scratch objects (no allocation per instruction).
 */

/** 2^32. */
export const TWO32 = 4294967296;

/** 2^k for k in [-1074, 1023] (index k + 1074). */
const POW2 = new Float64Array(2098);
{
  let x = 1;
  for (let k = 0; k <= 1023; k++) {
    POW2[k + 1074] = x;
    x *= 2;
  }
  x = 1;
  for (let k = 0; k >= -1074; k--) {
    POW2[k + 1074] = x;
    x /= 2;
  }
}

/** 2^k as a double (0 or Infinity outside the double range). */
export function pow2(k: number): number {
  if (k >= -1074 && k <= 1023) return POW2[k + 1074]!;
  return k > 0 ? Infinity : 0;
}

/** x * 2^k, exact whenever the result is representable (scales in steps that stay exact). */
export function scale(x: number, k: number): number {
  while (k > 1023) {
    x *= POW2[1023 + 1074]!;
    k -= 1023;
    if (!Number.isFinite(x)) return x;
  }
  while (k < -1022) {
    x *= POW2[-1022 + 1074]!;
    k += 1022;
    if (x === 0) return x;
  }
  return x * POW2[k + 1074]!;
}

const scratchView = new DataView(new ArrayBuffer(8));

/** The unbiased binary exponent of a positive normal double. */
export function exponentOf(x: number): number {
  scratchView.setFloat64(0, x, true);
  return ((scratchView.getUint32(4, true) >>> 20) & 0x7ff) - 1023;
}

/** Bits of a double: [lo, hi] into `out`. */
export function doubleBits(x: number, out: Int32Array): void {
  scratchView.setFloat64(0, x, true);
  out[0] = scratchView.getInt32(0, true);
  out[1] = scratchView.getInt32(4, true);
}

/** A double from its bits. */
export function doubleFromBits(lo: number, hi: number): number {
  scratchView.setInt32(0, lo, true);
  scratchView.setInt32(4, hi, true);
  return scratchView.getFloat64(0, true);
}

/** A float's bits (the value must be representable as a float). */
export function floatBits(x: number): number {
  scratchView.setFloat32(0, x, true);
  return scratchView.getInt32(0, true);
}

/** A float from its bits. */
export function floatFromBits(b: number): number {
  scratchView.setInt32(0, b, true);
  return scratchView.getFloat32(0, true);
}

/** Number of significant bits of a non-negative integer-valued double < 2^64. */
export function bitLength(n: number): number {
  if (n >= TWO32) return 64 - Math.clz32(Math.floor(n / TWO32));
  return 32 - Math.clz32(n);
}

// ---------------------------------------------------------------------------------------------
// Classes of an 80-bit value

/** Value classes (of the 80-bit encoding). */
export const Cls = {
  ZERO: 0,
  /** Finite nonzero: normal, denormal or pseudo-denormal. */
  FIN: 1,
  INF: 2,
  QNAN: 3,
  SNAN: 4,
  /** Unsupported encodings: unnormals, pseudo-NaNs, pseudo-infinities. */
  BAD: 5,
} as const;
export type Cls = (typeof Cls)[keyof typeof Cls];

/** The class of an 80-bit value given its sign/exponent word and mantissa. */
export function classify(se: number, hi: number, lo: number): Cls {
  const exp = se & 0x7fff;
  const j = (hi & 0x80000000) !== 0;
  if (exp === 0x7fff) {
    if (!j) return Cls.BAD;
    if ((hi & 0x7fffffff) === 0 && lo === 0) return Cls.INF;
    return (hi & 0x40000000) !== 0 ? Cls.QNAN : Cls.SNAN;
  }
  if (exp !== 0 && !j) return Cls.BAD;
  if (hi === 0 && lo === 0) return Cls.ZERO;
  return Cls.FIN;
}

/** The x87 tag of an 80-bit value: 0 valid, 1 zero, 2 special (NaN, infinity, denormal, unsupported). */
export function tagOf(se: number, hi: number, lo: number): number {
  const exp = se & 0x7fff;
  if (exp === 0x7fff) return 2;
  if (exp === 0) return hi === 0 && lo === 0 ? 1 : 2;
  return (hi & 0x80000000) !== 0 ? 0 : 2;
}

/** An unpacked operand (see the file comment). */
export class Unpacked {
  cls: Cls = Cls.ZERO;
  /** 1 when negative. */
  sign = 0;
  /** Mantissa in [1, 2) (FIN only). */
  m = 1;
  /** Unbiased exponent (FIN only). */
  e = 0;
  /** Sign of (|exact| - m*2^e): the 64-bit mantissa's bits below the 53 kept. */
  t = 0;
  /** The encoding was a denormal (or pseudo-denormal). */
  denormal = false;
}

/** Fills only the class, sign and denormal flag of `u` (m, e, t are left stale). */
export function classify80(se: number, hi: number, lo: number, u: Unpacked): void {
  const cls = classify(se, hi, lo);
  u.cls = cls;
  u.sign = (se >>> 15) & 1;
  u.t = 0;
  u.denormal = cls === Cls.FIN && (se & 0x7fff) === 0;
}

/** Unpacks an 80-bit value into `u`. */
export function unpack80(se: number, hi: number, lo: number, u: Unpacked): void {
  const cls = classify(se, hi, lo);
  u.cls = cls;
  u.sign = (se >>> 15) & 1;
  u.t = 0;
  u.denormal = false;
  if (cls !== Cls.FIN) return;
  const exp = se & 0x7fff;
  const H = (hi >>> 0) * TWO32;
  const ulo = lo >>> 0;
  const M = H + ulo;
  const d = M - H;
  u.t = ulo > d ? 1 : ulo < d ? -1 : 0;
  const L = hi !== 0 ? 64 - Math.clz32(hi) : 32 - Math.clz32(lo);
  let m = M * pow2(1 - L);
  let e = (exp === 0 ? -16382 : exp - 16383) - 63 + (L - 1);
  if (m >= 2) {
    m *= 0.5;
    e++;
  }
  u.m = m;
  u.e = e;
  u.denormal = exp === 0;
}

/** Unpacks a finite nonzero double (exactly: t = 0). */
export function unpackDouble(x: number, u: Unpacked): void {
  u.t = 0;
  u.denormal = false;
  if (x !== x) {
    u.cls = Cls.QNAN;
    u.sign = 0;
    return;
  }
  u.sign = x < 0 || Object.is(x, -0) ? 1 : 0;
  const a = Math.abs(x);
  if (a === 0) {
    u.cls = Cls.ZERO;
    return;
  }
  if (a === Infinity) {
    u.cls = Cls.INF;
    return;
  }
  u.cls = Cls.FIN;
  let e: number;
  let m: number;
  if (a < 2.2250738585072014e-308) {
    const b = a * 18014398509481984; // 2^54
    e = exponentOf(b) - 54;
    m = scale(a, -e);
  } else {
    e = exponentOf(a);
    m = a * pow2(-e);
  }
  u.m = m;
  u.e = e;
}

/** The double nearest an unpacked value (NaN for NaNs and unsupported encodings). */
export function toDouble(u: Unpacked): number {
  let v: number;
  switch (u.cls) {
    case Cls.ZERO:
      v = 0;
      break;
    case Cls.INF:
      v = Infinity;
      break;
    case Cls.FIN:
      v = scale(u.m, u.e);
      break;
    default:
      return NaN;
  }
  return u.sign !== 0 ? -v : v;
}

// ---------------------------------------------------------------------------------------------
// Rounding

/** Rounding control values (CW bits 10..11). */
export const RC = { NEAREST: 0, DOWN: 1, UP: 2, CHOP: 3 } as const;

/** Output of round(): value = n * 2^g (n an integer-valued double < 2^54). */
export const rounded = {
  n: 0,
  g: 0,
  /** Inexact. */
  inexact: false,
  /** The magnitude was rounded up (C1). */
  up: false,
};

/**
 * Rounds |value| = m * 2^e (with residual direction t) to `q` significant bits, but never to a
 * finer unit than 2^gmin (the denormal unit of the format; -Infinity for none), under rounding
 * control `rc` for a value of sign `sign`. Result in `rounded`.
 */
export function round(sign: number, m: number, e: number, t: number, q: number, gmin: number, rc: number): void {
  if (q > 53) q = 53;
  let g = e - (q - 1);
  if (g < gmin) g = gmin;
  const k = e - g;
  let n: number;
  let f: number;
  if (k >= -2) {
    const u = m * pow2(k);
    n = Math.floor(u);
    f = u - n;
  } else {
    n = 0;
    f = 0.0625; // far below one half, nonzero
  }
  // The exact quotient value/2^g is n + f + delta, delta tiny with the sign of t.
  let fl = n;
  let below = false; // exact < n, just below (f == 0, t < 0)
  if (f === 0 && t < 0) {
    fl = n - 1;
    below = true;
  }
  const inexact = f !== 0 || t !== 0;
  let up = false;
  if (inexact) {
    const away = rc === RC.NEAREST ? -1 : rc === RC.CHOP ? 0 : (rc === RC.UP) === (sign === 0) ? 1 : 0;
    if (away === 1) up = true;
    else if (away === -1) {
      if (below) up = true;
      else if (f > 0.5) up = true;
      else if (f === 0.5) up = t > 0 || (t === 0 && (n & 1) === 1);
    }
  }
  rounded.n = up ? fl + 1 : fl;
  rounded.g = g;
  rounded.inexact = inexact;
  rounded.up = up;
}

// ---------------------------------------------------------------------------------------------
// Formats

/** A binary floating-point destination format. */
export interface Format {
  /** Significand bits (with the integer bit). */
  readonly q: number;
  readonly emin: number;
  readonly emax: number;
  /** Unit of the denormals: emin - (q - 1). */
  readonly gmin: number;
}
export const SINGLE: Format = { q: 24, emin: -126, emax: 127, gmin: -149 };
export const DOUBLE: Format = { q: 53, emin: -1022, emax: 1023, gmin: -1074 };
export const EXTENDED: Format = { q: 64, emin: -16382, emax: 16383, gmin: -16445 };

/** Exception bits as they appear in the status word. */
export const X = { IE: 0x01, DE: 0x02, ZE: 0x04, OE: 0x08, UE: 0x10, PE: 0x20, SF: 0x40 } as const;

/** Output of roundTo(): the result class and value n*2^g, the flags raised, C1. */
export const res = {
  /** 0: finite (n may be 0), 1: infinity. */
  inf: 0,
  n: 0,
  g: 0,
  flags: 0,
  c1: 0,
  /** False when an unmasked over/underflow means a memory destination is not written. */
  store: true,
  /** Masked overflow gave the largest finite value (n has at most 53 ones: extend for 64). */
  max: false,
};

/**
 * Rounds a finite nonzero value for a destination format with precision `q` (<= format precision)
 * under the control word's masks: masked overflow/underflow give the IEEE/x87 masked responses;
 * unmasked ones, for a register destination (`bias` = 24576), scale the exponent by the bias;
 * for a memory destination (`bias` = 0), `res.store` = false.
 */
export function roundTo(
  sign: number,
  m: number,
  e: number,
  t: number,
  q: number,
  fmt: Format,
  cw: number,
  bias: number,
): void {
  const rc = (cw >>> 10) & 3;
  res.flags = 0;
  res.c1 = 0;
  res.inf = 0;
  res.store = true;
  res.max = false;
  // Round with an unbounded exponent first.
  round(sign, m, e, t, q, -Infinity, rc);
  let n = rounded.n;
  let g = rounded.g;
  const top = g + bitLength(n) - 1;
  if (top > fmt.emax) {
    if ((cw & X.OE) === 0) {
      res.flags |= X.OE | (rounded.inexact ? X.PE : 0);
      if (bias === 0) {
        res.store = false;
        return;
      }
      res.n = n;
      res.g = g - bias;
      res.c1 = rounded.up ? 1 : 0;
      return;
    }
    res.flags |= X.OE | X.PE;
    const toInf = rc === RC.NEAREST || (rc !== RC.CHOP && (rc === RC.UP) === (sign === 0));
    if (toInf) {
      res.inf = 1;
      res.c1 = 1;
    } else {
      const qq = q > 53 ? 53 : q;
      res.n = pow2(qq) - 1;
      res.g = fmt.emax - (qq - 1);
      res.max = true;
    }
    return;
  }
  if (top < fmt.emin) {
    // Tiny: the result rounded with an unbounded exponent is below the smallest normal (SDM 4.9.1.5).
    if ((cw & X.UE) === 0) {
      res.flags |= X.UE | (rounded.inexact ? X.PE : 0);
      if (bias === 0) {
        res.store = false;
        return;
      }
      res.n = n;
      res.g = g + bias;
      res.c1 = rounded.up ? 1 : 0;
      return;
    }
    round(sign, m, e, t, q, fmt.gmin, rc);
    n = rounded.n;
    g = rounded.g;
    if (rounded.inexact) res.flags |= X.UE | X.PE;
  }
  if (rounded.inexact) res.flags |= X.PE;
  res.c1 = rounded.up ? 1 : 0;
  res.n = n;
  res.g = g;
}

/** Output of packing to 80 bits. */
export const p80 = { se: 0, hi: 0, lo: 0 };

/** Packs sign, n * 2^g (n < 2^64 integer-valued, in the extended range) into `p80`. */
export function pack80(sign: number, n: number, g: number): void {
  const s = sign !== 0 ? 0x8000 : 0;
  if (n === 0) {
    p80.se = s;
    p80.hi = 0;
    p80.lo = 0;
    return;
  }
  const L = bitLength(n);
  const top = g + L - 1;
  let biased = top + 16383;
  let M: number;
  if (biased >= 1) {
    M = n * pow2(64 - L);
  } else {
    M = scale(n, g + 16445);
    biased = 0;
  }
  const hi = Math.floor(M / TWO32);
  p80.hi = hi | 0;
  p80.lo = (M - hi * TWO32) | 0;
  p80.se = s | (biased & 0x7fff);
}

/** Packs an infinity into p80. */
export function packInf80(sign: number): void {
  p80.se = (sign !== 0 ? 0x8000 : 0) | 0x7fff;
  p80.hi = 0x80000000 | 0;
  p80.lo = 0;
}

/** Packs the QNaN indefinite into p80. */
export function packIndefinite80(): void {
  p80.se = 0xffff;
  p80.hi = 0xc0000000 | 0;
  p80.lo = 0;
}

// ---------------------------------------------------------------------------------------------
// Error-free transforms (sign of the rounding error of one double operation)

const SPLIT = 134217729; // 2^27 + 1

/** The exact error a*b - fl(a*b) for |a|, |b| in [1, 4) (Dekker). */
export function prodErr(a: number, b: number, p: number): number {
  let c = SPLIT * a;
  const ah = c - (c - a);
  const al = a - ah;
  c = SPLIT * b;
  const bh = c - (c - b);
  const bl = b - bh;
  return ah * bh - p + ah * bl + al * bh + al * bl;
}

/** Sign of (a + b - fl(a + b)) (Knuth's TwoSum). */
export function sumErrSign(a: number, b: number, s: number): number {
  const bb = s - a;
  const err = a - (s - bb) + (b - bb);
  return err > 0 ? 1 : err < 0 ? -1 : 0;
}

// ---------------------------------------------------------------------------------------------
// 64-bit integer helpers on u32 pairs

/** Output of the 64-bit helpers: hi:lo (as int32 bit patterns). */
export const w64 = { hi: 0, lo: 0 };

/** Shifts hi:lo left by n (0..63) into w64. */
export function shl64(hi: number, lo: number, n: number): void {
  if (n === 0) {
    w64.hi = hi;
    w64.lo = lo;
  } else if (n >= 32) {
    w64.hi = lo << (n - 32);
    w64.lo = 0;
  } else {
    w64.hi = (hi << n) | (lo >>> (32 - n));
    w64.lo = lo << n;
  }
}

/** Leading zeros of hi:lo (64 when zero). */
export function clz64(hi: number, lo: number): number {
  return hi !== 0 ? Math.clz32(hi) : 32 + Math.clz32(lo);
}

/**
 * Packs the integer sign * (hi:lo) * 2^e (exact, no rounding) as an 80-bit value into p80.
 * The magnitude must fit the extended range (true for integers and for doubles' mantissas).
 */
export function packInt80(sign: number, hi: number, lo: number, e: number): void {
  const s = sign !== 0 ? 0x8000 : 0;
  if (hi === 0 && lo === 0) {
    p80.se = s;
    p80.hi = 0;
    p80.lo = 0;
    return;
  }
  const z = clz64(hi, lo);
  shl64(hi, lo, z);
  let biased = e + 63 - z + 16383;
  if (biased <= 0) {
    // Denormal in the extended format: shift back (never for values coming from doubles/ints).
    const sh = 1 - biased;
    biased = 0;
    let h = w64.hi;
    let l = w64.lo;
    if (sh >= 64) {
      h = 0;
      l = 0;
    } else if (sh >= 32) {
      l = h >>> (sh - 32);
      h = 0;
    } else {
      l = (l >>> sh) | (h << (32 - sh));
      h = h >>> sh;
    }
    w64.hi = h;
    w64.lo = l;
  }
  p80.se = s | biased;
  p80.hi = w64.hi;
  p80.lo = w64.lo;
}

/** Output of roundInt(): magnitude hi:lo of the rounded integer, flags. */
export const ri = {
  hi: 0,
  lo: 0,
  inexact: false,
  up: false,
  /** magnitude >= 2^64 (cannot be represented) */ huge: false,
};

/**
 * Rounds a finite 80-bit value to an integer magnitude exactly (64-bit mantissa, no 53-bit step)
 * under rounding control rc. Result in `ri`.
 */
export function roundInt(se: number, hi: number, lo: number, rc: number): void {
  const sign = (se >>> 15) & 1;
  let exp = se & 0x7fff;
  if (exp === 0) exp = 1; // denormals: same scale as the smallest normal
  const E = exp - 16383; // value = mant * 2^(E - 63)
  ri.huge = false;
  ri.inexact = false;
  ri.up = false;
  if (E >= 64) {
    ri.huge = true;
    ri.hi = 0;
    ri.lo = 0;
    return;
  }
  if (E >= 63) {
    ri.hi = hi;
    ri.lo = lo;
    return;
  }
  const s = 63 - E; // right shift, >= 1
  let ih: number;
  let il: number;
  let half: boolean; // the bit just below the integer part
  let sticky: boolean; // any bit below that
  if (s > 65) {
    ih = 0;
    il = 0;
    half = false;
    sticky = hi !== 0 || lo !== 0;
  } else if (s === 65 || s === 64) {
    ih = 0;
    il = 0;
    if (s === 64) {
      half = (hi & 0x80000000) !== 0;
      sticky = (hi & 0x7fffffff) !== 0 || lo !== 0;
    } else {
      half = false;
      sticky = hi !== 0 || lo !== 0;
    }
  } else if (s > 32) {
    const t = s - 32; // 1..31
    ih = 0;
    il = hi >>> t;
    half = ((hi >>> (t - 1)) & 1) !== 0;
    sticky = (hi & ((1 << (t - 1)) - 1)) !== 0 || lo !== 0;
  } else if (s === 32) {
    ih = 0;
    il = hi;
    half = (lo & 0x80000000) !== 0;
    sticky = (lo & 0x7fffffff) !== 0;
  } else {
    ih = hi >>> s;
    il = (lo >>> s) | (hi << (32 - s));
    half = ((lo >>> (s - 1)) & 1) !== 0;
    sticky = s > 1 ? (lo & ((1 << (s - 1)) - 1)) !== 0 : false;
  }
  const inexact = half || sticky;
  let up = false;
  if (inexact) {
    if (rc === RC.NEAREST) up = half && (sticky || (il & 1) === 1);
    else if (rc === RC.UP) up = sign === 0;
    else if (rc === RC.DOWN) up = sign !== 0;
  }
  if (up) {
    il = (il + 1) | 0;
    if (il === 0) ih = (ih + 1) | 0;
  }
  ri.hi = ih;
  ri.lo = il;
  ri.inexact = inexact;
  ri.up = up;
}
