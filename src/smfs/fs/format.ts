// How the file server keeps a tree in its log (docs/smfs-files.md, "On the log"). Three kinds
// of record, big-endian:
//
//   data block   the file's bytes, 4 KiB a block (the last one shorter; an empty file has none)
//   dir block    0 u32 magic "SMDB"  4 u16 entries k  6 k x (u8 name length, name UTF-8,
//                12-byte pointer to the entry's inode); whole entries only, at most 4 KiB
//   inode v2     0 u32 magic "SMIN"  4 u8 version (2)  5 u8 type (1 file, 2 dir, 3 symlink)
//                6 u8 flags (1: root)  7 u8 0  8 u64 size (file: bytes; dir: entries;
//                symlink: bytes of its target)  16 u64 mtime seconds  24 u32 mtime nanoseconds
//               28 u32 mode (permission bits, 07777)  32 u32 uid  36 u32 gid
//               40 u64 update that wrote it  48 u32 blocks n  52 n x 12-byte pointer, in order;
//                a symlink has no blocks and its target (UTF-8) after the header
//   inode v1     (read, no longer written) 0 magic  4 u8 version (1)  5 type  6 flags  7 0
//                8 u64 size  16 u64 mtime (ms)  24 u64 update  32 u32 blocks n  36 pointers;
//                read with mode 0644 (file) or 0755 (directory), uid and gid 0
//
// A pointer is an address (u32 log, u32 segment, u32 offset), or, for a record of the same
// update, log 0xFFFFFFFF (no log has that id), segment 0, and how many bytes before the
// record holding the pointer the target's record starts; or, in a version 2 file inode, a hole
// (log 0xFFFFFFFE, 0, 0): a block of zeros with no record. An update's records are one group in
// one log: the storage server writes them back to back in one segment, in the order given,
// each behind an 8-byte header, so those distances are known before the storage server has
// given out any address. Children always precede their parents in a group, so a distance is
// never negative. The file server checks the addresses of every group it commits against it.
import type { Address } from '../format';
import { SmfsError } from '../errors';

export const BLOCK_BYTES = 4096;
// An inode names every block of its file directly: a whole-file write is one append, so a
// file's size is bounded by a group (64 MiB of records) anyway, and indirect blocks would only
// add records to every write. 8192 blocks: files up to 32 MiB, inodes up to 96 KiB.
export const MAX_BLOCKS = 8192;
export const MAX_FILE_BYTES = BLOCK_BYTES * MAX_BLOCKS;
export const MAX_NAME_BYTES = 255;
export const MAX_PATH_BYTES = 4096;

export const INODE_MAGIC = 0x534d494e; // "SMIN"
export const DIR_BLOCK_MAGIC = 0x534d4442; // "SMDB"
export const INODE_VERSION = 2;
export const INODE_HEADER = 52;
const INODE_V1_HEADER = 36;
// A symlink's target, as PATH_MAX allows.
export const MAX_TARGET_BYTES = 4095;
export const MODE_BITS = 0o7777;
export const DIR_BLOCK_HEADER = 6;
const POINTER_BYTES = 12;
const RELATIVE = 0xffffffff;
// A block of zeros that has no record (a file extended by truncate or fallocate): log
// 0xFFFFFFFE, segment 0, offset 0 in the inode. No log has that id either.
export const HOLE_LOG = 0xfffffffe;
export const HOLE: Address = Object.freeze({ log: HOLE_LOG, segment: 0, offset: 0 });

export function isHole(a: Address): boolean {
  return a.log === HOLE_LOG;
}

export type NodeType = 'file' | 'dir' | 'symlink';
export const TYPE_CODE: Record<NodeType, number> = { file: 1, dir: 2, symlink: 3 };
const TYPE_OF: Record<number, NodeType | undefined> = { 1: 'file', 2: 'dir', 3: 'symlink' };

// A time as POSIX keeps it: seconds since the epoch and nanoseconds within the second.
export interface Time {
  s: number;
  ns: number;
}

export function timeNow(): Time {
  const ms = Date.now();
  return { s: Math.floor(ms / 1000), ns: (ms % 1000) * 1e6 };
}

export function timeFromMs(ms: number): Time {
  return { s: Math.floor(ms / 1000), ns: (ms % 1000) * 1e6 };
}

