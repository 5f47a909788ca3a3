// An independent reading of a gateway's completion trace (`maelstrom watch --trace`): from the
// data-done and repair-done events alone it works out when each prefix of each flow became
// network-safe, that is when every byte of it was in a data frame that had completed together
// with one completed repair of every layer covering that frame. Tests hold the gateway's feedback
// and the storage server's promises against it.
import type { NetsyncEvent, NetsyncFlow } from '../native/addon';
import { flowId } from './format';

export interface SafePoint {
  offset: bigint; // bytes [0, offset) are network-safe...
  tNs: bigint;    // ...from this time on
}

interface Frame {
  flow: string;
  start: bigint;
  end: bigint;
  dataNs: bigint;
}

// For each flow (by flowId), the times its safe prefix grew, in order.
export function safePrefixes(events: NetsyncEvent[], layers: number): Map<string, SafePoint[]> {
  const frames = new Map<number, Frame[]>(); // by encoder sequence number
  const repairs = new Map<number, bigint[][]>(); // seq -> per layer, completion times
  for (const e of events) {
    if (e.type === 'data-done') {
      const list = frames.get(e.seq) ?? [];
      list.push({ flow: flowId(e as NetsyncFlow), start: e.start, end: e.end, dataNs: e.tNs });
      frames.set(e.seq, list);
    } else if (e.type === 'repair-done') {
      for (let k = 0; k < e.count; k++) {
        const seq = (e.baseSeq + k * e.interleave) >>> 0;
        const byLayer = repairs.get(seq) ?? Array.from({ length: layers }, () => [] as bigint[]);
        byLayer[e.layer]?.push(e.tNs);
        repairs.set(seq, byLayer);
      }
    }
  }
  // When each frame was complete: its data and the first completed repair of every layer.
  const done: { flow: string; start: bigint; end: bigint; tNs: bigint }[] = [];
  for (const [seq, list] of frames) {
    const byLayer = repairs.get(seq);
    for (const f of list) {
      if (!byLayer) continue;
      let t = f.dataNs;
      let complete = true;
      for (const times of byLayer) {
        if (!times.length) { complete = false; break; }
        const first = times.reduce((a, b) => (a < b ? a : b));
        if (first > t) t = first;
      }
      if (complete) done.push({ flow: f.flow, start: f.start, end: f.end, tNs: t });
    }
  }
  done.sort((a, b) => (a.tNs < b.tNs ? -1 : a.tNs > b.tNs ? 1 : 0));
  const out = new Map<string, SafePoint[]>();
  const state = new Map<string, { prefix: bigint; waiting: { start: bigint; end: bigint }[] }>();
  for (const d of done) {
    const s = state.get(d.flow) ?? { prefix: 0n, waiting: [] };
    state.set(d.flow, s);
    s.waiting.push({ start: d.start, end: d.end });
    const before = s.prefix;
    let moved = true;
    while (moved) {
      moved = false;
      s.waiting = s.waiting.filter((w) => {
        if (w.end <= s.prefix) return false;
        if (w.start <= s.prefix) {
          s.prefix = w.end;
          moved = true;
          return false;
        }
        return true;
      });
    }
    if (s.prefix > before) {
      const points = out.get(d.flow) ?? [];
      points.push({ offset: s.prefix, tNs: d.tNs });
      out.set(d.flow, points);
    }
  }
  return out;
}

// When bytes [0, offset) of a flow were first all network-safe, or undefined if never.
export function safeSince(points: SafePoint[] | undefined, offset: bigint): bigint | undefined {
  if (!points) return undefined;
  let lo = 0;
  let hi = points.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (points[mid].offset >= offset) hi = mid;
    else lo = mid + 1;
  }
  return lo < points.length ? points[lo].tNs : undefined;
}
