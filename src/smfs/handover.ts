// Recovery of a promoted mirror from its clients' caches (docs/smfs.md, "Recovery from the
// clients' caches"). `smfs promote --await-clients N | --grace S` leaves the promoted server
// recovering: it takes handovers (op 21) of the groups tagged clients kept, merges them by
// sequence number, solves coded shares for groups no survivor kept, and replays the groups after
// its own last one through the mirror's write path, in order, stopping at the first it cannot
// get: the longest prefix, never a hole, never a partial group. Then it opens for appends, and
// tells each client what became of its groups; those cut off are SMFS_ERR_LOST_GROUPS.
//
// Everything a client hands over is checked as a mirrored group is (its parts whole, of that
// group, in log order; where they land when written); a handover that fails is refused whole.
import { SmfsError } from './errors';
import { RECORD_HEADER, SEGMENT_HEADER, decodePart } from './format';
import { checkShipped } from './store';
import type { LogStore, ShippedPart } from './store';
import { CLIENT_ID_BYTES, decodeGroupBody, decodeShare, encodeGroupBody, memberLength, solve } from './tagging';
import type { Share, ShareMember } from './tagging';
import { Cursor } from './wire';

export interface HandedGroup {
  seq: number;
  parts: ShippedPart[];
  body: Buffer;
}

export interface Handover {
  clientId: string;
  final: boolean;
  groups: HandedGroup[];
  shares: Share[];
}

export const HandoverFlags = { final: 0x1 } as const;

// The body of op handover: client id (16 bytes), u8 flags (bit 0: the last of this client's),
// u32 groups, groups x (u32 length, mirror-group body), u32 shares, shares x (u32 length, share).
export function decodeHandover(body: Buffer): Handover {
  const c = new Cursor(body, 'handover');
  const clientId = c.bytes(CLIENT_ID_BYTES).toString('hex');
  const flags = c.u8();
  if ((flags & ~HandoverFlags.final) !== 0) throw new SmfsError('SMFS_ERR_REQUEST', `handover flags 0x${flags.toString(16)}: only bit 0 (final) is known`);
  const groups: HandedGroup[] = [];
  const seen = new Set<number>();
  for (let n = c.u32(), i = 0; i < n; i++) {
    const bytes = c.bytes(c.u32());
    const g = new Cursor(bytes, `handed-over group ${i}`);
    const { seq, parts } = decodeGroupBody(g);
    g.end();
    checkShipped(seq, parts);
    if (seen.has(seq)) throw new SmfsError('SMFS_ERR_REQUEST', `handover: group ${seq} is given twice`);
    seen.add(seq);
    groups.push({ seq, parts, body: Buffer.from(bytes) });
  }
  const shares: Share[] = [];
  for (let n = c.u32(), i = 0; i < n; i++) {
    const bytes = c.bytes(c.u32());
    const s = new Cursor(Buffer.from(bytes), `handed-over share ${i}`);
    shares.push(decodeShare(s));
    s.end();
  }
  c.end();
  return { clientId, final: (flags & HandoverFlags.final) !== 0, groups, shares };
}

export interface HandoverReport {
  state: 'awaiting' | 'replaying' | 'done';
  awaitClients: number;
  graceMs: number;
  clients: number;          // clients that finished handing over
  groups: number;           // distinct groups handed over
  shares: number;
  startSeq: number;         // the store's last group when it was promoted
  lastSeq: number;          // after the replay
  applied: number;
  present: number;          // handed over, already here (and the same bytes)
  decoded: number;          // solved from coded shares
  gapAt: number | null;     // the first group no survivor gave (or one that could not be applied), with groups after it
  gapReason: string | null;
  cutOff: number[];         // groups known above the gap, not applied
  conflicts: number[];      // groups handed over with different bytes (by two clients, or from what is here)
  logsCreated: number[];    // logs a replayed group started (their create-log never reached the mirror)
  refused: number;          // handover frames refused (bad input)
  late: number;             // handovers after the replay: compared only
  timedOut: boolean;        // the grace ended before every client awaited came
  ms: number;
}

export interface Verdict {
  lastSeq: number;
  applied: number;
  present: number;
  lost: number[];
  gapAt: number | null;
}

interface ClientState {
  groups: Map<number, HandedGroup>;
  shares: Share[];
  final: boolean;
}

// Whether the parts of a group are here as given: raw segments byte for byte; in a compacted
// segment, each live record's data (a freed record has nothing left to compare).
export async function storedAsGiven(store: LogStore, parts: ShippedPart[]): Promise<boolean> {
  for (const p of parts) {
    const info = store.segmentInfo(p.log, p.segment);
    if (!info) return false;
    if (info.state === 'raw') {
      if (p.offset + p.bytes.length > info.size) return false;
      if (!(await store.readRaw(p.log, p.segment, p.offset, p.bytes.length)).equals(p.bytes)) return false;
      continue;
    }
    const part = decodePart(p.bytes, p.log, p.offset);
    if (typeof part === 'string') return false;
    for (const r of part.records) {
      try {
        const { data } = await store.read({ log: p.log, segment: p.segment, offset: r.offset });
        const at = r.offset - p.offset + RECORD_HEADER;
        if (!data.equals(p.bytes.subarray(at, at + r.length))) return false;
      } catch (err) {
        if (!(err instanceof SmfsError && err.code === 'SMFS_ERR_FREED')) return false;
      }
    }
  }
  return true;
}

