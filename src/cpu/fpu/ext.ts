/**
 * Exact x87 arithmetic on 64-bit mantissas (u32 limbs, no BigInt, no allocation).
 *
 * Operands are finite, nonzero and normalized: sign, exponent e (unbiased, the weight of the leading
 * bit is 2^e) and mantissa hi:lo with bit 63 set (see Fpu's #norm, which normalizes denormals).
 * Each operation leaves its exact result, truncated to 96 bits plus a sticky bit, in `xr`:
 *   value = (m2:m1:g + sticky * epsilon) * 2^(e - 95),  m2 bit 31 set (leading bit weight 2^e).
 * `roundExt` then rounds `xr` to the precision-control width (24, 53 or 64 bits) under the rounding
 * control, with the extended format's exponent range, denormals, and masked/unmasked over- and
 * underflow responses, into `p80` — the same single rounding the hardware performs.
 */
import * as num from "./num.ts";

// Copied once (a CommonJS transpile would call an export getter on every use).
const { X, p80, res } = num;

/** The unrounded result of an exact operation (see the file comment). */
export const xr = { e: 0, m2: 0, m1: 0, g: 0, sticky: false };

const TWO32 = 4294967296;

/** 32 x 32 → 64-bit product into mh/ml (u32 numbers). */
let mh = 0;
let ml = 0;
function mul32(a: number, b: number): void {
  const t1 = a * (b >>> 16); // < 2^48
  const t0 = a * (b & 0xffff); // < 2^48
  const low = (t1 % 65536) * 65536 + t0; // < 2^49
  const carry = Math.floor(low / TWO32);
  ml = low - carry * TWO32;
  mh = Math.floor(t1 / 65536) + carry;
}

/** Normalizes xr (shifts left until m2 bit 31 is set; the value must be nonzero). */
function normalize(): void {
  let { m2, m1, g } = xr;
  let e = xr.e;
  if (m2 === 0 && m1 === 0) {
    m2 = g;
    m1 = 0;
    g = 0;
    e -= 64;
  } else if (m2 === 0) {
    m2 = m1;
    m1 = g;
    g = 0;
    e -= 32;
  }
  const z = Math.clz32(m2);
  if (z > 0 && z < 32) {
    m2 = ((m2 << z) | (m1 >>> (32 - z))) >>> 0;
    m1 = ((m1 << z) | (g >>> (32 - z))) >>> 0;
    g = (g << z) >>> 0;
    e -= z;
  }
  xr.m2 = m2;
  xr.m1 = m1;
  xr.g = g;
  xr.e = e;
}

/**
 * |a| + |b| (subtract = false) or |a| - |b| (subtract = true) for normalized magnitudes.
 * Returns the sign of the result relative to a: 1 (same as a), -1 (opposite: |b| > |a|), 0 (exact zero).
 */
export function addMag(
  ea: number,
  ah: number,
  al: number,
  eb: number,
  bh: number,
  bl: number,
  subtract: boolean,
): number {
  let flip = 1;
  if (eb > ea || (eb === ea && (bh > ah || (bh === ah && bl > al)))) {
    let t = ea;
    ea = eb;
    eb = t;
    t = ah;
    ah = bh;
    bh = t;
    t = al;
    al = bl;
    bl = t;
    flip = -1;
  }
  const d = ea - eb;
  let b2: number;
  let b1: number;
  let b0: number;
  let st = false;
  if (d === 0) {
    b2 = bh;
    b1 = bl;
    b0 = 0;
  } else if (d < 32) {
    b2 = bh >>> d;
    b1 = ((bh << (32 - d)) | (bl >>> d)) >>> 0;
    b0 = (bl << (32 - d)) >>> 0;
  } else if (d === 32) {
    b2 = 0;
    b1 = bh;
    b0 = bl;
  } else if (d < 64) {
    const s = d - 32;
    b2 = 0;
    b1 = bh >>> s;
    b0 = ((bh << (32 - s)) | (bl >>> s)) >>> 0;
    st = bl << (32 - s) !== 0;
  } else if (d === 64) {
    b2 = 0;
    b1 = 0;
    b0 = bh;
    st = bl !== 0;
  } else if (d < 96) {
    const s = d - 64;
    b2 = 0;
    b1 = 0;
    b0 = bh >>> s;
    st = bh << (32 - s) !== 0 || bl !== 0;
  } else {
    b2 = 0;
    b1 = 0;
    b0 = 0;
    st = true;
  }
  if (!subtract) {
    let r0 = b0;
    let r1 = al + b1;
    let c = r1 >= TWO32 ? 1 : 0;
    r1 -= c * TWO32;
    let r2 = ah + b2 + c;
    c = r2 >= TWO32 ? 1 : 0;
    r2 -= c * TWO32;
    let e = ea;
    if (c !== 0) {
      st = st || (r0 & 1) !== 0;
      r0 = ((r0 >>> 1) | (r1 << 31)) >>> 0;
      r1 = ((r1 >>> 1) | (r2 << 31)) >>> 0;
      r2 = ((r2 >>> 1) | 0x80000000) >>> 0;
      e++;
    }
    xr.e = e;
    xr.m2 = r2;
    xr.m1 = r1;
    xr.g = r0;
    xr.sticky = st;
    return flip;
  }
  // a - b, minus one guard unit when sticky (the dropped bits of b are strictly between 0 and 1 unit).
  let r0 = 0 - b0 - (st ? 1 : 0);
  let br = r0 < 0 ? 1 : 0;
  r0 += br * TWO32;
  let r1 = al - b1 - br;
  br = r1 < 0 ? 1 : 0;
  r1 += br * TWO32;
  const r2 = ah - b2 - br;
  if (r2 === 0 && r1 === 0 && r0 === 0 && !st) return 0;
  xr.e = ea;
  xr.m2 = r2;
  xr.m1 = r1;
  xr.g = r0;
  xr.sticky = st;
  normalize();
  return flip;
}

