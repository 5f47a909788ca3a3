// The file server's tree in memory, and a draft of an update to it. Committed nodes (those
// with an inode address) are never changed: a draft copies every directory it changes (and
// the path to it), so readers holding the old root keep a consistent tree, and the draft
// collects the addresses its copies and removals make unreachable, to be freed once the
// update is committed. A draft that fails part-way is dropped and nothing has changed.
import type { Address } from '../format';
import { SmfsError } from '../errors';
import { MAX_FILE_BYTES } from './format';
import { joinPath, parsePath } from './path';

export interface FileNode {
  kind: 'file';
  inode?: Address;      // unset while only in a draft
  blocks: Address[];
  size: number;
  mtime: number;
  data?: Buffer;        // a draft's new content, until committed
}

export interface DirNode {
  kind: 'dir';
  inode?: Address;
  blocks: Address[];
  mtime: number;
  entries: Map<string, TreeNode>;
}

export type TreeNode = FileNode | DirNode;

export type Change =
  | { op: 'write'; path: string; data: Buffer }
  | { op: 'mkdir'; path: string; parents?: boolean }
  | { op: 'remove'; path: string; recursive?: boolean }
  | { op: 'rename'; from: string; to: string };

function notFound(parts: string[], upTo: number): SmfsError {
  return new SmfsError('SMFS_ERR_NOT_FOUND', `${joinPath(parts.slice(0, upTo))}: no such file or directory`);
}

// The node at `parts`, read-only.
export function find(root: DirNode, parts: string[]): TreeNode {
  let node: TreeNode = root;
  for (let i = 0; i < parts.length; i++) {
    if (node.kind !== 'dir') throw new SmfsError('SMFS_ERR_NOT_DIR', `${joinPath(parts.slice(0, i))} is a file, not a directory`);
    const next: TreeNode | undefined = node.entries.get(parts[i]);
    if (!next) throw notFound(parts, i + 1);
    node = next;
  }
  return node;
}

export class Draft {
  readonly superseded: Address[] = [];
  changed = false;
  root: DirNode;

  constructor(committed: DirNode, private readonly now: number) {
    this.root = committed;
  }

  apply(c: Change): void {
    switch (c.op) {
      case 'write': return this.write(parsePath(c.path), c.data);
      case 'mkdir': return this.mkdir(parsePath(c.path), c.parents === true);
      case 'remove': return this.remove(parsePath(c.path), c.recursive === true);
      case 'rename': return this.rename(parsePath(c.from), parsePath(c.to));
    }
  }

  private write(parts: string[], data: Buffer): void {
    if (parts.length === 0) throw new SmfsError('SMFS_ERR_IS_DIR', '/ is the root directory, not a file');
    if (data.length > MAX_FILE_BYTES) throw new SmfsError('SMFS_ERR_TOO_LARGE', `${joinPath(parts)}: ${data.length} bytes; a file holds at most ${MAX_FILE_BYTES} (32 MiB)`);
    const { dir, name } = this.parentOf(parts);
    const old = dir.entries.get(name);
    if (old?.kind === 'dir') throw new SmfsError('SMFS_ERR_IS_DIR', `${joinPath(parts)} is a directory`);
    if (old) this.discard(old);
    dir.entries.set(name, { kind: 'file', blocks: [], size: data.length, mtime: this.now, data });
  }

  private mkdir(parts: string[], parents: boolean): void {
    if (parents) {
      let dir = this.root;
      for (let i = 0; i < parts.length; i++) {
        const next = dir.entries.get(parts[i]);
        if (next?.kind === 'file') throw new SmfsError('SMFS_ERR_NOT_DIR', `${joinPath(parts.slice(0, i + 1))} is a file, not a directory`);
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

  // Like rename(2): a file may replace a file, a directory an empty directory.
  private rename(from: string[], to: string[]): void {
    if (from.length === 0 || to.length === 0) throw new SmfsError('SMFS_ERR_PATH', 'the root directory cannot be moved or replaced');
    if (to.length > from.length && from.every((p, i) => p === to[i])) {
      throw new SmfsError('SMFS_ERR_PATH', `cannot move ${joinPath(from)} into itself (${joinPath(to)})`);
    }
    const node = find(this.root, from);
    if (from.length === to.length && from.every((p, i) => p === to[i])) return;
    const target = find(this.root, to.slice(0, -1));
    if (target.kind !== 'dir') throw new SmfsError('SMFS_ERR_NOT_DIR', `${joinPath(to.slice(0, -1))} is a file, not a directory`);
    const existing = target.entries.get(to[to.length - 1]);
    if (existing) {
      if (node.kind === 'file' && existing.kind === 'dir') throw new SmfsError('SMFS_ERR_IS_DIR', `${joinPath(to)} is a directory; a file cannot replace it`);
      if (node.kind === 'dir' && existing.kind === 'file') throw new SmfsError('SMFS_ERR_NOT_DIR', `${joinPath(to)} is a file; a directory cannot replace it`);
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
      if (next.kind !== 'dir') throw new SmfsError('SMFS_ERR_NOT_DIR', `${joinPath(parts.slice(0, i + 1))} is a file, not a directory`);
      const mine = this.own(next);
      dir.entries.set(parts[i], mine);
      dir = mine;
    }
    return dir;
  }

  private own(dir: DirNode): DirNode {
    if (!dir.inode) return dir;
    this.superseded.push(dir.inode, ...dir.blocks);
    return { kind: 'dir', blocks: [], mtime: this.now, entries: new Map(dir.entries) };
  }

  private emptyDir(): DirNode {
    return { kind: 'dir', blocks: [], mtime: this.now, entries: new Map() };
  }

  // Everything committed under `node` becomes unreachable.
  private discard(node: TreeNode): void {
    if (node.inode) this.superseded.push(node.inode, ...node.blocks);
    if (node.kind === 'dir') for (const child of node.entries.values()) this.discard(child);
  }
}
