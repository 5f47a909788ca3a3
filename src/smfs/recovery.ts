// Opening a store's directory: read every segment, verify every checksum, cut each log back to
// its last whole group, and rebuild the in-memory index (docs/smfs.md, "Recovery").
//
// A torn write can only be at the end of a log's last segment: a segment is fsynced before the
// next one is created, whatever the fsync policy. So a part that does not check out in the last
// segment is a torn tail, and everything from it on is dropped; anywhere else it is corruption,
// and the store refuses to open rather than drop acknowledged data.
//
// A group that touched several logs is whole only if every one of them has its part. Groups up
// to the durable mark are known to be on disk everywhere; every later group is checked across
// its participants, and a log that lacks its part loses that group and what follows in it,
// until nothing changes.
import fs from 'node:fs';
import path from 'node:path';
import {
  COMPACT_HEADER, COMPACT_RECORD_HEADER, CRC_BYTES, FREE_ENTRY, LIMITS, PART_HEADER, RECORD_HEADER, SEGMENT_HEADER, SegmentKind,
  decodeDurable, decodePart, decodePartHead, decodeSegmentHeader, parseSegmentFileName, segmentFileName,
} from './format';
import type { Address, Part } from './format';
import { crc32 } from './checksum';
import { SmfsError } from './errors';
import { LogState, Segment } from './segment';
import { fsyncDirectory, readAt } from './files';

export interface TornTail {
  log: number;
  segment: number;
  offset: number;        // the log now ends here
  droppedBytes: number;  // from the cut to the old end, later segments included
  reason: string;        // why the first dropped byte was not a whole group
}

export interface RecoveryReport {
  logs: number;
  segments: number;
  records: number;        // live and freed records kept
  lastSeq: number;        // newest whole group
  durableSeq: number;     // the durable mark found
  truncated: TornTail[];  // logs cut back
  droppedGroups: number;  // whole parts dropped because their group was missing elsewhere or came after a tear
  droppedBytes: number;
  removed: string[];      // files and directories removed: cleaner leftovers, torn new segments, logs never created
}

export interface Recovered {
  logs: Map<number, LogState>;
  lastSeq: number;
  durableSeq: number;
  report: RecoveryReport;
}

interface ScannedSegment {
  number: number;
  path: string;
  size: number;
  kind: SegmentKind;
  parts: (Part & { offset: number })[];                         // raw
  compacted?: { records: { offset: number; position: number; length: number; crc: number }[]; frees: Address[] };
  tornAt?: number;                                              // raw, last segment only
  tornReason?: string;
}

interface ScannedLog {
  id: number;
  dir: string;
  segments: ScannedSegment[];
}

export const LOGS_DIR = 'logs';
export const DURABLE_FILE = 'durable';

function corrupt(file: string, what: string): SmfsError {
  return new SmfsError('SMFS_ERR_CORRUPT', `${file}: ${what}; this is not a torn write at the end of a log, so the store will not drop it. Restore the file or move the directory aside`);
}

export function readDurableMark(dir: string, removed: string[]): number {
  const file = path.join(dir, DURABLE_FILE);
  const tmp = `${file}.tmp`;
  if (fs.existsSync(tmp)) {
    fs.rmSync(tmp);
    removed.push(tmp);
  }
  if (!fs.existsSync(file)) return 0;
  const seq = decodeDurable(fs.readFileSync(file));
  if (seq === undefined) throw corrupt(file, 'the durable mark does not check out');
  return seq;
}

function scanRaw(fd: number, file: string, size: number, log: number, isLast: boolean): Pick<ScannedSegment, 'parts' | 'tornAt' | 'tornReason'> {
  const parts: ScannedSegment['parts'] = [];
  let at = SEGMENT_HEADER;
  let lastSeq = 0;
  while (at < size) {
    let why: string | undefined;
    let part: Part | undefined;
    if (size - at < PART_HEADER + CRC_BYTES) why = 'a part header cut short';
    else {
      const head = decodePartHead(readAt(fd, at, PART_HEADER));
      if (typeof head === 'string') why = head;
      else if (at + head.length > size) why = `a part of ${head.length} bytes cut short at ${size - at}`;
      else {
        const decoded = decodePart(readAt(fd, at, head.length), log, at);
        if (typeof decoded === 'string') why = decoded;
        else if (decoded.seq <= lastSeq) why = `group ${decoded.seq} after group ${lastSeq}`;
        else part = decoded;
      }
    }
    if (!part) {
      if (!isLast) throw corrupt(file, `at offset ${at}: ${why}`);
      return { parts, tornAt: at, tornReason: why };
    }
    parts.push({ ...part, offset: at });
    lastSeq = part.seq;
    at += part.length;
  }
  return { parts };
}

