// The on-disk format of SMFS segments (docs/smfs.md, "On disk"). Big-endian throughout.
//
// Segment header, 32 bytes, at the start of every segment file:
//   0 u32 magic "SMFS"  4 u16 version (1)  6 u8 kind (1 raw, 2 compacted)  7 u8 reserved (0)
//   8 u32 log id  12 u32 segment number  16..27 reserved (0)  28 u32 CRC-32 of bytes 0..27
//
// A raw segment is the header and then parts, back to back. A part is one group's share of
// this log:
//   0 u32 magic "SMGP"  4 u8 kind (1 data, 2 free)  5 u8 flags (0)  6 u16 participants n
//   8 u32 entries  12 u32 body bytes  16 u64 group sequence  24 u64 durable sequence
//  32 n x u32 participant log ids, ascending, this log among them
//  32+4n body: data: entries x (u32 length, u32 CRC-32 of the data, data); a record's address
//             is the offset of its length field
//             free: entries x (u32 segment, u32 offset) of records of this log
//  then u32 CRC-32 of everything before it in the part
//
// A compacted segment is the header and then:
//  32 u32 records R  36 u32 frees F
//  40 R x (u32 offset it had in the raw segment, u32 length, u32 CRC-32 of the data, data)
//     F x (u32 segment, u32 offset): frees of records still present in other segments
//  then u32 CRC-32 of everything from byte 32.
import { crc32, crc32Combine } from './checksum';

export const SEGMENT_MAGIC = 0x534d4653; // "SMFS"
export const PART_MAGIC = 0x534d4750; // "SMGP"
export const FORMAT_VERSION = 1;
export const SEGMENT_HEADER = 32;
export const PART_HEADER = 32;
export const RECORD_HEADER = 8;
export const FREE_ENTRY = 8;
export const CRC_BYTES = 4;
export const COMPACT_HEADER = 8;
export const COMPACT_RECORD_HEADER = 12;

export const SegmentKind = { raw: 1, compacted: 2 } as const;
export type SegmentKind = (typeof SegmentKind)[keyof typeof SegmentKind];
export const PartKind = { data: 1, free: 2 } as const;
export type PartKind = (typeof PartKind)[keyof typeof PartKind];

export const LIMITS = {
  recordBytes: 16 * 1024 * 1024,   // one record's data
  groupBytes: 64 * 1024 * 1024,    // a group's data, all records together
  groupRecords: 65_536,            // records (or frees) in one group
  minSegmentBytes: 4096,
  maxSegmentBytes: 2 ** 31,        // offsets are u32; a part larger than a segment still fits
  defaultSegmentBytes: 100 * 1024 * 1024,
  maxLogId: 0xffff_fffe,           // 0xffffffff means "every log" on the wire
} as const;

export interface Address {
  log: number;
  segment: number;
  offset: number;
}

export function formatAddress(a: Address): string {
  return `${a.log}:${a.segment}:${a.offset}`;
}

export function parseAddress(text: string): Address | undefined {
  const m = /^(\d+):(\d+):(\d+)$/.exec(text.trim());
  if (!m) return undefined;
  const [log, segment, offset] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (log > 0xffffffff || segment > 0xffffffff || offset > 0xffffffff) return undefined;
  return { log, segment, offset };
}

export function segmentFileName(segment: number): string {
  return `${String(segment).padStart(10, '0')}.seg`;
}

export function parseSegmentFileName(name: string): number | undefined {
  const m = /^(\d{10})\.seg$/.exec(name);
  const n = m ? Number(m[1]) : NaN;
  return Number.isInteger(n) && n <= 0xffffffff ? n : undefined;
}

export interface SegmentHeader {
  kind: SegmentKind;
  log: number;
  segment: number;
}

export function encodeSegmentHeader(h: SegmentHeader): Buffer {
  const b = Buffer.alloc(SEGMENT_HEADER);
  b.writeUInt32BE(SEGMENT_MAGIC, 0);
  b.writeUInt16BE(FORMAT_VERSION, 4);
  b[6] = h.kind;
  b.writeUInt32BE(h.log, 8);
  b.writeUInt32BE(h.segment, 12);
  b.writeUInt32BE(crc32(b.subarray(0, 28)), 28);
  return b;
}