export function timeToMs(t: Time): number {
  return t.s * 1000 + Math.floor(t.ns / 1e6);
}

export const DEFAULT_MODE: Record<NodeType, number> = { file: 0o644, dir: 0o755, symlink: 0o777 };

// An absolute address, or `back` bytes before the record that holds the pointer.
export type Pointer = { address: Address } | { back: number };

export interface Inode {
  type: NodeType;
  root: boolean;
  size: number;
  mtime: Time;
  mode: number;
  uid: number;
  gid: number;
  update: number;
  blocks: Address[];
  target?: string;    // a symlink's
}

export interface DirEntry {
  name: string;
  inode: Address;
}

function corrupt(at: Address, why: string): SmfsError {
  return new SmfsError('SMFS_ERR_CORRUPT', `the record at ${at.log}:${at.segment}:${at.offset} ${why}`);
}

function writePointer(b: Buffer, at: number, p: Pointer): void {
  if ('back' in p) {
    b.writeUInt32BE(RELATIVE, at);
    b.writeUInt32BE(0, at + 4);
    b.writeUInt32BE(p.back, at + 8);
  } else {
    b.writeUInt32BE(p.address.log, at);
    b.writeUInt32BE(p.address.segment, at + 4);
    b.writeUInt32BE(p.address.offset, at + 8);
  }
}

function readPointer(b: Buffer, at: number, self: Address): Address {
  const log = b.readUInt32BE(at);
  const segment = b.readUInt32BE(at + 4);
  const offset = b.readUInt32BE(at + 8);
  if (log === HOLE_LOG) {
    if (segment !== 0 || offset !== 0) throw corrupt(self, `holds a hole pointer with ${segment}:${offset}`);
    return HOLE;
  }
  if (log !== RELATIVE) return { log, segment, offset };
  if (segment !== 0 || offset === 0 || offset > self.offset) throw corrupt(self, `holds a relative pointer of ${offset} bytes back`);
  return { log: self.log, segment: self.segment, offset: self.offset - offset };
}

export function encodeInode(i: Omit<Inode, 'blocks'> & { blocks: Pointer[] }): Buffer {
  const target = i.type === 'symlink' ? Buffer.from(i.target ?? '', 'utf8') : Buffer.alloc(0);
  const b = Buffer.alloc(INODE_HEADER + POINTER_BYTES * i.blocks.length + target.length);
  b.writeUInt32BE(INODE_MAGIC, 0);
  b[4] = INODE_VERSION;
  b[5] = TYPE_CODE[i.type];
  b[6] = i.root ? 1 : 0;
  b.writeBigUInt64BE(BigInt(i.type === 'symlink' ? target.length : i.size), 8);
  b.writeBigUInt64BE(BigInt(i.mtime.s), 16);
  b.writeUInt32BE(i.mtime.ns, 24);
  b.writeUInt32BE(i.mode & MODE_BITS, 28);
  b.writeUInt32BE(i.uid >>> 0, 32);
  b.writeUInt32BE(i.gid >>> 0, 36);
  b.writeBigUInt64BE(BigInt(i.update), 40);
  b.writeUInt32BE(i.blocks.length, 48);
  i.blocks.forEach((p, k) => writePointer(b, INODE_HEADER + POINTER_BYTES * k, p));
  target.copy(b, INODE_HEADER + POINTER_BYTES * i.blocks.length);
  return b;
}

