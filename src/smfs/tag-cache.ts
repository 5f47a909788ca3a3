// A tagged client's cache (docs/smfs.md, "Tagged responses"): every group answered 'tagged'
// is kept, with what rebuilds its parts byte for byte, until the primary's mirrored-through
// watermark passes it; and, with coded shares, the shares of other clients' groups the primary
// pushes. One cache may serve several connections of one client (one client id).
//
// The cache has a byte limit. A tagged append first takes room for its group; while there is
// none it waits for the watermark (counted: the level degrades toward 'remote', the cache never
// grows past its limit), and a group larger than the whole cache is sent 'remote' instead.
// With a spill file, each group and share is also written there and fsynced before the
// primary is told it is held, so that a client that restarts still has them (tag-spill.ts).
import { randomBytes } from 'node:crypto';
import { SmfsError } from './errors';
import type { Address } from './format';
import { CLIENT_ID_BYTES, encodeGroupBody, rebuildDataParts, rebuildFreeParts, shareBytes } from './tagging';
import type { GroupRecord, Share } from './tagging';
import { TagSpill } from './tag-spill';

export interface TagCacheOptions {
  limitBytes?: number;     // default 64 MiB
  waitTimeoutMs?: number;  // how long an append waits for room, or for 'held' (default 10 s)
  takesShares?: boolean;   // hold coded shares for other clients when the primary has them (default true)
  spill?: string;          // a file that keeps the cache across the client's restarts
}

export const TAG_CACHE_DEFAULTS = { limitBytes: 64 * 1024 * 1024, waitTimeoutMs: 10_000, takesShares: true };

// A group as kept: either what the client sent and got back (rebuilt when handed over), or,
// reloaded from a spill file, its body as is.
export type CachedGroup = {
  seq: number;
  bytes: number;
} & (
  | { kind: 'data'; durableSeq: number; records: GroupRecord[]; addresses: Address[] }
  | { kind: 'free'; durableSeq: number; frees: Address[]; locations: Address[] }
  | { kind: 'body'; body: Buffer }
);

export interface TagCacheStats {
  clientId: string;
  limitBytes: number;
  groups: number;           // kept now
  shares: number;
  bytes: number;            // kept now, groups and shares
  peakBytes: number;
  reservedBytes: number;    // appends sent, not yet answered
  kept: number;             // groups kept, ever
  dropped: number;          // groups dropped once the watermark passed them
  sharesKept: number;
  sharesDropped: number;
  shareBytes: number;       // of the shares kept, ever: what coded shares cost this client
  waits: number;            // appends that waited for room
  waitMs: number;
  waitTimeouts: number;     // appends refused: no room within the wait timeout
  heldTimeouts: number;     // appends whose group was not held within the wait timeout
  heldWaitMs: number;       // the time appends spent between their answer and being held, together
  remoteFallbacks: number;  // groups larger than the cache, sent 'remote'
  mirrored: number;         // the watermarks last heard
  held: number;
  spill: string | null;
  spillBytes: number;
  spillSyncs: number;
}

interface Waiter {
  need: number;
  seq: number;
  resolve: () => void;
  reject: (e: SmfsError) => void;
  timer: NodeJS.Timeout;
}

function bySeq<T extends { seq: number }>(list: T[], item: T): void {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (list[mid].seq < item.seq) lo = mid + 1;
    else hi = mid;
  }
  list.splice(lo, 0, item);
}

export class TagCache {
  readonly clientId: Buffer;
  readonly limitBytes: number;
  readonly waitTimeoutMs: number;
  readonly takesShares: boolean;
  private groups: CachedGroup[] = [];                       // ascending sequence numbers
  private shares: { seq: number; share: Share; bytes: number }[] = []; // by the newest group each covers
  private bytes = 0;
  private reserved = 0;
  private readonly room: Waiter[] = [];
  private readonly heldWaiters: Waiter[] = [];
  private readonly stats: TagCacheStats;

