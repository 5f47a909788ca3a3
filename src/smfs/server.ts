// `smfs storage`: a LogStore served over TCP (docs/smfs.md, "Protocol"). Each connection
// authenticates first (frame-server.ts), then may send many requests without waiting; each is answered under its request id, changes are
// applied in the order they arrive, and a request that is refused is answered with its error
// code while the connection's other requests go on.
import fs from 'node:fs';
import { SmfsError } from './errors';
import { LIMITS } from './format';
import type { Address } from './format';
import { LogStore } from './store';
import type { AppendRecord } from './store';
import { ACK_LEVELS, writeRole } from './mirror';
import type { AckLevel, MirrorLink, Role } from './mirror';
import { FrameServer, connectionCounters } from './frame-server';
import type { Connection, ConnectionCounters, FrameServerOptions } from './frame-server';
import { traceMirror } from './trace';
import { ALL_LOGS, AppendFlags, Cursor, NOT_REACHED, OP_NAMES, Op, encodeAddress, encodeAddresses, encodeJson, encodeU32, encodeU64 } from './wire';
import { TagService } from './tag-service';
import type { Watermarks } from './tag-service';
import { HandoverRecovery, decodeHandover } from './handover';
import type { HandoverReport } from './handover';
import { CLIENT_ID_BYTES, TAG_VERSION, decodeGroupBody, encodeTag } from './tagging';

export interface ServerCounters extends ConnectionCounters {
  appends: Record<AckLevel | 'tagged', number>; // appends answered, by the level they asked for
  frees: { tagged: number };
  handovers: number;       // handover frames taken
  mirroredGroups: number;  // as a mirror: groups written for the primary
  primaryStreams: number;  // as a mirror: primaries that said hello (a newer one replaces the older)
}

export interface ServerOptions extends Omit<FrameServerOptions, 'opNames'> {
  role?: Role;             // default primary
  plainMirrorStream?: boolean; // as a mirror: take the primary's stream without TLS too (default: only over TLS)
  mirror?: MirrorLink;     // a primary's link to its mirror
  defaultLevel?: AckLevel; // for appends that do not ask (default: local without a mirror, else network with feedback, else remote)
  codedShares?: number;    // tagged appends also go into coded shares that other clients hold (0 or 1)
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

export interface PromoteOptions {
  awaitClients: number;    // clients whose caches to wait for before opening for appends
  graceMs: number;         // how long at most (with awaitClients), or how long (alone)
}

export const MAX_CODED_SHARES = 1;

function microsSince(t0: bigint): number {
  return Math.min(NOT_REACHED - 1, Number((process.hrtime.bigint() - t0) / 1000n));
}

export class StorageServer {
  readonly counters: ServerCounters = {
    ...connectionCounters(), appends: { local: 0, network: 0, remote: 0, tagged: 0 }, frees: { tagged: 0 }, handovers: 0, mirroredGroups: 0, primaryStreams: 0,
  };
  private role: Role;
  private readonly mirror: MirrorLink | undefined;
  private readonly tags: TagService | undefined;
  private recovery: HandoverRecovery | undefined;
  readonly defaultLevel: AckLevel;
  private primaryStream: Connection | undefined;
  private promoting: Promise<unknown> | undefined;
  private frames!: FrameServer;
  private closing: Promise<void> | undefined;

  private constructor(private storeNow: LogStore, private readonly options: ServerOptions) {
    this.role = options.role ?? 'primary';
    this.mirror = options.mirror;
    this.defaultLevel = options.defaultLevel ?? (!this.mirror ? 'local' : this.mirror.networkSync ? 'network' : 'remote');
    this.tags = this.mirror ? new TagService(this.mirror, options.codedShares ?? 0) : undefined;
  }

  static async listen(store: LogStore, options: ServerOptions): Promise<StorageServer> {
    if (options.role === 'mirror' && options.mirror) throw new SmfsError('SMFS_ERR_REQUEST', 'a mirror does not mirror further');
    if (options.defaultLevel && options.defaultLevel !== 'local' && !options.mirror) throw new SmfsError('SMFS_ERR_REQUEST', `a default level '${options.defaultLevel}' needs a mirror`);
    if (options.defaultLevel === 'network' && !options.mirror?.networkSync) throw new SmfsError('SMFS_ERR_REQUEST', "a default level 'network' needs feedback from the gateways");
    const k = options.codedShares ?? 0;
    if (!Number.isInteger(k) || k < 0 || k > MAX_CODED_SHARES) throw new SmfsError('SMFS_ERR_REQUEST', `coded shares survive the loss of 0 or ${MAX_CODED_SHARES} client, got ${k}`);
    if (k > 0 && !options.mirror) throw new SmfsError('SMFS_ERR_REQUEST', 'coded shares cover groups until the mirror has them: they need a mirror');
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
      tags: this.tags?.stat() ?? null, recovering: this.recovering, handover: this.recovery?.stat() ?? null,
    };
  }