/** Product of two normalized mantissas (exponents added). */
export function mulMag(ea: number, ah: number, al: number, eb: number, bh: number, bl: number): void {
  mul32(al, bl);
  const p0 = ml;
  const h0 = mh;
  mul32(al, bh);
  const l1 = ml;
  const h1 = mh;
  mul32(ah, bl);
  const l2 = ml;
  const h2 = mh;
  mul32(ah, bh);
  const l3 = ml;
  const h3 = mh;
  const c1 = h0 + l1 + l2;
  const p1 = c1 % TWO32;
  const c2 = h1 + h2 + l3 + Math.floor(c1 / TWO32);
  const p2 = c2 % TWO32;
  const p3 = h3 + Math.floor(c2 / TWO32);
  if (p3 >= 0x80000000) {
    xr.e = ea + eb + 1;
    xr.m2 = p3;
    xr.m1 = p2;
    xr.g = p1;
  } else {
    xr.e = ea + eb;
    xr.m2 = ((p3 << 1) | (p2 >>> 31)) >>> 0;
    xr.m1 = ((p2 << 1) | (p1 >>> 31)) >>> 0;
    xr.g = ((p1 << 1) | (p0 >>> 31)) >>> 0;
  }
  xr.sticky = (p0 & 0x7fffffff) !== 0 || (p3 >= 0x80000000 && (p0 & 0x80000000) !== 0);
}

/** Quotient of two normalized mantissas (restoring division, 96 quotient bits + sticky). */
export function divMag(ea: number, ah: number, al: number, eb: number, bh: number, bl: number): void {
  let rh = ah;
  let rl = al;
  let top = false;
  const ge = ah > bh || (ah === bh && al >= bl);
  const n = ge ? 96 : 97;
  let q2 = 0;
  let q1 = 0;
  let q0 = 0;
  for (let i = 0; i < n; i++) {
    let bit = 0;
    if (top || rh > bh || (rh === bh && rl >= bl)) {
      let nl = rl - bl;
      const b = nl < 0 ? 1 : 0;
      nl += b * TWO32;
      rh = (rh - bh - b) >>> 0;
      rl = nl;
      bit = 1;
    }
    q2 = ((q2 << 1) | (q1 >>> 31)) >>> 0;
    q1 = ((q1 << 1) | (q0 >>> 31)) >>> 0;
    q0 = ((q0 << 1) | bit) >>> 0;
    top = rh >= 0x80000000;
    rh = ((rh << 1) | (rl >>> 31)) >>> 0;
    rl = (rl << 1) >>> 0;
  }
  xr.e = ea - eb - (ge ? 0 : 1);
  xr.m2 = q2;
  xr.m1 = q1;
  xr.g = q0;
  xr.sticky = top || rh !== 0 || rl !== 0;
}

const sr = new Uint32Array(4); // remainder
const sq = new Uint32Array(4); // root
const st4 = new Uint32Array(4); // trial

