// `smfs mount`: the file server's tree as a FUSE file system (docs/smfs-files.md, "Mount").
// The kernel's requests come from the addon's FUSE thread in batches (src/native/fuse.ts); each
// is answered here from the tree in memory (nodes.ts), or through the one FileClient of the
// mount, which speaks the file server's protocol. Writes are kept in memory; a sync (fsync,
// fsyncdir, the interval, memory, unmount) sends every change since the last as ONE commit,
// one update of the file server, one append group, acknowledged at the mount's level. At
// 'tagged' the mount keeps each commit until the mirror has it (kept.ts) and, when its site is
// lost, hands what it keeps to the file server of another site (--sites).
import fs from 'node:fs';
import { SmfsError } from '../errors';
import { FileClient } from '../fs/client';
import { BLOCK_BYTES, MAX_FILE_BYTES, MAX_NAME_BYTES, MAX_TARGET_BYTES, MODE_BITS, timeNow } from '../fs/format';
import type { Time } from '../fs/format';
import type { Change } from '../fs/tree';
import type { VolumeStatfs } from '../fs/volume';
import type { Credential } from '../credentials';
import { formatEndpoint } from '../frame-client';
import type { Endpoint } from '../frame-client';
import type { FileLevel } from '../fs/protocol';
import { fuseAddon } from '../../native/fuse';
import type { FuseAttr, FuseRequest, NativeFuseMount } from '../../native/fuse';
import { Extents } from './extents';
import { KeptCommits, commitBytes } from './kept';
import type { KeptStats } from './kept';
import { E, FsError, errnoOf, fail } from './errno';
import { NodeTable, pathOf, serverPathOf, touchDir } from './nodes';
import type { Logged, MNode } from './nodes';

export interface MountOptions {
  mountpoint: string;
  server: Endpoint;
  credential: Credential;
  level?: FileLevel;           // the file server's storage default when absent
  sites?: Endpoint[];          // tagged: other sites' file servers, for after a disaster
  cacheBytes?: number;         // tagged: commits kept at most (default DEFAULT_CACHE_BYTES)
  syncIntervalMs?: number;     // a background commit at least this often (default 1000)
  maxDirtyBytes?: number;      // written bytes one commit takes at most: writes past it wait (default and most: MAX_DIRTY_BYTES)
  onEvent?: (event: string, detail: Record<string, unknown>) => void;
}

export interface MountStats {
  commits: number;
  commitFailures: number;
  changesCommitted: number;
  bytesCommitted: number;
  dirtyBytes: number;
  pendingChanges: number;
  update: number;
  requests: number;
  readaheadKb: number;         // the kernel's readahead for the mount (-1: not known, not root)
  // FUSE reads and writes: how many the kernel sent and their bytes (the request size it uses).
  reads: number;
  readBytes: number;
  writes: number;
  writeBytes: number;
  errors: Record<string, number>;
  level: string;               // what commits are sent at now (after a failover to a site without a mirror: the default)
  server: string;              // the file server in use
  tagged: KeptStats | null;
}

// One commit is one append (64 MiB of records, data and metadata): its data is kept under this.
export const MAX_DIRTY_BYTES = 48 * 1024 * 1024;
export const DEFAULT_CACHE_BYTES = 256 * 1024 * 1024;
// How often a tagged mount that keeps commits asks for the watermark.
const TAG_POLL_MS = 100;
const S_IFREG = 0o100000;
const S_IFDIR = 0o040000;
const S_IFLNK = 0o120000;
const TYPE_BITS = { file: S_IFREG, dir: S_IFDIR, symlink: S_IFLNK } as const;
const O_ACCMODE = 3;
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

interface FileHandle { kind: 'file'; node: MNode; writable: boolean; wrote: boolean }
interface DirHandle { kind: 'dir'; node: MNode; entries: [string, number, number][] }
type Handle = FileHandle | DirHandle;

interface Batch {
  changes: Change[];
  lands: (() => void)[];
  frozen: MNode[];
  seq: number;
  base: number;       // the update the file server was at
  bytes: number;
}

// A commit that failed this way may have landed: the file server's update number tells.
// SMFS_ERR_MIRROR: written, but not acknowledged at the level in time.
function uncertain(err: unknown): boolean {
  return err instanceof SmfsError && (err.code === 'SMFS_ERR_UNAVAILABLE' || err.code === 'SMFS_ERR_CLOSED' || err.code === 'SMFS_ERR_MIRROR');
}

function lostConnection(err: unknown): boolean {
  return err instanceof SmfsError && (err.code === 'SMFS_ERR_UNAVAILABLE' || err.code === 'SMFS_ERR_CLOSED');
}

function timeOf(t: [number, number] | undefined): Time {
  return t ? { s: t[0], ns: t[1] } : timeNow();
}