function scanCompacted(fd: number, file: string, size: number, log: number): NonNullable<ScannedSegment['compacted']> {
  if (size < SEGMENT_HEADER + COMPACT_HEADER + CRC_BYTES) throw corrupt(file, 'a compacted segment cut short');
  const body = readAt(fd, SEGMENT_HEADER, size - SEGMENT_HEADER);
  const end = body.length - CRC_BYTES;
  if (body.readUInt32BE(end) !== crc32(body.subarray(0, end))) throw corrupt(file, 'compacted segment checksum');
  const recordCount = body.readUInt32BE(0);
  const freeCount = body.readUInt32BE(4);
  const records: NonNullable<ScannedSegment['compacted']>['records'] = [];
  let at = COMPACT_HEADER;
  let previous = -1;
  for (let i = 0; i < recordCount; i++) {
    if (at + COMPACT_RECORD_HEADER > end) throw corrupt(file, 'compacted records overrun the file');
    const offset = body.readUInt32BE(at);
    const length = body.readUInt32BE(at + 4);
    const crc = body.readUInt32BE(at + 8);
    if (offset <= previous || length > LIMITS.recordBytes || at + COMPACT_RECORD_HEADER + length > end) throw corrupt(file, `compacted record ${i}`);
    if (crc32(body.subarray(at + COMPACT_RECORD_HEADER, at + COMPACT_RECORD_HEADER + length)) !== crc) throw corrupt(file, `record at offset ${offset} fails its checksum`);
    records.push({ offset, position: SEGMENT_HEADER + at + COMPACT_RECORD_HEADER, length, crc });
    previous = offset;
    at += COMPACT_RECORD_HEADER + length;
  }
  const frees: Address[] = [];
  for (let i = 0; i < freeCount; i++, at += FREE_ENTRY) {
    if (at + FREE_ENTRY > end) throw corrupt(file, 'compacted frees overrun the file');
    frees.push({ log, segment: body.readUInt32BE(at), offset: body.readUInt32BE(at + 4) });
  }
  if (at !== end) throw corrupt(file, 'compacted segment length');
  return { records, frees };
}

function scanLog(id: number, dir: string, removed: string[]): ScannedLog | undefined {
  const numbers: number[] = [];
  for (const name of fs.readdirSync(dir)) {
    if (name.endsWith('.tmp')) {
      fs.rmSync(path.join(dir, name), { force: true });
      removed.push(path.join(dir, name));
      continue;
    }
    const n = parseSegmentFileName(name);
    if (n !== undefined) numbers.push(n);
  }
  numbers.sort((a, b) => a - b);
  const segments: ScannedSegment[] = [];
  for (let i = 0; i < numbers.length; i++) {
    const file = path.join(dir, segmentFileName(numbers[i]));
    const isLast = i === numbers.length - 1;
    const fd = fs.openSync(file, 'r');
    try {
      const size = fs.fstatSync(fd).size;
      const header = decodeSegmentHeader(readAt(fd, 0, Math.min(size, SEGMENT_HEADER)));
      if (typeof header === 'string') {
        // A segment is created by writing its header and fsyncing before anything goes in, so
        // a bad header on the last segment is a creation that never finished.
        if (!isLast || size > SEGMENT_HEADER) throw corrupt(file, header);
        fs.rmSync(file);
        removed.push(file);
        continue;
      }
      if (header.log !== id || header.segment !== numbers[i]) throw corrupt(file, `header names log ${header.log} segment ${header.segment}`);
      if (header.kind === SegmentKind.raw) segments.push({ number: numbers[i], path: file, size, kind: header.kind, ...scanRaw(fd, file, size, id, isLast) });
      else segments.push({ number: numbers[i], path: file, size, kind: header.kind, parts: [], compacted: scanCompacted(fd, file, size, id) });
    } finally {
      fs.closeSync(fd);
    }
  }
  if (segments.length === 0) {
    // create-log makes the directory and segment 0 and fsyncs both before it answers.
    fs.rmSync(dir, { recursive: true, force: true });
    removed.push(dir);
    return undefined;
  }
  return { id, dir, segments };
}

interface Cut {
  segment: number;
  offset: number;
  reason: string;
}

// Where each log must end so that every group past the durable mark is whole in every log it
// touched. Starts from the torn tails and drops incomplete groups until nothing changes.
function findCuts(logs: Map<number, ScannedLog>, durableSeq: number): { cuts: Map<number, Cut>; droppedGroups: number } {
  const cuts = new Map<number, Cut>();
  const kept = new Map<number, Set<number>>(); // log -> sequence numbers past the durable mark still kept
  const isKept = (log: number, s: ScannedSegment, p: { offset: number }): boolean => {
    const cut = cuts.get(log);
    return !cut || s.number < cut.segment || (s.number === cut.segment && p.offset < cut.offset);
  };
  for (const log of logs.values()) {
    const tail = log.segments[log.segments.length - 1];
    if (tail.tornAt !== undefined) cuts.set(log.id, { segment: tail.number, offset: tail.tornAt, reason: tail.tornReason ?? 'torn' });
    const seqs = new Set<number>();
    for (const s of log.segments) for (const p of s.parts) if (p.seq > durableSeq) seqs.add(p.seq);
    kept.set(log.id, seqs);
  }
  const dropped = new Set<number>();
  for (let changed = true; changed;) {
    changed = false;
    for (const log of logs.values()) {
      for (const s of log.segments) {
        for (const p of s.parts) {
          if (p.seq <= durableSeq || p.participants === 1 || !isKept(log.id, s, p)) continue;
          const missing = p.participantLogs.find((other) => other !== log.id && !kept.get(other)?.has(p.seq));
          if (missing === undefined) continue;
          cuts.set(log.id, { segment: s.number, offset: p.offset, reason: `group ${p.seq} has no part in log ${missing}` });
          for (const later of log.segments) {
            for (const q of later.parts) {
              if (later.number > s.number || (later.number === s.number && q.offset >= p.offset)) {
                kept.get(log.id)!.delete(q.seq);
                dropped.add(q.seq);
              }
            }
          }
          changed = true;
        }
      }
    }
  }
  // Parts behind a torn tail's cut were never kept; count them too.
  for (const log of logs.values()) {
    for (const s of log.segments) for (const p of s.parts) if (!isKept(log.id, s, p)) dropped.add(p.seq);
  }
  return { cuts, droppedGroups: dropped.size };
}

