// `smfs storage`: a LogStore served over TCP (docs/smfs.md, "Protocol"). Each connection
// authenticates first (frame-server.ts), then may send many requests without waiting; each is answered under its request id, changes are
// applied in the order they arrive, and a request that is refused is answered with its error
// code while the connection's other requests go on.
import fs from 'node:fs';
import { SmfsError } from './errors';
import { LIMITS } from './format';
import type { Address } from './format';
import { LogStore } from './store';
import type { AppendRecord, ShippedPart } from './store';
import { ACK_LEVELS, writeRole } from './mirror';
import type { AckLevel, MirrorLink, Role } from './mirror';
import { FrameServer, connectionCounters } from './frame-server';
import type { Connection, ConnectionCounters, FrameServerOptions } from './frame-server';
import { traceMirror } from './trace';
import { ALL_LOGS, AppendFlags, Cursor, NOT_REACHED, OP_NAMES, Op, encodeAddress, encodeJson, encodeU32, encodeU64 } from './wire';

export interface ServerCounters extends ConnectionCounters {
  appends: Record<AckLevel, number>; // appends answered, by the level they asked for
  mirroredGroups: number;  // as a mirror: groups written for the primary
  primaryStreams: number;  // as a mirror: primaries that said hello (a newer one replaces the older)
}

export interface ServerOptions extends Omit<FrameServerOptions, 'opNames'> {
  role?: Role;             // default primary
  plainMirrorStream?: boolean; // as a mirror: take the primary's stream without TLS too (default: only over TLS)
  mirror?: MirrorLink;     // a primary's link to its mirror
  defaultLevel?: AckLevel; // for appends that do not ask (default: local without a mirror, else network with feedback, else remote)
}

// The file system holding the store's directory (a file server's statfs reports it).
function diskSpace(dir: string): { totalBytes: number; freeBytes: number } | null {
  try {
    const s = fs.statfsSync(dir);
    return { totalBytes: s.blocks * s.bsize, freeBytes: s.bavail * s.bsize };
  } catch {
    return null;
  }
}

function microsSince(t0: bigint): number {
  return Math.min(NOT_REACHED - 1, Number((process.hrtime.bigint() - t0) / 1000n));
}

export class StorageServer {
  readonly counters: ServerCounters = { ...connectionCounters(), appends: { local: 0, network: 0, remote: 0 }, mirroredGroups: 0, primaryStreams: 0 };
  private role: Role;
  private readonly mirror: MirrorLink | undefined;
  readonly defaultLevel: AckLevel;
  private primaryStream: Connection | undefined;
  private promoting: Promise<unknown> | undefined;
  private frames!: FrameServer;
  private closing: Promise<void> | undefined;

  private constructor(private storeNow: LogStore, private readonly options: ServerOptions) {
    this.role = options.role ?? 'primary';
    this.mirror = options.mirror;
    this.defaultLevel = options.defaultLevel ?? (!this.mirror ? 'local' : this.mirror.networkSync ? 'network' : 'remote');
  }

  static async listen(store: LogStore, options: ServerOptions): Promise<StorageServer> {
    if (options.role === 'mirror' && options.mirror) throw new SmfsError('SMFS_ERR_REQUEST', 'a mirror does not mirror further');
    if (options.defaultLevel && options.defaultLevel !== 'local' && !options.mirror) throw new SmfsError('SMFS_ERR_REQUEST', `a default level '${options.defaultLevel}' needs a mirror`);
    if (options.defaultLevel === 'network' && !options.mirror?.networkSync) throw new SmfsError('SMFS_ERR_REQUEST', "a default level 'network' needs feedback from the gateways");
    const s = new StorageServer(store, options);
    s.frames = await FrameServer.listen('smfs storage', (op, body, conn) => s.dispatch(op, body, conn), { ...options, opNames: OP_NAMES }, s.counters);
    return s;
  }

  get store(): LogStore {
    return this.storeNow;
  }

  get currentRole(): Role {
    return this.role;
  }

  stat(): Record<string, unknown> {
    return {
      ...this.store.stat(), recovery: this.store.recovery, server: this.counters, role: this.role, defaultLevel: this.defaultLevel,
      mirror: this.mirror?.stat() ?? null, primary: this.primaryStream ? `${this.primaryStream.socket.remoteAddress}:${this.primaryStream.socket.remotePort}` : null,
      primaryTls: this.primaryStream?.tls ?? null, disk: diskSpace(this.store.dir),
    };
  }