export class SmfsMount {
  private fuse!: NativeFuseMount;
  private c: FileClient | undefined;
  private readonly nodes: NodeTable;
  private readonly handles = new Map<number, Handle>();
  private nextFh = 1;
  private log: Logged[] = [];
  private readonly dirtyNodes = new Set<MNode>();
  private readonly orphans = new Set<MNode>();
  private changeSeq = 0;
  private landedSeq = 0;
  private update: number;
  private liveBytes = 0;
  private frozenBytes = 0;
  private writersActive = 0;
  private wantCommit = false;
  private pendingSince = 0;
  private running: Promise<void> | undefined;
  private doubt: Batch | undefined;
  private broken: Error | undefined;
  private readonly reads = new Set<Promise<unknown>>();
  private readonly snapshotWaiters: (() => void)[] = [];
  private timer: NodeJS.Timeout | undefined;
  private statfsCache: { at: number; value: VolumeStatfs } | undefined;
  private stopping: Promise<{ committed: boolean; error?: string }> | undefined;
  private endedResolve!: (reason: string) => void;
  readonly ended: Promise<string> = new Promise((resolve) => { this.endedResolve = resolve; });
  readonly counters: Omit<MountStats, 'level' | 'server' | 'tagged'> = { commits: 0, commitFailures: 0, changesCommitted: 0, bytesCommitted: 0, dirtyBytes: 0, pendingChanges: 0, update: 0, requests: 0, readaheadKb: -1, reads: 0, readBytes: 0, writes: 0, writeBytes: 0, errors: {} };
  private readonly syncIntervalMs: number;
  private readonly maxDirtyBytes: number;
  private readonly kept: KeptCommits | undefined;
  private level: FileLevel | undefined;
  private server: Endpoint;
  private connecting: Promise<FileClient> | undefined;
  private polling = false;

  private constructor(private readonly o: MountOptions, c: FileClient, tree: Awaited<ReturnType<FileClient['tree']>>) {
    this.c = c;
    this.server = o.server;
    this.level = o.level;
    this.kept = o.level === 'tagged' ? new KeptCommits(o.cacheBytes ?? DEFAULT_CACHE_BYTES) : undefined;
    this.nodes = new NodeTable(tree.root);
    this.update = tree.update;
    this.syncIntervalMs = o.syncIntervalMs ?? 1000;
    this.maxDirtyBytes = Math.min(o.maxDirtyBytes ?? MAX_DIRTY_BYTES, MAX_DIRTY_BYTES);
  }

  // Connects, loads the tree and mounts it. Throws before mounting if the file server cannot
  // be reached or the mount point cannot be used.
  static async start(o: MountOptions): Promise<SmfsMount> {
    const c = await FileClient.connect(o.server, o.credential);
    let m: SmfsMount;
    try {
      if (o.level === 'tagged') {
        const s = await c.tagState();
        if (s.role !== 'primary' || s.mirrored === null) {
          throw new SmfsError('SMFS_ERR_REQUEST', `--level tagged needs a file server on a primary storage server with a mirror; ${formatEndpoint(o.server)}'s is ${s.role !== 'primary' ? `a ${s.role}` : 'a primary without a mirror'}`);
        }
      }
      m = new SmfsMount(o, c, await c.tree());
      m.fuse = new (fuseAddon().FuseMount)({ mountpoint: o.mountpoint, fsname: `smfs@${o.server.host}:${o.server.port}` },
        (requests) => m.dispatch(requests), (errno) => m.endedResolve(errno === E.ENODEV ? 'unmounted' : `connection ended (errno ${errno})`));
    } catch (err) {
      await c.close();
      throw err;
    }
    m.timer = setInterval(() => m.tick(), Math.max(10, Math.min(m.syncIntervalMs, 1000, m.kept ? TAG_POLL_MS : 1000)));
    return m;
  }

  get root(): MNode {
    return this.nodes.root;
  }

  stats(): MountStats {
    return {
      ...this.counters, dirtyBytes: this.liveBytes + this.frozenBytes, pendingChanges: this.log.length + this.dirtyNodes.size, update: this.update,
      level: this.level ?? 'default', server: formatEndpoint(this.server), tagged: this.kept ? { ...this.kept.stats } : null,
    };
  }

  // Unmounts (lazily: open files see EIO from now on), then commits what was accepted. Tagged,
  // it then waits up to `drainMs` for the mirror to have what it keeps (`unmirrored`: the
  // commits it gave up keeping, exposed to a disaster at the primary's site).
  stop(drainMs = 30_000): Promise<{ committed: boolean; error?: string; unmirrored?: number }> {
    this.stopping ??= (async () => {
      clearInterval(this.timer);
      this.fuse.stop();
      let result: { committed: boolean; error?: string; unmirrored?: number } = { committed: true };
      try {
        await this.sync();
      } catch (err) {
        result = { committed: false, error: (err as Error).message };
      }
      if (this.kept && result.committed) result.unmirrored = await this.drain(drainMs);
      await this.c?.close().catch(() => undefined);
      this.endedResolve('stopped');
      return result;
    })();
    return this.stopping;
  }

  // ---- requests ------------------------------------------------------------------------

  private dispatch(requests: FuseRequest[]): void {
    if (this.counters.readaheadKb < 0) this.counters.readaheadKb = this.fuse.readaheadKb();
    for (const r of requests) {
      this.counters.requests++;
      if (r.op === 'forget') {
        this.forget(r);
        continue;
      }
      let out: void | Promise<void>;
      try {
        out = this.handle(r);
      } catch (err) {
        this.refuse(r, err);
        continue;
      }
      if (out) out.catch((err) => this.refuse(r, err));
    }
  }

  private refuse(r: FuseRequest, err: unknown): void {
    const errno = errnoOf(err);
    if (!(err instanceof FsError) || errno === E.EIO) {
      const name = Object.entries(E).find(([, v]) => v === errno)?.[0] ?? String(errno);
      this.counters.errors[name] = (this.counters.errors[name] ?? 0) + 1;
      if (errno === E.EIO) this.o.onEvent?.('error', { op: r.op, ino: r.ino, error: (err as Error).message });
    }
    this.fuse.reply(r.id, errno);
  }

