// A tag cache's spill file (docs/smfs.md, "The client's cache"): the groups and shares a tagged
// client keeps, for a client that must still have them after its own restart. Each entry is
// fsynced before the primary is told the group is held; entries that wait together share one
// fdatasync. Big-endian:
//
//   header   u32 magic "SMTC", u16 version 1, u16 0, client id (16 bytes), u32 CRC-32 of bytes 0-23
//   entry    u32 magic "SMTE", u8 kind, u32 length, payload, u32 CRC-32 of the entry before it
//            kind 1 group: its mirror-group body; 2 share: as pushed; 3 mirrored-through: u64
//
// A torn last entry is cut off when the file is opened. The mirrored-through entries are not
// fsynced: losing one only brings back groups the mirror has, which a handover finds present.
// The file is cut back to its header when the cache empties, and rewritten (through a
// temporary file and a rename) when it grows past twice what is kept plus 16 MiB.
import fs from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { crc32 } from './checksum';
import { SmfsError } from './errors';
import { fsyncDirectoryAsync } from './files';
import { CLIENT_ID_BYTES, decodeShare, encodeShare } from './tagging';
import type { Share } from './tagging';
import { Cursor } from './wire';

const FILE_MAGIC = 0x534d5443; // "SMTC"
const ENTRY_MAGIC = 0x534d5445; // "SMTE"
const VERSION = 1;
const HEADER = 28;
const ENTRY_OVERHEAD = 13;
const Kind = { group: 1, share: 2, mirrored: 3 } as const;
const REWRITE_SLACK = 16 * 1024 * 1024;

interface Pending {
  bytes: Buffer;
  sync: boolean;
  resolve: () => void;
  reject: (e: unknown) => void;
}

function header(clientId: Buffer): Buffer {
  const b = Buffer.alloc(HEADER);
  b.writeUInt32BE(FILE_MAGIC, 0);
  b.writeUInt16BE(VERSION, 4);
  clientId.copy(b, 8);
  b.writeUInt32BE(crc32(b.subarray(0, 24)), 24);
  return b;
}

function entry(kind: number, payload: Buffer[]): Buffer {
  const length = payload.reduce((n, p) => n + p.length, 0);
  const b = Buffer.allocUnsafe(ENTRY_OVERHEAD + length);
  b.writeUInt32BE(ENTRY_MAGIC, 0);
  b[4] = kind;
  b.writeUInt32BE(length, 5);
  let at = 9;
  for (const p of payload) at += p.copy(b, at);
  b.writeUInt32BE(crc32(b.subarray(0, at)), at);
  return b;
}

function mirroredEntry(seq: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(seq), 0);
  return entry(Kind.mirrored, [b]);
}

export class TagSpill {
  private size: number;
  private pending: Pending[] = [];
  private writing: Promise<void> = Promise.resolve();
  private flushing = false;

  private constructor(readonly file: string, private fh: FileHandle, private readonly head: Buffer, size: number) {
    this.size = size;
  }

