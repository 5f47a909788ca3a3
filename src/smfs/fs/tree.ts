// The file server's tree in memory, and a draft of an update to it. Committed nodes (those
// with an inode address) are never changed: a draft copies every node it changes (and the
// path to it), so readers holding the old root keep a consistent tree, and the draft
// collects the addresses its copies and removals make unreachable, to be freed once the
// update is committed. A draft that fails part-way is dropped and nothing has changed.
import type { Address } from '../format';
import { SmfsError } from '../errors';
import { BLOCK_BYTES, DEFAULT_MODE, HOLE, isHole, MAX_FILE_BYTES, MAX_TARGET_BYTES, MODE_BITS } from './format';
import type { NodeType, Time } from './format';
import { joinPath, parsePath } from './path';

export interface NodeAttrs {
  mode: number;         // permission bits (07777)
  uid: number;
  gid: number;
  mtime: Time;
}

export interface FileNode extends NodeAttrs {
  kind: 'file';
  inode?: Address;      // unset while only in a draft
  blocks: Address[];
  size: number;
  // A draft's content, block by block: a committed block kept as it is, or new bytes.
  draft?: (Address | Buffer)[];
}

export interface DirNode extends NodeAttrs {
  kind: 'dir';
  inode?: Address;
  blocks: Address[];
  entries: Map<string, TreeNode>;
}

export interface LinkNode extends NodeAttrs {
  kind: 'symlink';
  inode?: Address;
  blocks: Address[];    // always empty: the target is in the inode
  target: string;
}

export type TreeNode = FileNode | DirNode | LinkNode;

// A byte range of new content for `patch`.
export interface Extent {
  offset: number;
  data: Buffer;
}

// A file's new content relative to its committed one: its first `keep` bytes stay (bytes past
// them read as zeros), then the extents are written in order, and the file is `size` bytes long.
export interface ContentPatch {
  keep: number;
  size: number;
  extents: Extent[];
}

export type Change =
  | { op: 'write'; path: string; data: Buffer }
  | { op: 'mkdir'; path: string; parents?: boolean }
  | { op: 'remove'; path: string; recursive?: boolean }
  | { op: 'rename'; from: string; to: string }
  // Protocol version 2: a new file, directory or symlink with its attributes (EXISTS if the
  // path is taken), and a node's attributes and a file's content changed in place.
  | { op: 'make'; path: string; type: NodeType; mode: number; uid: number; gid: number; mtime: Time; target?: string }
  | { op: 'patch'; path: string; mode?: number; uid?: number; gid?: number; mtime?: Time; content?: ContentPatch };

// Reads a committed block (for a patch that keeps part of one).
export type BlockReader = (a: Address) => Promise<Buffer>;

function notFound(parts: string[], upTo: number): SmfsError {
  return new SmfsError('SMFS_ERR_NOT_FOUND', `${joinPath(parts.slice(0, upTo))}: no such file or directory`);
}

function notDir(parts: string[], upTo: number): SmfsError {
  return new SmfsError('SMFS_ERR_NOT_DIR', `${joinPath(parts.slice(0, upTo))} is not a directory`);
}

// The node at `parts`, read-only. Symlinks are not followed: one on the way is not a directory.
export function find(root: DirNode, parts: string[]): TreeNode {
  let node: TreeNode = root;
  for (let i = 0; i < parts.length; i++) {
    if (node.kind !== 'dir') throw notDir(parts, i);
    const next: TreeNode | undefined = node.entries.get(parts[i]);
    if (!next) throw notFound(parts, i + 1);
    node = next;
  }
  return node;
}

function isAddress(b: Address | Buffer): b is Address {
  return !Buffer.isBuffer(b);
}

// A committed block that has a record (a hole has none to free).
function isRecord(b: Address | Buffer): b is Address {
  return !Buffer.isBuffer(b) && !isHole(b);
}

function blockLength(size: number, i: number): number {
  return Math.min(BLOCK_BYTES, size - i * BLOCK_BYTES);
}

function splitBlocks(data: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0; at < data.length; at += BLOCK_BYTES) out.push(data.subarray(at, at + BLOCK_BYTES));
  return out;
}

export class Draft {
  readonly superseded: Address[] = [];
  changed = false;
  root: DirNode;
  private readonly now: Time;

