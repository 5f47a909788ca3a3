// A gateway's counters as the engine reports them (EngineStats), made up for tests of what reads
// them: every counter 0 unless changed.
import { AUTH_VERDICTS, XDP_STATS } from '../../src/native/addon';
import type { AuthCounts, EngineStats, GatewayXdpStats } from '../../src/native/addon';


type Changes = Partial<Omit<EngineStats, 'netsync' | 'xdp'>> & {
  netsync?: Partial<EngineStats['netsync']> & Record<string, unknown>;
  xdp?: Partial<GatewayXdpStats>;
};

export function engineStats(changes: Changes = {}): EngineStats {
  const sockets = () => ({ rxDropped: 0, rxRingFull: 0, fillRingEmpty: 0, txInvalid: 0 });
  const base: EngineStats = {
    lanToWanPackets: 0, lanToWanBytes: 0, wanToLanPackets: 0, wanToLanBytes: 0,
    repairsSent: 0, repairBytesSent: 0, repairsReceived: 0, recovered: 0, recoveredForwarded: 0,
    recoveredSendErrors: 0, unrecoverable: 0, malformed: 0, duplicatesDropped: 0, mssClamped: 0, lanChecksumCompleted: 0,
    unprotected: 0, txDropped: 0, decoderPending: 0, decoderWindow: 0, decoderPendingCapacity: 1024,
    decoderWindowCapacity: 1600, staleEpoch: 0, outOfWindow: 0, verifyFailed: 0, repairsFlushed: 0, repairsIdleFlushed: 0, idleFlushDeferred: 0,
    repairsDropped: 0, pendingEvicted: 0, pendingExpired: 0, lateArrivals: 0, held: 0, heldArrived: 0,
    netsync: {
      flows: 0, flowsOpened: 0, flowsIsnGuessed: 0, evictedFin: 0, evictedRst: 0, evictedIdle: 0,
      evictedPressure: 0, segments: 0, retransmissions: 0, recordsCompleted: 0, recordsAbandoned: 0,
      safeByAck: 0, feedbackEntries: 0, staleCompletions: 0, afterClose: 0, feedbackDatagrams: 0, feedbackSendErrors: 0,
      feedbackUnreachable: 0, feedbackSuppressed: 0, eventsDropped: 0,
      safeLatencyUs: { count: 0, p50: 0, p99: 0, max: 0 },
    },
    lanSockets: sockets(),
    wanSockets: sockets(),
    xdp: Object.fromEntries(XDP_STATS.map((k) => [k, 0])) as unknown as GatewayXdpStats,
    epoch: 0, epochChanges: 0, epochFlushed: 0, peerEpochChanges: 0, reportsSent: 0, reportsReceived: 0, badReports: 0, cpuNs: 0,
    stagesNs: { packets: 0, rings: 0, copy: 0, lock: 0, tracker: 0, hash: 0, xor: 0, tx: 0 },
    wanLoss: { sampled: 0, missing: 0, bursts: 0 },
    peer: null,
    workers: [{ lanQueues: [0], wanQueues: [0], cpu: null, lanToWanPackets: 0, wanToLanPackets: 0, repairsSent: 0, repairsReceived: 0, txDropped: 0 }],
    auth: { ...(Object.fromEntries(AUTH_VERDICTS.map((v) => [v, 0])) as AuthCounts), unverifiable: 0, rotations: 0 },
  };
  const { netsync, xdp, ...rest } = changes;
  return { ...base, ...rest, netsync: { ...base.netsync, ...netsync }, xdp: { ...base.xdp, ...xdp } };
}