  private handle(r: FuseRequest): void | Promise<void> {
    switch (r.op) {
      case 'lookup': return this.lookup(r);
      case 'getattr': return void this.fuse.replyAttr(r.id, this.attr(this.node(r.ino)));
      case 'setattr': return this.setattr(r);
      case 'readlink': return this.readlink(r);
      case 'mknod': return this.mknod(r);
      case 'mkdir': return this.mkdir(r);
      case 'unlink': return this.unlink(r, false);
      case 'rmdir': return this.unlink(r, true);
      case 'symlink': return this.symlink(r);
      case 'rename': return this.rename(r);
      case 'link': return fail(E.EPERM, 'hard links are not supported');
      case 'open': return this.open(r);
      case 'create': return this.create(r);
      case 'read': return this.read(r);
      case 'write': return this.write(r);
      case 'flush': return void this.fuse.reply(r.id, 0);
      case 'release': return this.release(r);
      case 'fsync': case 'fsyncdir': return this.sync().then(() => void this.fuse.reply(r.id, 0));
      case 'opendir': return this.opendir(r);
      case 'readdir': return this.readdir(r);
      case 'releasedir': return this.releasedir(r);
      case 'statfs': return this.statfs(r);
      case 'access': return void this.fuse.reply(r.id, 0);
      case 'fallocate': return this.fallocate(r);
      default: return fail(E.ENOSYS, `${r.op} is not supported`);
    }
  }

  private node(ino: number): MNode {
    return this.nodes.byIno.get(ino) ?? fail(E.ESTALE, `no inode ${ino}`);
  }

  private dir(ino: number): MNode {
    const n = this.node(ino);
    if (n.kind !== 'dir') fail(E.ENOTDIR);
    if (!n.linked) fail(E.ENOENT, 'the directory was removed');
    return n;
  }

  // A name to look up: one that is not UTF-8 cannot be in the tree.
  private nameOf(b: Buffer | undefined, creating: boolean): string {
    if (!b || b.length === 0) fail(E.EINVAL);
    if (b.length > MAX_NAME_BYTES) fail(E.ENAMETOOLONG);
    try {
      return strictUtf8.decode(b);
    } catch {
      return fail(creating ? E.EILSEQ : E.ENOENT, 'names are UTF-8 here');
    }
  }

  private attr(n: MNode): FuseAttr {
    const size = n.kind === 'dir' ? n.entries!.size : n.kind === 'symlink' ? Buffer.byteLength(n.target!, 'utf8') : n.size;
    const nlink = n.kind === 'dir' ? 2 + n.subdirs : n.linked ? 1 : 0;
    return [n.ino, TYPE_BITS[n.kind] | n.mode, nlink, n.uid, n.gid, size, n.mtime.s, n.mtime.ns, n.mtime.s, n.mtime.ns, n.ctime.s, n.ctime.ns];
  }

  private entry(r: FuseRequest, n: MNode): void {
    if (this.fuse.replyEntry(r.id, this.attr(n))) n.lookups++;
  }

  private forget(r: FuseRequest): void {
    const n = this.nodes.byIno.get(r.ino);
    if (!n) return;
    n.lookups -= r.nlookup ?? 0;
    this.nodes.maybeDrop(n);
  }

  private lookup(r: FuseRequest): void {
    const dir = this.dir(r.ino);
    const child = dir.entries!.get(this.nameOf(r.name, false)) ?? fail(E.ENOENT);
    this.entry(r, child);
  }

  // ---- changes to the namespace ------------------------------------------------------------

  private changed(): void {
    if (this.changeSeq === this.landedSeq) this.pendingSince = Date.now();
    this.changeSeq++;
  }

  private markDirty(n: MNode, content: boolean): void {
    if (content) n.contentDirty = true;
    else n.attrsDirty = true;
    this.dirtyNodes.add(n);
    this.changed();
  }

  private logChange(change: Change, land: () => void): void {
    this.log.push({ change, land });
    this.changed();
  }

  // A new node in `dir` (checked free), logged as one make.
  private makeNode(r: FuseRequest, kind: 'file' | 'dir' | 'symlink', mode: number, target?: string): MNode {
    const dir = this.dir(r.ino);
    const name = this.nameOf(r.name, true);
    if (dir.entries!.has(name)) fail(E.EEXIST);
    const now = timeNow();
    const n = this.nodes.make(kind, mode & MODE_BITS, r.uid ?? 0, r.gid ?? 0, now, dir, name);
    if (kind === 'symlink') n.target = target;
    dir.entries!.set(name, n);
    if (kind === 'dir') dir.subdirs++;
    touchDir(dir, now);
    this.dirtyNodes.add(dir);
    this.logChange({ op: 'make', path: pathOf(n), type: kind, mode: n.mode, uid: n.uid, gid: n.gid, mtime: now, ...(target !== undefined ? { target } : {}) },
      () => { n.server = { parent: dir, name }; });
    return n;
  }

  private mknod(r: FuseRequest): void {
    if (((r.mode ?? 0) & 0o170000) !== S_IFREG) fail(E.EPERM, 'only regular files, directories and symlinks');
    this.entry(r, this.makeNode(r, 'file', r.mode ?? 0o644));
  }

  private mkdir(r: FuseRequest): void {
    this.entry(r, this.makeNode(r, 'dir', r.mode ?? 0o755));
  }

