// The one place that loads the C++ addon, and the TypeScript mirror of what it exports.
// Callers validate arguments first (src/fec/config.ts): the native side trusts them.
import path from 'node:path';
import { MaelstromError } from '../errors';
import type { FeedbackEntry, FlowKey } from '../feedback/format';
import type { AuthVerdict, ParseErrorName, XdpStat } from './constants';

export { AUTH_VERDICTS, PARSE_ERRORS, XDP_STATS } from './constants';
export type { AuthVerdict, ParseErrorName, XdpStat } from './constants';

// A time for the native code: CLOCK_MONOTONIC nanoseconds, a BigInt or a number; absent, now.
export type NowNs = bigint | number;

export interface NativeEncoderConfig {
  r: number;
  interleaves: number[];
  flushTimeoutNs: number;
  maxPacketSize: number;
  epoch?: number;
  firstSeq?: number; // sequence number of the first packet (default 0)
  // flushCovering()'s budget: repairs per data packet in units of c / r (default 1.1) and
  // repairs a second on top (default 2000); see EncoderConfig in native/fec/encoder.h.
  budgetRatio?: number;
  budgetPerS?: number;
}

export interface NativeDecoderConfig {
  maxPacketSize: number;
  window: number;
  pending: number;
  seen: number;
  graceUs?: number;  // a repair missing one packet waits this long before rebuilding it (0: none)
}

export interface EncoderStats {
  packets: number;
  bytes: number;
  oversize: number;
  repairs: number;
  repairBytes: number;
  repairsFlushed: number;   // fired before their bin filled: flush timeout, flush() or flushCovering()
  repairsCovering: number;  // of those, by flushCovering()
  coveringDeferred: number; // flushCovering() calls the budget cut short
  nextSeq: number;
  nextDeadlineNs: number | null;
}

export interface DecoderCounters {
  data: number;
  dataBytes: number;
  duplicates: number;
  invalid: number;
  repairs: number;
  malformed: number;
  malformedBy: Record<ParseErrorName, number>;
  staleEpoch: number;
  outOfWindow: number;
  useless: number;
  recovered: number;
  recoveredBytes: number;
  verifyFailed: number;
  pendingEvicted: number;
  pendingExpired: number;
  lateArrivals: number;
  unrecoverable: number;
  resyncs: number;
  epochChanges: number; // repairs of a newer configuration epoch began (or a restarted sender's)
  lossSampled: number;  // packets the lowest layer's repairs covered
  lossMissing: number;  // of those, not arrived when the repair came (with a grace: by its end): the WAN's loss
  lossBursts: number;   // runs of consecutive missing packets among them (interleave 1)
  held: number;         // repairs missing one packet held for the grace
  heldArrived: number;  // of those, the packet came meanwhile (or the repair expired): no rebuild
}

export interface DecoderStats extends DecoderCounters {
  pending: number;
  windowFill: number;
  epoch: number;
}

export interface NativeEncoder {
  encode(packets: Buffer[], nowNs?: NowNs): { seqs: number[]; repairs: Buffer[] };
  poll(nowNs?: NowNs): Buffer[];
  flush(): Buffer[];
  flushCovering(seqs: number[], nowNs?: NowNs): Buffer[]; // the bins holding any of these packets, within the budget
  stats(): EncoderStats;
}

export interface NativeDecoder {
  receiveData(packets: Buffer[], nowNs?: NowNs): Buffer[];
  receiveRepairs(repairs: Buffer[], nowNs?: NowNs): Buffer[];
  poll(nowNs?: NowNs): Buffer[];
  stats(): DecoderStats;
}

export interface RecipeEntry {
  hash: bigint;
  length: number;
  ttl: number;
  tos: number;
}

export interface ParsedRepair {
  epoch: number;
  baseSeq: number;
  layer: number;
  count: number;
  interleave: number;
  bin: number;
  xorLength: number;
  entries: RecipeEntry[];
}

export interface SimulationInput {
  encoder: NativeEncoderConfig;
  decoder: NativeDecoderConfig;
  packets: number;
  minLength: number;
  maxLength: number;
  loss: number;
  burstLength: number;
  loseRepairs: boolean;
  seed: number;
  packetIntervalNs: number;
}

