// A client of `smfs files`: whole-file writes and reads, listings, mkdir, remove, rename, and
// group updates (several changes committed as one, all or none). Each change resolves to the
// number of the update that committed it.
import type { Endpoint } from '../frame-client';
import { FrameClient, connectSocket } from '../frame-client';
import type { Credential } from '../credentials';
import { encodeText } from '../text';
import { Cursor, encodeU32, encodeU64 } from '../wire';
import { FileOp, changeOp, encodeChange, encodeLevel } from './protocol';
import type { AckLevel } from '../mirror';
import type { Change } from './tree';
import type { ListEntry, TreeEntry, VolumeStat, VolumeStatfs } from './volume';
import type { ConnectionCounters } from '../frame-server';

export type FileServerStat = VolumeStat & { server: ConnectionCounters };

function updateNumber(body: Buffer): number {
  const c = new Cursor(body, 'update answer');
  const n = c.u64();
  c.end();
  return n;
}

export class FileClient extends FrameClient {
  static async connect(e: Endpoint, credential: Credential): Promise<FileClient> {
    return new FileClient(await connectSocket(e, 'file server', credential), e, 'file server');
  }

  async change(change: Change): Promise<number> {
    return updateNumber(await this.request(changeOp(change), encodeChange(change)));
  }

  write(path: string, data: Uint8Array): Promise<number> {
    return this.change({ op: 'write', path, data: Buffer.from(data.buffer, data.byteOffset, data.length) });
  }

  mkdir(path: string, options: { parents?: boolean } = {}): Promise<number> {
    return this.change({ op: 'mkdir', path, parents: options.parents });
  }

  remove(path: string, options: { recursive?: boolean } = {}): Promise<number> {
    return this.change({ op: 'remove', path, recursive: options.recursive });
  }

  rename(from: string, to: string): Promise<number> {
    return this.change({ op: 'rename', from, to });
  }

  // Every change in order, committed as one update: all of them or none.
  async group(changes: Change[]): Promise<number> {
    const body: Uint8Array[] = [encodeU32(changes.length)];
    for (const c of changes) body.push(Buffer.of(changeOp(c)), ...encodeChange(c));
    return updateNumber(await this.request(FileOp.group, body));
  }

  // Every change in order as one update acknowledged at `level` (protocol version 2: the
  // changes may include make and patch).
  async commit(changes: Change[], options: { level?: AckLevel } = {}): Promise<number> {
    const body: Uint8Array[] = [encodeLevel(options.level), encodeU32(changes.length)];
    for (const c of changes) body.push(Buffer.of(changeOp(c)), ...encodeChange(c));
    return updateNumber(await this.request(FileOp.commit, body));
  }

  // A commit at 'tagged': its update, the storage group's sequence number (0: nothing changed)
  // and the storage server's mirrored-through watermark.
  async commitTagged(changes: Change[]): Promise<{ update: number; seq: number; mirrored: number }> {
    const body: Uint8Array[] = [encodeLevel('tagged'), encodeU32(changes.length)];
    for (const c of changes) body.push(Buffer.of(changeOp(c)), ...encodeChange(c));
    const c = new Cursor(await this.request(FileOp.commit, body), 'tagged commit answer');
    const r = { update: c.u64(), seq: c.u64(), mirrored: c.u64() };
    c.end();
    return r;
  }

  async tagState(): Promise<{ update: number; role: string; mirrored: number | null }> {
    return JSON.parse((await this.request(FileOp.tagState)).toString('utf8')) as { update: number; role: string; mirrored: number | null };
  }

  readRange(path: string, offset: number, length: number): Promise<Buffer> {
    return this.request(FileOp.readRange, [encodeText(path), encodeU64(offset), encodeU32(length)]);
  }

  async tree(): Promise<{ update: number; root: TreeEntry }> {
    return JSON.parse((await this.request(FileOp.tree)).toString('utf8')) as { update: number; root: TreeEntry };
  }

  async statfs(): Promise<VolumeStatfs> {
    return JSON.parse((await this.request(FileOp.statfs)).toString('utf8')) as VolumeStatfs;
  }

  read(path: string): Promise<Buffer> {
    return this.request(FileOp.read, [encodeText(path)]);
  }

  async list(path: string): Promise<ListEntry[]> {
    return JSON.parse((await this.request(FileOp.list, [encodeText(path)])).toString('utf8')) as ListEntry[];
  }

  async stat(): Promise<FileServerStat> {
    return JSON.parse((await this.request(FileOp.stat)).toString('utf8')) as FileServerStat;
  }
}
