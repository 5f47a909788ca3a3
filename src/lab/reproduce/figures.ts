// The six figures of section 5: what each varies, over which configurations, with what
// measurement, and the paper's own claim about it.
import type { Bed, Setup } from './bed';
import { setupOf } from './bed';
import { CONFIGS } from './configs';
import type { ConfigName } from './configs';
import { disaster, latency, throughput } from './measure';
import { FLUSH_IDLE_US, FLUSH_MS, TABLE2, WAN } from './params';
import type { Profile } from './params';

export const FIGURE_IDS = [6, 7, 8, 9, 10, 11] as const;
export type FigureId = (typeof FIGURE_IDS)[number];
export type Kind = 'disaster' | 'latency' | 'throughput';

export interface Point {
  key: string;         // unique in its figure: config and x
  config: ConfigName;
  x: number;           // loss (fraction), c, or one-way delay (ms)
  setup: Setup;
  delayMs: number;     // the WAN's one-way delay for this point
  // Measured as another configuration (c = 0 of figure 7: no repairs is no gateways).
  measuredAs?: ConfigName;
}

export interface Figure {
  id: FigureId;
  kind: Kind;
  title: string;
  x: { name: string; unit: string; percent?: boolean };
  claim: string;       // the paper's words
  configs: ConfigName[];
  points(profile: Profile): Point[];
  measure(bed: Bed, point: Point, profile: Profile): Promise<Record<string, unknown>>;
}

const LOSSES = [0.001, 0.005, 0.01];
const LOSSES_WITH_ZERO = [0, 0.001, 0.005, 0.01];

function points(configs: ConfigName[], xs: number[], o: { c?: (x: number) => number; flushMs: number; flushIdleUs?: number; delayMs?: (x: number) => number }): Point[] {
  const out: Point[] = [];
  for (const x of xs) {
    for (const name of configs) {
      const c = o.c ? o.c(x) : TABLE2.c;
      out.push({ key: `${name}@${x}`, config: name, x, setup: setupOf(CONFIGS[name], Math.max(1, c), o.flushMs, o.flushIdleUs), delayMs: o.delayMs ? o.delayMs(x) : WAN.delayMs });
    }
  }
  return out;
}

const disasterMeasure = (loss: (p: Point) => number) => (bed: Bed, p: Point, profile: Profile) =>
  disaster(bed, CONFIGS[p.measuredAs ?? p.config], { loss: loss(p), afterSeconds: profile.disasterAfterSeconds, testers: profile.testers }) as unknown as Promise<Record<string, unknown>>;

const throughputMeasure = (testers: (profile: Profile) => number, loss: (p: Point) => number, delay?: (p: Point) => number) => (bed: Bed, p: Point, profile: Profile) =>
  throughput(bed, CONFIGS[p.config], { loss: loss(p), delayMs: delay?.(p), testers: testers(profile), seconds: profile.throughputSeconds, warmUpSeconds: profile.warmUpSeconds }) as unknown as Promise<Record<string, unknown>>;

const EVERY: ConfigName[] = ['local-sync', 'remote-sync', 'network-sync', 'local-sync+FEC', 'remote-sync+FEC', 'tagged', 'tcp-bbr', 'tcp-cubic'];

