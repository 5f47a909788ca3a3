// A file server's tree over its log (docs/smfs-files.md): found through the metadata server,
// recovered from the log alone (the newest record is the newest root inode, `tail`), kept in
// memory (inodes and directories; file data is read from the storage server), and changed by
// updates that are one append each, taken one at a time.
//
// If the storage server goes away in the middle of an append, whether the group landed is not
// known here: the volume marks itself stale, and before its next request it looks the log up
// again (the log may have moved to a mirror), reconnects and reloads the tree from the log.
import { SmfsError } from '../errors';
import { LIMITS, formatAddress } from '../format';
import type { Address } from '../format';
import { formatEndpoint } from '../frame-client';
import { StorageClient } from '../client';
import type { Credential } from '../credentials';
import type { Endpoint } from '../frame-client';
import { MetadataClient } from '../metadata-client';
import { BLOCK_BYTES, DEFAULT_MODE, isHole, MAX_FILE_BYTES, MAX_NAME_BYTES, decodeDirBlock, decodeInode, timeNow, timeToMs } from './format';
import type { Inode, NodeType } from './format';
import type { AckLevel } from '../mirror';
import { layOut } from './layout';
import type { FileLevel } from './protocol';
import { parsePath } from './path';
import { Draft, find } from './tree';
import type { Change, DirNode, FileNode, TreeNode } from './tree';
import { Serial } from '../../serial';

export interface ListEntry {
  name: string;
  type: NodeType;
  size: number;       // file: bytes; directory: entries; symlink: bytes of its target
  mtime: string;      // ISO 8601
}

// The whole tree's metadata, for a mount (protocol version 2, op tree).
export interface TreeEntry {
  name: string;
  type: NodeType;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: [number, number]; // seconds, nanoseconds
  target?: string;
  entries?: TreeEntry[];
}

export interface VolumeStatfs {
  blockBytes: number;
  maxFileBytes: number;
  maxNameBytes: number;
  files: number;
  dirs: number;
  symlinks: number;
  bytes: number;      // of file data
  records: number;
  disk: { totalBytes: number; freeBytes: number } | null; // the storage server's file system
}

export interface VolumeStat {
  log: number;
  storage: string;    // host:port of the log's storage server
  root: string;       // address of the newest root inode
  update: number;     // updates committed to the log so far
  files: number;
  dirs: number;
  symlinks: number;
  bytes: number;      // of file data
  records: number;    // reachable: inodes, directory blocks and data blocks
  leaked: number;     // live records of the log that no inode reaches (a crash between commit and free)
}

// How many times a read starts over when an update freed the blocks it was reading.
const READ_RETRIES = 3;

function unreachable(err: unknown): boolean {
  return err instanceof SmfsError && (err.code === 'SMFS_ERR_CLOSED' || err.code === 'SMFS_ERR_UNAVAILABLE');
}

interface Counts { files: number; dirs: number; symlinks: number; bytes: number; records: number }

function counts(): Counts {
  return { files: 0, dirs: 0, symlinks: 0, bytes: 0, records: 0 };
}

function countTree(node: TreeNode, into: Counts): void {
  into.records += 1 + node.blocks.filter((b) => !isHole(b)).length;
  if (node.kind === 'symlink') {
    into.symlinks++;
    return;
  }
  if (node.kind === 'file') {
    into.files++;
    into.bytes += node.size;
    return;
  }
  into.dirs++;
  for (const child of node.entries.values()) countTree(child, into);
}

function sizeOf(n: TreeNode): number {
  return n.kind === 'file' ? n.size : n.kind === 'dir' ? n.entries.size : Buffer.byteLength(n.target, 'utf8');
}

export class Volume {
  created = false;
  private root!: DirNode;
  private update = 0;
  private leaked = 0;
  private stale = false;
  private singleReads = false; // the storage server does not know read-many
  private readonly serial = new Serial();

  private constructor(
    readonly metadata: Endpoint, readonly log: number, private readonly credential: Credential, private storageAt: Endpoint, private storage: StorageClient,
  ) {}

