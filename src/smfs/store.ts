// The storage server's log store: logs as chains of segment files in one directory, groups of
// records appended atomically across logs, reads by address, frees, and a cleaner that compacts
// mostly-free segments without changing any address (docs/smfs.md).
//
// Every change goes through one writer, in the order it was asked for: it assigns each group
// its sequence number and addresses, writes its parts, and, with fsync 'always', fsyncs what a
// batch of groups touched before it answers any of them. Reads do not wait for the writer.
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { crc32 } from './checksum';
import { SmfsError } from './errors';
import {
  LIMITS, RECORD_HEADER, SEGMENT_HEADER, SegmentKind, decodePart, encodeDataPart, encodeDurable, encodeFreePart, encodeSegmentHeader, formatAddress, segmentFileName,
} from './format';
import type { Address, NewRecord, Part } from './format';
import { DURABLE_FILE, LOGS_DIR, recover } from './recovery';
import type { RecoveryReport } from './recovery';
import { LogState, Segment } from './segment';
import { compactSegment, planCompaction } from './cleaner';
import { fdatasync, fsyncDirectory, fsyncDirectoryAsync, ftruncate, readExactly, writeAllAt } from './files';
import { DirectoryLock } from './lock';
import { readRuns, sliceRuns } from './read-runs';

export type FsyncPolicy = 'always' | 'interval' | 'never';
export const FSYNC_POLICIES: readonly FsyncPolicy[] = ['always', 'interval', 'never'];

export interface StoreOptions {
  segmentBytes?: number;     // a segment is sealed when the next part would take it past this
  fsync?: FsyncPolicy;       // default 'always'
  fsyncIntervalMs?: number;  // with 'interval': how often dirty segments are fsynced (default 10)
  mirror?: boolean;          // the directory is a mirror's: its parts were written by the primary (recovery ignores their durable marks)
}

export const STORE_DEFAULTS = { segmentBytes: LIMITS.defaultSegmentBytes, fsync: 'always' as FsyncPolicy, fsyncIntervalMs: 10, mirror: false };

// A part as it is on disk, where it is: what a primary ships to its mirror, which writes the
// same bytes at the same place, so the two logs stay byte for byte the same.
export interface ShippedPart {
  log: number;
  segment: number;
  offset: number;
  bytes: Buffer;
}

// What the writer did, in the order it did it: what a mirror must do too.
export type Change =
  | { kind: 'create'; log: number }
  | { kind: 'group'; seq: number; parts: ShippedPart[] };

export interface AppendRecord {
  log: number;
  data: Uint8Array;
  crc?: number; // when given, checked against the data (end-to-end from a client)
}

export interface ReadResult {
  data: Buffer;
  crc: number;
}

export interface CleanOptions {
  maxLiveRatio?: number; // clean segments whose live records fill at most this share (default 0.5)
  logs?: number[];       // default every log
}

export interface CleanReport {
  segmentsCompacted: number;
  segmentsDeleted: number;
  recordsKept: number;
  bytesBefore: number;
  bytesAfter: number;
  durableSeq: number;
}

export interface LogStat {
  id: number;
  segments: number;
  compactedSegments: number;
  bytes: number;
  liveRecords: number;
  liveBytes: number;
  freedRecords: number;    // freed, still taking space until cleaned
  end: string;             // the end of the log's last segment: log:segment:offset
}

export interface StoreStat {
  dir: string;
  fsync: FsyncPolicy;
  fsyncIntervalMs: number;
  segmentBytes: number;
  lastSeq: number;
  durableSeq: number;
  failed: string | null;
  logs: LogStat[];
}

export interface Entry {
  address: Address;
  length: number;
  freed: boolean;
}

// A group as the writer wrote it: its sequence number, the durable mark its parts carry, and,
// when asked for, its parts as written (what a tagged client keeps, and a coded share covers).
export interface Written {
  seq: number;
  durableSeq: number;
  parts?: ShippedPart[];
}

export interface AppendedGroup extends Written {
  addresses: Address[];
}

export interface FreedGroup extends Written {
  locations: Address[]; // where each part went, one per log, ascending
}

export interface ApplyOptions {
  next?: boolean; // the group must be the one right after this store's last: no hole (a handover)
}

type Job =
  | { kind: 'append'; records: AppendRecord[]; bytes: number; keepParts: boolean; resolve: (g: AppendedGroup) => void; reject: (e: unknown) => void }
  | { kind: 'free'; addresses: Address[]; bytes: number; keepParts: boolean; resolve: (v: FreedGroup) => void; reject: (e: unknown) => void }
  | { kind: 'apply'; seq: number; parts: ShippedPart[]; decoded: Part[]; bytes: number; next: boolean; resolve: (v: undefined) => void; reject: (e: unknown) => void }
  | { kind: 'create'; log: number; resolve: (v: void) => void; reject: (e: unknown) => void }
  | { kind: 'sync'; resolve: (seq: number) => void; reject: (e: unknown) => void };

// A batch's group, written, waiting for its fsync to be answered.
interface WrittenJob {
  job: Extract<Job, { kind: 'append' | 'free' | 'apply' }>;
  value: AppendedGroup | FreedGroup | undefined;
}

const BATCH_JOBS = 256;
const BATCH_BYTES = LIMITS.groupBytes;