export interface SimulationOutput {
  data: number;
  dataLost: number;
  recovered: number;
  unrecovered: number;
  repairs: number;
  repairsLost: number;
  wrongOutput: number;
  repeatedOutput: number;
  decoder: DecoderCounters;
}

export interface CodecBenchInput {
  encoder: NativeEncoderConfig;
  packetLength: number;
  poolPackets: number;
  loss: number;
  minSeconds: number;
}

export interface CodecBenchOutput {
  encodeGBps: number;
  encodeSealedGBps: number; // every repair sealed in the authentication envelope
  decodeGBps: number;
  memcpyGBps: number;
  encodePackets: number;
  decodePackets: number;
  decodeLost: number;
  decodeRecovered: number;
  xorImpl: string;
}

export interface XdpAttachment {
  mode: 'none' | 'native' | 'skb' | 'hw';
  dispatcher: boolean;
  programs: { name: string; id: number }[];
}

export interface DelayDirectionStats {
  packets: number;
  bytes: number;
  queueDrops: number;
  sendErrors: number;
  lateMeanNs: number;
  lateMaxNs: number;
  lateOver100us: number;
  socketDrops: number;
  tailDrops: number;      // with a rate: the bottleneck queue was full
  queueMaxBytes: number;  // with a rate: the bottleneck queue at its deepest
  lateHist: number[];     // frames per lateness bucket (DelayLineStats.lateBucketFloorsNs)
}

export interface DelayLineStats {
  aToB: DelayDirectionStats;
  bToA: DelayDirectionStats;
  delayNs: number;
  rateBps: number;        // 0: no rate limit
  queueBytes: number;     // the bottleneck queue's depth (with a rate)
  realtime: boolean;      // the thread runs SCHED_FIFO
  realtimeError: number;  // the error asking for it gave (0: none, or not asked)
  lateBucketFloorsNs: number[]; // where each lateness bucket starts
}

export interface NativeDelayLine {
  setDelay(ns: number): void;
  setRate(bps: number, queueBytes: number): void;
  stats(): DelayLineStats;
  stop(): void;
}

export interface WanLossSettings {
  killed: boolean;
  loss: number;
  burstLength: number;
  dropNext?: number;   // an exact burst of this many frames...
  sparePort?: number;  // ...that spares UDP to this port (repairs)
}

export interface NativeWanLoss {
  attach(ifname: string, generic: boolean): void;
  set(settings: WanLossSettings): void;
  counters(): { passed: number; dropped: number };
  close(): void;
}

export interface NativeEngineConfig {
  lanIf: string;
  wanIf: string;
  bpfObject: string;
  wanAddr: string;
  peerAddr: string;
  wanMac: Buffer;
  peerMac: Buffer;
  repairPort: number;
  remote: { addr: string; len: number }[];
  encoder: NativeEncoderConfig;
  decoder: NativeDecoderConfig;
  mssClamp: number;
  queues: number[];      // LAN RX queues that get an AF_XDP socket
  wanQueues: number[];   // WAN RX queues likewise
  frameSize: 2048 | 4096;
  generic: boolean;
  forceCopy: boolean;
  requireZeroCopy?: boolean; // refuse copy mode (the engine's error then has step 'zero-copy')
  cpus?: number[];       // worker w runs on cpus[w % length]; empty or absent: unpinned
  lanAddr?: string;      // feedback datagrams come from here; none without it
  feedbackPort?: number; // default 7601
  flushIdleNs?: number;  // the idle flush: the LAN quiet this long (default 50 us; 0: off); its budget is the encoder's
  netsync?: NativeTrackerConfig;
  masterKey?: Buffer;    // the pair's key (32 bytes): everything the gateway sends is sealed; absent: --insecure-no-auth
}

export interface NativeTrackerConfig {
  layers?: number;             // c (the engine takes it from the encoder)
  maxFlows?: number;           // default 65536
  ring?: number;               // records by sequence number, default 65536
  idleTimeoutNs?: number;      // default 900 s
  feedbackIntervalNs?: number; // at most one entry per flow this often, default 50 us
}