  private constructor(options: TagCacheOptions, private readonly spill: TagSpill | undefined, clientId: Buffer) {
    const o = { ...TAG_CACHE_DEFAULTS, ...Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) };
    if (!(o.limitBytes >= 1)) throw new SmfsError('SMFS_ERR_REQUEST', `a tag cache holds at least one byte, got ${o.limitBytes}`);
    this.clientId = clientId;
    this.limitBytes = o.limitBytes;
    this.waitTimeoutMs = o.waitTimeoutMs;
    this.takesShares = o.takesShares;
    this.stats = {
      clientId: clientId.toString('hex'), limitBytes: o.limitBytes, groups: 0, shares: 0, bytes: 0, peakBytes: 0, reservedBytes: 0,
      kept: 0, dropped: 0, sharesKept: 0, sharesDropped: 0, shareBytes: 0, waits: 0, waitMs: 0, waitTimeouts: 0, heldTimeouts: 0, heldWaitMs: 0, remoteFallbacks: 0,
      mirrored: 0, held: 0, spill: options.spill ?? null, spillBytes: 0, spillSyncs: 0,
    };
  }

  // A cache in memory only (no spill file).
  static create(options: Omit<TagCacheOptions, 'spill'> = {}): TagCache {
    return new TagCache(options, undefined, randomBytes(CLIENT_ID_BYTES));
  }

  // With options.spill: opens (or creates) the spill file and takes back what it holds, under
  // the client id it was made with.
  static async open(options: TagCacheOptions = {}): Promise<TagCache> {
    if (!options.spill) return TagCache.create(options);
    const { spill, clientId, groups, shares } = await TagSpill.open(options.spill, randomBytes(CLIENT_ID_BYTES));
    const cache = new TagCache(options, spill, clientId);
    for (const g of groups) cache.add({ kind: 'body', seq: g.seq, body: g.body, bytes: g.body.length });
    for (const s of shares) cache.addShare(s);
    return cache;
  }

  get highestSeq(): number {
    return this.groups.length > 0 ? this.groups[this.groups.length - 1].seq : 0;
  }

  get empty(): boolean {
    return this.groups.length === 0 && this.shares.length === 0;
  }

  get watermarks(): { mirrored: number; held: number } {
    return { mirrored: this.stats.mirrored, held: this.stats.held };
  }

  // Room for a group of `bytes`, waiting for the watermark while the cache is full. Resolves
  // false when the group is larger than the whole cache (send it 'remote').
  async reserve(bytes: number): Promise<boolean> {
    if (bytes > this.limitBytes) {
      this.stats.remoteFallbacks++;
      return false;
    }
    if (this.fits(bytes) && this.room.length === 0) {
      this.reserved += bytes;
      return true;
    }
    const t0 = Date.now();
    this.stats.waits++;
    try {
      await new Promise<void>((resolve, reject) => {
        const w: Waiter = {
          need: bytes, seq: 0, resolve, reject,
          timer: setTimeout(() => {
            this.room.splice(this.room.indexOf(w), 1);
            this.stats.waitTimeouts++;
            reject(new SmfsError('SMFS_ERR_MIRROR', `not sent: the tag cache stayed full (${this.bytes} of ${this.limitBytes} bytes) for ${this.waitTimeoutMs} ms; the mirror is not keeping up, or is away`));
          }, this.waitTimeoutMs),
        };
        this.room.push(w);
      });
    } finally {
      this.stats.waitMs += Date.now() - t0;
    }
    return true;
  }

  unreserve(bytes: number): void {
    this.reserved -= bytes;
    this.wake();
  }

  // Keeps a group answered 'tagged' (to the spill file too, fsynced, when there is one).
  async keep(g: CachedGroup): Promise<void> {
    if (g.seq <= this.stats.mirrored) return;
    this.add(g);
    this.stats.kept++;
    if (this.spill) await this.spill.appendGroup(g.kind === 'body' ? g.body : encodeGroupBody(g.seq, this.partsOf(g)), this.stats);
  }

  async keepShare(share: Share): Promise<void> {
    const newest = Math.max(...share.members.map((m) => m.seq));
    if (newest <= this.stats.mirrored) return;
    this.stats.shareBytes += this.addShare(share);
    this.stats.sharesKept++;
    if (this.spill) await this.spill.appendShare(share, this.stats);
  }

  // The watermarks moved: drop what the mirror has, complete what is held.
  advance(mirrored: number, held: number): void {
    held = Math.max(held, mirrored);
    if (held > this.stats.held) {
      this.stats.held = held;
      for (let i = 0; i < this.heldWaiters.length;) {
        const w = this.heldWaiters[i];
        if (w.seq <= held) {
          this.heldWaiters.splice(i, 1);
          clearTimeout(w.timer);
          w.resolve();
        } else i++;
      }
    }
    if (mirrored <= this.stats.mirrored) return;
    this.stats.mirrored = mirrored;
    let n = 0;
    while (n < this.groups.length && this.groups[n].seq <= mirrored) this.bytes -= this.groups[n++].bytes;
    this.groups.splice(0, n);
    this.stats.dropped += n;
    let k = 0;
    while (k < this.shares.length && this.shares[k].seq <= mirrored) this.bytes -= this.shares[k++].bytes;
    this.shares.splice(0, k);
    this.stats.sharesDropped += k;
    if (n + k > 0) this.spill?.forget(mirrored, this.empty, () => this.allEntries());
    this.wake();
  }

  // Resolves once every group up to `seq` is held (tag-service.ts); fails SMFS_ERR_MIRROR
  // after the wait timeout, the group still kept.
  untilHeld(seq: number): Promise<void> {
    if (seq <= this.stats.held) return Promise.resolve();
    const t0 = performance.now();
    return new Promise((resolve, reject) => {
      const w: Waiter = {
        need: 0, seq, reject,
        resolve: () => {
          this.stats.heldWaitMs += performance.now() - t0;
          resolve();
        },
        timer: setTimeout(() => {
          this.heldWaiters.splice(this.heldWaiters.indexOf(w), 1);
          this.stats.heldTimeouts++;
          reject(new SmfsError('SMFS_ERR_MIRROR', `group ${seq} is written at the primary and kept by this client, but was not confirmed held within ${this.waitTimeoutMs} ms (watermarks: mirrored ${this.stats.mirrored}, held ${this.stats.held})`));
        }, this.waitTimeoutMs),
      };
      this.heldWaiters.push(w);
    });
  }

  // What to hand over to a promoted mirror whose last group is `after`: the bodies of the
  // groups past it, and the shares covering any.
  forHandover(after: number): { groups: Buffer[]; shares: Share[] } {
    return {
      groups: this.groups.filter((g) => g.seq > after).map((g) => (g.kind === 'body' ? g.body : encodeGroupBody(g.seq, this.partsOf(g)))),
      shares: this.shares.filter((s) => s.seq > after).map((s) => s.share),
    };
  }

  // After a handover: nothing kept is needed any more (each group is at the new primary, or
  // was reported lost).
  async clear(): Promise<void> {
    for (const w of this.heldWaiters.splice(0)) {
      clearTimeout(w.timer);
      w.reject(new SmfsError('SMFS_ERR_CLOSED', `group ${w.seq} was handed over to a new primary before it was held`));
    }
    this.stats.dropped += this.groups.length;
    this.stats.sharesDropped += this.shares.length;
    this.groups = [];
    this.shares = [];
    this.bytes = 0;
    await this.spill?.reset();
    this.wake();
  }

  getStats(): TagCacheStats {
    return { ...this.stats, groups: this.groups.length, shares: this.shares.length, bytes: this.bytes, reservedBytes: this.reserved };
  }

  async close(): Promise<void> {
    for (const w of [...this.room.splice(0), ...this.heldWaiters.splice(0)]) {
      clearTimeout(w.timer);
      w.reject(new SmfsError('SMFS_ERR_CLOSED', 'the tag cache is closed'));
    }
    await this.spill?.close();
  }

  private fits(bytes: number): boolean {
    return this.bytes + this.reserved + bytes <= this.limitBytes || this.bytes + this.reserved === 0;
  }

  private wake(): void {
    while (this.room.length > 0 && this.fits(this.room[0].need)) {
      const w = this.room.shift()!;
      clearTimeout(w.timer);
      this.reserved += w.need;
      w.resolve();
    }
  }

  private add(g: CachedGroup): void {
    bySeq(this.groups, g);
    this.grow(g.bytes);
  }

  private addShare(share: Share): number {
    const s = { seq: Math.max(...share.members.map((m) => m.seq)), share, bytes: shareBytes(share) };
    bySeq(this.shares, s);
    this.grow(s.bytes);
    return s.bytes;
  }

  private grow(bytes: number): void {
    this.bytes += bytes;
    if (this.bytes > this.stats.peakBytes) this.stats.peakBytes = this.bytes;
  }

  private partsOf(g: CachedGroup) {
    if (g.kind === 'data') return rebuildDataParts(g.seq, g.durableSeq, g.records, g.addresses);
    if (g.kind === 'free') return rebuildFreeParts(g.seq, g.durableSeq, g.frees, g.locations);
    throw new Error('a group kept as its body has no parts to rebuild');
  }

  private allEntries(): { groups: Buffer[]; shares: Share[] } {
    return this.forHandover(0);
  }
}