export function decodeSegmentHeader(b: Buffer): SegmentHeader | string {
  if (b.length < SEGMENT_HEADER) return 'short header';
  if (b.readUInt32BE(0) !== SEGMENT_MAGIC) return 'bad magic';
  if (b.readUInt32BE(28) !== crc32(b.subarray(0, 28))) return 'header checksum';
  if (b.readUInt16BE(4) !== FORMAT_VERSION) return `format version ${b.readUInt16BE(4)}, this build reads ${FORMAT_VERSION}`;
  const kind = b[6];
  if (kind !== SegmentKind.raw && kind !== SegmentKind.compacted) return `unknown segment kind ${kind}`;
  return { kind, log: b.readUInt32BE(8), segment: b.readUInt32BE(12) };
}

// What a part's header says, before its body is read: enough to know how long it is.
export interface PartHead {
  kind: PartKind;
  participants: number;
  entries: number;
  bodyBytes: number;
  seq: number;
  durableSeq: number;
  length: number; // the whole part, header to checksum
}

// Sequence numbers are u64 on disk and kept as numbers: 2^53 groups is not a limit in practice.
function readSeq(b: Buffer, at: number): number {
  return Number(b.readBigUInt64BE(at));
}

export function decodePartHead(b: Buffer): PartHead | string {
  if (b.length < PART_HEADER) return 'short part header';
  if (b.readUInt32BE(0) !== PART_MAGIC) return 'bad part magic';
  const kind = b[4];
  if (kind !== PartKind.data && kind !== PartKind.free) return `unknown part kind ${kind}`;
  if (b[5] !== 0) return 'part flags';
  const participants = b.readUInt16BE(6);
  const entries = b.readUInt32BE(8);
  const bodyBytes = b.readUInt32BE(12);
  if (participants === 0) return 'no participants';
  if (entries === 0 || entries > LIMITS.groupRecords) return `entry count ${entries}`;
  const bodyLimit = kind === PartKind.data ? LIMITS.groupBytes + entries * RECORD_HEADER : entries * FREE_ENTRY;
  if (bodyBytes > bodyLimit) return `body of ${bodyBytes} bytes`;
  const seq = readSeq(b, 16);
  const durableSeq = readSeq(b, 24);
  return { kind, participants, entries, bodyBytes, seq, durableSeq, length: PART_HEADER + participants * 4 + bodyBytes + CRC_BYTES };
}

export interface PartRecord {
  offset: number; // in the segment, of the record header
  length: number;
  crc: number;
}

export interface Part extends PartHead {
  participantLogs: number[];
  records: PartRecord[];   // data parts
  frees: Address[];        // free parts (log is the part's log)
}

// Checks a whole part read from `offset` of a segment of `log`. Returns what it holds, or why
// it is not a whole part.
export function decodePart(b: Buffer, log: number, offset: number): Part | string {
  const head = decodePartHead(b);
  if (typeof head === 'string') return head;
  if (b.length !== head.length) return 'part length';
  const crcAt = head.length - CRC_BYTES;
  if (b.readUInt32BE(crcAt) !== crc32(b.subarray(0, crcAt))) return 'part checksum';
  const participantLogs: number[] = [];
  for (let i = 0; i < head.participants; i++) {
    const id = b.readUInt32BE(PART_HEADER + 4 * i);
    if (i > 0 && id <= participantLogs[i - 1]) return 'participants not ascending';
    participantLogs.push(id);
  }
  if (!participantLogs.includes(log)) return 'part of another log';
  const records: PartRecord[] = [];
  const frees: Address[] = [];
  let at = PART_HEADER + head.participants * 4;
  if (head.kind === PartKind.data) {
    for (let i = 0; i < head.entries; i++) {
      if (at + RECORD_HEADER > crcAt) return 'records overrun the part';
      const length = b.readUInt32BE(at);
      const crc = b.readUInt32BE(at + 4);
      if (length > LIMITS.recordBytes || at + RECORD_HEADER + length > crcAt) return 'records overrun the part';
      if (crc32(b.subarray(at + RECORD_HEADER, at + RECORD_HEADER + length)) !== crc) return 'record checksum';
      records.push({ offset: offset + at, length, crc });
      at += RECORD_HEADER + length;
    }
  } else {
    for (let i = 0; i < head.entries; i++, at += FREE_ENTRY) {
      frees.push({ log, segment: b.readUInt32BE(at), offset: b.readUInt32BE(at + 4) });
    }
  }
  if (at !== crcAt) return 'body length';
  return { ...head, participantLogs, records, frees };
}