// An inode read from `self` (version 1 or 2), its pointers resolved to addresses.
export function decodeInode(b: Buffer, self: Address): Inode {
  if (b.length < INODE_V1_HEADER || b.readUInt32BE(0) !== INODE_MAGIC) throw corrupt(self, 'is not an inode');
  const version = b[4];
  if (version !== 1 && version !== INODE_VERSION) throw corrupt(self, `is an inode of version ${version}; this build reads 1 and ${INODE_VERSION}`);
  const type = TYPE_OF[b[5]];
  if (!type || b[6] > 1 || (version === 1 && type === 'symlink')) throw corrupt(self, `is an inode of unknown type ${b[5]} or flags ${b[6]}`);
  const header = version === 1 ? INODE_V1_HEADER : INODE_HEADER;
  if (b.length < header) throw corrupt(self, `is an inode of ${b.length} bytes, short of its header`);
  const n = b.readUInt32BE(header - 4);
  const size = Number(b.readBigUInt64BE(8));
  const extra = type === 'symlink' ? size : 0;
  if (n > MAX_BLOCKS || b.length !== header + POINTER_BYTES * n + extra) throw corrupt(self, `is an inode of ${b.length} bytes naming ${n} blocks`);
  if (type === 'file' && (size > n * BLOCK_BYTES || size <= (n - 1) * BLOCK_BYTES)) throw corrupt(self, `is a file inode of ${size} bytes in ${n} blocks`);
  if (type === 'symlink' && (n !== 0 || size > MAX_TARGET_BYTES)) throw corrupt(self, `is a symlink inode with ${n} blocks and a target of ${size} bytes`);
  const blocks: Address[] = [];
  for (let k = 0; k < n; k++) blocks.push(readPointer(b, header + POINTER_BYTES * k, self));
  const common = { type, root: b[6] === 1, size, blocks };
  if (version === 1) {
    return { ...common, mtime: timeFromMs(Number(b.readBigUInt64BE(16))), mode: DEFAULT_MODE[type], uid: 0, gid: 0, update: Number(b.readBigUInt64BE(24)) };
  }
  const ns = b.readUInt32BE(24);
  if (ns >= 1e9) throw corrupt(self, `is an inode whose mtime has ${ns} nanoseconds`);
  return {
    ...common, mtime: { s: Number(b.readBigUInt64BE(16)), ns }, mode: b.readUInt32BE(28) & MODE_BITS, uid: b.readUInt32BE(32), gid: b.readUInt32BE(36),
    update: Number(b.readBigUInt64BE(40)),
    ...(type === 'symlink' ? { target: b.toString('utf8', header, header + size) } : {}),
  };
}

export function entryBytes(name: string): number {
  return 1 + Buffer.byteLength(name, 'utf8') + POINTER_BYTES;
}

// Splits a directory's entries (in order) into the groups that fill its blocks.
export function packEntries<T extends { name: string }>(entries: T[]): T[][] {
  const blocks: T[][] = [];
  let current: T[] = [];
  let used = DIR_BLOCK_HEADER;
  for (const e of entries) {
    const n = entryBytes(e.name);
    if (used + n > BLOCK_BYTES) {
      blocks.push(current);
      current = [];
      used = DIR_BLOCK_HEADER;
    }
    current.push(e);
    used += n;
  }
  if (current.length > 0) blocks.push(current);
  return blocks;
}

export function encodeDirBlock(entries: { name: string; inode: Pointer }[]): Buffer {
  const b = Buffer.alloc(entries.reduce((n, e) => n + entryBytes(e.name), DIR_BLOCK_HEADER));
  b.writeUInt32BE(DIR_BLOCK_MAGIC, 0);
  b.writeUInt16BE(entries.length, 4);
  let at = DIR_BLOCK_HEADER;
  for (const e of entries) {
    const name = Buffer.from(e.name, 'utf8');
    b[at] = name.length;
    name.copy(b, at + 1);
    writePointer(b, at + 1 + name.length, e.inode);
    at += 1 + name.length + POINTER_BYTES;
  }
  return b;
}

export function decodeDirBlock(b: Buffer, self: Address): DirEntry[] {
  if (b.length < DIR_BLOCK_HEADER || b.length > BLOCK_BYTES || b.readUInt32BE(0) !== DIR_BLOCK_MAGIC) throw corrupt(self, 'is not a directory block');
  const out: DirEntry[] = [];
  let at = DIR_BLOCK_HEADER;
  for (let k = b.readUInt16BE(4); k > 0; k--) {
    if (at + 1 > b.length || at + 1 + b[at] + POINTER_BYTES > b.length) throw corrupt(self, 'is a directory block whose entries overrun it');
    const name = b.toString('utf8', at + 1, at + 1 + b[at]);
    out.push({ name, inode: readPointer(b, at + 1 + b[at], self) });
    at += 1 + b[at] + POINTER_BYTES;
  }
  if (at !== b.length) throw corrupt(self, 'is a directory block with bytes after its entries');
  return out;
}
