// A client of `smfs storage`: one TCP connection, authenticated both ways, requests pipelined
// and matched to answers by id. Record checksums go both ways: the server checks what an
// append carries, the client checks what a read brings back.
//
// Level 'tagged' (docs/smfs.md, "Tagged responses"): the group is answered at 'local' with its
// tag, kept in the client's TagCache, and the append completes once the primary says every group
// up to it is held outside its site; the cache drops it once the mirror has it. After the
// primary's site is lost, handover() gives what the cache keeps to the promoted mirror.
import type net from 'node:net';
import { crc32 } from './checksum';
import type { Credential } from './credentials';
import { SmfsError } from './errors';
import type { Address } from './format';
import type { CleanReport, StoreStat } from './store';
import type { RecoveryReport } from './recovery';
import type { PromoteOptions, ServerCounters } from './server';
import { ALL_LOGS, AppendFlags, Cursor, LEVEL_CODES, NOT_REACHED, Op, encodeAddress, encodeAddresses, encodeU32, encodeU64 } from './wire';
import { FrameClient, connectSocket } from './frame-client';
import type { ConnectOptions, Endpoint } from './frame-client';
import type { AckLevel, MirrorStat, Role } from './mirror';
import { TagCache } from './tag-cache';
import type { TagCacheStats } from './tag-cache';
import type { TagCounters, Watermarks } from './tag-service';
import type { HandoverReport, Verdict } from './handover';
import { HandoverFlags } from './handover';
import { TAG_VERSION, checkDataAddresses, decodeShare, encodeShare, readTag } from './tagging';
import type { GroupRecord, Tag } from './tagging';

export type AppendLevel = AckLevel | 'tagged';
export const APPEND_LEVELS: readonly AppendLevel[] = ['local', 'network', 'remote', 'tagged'];

export type ServerStat = StoreStat & {
  recovery: RecoveryReport; server: ServerCounters; role: Role; defaultLevel: AckLevel; mirror: MirrorStat | null; primary: string | null; primaryTls: boolean | null;
  disk?: { totalBytes: number; freeBytes: number } | null;
  tags: (TagCounters & Watermarks & { codedShares: number; unmirrored: number; sharesInFlight: number }) | null; recovering: boolean; handover: HandoverReport | null;
};

// What a server says to tag-hello: whether it takes tagged appends now, and where it is.
export interface TagHello extends Watermarks {
  version: number;
  role: Role;
  recovering: boolean;   // promoted, still taking the clients' caches (or being promoted)
  tagged: boolean;       // takes level 'tagged' (a primary with a mirror, open)
  lastSeq: number;
  codedShares: number;
}

export interface StorageClientOptions extends ConnectOptions {
  cache?: TagCache;      // the client's tag cache, shared by its connections (default: one made at the first tagged append)
  deadAfterMs?: number;  // requests waiting and nothing heard from the server in this long: the connection is given up
}

// Handover frames stay well under MAX_FRAME; a group larger than this goes alone.
const HANDOVER_BATCH_BYTES = 8 * 1024 * 1024;

export class StorageClient extends FrameClient {
  private cacheNow: TagCache | undefined;
  private hello: Promise<TagHello> | undefined;
  private heldSeqs: number[] = [];
  private heldShares: number[] = [];
  private heldQueued = false;
  private readonly awaitingHeld = new Set<(err: SmfsError) => void>(); // failed at once if the connection goes

  private constructor(socket: net.Socket, endpoint: Endpoint, options: StorageClientOptions) {
    super(socket, endpoint, 'storage server', {
      error: (err) => new SmfsError('SMFS_ERR_CLOSED', `connection to the storage server: ${err.message}`, { cause: err }),
      closed: () => new SmfsError('SMFS_ERR_CLOSED', 'the storage server closed the connection'),
    });
    this.cacheNow = options.cache;
    if (options.deadAfterMs) this.watchAnswers(options.deadAfterMs);
    void this.lost.then((err) => { for (const fail of this.awaitingHeld) fail(err); });
  }

  // Connects and authenticates with the deployment's credential; `tls` for a connection that
  // crosses the WAN. Failing to connect is SMFS_ERR_UNAVAILABLE; a refusal SMFS_ERR_AUTH.
  static async connect(e: Endpoint, credential: Credential, options: StorageClientOptions = {}): Promise<StorageClient> {
    return new StorageClient(await connectSocket(e, 'storage server', credential, options), e, options);
  }