  // A mirror becomes a primary: it stops taking the old primary's stream, closes its store
  // (everything fsynced, the durable mark written) and opens it again, which runs recovery:
  // whatever the old primary's stream left, the logs are the longest prefix of whole groups.
  private promote(): Promise<Buffer> {
    if (this.role !== 'mirror') return Promise.reject(new SmfsError('SMFS_ERR_REQUEST', 'this server is a primary already'));
    this.promoting ??= (async () => {
      this.primaryStream?.destroy();
      this.primaryStream = undefined;
      const { dir, options } = this.store;
      await this.store.close();
      this.storeNow = await LogStore.open(dir, { ...options, mirror: true });
      writeRole(dir, 'primary');
      this.role = 'primary';
      return encodeJson({ lastSeq: this.store.lastSeq, logs: this.store.ends(), recovery: this.store.recovery });
    })().finally(() => { this.promoting = undefined; });
    return this.promoting as Promise<Buffer>;
  }

  private readOnly(op: number): void {
    if (this.promoting) throw new SmfsError('SMFS_ERR_CLOSED', 'the server is being promoted; try again');
    if (this.role === 'mirror') throw new SmfsError('SMFS_ERR_READONLY', `${OP_NAMES[op]}: this server is a mirror; it takes changes only from its primary (smfs promote makes it a primary)`);
  }

  private fromPrimary(conn: Connection): void {
    if (this.role !== 'mirror') throw new SmfsError('SMFS_ERR_REQUEST', 'this server is not a mirror (start it with --role mirror)');
    if (conn !== this.primaryStream) throw new SmfsError('SMFS_ERR_REQUEST', 'mirrored changes come only on the connection that said hello last');
  }

  get address(): { host: string; port: number } {
    return this.frames.address;
  }

  // Stops accepting, lets every connection finish what it asked, closes the store.
  close(): Promise<void> {
    this.closing ??= (async () => {
      await this.frames.close();
      this.mirror?.close();
      await this.promoting?.catch(() => undefined);
      await this.store.close();
    })();
    return this.closing;
  }