export const FIGURES: Record<FigureId, Figure> = {
  6: {
    id: 6, kind: 'disaster', title: 'Figure 6: data lost in a rolling disaster against WAN loss (50 ms one way, (8,3))',
    x: { name: 'loss', unit: '%', percent: true },
    claim: 'local-sync lost a significant number of messages that had been reported to the application as durable [...] although the network-sync solution experienced the same level of link-induced message loss, all the lost packets that had been reported as durable to the sender application were in fact recovered on the receiver side of the link.',
    configs: ['local-sync', 'local-sync+FEC', 'network-sync', 'tagged'],
    points: () => points(['local-sync', 'local-sync+FEC', 'network-sync', 'tagged'], LOSSES, { flushMs: FLUSH_MS.fewInFlight }),
    measure: disasterMeasure((p) => p.x),
  },
  7: {
    id: 7, kind: 'disaster', title: 'Figure 7: data lost in a rolling disaster against the repairs per packet c (1% loss, 50 ms one way)',
    x: { name: 'c', unit: '' },
    claim: 'With c > 1, the number of recovery packets is often sufficient to mask loss on the wide-area link; however, local-sync+FEC loses data packets that did not transit outside the local-area before disaster, whereas with network-sync, primary storage servers respond to the client only after receiving a callback from the egress gateway.',
    configs: ['local-sync+FEC', 'network-sync'],
    points: () => [
      // c = 0: no repairs at all, which the gateway cannot be told; local-sync+FEC without
      // repairs is local-sync, and network-sync without repairs has no callback to give.
      { key: 'local-sync+FEC@0', config: 'local-sync+FEC', x: 0, setup: setupOf(CONFIGS['local-sync'], 1, FLUSH_MS.fewInFlight), delayMs: WAN.delayMs, measuredAs: 'local-sync' },
      ...points(['local-sync+FEC', 'network-sync'], [1, 2, 3], { c: (x) => x, flushMs: FLUSH_MS.fewInFlight }),
    ],
    measure: disasterMeasure(() => 0.01),
  },
  8: {
    id: 8, kind: 'latency', title: 'Figure 8: latency from the primary sending a group to the mirror receiving it, against WAN loss (50 ms one way)',
    x: { name: 'loss', unit: '%', percent: true },
    claim: 'these solutions show similar latency for zero link loss, but local-sync+FEC and network-sync show considerably better latency than local-sync for a lossy link. Furthermore, the latency spread of local-sync+FEC and network-sync solutions is considerably less than the spread of the local-sync solution — particularly as loss increases',
    configs: ['local-sync', 'local-sync+FEC', 'network-sync'],
    points: () => points(['local-sync', 'local-sync+FEC', 'network-sync'], LOSSES_WITH_ZERO, { flushMs: FLUSH_MS.fewInFlight }),
    measure: (bed, p, profile) => latency(bed, CONFIGS[p.config], { loss: p.x, testers: profile.testers, seconds: profile.latencySeconds, warmUpSeconds: profile.warmUpSeconds }) as unknown as Promise<Record<string, unknown>>,
  },
  9: {
    id: 9, kind: 'throughput', title: 'Figure 9: aggregate throughput against WAN loss (8 testers, 50 ms one way)',
    x: { name: 'loss', unit: '%', percent: true },
    claim: 'At higher loss rates, 0.1%, 0.5%, and 1%, we see that any solution that uses proactive redundancy (local-sync+FEC, remote-sync+FEC, and network-sync) achieves more than an order of magnitude higher throughput over any solution that does not.',
    configs: EVERY,
    points: () => points(EVERY, LOSSES_WITH_ZERO, { flushMs: FLUSH_MS.linkFull, flushIdleUs: FLUSH_IDLE_US.throughput }),
    measure: throughputMeasure((profile) => profile.testers, (p) => p.x),
  },
  10: {
    id: 10, kind: 'throughput', title: 'Figure 10: aggregate throughput against one-way delay (8 testers, 1% loss)',
    x: { name: 'one-way delay', unit: 'ms' },
    claim: 'It demonstrates that the network-sync solution (or any solution that uses proactive redundancy) can effectively mask latency and loss of a wide-area link.',
    configs: ['network-sync', 'remote-sync+FEC', 'local-sync', 'tcp-bbr'],
    points: () => points(['network-sync', 'remote-sync+FEC', 'local-sync', 'tcp-bbr'], [25, 50, 75, 100], { flushMs: FLUSH_MS.linkFull, flushIdleUs: FLUSH_IDLE_US.throughput, delayMs: (x) => x }),
    measure: throughputMeasure((profile) => profile.testers, () => 0.01, (p) => p.x),
  },
  11: {
    id: 11, kind: 'throughput', title: 'Figure 11: single-tester throughput against WAN loss (one request outstanding, 50 ms one way)',
    x: { name: 'loss', unit: '%', percent: true },
    claim: 'We see now that local-sync(+FEC) and network-sync solutions perform better than remote-sync(+FEC).',
    configs: EVERY,
    points: () => points(EVERY, LOSSES_WITH_ZERO, { flushMs: FLUSH_MS.fewInFlight, flushIdleUs: FLUSH_IDLE_US.throughput }),
    measure: throughputMeasure(() => 1, (p) => p.x),
  },
};