  // The client's tag cache (made at the first tagged append if none was given).
  get cache(): TagCache {
    this.cacheNow ??= TagCache.create();
    return this.cacheNow;
  }

  // tag-hello: where the server is (role, recovering, last group, watermarks); on a primary that
  // takes tagged appends, this connection is then sent the watermarks as they move (and, if the
  // cache takes them, coded shares).
  async tagHello(): Promise<TagHello> {
    const cache = this.cache;
    const b = Buffer.alloc(1 + 16 + 4 + 8);
    b[0] = TAG_VERSION;
    cache.clientId.copy(b, 1);
    b.writeUInt32BE(cache.takesShares ? 1 : 0, 17);
    b.writeBigUInt64BE(BigInt(cache.highestSeq), 21);
    const hello = JSON.parse((await this.request(Op.tagHello, [b])).toString('utf8')) as TagHello;
    if (hello.tagged) cache.advance(hello.mirrored, hello.held);
    return hello;
  }

  private async subscribed(): Promise<TagCache> {
    this.hello ??= this.tagHello();
    let hello: TagHello;
    try {
      hello = await this.hello;
    } catch (err) {
      this.hello = undefined;
      throw err;
    }
    if (!hello.tagged) {
      this.hello = undefined;
      throw new SmfsError('SMFS_ERR_REQUEST', `the storage server takes no tagged appends: ${hello.role !== 'primary' ? 'it is a mirror' : hello.recovering ? 'it is recovering from its clients\' caches' : 'it has no mirror'}`);
    }
    return this.cache;
  }

  async createLog(log: number): Promise<void> {
    await this.request(Op.createLog, [encodeU32(log)]);
  }

  async append(records: { log: number; data: Uint8Array }[], options: { level?: AppendLevel } = {}): Promise<Address[]> {
    return (await this.appendTimed(records, options)).addresses;
  }

  // An append that also says how long after the server took it the group was written here
  // (local), network-safe and written at the mirror (remote), in microseconds; undefined for a
  // level not waited for. With `tag` (always at level 'tagged'), also the group's tag; with
  // `sequence`, the tag of a group this client does not keep (its sequence number and the
  // watermarks, for whoever keeps it instead: a file server's mount).
  async appendTimed(records: { log: number; data: Uint8Array }[], options: { level?: AppendLevel; timings?: boolean; tag?: boolean; sequence?: boolean } = {}): Promise<{ addresses: Address[]; timings?: Record<AckLevel, number | undefined>; tag?: Tag }> {
    if (options.level === 'tagged') return this.appendTagged(records, options.timings ?? false);
    const flags = (options.level ? LEVEL_CODES[options.level] : 0) | (options.timings ? AppendFlags.timings : 0) | (options.tag ? AppendFlags.tag : 0)
      | (options.sequence ? AppendFlags.sequence : 0);
    // The records' headers share one buffer; the data is sent from the caller's buffers.
    const heads = Buffer.allocUnsafe(8 + 12 * records.length);
    heads.writeUInt32BE(flags, 0);
    heads.writeUInt32BE(records.length, 4);
    const body: Uint8Array[] = [];
    records.forEach((r, i) => {
      const h = heads.subarray(i === 0 ? 0 : 8 + 12 * i, 8 + 12 * (i + 1));
      const at = h.length - 12;
      h.writeUInt32BE(r.log, at);
      h.writeUInt32BE(r.data.length, at + 4);
      h.writeUInt32BE(crc32(r.data), at + 8);
      body.push(h, r.data);
    });
    const c = new Cursor(await this.request(Op.append, body), 'append answer');
    const n = c.u32();
    const addresses: Address[] = [];
    for (let i = 0; i < n; i++) addresses.push(c.address());
    let timings: Record<AckLevel, number | undefined> | undefined;
    if (options.timings) {
      const t = [c.u32(), c.u32(), c.u32()].map((v) => (v === NOT_REACHED ? undefined : v));
      timings = { local: t[0], network: t[1], remote: t[2] };
    }
    const tag = options.tag || options.sequence ? readTag(c) : undefined;
    c.end();
    return { addresses, timings, tag };
  }

