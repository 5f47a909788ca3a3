// The file server's requests (docs/smfs-files.md, "File server protocol"), in the frames of
// wire.ts. A change's body is the same alone (ops write, mkdir, remove, rename, make, patch) and
// inside a group or a commit, where a u8 op number goes before each.
import { SmfsError } from '../errors';
import { encodeText, readText } from '../text';
import type { Cursor } from '../wire';
import { LEVEL_CODES, encodeU32, encodeU64 } from '../wire';
import type { AckLevel } from '../mirror';
import { TYPE_CODE } from './format';
import type { NodeType, Time } from './format';
import type { Change, Extent } from './tree';

export const FILES_PORT = 7612;

export const FileOp = {
  write: 1,
  read: 2,
  list: 3,
  mkdir: 4,
  remove: 5,
  rename: 6,
  group: 7,
  stat: 8,
  // Version 2 (for mounts): nodes with attributes, changes in place, ranges, the whole tree.
  make: 9,
  patch: 10,
  readRange: 11,
  tree: 12,
  statfs: 13,
  commit: 14,
  // Tagged mounts: the file server's update, its storage server's role and mirrored-through
  // watermark (a mount polls it while it keeps commits, and asks it of each site after a failure).
  tagState: 15,
} as const;

// A commit's level: the storage server's levels, and 'tagged' (code 4, op commit only): written
// at 'local', answered with the group's sequence number and the mirrored-through watermark, the
// mount keeping the changes until the watermark passes it.
export type FileLevel = AckLevel | 'tagged';
export const TAGGED_LEVEL_CODE = 4;

export const CHANGE_OPS: readonly number[] = [FileOp.write, FileOp.mkdir, FileOp.remove, FileOp.rename, FileOp.make, FileOp.patch];
const FLAG = { parents: 1, recursive: 1 } as const;
// Which fields of a patch are set.
export const PATCH_FLAGS = { mode: 1, uid: 2, gid: 4, mtime: 8, content: 16 } as const;
const PATCH_ALL = 31;
const TYPE_OF: Record<number, NodeType | undefined> = { 1: 'file', 2: 'dir', 3: 'symlink' };

export function readPath(c: Cursor): string {
  return readText(c, 'a path', 'SMFS_ERR_PATH');
}

export function changeOp(change: Change): number {
  return FileOp[change.op];
}

function encodeTime(t: Time): Buffer {
  const b = Buffer.alloc(12);
  b.writeBigUInt64BE(BigInt(Math.max(0, Math.floor(t.s))), 0);
  b.writeUInt32BE(t.ns, 8);
  return b;
}

function readTime(c: Cursor): Time {
  const s = c.u64();
  const ns = c.u32();
  if (ns >= 1e9) throw new SmfsError('SMFS_ERR_REQUEST', `a time with ${ns} nanoseconds`);
  return { s, ns };
}

function encodeU8(v: number): Buffer {
  return Buffer.of(v);
}

export function encodeChange(change: Change): Uint8Array[] {
  switch (change.op) {
    case 'write': return [encodeText(change.path), encodeU32(change.data.length), change.data];
    case 'mkdir': return [encodeText(change.path), Buffer.of(change.parents ? FLAG.parents : 0)];
    case 'remove': return [encodeText(change.path), Buffer.of(change.recursive ? FLAG.recursive : 0)];
    case 'rename': return [encodeText(change.from), encodeText(change.to)];
    case 'make': return [
      encodeText(change.path), encodeU8(TYPE_CODE[change.type]), encodeU32(change.mode), encodeU32(change.uid), encodeU32(change.gid),
      encodeTime(change.mtime), encodeText(change.target ?? ''),
    ];
    case 'patch': {
      const flags = (change.mode !== undefined ? PATCH_FLAGS.mode : 0) | (change.uid !== undefined ? PATCH_FLAGS.uid : 0)
        | (change.gid !== undefined ? PATCH_FLAGS.gid : 0) | (change.mtime !== undefined ? PATCH_FLAGS.mtime : 0) | (change.content ? PATCH_FLAGS.content : 0);
      const out: Uint8Array[] = [encodeText(change.path), encodeU8(flags), encodeU32(change.mode ?? 0), encodeU32(change.uid ?? 0), encodeU32(change.gid ?? 0),
        encodeTime(change.mtime ?? { s: 0, ns: 0 })];
      if (change.content) {
        out.push(encodeU64(change.content.keep), encodeU64(change.content.size), encodeU32(change.content.extents.length));
        for (const e of change.content.extents) out.push(encodeU64(e.offset), encodeU32(e.data.length), e.data);
      }
      return out;
    }
  }
}

