// The primary's side of tagged responses (docs/smfs.md, "Tagged responses").
//
// A tagged append is answered at 'local' with its tag; the client keeps the group and says so
// (op held). Two watermarks go back to the clients, in answers and pushed when they move:
//   mirrored  every group up to here is written at the mirror: a client drops what it keeps
//             up to here;
//   held      every group up to here is at the mirror or kept by the client it was answered to
//             (and, with coded shares, covered by a share another client holds): a client
//             completes a tagged append once this passes it.
// Completing only behind `held` is what makes a disaster lose nothing completed: the promoted
// mirror replays the groups the clients hand over in sequence order and stops at the first it
// cannot get, so a group answered to a client that never got the answer must not come before a
// group completed to another. A group answered at another level counts only once mirrored.
//
// Coded shares (k = 1): each tagged group also goes into one share, the XOR of at most one
// unmirrored group of each client but the one the share is pushed to, which acknowledges it
// (op held, again). A group is held once its client keeps it, a share of it is acknowledged,
// and the share's other groups are kept by their clients (or mirrored): with any one client
// lost, each of its groups can be solved from a survivor's share and the others' groups.
import { SmfsError } from './errors';
import type { Connection } from './frame-server';
import type { MirrorLink } from './mirror';
import type { ShippedPart } from './store';
import { combine, encodeGroupBody, encodeShare } from './tagging';
import type { Share, ShareMember } from './tagging';
import { Op, encodeU64 } from './wire';

export interface TagCounters {
  subscribers: number;     // connections that said tag-hello, open now
  tagged: number;          // tagged groups answered
  kept: number;            // groups clients said they keep (op held)
  heldRefused: number;     // held for a group not answered to that client, or a share not sent to it
  pushes: number;          // watermark pushes
  shares: number;          // coded shares pushed
  shareBytes: number;      // their bodies
  shareAcks: number;
  shareTimeouts: number;   // shares not acknowledged in time: their groups went into other shares
}

export interface Watermarks {
  mirrored: number;
  held: number;
}

interface Subscriber {
  conn: Connection;
  clientId: string;
  takesShares: boolean;
  maxTagged: number;   // the newest group it keeps
  told: Watermarks;    // what it was last sent
  sharesInFlight: number;
}

interface TaggedGroup {
  seq: number;
  owner: string;        // client id
  kept: boolean;        // its client said held
  body?: Buffer;        // its group body, while a share may still need it (coded shares)
  member?: ShareMember;
  share?: number;       // the share it went into, sent and not yet acknowledged or lost
  coveredBy?: number;   // the acknowledged share that holds it
}

interface SentShare {
  taker: Subscriber;
  members: number[];
  timer: NodeJS.Timeout;
}

// Shares a client may hold unacknowledged; then the next ones go to other clients.
const SHARES_IN_FLIGHT = 1;
const SHARE_TIMEOUT_MS = 2000;

export class TagService {
  readonly counters: TagCounters = { subscribers: 0, tagged: 0, kept: 0, heldRefused: 0, pushes: 0, shares: 0, shareBytes: 0, shareAcks: 0, shareTimeouts: 0 };
  private readonly subscribers = new Map<Connection, Subscriber>();
  private readonly groups = new Map<number, TaggedGroup>(); // tagged groups past the mirror's watermark
  private readonly sent = new Map<number, SentShare>();
  private readonly acked = new Map<number, number[]>();     // acknowledged shares still covering unmirrored groups
  private heldSeq = 0;
  private forgotten = 0; // the watermark up to which groups were forgotten
  private nextShareId = 1;
  private pushQueued = false;
  private pumpQueued = false;
  private rotation = 0;

  constructor(private readonly link: MirrorLink, readonly codedShares: number) {
    link.onAcknowledged = () => this.advance();
    this.heldSeq = link.watermark;
  }

  get watermarks(): Watermarks {
    return { mirrored: this.link.watermark, held: Math.max(this.heldSeq, this.link.watermark) };
  }

