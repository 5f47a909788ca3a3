// The bytes written to a file since its last commit: non-overlapping extents sorted by offset.
// A later write replaces what it overlaps (older extents are cut around it, without copying).
import type { Extent } from '../fs/tree';

export class Extents {
  private list: Extent[] = [];
  bytes = 0;

  get extents(): readonly Extent[] {
    return this.list;
  }

  get empty(): boolean {
    return this.list.length === 0;
  }

  // The first extent ending after `offset`.
  private firstAfter(offset: number): number {
    let lo = 0;
    let hi = this.list.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const e = this.list[mid];
      if (e.offset + e.data.length <= offset) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  write(offset: number, data: Buffer): void {
    if (data.length === 0) return;
    const end = offset + data.length;
    const at = this.firstAfter(offset);
    let k = at;
    while (k < this.list.length && this.list[k].offset < end) k++;
    const insert: Extent[] = [];
    if (k > at) {
      const first = this.list[at];
      const last = this.list[k - 1];
      if (first.offset < offset) insert.push({ offset: first.offset, data: first.data.subarray(0, offset - first.offset) });
      insert.push({ offset, data });
      if (last.offset + last.data.length > end) insert.push({ offset: end, data: last.data.subarray(end - last.offset) });
      for (let i = at; i < k; i++) this.bytes -= this.list[i].data.length;
    } else insert.push({ offset, data });
    for (const e of insert) this.bytes += e.data.length;
    this.list.splice(at, k - at, ...insert);
  }

  // Drops every byte at or past `size`.
  truncate(size: number): void {
    const at = this.firstAfter(size);
    for (let i = at; i < this.list.length; i++) this.bytes -= this.list[i].data.length;
    this.list.length = at;
    const last = this.list[at - 1];
    if (last && last.offset + last.data.length > size) {
      this.bytes -= last.offset + last.data.length - size;
      this.list[at - 1] = { offset: last.offset, data: last.data.subarray(0, size - last.offset) };
    }
  }

  // Copies the extents' bytes that fall in [start, start + target.length) into target.
  overlay(target: Buffer, start: number): void {
    const end = start + target.length;
    for (let i = this.firstAfter(start); i < this.list.length && this.list[i].offset < end; i++) {
      const e = this.list[i];
      const from = Math.max(start, e.offset);
      const to = Math.min(end, e.offset + e.data.length);
      e.data.copy(target, from - start, from - e.offset, to - e.offset);
    }
  }

  // Puts `older` under these extents: its bytes below `limit` where these have none.
  underlay(older: Extents, limit: number): void {
    const mine = this.list;
    this.list = [];
    this.bytes = 0;
    for (const e of older.list) {
      if (e.offset >= limit) break;
      this.write(e.offset, e.data.subarray(0, Math.min(e.data.length, limit - e.offset)));
    }
    for (const e of mine) this.write(e.offset, e.data);
  }

  clear(): void {
    this.list = [];
    this.bytes = 0;
  }
}