// A TCP flow as its sender sees it, and a feedback entry: the same as in the datagram format.
export type NetsyncFlow = FlowKey;
export type FeedbackDue = FeedbackEntry;

// Events of the network-sync tracker (docs/protocol.md, "Gateway events"). tNs is CLOCK_MONOTONIC.
export type NetsyncEvent =
  | ({ type: 'feedback'; tNs: bigint; isnGuessed: boolean; safeOffset: bigint; sentOffset: bigint; repairsSent: number; repairsPerPacket: number } & NetsyncFlow)
  | ({ type: 'data-done'; tNs: bigint; seq: number; start: bigint; end: bigint } & NetsyncFlow)
  | { type: 'repair-done'; tNs: bigint; layer: number; baseSeq: number; count: number; interleave: number }
  | ({ type: 'flow-open'; tNs: bigint; isn: number; isnGuessed: boolean } & NetsyncFlow)
  | ({ type: 'flow-close'; tNs: bigint; reason: 'fin' | 'rst' | 'idle' | 'pressure' | 'reopened'; safeOffset: bigint; sentOffset: bigint } & NetsyncFlow)
  | ({ type: 'safe-by-ack'; tNs: bigint; safeOffset: bigint; sentOffset: bigint } & NetsyncFlow);

export interface TrackerStats {
  flows: number;
  flowsOpened: number;
  flowsIsnGuessed: number;
  evictedFin: number;
  evictedRst: number;
  evictedIdle: number;
  evictedPressure: number;
  segments: number;
  retransmissions: number;
  recordsCompleted: number;
  recordsAbandoned: number;
  safeByAck: number;
  feedbackEntries: number;
  staleCompletions: number;
  afterClose: number;  // segments of a flow closed by FIN or RST within the last minute: not reopened
  // From a frame handed to the WAN to its data and all its repairs completing, since start;
  // quantiles are the top of their histogram bucket (at most 19% high).
  safeLatencyUs: { count: number; p50: number; p99: number; max: number };
}

// The peer gateway's decoder on our direction of the WAN, from its latest receiver report.
export interface PeerReport {
  reports: number;
  epoch: number;         // the newest epoch of ours it has decoded
  window: number;        // packets its decoder keeps
  sampled: number;       // cumulative: packets its lowest layer's repairs covered
  missing: number;       // of those, lost on the WAN
  bursts: number;        // runs of consecutive losses among them
  recovered: number;
  unrecoverable: number;
  ageMs: number;         // since the report arrived
}

export interface RepairCoverage {
  layer: number;
  count: number;
  interleave: number;
  baseSeq: number;
}

export interface NativeSyncTracker {
  sent(ipPacket: Buffer, seq: number, nowNs?: NowNs): void;
  uncovered(seq: number): void;
  received(ipPacket: Buffer, nowNs?: NowNs): void;
  setLayers(c: number): void; // records sent from now on need c repairs (an epoch change)
  dataCompleted(seq: number, nowNs?: NowNs): void;
  repairCompleted(repair: RepairCoverage, nowNs?: NowNs): void;
  repairLost(repair: RepairCoverage): void;
  poll(nowNs?: NowNs): FeedbackDue[];
  // Records that wait for repairs, sent at most span frames before newestSeq, of flows whose ISN
  // is known, from hosts not quiet (newest first).
  waiting(newestSeq: number, span: number, nowNs?: NowNs): number[];
  setQuiet(host: string, untilNs: NowNs): void; // nobody listens there until untilNs
  nextDeadline(): bigint | null;
  setTrace(on: boolean): void;
  events(): NetsyncEvent[];
  stats(): TrackerStats;
}

// The XDP program's counters (enum gw_stat, bpf/gateway.h), summed over both interfaces and all CPUs.
export type GatewayXdpStats = Record<XdpStat, number>;

// Verdicts of the authentication envelope's receiver (docs/protocol.md), one counter each.
export type AuthCounts = Record<AuthVerdict, number>;

// 1 repair, 2 receiver report, 3 feedback.
export const AUTH_KIND = { repair: 1, report: 2, feedback: 3 } as const;

