// One segment in memory: where each record it physically holds sits in the file, which of
// them were freed, the frees it records, and its file descriptor. Records are kept in four
// parallel arrays ascending by address offset (about 32 bytes a record), looked up by binary
// search; raw segments fill them in append order, compacted ones in the order of their file.
import fs from 'node:fs';
import type { Address } from './format';
import { RECORD_HEADER } from './format';

export type SegmentState = 'raw' | 'compacted';

export interface RecordLocation {
  offset: number;   // the record's address offset
  position: number; // where its data starts in the file
  length: number;
  crc: number;
}

export class Segment {
  size: number;                    // bytes of the file in use (raw: the append point)
  maxSeq = 0;                      // newest group with a part here
  liveRecords = 0;
  liveBytes = 0;                   // record headers and data of live records
  readonly freed = new Set<number>(); // offsets of records here that were freed
  frees: Address[] = [];           // the frees this segment records (of records anywhere in the log)
  dirty = false;                   // written since its last fdatasync
  syncing: Promise<void> | undefined; // an fdatasync under way (sealing waits for it)
  private readonly offsets: number[] = [];
  private readonly positions: number[] = [];
  private readonly lengths: number[] = [];
  private readonly crcs: number[] = [];
  private fd: number | undefined;
  private pins = 0;
  private retired = false;

  constructor(
    readonly log: number,
    readonly number: number,
    readonly path: string,
    readonly state: SegmentState,
    size: number,
  ) {
    this.size = size;
  }

  get recordCount(): number {
    return this.offsets.length;
  }

  // Share of the file's bytes still holding live records; what the cleaner goes by.
  get liveRatio(): number {
    return this.size === 0 ? 0 : this.liveBytes / this.size;
  }

  addRecord(r: RecordLocation, freed = false): void {
    const n = this.offsets.length;
    if (n > 0 && r.offset <= this.offsets[n - 1]) throw new Error(`segment ${this.log}/${this.number}: record at ${r.offset} out of order`);
    this.offsets.push(r.offset);
    this.positions.push(r.position);
    this.lengths.push(r.length);
    this.crcs.push(r.crc);
    if (freed) this.freed.add(r.offset);
    else {
      this.liveRecords++;
      this.liveBytes += RECORD_HEADER + r.length;
    }
  }

  // Drops every record at or after `offset` (a torn tail, or a failed write rolled back).
  truncateRecords(offset: number): void {
    while (this.offsets.length > 0 && this.offsets[this.offsets.length - 1] >= offset) {
      const at = this.offsets.pop()!;
      this.positions.pop();
      const length = this.lengths.pop()!;
      this.crcs.pop();
      if (this.freed.delete(at)) continue;
      this.liveRecords--;
      this.liveBytes -= RECORD_HEADER + length;
    }
  }

  find(offset: number): RecordLocation | undefined {
    let lo = 0;
    let hi = this.offsets.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const v = this.offsets[mid];
      if (v === offset) return { offset, position: this.positions[mid], length: this.lengths[mid], crc: this.crcs[mid] };
      if (v < offset) lo = mid + 1;
      else hi = mid - 1;
    }
    return undefined;
  }

  *records(): IterableIterator<RecordLocation & { freed: boolean }> {
    for (let i = 0; i < this.offsets.length; i++) {
      const offset = this.offsets[i];
      yield { offset, position: this.positions[i], length: this.lengths[i], crc: this.crcs[i], freed: this.freed.has(offset) };
    }
  }

  isLive(offset: number): boolean {
    return !this.freed.has(offset) && this.find(offset) !== undefined;
  }

  // Marks a present, live record freed. False when it is not here or already freed.
  markFreed(offset: number): boolean {
    if (this.freed.has(offset)) return false;
    const r = this.find(offset);
    if (!r) return false;
    this.freed.add(offset);
    this.liveRecords--;
    this.liveBytes -= RECORD_HEADER + r.length;
    return true;
  }

  unmarkFreed(offset: number): void {
    const r = this.find(offset);
    if (!r || !this.freed.delete(offset)) return;
    this.liveRecords++;
    this.liveBytes += RECORD_HEADER + r.length;
  }

  // The file descriptor, opened on first use. Raw segments are opened for writing too.
  descriptor(): number {
    if (this.retired) throw new Error(`segment ${this.path} was replaced`);
    this.fd ??= fs.openSync(this.path, this.state === 'raw' ? 'r+' : 'r');
    return this.fd;
  }

  // A reader pins the segment for the length of its read, so the cleaner's replacement does
  // not close the descriptor under it.
  pin(): number {
    const fd = this.descriptor();
    this.pins++;
    return fd;
  }

  unpin(): void {
    this.pins--;
    if (this.retired && this.pins === 0) this.closeFile();
  }

  // Replaced by the cleaner or closed with the store: the descriptor closes once nobody reads.
  retire(): void {
    this.retired = true;
    if (this.pins === 0) this.closeFile();
  }

  private closeFile(): void {
    if (this.fd === undefined) return;
    const fd = this.fd;
    this.fd = undefined;
    try {
      fs.closeSync(fd);
    } catch {
      // Already gone with the process's descriptors; nothing to release.
    }
  }
}

// A log: its segments by number. The highest-numbered one takes appends.
export class LogState {
  private readonly byNumber = new Map<number, Segment>();
  private lastNumber = -1;

  constructor(readonly id: number, readonly dir: string) {}

  get(segment: number): Segment | undefined {
    return this.byNumber.get(segment);
  }

  get last(): Segment | undefined {
    return this.byNumber.get(this.lastNumber);
  }

  // The next segment number to create: segments are never renumbered or reused.
  get nextNumber(): number {
    return this.lastNumber + 1;
  }

  get count(): number {
    return this.byNumber.size;
  }

  set(s: Segment): void {
    this.byNumber.set(s.number, s);
    if (s.number > this.lastNumber) this.lastNumber = s.number;
  }

  // Only the cleaner removes, and never the last segment, so lastNumber stays.
  remove(s: Segment): void {
    if (this.byNumber.get(s.number) === s) this.byNumber.delete(s.number);
  }

  // Segments in address order.
  ordered(): Segment[] {
    return [...this.byNumber.values()].sort((a, b) => a.number - b.number);
  }
}
