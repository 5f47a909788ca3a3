// ping's summary, parsed: how many went out and came back, the least RTT in ms and the median
// (only when ping ran without -q: from its per-reply lines).
export interface PingSummary {
  transmitted: number;
  received: number;
  minMs: number;
  medianMs: number;
}

export function parsePing(output: string): PingSummary {
  const counts = /(\d+) packets transmitted, (\d+) received/.exec(output);
  if (!counts) throw new Error(`no ping summary in: ${output}`);
  const rtt = /= ([\d.]+)\//.exec(output);
  const times = [...output.matchAll(/ time=([\d.]+) ms/g)].map((m) => Number(m[1])).sort((a, b) => a - b);
  return {
    transmitted: Number(counts[1]),
    received: Number(counts[2]),
    minMs: rtt ? Number(rtt[1]) : NaN,
    medianMs: times.length ? times[Math.floor(times.length / 2)] : NaN,
  };
}
