// The cleaner's work on one segment: write the live records and the frees that still matter
// into a compacted file beside it, fsync it, and rename it over the segment. Records keep their
// addresses (the compacted file stores each record's old offset), so nothing that points into
// the log has to change; the space of freed records, part headers and spent frees comes back.
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { crc32 } from './checksum';
import { COMPACT_HEADER, COMPACT_RECORD_HEADER, CRC_BYTES, FREE_ENTRY, SEGMENT_HEADER, SegmentKind, encodeSegmentHeader } from './format';
import type { Address } from './format';
import { SmfsError } from './errors';
import { Segment } from './segment';
import type { LogState, RecordLocation } from './segment';
import { fdatasync, fsyncDirectoryAsync, readExactly, writeAllAt } from './files';

const open = promisify(fs.open);
const close = promisify(fs.close);
const rename = promisify(fs.rename);
const unlink = promisify(fs.unlink);

const FLUSH_BYTES = 1024 * 1024;

export interface CompactionPlan {
  live: RecordLocation[];
  carry: Address[];
  newSize: number;
}

// What a compaction of `seg` would keep: its live records, and the frees it records whose
// records are still physically in another segment (else a restart would bring them back).
export function planCompaction(log: LogState, seg: Segment): CompactionPlan {
  const live = [...seg.records()].filter((r) => !r.freed);
  const carry = seg.frees.filter((f) => f.segment !== seg.number && log.get(f.segment)?.find(f.offset) !== undefined);
  const newSize = SEGMENT_HEADER + COMPACT_HEADER + live.reduce((n, r) => n + COMPACT_RECORD_HEADER + r.length, 0) + carry.length * FREE_ENTRY + CRC_BYTES;
  return { live, carry, newSize };
}

// Writes the compacted file and puts it in place of `seg`, on disk and in `log`; when nothing
// is left the segment is deleted instead. Frees that land while this runs are taken over from
// the old segment's freed set in the same step that swaps the two, so none is missed.
export async function compactSegment(log: LogState, seg: Segment, plan: CompactionPlan): Promise<Segment | undefined> {
  if (plan.live.length === 0 && plan.carry.length === 0) {
    log.remove(seg);
    seg.retire();
    await unlink(seg.path);
    await fsyncDirectoryAsync(path.dirname(seg.path));
    return undefined;
  }
  const tmp = `${seg.path}.tmp`;
  // Pinned from the first read to the swap: the descriptor, opened before the rename, keeps
  // reading the old file for readers that found this segment before the swap.
  const source = seg.pin();
  try {
    const kept = await writeCompacted(tmp, log.id, seg, source, plan);
    await rename(tmp, seg.path);
    const replacement = new Segment(log.id, seg.number, seg.path, 'compacted', plan.newSize);
    for (const r of kept) replacement.addRecord(r, seg.freed.has(r.offset));
    replacement.frees = plan.carry;
    log.set(replacement);
    seg.retire();
    await fsyncDirectoryAsync(path.dirname(seg.path));
    return replacement;
  } finally {
    seg.unpin();
  }
}

async function writeCompacted(tmp: string, logId: number, seg: Segment, source: number, plan: CompactionPlan): Promise<RecordLocation[]> {
  const fd = await open(tmp, 'w');
  const kept: RecordLocation[] = [];
  try {
    let chunks: Uint8Array[] = [];
    let chunkBytes = 0;
    let written = 0;
    let crc = 0;
    const flush = async (): Promise<void> => {
      await writeAllAt(fd, chunks, written);
      written += chunkBytes;
      chunks = [];
      chunkBytes = 0;
    };
    const put = async (b: Uint8Array, checksummed = true): Promise<void> => {
      if (checksummed) crc = crc32(b, crc);
      chunks.push(b);
      chunkBytes += b.length;
      if (chunkBytes >= FLUSH_BYTES) await flush();
    };
    await put(encodeSegmentHeader({ kind: SegmentKind.compacted, log: logId, segment: seg.number }), false);
    const counts = Buffer.alloc(COMPACT_HEADER);
    counts.writeUInt32BE(plan.live.length, 0);
    counts.writeUInt32BE(plan.carry.length, 4);
    await put(counts);
    let at = SEGMENT_HEADER + COMPACT_HEADER;
    for (const r of plan.live) {
      const data = await readExactly(source, r.position, r.length);
      if (crc32(data) !== r.crc) {
        throw new SmfsError('SMFS_ERR_CORRUPT', `${seg.path}: the record at offset ${r.offset} fails its checksum; the cleaner left the segment as it was`);
      }
      const h = Buffer.alloc(COMPACT_RECORD_HEADER);
      h.writeUInt32BE(r.offset, 0);
      h.writeUInt32BE(r.length, 4);
      h.writeUInt32BE(r.crc, 8);
      await put(h);
      await put(data);
      kept.push({ offset: r.offset, position: at + COMPACT_RECORD_HEADER, length: r.length, crc: r.crc });
      at += COMPACT_RECORD_HEADER + r.length;
    }
    const frees = Buffer.alloc(plan.carry.length * FREE_ENTRY);
    plan.carry.forEach((f, i) => {
      frees.writeUInt32BE(f.segment, i * FREE_ENTRY);
      frees.writeUInt32BE(f.offset, i * FREE_ENTRY + 4);
    });
    await put(frees);
    const tail = Buffer.alloc(CRC_BYTES);
    tail.writeUInt32BE(crc, 0);
    await put(tail, false);
    await flush();
    await fdatasync(fd);
  } catch (err) {
    await close(fd).catch(() => undefined);
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  await close(fd);
  return kept;
}