  constructor(committed: DirNode, now: Time | number, private readonly readBlock: BlockReader = () => Promise.reject(new SmfsError('SMFS_ERR_REQUEST', 'no block reader'))) {
    this.root = committed;
    this.now = typeof now === 'number' ? { s: Math.floor(now / 1000), ns: (now % 1000) * 1e6 } : now;
  }

  async apply(c: Change): Promise<void> {
    switch (c.op) {
      case 'write': return this.write(parsePath(c.path), c.data);
      case 'mkdir': return this.mkdir(parsePath(c.path), c.parents === true);
      case 'remove': return this.remove(parsePath(c.path), c.recursive === true);
      case 'rename': return this.rename(parsePath(c.from), parsePath(c.to));
      case 'make': return this.make(parsePath(c.path), c);
      case 'patch': return this.patch(parsePath(c.path), c);
    }
  }

  private write(parts: string[], data: Buffer): void {
    if (parts.length === 0) throw new SmfsError('SMFS_ERR_IS_DIR', '/ is the root directory, not a file');
    if (data.length > MAX_FILE_BYTES) throw new SmfsError('SMFS_ERR_TOO_LARGE', `${joinPath(parts)}: ${data.length} bytes; a file holds at most ${MAX_FILE_BYTES} (32 MiB)`);
    const { dir, name } = this.parentOf(parts);
    const old = dir.entries.get(name);
    if (old?.kind === 'dir') throw new SmfsError('SMFS_ERR_IS_DIR', `${joinPath(parts)} is a directory`);
    if (old) this.discard(old);
    const attrs = old?.kind === 'file' ? { mode: old.mode, uid: old.uid, gid: old.gid } : { mode: DEFAULT_MODE.file, uid: 0, gid: 0 };
    dir.entries.set(name, { kind: 'file', blocks: [], size: data.length, mtime: this.now, ...attrs, draft: splitBlocks(data) });
  }

  private mkdir(parts: string[], parents: boolean): void {
    if (parents) {
      let dir = this.root;
      for (let i = 0; i < parts.length; i++) {
        const next = dir.entries.get(parts[i]);
        if (next && next.kind !== 'dir') throw notDir(parts, i + 1);
        if (!next) return this.makeDirs(parts, i);
        dir = next;
      }
      return; // every directory is there already: nothing to write
    }
    if (parts.length === 0) throw new SmfsError('SMFS_ERR_EXISTS', '/ exists (the root)');
    const { dir, name } = this.parentOf(parts);
    if (dir.entries.has(name)) throw new SmfsError('SMFS_ERR_EXISTS', `${joinPath(parts)} exists`);
    dir.entries.set(name, this.emptyDir());
  }

  // Creates parts[from..] under the existing directory parts[..from].
  private makeDirs(parts: string[], from: number): void {
    let dir = this.writable(parts.slice(0, from));
    for (let i = from; i < parts.length; i++) {
      const made = this.emptyDir();
      dir.entries.set(parts[i], made);
      dir = made;
    }
  }

  private make(parts: string[], c: Extract<Change, { op: 'make' }>): void {
    if (parts.length === 0) throw new SmfsError('SMFS_ERR_EXISTS', '/ exists (the root)');
    const attrs = { mode: c.mode & MODE_BITS, uid: c.uid >>> 0, gid: c.gid >>> 0, mtime: c.mtime };
    let node: TreeNode;
    if (c.type === 'file') node = { kind: 'file', blocks: [], size: 0, draft: [], ...attrs };
    else if (c.type === 'dir') node = { kind: 'dir', blocks: [], entries: new Map(), ...attrs };
    else {
      const target = c.target ?? '';
      const bytes = Buffer.byteLength(target, 'utf8');
      if (bytes === 0 || bytes > MAX_TARGET_BYTES || target.includes('\0')) {
        throw new SmfsError('SMFS_ERR_PATH', `${joinPath(parts)}: a symlink's target has 1 to ${MAX_TARGET_BYTES} bytes and no NUL (got ${bytes})`);
      }
      node = { kind: 'symlink', blocks: [], target, ...attrs };
    }
    const { dir, name } = this.parentOf(parts);
    if (dir.entries.has(name)) throw new SmfsError('SMFS_ERR_EXISTS', `${joinPath(parts)} exists`);
    dir.entries.set(name, node);
  }

