// ping's summary, parsed: how many went out and came back, and the RTT figures in ms.
export interface PingSummary {
  transmitted: number;
  received: number;
  avgMs: number;
  minMs: number;
  maxMs: number;
}

export function parsePing(output: string): PingSummary {
  const counts = /(\d+) packets transmitted, (\d+) received/.exec(output);
  if (!counts) throw new Error(`no ping summary in: ${output}`);
  const rtt = /= ([\d.]+)\/([\d.]+)\/([\d.]+)\//.exec(output);
  return {
    transmitted: Number(counts[1]),
    received: Number(counts[2]),
    minMs: rtt ? Number(rtt[1]) : NaN,
    avgMs: rtt ? Number(rtt[2]) : NaN,
    maxMs: rtt ? Number(rtt[3]) : NaN,
  };
}