/** Square root of a normalized mantissa with exponent e (digit-by-digit, 97 root bits + sticky). */
export function sqrtMag(e: number, h: number, l: number): void {
  // value = M * 2^k, k = e - 63. Radicand R (66 bits) with an even exponent kk.
  const k = e - 63;
  let R2: number;
  let R1: number;
  let R0: number;
  let kk: number;
  if ((k & 1) === 0) {
    // R = 4M
    R2 = h >>> 30;
    R1 = ((h << 2) | (l >>> 30)) >>> 0;
    R0 = (l << 2) >>> 0;
    kk = k - 2;
  } else {
    // R = 2M
    R2 = h >>> 31;
    R1 = ((h << 1) | (l >>> 31)) >>> 0;
    R0 = (l << 1) >>> 0;
    kk = k - 1;
  }
  sr.fill(0);
  sq.fill(0);
  for (let i = 0; i < 97; i++) {
    const pos = 64 - 2 * i;
    let pair = 0;
    if (pos >= 64) pair = (R2 >>> (pos - 64)) & 3;
    else if (pos >= 32) pair = (R1 >>> (pos - 32)) & 3;
    else if (pos >= 0) pair = (R0 >>> pos) & 3;
    // r = 4r + pair
    sr[3] = ((sr[3]! << 2) | (sr[2]! >>> 30)) >>> 0;
    sr[2] = ((sr[2]! << 2) | (sr[1]! >>> 30)) >>> 0;
    sr[1] = ((sr[1]! << 2) | (sr[0]! >>> 30)) >>> 0;
    sr[0] = ((sr[0]! << 2) | pair) >>> 0;
    // t = 4q + 1
    st4[3] = ((sq[3]! << 2) | (sq[2]! >>> 30)) >>> 0;
    st4[2] = ((sq[2]! << 2) | (sq[1]! >>> 30)) >>> 0;
    st4[1] = ((sq[1]! << 2) | (sq[0]! >>> 30)) >>> 0;
    st4[0] = ((sq[0]! << 2) | 1) >>> 0;
    let geq = true;
    for (let j = 3; j >= 0; j--) {
      if (sr[j] !== st4[j]) {
        geq = sr[j]! > st4[j]!;
        break;
      }
    }
    let bit = 0;
    if (geq) {
      let borrow = 0;
      for (let j = 0; j < 4; j++) {
        let v = sr[j]! - st4[j]! - borrow;
        borrow = v < 0 ? 1 : 0;
        v += borrow * TWO32;
        sr[j] = v;
      }
      bit = 1;
    }
    sq[3] = ((sq[3]! << 1) | (sq[2]! >>> 31)) >>> 0;
    sq[2] = ((sq[2]! << 1) | (sq[1]! >>> 31)) >>> 0;
    sq[1] = ((sq[1]! << 1) | (sq[0]! >>> 31)) >>> 0;
    sq[0] = ((sq[0]! << 1) | bit) >>> 0;
  }
  // The root has 97 bits (bit 96 set): value = root * 2^(kk/2 - 64).
  xr.e = 32 + kk / 2;
  xr.m2 = ((sq[3]! << 31) | (sq[2]! >>> 1)) >>> 0;
  xr.m1 = ((sq[2]! << 31) | (sq[1]! >>> 1)) >>> 0;
  xr.g = ((sq[1]! << 31) | (sq[0]! >>> 1)) >>> 0;
  xr.sticky = (sq[0]! & 1) !== 0 || sr[0] !== 0 || sr[1] !== 0 || sr[2] !== 0 || sr[3] !== 0;
}

/** Loads a normalized exact value (no extra bits) into xr. */
export function setMag(e: number, h: number, l: number): void {
  xr.e = e;
  xr.m2 = h >>> 0;
  xr.m1 = l >>> 0;
  xr.g = 0;
  xr.sticky = false;
}

/** True when rounding m2:m1:g (+sticky) to q bits rounds up and carries out of the top bit. */
function roundsUpToCarry(
  m2: number,
  m1: number,
  g: number,
  sticky: boolean,
  q: number,
  rc: number,
  sign: number,
): boolean {
  let half: boolean;
  let rest: boolean;
  let odd: boolean;
  let ones: boolean;
  if (q >= 64) {
    half = (g & 0x80000000) !== 0;
    rest = (g & 0x7fffffff) !== 0 || sticky;
    odd = (m1 & 1) !== 0;
    ones = m2 === 0xffffffff && m1 === 0xffffffff;
  } else if (q === 53) {
    half = (m1 & 0x400) !== 0;
    rest = (m1 & 0x3ff) !== 0 || g !== 0 || sticky;
    odd = (m1 & 0x800) !== 0;
    ones = m2 === 0xffffffff && m1 >>> 11 === 0x1fffff;
  } else {
    half = (m2 & 0x80) !== 0;
    rest = (m2 & 0x7f) !== 0 || m1 !== 0 || g !== 0 || sticky;
    odd = (m2 & 0x100) !== 0;
    ones = m2 >>> 8 === 0xffffff;
  }
  if (!ones || !(half || rest)) return false;
  if (rc === 0) return half && (rest || odd);
  if (rc === 1) return sign !== 0;
  if (rc === 2) return sign === 0;
  return false;
}