// One sender and one receiver of sealed datagrams (keys are purpose keys, 32 bytes).
export interface NativeAuthChannel {
  seal(kind: number, inner: Buffer): Buffer;
  open(datagram: Buffer): { verdict: AuthVerdict; kind?: number; keyId?: string; counter?: bigint; timeS?: number; inner?: Buffer };
  setKeys(keys: Buffer[]): void;
  counts(): AuthCounts;
}

// A gateway's keys: ids are 8 hex digits (of the gateway purpose keys); null without a key.
export interface AuthState {
  sendKey: string;
  pendingKey: string | null;   // a rekey waiting for the peer to accept the new key
  retiringKey: string | null;  // the old key after a switch, accepted a little longer
  acceptedKeys: string[];
  peer: { sendKey: string; acceptedKeys: string[] } | null;  // from its latest report
  rotations: number;
}

export interface SocketDrops {
  rxDropped: number;
  rxRingFull: number;
  fillRingEmpty: number;
  txInvalid: number;
}

export const ENGINE_STAGES = ['rings', 'copy', 'lock', 'tracker', 'hash', 'xor', 'tx'] as const;
export type EngineStage = typeof ENGINE_STAGES[number];

export interface EngineStats {
  lanToWanPackets: number;
  lanToWanBytes: number;
  wanToLanPackets: number;
  wanToLanBytes: number;
  repairsSent: number;
  repairBytesSent: number;
  repairsReceived: number;
  recovered: number;
  recoveredForwarded: number;
  recoveredSendErrors: number;
  unrecoverable: number;
  malformed: number;
  duplicatesDropped: number;
  mssClamped: number;
  lanChecksumCompleted: number; // TCP/UDP checksums a host's offload left partial, completed before forwarding
  unprotected: number;
  txDropped: number;
  decoderPending: number;          // repairs waiting for a second missing packet
  decoderWindow: number;           // data packets held in the decoder's window
  decoderPendingCapacity: number;  // most repairs that can wait (decoder config)
  decoderWindowCapacity: number;   // the window's size K (decoder config)
  staleEpoch: number;
  outOfWindow: number;
  verifyFailed: number;
  repairsFlushed: number;
  repairsIdleFlushed: number; // of those, fired because a network-sync flow waited and the LAN went quiet
  idleFlushDeferred: number;  // idle flushes the budget cut short (their bins fire later)
  repairsDropped: number;  // no UMEM frame free for a fired repair
  pendingEvicted: number;
  pendingExpired: number;
  lateArrivals: number;
  held: number;         // repairs missing one packet held for the grace (several WAN queues)
  heldArrived: number;  // of those, the packet came meanwhile (or the repair expired): no rebuild
  netsync: TrackerStats & { feedbackDatagrams: number; feedbackSendErrors: number; feedbackUnreachable: number; feedbackSuppressed: number; eventsDropped: number };
  // XDP_STATISTICS of the AF_XDP sockets: frames the kernel dropped for want of ring space.
  lanSockets: SocketDrops;
  wanSockets: SocketDrops;
  xdp: GatewayXdpStats;
  epoch: number;            // the encoder's configuration epoch
  epochChanges: number;     // runtime retunes applied
  epochFlushed: number;     // repairs the old code's bins fired at those changes
  peerEpochChanges: number; // epoch changes of the peer's code our decoder followed
  reportsSent: number;      // receiver reports to the peer
  reportsReceived: number;
  badReports: number;
  cpuNs: number;           // the engine threads' CPU time since start (refreshed every 10 ms)
  // A sample of the LAN->WAN path (one turn of a worker's loop in 16): ns spent per stage over
  // `packets` LAN frames (native/engine/engine.h, enum Stage). ns / packets: a packet's cost there.
  stagesNs: { packets: number } & Record<EngineStage, number>;
  wanLoss: { sampled: number; missing: number; bursts: number }; // what our decoder sees
  peer: PeerReport | null;  // what the peer's decoder sees of our direction
  workers: WorkerStats[];   // one per engine thread
  // The peer's datagrams (repairs, reports) by the envelope's verdict; unverifiable: sealed ones
  // reaching a gateway run without a key; rotations: key switches completed.
  auth: AuthCounts & { unverifiable: number; rotations: number };
}