  // Creates a new log through the metadata server (no `log`), or opens an existing one.
  static async open(metadata: Endpoint, log: number | undefined, credential: Credential): Promise<Volume> {
    const m = await MetadataClient.connect(metadata, credential);
    let placement;
    try {
      placement = log === undefined ? await m.create() : await m.lookup(log);
    } finally {
      await m.close();
    }
    const storageAt = { host: placement.host, port: placement.port };
    const v = new Volume(metadata, placement.log, credential, storageAt, await StorageClient.connect(storageAt, credential));
    try {
      await v.load();
    } catch (err) {
      await v.storage.close();
      throw err;
    }
    v.created = log === undefined;
    return v;
  }

  // Applies changes in order as one update: all of them, or none, acknowledged at `level` (the
  // storage server's default when not given). Resolves to the update's number (the previous
  // one when nothing changed).
  async apply(changes: Change[], options: { level?: AckLevel } = {}): Promise<number> {
    return (await this.commit(changes, options.level)).update;
  }

  // As apply; at 'tagged', written at 'local' and answered with the group's sequence number and
  // the storage server's mirrored-through watermark, for a mount that keeps the changes until
  // the watermark passes it (seq 0: nothing changed, nothing to keep).
  commit(changes: Change[], level: FileLevel | undefined): Promise<{ update: number; seq: number; mirrored: number }> {
    return this.serial.run(async () => {
      await this.freshen();
      const draft = new Draft(this.root, timeNow(), (a) => this.call(() => this.storage.read(a)));
      for (const c of changes) await draft.apply(c);
      if (!draft.changed) return { update: this.update, seq: 0, mirrored: 0 };
      const update = this.update + 1;
      const plan = layOut(draft.root, update);
      const records = plan.records.map((data) => ({ log: this.log, data }));
      const { addresses, tag } = await this.call(() => (level === 'tagged'
        ? this.storage.appendTimed(records, { level: 'local', sequence: true })
        : this.storage.append(records, { level }).then((addresses) => ({ addresses, tag: undefined })))).catch((err: unknown) => {
        // Written at the storage server but not acknowledged at the level in time: the log has
        // the update and this tree does not; the next request reloads the tree from the log.
        if (err instanceof SmfsError && err.code === 'SMFS_ERR_MIRROR') this.stale = true;
        throw err;
      });
      plan.commit(addresses);
      this.root = draft.root;
      this.update = update;
      await this.free(draft.superseded);
      return { update, seq: tag?.seq ?? 0, mirrored: tag?.mirrored ?? 0 };
    });
  }

  // What a tagged mount asks: this tree's update, whether its storage server takes appends
  // (primary) and what its mirror has (null: no mirror, so no tagged commits).
  async tagState(): Promise<{ update: number; role: string; mirrored: number | null }> {
    await this.reading(async () => undefined);
    const s = await this.call(() => this.storage.stat());
    return { update: this.update, role: s.role, mirrored: s.tags ? s.tags.mirrored : null };
  }

  read(path: string): Promise<Buffer> {
    const parts = parsePath(path);
    return this.reading(() => this.readOnce(path, parts));
  }

  // Up to `length` bytes of a file from `offset` (fewer at its end, none past it).
  readRange(path: string, offset: number, length: number): Promise<Buffer> {
    const parts = parsePath(path);
    return this.reading(() => this.readOnce(path, parts, { offset, length }));
  }

  private async readOnce(path: string, parts: string[], range?: { offset: number; length: number }): Promise<Buffer> {
    for (let attempt = 0; ; attempt++) {
      const root = this.root;
      const node = find(root, parts);
      if (node.kind === 'dir') throw new SmfsError('SMFS_ERR_IS_DIR', `${path} is a directory`);
      if (node.kind === 'symlink') throw new SmfsError('SMFS_ERR_REQUEST', `${path} is a symlink (to ${node.target}); symlinks are not followed here`);
      try {
        return await this.readFile(node, range);
      } catch (err) {
        const replaced = err instanceof SmfsError && err.code === 'SMFS_ERR_FREED' && this.root !== root;
        if (!replaced || attempt === READ_RETRIES) throw err;
      }
    }
  }