export class HandoverRecovery {
  private readonly clients = new Map<string, ClientState>();
  private readonly report: HandoverReport;
  private readonly started = Date.now();
  private timer: NodeJS.Timeout | undefined;
  private finishing: Promise<HandoverReport> | undefined;
  private aborted = false;
  private readonly checked = new Map<number, { body: Buffer; same: boolean }>(); // groups given that were here already
  private release!: () => void;
  private readonly ready = new Promise<void>((resolve) => { this.release = resolve; });
  readonly done: Promise<HandoverReport>;

  constructor(private readonly store: LogStore, options: { awaitClients: number; graceMs: number }) {
    this.report = {
      state: 'awaiting', awaitClients: options.awaitClients, graceMs: options.graceMs, clients: 0, groups: 0, shares: 0,
      startSeq: store.lastSeq, lastSeq: store.lastSeq, applied: 0, present: 0, decoded: 0, gapAt: null, gapReason: null,
      cutOff: [], conflicts: [], logsCreated: [], refused: 0, late: 0, timedOut: false, ms: 0,
    };
    if (options.awaitClients === 0 && options.graceMs === 0) {
      // Nothing to await: a primary that only compares what late clients hand over.
      this.report.state = 'done';
      this.done = Promise.resolve(this.stat());
      return;
    }
    this.done = this.ready.then(() => this.finish());
    if (options.graceMs > 0) {
      this.timer = setTimeout(() => {
        this.report.timedOut = options.awaitClients > 0;
        this.release();
      }, options.graceMs);
    }
  }

  get state(): HandoverReport['state'] {
    return this.report.state;
  }

  stat(): HandoverReport {
    return { ...this.report, cutOff: [...this.report.cutOff], conflicts: [...this.report.conflicts], logsCreated: [...this.report.logsCreated] };
  }

  refused(): void {
    this.report.refused++;
  }

  // Takes one handover frame. The last of a client's is answered once the replay is done, with
  // what became of its groups.
  async take(h: Handover): Promise<Verdict | { taken: number }> {
    if (this.report.state !== 'awaiting') {
      await this.done;
      this.report.late++;
      return this.verdict(h.groups, true);
    }
    let c = this.clients.get(h.clientId);
    if (!c) this.clients.set(h.clientId, (c = { groups: new Map(), shares: [], final: false }));
    for (const g of h.groups) c.groups.set(g.seq, g);
    c.shares.push(...h.shares);
    if (!h.final) return { taken: h.groups.length };
    if (!c.final) {
      c.final = true;
      this.report.clients++;
      if (this.report.awaitClients > 0 && this.report.clients >= this.report.awaitClients) this.release();
    }
    await this.done;
    return this.verdict([...c.groups.values()], false);
  }

  // The server is closing: no replay; handovers waiting are refused.
  close(): void {
    this.aborted = true;
    if (this.timer) clearTimeout(this.timer);
    this.release();
  }

  private finish(): Promise<HandoverReport> {
    this.finishing ??= (async () => {
      if (this.timer) clearTimeout(this.timer);
      if (this.aborted) throw new SmfsError('SMFS_ERR_CLOSED', 'the server closed before the clients\' caches were replayed');
      this.report.state = 'replaying';
      try {
        await this.replay();
      } finally {
        this.report.lastSeq = this.store.lastSeq;
        this.report.ms = Date.now() - this.started;
        this.report.state = 'done';
      }
      return this.stat();
    })();
    return this.finishing;
  }

  private async replay(): Promise<void> {
    const start = this.report.startSeq;
    const merged = new Map<number, HandedGroup | 'conflict'>();
    const shares: Share[] = [];
    for (const c of this.clients.values()) {
      shares.push(...c.shares);
      for (const g of c.groups.values()) {
        const had = merged.get(g.seq);
        if (had === undefined) merged.set(g.seq, g);
        else if (had !== 'conflict' && !had.body.equals(g.body)) {
          merged.set(g.seq, 'conflict');
          if (g.seq > start) this.report.conflicts.push(g.seq);
        }
      }
    }
    this.report.groups = merged.size;
    this.report.shares = shares.length;
    for (const [seq, g] of merged) {
      if (seq > start || g === 'conflict') continue;
      if (await this.alreadyHere(g)) this.report.present++;
      else this.report.conflicts.push(seq);
    }
    await this.solveShares(merged, shares, start);
    let last = start;
    for (const seq of merged.keys()) last = Math.max(last, seq);
    // Applied in order through the mirror's path; each must be the one right after the last.
    const applying: { seq: number; done: Promise<unknown> }[] = [];
    const settle = async (): Promise<boolean> => {
      let ok = true;
      for (const a of applying.splice(0)) {
        try {
          await a.done;
          if (ok) this.report.applied++;
        } catch (err) {
          if (ok) this.gap(a.seq, `it could not be applied: ${(err as Error).message}`);
          ok = false;
        }
      }
      return ok;
    };
    let seq = start + 1;
    for (; seq <= last; seq++) {
      const g = merged.get(seq);
      if (g === undefined || g === 'conflict') {
        await settle();
        if (this.report.gapAt === null) this.gap(seq, g === 'conflict' ? 'clients handed over different bytes for it' : 'no surviving client kept it, and no share solves it');
        break;
      }
      const missing = g.parts.filter((p) => !this.store.hasLog(p.log));
      if (missing.length > 0) {
        if (!await settle()) break;
        const startsLog = missing.every((p) => p.segment === 0 && p.offset === SEGMENT_HEADER);
        if (!startsLog) {
          this.gap(seq, `log ${missing[0].log} is not here and the group does not start it`);
          break;
        }
        for (const p of missing) {
          await this.store.createLog(p.log);
          this.report.logsCreated.push(p.log);
        }
      }
      applying.push({ seq, done: this.store.applyMirrored(seq, g.parts, { next: true }) });
    }
    await settle();
    const end = this.store.lastSeq;
    this.report.cutOff = [...merged.keys()].filter((s) => s > end).sort((a, b) => a - b);
    if (this.report.cutOff.length === 0) {
      this.report.gapAt = null;
      this.report.gapReason = null;
    }
    if (this.report.applied > 0 || this.report.logsCreated.length > 0) await this.store.checkpoint();
  }