// An engine thread: the RX queues it serves (LAN queue lanQueues[0] and WAN queue wanQueues[0]
// are also where it transmits) and its share of the counters.
export interface WorkerStats {
  lanQueues: number[];
  wanQueues: number[];
  cpu: number | null;
  lanToWanPackets: number;
  wanToLanPackets: number;
  repairsSent: number;
  repairsReceived: number;
  txDropped: number;
}

export interface NativeEngine {
  stats(): EngineStats;
  info(): { running: boolean; zeroCopy: boolean; xdpMode: 'native' | 'skb'; epoch: number; trackerRing: number; workers: number };
  // A new code at run time: returns the new epoch, applied by the engine thread within 1 ms.
  retune(code: NativeEncoderConfig): number;
  // A new master key at run time: its id; sealed with once the peer accepts it.
  rekey(masterKey: Buffer): string;
  auth(): AuthState | null;
  events(): NetsyncEvent[];
  setTrace(on: boolean): void;
  stop(): void;
}

export interface Addon {
  Encoder: new (config: NativeEncoderConfig) => NativeEncoder;
  SyncTracker: new (config?: NativeTrackerConfig) => NativeSyncTracker;
  Decoder: new (config: NativeDecoderConfig) => NativeDecoder;
  parseRepair(repair: Buffer, maxPacketSize: number): ParsedRepair | { error: ParseErrorName };
  packetId(packet: Buffer): RecipeEntry;
  // Recomputes a repair's recipe check in place (tests and tools that forge repairs).
  sealRepair(repair: Buffer): void;
  xorInto(dst: Buffer, src: Buffer, impl: 'portable' | 'avx2'): void;
  // A partial TCP/UDP checksum (a host's offload) completed in place, as the engine does; true when it was.
  completeChecksum(ipPacket: Buffer): boolean;
  xorImplementations(): { active: string; available: string[] };
  simulate(input: SimulationInput): SimulationOutput;
  benchCodec(input: CodecBenchInput): CodecBenchOutput;
  xdpAttached(ifname: string): XdpAttachment;
  DelayLine: new (config: { a: string; b: string; delayNs: number; maxQueueBytes?: number; rateBps?: number; queueBytes?: number; realtimePriority?: number }) => NativeDelayLine;
  WanLoss: new (objectPath: string) => NativeWanLoss;
  blast(config: { ifname: string; dstMac: Buffer; srcMac: Buffer; srcIp: string; dstIp: string; dstPort: number; ipLength: number; seconds: number; xdpObject?: string; cpus?: number[] }): { sent: number; errors: number; seconds: number };
  Engine: new (config: NativeEngineConfig) => NativeEngine;
  detachXdp(ifname: string, programName: string): number;
  // The purpose key of a master key ('gateway' | 'feedback'), or of a purpose key ('as-is'), with its id.
  authKey(key: Buffer, purpose: 'gateway' | 'feedback' | 'as-is'): { id: string; key: Buffer };
  // A sender (sendKey; session, counter and timeS fixed for tests) and a receiver (keys; what
  // was sealed before floorS, seconds since 1970, is stale: by default now less the skew allowed).
  AuthChannel: new (config?: { sendKey?: Buffer; keys?: Buffer[]; session?: bigint; counter?: bigint; timeS?: number; floorS?: number }) => NativeAuthChannel;
  // The facts C and C++ own (generated into ./constants.ts, which is what TypeScript reads).
  constants: Record<string, number | string[]>;
  // struct gw_config (bpf/gateway.h) as the XDP program reads it.
  packGatewayConfig(config: { lanIfindex: number; wanIfindex: number; peerAddr: string; repairPort: number }): Buffer;
}

// dist/src/native/addon.js -> <root>/build/Release/maelstrom.node
const addonPath = path.resolve(__dirname, '..', '..', '..', 'build', 'Release', 'maelstrom.node');

let loaded: Addon | undefined;

export function addon(): Addon {
  if (!loaded) {
    try {
      loaded = require(addonPath) as Addon;
    } catch (cause) {
      throw new MaelstromError('MAELSTROM_ERR_NATIVE', `the native addon is not built or does not load (${addonPath}): run 'make build'`, { cause });
    }
  }
  return loaded;
}
