// Runs an XDP object through BPF_PROG_TEST_RUN (bpftool prog run) in a private mount namespace
// with its own bpffs, so nothing is pinned, attached or left on the machine: the program and
// its maps go away with the namespace.
import { spawnSync } from 'node:child_process';
import path from 'node:path';

export interface Scenario {
  name: string;
  config?: { map: string; value: number[] }; // little-endian bytes written at key 0
  updates?: { map: string; key: number[]; value: number[] }[];
  packet: Buffer;
  repeat: number;
  ctx?: Buffer; // struct xdp_md for ctx_in (ingress ifindex, rx queue)
}

export interface ScenarioResult {
  name: string;
  retval: number;
  dataOut: Buffer; // the packet as the program left it
  counters: Record<string, number[]>; // map name -> per-key totals over CPUs, after the run
}

// struct xdp_md for a test run of `size` bytes arriving on ifindex, queue.
export function xdpContext(size: number, ifindex: number, queue = 0): Buffer {
  const b = Buffer.alloc(24);
  b.writeUInt32LE(size, 4);
  b.writeUInt32LE(ifindex, 12);
  b.writeUInt32LE(queue, 16);
  return b;
}

function octal(b: Buffer): string {
  return [...b].map((x) => `\\${x.toString(8).padStart(3, '0')}`).join('');
}

const root = path.resolve(__dirname, '..', '..', '..');

// ns: run inside that network namespace (for a real ingress ifindex); else in the caller's.
export function runInBpfSandbox(object: string, maps: string[], scenarios: Scenario[], ns?: string): ScenarioResult[] {
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
    lines.push(`printf '${octal(s.packet)}' > ${pkt}`);
    if (s.ctx) lines.push(`printf '${octal(s.ctx)}' > ${pkt}.ctx`);
    if (s.config) lines.push(`bpftool map update id $map_${s.config.map} key 0 0 0 0 value ${s.config.value.join(' ')}`);
    for (const u of s.updates ?? []) lines.push(`bpftool map update id $map_${u.map} key ${u.key.join(' ')} value ${u.value.join(' ')}`);
    const ctx = s.ctx ? ` ctx_in ${pkt}.ctx` : '';
    lines.push(`echo "@@ ${s.name}"`, `bpftool -j prog run pinned $d/prog data_in ${pkt} data_out ${pkt}.out${ctx} repeat ${s.repeat}; echo`);
    lines.push(`echo "@@out $(od -An -v -tx1 ${pkt}.out | tr -d ' \\n')"`, `rm -f ${pkt} ${pkt}.out ${pkt}.ctx`);
    for (const m of maps) lines.push(`echo "@@map ${m}"`, `bpftool -j map dump id $map_${m}; echo`);
  });
  const argv = ns ? ['ip', 'netns', 'exec', ns, 'sh', '-euc'] : ['unshare', '-m', 'sh', '-euc'];
  const r = spawnSync(argv[0], [...argv.slice(1), lines.join('\n')], { encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0) throw new Error(`bpf sandbox failed (${r.status}): ${r.stderr}`);
  const results: ScenarioResult[] = [];
  let current: ScenarioResult | undefined;
  const out = r.stdout.split('\n');
  for (let i = 0; i < out.length; i++) {
    const line = out[i];
    if (line.startsWith('@@ ')) {
      current = { name: line.slice(3), retval: JSON.parse(out[++i]).retval, dataOut: Buffer.alloc(0), counters: {} };
      results.push(current);
    } else if (line.startsWith('@@out ') && current) {
      current.dataOut = Buffer.from(line.slice(6), 'hex');
    } else if (line.startsWith('@@map ') && current) {
      const dump = JSON.parse(out[++i]) as { formatted: { key: number; values: { value: number }[] } }[];
      const totals: number[] = [];
      for (const e of dump) totals[e.formatted.key] = e.formatted.values.reduce((a, v) => a + v.value, 0);
      current.counters[line.slice(6)] = totals;
    }
  }
  return results;
}