  // Level 'tagged': room in the cache (waiting for the watermark while it is full), the append
  // answered at 'local' with its tag, the group kept, then complete once it is held.
  private async appendTagged(records: { log: number; data: Uint8Array }[], timed: boolean): Promise<{ addresses: Address[]; timings?: Record<AckLevel, number | undefined>; tag?: Tag }> {
    const cache = await this.subscribed();
    const size = records.reduce((n, r) => n + 12 + r.data.length, 0);
    if (!await cache.reserve(size)) return this.appendTimed(records, { level: 'remote', timings: timed, tag: true });
    let kept: Promise<void>;
    let result: { addresses: Address[]; timings?: Record<AckLevel, number | undefined>; tag: Tag };
    try {
      // One copy of the records, which is what the cache keeps: the caller may reuse its buffers.
      const body = Buffer.allocUnsafe(8 + size);
      body.writeUInt32BE(LEVEL_CODES.local | AppendFlags.tag | (timed ? AppendFlags.timings : 0), 0);
      body.writeUInt32BE(records.length, 4);
      const kept_: GroupRecord[] = [];
      let at = 8;
      for (const r of records) {
        const crc = crc32(r.data);
        body.writeUInt32BE(r.log, at);
        body.writeUInt32BE(r.data.length, at + 4);
        body.writeUInt32BE(crc, at + 8);
        body.set(r.data, at + 12);
        kept_.push({ log: r.log, crc, data: body.subarray(at + 12, at + 12 + r.data.length) });
        at += 12 + r.data.length;
      }
      const c = new Cursor(await this.request(Op.append, [body]), 'append answer');
      const n = c.u32();
      const addresses: Address[] = [];
      for (let i = 0; i < n; i++) addresses.push(c.address());
      let timings: Record<AckLevel, number | undefined> | undefined;
      if (timed) {
        const t = [c.u32(), c.u32(), c.u32()].map((v) => (v === NOT_REACHED ? undefined : v));
        timings = { local: t[0], network: t[1], remote: t[2] };
      }
      const tag = readTag(c);
      c.end();
      const problem = checkDataAddresses(records, addresses);
      if (problem) throw new SmfsError('SMFS_ERR_FRAME', `a tagged answer whose group cannot be rebuilt: ${problem}`);
      // Kept before its room is given back, so the cache never holds more than its limit.
      kept = cache.keep({ kind: 'data', seq: tag.seq, bytes: size, durableSeq: tag.durableSeq, records: kept_, addresses });
      result = { addresses, timings, tag };
    } finally {
      cache.unreserve(size);
    }
    await kept;
    cache.advance(result.tag.mirrored, result.tag.held);
    this.queueHeld(result.tag.seq);
    await this.untilHeld(cache, result.tag.seq);
    return result;
  }

  // Makes a mirror the primary (docs/smfs.md, "Failover"); resolves to what it now holds. With
  // clients to await (or a grace), once it has replayed their caches (handover).
  async promote(options: Partial<PromoteOptions> = {}): Promise<{ lastSeq: number; logs: { log: number; segment: number; offset: number }[]; recovery: RecoveryReport; handover: HandoverReport | null }> {
    const body = options.awaitClients || options.graceMs ? [encodeU32(options.awaitClients ?? 0), encodeU32(options.graceMs ?? 0)] : [];
    return JSON.parse((await this.request(Op.promote, body)).toString('utf8')) as { lastSeq: number; logs: { log: number; segment: number; offset: number }[]; recovery: RecoveryReport; handover: HandoverReport | null };
  }