  private symlink(r: FuseRequest): void {
    let target: string;
    try {
      target = strictUtf8.decode(r.target!);
    } catch {
      return fail(E.EILSEQ, 'a symlink target is UTF-8 here');
    }
    if (r.target!.length > MAX_TARGET_BYTES) fail(E.ENAMETOOLONG);
    if (target.length === 0) fail(E.ENOENT);
    this.entry(r, this.makeNode(r, 'symlink', 0o777, target));
  }

  // Takes `n` out of the tree (unlink, rmdir, or replaced by a rename).
  private detach(n: MNode): void {
    const dir = n.parent!;
    dir.entries!.delete(n.name);
    if (n.kind === 'dir') dir.subdirs--;
    n.linked = false;
    n.parent = undefined;
    n.ctime = timeNow();
    if (n.opens > 0 && n.kind === 'file') this.orphans.add(n);
    else this.discardContent(n);
    this.nodes.maybeDrop(n);
  }

  private discardContent(n: MNode): void {
    this.liveBytes -= n.dirty.bytes;
    n.dirty.clear();
    this.dirtyNodes.delete(n);
    this.orphans.delete(n);
  }

  private unlink(r: FuseRequest, dirWanted: boolean): void {
    const dir = this.dir(r.ino);
    const n = dir.entries!.get(this.nameOf(r.name, false)) ?? fail(E.ENOENT);
    if (dirWanted && n.kind !== 'dir') fail(E.ENOTDIR);
    if (!dirWanted && n.kind === 'dir') fail(E.EISDIR);
    if (n.kind === 'dir' && n.entries!.size > 0) fail(E.ENOTEMPTY);
    const path = pathOf(n);
    this.detach(n);
    touchDir(dir);
    this.dirtyNodes.add(dir);
    this.logChange({ op: 'remove', path }, () => { n.server = undefined; });
    this.fuse.reply(r.id, 0);
  }

  private rename(r: FuseRequest): void {
    const { renameNoreplace, renameExchange } = fuseAddon().fuseConstants;
    const flags = r.flags ?? 0;
    if (flags & renameExchange || flags & ~(renameNoreplace | renameExchange)) fail(E.EINVAL, 'RENAME_EXCHANGE is not supported');
    const from = this.dir(r.ino);
    const to = this.dir(r.newParent!);
    const name = this.nameOf(r.name, false);
    const newName = this.nameOf(r.newName, true);
    const n = from.entries!.get(name) ?? fail(E.ENOENT);
    const existing = to.entries!.get(newName);
    if (existing === n) return void this.fuse.reply(r.id, 0);
    if (existing && flags & renameNoreplace) fail(E.EEXIST);
    if (n.kind === 'dir') for (let x: MNode | undefined = to; x; x = x.parent) if (x === n) fail(E.EINVAL, 'a directory cannot move into itself');
    if (existing) {
      if (n.kind !== 'dir' && existing.kind === 'dir') fail(E.EISDIR);
      if (n.kind === 'dir' && existing.kind !== 'dir') fail(E.ENOTDIR);
      if (existing.kind === 'dir' && existing.entries!.size > 0) fail(E.ENOTEMPTY);
    }
    const change: Change = { op: 'rename', from: pathOf(n), to: `${pathOf(to) === '/' ? '' : pathOf(to)}/${newName}` };
    if (existing) this.detach(existing);
    from.entries!.delete(name);
    if (n.kind === 'dir') {
      from.subdirs--;
      to.subdirs++;
    }
    n.parent = to;
    n.name = newName;
    to.entries!.set(newName, n);
    const now = timeNow();
    n.ctime = now;
    touchDir(from, now);
    touchDir(to, now);
    this.dirtyNodes.add(from);
    this.dirtyNodes.add(to);
    this.logChange(change, () => {
      if (existing) existing.server = undefined;
      n.server = { parent: to, name: newName };
    });
    this.fuse.reply(r.id, 0);
  }

  private setattr(r: FuseRequest): void | Promise<void> {
    const n = this.node(r.ino);
    const k = fuseAddon().fuseConstants;
    const set = r.toSet ?? 0;
    const now = timeNow();
    if (set & k.setAttrSize) {
      if (n.kind === 'dir') fail(E.EISDIR);
      if (n.kind !== 'file') fail(E.EINVAL);
      this.truncate(n, r.setSize ?? 0);
      n.mtime = now;
    }
    if (set & k.setAttrMode) n.mode = (r.setMode ?? 0) & MODE_BITS;
    if (set & k.setAttrUid) n.uid = r.setUid ?? 0;
    if (set & k.setAttrGid) n.gid = r.setGid ?? 0;
    if (set & k.setAttrMtimeNow) n.mtime = now;
    else if (set & k.setAttrMtime) n.mtime = timeOf(r.mtime);
    if (set & (k.setAttrMode | k.setAttrUid | k.setAttrGid | k.setAttrMtime | k.setAttrMtimeNow | k.setAttrSize)) {
      n.ctime = now;
      if (n.linked) this.markDirty(n, false);
    }
    this.fuse.replyAttr(r.id, this.attr(n));
  }

  private truncate(n: MNode, size: number): void {
    if (size < 0) fail(E.EINVAL);
    if (size > MAX_FILE_BYTES) fail(E.EFBIG, `a file holds at most ${MAX_FILE_BYTES} bytes`);
    const before = n.dirty.bytes;
    n.dirty.truncate(size);
    this.liveBytes += n.dirty.bytes - before;
    n.keep = Math.min(n.keep, size);
    n.size = size;
    if (n.linked || n.opens > 0) this.markDirty(n, true);
  }