/** Emin of the extended format and the exponent wrap of unmasked over/underflow. */
const EMIN = -16382;
const EMAX = 16383;

/**
 * Rounds xr (sign `sign`) to q = 24/53/64 significant bits with the extended exponent range
 * under control word cw; result in p80, flags in res.flags, C1 in res.c1.
 * `bias` is the exponent wrap for unmasked over/underflow (24576 for register destinations).
 */
export function roundExt(sign: number, q: number, cw: number, bias: number): void {
  const rc = (cw >>> 10) & 3;
  let flags = 0;
  let e = xr.e;
  let m2 = xr.m2;
  let m1 = xr.m1;
  let g = xr.g;
  let sticky = xr.sticky;
  // Tiny (SDM 4.9.1.5): the result rounded to q bits with an unbounded exponent is below 2^EMIN.
  let tiny = e < EMIN;
  if (e === EMIN - 1 && roundsUpToCarry(m2, m1, g, sticky, q, rc, sign)) tiny = false;
  const wrapUnder = tiny && (cw & X.UE) === 0;
  let denorm = false;
  if (tiny && !wrapUnder) {
    // Denormalize: shift right by s with sticky.
    let s = EMIN - e;
    e = EMIN;
    denorm = true;
    while (s >= 32) {
      sticky = sticky || g !== 0;
      g = m1;
      m1 = m2;
      m2 = 0;
      s -= 32;
      if (m2 === 0 && m1 === 0 && g === 0) break;
    }
    if (s > 0 && s < 32) {
      sticky = sticky || g << (32 - s) !== 0;
      g = ((g >>> s) | (m1 << (32 - s))) >>> 0;
      m1 = ((m1 >>> s) | (m2 << (32 - s))) >>> 0;
      m2 = m2 >>> s;
    }
  }
  // Round bit, lower bits and the unit to add, per precision.
  let half: boolean;
  let rest: boolean;
  let odd: boolean;
  if (q >= 64) {
    half = (g & 0x80000000) !== 0;
    rest = (g & 0x7fffffff) !== 0 || sticky;
    odd = (m1 & 1) !== 0;
  } else if (q === 53) {
    half = (m1 & 0x400) !== 0;
    rest = (m1 & 0x3ff) !== 0 || g !== 0 || sticky;
    odd = (m1 & 0x800) !== 0;
    m1 = (m1 & 0xfffff800) >>> 0;
  } else {
    half = (m2 & 0x80) !== 0;
    rest = (m2 & 0x7f) !== 0 || m1 !== 0 || g !== 0 || sticky;
    odd = (m2 & 0x100) !== 0;
    m2 = (m2 & 0xffffff00) >>> 0;
    m1 = 0;
  }
  const inexact = half || rest;
  let up = false;
  if (inexact) {
    if (rc === 0) up = half && (rest || odd);
    else if (rc === 1) up = sign !== 0;
    else if (rc === 2) up = sign === 0;
  }
  if (up) {
    if (q >= 64) {
      m1 = m1 + 1;
      if (m1 >= TWO32) {
        m1 = 0;
        m2 = m2 + 1;
      }
    } else if (q === 53) {
      m1 = m1 + 0x800;
      if (m1 >= TWO32) {
        m1 -= TWO32;
        m2 = m2 + 1;
      }
    } else m2 = m2 + 0x100;
    if (m2 >= TWO32) {
      m2 = 0x80000000;
      e++;
    }
  }
  if (inexact) flags |= X.PE;
  res.c1 = up ? 1 : 0;
  if (denorm) {
    if (inexact) flags |= X.UE;
  } else if (wrapUnder) {
    flags |= X.UE;
    e += bias;
  } else if (e > EMAX) {
    if ((cw & X.OE) === 0) {
      flags |= X.OE;
      e -= bias;
    } else {
      flags |= X.OE | X.PE;
      const toInf = rc === 0 || (rc !== 3 && (rc === 2) === (sign === 0));
      if (toInf) {
        p80.se = (sign << 15) | 0x7fff;
        p80.hi = 0x80000000 | 0;
        p80.lo = 0;
        res.c1 = 1;
      } else {
        p80.se = (sign << 15) | 0x7ffe;
        p80.hi = q >= 64 ? -1 : q === 53 ? -1 : 0xffffff00 | 0;
        p80.lo = q >= 64 ? -1 : q === 53 ? 0xfffff800 | 0 : 0;
        res.c1 = 0;
      }
      res.flags = flags;
      return;
    }
  }
  res.flags = flags;
  p80.hi = m2 | 0;
  p80.lo = m1 | 0;
  if (m2 >= 0x80000000) p80.se = (sign << 15) | ((e + 16383) & 0x7fff);
  else p80.se = sign << 15; // denormal (or zero)
}