  // Opens the file, or makes it with a header for `newId`; what it keeps, newest mirrored-through
  // mark applied. A torn last entry is cut off; a header that does not check out is refused.
  static async open(file: string, newId: Buffer): Promise<{ spill: TagSpill; clientId: Buffer; groups: { seq: number; body: Buffer }[]; shares: Share[] }> {
    let data: Buffer;
    try {
      data = fs.readFileSync(file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new SmfsError('SMFS_ERR_IO', `tag spill file ${file}: ${(err as Error).message}`, { cause: err });
      data = Buffer.alloc(0);
    }
    if (data.length < HEADER) {
      // New, or its header torn before it was ever fsynced: nothing was kept in it.
      const head = header(newId);
      const tmp = `${file}.tmp`;
      fs.writeFileSync(tmp, head, { mode: 0o600 });
      const fd = fs.openSync(tmp, 'r+');
      fs.fdatasyncSync(fd);
      fs.closeSync(fd);
      fs.renameSync(tmp, file);
      await fsyncDirectoryAsync(path.dirname(path.resolve(file)));
      return { spill: new TagSpill(file, await fs.promises.open(file, 'r+'), head, HEADER), clientId: newId, groups: [], shares: [] };
    }
    if (data.readUInt32BE(0) !== FILE_MAGIC || data.readUInt16BE(4) !== VERSION || data.readUInt32BE(24) !== crc32(data.subarray(0, 24))) {
      throw new SmfsError('SMFS_ERR_CORRUPT', `${file} is not a tag spill file of this version (its header does not check out); move it aside`);
    }
    const clientId = Buffer.from(data.subarray(8, 8 + CLIENT_ID_BYTES));
    const groups = new Map<number, Buffer>();
    const shares: { newest: number; share: Share }[] = [];
    let mirrored = 0;
    let at = HEADER;
    while (at + ENTRY_OVERHEAD <= data.length) {
      if (data.readUInt32BE(at) !== ENTRY_MAGIC) break;
      const length = data.readUInt32BE(at + 5);
      const end = at + 9 + length;
      if (end + 4 > data.length || data.readUInt32BE(end) !== crc32(data.subarray(at, end))) break;
      const payload = Buffer.from(data.subarray(at + 9, end));
      const kind = data[at + 4];
      if (kind === Kind.group && payload.length >= 8) groups.set(Number(payload.readBigUInt64BE(0)), payload);
      else if (kind === Kind.share) {
        const share = decodeShare(new Cursor(payload, 'spilled share'));
        shares.push({ newest: Math.max(...share.members.map((m) => m.seq)), share });
      } else if (kind === Kind.mirrored && payload.length === 8) mirrored = Math.max(mirrored, Number(payload.readBigUInt64BE(0)));
      at = end + 4;
    }
    const fh = await fs.promises.open(file, 'r+');
    if (at < data.length) {
      await fh.truncate(at);
      await fh.datasync();
    }
    return {
      spill: new TagSpill(file, fh, data.subarray(0, HEADER), at), clientId,
      groups: [...groups].filter(([seq]) => seq > mirrored).map(([seq, body]) => ({ seq, body })),
      shares: shares.filter((s) => s.newest > mirrored).map((s) => s.share),
    };
  }

  appendGroup(body: Buffer, stats: { spillBytes: number; spillSyncs: number }): Promise<void> {
    return this.enqueue(entry(Kind.group, [body]), true, stats);
  }

  appendShare(share: Share, stats: { spillBytes: number; spillSyncs: number }): Promise<void> {
    return this.enqueue(entry(Kind.share, encodeShare(share)), true, stats);
  }

  // The cache dropped what the mirror has: cut the file back when nothing is kept, rewrite it
  // when it has grown far past what is kept, else note the mark.
  forget(mirrored: number, empty: boolean, kept: () => { groups: Buffer[]; shares: Share[] }): void {
    if (empty) {
      this.serial(async () => {
        await this.fh.truncate(HEADER);
        this.size = HEADER;
      });
      return;
    }
    void this.enqueue(mirroredEntry(mirrored), false, undefined).catch(() => undefined);
    const { groups, shares } = kept();
    const live = groups.reduce((n, b) => n + b.length + ENTRY_OVERHEAD, HEADER) + shares.reduce((n, s) => n + encodeShare(s).reduce((k, b) => k + b.length, ENTRY_OVERHEAD), 0);
    if (this.size > 2 * live + REWRITE_SLACK) this.serial(() => this.rewrite([...groups.map((g) => entry(Kind.group, [g])), ...shares.map((s) => entry(Kind.share, encodeShare(s)))]));
  }

  // Back to the header alone, on disk.
  reset(): Promise<void> {
    return this.serial(async () => {
      await this.fh.truncate(HEADER);
      await this.fh.datasync();
      this.size = HEADER;
    });
  }

  close(): Promise<void> {
    return this.serial(() => this.fh.close());
  }

  private serial(fn: () => Promise<void>): Promise<void> {
    const run = this.writing.catch(() => undefined).then(fn);
    this.writing = run;
    run.catch(() => undefined);
    return run;
  }

  private enqueue(bytes: Buffer, sync: boolean, stats: { spillBytes: number; spillSyncs: number } | undefined): Promise<void> {
    return new Promise((resolve, reject) => {
      this.pending.push({ bytes, sync, resolve, reject });
      if (stats) stats.spillBytes += bytes.length;
      if (!this.flushing) {
        this.flushing = true;
        void this.serial(() => this.flush(stats));
      }
    });
  }

  // Everything waiting, in one write and (if any of it asks) one fdatasync.
  private async flush(stats: { spillSyncs: number } | undefined): Promise<void> {
    while (this.pending.length > 0) {
      const batch = this.pending.splice(0);
      try {
        const bytes = Buffer.concat(batch.map((p) => p.bytes));
        await this.fh.write(bytes, 0, bytes.length, this.size);
        this.size += bytes.length;
        if (batch.some((p) => p.sync)) {
          await this.fh.datasync();
          if (stats) stats.spillSyncs++;
        }
        for (const p of batch) p.resolve();
      } catch (err) {
        const e = new SmfsError('SMFS_ERR_IO', `tag spill file ${this.file}: ${(err as Error).message}`, { cause: err });
        for (const p of batch) p.reject(e);
      }
    }
    this.flushing = false;
  }

  private async rewrite(entries: Buffer[]): Promise<void> {
    const tmp = `${this.file}.tmp`;
    const bytes = Buffer.concat([this.head, ...entries]);
    const fh = await fs.promises.open(tmp, 'w', 0o600);
    try {
      await fh.write(bytes, 0, bytes.length, 0);
      await fh.datasync();
    } finally {
      await fh.close();
    }
    await fs.promises.rename(tmp, this.file);
    await fsyncDirectoryAsync(path.dirname(path.resolve(this.file)));
    await this.fh.close();
    this.fh = await fs.promises.open(this.file, 'r+');
    this.size = bytes.length;
  }
}
