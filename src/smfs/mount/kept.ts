// A tagged mount's commits, kept until the mirror has them (docs/smfs-files.md, "Tagged mounts").
//
// A commit at 'tagged' is answered once the primary has written it, with the storage group's
// sequence number and the mirrored-through watermark. The mount keeps the commit's changes until
// the watermark passes that number. After a disaster the promoted site's file server holds the
// tree at some update U (every update the mirror had); the mount's kept commits past U are
// exactly what it lacks, and replayed in order on top of U they give the tree the mount had.
import type { Change } from '../fs/tree';

export interface KeptCommit {
  update: number;
  seq: number | undefined;  // undefined: the commit landed but its answer was lost
  changes: Change[];
  bytes: number;
}

export interface KeptStats {
  kept: number;         // commits kept now
  keptBytes: number;
  peakBytes: number;
  limitBytes: number;
  dropped: number;      // commits dropped once the mirror had them
  mirroredAtAnswer: number; // commits the mirror had by their answer: never kept
  degraded: number;     // commits sent at 'remote' because the cache was full
  mirrored: number;     // the mirrored-through watermark last heard
  failovers: number;    // hand-overs to another site's file server
  replayed: number;     // commits replayed there
}

// What a commit costs to keep: its data, and a little for each change.
export function commitBytes(changes: Change[]): number {
  let n = 0;
  for (const c of changes) {
    n += 128;
    if (c.op === 'write') n += c.data.length;
    if (c.op === 'patch' && c.content) for (const e of c.content.extents) n += e.data.length;
  }
  return n;
}

export class KeptCommits {
  private list: KeptCommit[] = [];
  readonly stats: KeptStats;

  constructor(limitBytes: number) {
    this.stats = { kept: 0, keptBytes: 0, peakBytes: 0, limitBytes, dropped: 0, mirroredAtAnswer: 0, degraded: 0, mirrored: 0, failovers: 0, replayed: 0 };
  }

  get size(): number {
    return this.list.length;
  }

  fits(bytes: number): boolean {
    return this.stats.keptBytes + bytes <= this.stats.limitBytes;
  }

  keep(c: KeptCommit): void {
    this.list.push(c);
    this.stats.kept = this.list.length;
    this.stats.keptBytes += c.bytes;
    this.stats.peakBytes = Math.max(this.stats.peakBytes, this.stats.keptBytes);
  }

  // The watermark: every group up to `mirrored` is at the mirror. Sequence numbers grow with
  // updates, so a commit at or under it also vouches for every commit before it (those whose
  // answer was lost among them).
  release(mirrored: number): void {
    this.stats.mirrored = Math.max(this.stats.mirrored, mirrored);
    let through = -1;
    for (const c of this.list) if (c.seq !== undefined && c.seq <= mirrored) through = c.update;
    this.releaseThrough(through);
  }

  // Every commit up to `update` is at the mirror (or at the site that now serves the tree).
  releaseThrough(update: number): void {
    const before = this.list.length;
    this.list = this.list.filter((c) => c.update > update);
    if (this.list.length === before) return;
    this.stats.dropped += before - this.list.length;
    this.count();
  }

  // After connecting to a file server whose tree is at update `at` while this mount's is at
  // `last`: the commits to replay there, in order, or the updates neither has.
  handOver(at: number, last: number): { replay: KeptCommit[] } | { missing: { from: number; to: number } } {
    this.releaseThrough(at);
    const replay = [...this.list];
    for (let u = at + 1, i = 0; u <= last; u++, i++) {
      if (replay[i]?.update !== u) return { missing: { from: u, to: replay[i] ? replay[i].update - 1 : last } };
    }
    return { replay };
  }

  // A commit replayed at the new site: kept again under that site's sequence number, or, with
  // no mirror there, dropped (the new primary's own log is all there is).
  replayed(c: KeptCommit, seq: number | undefined): void {
    this.stats.replayed++;
    if (seq === undefined) {
      this.list = this.list.filter((k) => k !== c);
      this.count();
    } else c.seq = seq;
  }

  private count(): void {
    this.stats.kept = this.list.length;
    this.stats.keptBytes = this.list.reduce((n, c) => n + c.bytes, 0);
  }
}
