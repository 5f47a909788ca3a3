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
