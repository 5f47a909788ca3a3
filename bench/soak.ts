// A gateway pair held at its ceiling for minutes: eight TCP transfers at a time through it, each
// a new flow of 2 MB opened and closed after the last (the flow table's churn), 1% loss on the
// WAN. Samples each gateway's resident memory, decoder tables and tracked flows every interval,
// to show they stay flat: nothing grows with time or with the flows that came and went. Prints
// figures; never passes or fails on them.
import fs from 'node:fs';
import { withLabGateways } from '../src/lab/fixture';
import { tcpTransfer } from '../src/lab/runs';

export interface SoakOptions {
  minutes?: number;         // 10 by default
  sampleSeconds?: number;   // 30 by default
  onSample?: (s: SoakSample) => void;
}

export interface SoakSample {
  at_s: number;
  gateway: 'A' | 'B';
  rss_mb: number;
  decoder_window: number;
  decoder_pending: number;
  netsync_flows: number;
  flows_opened: number;
  flows_isn_guessed: number;  // flows first seen without their SYN: none expected here
  lan_to_wan_packets: number;
  recovered: number;
}

function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

export async function runSoak(o: SoakOptions = {}): Promise<{ samples: SoakSample[]; tcpFlows: number; summary: Record<string, number> }> {
  const seconds = (o.minutes ?? 10) * 60;
  const every = o.sampleSeconds ?? 30;
  const samples: SoakSample[] = [];
  let tcpFlows = 0;
  await withLabGateways({ delayMs: 5, loss: 0.01 }, {}, async ({ lab, gw }) => {
    const start = Date.now();
    const until = start + seconds * 1000;
    const churn = (lane: number) => (async () => {
      for (let k = 0; Date.now() < until; k = (k + 1) % 100) {
        await tcpTransfer(lab, 2_000_000, 6000 + lane * 100 + k);
        tcpFlows++;
      }
    })();
    const sample = () => {
      for (const [name, g] of [['A', gw.a], ['B', gw.b]] as const) {
        const s = g.latest();
        if (!s) continue;
        const row: SoakSample = {
          at_s: Math.round((Date.now() - start) / 1000), gateway: name, rss_mb: rssMb(g.up.pid as number),
          decoder_window: s.decoderWindow, decoder_pending: s.decoderPending, netsync_flows: s.netsync.flows,
          flows_opened: s.netsync.flowsOpened, flows_isn_guessed: s.netsync.flowsIsnGuessed, lan_to_wan_packets: s.lanToWanPackets, recovered: s.recovered,
        };
        samples.push(row);
        o.onSample?.(row);
      }
    };
    sample();
    const timer = setInterval(sample, every * 1000);
    await Promise.all(Array.from({ length: 8 }, (_, lane) => churn(lane)));
    clearInterval(timer);
    sample();
  });
  const summary: Record<string, number> = {};
  for (const name of ['A', 'B'] as const) {
    const rows = samples.filter((s) => s.gateway === name);
    if (rows.length < 2) continue;
    const second = rows[1]; // the first sample is taken before the load warms the process up
    const last = rows[rows.length - 1];
    summary[`rss_mb_${name}_start`] = second.rss_mb;
    summary[`rss_mb_${name}_end`] = last.rss_mb;
    summary[`rss_mb_${name}_max`] = Math.max(...rows.map((r) => r.rss_mb));
    summary[`flows_max_${name}`] = Math.max(...rows.map((r) => r.netsync_flows));
    summary[`pending_max_${name}`] = Math.max(...rows.map((r) => r.decoder_pending));
  }
  return { samples, tcpFlows, summary };
}

export function formatSoak(r: { samples: SoakSample[]; tcpFlows: number; summary: Record<string, number> }): string {
  const lines = ['  time   gw   RSS MB   window  pending   flows  flows opened   packets LAN->WAN   rebuilt'];
  for (const s of r.samples) {
    lines.push(`  ${String(s.at_s).padStart(4)} s  ${s.gateway}   ${s.rss_mb.toFixed(1).padStart(6)}   ${String(s.decoder_window).padStart(6)}  ${String(s.decoder_pending).padStart(7)}  ${String(s.netsync_flows).padStart(6)}  ${String(s.flows_opened).padStart(12)}  ${String(s.lan_to_wan_packets).padStart(17)}  ${String(s.recovered).padStart(8)}`);
  }
  lines.push(`  ${r.tcpFlows} TCP flows opened and closed; RSS from the first loaded sample to the last: A ${r.summary.rss_mb_A_start?.toFixed(1)} -> ${r.summary.rss_mb_A_end?.toFixed(1)} MB, B ${r.summary.rss_mb_B_start?.toFixed(1)} -> ${r.summary.rss_mb_B_end?.toFixed(1)} MB`);
  return lines.join('\n');
}