// partMarks false: a mirror's parts were written by its primary, and the durable marks they carry say
// what was on the primary's disk, not this one's; a mirror goes by its own durable file only.
export function recover(dir: string, options: { partMarks?: boolean } = {}): Recovered {
  const removed: string[] = [];
  const logsDir = path.join(dir, LOGS_DIR);
  fs.mkdirSync(logsDir, { recursive: true });
  const markFromFile = readDurableMark(dir, removed);
  const scanned = new Map<number, ScannedLog>();
  for (const name of fs.readdirSync(logsDir)) {
    if (!/^\d+$/.test(name) || Number(name) > LIMITS.maxLogId || String(Number(name)) !== name) continue;
    const log = scanLog(Number(name), path.join(logsDir, name), removed);
    if (log) scanned.set(log.id, log);
  }
  let durableSeq = markFromFile;
  if (options.partMarks !== false) {
    for (const log of scanned.values()) {
      for (const s of log.segments) for (const p of s.parts) durableSeq = Math.max(durableSeq, p.durableSeq);
    }
  }
  const { cuts, droppedGroups } = findCuts(scanned, durableSeq);
  const truncated: TornTail[] = [];
  for (const [id, cut] of cuts) {
    const log = scanned.get(id)!;
    let droppedBytes = 0;
    for (const s of log.segments) {
      if (s.number < cut.segment) continue;
      if (s.kind !== SegmentKind.raw) throw corrupt(s.path, `a compacted segment after the end of log ${id} (group cut at segment ${cut.segment} offset ${cut.offset})`);
      if (s.number === cut.segment) {
        droppedBytes += s.size - cut.offset;
        fs.truncateSync(s.path, cut.offset);
        fsyncFile(s.path);
        s.parts = s.parts.filter((p) => p.offset < cut.offset);
        s.size = cut.offset;
        s.tornAt = undefined;
      } else {
        droppedBytes += s.size;
        fs.rmSync(s.path);
      }
    }
    log.segments = log.segments.filter((s) => s.number <= cut.segment);
    fsyncDirectory(log.dir);
    truncated.push({ log: id, segment: cut.segment, offset: cut.offset, droppedBytes, reason: cut.reason });
  }
  const logs = new Map<number, LogState>();
  let records = 0;
  let segmentCount = 0;
  for (const scannedLog of scanned.values()) {
    const log = new LogState(scannedLog.id, scannedLog.dir);
    for (const s of scannedLog.segments) {
      segmentCount++;
      if (s.compacted) {
        const seg = new Segment(log.id, s.number, s.path, 'compacted', s.size);
        for (const r of s.compacted.records) seg.addRecord(r);
        seg.frees = s.compacted.frees;
        log.set(seg);
        continue;
      }
      const seg = new Segment(log.id, s.number, s.path, 'raw', s.size);
      for (const p of s.parts) {
        for (const r of p.records) seg.addRecord({ offset: r.offset, position: r.offset + RECORD_HEADER, length: r.length, crc: r.crc });
        seg.frees.push(...p.frees);
        seg.maxSeq = p.seq;
      }
      log.set(seg);
    }
    logs.set(log.id, log);
  }
  // Frees are replayed once every record is in place; one whose record is gone already (its
  // segment was cleaned) has nothing left to do.
  for (const log of logs.values()) {
    for (const seg of log.ordered()) {
      records += seg.recordCount;
      for (const f of seg.frees) log.get(f.segment)?.markFreed(f.offset);
    }
  }
  // Sequence numbers of dropped groups are given out again: nothing of them is left.
  let lastSeq = durableSeq;
  for (const log of logs.values()) for (const seg of log.ordered()) lastSeq = Math.max(lastSeq, seg.maxSeq);
  const report: RecoveryReport = {
    logs: logs.size, segments: segmentCount, records, lastSeq, durableSeq, truncated, droppedGroups,
    droppedBytes: truncated.reduce((n, t) => n + t.droppedBytes, 0), removed,
  };
  return { logs, lastSeq, durableSeq, report };
}

function fsyncFile(file: string): void {
  const fd = fs.openSync(file, 'r+');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}