  // ---- files ---------------------------------------------------------------------------

  private openHandle(n: MNode, flags: number): number {
    const writable = (flags & O_ACCMODE) !== fs.constants.O_RDONLY;
    const fh = this.nextFh++;
    this.handles.set(fh, { kind: 'file', node: n, writable, wrote: false });
    n.opens++;
    return fh;
  }

  private open(r: FuseRequest): void {
    const n = this.node(r.ino);
    if (n.kind === 'dir') fail(E.EISDIR);
    if (n.kind !== 'file') fail(E.ELOOP);
    const flags = r.flags ?? 0;
    if (flags & fs.constants.O_TRUNC && (flags & O_ACCMODE) !== fs.constants.O_RDONLY && n.size > 0) {
      this.truncate(n, 0);
      n.mtime = n.ctime = timeNow();
    }
    this.fuse.replyOpen(r.id, this.openHandle(n, flags), false, true);
  }

  private create(r: FuseRequest): void {
    const dir = this.dir(r.ino);
    const name = this.nameOf(r.name, true);
    const flags = r.flags ?? 0;
    let n = dir.entries!.get(name);
    if (n) {
      if (flags & fs.constants.O_EXCL) fail(E.EEXIST);
      if (n.kind === 'dir') fail(E.EISDIR);
      if (flags & fs.constants.O_TRUNC && n.size > 0) this.truncate(n, 0);
    } else n = this.makeNode(r, 'file', r.mode ?? 0o644);
    const fh = this.openHandle(n, flags);
    if (this.fuse.replyCreate(r.id, this.attr(n), fh, false, true)) n.lookups++;
  }

  private release(r: FuseRequest): void {
    const h = this.handles.get(r.fh ?? 0);
    if (h?.kind === 'file') {
      this.handles.delete(r.fh!);
      h.node.opens--;
      if (h.wrote) this.writersActive--;
      if (!h.node.linked && h.node.opens === 0) this.discardContent(h.node);
      this.nodes.maybeDrop(h.node);
      // A file closed after writing: a commit that was waiting for a quiet moment takes it.
      if (this.wantCommit && this.writersActive === 0) this.background('quiet');
    }
    this.fuse.reply(r.id, 0);
  }

  private async write(r: FuseRequest): Promise<void> {
    const h = this.handles.get(r.fh ?? 0);
    const n = h?.kind === 'file' ? h.node : this.node(r.ino);
    const data = r.data!;
    const off = r.off ?? 0;
    this.counters.writes++;
    this.counters.writeBytes += data.length;
    if (n.kind !== 'file') fail(E.EINVAL);
    if (off + data.length > MAX_FILE_BYTES) fail(E.EFBIG, `a file holds at most ${MAX_FILE_BYTES} bytes`);
    // Back-pressure: the next commit must stay one append.
    if (this.liveBytes + data.length > this.maxDirtyBytes) await this.room(data.length);
    if (h?.kind === 'file' && !h.wrote) {
      h.wrote = true;
      this.writersActive++;
    }
    const before = n.dirty.bytes;
    n.dirty.write(off, data);
    this.liveBytes += n.dirty.bytes - before;
    n.size = Math.max(n.size, off + data.length);
    n.mtime = n.ctime = timeNow();
    if (n.linked || n.opens > 0) this.markDirty(n, true);
    this.fuse.replyWrite(r.id, data.length);
    if (this.liveBytes >= this.maxDirtyBytes / 2 && !this.running) this.background('memory');
  }

  private fallocate(r: FuseRequest): void {
    const n = this.node(r.ino);
    if ((r.flags ?? 0) !== 0) fail(E.EOPNOTSUPP, 'only plain fallocate (mode 0)');
    if (n.kind !== 'file') fail(E.ENODEV);
    const end = (r.off ?? 0) + (r.size ?? 0);
    if (end > MAX_FILE_BYTES) fail(E.EFBIG);
    if (end > n.size) {
      n.size = end;
      n.ctime = timeNow();
      this.markDirty(n, true);
    }
    this.fuse.reply(r.id, 0);
  }

  private readlink(r: FuseRequest): void {
    const n = this.node(r.ino);
    if (n.kind !== 'symlink') fail(E.EINVAL);
    this.fuse.replyReadlink(r.id, n.target!);
  }

  private async read(r: FuseRequest): Promise<void> {
    const h = this.handles.get(r.fh ?? 0);
    const n = h?.kind === 'file' ? h.node : this.node(r.ino);
    if (n.kind !== 'file') fail(E.EISDIR);
    this.counters.reads++;
    this.counters.readBytes += r.size ?? 0;
    const read = this.readBytes(n, r.off ?? 0, r.size ?? 0);
    this.reads.add(read);
    try {
      this.fuse.replyData(r.id, await read);
    } finally {
      this.reads.delete(read);
    }
  }

  // The file's bytes: the server's first `keep`, zeros after them, the extents written since on
  // top. A read waits for a commit in flight (which may move or replace the file at the server).
  private async readBytes(n: MNode, off: number, length: number): Promise<Buffer> {
    while (this.running) await this.running.catch(() => undefined);
    const end = Math.min(n.size, off + length);
    if (end <= off) return Buffer.alloc(0);
    const dirty = n.dirty;
    const serverEnd = Math.min(end, n.keep);
    const path = serverPathOf(n);
    let out: Buffer;
    if (off < serverEnd) {
      if (path === undefined) throw new FsError(E.EIO, `inode ${n.ino} has bytes at the server but no path there`);
      const got = await this.call((c) => c.readRange(path, off, serverEnd - off));
      if (got.length === end - off) out = got; // all of it from the file server: no copy
      else {
        out = Buffer.alloc(end - off);
        got.copy(out, 0, 0, Math.min(got.length, out.length));
      }
    } else out = Buffer.alloc(end - off);
    dirty.overlay(out, off);
    return out;
  }