  // Promoted with --await-clients or --grace, and still taking the clients' caches.
  get recovering(): boolean {
    return this.recovery !== undefined && this.recovery.state !== 'done';
  }

  // A mirror becomes a primary: it stops taking the old primary's stream, closes its store
  // (everything fsynced, the durable mark written) and opens it again, which runs recovery:
  // whatever the old primary's stream left, the logs are the longest prefix of whole groups.
  // With clients to await (or a grace), it then takes their caches (handover.ts), replays what
  // it lacks, and only then opens for appends and stops being a mirror on disk: a server that
  // dies while recovering comes back a mirror, to be promoted again.
  private async promote(o: PromoteOptions): Promise<Buffer> {
    if (this.role !== 'mirror') throw new SmfsError('SMFS_ERR_REQUEST', 'this server is a primary already');
    const awaiting = o.awaitClients > 0 || o.graceMs > 0;
    this.promoting ??= (async () => {
      this.primaryStream?.destroy();
      this.primaryStream = undefined;
      const { dir, options } = this.store;
      await this.store.close();
      this.storeNow = await LogStore.open(dir, { ...options, mirror: true });
      if (awaiting) this.recovery = new HandoverRecovery(this.store, o);
      else writeRole(dir, 'primary');
      this.role = 'primary';
    })().finally(() => { this.promoting = undefined; });
    await this.promoting;
    let handover: HandoverReport | null = null;
    if (this.recovery) {
      handover = await this.recovery.done;
      writeRole(this.store.dir, 'primary');
    }
    return encodeJson({ lastSeq: this.store.lastSeq, logs: this.store.ends(), recovery: this.store.recovery, handover });
  }

  private readOnly(op: number): void {
    if (this.promoting) throw new SmfsError('SMFS_ERR_CLOSED', 'the server is being promoted; try again');
    if (this.role === 'mirror') throw new SmfsError('SMFS_ERR_READONLY', `${OP_NAMES[op]}: this server is a mirror; it takes changes only from its primary (smfs promote makes it a primary)`);
    if (this.recovering) throw new SmfsError('SMFS_ERR_RECOVERING', `${OP_NAMES[op]}: this server was promoted and is taking its clients' cached groups first; try again shortly`);
  }

