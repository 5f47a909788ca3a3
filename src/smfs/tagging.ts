// Tagged responses (docs/smfs.md, "Tagged responses"): what the primary and its clients share
// about a group a client keeps until the mirror has it.
//
// A tagged answer carries the group's sequence number, the durable mark written in its parts
// and the primary's mirrored-through watermark. From that, the records it sent and the addresses
// it got back, a client rebuilds the group's parts byte for byte as the primary wrote them, and
// can hand them to a promoted mirror as a mirrored group: the mirror's own checks and write path
// apply it, at the same addresses.
//
// A coded share is the XOR of the encodings of a few groups of other clients, with what is needed
// to name them: a survivor's share and the other members rebuild a lost client's group.
import { crc32 } from './checksum';
import { SmfsError } from './errors';
import { PART_HEADER, RECORD_HEADER, encodeDataPart, encodeFreePart } from './format';
import type { Address } from './format';
import type { ShippedPart } from './store';
import { Cursor } from './wire';

// After the addresses (and timings) of an answer to an append or free with the tag flag.
export interface Tag {
  seq: number;         // the group's sequence number
  durableSeq: number;  // the durable mark written in its parts' headers
  mirrored: number;    // every group up to here is written at the mirror
  held: number;        // every group up to here is at the mirror or kept by a client (tag-service.ts)
}

export const TAG_BYTES = 32;
export const CLIENT_ID_BYTES = 16;
export const TAG_VERSION = 1;

export function encodeTag(t: Tag): Buffer {
  const b = Buffer.alloc(TAG_BYTES);
  b.writeBigUInt64BE(BigInt(t.seq), 0);
  b.writeBigUInt64BE(BigInt(t.durableSeq), 8);
  b.writeBigUInt64BE(BigInt(t.mirrored), 16);
  b.writeBigUInt64BE(BigInt(t.held), 24);
  return b;
}

export function readTag(c: Cursor): Tag {
  return { seq: c.u64(), durableSeq: c.u64(), mirrored: c.u64(), held: c.u64() };
}

export interface GroupRecord {
  log: number;
  data: Uint8Array;
  crc: number;
}

// A record's place in its part: the server groups a group's records by log, ascending, keeping
// the order given within a log (store.ts byLog).
function byLog<T extends { log: number }>(items: T[]): [number, number[]][] {
  const m = new Map<number, number[]>();
  items.forEach((r, i) => {
    const list = m.get(r.log);
    if (list) list.push(i);
    else m.set(r.log, [i]);
  });
  return [...m.entries()].sort((a, b) => a[0] - b[0]);
}

// Whether the addresses an append got back are the ones its parts would give: each log's
// records back to back in one segment, after one part header. Cheap (no data touched): checked
// on every tagged answer, so a cache never holds a group it could not rebuild.
export function checkDataAddresses(records: { log: number; data: Uint8Array }[], addresses: Address[]): string | undefined {
  if (addresses.length !== records.length) return `${addresses.length} addresses for ${records.length} records`;
  const logs = byLog(records);
  const header = PART_HEADER + 4 * logs.length;
  for (const [log, idx] of logs) {
    const first = addresses[idx[0]];
    if (first.offset < header) return `log ${log}: the first record at offset ${first.offset} leaves no room for its part header`;
    let at = first.offset;
    for (const i of idx) {
      const a = addresses[i];
      if (a.log !== log || a.segment !== first.segment || a.offset !== at) return `record ${i} at ${a.log}:${a.segment}:${a.offset}, where its part puts it at ${log}:${first.segment}:${at}`;
      at += RECORD_HEADER + records[i].data.length;
    }
  }
  return undefined;
}

// The parts of a data group, byte for byte as the primary wrote them.
export function rebuildDataParts(seq: number, durableSeq: number, records: GroupRecord[], addresses: Address[]): ShippedPart[] {
  const problem = checkDataAddresses(records, addresses);
  if (problem) throw new SmfsError('SMFS_ERR_REQUEST', `group ${seq} cannot be rebuilt: ${problem}`);
  const logs = byLog(records);
  const participants = logs.map(([log]) => log);
  return logs.map(([log, idx]) => {
    const encoded = encodeDataPart(seq, durableSeq, participants, idx.map((i) => ({ data: records[i].data, crc: records[i].crc })));
    const first = addresses[idx[0]];
    return { log, segment: first.segment, offset: first.offset - encoded.recordOffsets[0], bytes: Buffer.concat(encoded.buffers, encoded.length) };
  });
}

// The parts of a free group: where they went comes with the tag, one (segment, offset) per log
// the frees touched, ascending.
export function rebuildFreeParts(seq: number, durableSeq: number, addresses: Address[], locations: Address[]): ShippedPart[] {
  const logs = byLog(addresses);
  if (locations.length !== logs.length) throw new SmfsError('SMFS_ERR_REQUEST', `free group ${seq}: ${locations.length} part locations for ${logs.length} logs`);
  const participants = logs.map(([log]) => log);
  return logs.map(([log, idx], k) => {
    if (locations[k].log !== log) throw new SmfsError('SMFS_ERR_REQUEST', `free group ${seq}: part ${k} is for log ${locations[k].log}, not ${log}`);
    return { log, segment: locations[k].segment, offset: locations[k].offset, bytes: encodeFreePart(seq, durableSeq, participants, idx.map((i) => addresses[i])) };
  });
}