  async list(path: string): Promise<ListEntry[]> {
    const parts = parsePath(path);
    await this.reading(async () => undefined);
    const node = find(this.root, parts);
    const entry = (name: string, n: TreeNode): ListEntry => ({
      name, type: n.kind, size: sizeOf(n), mtime: new Date(timeToMs(n.mtime)).toISOString(),
    });
    if (node.kind !== 'dir') return [entry(parts[parts.length - 1], node)];
    return [...node.entries.keys()].sort().map((name) => entry(name, node.entries.get(name)!));
  }

  async stat(): Promise<VolumeStat> {
    await this.reading(async () => undefined);
    const c = counts();
    countTree(this.root, c);
    return { log: this.log, storage: formatEndpoint(this.storageAt), root: formatAddress(this.root.inode!), update: this.update, ...c, leaked: this.leaked };
  }

  // Every node's metadata (no file data), and the update it is of.
  async tree(): Promise<{ update: number; root: TreeEntry }> {
    await this.reading(async () => undefined);
    const entry = (name: string, n: TreeNode): TreeEntry => ({
      name, type: n.kind, mode: n.mode, uid: n.uid, gid: n.gid, size: sizeOf(n), mtime: [n.mtime.s, n.mtime.ns],
      ...(n.kind === 'symlink' ? { target: n.target } : {}),
      ...(n.kind === 'dir' ? { entries: [...n.entries.keys()].sort().map((k) => entry(k, n.entries.get(k)!)) } : {}),
    });
    return { update: this.update, root: entry('', this.root) };
  }

  async statfs(): Promise<VolumeStatfs> {
    await this.reading(async () => undefined);
    const c = counts();
    countTree(this.root, c);
    const disk = (await this.call(() => this.storage.stat())).disk ?? null;
    return { blockBytes: BLOCK_BYTES, maxFileBytes: MAX_FILE_BYTES, maxNameBytes: MAX_NAME_BYTES, ...c, disk };
  }

  async close(): Promise<void> {
    await this.serial.idle();
    await this.storage.close();
  }

  // Runs a read on a fresh tree. A read is safe to repeat, so one that finds the storage
  // connection lost (as when the storage server restarted since the last request) reloads
  // and tries once more.
  private async reading<T>(fn: () => Promise<T>): Promise<T> {
    if (this.stale) await this.serial.run(() => this.freshen());
    try {
      return await fn();
    } catch (err) {
      if (!this.stale) throw err;
      await this.serial.run(() => this.freshen());
      return fn();
    }
  }