export interface NewRecord {
  data: Uint8Array;
  crc: number;
}

// A data part as buffers for writev: header and participants, then each record's header and
// data (not copied), then the checksum. Also the offset of each record relative to the part.
export function encodeDataPart(seq: number, durableSeq: number, participants: number[], records: NewRecord[]): { buffers: Uint8Array[]; length: number; recordOffsets: number[] } {
  const bodyBytes = records.reduce((n, r) => n + RECORD_HEADER + r.data.length, 0);
  const head = partHead(PartKind.data, seq, durableSeq, participants, records.length, bodyBytes);
  const buffers: Uint8Array[] = [head];
  const recordOffsets: number[] = [];
  let crc = crc32(head);
  let at = head.length;
  for (const r of records) {
    const h = Buffer.alloc(RECORD_HEADER);
    h.writeUInt32BE(r.data.length, 0);
    h.writeUInt32BE(r.crc, 4);
    crc = crc32Combine(crc32(h, crc), r.crc, r.data.length); // r.crc: the store has just checked it
    buffers.push(h, r.data);
    recordOffsets.push(at);
    at += RECORD_HEADER + r.data.length;
  }
  const tail = Buffer.alloc(CRC_BYTES);
  tail.writeUInt32BE(crc, 0);
  buffers.push(tail);
  return { buffers, length: at + CRC_BYTES, recordOffsets };
}

export function encodeFreePart(seq: number, durableSeq: number, participants: number[], frees: Address[]): Buffer {
  const head = partHead(PartKind.free, seq, durableSeq, participants, frees.length, frees.length * FREE_ENTRY);
  const b = Buffer.alloc(head.length + frees.length * FREE_ENTRY + CRC_BYTES);
  head.copy(b);
  let at = head.length;
  for (const f of frees) {
    b.writeUInt32BE(f.segment, at);
    b.writeUInt32BE(f.offset, at + 4);
    at += FREE_ENTRY;
  }
  b.writeUInt32BE(crc32(b.subarray(0, at)), at);
  return b;
}

function partHead(kind: PartKind, seq: number, durableSeq: number, participants: number[], entries: number, bodyBytes: number): Buffer {
  const b = Buffer.alloc(PART_HEADER + participants.length * 4);
  b.writeUInt32BE(PART_MAGIC, 0);
  b[4] = kind;
  b.writeUInt16BE(participants.length, 6);
  b.writeUInt32BE(entries, 8);
  b.writeUInt32BE(bodyBytes, 12);
  b.writeBigUInt64BE(BigInt(seq), 16);
  b.writeBigUInt64BE(BigInt(durableSeq), 24);
  participants.forEach((id, i) => b.writeUInt32BE(id, PART_HEADER + 4 * i));
  return b;
}

// The server-wide durable mark (file "durable"): every group up to this sequence number was on
// disk in every log it touched. 16 bytes: u32 magic "SMDS", u64 sequence, u32 CRC-32.
export const DURABLE_MAGIC = 0x534d4453;

export function encodeDurable(seq: number): Buffer {
  const b = Buffer.alloc(16);
  b.writeUInt32BE(DURABLE_MAGIC, 0);
  b.writeBigUInt64BE(BigInt(seq), 4);
  b.writeUInt32BE(crc32(b.subarray(0, 12)), 12);
  return b;
}

export function decodeDurable(b: Buffer): number | undefined {
  if (b.length !== 16 || b.readUInt32BE(0) !== DURABLE_MAGIC || b.readUInt32BE(12) !== crc32(b.subarray(0, 12))) return undefined;
  return readSeq(b, 4);
}
