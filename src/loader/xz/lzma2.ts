/**
 * LZMA2 decoding (the .xz format's filter 0x21) straight into a growing output buffer.
 *
 * The output buffer is the LZ dictionary: every byte decoded since the last dictionary reset stays
 * in it, so a match copies from earlier output and nothing wraps. Distances are checked against
 * both the bytes available since the reset and the dictionary size the filter properties declare.
 *
 * LZMA2 is a sequence of chunks, each starting with a control byte:
 *   0x00          end of the LZMA2 data
 *   0x01          uncompressed chunk, dictionary reset     } then u16 BE: size - 1, then the bytes
 *   0x02          uncompressed chunk, no reset             }
 *   0x03..0x7F    invalid
 *   0x80..0xFF    LZMA chunk: bits 0-4 are bits 16-20 of (unpacked size - 1), bits 5-6 what is
 *                 reset (0 nothing, 1 state, 2 state + new properties, 3 everything incl. the
 *                 dictionary); then u16 BE unpacked size - 1 (low bits), u16 BE packed size - 1,
 *                 and the properties byte (lc/lp/pb) when bits 5-6 >= 2.
 * The first chunk must reset the dictionary; an LZMA chunk needs properties after a dictionary
 * reset before it; lc + lp <= 4. Each LZMA chunk is its own range-coded unit (5 initial bytes, the
 * first 0) that ends exactly at its packed size with the coder's code at 0; no symbol crosses a
 * chunk boundary and there is no end marker.
 *
 * The LZMA model (probabilities are 11-bit, start at 1024 and adapt by 1/32):
 *   state 0..11 (0-6 after a literal); posState = position & (2^pb - 1)
 *   isMatch[state][posState]: literal or match
 *   literal: 8-bit tree chosen by the low lp bits of the position and the high lc bits of the
 *            previous byte; after a match ("matched literal") the byte at rep0 steers the tree
 *            until the first bit that differs.
 *   isRep[state]: new match (length, then distance) or a repeat of one of four recent distances:
 *     isRepG0 = 0: rep0, and isRep0Long = 0 means a "short rep" (one byte);
 *     isRepG1 / isRepG2 choose rep1, rep2 or rep3, which moves to the front.
 *   length: choice bit (0: 3-bit low tree per posState, 2..9), choice2 (0: 3-bit mid tree,
 *           10..17; 1: 8-bit high tree, 18..273).
 *   distance: 6-bit slot tree per min(len - 2, 3); slots 0-3 are the distance; slots 4-13 add
 *             (slot/2 - 1) reverse-tree bits; slots 14+ add direct bits and a 4-bit reverse
 *             "align" tree for the lowest bits.
 */
import { fail } from "./errors.ts";

/** A growing output buffer (the decoded data so far is buf[0, len)). */
export class OutBuffer {
  buf: Uint8Array;
  len = 0;
  readonly max: number;
  constructor(initial: number, max: number) {
    this.max = max;
    this.buf = new Uint8Array(Math.max(0, Math.min(initial, max)));
  }
  /** Makes room for n more bytes; throws when that would pass the limit. */
  ensure(n: number): void {
    const need = this.len + n;
    if (need <= this.buf.length) return;
    if (need > this.max) fail(`XZ: the output would exceed the limit of ${String(this.max)} bytes`);
    const size = Math.min(this.max, Math.max(need, this.buf.length * 2, 65536));
    const b = new Uint8Array(size);
    b.set(this.buf.subarray(0, this.len));
    this.buf = b;
  }
  /** The decoded bytes. */
  result(): Uint8Array {
    return this.buf.subarray(0, this.len);
  }
}

// Probability array layout.
const STATES = 12;
const POS_STATES_MAX = 16;
const IS_MATCH = 0;
const IS_REP = IS_MATCH + STATES * POS_STATES_MAX;
const IS_REP_G0 = IS_REP + STATES;
const IS_REP_G1 = IS_REP_G0 + STATES;
const IS_REP_G2 = IS_REP_G1 + STATES;
const IS_REP0_LONG = IS_REP_G2 + STATES;
const POS_SLOT = IS_REP0_LONG + STATES * POS_STATES_MAX;
const SPEC_POS = POS_SLOT + 4 * 64;
const ALIGN = SPEC_POS + 114;
// A length coder: choice, choice2, low[16][8], mid[16][8], high[256].
const LC_CHOICE = 0;
const LC_CHOICE2 = 1;
const LC_LOW = 2;
const LC_MID = LC_LOW + POS_STATES_MAX * 8;
const LC_HIGH = LC_MID + POS_STATES_MAX * 8;
const LEN_CODER_SIZE = LC_HIGH + 256;
const MATCH_LEN = ALIGN + 16;
const REP_LEN = MATCH_LEN + LEN_CODER_SIZE;
const LITERAL = REP_LEN + LEN_CODER_SIZE;
const PROBS_SIZE = LITERAL + 0x300 * 16; // lc + lp <= 4