const rename = promisify(fs.rename);
const writeFile = promisify(fs.writeFile);
const openFile = promisify(fs.open);
const closeFile = promisify(fs.close);

function checkLogId(log: unknown): asserts log is number {
  if (typeof log !== 'number' || !Number.isInteger(log) || log < 0 || log > LIMITS.maxLogId) {
    throw new SmfsError('SMFS_ERR_REQUEST', `a log id is a whole number from 0 to ${LIMITS.maxLogId}, got ${String(log)}`);
  }
}

function checkAddress(a: Address): void {
  checkLogId(a.log);
  for (const k of ['segment', 'offset'] as const) {
    const v = a[k];
    if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new SmfsError('SMFS_ERR_ADDRESS', `an address's ${k} is a whole number from 0 to 2^32-1, got ${String(v)}`);
  }
}

function ioError(what: string, err: unknown): SmfsError {
  if (err instanceof SmfsError) return err;
  return new SmfsError('SMFS_ERR_IO', `${what}: ${(err as Error).message}`, { cause: err });
}

// Which logs a group touches, ascending, and its entries per log in the order given.
function byLog<T extends { log: number }>(entries: T[]): Map<number, { items: T[]; indexes: number[] }> {
  const m = new Map<number, { items: T[]; indexes: number[] }>();
  entries.forEach((e, i) => {
    let g = m.get(e.log);
    if (!g) m.set(e.log, (g = { items: [], indexes: [] }));
    g.items.push(e);
    g.indexes.push(i);
  });
  return new Map([...m.entries()].sort((a, b) => a[0] - b[0]));
}

// Checks a group as a mirror receives it (or a promoted mirror from a client): every part whole
// (its CRCs), of this group, in ascending log order. Where it lands is checked when it is written.
export function checkShipped(seq: number, parts: ShippedPart[]): Part[] {
  if (!Number.isSafeInteger(seq) || seq < 1) throw new SmfsError('SMFS_ERR_REQUEST', `a group's sequence number is a whole number from 1, got ${seq}`);
  if (parts.length === 0) throw new SmfsError('SMFS_ERR_REQUEST', 'a mirrored group needs at least one part');
  const decoded: Part[] = [];
  for (const [i, p] of parts.entries()) {
    const part = decodePart(p.bytes, p.log, p.offset);
    if (typeof part === 'string') throw new SmfsError('SMFS_ERR_CHECKSUM', `mirrored group ${seq}, part ${i} (log ${p.log}): not a whole part (${part})`);
    if (part.seq !== seq) throw new SmfsError('SMFS_ERR_REQUEST', `mirrored group ${seq}, part ${i} (log ${p.log}) carries group ${part.seq}`);
    if (i > 0 && p.log <= parts[i - 1].log) throw new SmfsError('SMFS_ERR_REQUEST', `mirrored group ${seq}: parts not in ascending log order`);
    if (part.participantLogs.length !== parts.length || part.participantLogs.some((log, k) => log !== parts[k].log)) {
      throw new SmfsError('SMFS_ERR_REQUEST', `mirrored group ${seq}, part ${i} (log ${p.log}) names logs ${part.participantLogs.join(',')}, the group has parts for ${parts.map((x) => x.log).join(',')}`);
    }
    decoded.push(part);
  }
  return decoded;
}

export class LogStore {
  readonly dir: string;
  readonly options: Required<StoreOptions>;
  readonly recovery: RecoveryReport;
  private readonly logs: Map<number, LogState>;
  private readonly creating = new Set<number>(); // logs whose create-log is queued or being written
  private seq: number;
  private durable: number;
  private readonly queue: Job[] = [];
  private writing = false;
  private idle: (() => void)[] = [];
  private readonly dirty = new Set<Segment>();
  private timer: NodeJS.Timeout | undefined;
  private syncQueued = false;
  private cleaning: Promise<unknown> = Promise.resolve();
  private readsInFlight = 0;
  private readsDone: (() => void)[] = [];
  private failure: SmfsError | undefined;
  private closed = false;
  // Told of every change right after it is written (before its fsync): the mirror link.
  onChange: ((c: Change) => void) | undefined;
  // The newest group the cleaner may compact: a primary's mirror may still need the parts
  // after it, which only raw segments hold.
  cleanFloor: (() => number) | undefined;

  private constructor(dir: string, options: Required<StoreOptions>, private readonly lock: DirectoryLock, recovered: ReturnType<typeof recover>) {
    this.dir = dir;
    this.options = options;
    this.logs = recovered.logs;
    this.seq = recovered.lastSeq;
    this.durable = recovered.durableSeq;
    this.recovery = recovered.report;
    if (options.fsync === 'interval') {
      this.timer = setInterval(() => this.syncSoon(), options.fsyncIntervalMs);
      this.timer.unref();
    }
  }