  // Attributes of any node, and a file's content, changed in place.
  private async patch(parts: string[], c: Extract<Change, { op: 'patch' }>): Promise<void> {
    const attrs = (n: TreeNode) => {
      if (c.mode !== undefined) n.mode = c.mode & MODE_BITS;
      if (c.uid !== undefined) n.uid = c.uid >>> 0;
      if (c.gid !== undefined) n.gid = c.gid >>> 0;
      if (c.mtime !== undefined) n.mtime = c.mtime;
    };
    const current = find(this.root, parts);
    if (c.content && current.kind !== 'file') {
      throw new SmfsError(current.kind === 'dir' ? 'SMFS_ERR_IS_DIR' : 'SMFS_ERR_REQUEST', `${joinPath(parts)} is a ${current.kind === 'dir' ? 'directory' : 'symlink'}: it has no content to patch`);
    }
    if (current.kind === 'dir') {
      attrs(this.writable(parts));
      return;
    }
    const content = c.content && current.kind === 'file' ? await this.patchContent(joinPath(parts), current, c.content) : undefined;
    const { dir, name } = this.parentOf(parts);
    let node = dir.entries.get(name)!;
    if (content && node.kind === 'file') {
      // The committed blocks the patch does not keep become unreachable.
      const kept = new Set(content.draft.filter(isAddress));
      this.superseded.push(...(node.draft ?? node.blocks).filter((b): b is Address => isRecord(b) && !kept.has(b)));
    }
    if (node.inode) {
      // A copy of the committed node: its inode goes.
      this.superseded.push(node.inode);
      node = node.kind === 'file'
        ? { ...node, inode: undefined, blocks: [], draft: [...node.blocks] }
        : { ...node, inode: undefined, blocks: [] };
      dir.entries.set(name, node);
    }
    if (content && node.kind === 'file') {
      node.draft = content.draft;
      node.size = content.size;
    }
    attrs(node);
  }

  private async patchContent(path: string, file: FileNode, p: ContentPatch): Promise<{ draft: (Address | Buffer)[]; size: number }> {
    const B = BLOCK_BYTES;
    const old: (Address | Buffer)[] = file.draft ?? file.blocks;
    const size = p.size;
    if (!Number.isSafeInteger(size) || size < 0 || size > MAX_FILE_BYTES) throw new SmfsError('SMFS_ERR_TOO_LARGE', `${path}: ${size} bytes; a file holds at most ${MAX_FILE_BYTES} (32 MiB)`);
    const keep = Math.min(p.keep, file.size, size);
    const count = Math.ceil(size / B);
    // Per block: the extents touching it, and the one that covers it whole, if only one touches it.
    const touches = new Map<number, Extent[]>();
    for (const e of p.extents) {
      if (e.data.length === 0) continue;
      if (e.offset < 0 || e.offset + e.data.length > size) throw new SmfsError('SMFS_ERR_REQUEST', `${path}: an extent of ${e.data.length} bytes at ${e.offset} ends past the new size ${size}`);
      for (let i = Math.floor(e.offset / B); i <= Math.floor((e.offset + e.data.length - 1) / B); i++) {
        const list = touches.get(i);
        if (list) list.push(e);
        else touches.set(i, [e]);
      }
    }
    const draft: (Address | Buffer)[] = new Array(count);
    const needOld: number[] = [];
    for (let i = 0; i < count; i++) {
      const start = i * B;
      const length = blockLength(size, i);
      const list = touches.get(i);
      if (list && list.length === 1 && list[0].offset <= start && list[0].offset + list[0].data.length >= start + length) {
        draft[i] = list[0].data.subarray(start - list[0].offset, start - list[0].offset + length);
      } else if (!list && i < old.length && start + length <= keep && blockLength(file.size, i) === length) {
        draft[i] = old[i]; // the committed block as it is
      } else if (start < keep && i < old.length && !(isAddress(old[i]) && isHole(old[i] as Address))) {
        needOld.push(i);
      } else if (!list) {
        draft[i] = HOLE; // zeros: no record
      } else {
        draft[i] = this.overlay(Buffer.alloc(length), start, list);
      }
    }
    const bases = await Promise.all(needOld.map(async (i) => {
      const b = old[i];
      return Buffer.isBuffer(b) ? b : this.readBlock(b);
    }));
    needOld.forEach((i, k) => {
      const start = i * B;
      const block = Buffer.alloc(blockLength(size, i));
      bases[k].copy(block, 0, 0, Math.min(block.length, keep - start, bases[k].length));
      draft[i] = this.overlay(block, start, touches.get(i));
    });
    return { draft, size };
  }