const TOP = 0x1000000;

/** Decodes one LZMA2 stream (a block's last filter) from input[pos, end) into out. */
export class Lzma2Decoder {
  readonly #probs = new Uint16Array(PROBS_SIZE);
  // range decoder
  #in: Uint8Array = new Uint8Array(0);
  #ip = 0;
  #inEnd = 0;
  #range = 0;
  #code = 0;
  // LZMA state
  #state = 0;
  #rep0 = 0;
  #rep1 = 0;
  #rep2 = 0;
  #rep3 = 0;
  #lc = 0;
  #lp = 0;
  #pb = 0;

  /**
   * Decodes the LZMA2 data starting at input[pos] (it may not reach past `end`), appending to out.
   * Returns the input position just after the end-of-data control byte.
   */
  decode(input: Uint8Array, pos: number, end: number, out: OutBuffer, dictSize: number): number {
    let p = pos;
    let needDictReset = true;
    let needProps = true;
    let dictStart = out.len;
    for (;;) {
      if (p >= end) fail("XZ: truncated LZMA2 data (no end-of-data marker)");
      const control = input[p++]!;
      if (control === 0x00) return p;
      if (control === 0x01 || control >= 0xe0) {
        needDictReset = false;
        needProps = true;
        dictStart = out.len;
      } else if (needDictReset) {
        fail(
          `XZ: LZMA2 chunk control byte 0x${control.toString(16)} without the dictionary reset the first chunk needs`,
        );
      }
      if (control < 0x80) {
        if (control > 0x02) fail(`XZ: invalid LZMA2 control byte 0x${control.toString(16)}`);
        if (p + 2 > end) fail("XZ: truncated LZMA2 chunk header");
        const size = ((input[p]! << 8) | input[p + 1]!) + 1;
        p += 2;
        if (p + size > end) fail("XZ: truncated LZMA2 uncompressed chunk");
        out.ensure(size);
        out.buf.set(input.subarray(p, p + size), out.len);
        out.len += size;
        p += size;
        continue;
      }
      if (p + 4 > end) fail("XZ: truncated LZMA2 chunk header");
      const unpacked = (control & 0x1f) * 0x10000 + ((input[p]! << 8) | input[p + 1]!) + 1;
      const packed = ((input[p + 2]! << 8) | input[p + 3]!) + 1;
      p += 4;
      const reset = (control >>> 5) & 3;
      if (reset >= 2) {
        if (p >= end) fail("XZ: truncated LZMA2 chunk header");
        this.#setProps(input[p++]!);
        needProps = false;
      } else if (needProps) {
        fail("XZ: LZMA2 chunk without the LZMA properties it needs after a dictionary reset");
      }
      if (reset >= 1) this.#resetState();
      if (packed < 5) fail("XZ: LZMA2 chunk too short for the range coder");
      const chunkEnd = p + packed;
      if (chunkEnd > end) fail("XZ: truncated LZMA2 compressed chunk");
      out.ensure(unpacked);
      this.#rcInit(input, p, chunkEnd);
      this.#decodeChunk(out, out.len + unpacked, dictStart, dictSize);
      // final normalization, then the chunk must be used up exactly with the code at 0
      if (this.#range < TOP) this.#normalize();
      if (this.#ip !== chunkEnd || this.#code !== 0)
        fail("XZ: corrupt LZMA2 data (a chunk does not end where its header says)");
      p = chunkEnd;
    }
  }

  #setProps(b: number): void {
    if (b >= 9 * 5 * 5) fail(`XZ: invalid LZMA properties byte 0x${b.toString(16)}`);
    this.#lc = b % 9;
    const rest = (b / 9) | 0;
    this.#lp = rest % 5;
    this.#pb = (rest / 5) | 0;
    if (this.#lc + this.#lp > 4) fail(`XZ: LZMA2 needs lc + lp <= 4 (lc=${String(this.#lc)}, lp=${String(this.#lp)})`);
  }

  #resetState(): void {
    this.#probs.fill(1024);
    this.#state = 0;
    this.#rep0 = this.#rep1 = this.#rep2 = this.#rep3 = 0;
  }

  #rcInit(input: Uint8Array, pos: number, end: number): void {
    this.#in = input;
    this.#inEnd = end;
    if (input[pos] !== 0) fail("XZ: corrupt LZMA2 data (the range coder's first byte is not 0)");
    this.#code = ((input[pos + 1]! << 24) | (input[pos + 2]! << 16) | (input[pos + 3]! << 8) | input[pos + 4]!) >>> 0;
    this.#range = 0xffffffff;
    this.#ip = pos + 5;
    if (this.#code === 0xffffffff) fail("XZ: corrupt LZMA2 data (range coder initial code)");
  }

  #normalize(): void {
    if (this.#ip >= this.#inEnd) fail("XZ: corrupt LZMA2 data (a chunk's compressed data ends too early)");
    this.#range = (this.#range << 8) >>> 0;
    this.#code = ((this.#code << 8) | this.#in[this.#ip++]!) >>> 0;
  }

  /** One bit with the adaptive probability probs[i]. */
  #bit(i: number): number {
    if (this.#range < TOP) this.#normalize();
    const probs = this.#probs;
    const prob = probs[i]!;
    const bound = (this.#range >>> 11) * prob;
    if (this.#code < bound) {
      this.#range = bound;
      probs[i] = prob + ((2048 - prob) >>> 5);
      return 0;
    }
    this.#range -= bound;
    this.#code -= bound;
    probs[i] = prob - (prob >>> 5);
    return 1;
  }

  /** An n-bit tree (most significant bit first) rooted at probs[base + 1]. */
  #tree(base: number, bits: number): number {
    let m = 1;
    for (let i = 0; i < bits; i++) m = (m << 1) | this.#bit(base + m);
    return m - (1 << bits);
  }

  /** An n-bit reverse tree (least significant bit first) rooted at probs[base + 1]. */
  #reverseTree(base: number, bits: number): number {
    let m = 1;
    let r = 0;
    for (let i = 0; i < bits; i++) {
      const b = this.#bit(base + m);
      m = (m << 1) | b;
      r |= b << i;
    }
    return r;
  }