  // Opens (creating if need be) the store in `dir`: takes the directory's lock, recovers every
  // log to its last whole group, and is ready for requests.
  static async open(dir: string, options: StoreOptions = {}): Promise<LogStore> {
    const o = { ...STORE_DEFAULTS, ...Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) } as Required<StoreOptions>;
    if (!Number.isInteger(o.segmentBytes) || o.segmentBytes < LIMITS.minSegmentBytes || o.segmentBytes > LIMITS.maxSegmentBytes) {
      throw new SmfsError('SMFS_ERR_REQUEST', `the segment size is from ${LIMITS.minSegmentBytes} to ${LIMITS.maxSegmentBytes} bytes, got ${o.segmentBytes}`);
    }
    if (!FSYNC_POLICIES.includes(o.fsync)) throw new SmfsError('SMFS_ERR_REQUEST', `fsync is one of ${FSYNC_POLICIES.join(', ')}, got '${o.fsync}'`);
    if (!(o.fsyncIntervalMs >= 1 && o.fsyncIntervalMs <= 60_000)) throw new SmfsError('SMFS_ERR_REQUEST', `the fsync interval is from 1 to 60000 ms, got ${o.fsyncIntervalMs}`);
    fs.mkdirSync(dir, { recursive: true });
    const lock = DirectoryLock.take(dir);
    try {
      return new LogStore(path.resolve(dir), o, lock, recover(dir, { partMarks: !o.mirror }));
    } catch (err) {
      lock.release();
      throw err;
    }
  }

  get lastSeq(): number {
    return this.seq;
  }

  // Every group up to this sequence number is on disk in every log it touched.
  get durableSeq(): number {
    return this.durable;
  }

  logIds(): number[] {
    return [...this.logs.keys()].sort((a, b) => a - b);
  }

  async createLog(log: number): Promise<void> {
    checkLogId(log);
    this.creating.add(log);
    try {
      return await new Promise((resolve, reject) => this.enqueue({ kind: 'create', log, resolve, reject }));
    } finally {
      this.creating.delete(log);
    }
  }

  // Appends a group: the records are given addresses in the order given and all of them are
  // committed, or none, also across a crash. Resolves once the fsync policy is met.
  append(records: AppendRecord[]): Promise<Address[]> {
    return this.appendGroup(records).then((g) => g.addresses);
  }

  // append, also telling the group's sequence number (what mirror acknowledgements count), the
  // durable mark in its parts and, with keepParts, the parts as written.
  appendGroup(records: AppendRecord[], options: { keepParts?: boolean } = {}): Promise<AppendedGroup> {
    if (!Array.isArray(records) || records.length === 0) return Promise.reject(new SmfsError('SMFS_ERR_REQUEST', 'a group needs at least one record'));
    if (records.length > LIMITS.groupRecords) return Promise.reject(new SmfsError('SMFS_ERR_TOO_LARGE', `a group holds at most ${LIMITS.groupRecords} records, got ${records.length}`));
    let bytes = 0;
    try {
      records.forEach((r, i) => {
        checkLogId(r.log);
        if (!(r.data instanceof Uint8Array)) throw new SmfsError('SMFS_ERR_REQUEST', `record ${i}: data must be bytes`);
        if (r.data.length > LIMITS.recordBytes) throw new SmfsError('SMFS_ERR_TOO_LARGE', `record ${i} has ${r.data.length} bytes; a record holds at most ${LIMITS.recordBytes}`);
        bytes += r.data.length;
      });
      if (bytes > LIMITS.groupBytes) throw new SmfsError('SMFS_ERR_TOO_LARGE', `the group has ${bytes} bytes of data; a group holds at most ${LIMITS.groupBytes}`);
    } catch (err) {
      return Promise.reject(err);
    }
    const withCrc: AppendRecord[] = [];
    for (let i = 0; i < records.length; i++) {
      const r = records[i];
      const crc = crc32(r.data);
      if (r.crc !== undefined && r.crc >>> 0 !== crc) {
        return Promise.reject(new SmfsError('SMFS_ERR_CHECKSUM', `record ${i}: checksum ${r.crc >>> 0} does not match its data (${crc}); it was damaged on the way`));
      }
      withCrc.push({ log: r.log, data: r.data, crc });
    }
    return new Promise((resolve, reject) => this.enqueue({ kind: 'append', records: withCrc, bytes, keepParts: options.keepParts ?? false, resolve, reject }));
  }

  // On a mirror: writes a group exactly as its primary did, the same bytes at the same
  // addresses, after checking that each part is whole and lands at the end of its log. With
  // `next`, only as the group right after this store's last (a group handed over by a client).
  applyMirrored(seq: number, parts: ShippedPart[], options: ApplyOptions = {}): Promise<undefined> {
    let decoded: Part[];
    try {
      // A log whose create-log is queued ahead counts as there; the writer checks again.
      for (const [i, p] of parts.entries()) {
        if (!this.logs.has(p.log) && !this.creating.has(p.log)) throw new SmfsError('SMFS_ERR_UNKNOWN_LOG', `mirrored group ${seq}, part ${i}: no log ${p.log} on this mirror`);
      }
      decoded = checkShipped(seq, parts);
    } catch (err) {
      return Promise.reject(err);
    }
    const bytes = parts.reduce((n, p) => n + p.bytes.length, 0);
    return new Promise((resolve, reject) => this.enqueue({ kind: 'apply', seq, parts, decoded, bytes, next: options.next ?? false, resolve, reject }));
  }

  hasLog(id: number): boolean {
    return this.logs.has(id);
  }

  // Where each log ends: the point a mirror's primary resumes from.
  ends(): Address[] {
    return this.logIds().map((id) => this.endOf(this.logs.get(id)!));
  }

  // The end of a log's last segment, where its next part goes.
  private endOf(log: LogState): Address {
    const last = log.last;
    return { log: log.id, segment: last?.number ?? 0, offset: last?.size ?? 0 };
  }

  // A segment's kind and size, for a primary reading its parts back for its mirror.
  segmentInfo(log: number, segment: number): { state: 'raw' | 'compacted'; size: number; last: boolean } | undefined {
    const state = this.logs.get(log);
    const seg = state?.get(segment);
    return seg && { state: seg.state, size: seg.size, last: seg === state!.last };
  }

  // Bytes of a segment as they are on disk.
  async readRaw(log: number, segment: number, offset: number, length: number): Promise<Buffer> {
    const seg = this.logs.get(log)?.get(segment);
    if (!seg) throw new SmfsError('SMFS_ERR_ADDRESS', `no segment ${log}:${segment}`);
    const fd = seg.pin();
    try {
      return await readExactly(fd, offset, length);
    } catch (err) {
      throw ioError(`reading ${seg.path}`, err);
    } finally {
      seg.unpin();
    }
  }

  // Frees records: all of them or none. Each must be live; a freed record reads as freed.
  free(addresses: Address[]): Promise<void> {
    return this.freeGroup(addresses).then(() => undefined);
  }

  // free, also telling the group's sequence number, the durable mark in its parts and where its
  // parts went (and, with keepParts, the parts).
  freeGroup(addresses: Address[], options: { keepParts?: boolean } = {}): Promise<FreedGroup> {
    if (!Array.isArray(addresses) || addresses.length === 0) return Promise.reject(new SmfsError('SMFS_ERR_REQUEST', 'free needs at least one address'));
    if (addresses.length > LIMITS.groupRecords) return Promise.reject(new SmfsError('SMFS_ERR_TOO_LARGE', `free takes at most ${LIMITS.groupRecords} addresses, got ${addresses.length}`));
    try {
      addresses.forEach(checkAddress);
    } catch (err) {
      return Promise.reject(err);
    }
    return new Promise((resolve, reject) => this.enqueue({ kind: 'free', addresses: addresses.map((a) => ({ ...a })), bytes: addresses.length * 8, keepParts: options.keepParts ?? false, resolve, reject }));
  }

  // fsyncs everything written so far; resolves to the durable sequence number.
  sync(): Promise<number> {
    return new Promise((resolve, reject) => this.enqueue({ kind: 'sync', resolve, reject }));
  }

  // sync, then the durable mark on disk (as a clean does): the next open checks only later groups.
  async checkpoint(): Promise<number> {
    const mark = await this.sync();
    await this.writeDurableMark(mark);
    return mark;
  }

  async read(a: Address): Promise<ReadResult> {
    if (this.closed) throw new SmfsError('SMFS_ERR_CLOSED', 'the store is closed');
    checkAddress(a);
    const seg = this.locate(a);
    const r = seg.find(a.offset)!;
    const fd = seg.pin();
    this.readsInFlight++;
    let data: Buffer;
    try {
      data = await readExactly(fd, r.position, r.length);
    } catch (err) {
      throw ioError(`reading ${formatAddress(a)}`, err);
    } finally {
      seg.unpin();
      if (--this.readsInFlight === 0) for (const done of this.readsDone.splice(0)) done();
    }
    if (crc32(data) !== r.crc) throw new SmfsError('SMFS_ERR_CORRUPT', `${seg.path}: the record at ${formatAddress(a)} fails its checksum on disk`);
    return { data, crc: r.crc };
  }

  // The segment holding a live record at `a`, or the error that says why there is none.
  private locate(a: Address): Segment {
    const log = this.logs.get(a.log);
    if (!log) throw new SmfsError('SMFS_ERR_UNKNOWN_LOG', `no log ${a.log} on this server; create it first`);
    const seg = log.get(a.segment);
    if (!seg) {
      if (a.segment < log.nextNumber) throw new SmfsError('SMFS_ERR_FREED', `${formatAddress(a)}: segment ${a.segment} was cleaned; nothing there was live`);
      throw new SmfsError('SMFS_ERR_ADDRESS', `${formatAddress(a)} is beyond the end of log ${a.log} (its last segment is ${log.nextNumber - 1})`);
    }
    const r = seg.find(a.offset);
    if (!r) {
      if (seg.state === 'compacted') throw new SmfsError('SMFS_ERR_FREED', `${formatAddress(a)}: no live record there; segment ${a.segment} was cleaned`);
      const where = a.offset >= seg.size ? `beyond the end of segment ${a.segment} (${seg.size} bytes)` : 'not the start of a record';
      throw new SmfsError('SMFS_ERR_ADDRESS', `${formatAddress(a)} is ${where}`);
    }
    if (seg.freed.has(a.offset)) throw new SmfsError('SMFS_ERR_FREED', `${formatAddress(a)} was freed`);
    return seg;
  }

  // Every record of a log that is still on disk, live or freed, in address order.
  *entries(log: number): IterableIterator<Entry> {
    const state = this.logs.get(log);
    if (!state) throw new SmfsError('SMFS_ERR_UNKNOWN_LOG', `no log ${log} on this server`);
    for (const seg of state.ordered()) {
      for (const r of seg.records()) yield { address: { log, segment: seg.number, offset: r.offset }, length: r.length, freed: r.freed };
    }
  }

  // The address of the newest data record of a log, freed or not; undefined if it has none.
  // A file server finds its newest root inode here after a restart or a failover.
  tail(log: number): Address | undefined {
    checkLogId(log);
    const state = this.logs.get(log);
    if (!state) throw new SmfsError('SMFS_ERR_UNKNOWN_LOG', `no log ${log} on this server`);
    const segments = state.ordered();
    for (let i = segments.length - 1; i >= 0; i--) {
      let last: number | undefined;
      for (const r of segments[i].records()) last = r.offset;
      if (last !== undefined) return { log, segment: segments[i].number, offset: last };
    }
    return undefined;
  }

  // Several records, as read() each, all or none: records that follow each other in a segment
  // are read with one pread (read-runs.ts).
  async readMany(addresses: Address[]): Promise<ReadResult[]> {
    if (this.closed) throw new SmfsError('SMFS_ERR_CLOSED', 'the store is closed');
    const wanted = addresses.map((a) => {
      checkAddress(a);
      const seg = this.locate(a);
      const r = seg.find(a.offset)!;
      return { file: seg, position: r.position, length: r.length, crc: r.crc, address: a };
    });
    const bytes = wanted.reduce((n, w) => n + w.length, 0);
    if (bytes > LIMITS.groupBytes) throw new SmfsError('SMFS_ERR_TOO_LARGE', `read-many of ${bytes} bytes; one answers at most ${LIMITS.groupBytes}`);
    const runs = readRuns(wanted);
    const fds = runs.map((run) => run.file.pin());
    this.readsInFlight++;
    let read: Buffer[];
    try {
      read = await Promise.all(runs.map((run, k) => readExactly(fds[k], run.position, run.length)));
    } catch (err) {
      throw ioError(`reading ${addresses.length} records`, err);
    } finally {
      for (const run of runs) run.file.unpin();
      if (--this.readsInFlight === 0) for (const done of this.readsDone.splice(0)) done();
    }
    return sliceRuns(wanted, runs, read).map((data, i) => {
      const w = wanted[i];
      if (crc32(data) !== w.crc) throw new SmfsError('SMFS_ERR_CORRUPT', `${w.file.path}: the record at ${formatAddress(w.address)} fails its checksum on disk`);
      return { data, crc: w.crc };
    });
  }

  stat(): StoreStat {
    const logs: LogStat[] = [];
    for (const id of this.logIds()) {
      const log = this.logs.get(id)!;
      const segs = log.ordered();
      logs.push({
        id,
        segments: segs.length,
        compactedSegments: segs.filter((s) => s.state === 'compacted').length,
        bytes: segs.reduce((n, s) => n + s.size, 0),
        liveRecords: segs.reduce((n, s) => n + s.liveRecords, 0),
        liveBytes: segs.reduce((n, s) => n + s.liveBytes, 0),
        freedRecords: segs.reduce((n, s) => n + s.freed.size, 0),
        end: formatAddress(this.endOf(log)),
      });
    }
    return {
      dir: this.dir, fsync: this.options.fsync, fsyncIntervalMs: this.options.fsyncIntervalMs, segmentBytes: this.options.segmentBytes,
      lastSeq: this.seq, durableSeq: this.durable, failed: this.failure?.message ?? null, logs,
    };
  }

  // Compacts every segment but the last of each log whose live records fill at most
  // maxLiveRatio of it. Addresses do not change. One clean runs at a time.
  clean(options: CleanOptions = {}): Promise<CleanReport> {
    const maxLiveRatio = options.maxLiveRatio ?? 0.5;
    if (!(maxLiveRatio >= 0 && maxLiveRatio <= 1)) return Promise.reject(new SmfsError('SMFS_ERR_REQUEST', `maxLiveRatio is from 0 to 1, got ${maxLiveRatio}`));
    for (const id of options.logs ?? []) {
      if (!this.logs.has(id)) return Promise.reject(new SmfsError('SMFS_ERR_UNKNOWN_LOG', `no log ${id} on this server`));
    }
    const run = this.cleaning.catch(() => undefined).then(() => this.runClean(maxLiveRatio, options.logs));
    this.cleaning = run;
    return run;
  }

  private async runClean(maxLiveRatio: number, only: number[] | undefined): Promise<CleanReport> {
    if (this.closed) throw new SmfsError('SMFS_ERR_CLOSED', 'the store is closed');
    // Recovery checks groups past the durable mark across their logs, by their part headers.
    // Compaction drops part headers, so everything it touches must be under a mark on disk.
    const mark = await this.sync();
    await this.writeDurableMark(mark);
    const report: CleanReport = { segmentsCompacted: 0, segmentsDeleted: 0, recordsKept: 0, bytesBefore: 0, bytesAfter: 0, durableSeq: mark };
    for (const id of only ?? this.logIds()) {
      const log = this.logs.get(id)!;
      for (const seg of log.ordered()) {
        if (this.closed) return report;
        if (seg === log.last || seg.maxSeq > mark || seg.maxSeq > (this.cleanFloor?.() ?? Infinity) || seg.liveRatio > maxLiveRatio || log.get(seg.number) !== seg) continue;
        const plan = planCompaction(log, seg);
        if (plan.newSize >= seg.size) continue;
        const before = seg.size;
        let replacement: Segment | undefined;
        try {
          replacement = await compactSegment(log, seg, plan);
        } catch (err) {
          throw ioError(`cleaning ${seg.path}`, err);
        }
        report.bytesBefore += before;
        if (replacement) {
          report.segmentsCompacted++;
          report.recordsKept += replacement.recordCount;
          report.bytesAfter += replacement.size;
        } else report.segmentsDeleted++;
      }
    }
    return report;
  }

  private async writeDurableMark(seq: number): Promise<void> {
    const file = path.join(this.dir, DURABLE_FILE);
    const tmp = `${file}.tmp`;
    const fd = await openFile(tmp, 'w');
    try {
      await writeFile(fd, encodeDurable(seq));
      await fdatasync(fd);
    } finally {
      await closeFile(fd);
    }
    await rename(tmp, file);
    await fsyncDirectoryAsync(this.dir);
  }

  // Refuses new requests, waits for those already asked, fsyncs them, and releases the
  // directory.
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    await this.cleaning.catch(() => undefined);
    let syncError: unknown;
    await new Promise<number>((resolve, reject) => {
      this.queue.push({ kind: 'sync', resolve, reject });
      if (!this.writing) void this.drain();
    }).catch((err) => { syncError = err; });
    // A clean close leaves the mark on disk, so the next open need not check groups across logs.
    if (!syncError) await this.writeDurableMark(this.durable).catch((err) => { syncError = ioError('writing the durable mark', err); });
    if (this.writing) await new Promise<void>((resolve) => this.idle.push(resolve));
    if (this.readsInFlight > 0) await new Promise<void>((resolve) => this.readsDone.push(resolve));
    for (const log of this.logs.values()) for (const seg of log.ordered()) seg.retire();
    this.lock.release();
    if (syncError) throw syncError;
  }

  private enqueue(job: Job): void {
    if (this.closed) {
      job.reject(new SmfsError('SMFS_ERR_CLOSED', 'the store is closed'));
      return;
    }
    this.queue.push(job);
    if (!this.writing) void this.drain();
  }

  private syncSoon(): void {
    if (this.dirty.size === 0 || this.syncQueued || this.closed) return;
    this.syncQueued = true;
    this.enqueue({ kind: 'sync', resolve: () => { this.syncQueued = false; }, reject: () => { this.syncQueued = false; } });
  }

  // Runs the queue in order. A batch's fsync (and its answers) runs while the next batch is
  // written: the disk takes the next writes while it flushes the last, as at most one fsync is
  // under way at a time and a batch is answered only after the one before it.
  private async drain(): Promise<void> {
    this.writing = true;
    let committing: Promise<void> = Promise.resolve();
    try {
      for (;;) {
        if (this.queue.length === 0) {
          // Requests that come while the last fsync runs are taken on here, not left queued.
          await committing;
          if (this.queue.length === 0) break;
        }
        if (this.failure) {
          await committing;
          for (const job of this.queue.splice(0)) job.reject(this.failure);
          continue;
        }
        const first = this.queue[0];
        if (first.kind === 'create' || first.kind === 'sync') {
          this.queue.shift();
          await committing;
          // The round just awaited may have failed: then nothing more is written or marked durable.
          if (this.failure) first.reject(this.failure);
          else await this.runSingle(first);
          continue;
        }
        const batch: Job[] = [];
        let bytes = 0;
        while (this.queue.length > 0 && batch.length < BATCH_JOBS && bytes < BATCH_BYTES) {
          const next = this.queue[0];
          if (next.kind !== 'append' && next.kind !== 'free' && next.kind !== 'apply') break;
          batch.push(this.queue.shift()!);
          bytes += next.bytes;
        }
        const done = await this.writeBatch(batch as Extract<Job, { kind: 'append' | 'free' | 'apply' }>[]);
        await committing;
        committing = this.commitBatch(done);
      }
    } finally {
      this.writing = false;
      for (const done of this.idle.splice(0)) done();
    }
  }

  private async runSingle(job: Extract<Job, { kind: 'create' | 'sync' }>): Promise<void> {
    try {
      if (job.kind === 'sync') job.resolve(await this.syncDirty());
      else job.resolve(await this.writeCreate(job.log));
    } catch (err) {
      job.reject(err);
    }
  }

  // Writes a batch's groups in order; those that fail are refused at once, the others wait for
  // commitBatch.
  private async writeBatch(batch: Extract<Job, { kind: 'append' | 'free' | 'apply' }>[]): Promise<WrittenJob[]> {
    const done: WrittenJob[] = [];
    for (const job of batch) {
      if (this.failure) {
        job.reject(this.failure);
        continue;
      }
      try {
        const value = job.kind === 'append' ? await this.writeAppend(job.records, job.keepParts)
          : job.kind === 'free' ? await this.writeFree(job.addresses, job.keepParts) : await this.writeApplied(job.seq, job.parts, job.decoded, job.next);
        done.push({ job, value });
      } catch (err) {
        job.reject(err);
      }
    }
    return done;
  }

  // With fsync 'always', fsyncs what the batch wrote (and whatever was written since), then
  // answers it. A store that failed meanwhile (an fsync before this one) answers with its failure.
  private async commitBatch(done: WrittenJob[]): Promise<void> {
    if (done.length === 0) return;
    try {
      if (this.failure) throw this.failure;
      if (this.options.fsync === 'always') await this.syncDirty();
    } catch (err) {
      for (const d of done) d.job.reject(err);
      return;
    }
    for (const d of done) (d.job.resolve as (v: AppendedGroup | FreedGroup | undefined) => void)(d.value);
  }

  // fsyncs every segment written since the last time. A failed fsync stops the store: the
  // kernel may have dropped the pages, and only a restart's recovery knows what is on disk.
  private async syncDirty(): Promise<number> {
    if (this.failure) throw this.failure;
    const upTo = this.seq;
    const segs = [...this.dirty];
    this.dirty.clear();
    try {
      await Promise.all(segs.map(async (s) => {
        s.dirty = false;
        const syncing = fdatasync(s.descriptor());
        s.syncing = syncing;
        try {
          await syncing;
        } finally {
          if (s.syncing === syncing) s.syncing = undefined;
        }
      }));
    } catch (err) {
      throw this.fail(`fsync failed; the store takes no more writes until it is restarted (${(err as Error).message})`, err);
    }
    this.durable = Math.max(this.durable, upTo);
    return this.durable;
  }

  private fail(message: string, cause: unknown): SmfsError {
    this.failure ??= new SmfsError('SMFS_ERR_IO', message, { cause });
    return this.failure;
  }

  private async writeCreate(id: number): Promise<void> {
    if (this.logs.has(id)) throw new SmfsError('SMFS_ERR_LOG_EXISTS', `log ${id} exists already`);
    const logsDir = path.join(this.dir, LOGS_DIR);
    const dir = path.join(logsDir, String(id));
    try {
      fs.mkdirSync(dir);
      const log = new LogState(id, dir);
      await this.newSegment(log);
      fsyncDirectory(logsDir);
      this.logs.set(id, log);
    } catch (err) {
      throw ioError(`creating log ${id}`, err);
    }
    this.onChange?.({ kind: 'create', log: id });
  }

  // Starts the log's next segment: the one before is fsynced first, so that a torn write can
  // only ever be in a log's last segment, and the new one exists on disk before anything goes in.
  // An fdatasync of it already under way (the last batch's, which runs while this batch is
  // written) is waited for: it no longer counts as dirty, but it is not on disk yet.
  private async newSegment(log: LogState): Promise<Segment> {
    const previous = log.last;
    if (previous?.syncing) await previous.syncing;
    if (previous?.dirty) {
      await fdatasync(previous.descriptor());
      previous.dirty = false;
      this.dirty.delete(previous);
    }
    const number = log.nextNumber;
    if (number > 0xffffffff) throw new SmfsError('SMFS_ERR_TOO_LARGE', `log ${log.id} has used every segment number`);
    const file = path.join(log.dir, segmentFileName(number));
    const fd = await openFile(file, 'wx');
    try {
      await writeAllAt(fd, [encodeSegmentHeader({ kind: SegmentKind.raw, log: log.id, segment: number })], 0);
      await fdatasync(fd);
    } finally {
      await closeFile(fd);
    }
    await fsyncDirectoryAsync(log.dir);
    const seg = new Segment(log.id, number, file, 'raw', SEGMENT_HEADER);
    log.set(seg);
    return seg;
  }

  private async segmentFor(log: LogState, length: number): Promise<Segment> {
    const last = log.last;
    if (last && last.state === 'raw' && (last.size === SEGMENT_HEADER || last.size + length <= this.options.segmentBytes)) return last;
    return this.newSegment(log);
  }

  private logFor(id: number): LogState {
    const log = this.logs.get(id);
    if (!log) throw new SmfsError('SMFS_ERR_UNKNOWN_LOG', `no log ${id} on this server; create it first`);
    return log;
  }

  // Writes one part per log of the group. The parts go to different logs, so once each has its
  // segment they are written at once: a group over four logs waits for one write, not four in
  // turn (recovery, not the order of the writes, makes a group all or none after a crash). A
  // failure takes back what was written, so the group is all or none in memory too; if even
  // that fails the store stops.
  private async writeParts(parts: { log: LogState; length: number; buffers: Uint8Array[]; at?: { segment: number } }[], after: (seg: Segment, at: number, index: number) => void): Promise<void> {
    const written: { seg: Segment; at: number }[] = [];
    try {
      for (const p of parts) {
        const seg = p.at ? (p.at.segment === p.log.last?.number ? p.log.last : await this.newSegment(p.log)) : await this.segmentFor(p.log, p.length);
        written.push({ seg, at: seg.size });
      }
      // Settled, not all: a failed write is taken back only once no other is still under way.
      const results = await Promise.allSettled(parts.map((p, i) => writeAllAt(written[i].seg.descriptor(), p.buffers, written[i].at)));
      const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed) throw failed.reason;
      parts.forEach((p, i) => {
        const { seg, at } = written[i];
        seg.size = at + p.length;
        seg.dirty = true;
        this.dirty.add(seg);
        after(seg, at, i);
      });
    } catch (err) {
      for (const { seg, at } of written.reverse()) {
        try {
          await ftruncate(seg.descriptor(), at);
          seg.truncateRecords(at);
          seg.size = at;
        } catch (undo) {
          throw this.fail(`a failed write could not be taken back (${(undo as Error).message}); restart the server to recover`, undo);
        }
      }
      throw ioError('writing a group', err);
    }
  }

  // Tells the mirror link what was just written, as it is on disk; the parts, if asked for.
  private shipped(seq: number, written: { seg: Segment; at: number; buffers: Uint8Array[] }[], keepParts: boolean): ShippedPart[] | undefined {
    if (!this.onChange && !keepParts) return undefined;
    const parts = written.map((w) => ({ log: w.seg.log, segment: w.seg.number, offset: w.at, bytes: Buffer.concat(w.buffers) }));
    this.onChange?.({ kind: 'group', seq, parts });
    return keepParts ? parts : undefined;
  }

  private async writeAppend(records: AppendRecord[], keepParts: boolean): Promise<AppendedGroup> {
    const groups = byLog(records);
    for (const id of groups.keys()) this.logFor(id);
    const seq = this.seq + 1;
    const durableSeq = this.durable;
    const participants = [...groups.keys()];
    const addresses: Address[] = new Array(records.length);
    const parts = participants.map((id) => {
      const g = groups.get(id)!;
      const encoded = encodeDataPart(seq, durableSeq, participants, g.items as NewRecord[]);
      return { log: this.logs.get(id)!, length: encoded.length, buffers: encoded.buffers, recordOffsets: encoded.recordOffsets, group: g };
    });
    const written: { seg: Segment; at: number; buffers: Uint8Array[] }[] = [];
    await this.writeParts(parts, (seg, at, i) => {
      const p = parts[i];
      written.push({ seg, at, buffers: p.buffers });
      p.recordOffsets.forEach((rel, k) => {
        const item = p.group.items[k];
        seg.addRecord({ offset: at + rel, position: at + rel + RECORD_HEADER, length: item.data.length, crc: item.crc! });
        addresses[p.group.indexes[k]] = { log: p.log.id, segment: seg.number, offset: at + rel };
      });
      seg.maxSeq = seq;
    });
    this.seq = seq;
    return { addresses, seq, durableSeq, parts: this.shipped(seq, written, keepParts) };
  }

  private async writeFree(addresses: Address[], keepParts: boolean): Promise<FreedGroup> {
    const written: { seg: Segment; at: number; buffers: Uint8Array[] }[] = [];
    const seen = new Set<string>();
    for (const a of addresses) {
      const key = formatAddress(a);
      if (seen.has(key)) throw new SmfsError('SMFS_ERR_REQUEST', `${key} is given twice`);
      seen.add(key);
      this.locate(a);
    }
    const groups = byLog(addresses);
    const seq = this.seq + 1;
    const durableSeq = this.durable;
    const participants = [...groups.keys()];
    const parts = participants.map((id) => {
      const buffer = encodeFreePart(seq, durableSeq, participants, groups.get(id)!.items);
      return { log: this.logs.get(id)!, length: buffer.length, buffers: [buffer], frees: groups.get(id)!.items };
    });
    const recorded: { seg: Segment; frees: Address[] }[] = [];
    await this.writeParts(parts, (seg, at, i) => {
      recorded.push({ seg, frees: parts[i].frees });
      written.push({ seg, at, buffers: parts[i].buffers });
      seg.maxSeq = seq;
    });
    this.seq = seq;
    for (const { seg, frees } of recorded) seg.frees.push(...frees);
    // Looked up again: the cleaner may have swapped a segment while the parts were written.
    for (const a of addresses) this.logs.get(a.log)?.get(a.segment)?.markFreed(a.offset);
    const locations = written.map((w) => ({ log: w.seg.log, segment: w.seg.number, offset: w.at }));
    return { seq, durableSeq, locations, parts: this.shipped(seq, written, keepParts) };
  }

  // A mirrored group, written where the primary wrote it. Every part must land at the end of
  // its log's last segment, or at the start of the next segment: anything else means the two
  // logs have parted ways, and nothing is written.
  private async writeApplied(seq: number, shipped: ShippedPart[], decoded: Part[], next: boolean): Promise<undefined> {
    if (seq <= this.seq) throw new SmfsError('SMFS_ERR_DIVERGED', `mirrored group ${seq} is not after this mirror's last group ${this.seq}`);
    if (next && seq !== this.seq + 1) throw new SmfsError('SMFS_ERR_DIVERGED', `group ${seq} would leave a hole after this store's last group ${this.seq}`);
    for (const p of shipped) {
      const log = this.logFor(p.log);
      const last = log.last;
      const atEnd = last !== undefined && last.state === 'raw' && p.segment === last.number && p.offset === last.size;
      const nextSegment = p.segment === log.nextNumber && p.offset === SEGMENT_HEADER;
      if (!atEnd && !nextSegment) {
        throw new SmfsError('SMFS_ERR_DIVERGED', `mirrored group ${seq} goes at ${formatAddress(p)}, but log ${p.log} ends at ${formatAddress(this.endOf(log))} here`);
      }
    }
    const parts = shipped.map((p) => ({ log: this.logs.get(p.log)!, length: p.bytes.length, buffers: [p.bytes], at: { segment: p.segment } }));
    // Each part lands at the offset it was decoded at (checked above), so its records' offsets hold.
    await this.writeParts(parts, (seg, _at, i) => {
      for (const r of decoded[i].records) seg.addRecord({ offset: r.offset, position: r.offset + RECORD_HEADER, length: r.length, crc: r.crc });
      seg.frees.push(...decoded[i].frees);
      seg.maxSeq = seq;
    });
    this.seq = seq;
    for (const p of decoded) for (const f of p.frees) this.logs.get(f.log)?.get(f.segment)?.markFreed(f.offset);
    return undefined;
  }
}