  // The watermarks for a tag, and that level 'tagged' can be had here.
  private tagService(): TagService {
    if (!this.tags) throw new SmfsError('SMFS_ERR_REQUEST', "a tag (level 'tagged', a tagged mount) needs a mirror; this server has none (--mirror)");
    return this.tags;
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
      this.recovery?.close();
      await this.frames.close();
      this.tags?.close();
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
        if ((flags & ~(AppendFlags.levelMask | AppendFlags.timings | AppendFlags.tag | AppendFlags.sequence)) !== 0) {
          throw new SmfsError('SMFS_ERR_REQUEST', `append flags 0x${flags.toString(16)}: only the level (bits 0-1), timings (bit 2), tag (bit 3) and sequence (bit 4) are known`);
        }
        const code = flags & AppendFlags.levelMask;
        const level = code === 0 ? this.defaultLevel : ACK_LEVELS[code - 1];
        const tagged = (flags & AppendFlags.tag) !== 0 && level === 'local';
        const tag = (flags & (AppendFlags.tag | AppendFlags.sequence)) !== 0;
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
        const tags = tag ? this.tagService() : undefined;
        if (tagged && !tags!.subscribed(conn)) throw new SmfsError('SMFS_ERR_REQUEST', "level 'tagged' needs tag-hello on the connection first");
        const { addresses, seq, durableSeq, parts } = await this.store.appendGroup(records, { keepParts: tagged && tags!.codedShares > 0 });
        await this.mirror?.wait(seq, 'local');
        let marks: Watermarks | undefined = tagged ? tags!.tagged(conn, seq, parts) : undefined;
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
        this.counters.appends[tagged ? 'tagged' : level]++;
        const answer = [encodeAddresses(addresses)];
        if (flags & AppendFlags.timings) answer.push(...times.map(encodeU32));
        if (tags) {
          marks ??= tags.watermarks;
          answer.push(encodeTag({ seq, durableSeq, ...marks }));
        }
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
        // Optional since the tag: u32 flags, of which only the tag (bit 3) is known.
        const flags = c.left > 0 ? c.u32() : 0;
        c.end();
        if ((flags & ~AppendFlags.tag) !== 0) throw new SmfsError('SMFS_ERR_REQUEST', `free flags 0x${flags.toString(16)}: only tag (bit 3) is known`);
        this.readOnly(op);
        if (!flags) {
          await this.store.free(addresses);
          return [];
        }
        const tags = this.tagService();
        if (!tags.subscribed(conn)) throw new SmfsError('SMFS_ERR_REQUEST', "level 'tagged' needs tag-hello on the connection first");
        const g = await this.store.freeGroup(addresses, { keepParts: tags.codedShares > 0 });
        await this.mirror!.wait(g.seq, 'local');
        const marks = tags.tagged(conn, g.seq, g.parts);
        this.counters.frees.tagged++;
        return [encodeTag({ seq: g.seq, durableSeq: g.durableSeq, ...marks }), encodeAddresses(g.locations)];
      }
      case Op.clean: {
        const log = c.u32();
        const percent = c.u8();
        c.end();
        if (percent > 100) throw new SmfsError('SMFS_ERR_REQUEST', `clean takes a live share from 0 to 100 percent, got ${percent}`);
        if (this.recovering) throw new SmfsError('SMFS_ERR_RECOVERING', 'clean: this server is taking its clients\' cached groups first; try again shortly');
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
      case Op.readMany: {
        const n = c.u32();
        if (n === 0 || n > LIMITS.groupRecords) throw new SmfsError('SMFS_ERR_REQUEST', `read-many takes 1 to ${LIMITS.groupRecords} addresses, got ${n}`);
        const addresses: Address[] = [];
        for (let i = 0; i < n; i++) addresses.push(c.address());
        c.end();
        return (await this.store.readMany(addresses)).flatMap((r) => [encodeU32(r.data.length), encodeU32(r.crc), r.data]);
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
        const { seq, parts } = decodeGroupBody(c);
        c.end();
        this.fromPrimary(conn);
        traceMirror('recv', seq);
        await this.store.applyMirrored(seq, parts);
        this.counters.mirroredGroups++;
        return [];
      }
      case Op.promote: {
        // Empty, or u32 clients to await and u32 grace in ms.
        const o: PromoteOptions = { awaitClients: 0, graceMs: 0 };
        if (c.left > 0) {
          o.awaitClients = c.u32();
          o.graceMs = c.u32();
        }
        c.end();
        return [await this.promote(o)];
      }
      case Op.tagHello: {
        const version = c.u8();
        const clientId = c.bytes(CLIENT_ID_BYTES).toString('hex');
        const flags = c.u32();
        const holdsUpTo = c.u64();
        c.end();
        if (version !== TAG_VERSION) throw new SmfsError('SMFS_ERR_REQUEST', `tag-hello version ${version}; this server speaks ${TAG_VERSION}`);
        if ((flags & ~1) !== 0) throw new SmfsError('SMFS_ERR_REQUEST', `tag-hello flags 0x${flags.toString(16)}: only bit 0 (takes coded shares) is known`);
        const open = this.role === 'primary' && !this.promoting && !this.recovering;
        const marks = open && this.tags ? this.tags.subscribe(conn, clientId, (flags & 1) !== 0, holdsUpTo) : { mirrored: 0, held: 0 };
        return [encodeJson({
          version: TAG_VERSION, role: this.promoting ? 'mirror' : this.role, recovering: this.recovering || this.promoting !== undefined, tagged: open && this.tags !== undefined,
          lastSeq: this.store.lastSeq, ...marks, codedShares: this.tags?.codedShares ?? 0,
        })];
      }
      case Op.held: {
        const seqs: number[] = [];
        for (let n = c.u32(), i = 0; i < n; i++) seqs.push(c.u64());
        const shares: number[] = [];
        for (let n = c.u32(), i = 0; i < n; i++) shares.push(c.u64());
        c.end();
        this.tagService().held(conn, seqs, shares);
        return [];
      }
      case Op.handover: {
        let handover;
        try {
          handover = decodeHandover(body);
        } catch (err) {
          this.recovery?.refused();
          throw err;
        }
        if (this.promoting) throw new SmfsError('SMFS_ERR_CLOSED', 'the server is being promoted; hand over again shortly');
        if (this.role === 'mirror') throw new SmfsError('SMFS_ERR_READONLY', 'handover: this server is a mirror; it takes cached groups once promoted (smfs promote)');
        this.counters.handovers++;
        // A primary that is not recovering compares what it is given with what it has.
        this.recovery ??= new HandoverRecovery(this.store, { awaitClients: 0, graceMs: 0 });
        const verdict = await this.recovery.take(handover);
        if ('lost' in verdict && verdict.lost.length > 0) {
          throw new SmfsError('SMFS_ERR_LOST_GROUPS', `${verdict.lost.length} of the groups you kept could not be recovered (${verdict.lost.slice(0, 20).join(', ')}${verdict.lost.length > 20 ? ', ...' : ''}): `
            + `${verdict.gapAt !== null ? `the store is a prefix up to group ${verdict.lastSeq}; group ${verdict.gapAt} was not handed over by any client` : `the store ends at group ${verdict.lastSeq}, or holds other bytes there`}`, { details: verdict });
        }
        return [encodeJson(verdict)];
      }
      default:
        throw new SmfsError('SMFS_ERR_FRAME', `unknown op ${op}; this server knows ${Object.entries(Op).map(([k, v]) => `${v} (${k})`).join(', ')}`);
    }
  }
}