function flags(c: Cursor, known: number): number {
  const f = c.u8();
  if ((f & ~known) !== 0) throw new SmfsError('SMFS_ERR_REQUEST', `unknown flags ${f}`);
  return f;
}

export function readChange(op: number, c: Cursor): Change {
  switch (op) {
    case FileOp.write: {
      const path = readPath(c);
      return { op: 'write', path, data: c.bytes(c.u32()) };
    }
    case FileOp.mkdir: {
      const path = readPath(c);
      return { op: 'mkdir', path, parents: flags(c, FLAG.parents) !== 0 };
    }
    case FileOp.remove: {
      const path = readPath(c);
      return { op: 'remove', path, recursive: flags(c, FLAG.recursive) !== 0 };
    }
    case FileOp.rename: {
      const from = readPath(c);
      return { op: 'rename', from, to: readPath(c) };
    }
    case FileOp.make: {
      const path = readPath(c);
      const code = c.u8();
      const type = TYPE_OF[code];
      if (!type) throw new SmfsError('SMFS_ERR_REQUEST', `make: unknown type ${code} (1 file, 2 directory, 3 symlink)`);
      const mode = c.u32();
      const uid = c.u32();
      const gid = c.u32();
      const mtime = readTime(c);
      const target = readText(c, 'a symlink target', 'SMFS_ERR_PATH');
      if (type !== 'symlink' && target !== '') throw new SmfsError('SMFS_ERR_REQUEST', `make: a ${type} has no target`);
      return { op: 'make', path, type, mode, uid, gid, mtime, ...(type === 'symlink' ? { target } : {}) };
    }
    case FileOp.patch: {
      const path = readPath(c);
      const f = flags(c, PATCH_ALL);
      const mode = c.u32();
      const uid = c.u32();
      const gid = c.u32();
      const mtime = readTime(c);
      const change: Change = { op: 'patch', path };
      if (f & PATCH_FLAGS.mode) change.mode = mode;
      if (f & PATCH_FLAGS.uid) change.uid = uid;
      if (f & PATCH_FLAGS.gid) change.gid = gid;
      if (f & PATCH_FLAGS.mtime) change.mtime = mtime;
      if (f & PATCH_FLAGS.content) {
        const keep = c.u64();
        const size = c.u64();
        const n = c.u32();
        if (n > c.left / 12) throw new SmfsError('SMFS_ERR_FRAME', `patch: ${n} extents cannot fit in ${c.left} bytes`);
        const extents: Extent[] = [];
        for (let i = 0; i < n; i++) {
          const offset = c.u64();
          extents.push({ offset, data: c.bytes(c.u32()) });
        }
        change.content = { keep, size, extents };
      }
      return change;
    }
    default:
      throw new SmfsError('SMFS_ERR_FRAME', `op ${op} is not a change; a group holds ${CHANGE_OPS.join(', ')} (write, mkdir, remove, rename, make, patch)`);
  }
}

// A commit's level byte: 0 the storage server's default, else LEVEL_CODES.
export function encodeLevel(level: FileLevel | undefined): Buffer {
  return Buffer.of(level === undefined ? 0 : level === 'tagged' ? TAGGED_LEVEL_CODE : LEVEL_CODES[level]);
}

export function readLevel(c: Cursor): FileLevel | undefined {
  const code = c.u8();
  if (code === 0) return undefined;
  if (code === TAGGED_LEVEL_CODE) return 'tagged';
  const level = Object.entries(LEVEL_CODES).find(([, v]) => v === code)?.[0];
  if (!level) throw new SmfsError('SMFS_ERR_REQUEST', `unknown acknowledgement level ${code}; known: 0 (the storage server's default), ${Object.entries(LEVEL_CODES).map(([k, v]) => `${v} (${k})`).join(', ')}, ${TAGGED_LEVEL_CODE} (tagged)`);
  return level as AckLevel;
}