  // The tag cache's counters (size, peak, waits, drops, ...), or undefined without one.
  tagStats(): TagCacheStats | undefined {
    return this.cacheNow?.getStats();
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

  // At level 'tagged' the free group is kept like an appended one (its parts' places come with
  // the tag), and the free completes once it is held.
  async free(addresses: Address[], options: { level?: 'tagged' } = {}): Promise<void> {
    if (options.level !== 'tagged') {
      await this.request(Op.free, [encodeAddresses(addresses)]);
      return;
    }
    const cache = await this.subscribed();
    const size = 12 * addresses.length;
    if (!await cache.reserve(size)) {
      await this.request(Op.free, [encodeAddresses(addresses)]);
      return;
    }
    let tag: Tag;
    let kept: Promise<void>;
    try {
      const c = new Cursor(await this.request(Op.free, [encodeAddresses(addresses), encodeU32(AppendFlags.tag)]), 'free answer');
      tag = readTag(c);
      const locations: Address[] = [];
      for (let n = c.u32(), i = 0; i < n; i++) locations.push(c.address());
      c.end();
      kept = cache.keep({ kind: 'free', seq: tag.seq, bytes: size, durableSeq: tag.durableSeq, frees: addresses.map((a) => ({ ...a })), locations });
    } finally {
      cache.unreserve(size);
    }
    await kept;
    cache.advance(tag.mirrored, tag.held);
    this.queueHeld(tag.seq);
    await this.untilHeld(cache, tag.seq);
  }

  // Held, or this connection lost first (the group stays kept, for a handover).
  private untilHeld(cache: TagCache, seq: number): Promise<void> {
    if (this.failed) return Promise.reject(this.failed);
    return new Promise((resolve, reject) => {
      const fail = (err: SmfsError) => {
        this.awaitingHeld.delete(fail);
        reject(new SmfsError(err.code, `group ${seq} was answered and is kept, but ${err.message} before it was held; hand the cache over to the new primary`, { cause: err }));
      };
      this.awaitingHeld.add(fail);
      cache.untilHeld(seq).then(() => {
        this.awaitingHeld.delete(fail);
        resolve();
      }, (err: unknown) => {
        this.awaitingHeld.delete(fail);
        reject(err);
      });
    });
  }

  // Gives the cache's groups (those past the server's last, or all) to a promoted mirror, which
  // replays them: resolves to what became of them, or fails SMFS_ERR_LOST_GROUPS naming those
  // it could not recover (details: the Verdict). Either way the cache is then empty.
  async handover(options: { all?: boolean } = {}): Promise<Verdict> {
    const cache = this.cache;
    const hello = await this.tagHello();
    const { groups, shares } = cache.forHandover(options.all ? 0 : hello.lastSeq);
    const shareBodies = shares.map((s) => Buffer.concat(encodeShare(s)));
    const items = [...groups.map((b) => ({ kind: 'group' as const, b })), ...shareBodies.map((b) => ({ kind: 'share' as const, b }))];
    let verdict: Verdict;
    try {
      for (;;) {
        let bytes = 0;
        let n = 0;
        while (n < items.length && (n === 0 || bytes + items[n].b.length <= HANDOVER_BATCH_BYTES)) bytes += items[n++].b.length;
        const batch = items.splice(0, n);
        const final = items.length === 0;
        const answer = await this.request(Op.handover, this.handoverFrame(batch, final));
        if (final) {
          verdict = JSON.parse(answer.toString('utf8')) as Verdict;
          break;
        }
      }
    } catch (err) {
      if (err instanceof SmfsError && err.code === 'SMFS_ERR_LOST_GROUPS') await cache.clear();
      throw err;
    }
    await cache.clear();
    return verdict;
  }

  private handoverFrame(items: { kind: 'group' | 'share'; b: Buffer }[], final: boolean): Buffer[] {
    const head = Buffer.alloc(17);
    this.cache.clientId.copy(head, 0);
    head[16] = final ? HandoverFlags.final : 0;
    const out: Buffer[] = [head];
    for (const kind of ['group', 'share'] as const) {
      const list = items.filter((i) => i.kind === kind);
      out.push(encodeU32(list.length));
      for (const i of list) out.push(encodeU32(i.b.length), i.b);
    }
    return out;
  }

  // Tells the server which groups and shares this client now keeps: once for all the answers
  // taken together (a microtask, not a turn of the event loop, which a busy client makes long).
  private queueHeld(seq?: number, share?: number): void {
    if (seq !== undefined) this.heldSeqs.push(seq);
    if (share !== undefined) this.heldShares.push(share);
    if (this.heldQueued) return;
    this.heldQueued = true;
    queueMicrotask(() => {
      this.heldQueued = false;
      const seqs = this.heldSeqs.splice(0);
      const ids = this.heldShares.splice(0);
      if (seqs.length + ids.length === 0 || this.failed) return;
      this.request(Op.held, [encodeU32(seqs.length), ...seqs.map(encodeU64), encodeU32(ids.length), ...ids.map(encodeU64)]).catch(() => undefined);
    });
  }

  protected override pushed(op: number, body: Buffer): void {
    const cache = this.cacheNow;
    if (!cache) return;
    try {
      if (op === Op.watermark) {
        const c = new Cursor(body, 'watermark');
        const mirrored = c.u64();
        const held = c.u64();
        cache.advance(mirrored, held);
      } else if (op === Op.share && cache.takesShares) {
        const c = new Cursor(body, 'share');
        const share = decodeShare(c);
        c.end();
        cache.keepShare(share).then(() => this.queueHeld(undefined, share.id), () => undefined);
      }
    } catch {
      // A push that does not parse is dropped; an unacknowledged share goes to another client.
    }
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
    const c = new Cursor(await this.request(Op.readMany, [encodeAddresses(addresses)]), 'read-many answer');
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
