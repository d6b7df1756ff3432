/**
 * The two checksums of the .xz format:
 *   CRC32: the reflected CRC with polynomial 0x04C11DB7 (reversed 0xEDB88320), initial value and
 *          final XOR 0xFFFFFFFF (the one of zlib and Ethernet); check value of "123456789" 0xCBF43926.
 *   CRC64: ECMA-182's polynomial 0x42F0E1EBA9EA3693, reflected (0xC96C5795D7870F42), initial value
 *          and final XOR all ones; check value of "123456789" 0x995DC9BBDF1939FA.
 * Both are table-driven, a byte at a time; CRC64 keeps its 64-bit state in two 32-bit halves.
 */

function makeCrc32Table(): Uint32Array {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0xedb88320 : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
}

const CRC32_TABLE = makeCrc32Table();

/** CRC32 of data[start, end). */
export function crc32(data: Uint8Array, start = 0, end = data.length): number {
  const t = CRC32_TABLE;
  let c = 0xffffffff;
  for (let i = start; i < end; i++) c = t[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

// Reflected ECMA-182 polynomial, high and low halves.
const POLY64_HI = 0xc96c5795;
const POLY64_LO = 0xd7870f42;

function makeCrc64Tables(): [Uint32Array, Uint32Array] {
  const hi = new Uint32Array(256);
  const lo = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let h = 0;
    let l = n;
    for (let k = 0; k < 8; k++) {
      const lsb = l & 1;
      l = ((l >>> 1) | ((h & 1) << 31)) >>> 0;
      h = h >>> 1;
      if (lsb) {
        h = (h ^ POLY64_HI) >>> 0;
        l = (l ^ POLY64_LO) >>> 0;
      }
    }
    hi[n] = h;
    lo[n] = l;
  }
  return [hi, lo];
}

const [CRC64_HI, CRC64_LO] = makeCrc64Tables();

/** CRC64 of data[start, end) as [high 32 bits, low 32 bits]. */
export function crc64(data: Uint8Array, start = 0, end = data.length): [number, number] {
  const th = CRC64_HI;
  const tl = CRC64_LO;
  let h = 0xffffffff;
  let l = 0xffffffff;
  for (let i = start; i < end; i++) {
    const idx = (l ^ data[i]!) & 0xff;
    // state >> 8, then XOR the table entry
    l = ((l >>> 8) | (h << 24)) ^ tl[idx]!;
    h = (h >>> 8) ^ th[idx]!;
  }
  return [(h ^ 0xffffffff) >>> 0, (l ^ 0xffffffff) >>> 0];
}
