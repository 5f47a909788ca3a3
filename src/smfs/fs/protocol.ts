// The file server's requests (docs/smfs-files.md, "File server protocol"), in the frames of
// wire.ts. A change's body is the same alone (ops write, mkdir, remove, rename) and inside a
// group, where a u8 op number goes before each.
import { SmfsError } from '../errors';
import { encodeText, readText } from '../text';
import type { Cursor } from '../wire';
import { encodeU32 } from '../wire';
import type { Change } from './tree';

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
} as const;

export const CHANGE_OPS: readonly number[] = [FileOp.write, FileOp.mkdir, FileOp.remove, FileOp.rename];
const FLAG = { parents: 1, recursive: 1 } as const;

export function readPath(c: Cursor): string {
  return readText(c, 'a path', 'SMFS_ERR_PATH');
}

export function changeOp(change: Change): number {
  return FileOp[change.op];
}

export function encodeChange(change: Change): Uint8Array[] {
  switch (change.op) {
    case 'write': return [encodeText(change.path), encodeU32(change.data.length), change.data];
    case 'mkdir': return [encodeText(change.path), Buffer.of(change.parents ? FLAG.parents : 0)];
    case 'remove': return [encodeText(change.path), Buffer.of(change.recursive ? FLAG.recursive : 0)];
    case 'rename': return [encodeText(change.from), encodeText(change.to)];
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
    default:
      throw new SmfsError('SMFS_ERR_FRAME', `op ${op} is not a change; a group holds ${CHANGE_OPS.join(', ')} (write, mkdir, remove, rename)`);
  }
}
