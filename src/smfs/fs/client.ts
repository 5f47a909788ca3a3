// A client of `smfs files`: whole-file writes and reads, listings, mkdir, remove, rename, and
// group updates (several changes committed as one, all or none). Each change resolves to the
// number of the update that committed it.
import type { Endpoint } from '../frame-client';
import { FrameClient, connectSocket } from '../frame-client';
import type { Credential } from '../credentials';
import { encodeText } from '../text';
import { Cursor, encodeU32 } from '../wire';
import { FileOp, changeOp, encodeChange } from './protocol';
import type { Change } from './tree';
import type { ListEntry, VolumeStat } from './volume';
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