  /** n bits (at most 26) with probability 1/2 each. */
  #direct(bits: number): number {
    let r = 0;
    for (let i = 0; i < bits; i++) {
      if (this.#range < TOP) this.#normalize();
      this.#range >>>= 1;
      if (this.#code >= this.#range) {
        this.#code -= this.#range;
        r = (r << 1) | 1;
      } else {
        r <<= 1;
      }
    }
    return r;
  }

  /** A match length (2..273) with the length coder at `base`. */
  #length(base: number, posState: number): number {
    if (this.#bit(base + LC_CHOICE) === 0) return 2 + this.#tree(base + LC_LOW + posState * 8, 3);
    if (this.#bit(base + LC_CHOICE2) === 0) return 10 + this.#tree(base + LC_MID + posState * 8, 3);
    return 18 + this.#tree(base + LC_HIGH, 8);
  }

  /** A match distance minus one, for a match of length `len`. */
  #distance(len: number): number {
    const lenState = len < 6 ? len - 2 : 3;
    const slot = this.#tree(POS_SLOT + lenState * 64, 6);
    if (slot < 4) return slot;
    const directBits = (slot >>> 1) - 1;
    if (slot < 14) {
      const base = (2 | (slot & 1)) << directBits;
      return base + this.#reverseTree(SPEC_POS + base - slot - 1, directBits);
    }
    // all but the low 4 bits: (2 | slot & 1) followed by directBits - 4 direct bits (< 2^28)
    const high = ((2 | (slot & 1)) << (directBits - 4)) + this.#direct(directBits - 4);
    return ((high << 4) >>> 0) + this.#reverseTree(ALIGN - 1, 4);
  }