  // Anything before the first await runs as the frame arrives, so the store gets changes in
  // the order they came.
  private async dispatch(op: number, body: Buffer, conn: Connection): Promise<Buffer[]> {
    const name = OP_NAMES[op];
    const c = new Cursor(body, name ?? `op ${op}`);
    switch (op) {
      case Op.createLog: {
        const log = c.u32();
        c.end();
        this.readOnly(op);
        await this.store.createLog(log);
        return [];
      }
      case Op.append: {
        const t0 = process.hrtime.bigint();
        const flags = c.u32();
        if ((flags & ~(AppendFlags.levelMask | AppendFlags.timings)) !== 0) throw new SmfsError('SMFS_ERR_REQUEST', `append flags 0x${flags.toString(16)}: only the level (bits 0-1) and timings (bit 2) are known`);
        const code = flags & AppendFlags.levelMask;
        const level = code === 0 ? this.defaultLevel : ACK_LEVELS[code - 1];
        const n = c.u32();
        if (n === 0) throw new SmfsError('SMFS_ERR_REQUEST', 'a group needs at least one record');
        if (n > LIMITS.groupRecords) throw new SmfsError('SMFS_ERR_TOO_LARGE', `a group holds at most ${LIMITS.groupRecords} records, got ${n}`);
        const records: AppendRecord[] = [];
        for (let i = 0; i < n; i++) {
          const log = c.u32();
          const length = c.u32();
          const crc = c.u32();
          if (length > LIMITS.recordBytes) throw new SmfsError('SMFS_ERR_TOO_LARGE', `record ${i} has ${length} bytes; a record holds at most ${LIMITS.recordBytes}`);
          records.push({ log, crc, data: c.bytes(length) });
        }
        c.end();
        this.readOnly(op);
        if (level !== 'local' && !this.mirror) throw new SmfsError('SMFS_ERR_REQUEST', `level '${level}' needs a mirror; this server has none (--mirror)`);
        if (level === 'network' && !this.mirror!.networkSync) throw new SmfsError('SMFS_ERR_REQUEST', "level 'network' needs feedback from the gateways; this server has none (--gateway)");
        const { addresses, seq } = await this.store.appendGroup(records);
        await this.mirror?.wait(seq, 'local');
        const times = [microsSince(t0), NOT_REACHED, NOT_REACHED];
        if (this.mirror && level !== 'local') {
          const network = this.mirror.networkSync ? this.mirror.wait(seq, 'network').then(() => { times[1] = microsSince(t0); }) : undefined;
          if (level === 'network') await network;
          else {
            network?.catch(() => undefined);
            await this.mirror.wait(seq, 'remote');
            times[2] = microsSince(t0);
          }
        }
        this.counters.appends[level]++;
        const answer = [encodeU32(addresses.length), ...addresses.map(encodeAddress)];
        if (flags & AppendFlags.timings) answer.push(...times.map(encodeU32));
        return answer;
      }
      case Op.read: {
        const a = c.address();
        c.end();
        const r = await this.store.read(a);
        return [encodeU32(r.data.length), encodeU32(r.crc), r.data];
      }
      case Op.free: {
        const n = c.u32();
        if (n > LIMITS.groupRecords) throw new SmfsError('SMFS_ERR_TOO_LARGE', `free takes at most ${LIMITS.groupRecords} addresses, got ${n}`);
        const addresses: Address[] = [];
        for (let i = 0; i < n; i++) addresses.push(c.address());
        c.end();
        this.readOnly(op);
        await this.store.free(addresses);
        return [];
      }
      case Op.clean: {
        const log = c.u32();
        const percent = c.u8();
        c.end();
        if (percent > 100) throw new SmfsError('SMFS_ERR_REQUEST', `clean takes a live share from 0 to 100 percent, got ${percent}`);
        return [encodeJson(await this.store.clean({ maxLiveRatio: percent / 100, logs: log === ALL_LOGS ? undefined : [log] }))];
      }
      case Op.stat: {
        c.end();
        return [encodeJson(this.stat())];
      }
      case Op.sync: {
        c.end();
        return [encodeU64(await this.store.sync())];
      }
      case Op.tail: {
        const log = c.u32();
        c.end();
        const a = this.store.tail(log);
        return [Buffer.of(a ? 1 : 0), encodeAddress(a ?? { log: 0, segment: 0, offset: 0 })];
      }
      case Op.mirrorHello: {
        c.end();
        if (this.role !== 'mirror') throw new SmfsError('SMFS_ERR_REQUEST', 'this server is not a mirror (start it with --role mirror)');
        if (!conn.tls && !this.options.plainMirrorStream) {
          throw new SmfsError('SMFS_ERR_AUTH', 'this mirror takes the mirror stream only over TLS, and the primary came without (--mirror-tls off); turn TLS on at the primary, or start the mirror with --mirror-tls off');
        }
        // A primary that reconnects replaces its old connection, which may be half dead.
        if (this.primaryStream && this.primaryStream !== conn) this.primaryStream.destroy();
        this.primaryStream = conn;
        this.counters.primaryStreams++;
        void conn.closed.then(() => { if (this.primaryStream === conn) this.primaryStream = undefined; });
        await this.store.sync();
        return [encodeJson({ lastSeq: this.store.lastSeq, logs: this.store.ends() })];
      }
      case Op.mirrorCreate: {
        const log = c.u32();
        c.end();
        this.fromPrimary(conn);
        await this.store.createLog(log);
        return [];
      }
      case Op.mirrorGroup: {
        const seq = c.u64();
        const n = c.u32();
        if (n === 0 || n > LIMITS.groupRecords) throw new SmfsError('SMFS_ERR_REQUEST', `a mirrored group has 1 to ${LIMITS.groupRecords} parts, got ${n}`);
        const parts: ShippedPart[] = [];
        for (let i = 0; i < n; i++) {
          const log = c.u32();
          const segment = c.u32();
          const offset = c.u32();
          parts.push({ log, segment, offset, bytes: c.bytes(c.u32()) });
        }
        c.end();
        this.fromPrimary(conn);
        traceMirror('recv', seq);
        await this.store.applyMirrored(seq, parts);
        this.counters.mirroredGroups++;
        return [];
      }
      case Op.promote: {
        c.end();
        return [await this.promote()];
      }
      default:
        throw new SmfsError('SMFS_ERR_FRAME', `unknown op ${op}; this server knows ${Object.entries(Op).map(([k, v]) => `${v} (${k})`).join(', ')}`);
    }
  }
}
