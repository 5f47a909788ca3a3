// The mount's view of the tree: every node in memory with its attributes (loaded whole at
// mount time, as the file server keeps it), each file's content as what the file server holds
// (its first `keep` bytes) plus the extents written since the last commit, and where the file
// server has each node as of the last commit that landed (`server`), to read committed bytes
// by path. Changes to the namespace are logged as the file server's changes, in order, with
// what each does to `server` once it lands.
import type { NodeType, Time } from '../fs/format';
import { timeNow } from '../fs/format';
import type { Change } from '../fs/tree';
import type { TreeEntry } from '../fs/volume';
import { Extents } from './extents';

export interface ServerPlace {
  parent: MNode | undefined; // undefined: the root
  name: string;
}

export interface Frozen {
  keep: number;
  size: number;
  dirty: Extents;
  contentDirty: boolean;
  attrsDirty: boolean;
}

export interface MNode {
  ino: number;
  kind: NodeType;
  mode: number;            // permission bits
  uid: number;
  gid: number;
  mtime: Time;
  ctime: Time;
  parent: MNode | undefined;
  name: string;
  linked: boolean;         // reachable from the root
  server: ServerPlace | undefined; // where the file server has it (as of the last landed commit)
  lookups: number;         // the kernel's references (lookup, create, mkdir, ...; less forget)
  opens: number;
  entries: Map<string, MNode> | undefined;  // directories
  subdirs: number;
  target: string | undefined;               // symlinks
  size: number;
  keep: number;            // bytes of the server's content that are still the file's
  dirty: Extents;
  contentDirty: boolean;
  attrsDirty: boolean;
  frozen: Frozen | undefined; // in the commit in flight
}

export interface Logged {
  change: Change;
  land(): void;            // what the change does to `server` places once committed
}

export function pathOf(n: MNode): string {
  const parts: string[] = [];
  for (let x: MNode | undefined = n; x && x.parent; x = x.parent) parts.push(x.name);
  return `/${parts.reverse().join('/')}`;
}

// The node's path at the file server, or undefined if it has none there.
export function serverPathOf(n: MNode): string | undefined {
  const parts: string[] = [];
  let x: MNode | undefined = n;
  while (x) {
    if (!x.server) return undefined;
    if (!x.server.parent) break;
    parts.push(x.server.name);
    x = x.server.parent;
  }
  return `/${parts.reverse().join('/')}`;
}

export class NodeTable {
  readonly byIno = new Map<number, MNode>();
  root: MNode;
  private nextIno = 2;

  constructor(tree: TreeEntry) {
    this.root = this.load(tree, undefined);
  }

  private load(e: TreeEntry, parent: MNode | undefined): MNode {
    const n = this.make(e.type, e.mode, e.uid, e.gid, { s: e.mtime[0], ns: e.mtime[1] }, parent, e.name, parent ? undefined : 1);
    n.server = { parent, name: e.name };
    if (e.type === 'file') {
      n.size = e.size;
      n.keep = e.size;
    }
    if (e.type === 'symlink') n.target = e.target;
    for (const c of e.entries ?? []) {
      const child = this.load(c, n);
      n.entries!.set(c.name, child);
      if (child.kind === 'dir') n.subdirs++;
    }
    return n;
  }

  make(kind: NodeType, mode: number, uid: number, gid: number, mtime: Time, parent: MNode | undefined, name: string, ino?: number): MNode {
    const n: MNode = {
      ino: ino ?? this.nextIno++, kind, mode, uid, gid, mtime, ctime: mtime, parent, name, linked: true, server: undefined,
      lookups: 0, opens: 0, entries: kind === 'dir' ? new Map() : undefined, subdirs: 0, target: undefined,
      size: 0, keep: 0, dirty: new Extents(), contentDirty: false, attrsDirty: false, frozen: undefined,
    };
    this.byIno.set(n.ino, n);
    return n;
  }

  // Forgets a node the kernel no longer knows and no path or handle reaches.
  maybeDrop(n: MNode): boolean {
    if (n.linked || n.lookups > 0 || n.opens > 0 || n === this.root) return false;
    this.byIno.delete(n.ino);
    return true;
  }
}

export function touchDir(dir: MNode, now = timeNow()): void {
  dir.mtime = now;
  dir.ctime = now;
  dir.attrsDirty = true;
}