// A group as a mirror-group body (op 18): u64 seq, u32 n, n x (u32 log, u32 segment, u32
// offset, u32 length, part bytes). Also what a handover carries and what a share XORs.
export function encodeGroupBody(seq: number, parts: ShippedPart[]): Buffer {
  const b = Buffer.allocUnsafe(groupBodyLength(parts.map((p) => p.bytes.length)));
  b.writeBigUInt64BE(BigInt(seq), 0);
  b.writeUInt32BE(parts.length, 8);
  let at = 12;
  for (const p of parts) {
    b.writeUInt32BE(p.log, at);
    b.writeUInt32BE(p.segment, at + 4);
    b.writeUInt32BE(p.offset, at + 8);
    b.writeUInt32BE(p.bytes.length, at + 12);
    p.bytes.copy(b, at + 16);
    at += 16 + p.bytes.length;
  }
  return b;
}

export function groupBodyLength(partLengths: number[]): number {
  return 12 + partLengths.reduce((n, l) => n + 16 + l, 0);
}

export const MAX_GROUP_PARTS = 65_536;

// A mirror-group body read field by field; the parts are not checked here (LogStore.checkShipped).
export function decodeGroupBody(c: Cursor): { seq: number; parts: ShippedPart[] } {
  const seq = c.u64();
  const n = c.u32();
  if (n === 0 || n > MAX_GROUP_PARTS) throw new SmfsError('SMFS_ERR_REQUEST', `a mirrored group has 1 to ${MAX_GROUP_PARTS} parts, got ${n}`);
  const parts: ShippedPart[] = [];
  for (let i = 0; i < n; i++) {
    const log = c.u32();
    const segment = c.u32();
    const offset = c.u32();
    parts.push({ log, segment, offset, bytes: c.bytes(c.u32()) });
  }
  return { seq, parts };
}

// One group a share covers: its sequence number and where its parts are, so that a member the
// promoted mirror already holds can be read back from its own segments.
export interface ShareMember {
  seq: number;
  parts: { log: number; segment: number; offset: number; length: number }[];
}

export interface Share {
  id: number;
  members: ShareMember[];
  payload: Buffer; // XOR of the members' group bodies, each zero-padded to the longest
}

export const MAX_SHARE_MEMBERS = 1024;

export function memberLength(m: ShareMember): number {
  return groupBodyLength(m.parts.map((p) => p.length));
}

// u64 id, u16 m, m x (u64 seq, u16 parts, parts x (u32 log, u32 segment, u32 offset, u32 length)), payload.
export function encodeShare(s: Share): Buffer[] {
  const head = Buffer.alloc(10 + s.members.reduce((n, m) => n + 10 + 16 * m.parts.length, 0));
  head.writeBigUInt64BE(BigInt(s.id), 0);
  head.writeUInt16BE(s.members.length, 8);
  let at = 10;
  for (const m of s.members) {
    head.writeBigUInt64BE(BigInt(m.seq), at);
    head.writeUInt16BE(m.parts.length, at + 8);
    at += 10;
    for (const p of m.parts) {
      head.writeUInt32BE(p.log, at);
      head.writeUInt32BE(p.segment, at + 4);
      head.writeUInt32BE(p.offset, at + 8);
      head.writeUInt32BE(p.length, at + 12);
      at += 16;
    }
  }
  return [head, s.payload];
}

// Reads a share to the end of the cursor's body (the payload is the rest).
export function decodeShare(c: Cursor, payloadBytes?: number): Share {
  const id = c.u64();
  const count = c.u16();
  if (count === 0 || count > MAX_SHARE_MEMBERS) throw new SmfsError('SMFS_ERR_REQUEST', `a share covers 1 to ${MAX_SHARE_MEMBERS} groups, got ${count}`);
  const members: ShareMember[] = [];
  for (let i = 0; i < count; i++) {
    const seq = c.u64();
    const n = c.u16();
    if (n === 0) throw new SmfsError('SMFS_ERR_REQUEST', `share ${id}: group ${seq} has no parts`);
    const parts: ShareMember['parts'] = [];
    for (let k = 0; k < n; k++) parts.push({ log: c.u32(), segment: c.u32(), offset: c.u32(), length: c.u32() });
    members.push({ seq, parts });
  }
  const longest = Math.max(...members.map(memberLength));
  const payload = c.bytes(payloadBytes ?? c.left);
  if (payload.length !== longest) throw new SmfsError('SMFS_ERR_REQUEST', `share ${id}: a payload of ${payload.length} bytes, its longest group takes ${longest}`);
  return { id, members, payload };
}

export function shareBytes(s: Share): number {
  return encodeShare(s).reduce((n, b) => n + b.length, 0);
}

// dst ^= src over src's length (dst at least as long), four bytes at a time where both line up.
export function xorInto(dst: Buffer, src: Buffer): void {
  const n = src.length;
  let i = 0;
  if ((dst.byteOffset & 3) === 0 && (src.byteOffset & 3) === 0) {
    const words = n >>> 2;
    const d = new Uint32Array(dst.buffer, dst.byteOffset, words);
    const s = new Uint32Array(src.buffer, src.byteOffset, words);
    for (let w = 0; w < words; w++) d[w] ^= s[w];
    i = words << 2;
  }
  for (; i < n; i++) dst[i] ^= src[i];
}

// A share's payload: the members' bodies XORed into a fresh, zeroed buffer of the longest's size.
export function combine(bodies: Buffer[]): Buffer {
  const out = Buffer.alloc(Math.max(...bodies.map((b) => b.length)));
  for (const b of bodies) xorInto(out, b);
  return out;
}

// The one member of `share` not in `known`, rebuilt from the payload and the others' bodies.
export function solve(share: Share, missing: number, known: (m: ShareMember) => Buffer): Buffer {
  const out = Buffer.from(share.payload);
  for (const m of share.members) if (m.seq !== missing) xorInto(out, known(m));
  return out.subarray(0, memberLength(share.members.find((m) => m.seq === missing)!));
}

export function recordCrc(data: Uint8Array): number {
  return crc32(data);
}

export function clientIdHex(id: Buffer): string {
  return id.toString('hex');
}
