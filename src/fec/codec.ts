// The codec for TypeScript callers (tests, the lab, tools): Buffers in, Buffers out, in batches.
// The gateway engine calls the same C++ directly, never through here.
import { ConfigError } from '../errors';
import { addon } from '../native/addon';
import type { DecoderStats, EncoderStats, NativeDecoder, NativeEncoder, NowNs } from '../native/addon';
import { codecConfig, decoderConfig, flushBudget, nativeEncoderConfig } from './config';
import type { CodecConfig, CodecOptions, DecoderOptions } from './config';

export interface EncodeResult {
  // Sequence number given to each packet, -1 for one that is empty or over maxPacketSize.
  seqs: number[];
  // Repairs fired by these packets, in the order they fired (UDP payloads).
  repairs: Buffer[];
}

function uint32(what: string, v: number): number {
  if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new ConfigError(`${what} must be an integer from 0 to 4294967295, got ${v}`);
  return v;
}

function checkBuffers(what: string, list: Buffer[]): void {
  if (!Array.isArray(list) || !list.every((b) => Buffer.isBuffer(b))) {
    throw new ConfigError(`${what} must be an array of Buffers`);
  }
}

export class Encoder {
  readonly config: CodecConfig;
  readonly epoch: number;
  private readonly native: NativeEncoder;

  // epoch: carried in every repair; firstSeq: sequence number of the first packet; budgetPerS
  // and budgetRatio: flushCovering()'s budget (flushBudget() in ./config).
  constructor(options: CodecOptions & { epoch?: number; firstSeq?: number; budgetPerS?: number; budgetRatio?: number } = {}) {
    this.config = codecConfig(options);
    this.epoch = uint32('epoch', options.epoch ?? 0);
    const firstSeq = uint32('firstSeq', options.firstSeq ?? 0);
    this.native = new (addon().Encoder)({ ...nativeEncoderConfig(this.config, this.epoch), firstSeq, ...flushBudget(options) });
  }

  // nowNs: the time the packets are sent, for the flush timeout (default: the monotonic clock).
  encode(packets: Buffer[], nowNs?: NowNs): EncodeResult {
    checkBuffers('packets', packets);
    return this.native.encode(packets, nowNs);
  }

  // Repairs of bins whose flush timeout (interleave x flushTimeoutMs) has passed by nowNs.
  poll(nowNs?: NowNs): Buffer[] {
    return this.native.poll(nowNs);
  }

  // Repairs of the bins, of every layer, holding any of these packets (by sequence number), as
  // the gateway fires them for packets a network-sync flow waits on once the LAN goes quiet:
  // the oldest packet's first, as far as the budget goes at nowNs (stats().coveringDeferred
  // counts the calls it cut short).
  flushCovering(seqs: number[], nowNs?: NowNs): Buffer[] {
    for (const q of seqs) uint32('sequence number', q);
    return this.native.flushCovering(seqs, nowNs);
  }

  // Repairs of every non-empty bin, as before an epoch change or at shutdown.
  flush(): Buffer[] {
    return this.native.flush();
  }

  stats(): EncoderStats {
    return this.native.stats();
  }
}

export class Decoder {
  private readonly native: NativeDecoder;

  constructor(options: DecoderOptions = {}) {
    this.native = new (addon().Decoder)(decoderConfig(options));
  }

  // Data packets as received (at nowNs, which matters with a grace); returns the packets they
  // let the decoder rebuild.
  receiveData(packets: Buffer[], nowNs?: NowNs): Buffer[] {
    checkBuffers('packets', packets);
    return this.native.receiveData(packets, nowNs);
  }

  // Repair payloads as received (at nowNs, which matters with a grace); returns the packets
  // rebuilt, each exactly once.
  receiveRepairs(repairs: Buffer[], nowNs?: NowNs): Buffer[] {
    checkBuffers('repairs', repairs);
    return this.native.receiveRepairs(repairs, nowNs);
  }

  // With a grace: the packets that repairs held since at least graceUs before nowNs rebuild.
  poll(nowNs?: NowNs): Buffer[] {
    return this.native.poll(nowNs);
  }

  stats(): DecoderStats {
    return this.native.stats();
  }
}

export function parseRepair(repair: Buffer, maxPacketSize = 1500) {
  return addon().parseRepair(repair, maxPacketSize);
}

export function packetId(packet: Buffer) {
  return addon().packetId(packet);
}