  private gap(seq: number, reason: string): void {
    this.report.gapAt = seq;
    this.report.gapReason = `group ${seq}: ${reason}`;
  }

  // Each share with exactly one group not known (and not here) gives that group; repeated while
  // that helps. A solved group is checked as any handed-over group.
  private async solveShares(merged: Map<number, HandedGroup | 'conflict'>, shares: Share[], start: number): Promise<void> {
    const stored = new Map<number, Buffer | null>();
    const bodyOf = async (m: ShareMember): Promise<Buffer | null> => {
      const g = merged.get(m.seq);
      if (g !== undefined) return g === 'conflict' ? null : g.body;
      if (m.seq > start) return null;
      if (!stored.has(m.seq)) stored.set(m.seq, await this.readStored(m));
      return stored.get(m.seq)!;
    };
    for (let progress = true; progress;) {
      progress = false;
      for (const share of shares) {
        const unknown = share.members.filter((m) => m.seq > start && !merged.has(m.seq));
        if (unknown.length !== 1) continue;
        const others = new Map<number, Buffer>();
        let usable = true;
        for (const m of share.members) {
          if (m === unknown[0]) continue;
          const b = await bodyOf(m);
          if (!b || b.length !== memberLength(m)) {
            usable = false;
            break;
          }
          others.set(m.seq, b);
        }
        if (!usable) continue;
        const body = solve(share, unknown[0].seq, (m) => others.get(m.seq)!);
        try {
          const c = new Cursor(body, `group ${unknown[0].seq} solved from share ${share.id}`);
          const { seq, parts } = decodeGroupBody(c);
          c.end();
          if (seq !== unknown[0].seq) continue;
          checkShipped(seq, parts);
          merged.set(seq, { seq, parts, body });
          this.report.decoded++;
          progress = true;
        } catch {
          // Not a group: a share whose other members are not what they were when it was made.
        }
      }
    }
  }

  // A share's member this store holds, as its group body, from where the share says it is.
  private async readStored(m: ShareMember): Promise<Buffer | null> {
    try {
      const parts: ShippedPart[] = [];
      for (const p of m.parts) {
        const info = this.store.segmentInfo(p.log, p.segment);
        if (!info || info.state !== 'raw' || p.offset + p.length > info.size) return null;
        parts.push({ log: p.log, segment: p.segment, offset: p.offset, bytes: await this.store.readRaw(p.log, p.segment, p.offset, p.length) });
      }
      checkShipped(m.seq, parts);
      return encodeGroupBody(m.seq, parts);
    } catch {
      return null;
    }
  }

  // What became of a client's groups: here already (the same bytes), applied, or lost.
  private async verdict(groups: HandedGroup[], late: boolean): Promise<Verdict> {
    const v: Verdict = { lastSeq: this.store.lastSeq, applied: 0, present: 0, lost: [], gapAt: this.report.gapAt };
    for (const g of groups) {
      if (g.seq > this.store.lastSeq) v.lost.push(g.seq);
      else if (!late && g.seq > this.report.startSeq) {
        // Replayed: from this client's bytes, or another's that were the same (different bytes stop the replay).
        v.applied++;
      } else if (await this.alreadyHere(g)) v.present++;
      else {
        v.lost.push(g.seq);
        if (late && !this.report.conflicts.includes(g.seq)) this.report.conflicts.push(g.seq);
      }
    }
    v.lost.sort((a, b) => a - b);
    return v;
  }

  private async alreadyHere(g: HandedGroup): Promise<boolean> {
    const c = this.checked.get(g.seq);
    if (c && c.body.equals(g.body)) return c.same;
    const same = await storedAsGiven(this.store, g.parts);
    this.checked.set(g.seq, { body: g.body, same });
    return same;
  }
}