  // ---- directories ---------------------------------------------------------------------

  private opendir(r: FuseRequest): void {
    const n = this.dir(r.ino);
    const entries: [string, number, number][] = [['.', n.ino, S_IFDIR], ['..', (n.parent ?? n).ino, S_IFDIR]];
    for (const [name, child] of [...n.entries!].sort((a, b) => (a[0] < b[0] ? -1 : 1))) entries.push([name, child.ino, TYPE_BITS[child.kind]]);
    const fh = this.nextFh++;
    this.handles.set(fh, { kind: 'dir', node: n, entries });
    this.fuse.replyOpen(r.id, fh, false, false);
  }

  private readdir(r: FuseRequest): void {
    const h = this.handles.get(r.fh ?? 0);
    if (h?.kind !== 'dir') fail(E.EBADF);
    const off = r.off ?? 0;
    const out: [string, number, number, number][] = [];
    let bytes = 0;
    for (let i = off; i < h.entries.length && bytes < (r.size ?? 0); i++) {
      out.push([...h.entries[i], i + 1]);
      bytes += 32 + h.entries[i][0].length;
    }
    this.fuse.replyDir(r.id, r.size ?? 0, out);
  }

  private releasedir(r: FuseRequest): void {
    this.handles.delete(r.fh ?? 0);
    this.fuse.reply(r.id, 0);
  }

  private async statfs(r: FuseRequest): Promise<void> {
    if (!this.statfsCache || Date.now() - this.statfsCache.at > 2000) {
      this.statfsCache = { at: Date.now(), value: await this.call((c) => c.statfs()) };
    }
    const s = this.statfsCache.value;
    const total = s.disk ? Math.floor(s.disk.totalBytes / BLOCK_BYTES) : 1 << 30;
    const free = Math.max(0, (s.disk ? Math.floor(s.disk.freeBytes / BLOCK_BYTES) : 1 << 30) - Math.ceil((this.liveBytes + this.frozenBytes) / BLOCK_BYTES));
    const nodes = s.files + s.dirs + s.symlinks;
    this.fuse.replyStatfs(r.id, [BLOCK_BYTES, total, free, free, nodes + 1_000_000, 1_000_000, MAX_NAME_BYTES]);
  }

  // ---- the file server -----------------------------------------------------------------

  // A request through the mount's connection, made anew if it was lost.
  private async call<T>(fn: (c: FileClient) => Promise<T>): Promise<T> {
    if (!this.c) {
      this.connecting ??= this.connect().finally(() => { this.connecting = undefined; });
      this.c = await this.connecting;
    }
    const c = this.c;
    try {
      return await fn(c);
    } catch (err) {
      if (lostConnection(err) && this.c === c) {
        this.c = undefined;
        void c.close().catch(() => undefined);
      }
      throw err;
    }
  }

  private async connect(): Promise<FileClient> {
    if (!this.kept) return FileClient.connect(this.server, this.o.credential);
    // Tagged: the file server in use, else the first site's whose storage server is a primary
    // (a promoted mirror); what it lacks of this mount's tree is handed over first.
    const sites = [this.server, ...[this.o.server, ...(this.o.sites ?? [])].filter((e) => formatEndpoint(e) !== formatEndpoint(this.server))];
    const tried: string[] = [];
    for (const site of sites) {
      let c: FileClient;
      try {
        c = await FileClient.connect(site, this.o.credential);
      } catch (err) {
        tried.push(`${formatEndpoint(site)}: ${(err as Error).message}`);
        continue;
      }
      try {
        const s = await c.tagState();
        if (s.role !== 'primary') {
          tried.push(`${formatEndpoint(site)}: its storage server is a ${s.role}`);
          await c.close();
          continue;
        }
        if (formatEndpoint(site) !== formatEndpoint(this.server) || s.update < this.update) await this.handOver(c, site, s);
        this.server = site;
        return c;
      } catch (err) {
        await c.close().catch(() => undefined);
        if (this.broken) throw this.broken;
        tried.push(`${formatEndpoint(site)}: ${(err as Error).message}`);
      }
    }
    throw new SmfsError('SMFS_ERR_UNAVAILABLE', `no site's file server takes this mount's commits: ${tried.join('; ')}`);
  }

