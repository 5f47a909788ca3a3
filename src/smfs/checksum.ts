// CRC-32 (IEEE 802.3, the polynomial of zlib, gzip and PNG) over records and groups. Node has it
// natively as zlib.crc32 from 20.15 on; older Nodes get the same function from a table, slower.
// CRC-32C would catch the same errors; it is not in Node, and the native CRC-32 runs at GB/s.
import zlib from 'node:zlib';

type Crc32 = (data: Uint8Array, value?: number) => number;

const TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

export function crc32Table(data: Uint8Array, value = 0): number {
  let c = ~value >>> 0;
  for (let i = 0; i < data.length; i++) c = TABLE[(c ^ data[i]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}

const native = (zlib as { crc32?: Crc32 }).crc32;

// crc32(b, crc32(a)) === crc32(a ++ b): a checksum can be carried across buffers.
export const crc32: Crc32 = native ? (data, value = 0) => native(data, value) >>> 0 : crc32Table;

// crc32Combine(crc32(a), crc32(b), b.length) === crc32(a ++ b), without reading b: zlib's
// crc32_combine (multiplying by x^(8·len) modulo the polynomial). A store that has just checked
// a record's CRC uses it for the CRC of the part around the record instead of reading the
// record's bytes a second time.
const POLY = 0xedb88320;

// a·b modulo the CRC polynomial (bit-reflected, as CRC-32 is).
function multModP(a: number, b: number): number {
  let m = 0x80000000;
  let p = 0;
  for (;;) {
    if (a & m) {
      p ^= b;
      if ((a & (m - 1)) === 0) break;
    }
    m >>>= 1;
    b = b & 1 ? (b >>> 1) ^ POLY : b >>> 1;
  }
  return p >>> 0;
}

// x^(2^k) modulo the polynomial, k = 0..31.
const X2N = (() => {
  const t = new Uint32Array(32);
  let p = 0x40000000; // x^1
  t[0] = p;
  for (let n = 1; n < 32; n++) t[n] = p = multModP(p, p);
  return t;
})();

// x^(8·bytes) modulo the polynomial: the operator that moves a CRC past `bytes` bytes.
function shiftOperator(bytes: number): number {
  let p = 0x80000000; // x^0
  let k = 3;
  for (let n = bytes; n > 0; n = Math.floor(n / 2), k++) if (n % 2 === 1) p = multModP(X2N[k & 31], p);
  return p;
}

// Records are mostly of a few lengths (4 KiB blocks): their operators are kept.
const operators = new Map<number, number>();

export function crc32Combine(crcA: number, crcB: number, lengthB: number): number {
  let op = operators.get(lengthB);
  if (op === undefined) {
    op = shiftOperator(lengthB);
    if (operators.size < 1024) operators.set(lengthB, op);
  }
  return (multModP(op, crcA >>> 0) ^ (crcB >>> 0)) >>> 0;
}