  private overlay(block: Buffer, start: number, extents: Extent[] | undefined): Buffer {
    for (const e of extents ?? []) {
      const from = Math.max(start, e.offset);
      const to = Math.min(start + block.length, e.offset + e.data.length);
      e.data.copy(block, from - start, from - e.offset, to - e.offset);
    }
    return block;
  }

  private remove(parts: string[], recursive: boolean): void {
    if (parts.length === 0) throw new SmfsError('SMFS_ERR_PATH', 'the root directory cannot be removed');
    const { dir, name } = this.parentOf(parts);
    const node = dir.entries.get(name);
    if (!node) throw notFound(parts, parts.length);
    if (node.kind === 'dir' && node.entries.size > 0 && !recursive) {
      throw new SmfsError('SMFS_ERR_NOT_EMPTY', `${joinPath(parts)} is a directory with ${node.entries.size} entries; remove them first, or remove recursively (-r)`);
    }
    this.discard(node);
    dir.entries.delete(name);
  }

  // Like rename(2): a file or symlink may replace one, a directory an empty directory.
  private rename(from: string[], to: string[]): void {
    if (from.length === 0 || to.length === 0) throw new SmfsError('SMFS_ERR_PATH', 'the root directory cannot be moved or replaced');
    if (to.length > from.length && from.every((p, i) => p === to[i])) {
      throw new SmfsError('SMFS_ERR_PATH', `cannot move ${joinPath(from)} into itself (${joinPath(to)})`);
    }
    const node = find(this.root, from);
    if (from.length === to.length && from.every((p, i) => p === to[i])) return;
    const target = find(this.root, to.slice(0, -1));
    if (target.kind !== 'dir') throw notDir(to, to.length - 1);
    const existing = target.entries.get(to[to.length - 1]);
    if (existing) {
      if (node.kind !== 'dir' && existing.kind === 'dir') throw new SmfsError('SMFS_ERR_IS_DIR', `${joinPath(to)} is a directory; a file cannot replace it`);
      if (node.kind === 'dir' && existing.kind !== 'dir') throw new SmfsError('SMFS_ERR_NOT_DIR', `${joinPath(to)} is a file; a directory cannot replace it`);
      if (existing.kind === 'dir' && existing.entries.size > 0) throw new SmfsError('SMFS_ERR_NOT_EMPTY', `${joinPath(to)} is a directory with entries; a directory replaces only an empty one`);
    }
    const source = this.parentOf(from);
    source.dir.entries.delete(source.name);
    const dest = this.parentOf(to);
    if (existing) this.discard(existing);
    dest.dir.entries.set(dest.name, node);
  }

  private parentOf(parts: string[]): { dir: DirNode; name: string } {
    return { dir: this.writable(parts.slice(0, -1)), name: parts[parts.length - 1] };
  }

  // The draft's own copy of the directory at `parts`, copying the path to it as needed.
  private writable(parts: string[]): DirNode {
    this.changed = true;
    this.root = this.own(this.root);
    let dir = this.root;
    for (let i = 0; i < parts.length; i++) {
      const next = dir.entries.get(parts[i]);
      if (!next) throw notFound(parts, i + 1);
      if (next.kind !== 'dir') throw notDir(parts, i + 1);
      const mine = this.own(next);
      dir.entries.set(parts[i], mine);
      dir = mine;
    }
    return dir;
  }

  private own(dir: DirNode): DirNode {
    if (!dir.inode) return dir;
    this.superseded.push(dir.inode, ...dir.blocks);
    return { kind: 'dir', blocks: [], mtime: this.now, mode: dir.mode, uid: dir.uid, gid: dir.gid, entries: new Map(dir.entries) };
  }

  private emptyDir(): DirNode {
    return { kind: 'dir', blocks: [], mtime: this.now, mode: DEFAULT_MODE.dir, uid: 0, gid: 0, entries: new Map() };
  }

  // Everything committed under `node` becomes unreachable.
  private discard(node: TreeNode): void {
    if (node.inode) this.superseded.push(node.inode, ...node.blocks.filter(isRecord));
    else if (node.kind === 'file' && node.draft) {
      // A draft copy of a committed file: the committed blocks it kept go with it.
      this.superseded.push(...node.draft.filter(isRecord));
    }
    if (node.kind === 'dir') for (const child of node.entries.values()) this.discard(child);
  }
}
