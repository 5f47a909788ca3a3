// Table 2 of the SMFS paper and what it becomes on this machine: every value we changed is
// stated beside the paper's, with the reason (docs/reproduction.md prints this table).

export const TABLE2 = {
  r: 8,
  c: 3,
  segmentBytes: 100 << 20,
  appendBytes: 512 * 1024,
  blockBytes: 4096,
  messageBytes: 4096,       // the disaster tests' messages (section 5.3)
};

// The lab's WAN for every figure (figure 10 varies the delay).
export const WAN = {
  rateMbit: 100,
  delayMs: 50,              // one way, as figures 6 and 8 state
  lossPhaseMs: 500,         // loss raised for 0.5 s before the link is killed (section 5.3)
};

// Repairs fire when a bin fills or after the flush timeout times the layer's interleave
// (--flush-timeout is per unit of interleave). At 100 Mbit/s a bin of the widest layer
// (interleave 100) fills in about 100 ms (800 packets); firing it sooner sends it nearly empty
// and the overhead grows far past (r, c)'s 3/8. Where the link is full (figures 9, 10) the
// gateways' default, 10 ms (1 s for the widest layer: bins fill first), so the code costs what
// the paper's does; where few appends are in flight (figures 6-8, 11), 0.1 ms (10 ms for the
// widest layer), so repairs of partly filled bins follow their packets closely
// (docs/decisions.md 85).
export const FLUSH_MS = { linkFull: 10, fewInFlight: 0.1 };

// The gateways' idle flush (this project's, not the paper's: once the LAN is quiet for 50 us,
// fire the bins holding what network-sync waits on). It shortens network-sync's answers when few
// appends are in flight (figures 6-8), and costs up to c repairs per data packet. On the
// throughput figures' rate-limited link those repairs filled the link: with it, network-sync
// sent more frames than local-sync+FEC (6,469 against 5,996 a second) and carried 28 Mbit/s
// of appends against 68. The throughput figures (9-11) run without it, as the paper's
// gateways did (docs/decisions.md 85).
export const FLUSH_IDLE_US = { throughput: 0, fewInFlight: 50 };

export interface Scaling {
  what: string;
  paper: string;
  here: string;
  why: string;
}

export const SCALING: Scaling[] = [
  { what: 'WAN link', paper: '1 Gbit/s, 50-200 ms RTT (Emulab)', here: `${WAN.rateMbit} Mbit/s, ${2 * WAN.delayMs} ms RTT (25-100 ms one way in figure 10), emulated in namespaces`, why: 'two cores carry both gateways, both storage servers, the testers and the WAN emulator; 1 Gbit/s of TLS, FEC and fsync is beyond them' },
  { what: 'bottleneck queue', paper: 'not stated', here: 'one bandwidth-delay product at the experiment\'s delay (1.25 MB at 100 ms RTT), tail drop', why: 'the usual router sizing; the emulator\'s queue is set explicitly (docs/decisions.md 84)' },
  { what: 'storage servers', paper: '8 per site', here: '1 per site', why: 'one pair already fills the link; eight pairs would be sixteen processes on two cores' },
  { what: 'testers (figures 6-10)', paper: '64, over 8 storage servers', here: '8, over 1 storage server', why: 'the same 8 testers per server; 8 appends of 512 KB in flight (4 MB) exceed the 1.25 MB bandwidth-delay product' },
  { what: 'testers (figure 11)', paper: '1', here: '1', why: '' },
  { what: 'FEC (r, c)', paper: '(8, 3), interleaves of Maelstrom', here: '(8, 3), interleaves 1, 10, 100 (figure 7: c = 1, 2, 3)', why: '' },
  { what: 'idle flush', paper: 'none (not in the paper)', here: `${FLUSH_IDLE_US.fewInFlight} us (figures 6-8), within the gateways' flush budget since docs/decisions.md 96 (figures measured before it ran unbudgeted), off (figures 9-11)`, why: 'it shortens network-sync answers with few appends in flight; on a full link its repairs take the link (docs/decisions.md 85, 96)' },
  { what: 'flush timeout', paper: 'none stated', here: `${FLUSH_MS.linkFull} ms x interleave (figures 9, 10), ${FLUSH_MS.fewInFlight} ms x interleave (figures 6-8, 11)`, why: 'bins of the widest layer fill ten times slower at a tenth of the rate (docs/decisions.md 85)' },
  { what: 'append', paper: '512 KB of 4 KB blocks', here: '512 KB of 4 KB blocks, over 4 logs', why: '' },
  { what: 'disaster messages', paper: '4 KB', here: '4 KB appends of one block', why: '' },
  { what: 'segment size', paper: '100 MB', here: '100 MB', why: '' },
  { what: 'experiment duration', paper: '3 minutes; disaster at 2 minutes', here: 'full: 20 s per throughput point, disaster after 10 s; --quick: 3 s and 2 s', why: 'six figures x eight configurations x five runs must fit in hours, not days. Slow start fills the link within about a second at this RTT, but Reno needs tens of seconds to regrow a halved window to 1.25 MB, so a short window shows a lossy plain WAN at its best or worst, not its average' },
  { what: 'runs per point', paper: '5 (mean and standard deviation)', here: 'full: 5; --quick: 2', why: '' },
  { what: 'TCP', paper: 'Reno', here: 'Reno with reordering tolerance 100 (docs/decisions.md 17); baselines: kernel defaults with BBR or cubic', why: 'rebuilt packets arrive out of order' },
  { what: 'mirror stream', paper: 'plain TCP', here: 'TLS 1.2 (PSK) over TCP, authenticated', why: 'the product mirrors over TLS only (docs/security.md)' },
  { what: 'c = 0 (figure 7)', paper: 'no repairs', here: 'local-sync+FEC at c = 0 is measured as local-sync (no gateways); network-sync at c = 0 is not measured', why: 'the gateway refuses a code without layers: without repairs it has no feedback to give' },
];

export interface Profile {
  name: 'full' | 'quick';
  runs: number;
  throughputSeconds: number;  // measured, after warmUpSeconds
  warmUpSeconds: number;
  disasterAfterSeconds: number; // appends before the loss phase
  latencySeconds: number;
  testers: number;
}

export const PROFILES: Record<'full' | 'quick', Profile> = {
  full: { name: 'full', runs: 5, throughputSeconds: 20, warmUpSeconds: 2, disasterAfterSeconds: 10, latencySeconds: 20, testers: 8 },
  quick: { name: 'quick', runs: 2, throughputSeconds: 3, warmUpSeconds: 1, disasterAfterSeconds: 2, latencySeconds: 3, testers: 8 },
};