  // A new site's tree is at update `s.update`: this mount's kept commits past it are replayed
  // there in order, each landing as the same update; a gap (an update neither has) stops the
  // mount's commits (EIO) with what is missing named.
  private async handOver(c: FileClient, site: Endpoint, s: { update: number; mirrored: number | null }): Promise<void> {
    const kept = this.kept!;
    const from = formatEndpoint(this.server);
    if (s.update > this.update) return; // another writer, or a commit whose answer was lost: resolveDoubt tells
    const plan = kept.handOver(s.update, this.update);
    if ('missing' in plan) {
      this.broken = new SmfsError('SMFS_ERR_LOST_GROUPS', `${formatEndpoint(site)} has this tree at update ${s.update}; updates ${plan.missing.from} to ${plan.missing.to} are neither there nor kept by this mount: they are lost, and this mount commits nothing more (remount)`,
        { details: { at: s.update, missing: plan.missing } });
      this.o.onEvent?.('broken', { error: this.broken.message });
      throw this.broken;
    }
    const mirrored = s.mirrored !== null;
    for (const k of plan.replay) {
      const r = mirrored ? await c.commitTagged(k.changes) : { update: await c.commit(k.changes), seq: undefined };
      if (r.update !== k.update) {
        this.broken = new SmfsError('SMFS_ERR_IO', `replaying update ${k.update} at ${formatEndpoint(site)} made update ${r.update}: its tree is not this mount's; this mount commits nothing more (remount)`);
        this.o.onEvent?.('broken', { error: this.broken.message });
        throw this.broken;
      }
      kept.replayed(k, r.seq);
    }
    kept.stats.failovers++;
    if (!mirrored) this.level = undefined;
    this.o.onEvent?.('failover', { from, to: formatEndpoint(site), at: s.update, replayed: plan.replay.length, level: this.level ?? 'default' });
  }

  // Asks for the watermark until nothing is kept or `ms` have passed; what is still kept.
  private async drain(ms: number): Promise<number> {
    const kept = this.kept!;
    const until = Date.now() + ms;
    while (kept.size > 0 && Date.now() < until && !this.broken) {
      const s = await this.call((c) => c.tagState()).catch(() => undefined);
      if (s?.mirrored != null && s.update >= this.update) kept.release(s.mirrored);
      if (kept.size > 0) await new Promise((resolve) => setTimeout(resolve, TAG_POLL_MS));
    }
    return kept.size;
  }

  // Tagged: the watermark, asked while commits are kept; it also finds another site's file
  // server once this one is gone, and hands over to it.
  private poll(): void {
    if (!this.kept || this.kept.size === 0 || this.polling || this.broken || this.stopping) return;
    this.polling = true;
    this.call((c) => c.tagState()).then((s) => {
      if (s.mirrored !== null && s.update >= this.update) this.kept!.release(s.mirrored);
    }, () => undefined).finally(() => { this.polling = false; });
  }

  // ---- commits -------------------------------------------------------------------------

  private tick(): void {
    this.poll();
    if (this.changeSeq === this.landedSeq || this.running || this.broken) return;
    const due = Date.now() - this.pendingSince >= this.syncIntervalMs;
    if (!due) return;
    // A background commit waits for a moment when no file is half written (none open since a
    // write), for up to five intervals; an fsync does not wait.
    if (this.writersActive === 0 || Date.now() - this.pendingSince >= 5 * this.syncIntervalMs) this.background('interval');
    else this.wantCommit = true;
  }

  // Waits until `bytes` more fit under --max-dirty: until a commit has taken what is written
  // (its snapshot), not until it has landed, so that writes fill the next commit while one is in
  // flight (memory: up to twice --max-dirty). A commit started here that fails fails the write.
  private async room(bytes: number): Promise<void> {
    while (this.liveBytes + bytes > this.maxDirtyBytes) {
      if (this.broken) throw this.broken;
      const started = !this.running;
      if (started) this.background('memory');
      const running = this.running;
      if (!running) return; // nothing to commit (the bytes held are a removed file's): as before, the write goes on
      const failed = await Promise.race([
        running.then(() => undefined, (err: unknown) => err as Error),
        new Promise<undefined>((resolve) => this.snapshotWaiters.push(() => resolve(undefined))),
      ]);
      if (failed && started && this.liveBytes + bytes > this.maxDirtyBytes) throw failed;
    }
  }

  private background(why: string): void {
    if (this.running || this.changeSeq === this.landedSeq) return;
    this.wantCommit = false;
    this.commitNow().catch((err) => this.o.onEvent?.('commit-failed', { why, error: (err as Error).message }));
  }

  // Resolves once every change made before the call has landed; rejects if that cannot be done.
  async sync(): Promise<void> {
    const target = this.changeSeq;
    let attempts = 0;
    while (this.landedSeq < target) {
      if (this.running) {
        await this.running.catch(() => undefined);
        continue;
      }
      if (attempts++ > 0 && this.broken) throw this.broken;
      await this.commitNow();
    }
  }

  private commitNow(): Promise<void> {
    if (this.broken) return Promise.reject(this.broken);
    this.running = (async () => {
      if (this.doubt) await this.resolveDoubt();
      if (this.changeSeq === this.landedSeq) return;
      await Promise.allSettled([...this.reads]);
      await this.fetchOrphans();
      const batch = this.snapshot();
      if (batch.changes.length === 0) return this.land(batch, this.update);
      try {
        await this.send(batch);
      } catch (err) {
        this.counters.commitFailures++;
        if (!uncertain(err)) {
          // Refused whole: the file server's tree is not what this mount thinks it is (another
          // writer), or the batch cannot be one update. Kept here, and every sync fails.
          this.mergeBack(batch);
          this.broken = new SmfsError('SMFS_ERR_IO', `the file server refused this mount's changes since update ${batch.base}: ${(err as Error).message}; they are not committed`, { cause: err });
          this.o.onEvent?.('broken', { error: this.broken.message });
          throw err;
        }
        this.doubt = batch;
        await this.resolveDoubt().catch(() => undefined);
        throw err;
      }
    })().finally(() => { this.running = undefined; });
    // While memory is over its mark, commits follow each other (only after one that landed: a
    // file server that is gone is not asked again and again).
    this.running.then(() => {
      if (this.liveBytes >= this.maxDirtyBytes / 2) this.background('memory');
    }, () => undefined);
    return this.running;
  }

