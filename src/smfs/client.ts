// A client of `smfs storage`: one TCP connection, authenticated both ways, requests pipelined
// and matched to answers by id. Record checksums go both ways: the server checks what an
// append carries, the client checks what a read brings back.
import type net from 'node:net';
import { crc32 } from './checksum';
import type { Credential } from './credentials';
import { SmfsError } from './errors';
import type { Address } from './format';
import type { CleanReport, StoreStat } from './store';
import type { RecoveryReport } from './recovery';
import type { ServerCounters } from './server';
import { ALL_LOGS, AppendFlags, Cursor, LEVEL_CODES, NOT_REACHED, Op, encodeAddress, encodeU32 } from './wire';
import { FrameClient, connectSocket } from './frame-client';
import type { Endpoint } from './frame-client';
import type { AckLevel, MirrorStat, Role } from './mirror';

export type ServerStat = StoreStat & {
  recovery: RecoveryReport; server: ServerCounters; role: Role; defaultLevel: AckLevel; mirror: MirrorStat | null; primary: string | null; primaryTls: boolean | null;
  disk?: { totalBytes: number; freeBytes: number } | null;
};

export class StorageClient extends FrameClient {
  private constructor(socket: net.Socket, endpoint: Endpoint) {
    super(socket, endpoint, 'storage server', {
      error: (err) => new SmfsError('SMFS_ERR_CLOSED', `connection to the storage server: ${err.message}`, { cause: err }),
      closed: () => new SmfsError('SMFS_ERR_CLOSED', 'the storage server closed the connection'),
    });
  }

  // Connects and authenticates with the deployment's credential; `tls` for a connection that
  // crosses the WAN. Failing to connect is SMFS_ERR_UNAVAILABLE; a refusal SMFS_ERR_AUTH.
  static async connect(e: Endpoint, credential: Credential, options: { tls?: boolean } = {}): Promise<StorageClient> {
    return new StorageClient(await connectSocket(e, 'storage server', credential, options), e);
  }

  async createLog(log: number): Promise<void> {
    await this.request(Op.createLog, [encodeU32(log)]);
  }

  async append(records: { log: number; data: Uint8Array }[], options: { level?: AckLevel } = {}): Promise<Address[]> {
    return (await this.appendTimed(records, options)).addresses;
  }

  // An append that also says how long after the server took it the group was written here
  // (local), network-safe and written at the mirror (remote), in microseconds; undefined for a
  // level not waited for.
  async appendTimed(records: { log: number; data: Uint8Array }[], options: { level?: AckLevel; timings?: boolean } = {}): Promise<{ addresses: Address[]; timings?: Record<AckLevel, number | undefined> }> {
    const flags = (options.level ? LEVEL_CODES[options.level] : 0) | (options.timings ? AppendFlags.timings : 0);
    const body: Uint8Array[] = [encodeU32(flags), encodeU32(records.length)];
    for (const r of records) {
      const h = Buffer.alloc(12);
      h.writeUInt32BE(r.log, 0);
      h.writeUInt32BE(r.data.length, 4);
      h.writeUInt32BE(crc32(r.data), 8);
      body.push(h, r.data);
    }
    const c = new Cursor(await this.request(Op.append, body), 'append answer');
    const n = c.u32();
    const addresses: Address[] = [];
    for (let i = 0; i < n; i++) addresses.push(c.address());
    let timings: Record<AckLevel, number | undefined> | undefined;
    if (options.timings) {
      const t = [c.u32(), c.u32(), c.u32()].map((v) => (v === NOT_REACHED ? undefined : v));
      timings = { local: t[0], network: t[1], remote: t[2] };
    }
    c.end();
    return { addresses, timings };
  }

  // Makes a mirror the primary (docs/smfs.md, "Failover"); resolves to what it now holds.
  async promote(): Promise<{ lastSeq: number; logs: { log: number; segment: number; offset: number }[]; recovery: RecoveryReport }> {
    return JSON.parse((await this.request(Op.promote)).toString('utf8')) as { lastSeq: number; logs: { log: number; segment: number; offset: number }[]; recovery: RecoveryReport };
  }

  async read(a: Address): Promise<Buffer> {
    const c = new Cursor(await this.request(Op.read, [encodeAddress(a)]), 'read answer');
    const length = c.u32();
    const crc = c.u32();
    const data = c.bytes(length);
    c.end();
    if (crc32(data) !== crc) throw new SmfsError('SMFS_ERR_CHECKSUM', `the record read from ${a.log}:${a.segment}:${a.offset} does not match its checksum; it was damaged on the way`);
    return data;
  }

  async free(addresses: Address[]): Promise<void> {
    await this.request(Op.free, [encodeU32(addresses.length), ...addresses.map(encodeAddress)]);
  }

  async clean(options: { maxLiveRatio?: number; log?: number } = {}): Promise<CleanReport> {
    const b = Buffer.alloc(5);
    b.writeUInt32BE(options.log ?? ALL_LOGS, 0);
    b[4] = Math.round((options.maxLiveRatio ?? 0.5) * 100);
    return JSON.parse((await this.request(Op.clean, [b])).toString('utf8')) as CleanReport;
  }

  async stat(): Promise<ServerStat> {
    return JSON.parse((await this.request(Op.stat)).toString('utf8')) as ServerStat;
  }

  async sync(): Promise<number> {
    const c = new Cursor(await this.request(Op.sync), 'sync answer');
    const seq = c.u64();
    c.end();
    return seq;
  }

  // The newest data record of a log (freed or not), or undefined if the log has none.
  async tail(log: number): Promise<Address | undefined> {
    const c = new Cursor(await this.request(Op.tail, [encodeU32(log)]), 'tail answer');
    const present = c.u8();
    const a = c.address();
    c.end();
    return present === 1 ? a : undefined;
  }

  // Several records in one request, in the order asked; all or none (the first address that
  // cannot be read fails the request with its error, as read would).
  async readMany(addresses: Address[]): Promise<Buffer[]> {
    const c = new Cursor(await this.request(Op.readMany, [encodeU32(addresses.length), ...addresses.map(encodeAddress)]), 'read-many answer');
    const out = addresses.map((a) => {
      const length = c.u32();
      const crc = c.u32();
      const data = c.bytes(length);
      if (crc32(data) !== crc) throw new SmfsError('SMFS_ERR_CHECKSUM', `the record read from ${a.log}:${a.segment}:${a.offset} does not match its checksum; it was damaged on the way`);
      return data;
    });
    c.end();
    return out;
  }
}
