// Runs an XDP object through BPF_PROG_TEST_RUN (bpftool prog run) in a private mount namespace
// with its own bpffs, so nothing is pinned, attached or left on the machine: the program and
// its maps go away with the namespace.
import { spawnSync } from 'node:child_process';
import path from 'node:path';

export interface Scenario {
  name: string;
  config?: { map: string; value: number[] }; // little-endian bytes written at key 0
  packet: Buffer;
  repeat: number;
}

export interface ScenarioResult {
  name: string;
  retval: number;
  counters: Record<string, number[]>; // map name -> per-key totals over CPUs, after the run
}

const root = path.resolve(__dirname, '..', '..', '..');

export function runInBpfSandbox(object: string, maps: string[], scenarios: Scenario[]): ScenarioResult[] {
  const lines = [
    'd=$(mktemp -d); trap "umount $d; rmdir $d" EXIT; mount -t bpf bpf $d',
    `bpftool prog load ${JSON.stringify(path.resolve(root, object))} $d/prog type xdp`,
    'ids=$(bpftool -j prog show pinned $d/prog | sed "s/.*\\"map_ids\\":\\[\\([0-9,]*\\)\\].*/\\1/")',
    'for id in $(echo $ids | tr , " "); do',
    '  name=$(bpftool -j map show id $id | sed "s/.*\\"name\\":\\"\\([^\\"]*\\)\\".*/\\1/"); eval "map_$name=$id"',
    'done',
  ];
  scenarios.forEach((s, i) => {
    const pkt = `$d/../pkt-${process.pid}-${i}`;
    lines.push(`printf '${[...s.packet].map((b) => `\\${b.toString(8).padStart(3, '0')}`).join('')}' > ${pkt}`);
    if (s.config) lines.push(`bpftool map update id $map_${s.config.map} key 0 0 0 0 value ${s.config.value.join(' ')}`);
    lines.push(`echo "@@ ${s.name}"`, `bpftool -j prog run pinned $d/prog data_in ${pkt} repeat ${s.repeat}; echo`, `rm -f ${pkt}`);
    for (const m of maps) lines.push(`echo "@@map ${m}"`, `bpftool -j map dump id $map_${m}; echo`);
  });
  const r = spawnSync('unshare', ['-m', 'sh', '-euc', lines.join('\n')], { encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0) throw new Error(`bpf sandbox failed (${r.status}): ${r.stderr}`);
  const results: ScenarioResult[] = [];
  let current: ScenarioResult | undefined;
  const out = r.stdout.split('\n');
  for (let i = 0; i < out.length; i++) {
    const line = out[i];
    if (line.startsWith('@@ ')) {
      current = { name: line.slice(3), retval: JSON.parse(out[++i]).retval, counters: {} };
      results.push(current);
    } else if (line.startsWith('@@map ') && current) {
      const dump = JSON.parse(out[++i]) as { formatted: { key: number; values: { value: number }[] } }[];
      const totals: number[] = [];
      for (const e of dump) totals[e.formatted.key] = e.formatted.values.reduce((a, v) => a + v.value, 0);
      current.counters[line.slice(6)] = totals;
    }
  }
  return results;
}