  // One commit at the mount's level. Tagged: kept until the mirror has it; with the cache full,
  // sent at 'remote' instead (the level degrades, the cache does not grow).
  private async send(batch: Batch): Promise<void> {
    const kept = this.kept;
    if (this.level !== 'tagged' || !kept) {
      const level = this.level === 'tagged' ? undefined : this.level;
      this.land(batch, await this.call((c) => c.commit(batch.changes, { level })));
      return;
    }
    const bytes = commitBytes(batch.changes);
    if (!kept.fits(bytes)) {
      kept.stats.degraded++;
      const update = await this.call((c) => c.commit(batch.changes, { level: 'remote' }));
      this.land(batch, update);
      kept.releaseThrough(update);
      return;
    }
    const r = await this.call((c) => c.commitTagged(batch.changes));
    this.land(batch, r.update);
    if (r.seq > r.mirrored) kept.keep({ update: r.update, seq: r.seq, changes: batch.changes, bytes });
    else if (r.seq > 0) {
      kept.stats.mirroredAtAnswer++;
      kept.releaseThrough(r.update);
    }
    kept.release(r.mirrored);
  }

  // After a commit whose answer was lost: the file server's update number tells whether it
  // landed (one more than before), or not (the same); anything else means another writer.
  // Tagged, a commit that landed this way is kept (its sequence number unknown) until a later
  // one is mirrored.
  private async resolveDoubt(): Promise<void> {
    const batch = this.doubt!;
    const { update } = await this.call((c) => c.stat());
    this.doubt = undefined;
    if (update === batch.base + 1 && this.kept && this.level === 'tagged') {
      this.land(batch, update);
      this.kept.keep({ update, seq: undefined, changes: batch.changes, bytes: commitBytes(batch.changes) });
    } else if (update === batch.base + 1) this.land(batch, update);
    else if (update === batch.base) this.mergeBack(batch);
    else {
      this.broken = new SmfsError('SMFS_ERR_IO', `the tree changed behind this mount (update ${update}; this mount expected ${batch.base} or ${batch.base + 1}); remount`);
      this.o.onEvent?.('broken', { error: this.broken.message });
      throw this.broken;
    }
  }

  // Files removed while open keep their bytes here once the server forgets them.
  private async fetchOrphans(): Promise<void> {
    for (const n of [...this.orphans]) {
      if (n.opens === 0) {
        this.discardContent(n);
        continue;
      }
      const path = serverPathOf(n);
      if (path !== undefined && n.keep > 0) {
        const base = await this.call((c) => c.readRange(path, 0, n.keep));
        const merged = new Extents();
        merged.write(0, base);
        const before = n.dirty.bytes;
        n.dirty.underlay(merged, n.size);
        this.liveBytes += n.dirty.bytes - before;
        n.keep = 0;
      }
      this.orphans.delete(n);
      this.dirtyNodes.delete(n);
    }
  }

  // Everything pending as one batch: the namespace changes in order, then each changed node's
  // attributes and content at its path now.
  private snapshot(): Batch {
    const logged = this.log;
    this.log = [];
    const changes = logged.map((l) => l.change);
    const lands = logged.map((l) => l.land);
    const frozen: MNode[] = [];
    let bytes = 0;
    for (const n of this.dirtyNodes) {
      if (!n.linked) continue;
      const change: Change = { op: 'patch', path: pathOf(n), mtime: n.mtime };
      if (n.attrsDirty || n.contentDirty) Object.assign(change, { mode: n.mode, uid: n.uid, gid: n.gid });
      if (n.contentDirty) change.content = { keep: n.keep, size: n.size, extents: [...n.dirty.extents] };
      changes.push(change);
      n.frozen = { keep: n.keep, size: n.size, dirty: n.dirty, contentDirty: n.contentDirty, attrsDirty: n.attrsDirty };
      bytes += n.dirty.bytes;
      this.liveBytes -= n.dirty.bytes;
      n.dirty = new Extents();
      n.keep = n.size;
      n.contentDirty = false;
      n.attrsDirty = false;
      frozen.push(n);
    }
    this.dirtyNodes.clear();
    this.frozenBytes = bytes;
    for (const wake of this.snapshotWaiters.splice(0)) wake();
    return { changes, lands, frozen, seq: this.changeSeq, base: this.update, bytes };
  }

  private land(batch: Batch, update: number): void {
    for (const f of batch.lands) f();
    for (const n of batch.frozen) n.frozen = undefined;
    this.frozenBytes = 0;
    this.landedSeq = batch.seq;
    this.update = update;
    this.counters.commits++;
    this.counters.changesCommitted += batch.changes.length;
    this.counters.bytesCommitted += batch.bytes;
    this.statfsCache = undefined;
  }

  // A batch that did not land goes back under what came after it, to be sent again.
  private mergeBack(batch: Batch): void {
    this.log = batch.lands.map((land, i) => ({ change: batch.changes[i], land })).concat(this.log);
    for (const n of batch.frozen) {
      const f = n.frozen!;
      n.frozen = undefined;
      const before = n.dirty.bytes;
      n.dirty.underlay(f.dirty, n.keep);
      this.liveBytes += n.dirty.bytes - before;
      n.keep = Math.min(f.keep, n.keep);
      n.contentDirty ||= f.contentDirty;
      n.attrsDirty ||= f.attrsDirty;
      if (n.linked) this.dirtyNodes.add(n);
    }
    this.frozenBytes = 0;
  }
}