  subscribe(conn: Connection, clientId: string, takesShares: boolean, holdsUpTo: number): Watermarks {
    let sub = this.subscribers.get(conn);
    if (!sub) {
      sub = { conn, clientId, takesShares, maxTagged: 0, told: { mirrored: 0, held: 0 }, sharesInFlight: 0 };
      this.subscribers.set(conn, sub);
      this.counters.subscribers++;
      void conn.closed.then(() => this.left(conn));
    }
    sub.clientId = clientId;
    sub.takesShares = takesShares && this.codedShares > 0;
    sub.maxTagged = Math.max(sub.maxTagged, holdsUpTo);
    sub.told = this.watermarks;
    this.pump();
    return sub.told;
  }

  subscribed(conn: Connection): boolean {
    return this.subscribers.has(conn);
  }

  // A tagged group was written for the client on `conn` (its parts, with coded shares): the
  // watermarks for its answer.
  tagged(conn: Connection, seq: number, parts: ShippedPart[] | undefined): Watermarks {
    const sub = this.subscribers.get(conn);
    if (!sub) throw new SmfsError('SMFS_ERR_REQUEST', "level 'tagged' needs tag-hello on the connection first");
    this.counters.tagged++;
    sub.maxTagged = Math.max(sub.maxTagged, seq);
    const w = this.watermarks;
    if (seq > w.mirrored) {
      const g: TaggedGroup = { seq, owner: sub.clientId, kept: false };
      if (this.codedShares > 0 && parts) {
        g.body = encodeGroupBody(seq, parts);
        g.member = { seq, parts: parts.map((p) => ({ log: p.log, segment: p.segment, offset: p.offset, length: p.bytes.length })) };
      }
      this.groups.set(seq, g);
      this.pump();
    }
    sub.told = { mirrored: Math.max(sub.told.mirrored, w.mirrored), held: Math.max(sub.told.held, w.held) };
    return w;
  }

  // The client on `conn` keeps these groups, and holds these shares.
  held(conn: Connection, seqs: number[], shares: number[]): void {
    const sub = this.subscribers.get(conn);
    if (!sub) throw new SmfsError('SMFS_ERR_REQUEST', 'held needs tag-hello on the connection first');
    for (const seq of seqs) {
      const g = this.groups.get(seq);
      if (!g) continue; // mirrored meanwhile
      if (g.owner !== sub.clientId) {
        this.counters.heldRefused++;
        continue;
      }
      if (!g.kept) this.counters.kept++;
      g.kept = true;
    }
    for (const id of shares) {
      const s = this.sent.get(id);
      if (!s) continue; // timed out and given to others, or every group in it mirrored
      if (s.taker !== sub) {
        this.counters.heldRefused++;
        continue;
      }
      this.sent.delete(id);
      clearTimeout(s.timer);
      sub.sharesInFlight--;
      this.counters.shareAcks++;
      this.acked.set(id, s.members);
      for (const seq of s.members) {
        const g = this.groups.get(seq);
        if (g && g.share === id) {
          g.coveredBy = id;
          g.share = undefined;
          g.body = undefined; // no other share will need it
        }
      }
    }
    this.advance();
    this.pump();
  }

  stat(): TagCounters & Watermarks & { codedShares: number; unmirrored: number; sharesInFlight: number } {
    return { ...this.counters, ...this.watermarks, codedShares: this.codedShares, unmirrored: this.groups.size, sharesInFlight: this.sent.size };
  }

  close(): void {
    for (const s of this.sent.values()) clearTimeout(s.timer);
    this.sent.clear();
    this.link.onAcknowledged = undefined;
  }

  // A group is held when its client keeps it and, with coded shares, an acknowledged share
  // covers it whose other groups are kept by their clients or mirrored.
  private isHeld(g: TaggedGroup, mirrored: number): boolean {
    if (!g.kept) return false;
    if (this.codedShares === 0) return true;
    if (g.coveredBy === undefined) return false;
    return this.acked.get(g.coveredBy)!.every((s) => s === g.seq || s <= mirrored || this.groups.get(s)?.kept === true);
  }

