// `smfs files`: a Volume served over TCP (docs/smfs-files.md). Reads, lists and stats run as
// they come; every change goes through the volume's one writer.
import { SmfsError } from '../errors';
import { FrameServer } from '../frame-server';
import type { FrameServerOptions } from '../frame-server';
import { Cursor, encodeJson, encodeU64 } from '../wire';
import { CHANGE_OPS, FileOp, readChange, readLevel, readPath } from './protocol';
import type { Change } from './tree';
import type { Volume } from './volume';

export class FileServer {
  private constructor(readonly volume: Volume, private readonly frames: FrameServer) {}

  static async listen(volume: Volume, options: FrameServerOptions): Promise<FileServer> {
    let server: FileServer | undefined;
    const frames = await FrameServer.listen('smfs files', (op, body) => server!.dispatch(op, body), options);
    server = new FileServer(volume, frames);
    return server;
  }

  get address(): { host: string; port: number } {
    return this.frames.address;
  }

  get counters() {
    return this.frames.counters;
  }

  // Stops accepting, answers what is in flight, closes the volume.
  async close(): Promise<void> {
    await this.frames.close();
    await this.volume.close();
  }

  private async dispatch(op: number, body: Buffer): Promise<Uint8Array[]> {
    const c = new Cursor(body, `files op ${op}`);
    if (CHANGE_OPS.includes(op)) {
      const change = readChange(op, c);
      c.end();
      return [encodeU64(await this.volume.apply([change]))];
    }
    switch (op) {
      case FileOp.read: {
        const path = readPath(c);
        c.end();
        return [await this.volume.read(path)];
      }
      case FileOp.list: {
        const path = readPath(c);
        c.end();
        return [encodeJson(await this.volume.list(path))];
      }
      case FileOp.group: {
        const n = c.u32();
        const changes: Change[] = [];
        for (let i = 0; i < n; i++) changes.push(readChange(c.u8(), c));
        c.end();
        return [encodeU64(await this.volume.apply(changes))];
      }
      case FileOp.commit: {
        const level = readLevel(c);
        const n = c.u32();
        const changes: Change[] = [];
        for (let i = 0; i < n; i++) changes.push(readChange(c.u8(), c));
        c.end();
        if (level !== 'tagged') return [encodeU64(await this.volume.apply(changes, { level }))];
        const r = await this.volume.commit(changes, level);
        return [encodeU64(r.update), encodeU64(r.seq), encodeU64(r.mirrored)];
      }
      case FileOp.tagState:
        c.end();
        return [encodeJson(await this.volume.tagState())];
      case FileOp.readRange: {
        const path = readPath(c);
        const offset = c.u64();
        const length = c.u32();
        c.end();
        return [await this.volume.readRange(path, offset, length)];
      }
      case FileOp.tree:
        c.end();
        return [encodeJson(await this.volume.tree())];
      case FileOp.statfs:
        c.end();
        return [encodeJson(await this.volume.statfs())];
      case FileOp.stat:
        c.end();
        return [encodeJson({ ...await this.volume.stat(), server: this.frames.counters })];
      default:
        throw new SmfsError('SMFS_ERR_FRAME', `unknown op ${op}; the file server knows ${Object.entries(FileOp).map(([k, v]) => `${v} (${k})`).join(', ')}`);
    }
  }
}
