// Runs a stream through the real Encoder, a lossy channel and the real Decoder, and checks
// every packet the decoder outputs against the originals.
import { Decoder, Encoder } from '../../src/fec/codec';
import type { CodecOptions } from '../../src/fec/config';
import { routed } from './packets';

export interface Transmission {
  kind: 'data' | 'repair';
  index: number; // data: packet index; repair: repair index
  bytes: Buffer;
}

// The sender's wire order: each data packet followed by the repairs it fired; flush at the end.
export function encodeStream(packets: Buffer[], options: CodecOptions & { firstSeq?: number } = {}): { wire: Transmission[]; encoder: Encoder } {
  const encoder = new Encoder({ flushTimeoutMs: 0, ...options });
  const wire: Transmission[] = [];
  let repairs = 0;
  packets.forEach((p, index) => {
    const { repairs: fired } = encoder.encode([p], 0);
    wire.push({ kind: 'data', index, bytes: p });
    for (const r of fired) wire.push({ kind: 'repair', index: repairs++, bytes: r });
  });
  for (const r of encoder.flush()) wire.push({ kind: 'repair', index: repairs++, bytes: r });
  return { wire, encoder };
}

export interface Outcome {
  lost: Set<number>;      // data packets dropped by the channel
  rebuilt: Set<number>;   // of those, the ones the decoder output
  wrong: number;          // outputs that match no original
  repeated: number;       // outputs of packets that arrived or were output before
  early: number;          // of rebuilt, packets the channel did not drop: output before they came
  decoder: Decoder;
}

// lose(t, position) says whether the channel drops transmission t. Data packets that arrive
// pass a router first (TTL lowered), as on a WAN. With stepNs, transmission k arrives at
// k x stepNs and the decoder is polled before each (for a grace).
export function deliver(packets: Buffer[], wire: Transmission[], lose: (t: Transmission, position: number) => boolean,
  decoderOptions: ConstructorParameters<typeof Decoder>[0] = {}, stepNs?: number): Outcome {
  const decoder = new Decoder(decoderOptions);
  const byContent = new Map<string, number>();
  packets.forEach((p, i) => byContent.set(p.toString('latin1'), i));
  const lost = new Set<number>();
  const arrived = new Set<number>();
  const rebuilt = new Set<number>();
  let wrong = 0;
  let repeated = 0;
  const check = (out: Buffer[]) => {
    for (const b of out) {
      const i = byContent.get(b.toString('latin1'));
      if (i === undefined) wrong++;
      else if (arrived.has(i) || rebuilt.has(i)) repeated++;
      else rebuilt.add(i);
    }
  };
  wire.forEach((t, position) => {
    const now = stepNs === undefined ? 0 : position * stepNs;
    if (stepNs !== undefined) check(decoder.poll(now));
    if (lose(t, position)) {
      if (t.kind === 'data') lost.add(t.index);
      return;
    }
    if (t.kind === 'data') {
      arrived.add(t.index);
      check(decoder.receiveData([routed(t.bytes, 1 + (position % 3))], now));
    } else {
      check(decoder.receiveRepairs([t.bytes], now));
    }
  });
  if (stepNs !== undefined) check(decoder.poll(Number.MAX_SAFE_INTEGER));
  const early = [...rebuilt].filter((i) => !lost.has(i)).length;
  return { lost, rebuilt, wrong, repeated, early, decoder };
}