  // A storage request; losing the storage server makes the volume stale.
  private async call<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (!unreachable(err)) throw err;
      this.stale = true;
      throw new SmfsError('SMFS_ERR_UNAVAILABLE', `the storage server of log ${this.log} at ${formatEndpoint(this.storageAt)} went away (${(err as Error).message}); an update in flight may or may not have been committed, whole`, { cause: err });
    }
  }

  private async freshen(): Promise<void> {
    if (!this.stale) return;
    const m = await MetadataClient.connect(this.metadata, this.credential);
    let placement;
    try {
      placement = await m.lookup(this.log);
    } finally {
      await m.close();
    }
    const storageAt = { host: placement.host, port: placement.port };
    const storage = await StorageClient.connect(storageAt, this.credential);
    await this.storage.close();
    this.storage = storage;
    this.storageAt = storageAt;
    await this.load();
    this.stale = false;
  }

  // The tree from the log: the newest record is the newest root inode; an empty log gets an
  // empty root directory as its first update.
  private async load(): Promise<void> {
    const tail = await this.call(() => this.storage.tail(this.log));
    if (!tail) {
      this.root = { kind: 'dir', blocks: [], mtime: timeNow(), mode: DEFAULT_MODE.dir, uid: 0, gid: 0, entries: new Map() };
      this.update = 0;
      const plan = layOut(this.root, 1);
      plan.commit(await this.call(() => this.storage.append(plan.records.map((data) => ({ log: this.log, data })))));
      this.update = 1;
      this.leaked = 0;
      return;
    }
    const inode = decodeInode(await this.call(() => this.storage.read(tail)), tail);
    if (!inode.root || inode.type !== 'dir') {
      throw new SmfsError('SMFS_ERR_CORRUPT', `the newest record of log ${this.log} (${formatAddress(tail)}) is not a root inode; is this log a file server's?`);
    }
    this.root = (await this.loadNode(tail, inode)) as DirNode;
    this.update = inode.update;
    const c = counts();
    countTree(this.root, c);
    const live = (await this.call(() => this.storage.stat())).logs.find((l) => l.id === this.log)?.liveRecords ?? 0;
    this.leaked = Math.max(0, live - c.records);
  }

  private async loadNode(at: Address, read?: Inode): Promise<TreeNode> {
    const inode = read ?? decodeInode(await this.call(() => this.storage.read(at)), at);
    const attrs = { inode: at, blocks: inode.blocks, mtime: inode.mtime, mode: inode.mode, uid: inode.uid, gid: inode.gid };
    if (inode.type === 'file') return { kind: 'file', size: inode.size, ...attrs };
    if (inode.type === 'symlink') return { kind: 'symlink', target: inode.target!, ...attrs };
    const blocks = await Promise.all(inode.blocks.map(async (b) => decodeDirBlock(await this.call(() => this.storage.read(b)), b)));
    const entries = blocks.flat();
    const children = await Promise.all(entries.map((e) => this.loadNode(e.inode)));
    return { kind: 'dir', entries: new Map(entries.map((e, i) => [e.name, children[i]])), ...attrs };
  }

  private async readFile(node: FileNode, range?: { offset: number; length: number }): Promise<Buffer> {
    const offset = Math.min(range?.offset ?? 0, node.size);
    const end = Math.min(node.size, range ? offset + range.length : node.size);
    if (end <= offset) return Buffer.alloc(0);
    const first = Math.floor(offset / BLOCK_BYTES);
    const last = Math.floor((end - 1) / BLOCK_BYTES);
    const wanted = node.blocks.slice(first, last + 1);
    const records = await this.readRecords(wanted.filter((b) => !isHole(b)));
    let next = 0;
    const blocks = wanted.map((b, k) => (isHole(b)
      ? Buffer.alloc(first + k < node.blocks.length - 1 ? BLOCK_BYTES : node.size - BLOCK_BYTES * (first + k))
      : records[next++]));
    blocks.forEach((b, k) => {
      const i = first + k;
      const expected = i < node.blocks.length - 1 ? BLOCK_BYTES : node.size - BLOCK_BYTES * i;
      if (b.length !== expected) throw new SmfsError('SMFS_ERR_CORRUPT', `block ${i} of the file at ${formatAddress(node.inode!)} has ${b.length} bytes, not ${expected}`);
    });
    const all = blocks.length === 1 ? blocks[0] : Buffer.concat(blocks);
    return all.subarray(offset - first * BLOCK_BYTES, end - first * BLOCK_BYTES);
  }

  // Records in one storage request (read-many: the storage server reads the blocks of a file
  // written together with one pread), or one request each from a storage server that does not
  // know read-many.
  private async readRecords(addresses: Address[]): Promise<Buffer[]> {
    if (addresses.length === 0) return [];
    if (!this.singleReads) {
      try {
        return await this.call(() => this.storage.readMany(addresses));
      } catch (err) {
        if (!(err instanceof SmfsError && err.code === 'SMFS_ERR_FRAME' && /unknown op/.test(err.message))) throw err;
        this.singleReads = true;
      }
    }
    return Promise.all(addresses.map((a) => this.call(() => this.storage.read(a))));
  }

  // Frees what an update made unreachable. The update is committed whatever happens here: a
  // free that fails leaves records live that nothing reaches, counted in `leaked`.
  private async free(addresses: Address[]): Promise<void> {
    for (let i = 0; i < addresses.length; i += LIMITS.groupRecords) {
      const chunk = addresses.slice(i, i + LIMITS.groupRecords);
      try {
        await this.call(() => this.storage.free(chunk));
      } catch {
        this.leaked += chunk.length;
      }
    }
  }
}