  // Moves `held` over every group that is held, from the mirror's watermark on; forgets what
  // the mirror has; tells the clients.
  private advance(): void {
    const mirrored = this.link.watermark;
    if (mirrored > this.forgotten) {
      this.forgotten = mirrored;
      for (const seq of this.groups.keys()) if (seq <= mirrored) this.groups.delete(seq);
      for (const [id, members] of this.acked) if (members.every((s) => s <= mirrored)) this.acked.delete(id);
    }
    let h = Math.max(this.heldSeq, mirrored);
    for (;;) {
      const g = this.groups.get(h + 1);
      if (!g || !this.isHeld(g, mirrored)) break;
      h++;
    }
    this.heldSeq = h;
    this.queuePush();
  }

  // The watermarks to every client keeping groups past what it was told, once for all the
  // frames read together (a microtask: a turn of a busy server's event loop is long).
  private queuePush(): void {
    if (this.pushQueued) return;
    this.pushQueued = true;
    queueMicrotask(() => {
      this.pushQueued = false;
      const w = this.watermarks;
      for (const sub of this.subscribers.values()) {
        const owed = (w.held > sub.told.held && sub.maxTagged > sub.told.held) || (w.mirrored > sub.told.mirrored && sub.maxTagged > sub.told.mirrored);
        if (!owed) continue;
        sub.told = w;
        this.counters.pushes++;
        sub.conn.push(Op.watermark, [encodeU64(w.mirrored), encodeU64(w.held)]);
      }
    });
  }

  private left(conn: Connection): void {
    const sub = this.subscribers.get(conn);
    if (!sub) return;
    this.subscribers.delete(conn);
    this.counters.subscribers--;
    for (const [id, s] of this.sent) {
      if (s.taker !== sub) continue;
      this.sent.delete(id);
      clearTimeout(s.timer);
      for (const seq of s.members) {
        const g = this.groups.get(seq);
        if (g?.share === id) g.share = undefined;
      }
    }
    this.pump();
  }

  // Once per turn of the event loop, so that the groups written in one turn (a batch shares an
  // fsync) go into shares together: each share goes to one client and holds at most one group of
  // each other client, the oldest it has unshared. The more clients have groups waiting, the
  // more groups a share covers for the bytes of one.
  private pump(): void {
    if (this.codedShares === 0 || this.pumpQueued) return;
    this.pumpQueued = true;
    setImmediate(() => {
      this.pumpQueued = false;
      this.share();
    });
  }

  private share(): void {
    const takers = [...this.subscribers.values()].filter((s) => s.takesShares);
    if (takers.length < 2) return;
    this.rotation++;
    for (let n = 0; n < takers.length; n++) {
      const taker = takers[(this.rotation + n) % takers.length];
      while (taker.sharesInFlight < SHARES_IN_FLIGHT) {
        const members: TaggedGroup[] = [];
        const owners = new Set<string>();
        for (const g of this.groups.values()) {
          if (!g.body || g.share !== undefined || g.coveredBy !== undefined || g.owner === taker.clientId || owners.has(g.owner)) continue;
          owners.add(g.owner);
          members.push(g);
        }
        if (members.length === 0) break;
        this.send(taker, members);
      }
    }
  }

  private send(taker: Subscriber, members: TaggedGroup[]): void {
    const id = this.nextShareId++;
    const share: Share = { id, members: members.map((g) => g.member!), payload: combine(members.map((g) => g.body!)) };
    for (const g of members) g.share = id;
    taker.sharesInFlight++;
    const seqs = members.map((g) => g.seq);
    const timer = setTimeout(() => {
      if (!this.sent.delete(id)) return;
      taker.sharesInFlight--;
      this.counters.shareTimeouts++;
      for (const seq of seqs) {
        const g = this.groups.get(seq);
        if (g?.share === id) g.share = undefined;
      }
      this.pump();
    }, SHARE_TIMEOUT_MS);
    timer.unref();
    this.sent.set(id, { taker, members: seqs, timer });
    const body = encodeShare(share);
    this.counters.shares++;
    this.counters.shareBytes += body.reduce((n, b) => n + b.length, 0);
    taker.conn.push(Op.share, body);
  }
}