  /** Decodes symbols until out.len reaches `limit` exactly (room for it was ensured). */
  #decodeChunk(out: OutBuffer, limit: number, dictStart: number, dictSize: number): void {
    const buf = out.buf;
    let pos = out.len;
    const pbMask = (1 << this.#pb) - 1;
    const lpMask = (1 << this.#lp) - 1;
    const lc = this.#lc;
    let state = this.#state;
    let rep0 = this.#rep0;
    let rep1 = this.#rep1;
    let rep2 = this.#rep2;
    let rep3 = this.#rep3;
    while (pos < limit) {
      const rel = pos - dictStart;
      const posState = rel & pbMask;
      if (this.#bit(IS_MATCH + (state << 4) + posState) === 0) {
        // literal
        const prev = rel > 0 ? buf[pos - 1]! : 0;
        const base = LITERAL + 0x300 * (((rel & lpMask) << lc) + (prev >>> (8 - lc)));
        let sym = 1;
        if (state < 7) {
          // the hottest loop: #bit() inlined, the coder's state in locals
          const probs = this.#probs;
          const inp = this.#in;
          const inEnd = this.#inEnd;
          let range = this.#range;
          let code = this.#code;
          let ip = this.#ip;
          while (sym < 0x100) {
            if (range < TOP) {
              if (ip >= inEnd) fail("XZ: corrupt LZMA2 data (a chunk's compressed data ends too early)");
              range = (range << 8) >>> 0;
              code = ((code << 8) | inp[ip++]!) >>> 0;
            }
            const i = base + sym;
            const prob = probs[i]!;
            const bound = (range >>> 11) * prob;
            if (code < bound) {
              range = bound;
              probs[i] = prob + ((2048 - prob) >>> 5);
              sym <<= 1;
            } else {
              range -= bound;
              code -= bound;
              probs[i] = prob - (prob >>> 5);
              sym = (sym << 1) | 1;
            }
          }
          this.#range = range;
          this.#code = code;
          this.#ip = ip;
        } else {
          let match = buf[pos - rep0 - 1]!;
          while (sym < 0x100) {
            const mbit = (match >>> 7) & 1;
            match <<= 1;
            const b = this.#bit(base + 0x100 + (mbit << 8) + sym);
            sym = (sym << 1) | b;
            if (b !== mbit) {
              while (sym < 0x100) sym = (sym << 1) | this.#bit(base + sym);
              break;
            }
          }
        }
        buf[pos++] = sym & 0xff;
        state = state < 4 ? 0 : state < 10 ? state - 3 : state - 6;
        continue;
      }
      let len: number;
      if (this.#bit(IS_REP + state) === 0) {
        // a new match
        len = this.#length(MATCH_LEN, posState);
        const dist = this.#distance(len);
        if (dist === 0xffffffff) fail("XZ: corrupt LZMA2 data (an end marker inside an LZMA2 chunk)");
        rep3 = rep2;
        rep2 = rep1;
        rep1 = rep0;
        rep0 = dist;
        state = state < 7 ? 7 : 10;
      } else {
        if (rel === 0) fail("XZ: corrupt LZMA2 data (a repeated match before any data)");
        if (this.#bit(IS_REP_G0 + state) === 0) {
          if (this.#bit(IS_REP0_LONG + (state << 4) + posState) === 0) {
            // short rep: one byte from rep0
            if (rep0 >= rel) fail("XZ: corrupt LZMA2 data (match distance beyond the data decoded)");
            buf[pos] = buf[pos - rep0 - 1]!;
            pos++;
            state = state < 7 ? 9 : 11;
            continue;
          }
        } else {
          let d: number;
          if (this.#bit(IS_REP_G1 + state) === 0) {
            d = rep1;
          } else {
            if (this.#bit(IS_REP_G2 + state) === 0) {
              d = rep2;
            } else {
              d = rep3;
              rep3 = rep2;
            }
            rep2 = rep1;
          }
          rep1 = rep0;
          rep0 = d;
        }
        len = this.#length(REP_LEN, posState);
        state = state < 7 ? 8 : 11;
      }
      if (rep0 >= rel || rep0 >= dictSize) fail("XZ: corrupt LZMA2 data (match distance beyond the data decoded)");
      if (len > limit - pos) fail("XZ: corrupt LZMA2 data (a match runs past the end of its chunk)");
      let from = pos - rep0 - 1;
      if (rep0 + 1 >= len) {
        buf.copyWithin(pos, from, from + len);
        pos += len;
      } else {
        for (let i = 0; i < len; i++) buf[pos++] = buf[from++]!;
      }
    }
    out.len = pos;
    this.#state = state;
    this.#rep0 = rep0;
    this.#rep1 = rep1;
    this.#rep2 = rep2;
    this.#rep3 = rep3;
  }
}
