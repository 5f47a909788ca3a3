// maelstrom up refusals and the daemon's life cycle, in the lab: every bad input gets its code
// and exit status and leaves nothing behind (no XDP program on the gateway's interfaces, no
// control socket, no PID file); up --daemon + down leave nothing either. Needs root.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Lab } from '../../src/lab/lab';
import { inNs, listNamespaces, nsRun, run } from '../../src/lab/netns';
import { ADDRESSES } from '../../src/lab/topology';
import { request } from '../../src/gateway/control';
import { processAlive } from '../../src/gateway/pid-file';
import { exitStatus } from '../../src/errors';
import type { ErrorCode } from '../../src/errors';
import { until } from '../helpers/until';

const cli = path.resolve(__dirname, '..', '..', 'src', 'cli', 'maelstrom.js');
const errors = suite('maelstrom up and down: refusals, the daemon, and what they leave behind');

let lab: Lab;
let dir: string;
let ctl: string;  // the gateway's control socket, PID file and log in a directory of this run
let pidFile: string;
let logFile: string;
let before: BpfObjects;
const daemons = new Set<number>(); // PIDs of the daemons this file started, stopped at the end if a test failed first

interface BpfObjects {
  programs: Map<number, number[]>; // gateway programs: id -> map ids
  maps: Set<number>;               // the gateway's maps (gw_xsks, gw_stats, gw_config, gw_remote)
}

function bpfObjects(): BpfObjects {
  const progs = JSON.parse(run(['bpftool', 'prog', 'show', '--json']) || '[]') as { id: number; name?: string; map_ids?: number[] }[];
  const maps = JSON.parse(run(['bpftool', 'map', 'show', '--json']) || '[]') as { id: number; name?: string }[];
  return {
    programs: new Map(progs.filter((p) => p.name === 'gateway').map((p) => [p.id, p.map_ids ?? []])),
    maps: new Set(maps.filter((m) => /^gw_(xsks|stats|config|remote)$/.test(m.name ?? '')).map((m) => m.id)),
  };
}

// XDP program ids attached in every network namespace but this lab's: other tests on the
// machine may run gateways meanwhile, and theirs hold programs and maps of the same names.
function attachedElsewhere(): Set<number> {
  const ids = new Set<number>();
  const ours = `${lab.topology.prefix}-`;
  const dumps = [run(['ip', '-j', 'link', 'show'], { allowFail: true })];
  for (const ns of listNamespaces()) if (!ns.startsWith(ours)) dumps.push(run(['ip', '-n', ns, '-j', 'link', 'show'], { allowFail: true }));
  for (const text of dumps) {
    let links: { xdp?: { prog?: { id: number }; attached?: { prog?: { id: number } }[] } }[] = [];
    try {
      links = JSON.parse(text || '[]');
    } catch {
      continue; // a namespace deleted while we read it
    }
    for (const l of links) for (const p of [l.xdp?.prog, ...(l.xdp?.attached ?? []).map((a) => a.prog)]) if (p) ids.add(p.id);
  }
  return ids;
}

// Gateway programs and maps that were not there before this file ran, and that no other
// namespace's interface holds, are ours, left behind.
function assertNoGatewayBpf(what: string): void {
  const now = bpfObjects();
  const elsewhere = attachedElsewhere();
  const kept = new Set([...before.programs.keys(), ...[...now.programs.keys()].filter((id) => elsewhere.has(id))]);
  assert.equal([...now.programs.keys()].filter((id) => !kept.has(id)), [], `${what}: no gateway program left`);
  const keptMaps = new Set([...before.maps, ...[...kept].flatMap((id) => now.programs.get(id) ?? [])]);
  assert.equal([...now.maps].filter((id) => !keptMaps.has(id)), [], `${what}: no gateway map (gw_xsks, gw_stats, gw_config, gw_remote) left`);
}

interface Run { status: number | null; stdout: string; stderr: string }

function maelstrom(ns: string, args: string[]): Run {
  const [cmd, ...rest] = inNs(ns, [process.execPath, cli, ...args]);
  const r = spawnSync(cmd, rest, { encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function upArgs(o: { lan?: string; peer?: string; remote?: string; bpffs?: boolean; key?: string[] } = {}): string[] {
  return ['up', '--lan', o.lan ?? 'lan0', '--wan', 'wan0', '--peer', o.peer ?? ADDRESSES.gwBWan, '--remote', o.remote ?? ADDRESSES.siteB,
    ...(o.bpffs === false ? [] : ['--mount-bpffs']), '--control', ctl, '--pid-file', pidFile, ...(o.key ?? ['--key-file', lab.keys.gateway])];
}

function xdpInterfaces(ns: string): string[] {
  const links = JSON.parse(nsRun(ns, ['ip', '-j', 'link', 'show'])) as { ifname: string; xdp?: unknown }[];
  return links.filter((l) => l.xdp).map((l) => l.ifname);
}

function assertClean(what: string): void {
  assert.equal(xdpInterfaces(lab.ns.gwA), [], `${what}: no XDP program left on gateway A's interfaces`);
  assert.not.ok(fs.existsSync(ctl), `${what}: no control socket left`);
  assert.not.ok(fs.existsSync(pidFile), `${what}: no PID file left`);
}

function assertRefused(r: Run, code: ErrorCode, message: RegExp, what: string): void {
  assert.is(r.status, exitStatus(code), `${what}: exit status (stderr: ${r.stderr})`);
  assert.match(r.stderr, new RegExp(`maelstrom: .*\\[${code}\\]`), what);
  assert.match(r.stderr, message, what);
  assert.is(r.stdout, '', `${what}: no start report`);
}


const ask = (socket: string, cmd: 'status' | 'stats') => request(socket, { cmd });

errors.before(async () => {
  before = bpfObjects();
  lab = await Lab.create();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'merr-'));
  [ctl, pidFile, logFile] = ['gw.sock', 'gw.pid', 'gw.log'].map((f) => path.join(dir, f));
  // A veth pair left down, inside gateway A's namespace.
  nsRun(lab.ns.gwA, ['ip', 'link', 'add', 't0', 'type', 'veth', 'peer', 'name', 't1']);
});

// Stops daemons a failed test left running, so the next test starts clean.
async function stopDaemons(): Promise<void> {
  for (const pid of daemons) {
    if (processAlive(pid)) process.kill(pid, 'SIGTERM');
    if (!(await until(() => !processAlive(pid), 10_000))) process.kill(pid, 'SIGKILL');
    daemons.delete(pid);
  }
}

errors.after(async () => {
  await stopDaemons();
  await lab?.destroy();
  fs.rmSync(dir, { recursive: true, force: true });
});

errors('every bad input of up: its code, its exit status, a message that says what to do, nothing left attached', () => {
  const cases: { what: string; args: string[]; code: ErrorCode; message: RegExp; setup?: () => void; check?: () => void }[] = [
    { what: 'no such interface', args: upArgs({ lan: 'nosuch0' }), code: 'MAELSTROM_ERR_INTERFACE', message: /no interface named nosuch0: check 'ip link'/ },
    { what: 'interface down', args: upArgs({ lan: 't0' }), code: 'MAELSTROM_ERR_INTERFACE', message: /t0 is down: 'ip link set t0 up'/ },
    { what: 'no native XDP (loopback)', args: upArgs({ lan: 'lo' }), code: 'MAELSTROM_ERR_NO_XDP', message: /lo: .*run with --xdp-mode skb/ },
    { what: 'zero-copy on veth', args: [...upArgs(), '--zero-copy'], code: 'MAELSTROM_ERR_NO_ZERO_COPY', message: /lan0 queue 0 offers AF_XDP only in copy mode.*run without --zero-copy/ },
    { what: 'copy and zero-copy', args: [...upArgs(), '--copy', '--zero-copy'], code: 'MAELSTROM_ERR_CONFIG', message: /--copy and --zero-copy/ },
    { what: 'MTU too small', args: [...upArgs(), '--no-mss-clamp'], code: 'MAELSTROM_ERR_MTU', message: /raise the WAN MTU to 1692 or keep TCP MSS clamping on/ },
    { what: 'MTU too small, unauthenticated', args: [...upArgs({ key: ['--insecure-no-auth'] }), '--no-mss-clamp'], code: 'MAELSTROM_ERR_MTU', message: /raise the WAN MTU to 1648 or keep TCP MSS clamping on/ },
    { what: 'no key', args: upArgs({ key: [] }), code: 'MAELSTROM_ERR_KEY', message: /no key: .*maelstrom keygen > .*--key-file; or run with --insecure-no-auth/ },
    { what: 'key and no key', args: upArgs({ key: ['--key-file', path.join(dir, 'open.key'), '--insecure-no-auth'] }), code: 'MAELSTROM_ERR_CONFIG', message: /--key-file and --insecure-no-auth contradict each other/ },
    { what: 'key file missing', args: upArgs({ key: ['--key-file', path.join(dir, 'none.key')] }), code: 'MAELSTROM_ERR_KEY', message: /cannot read the key file .*none\.key.*maelstrom keygen > FILE/ },
    {
      what: 'key file others may read', args: upArgs({ key: ['--key-file', path.join(dir, 'open.key')] }), code: 'MAELSTROM_ERR_KEY', message: /open\.key has mode 0644: others than its owner may read it; chmod 600/,
      setup: () => { fs.copyFileSync(lab.keys.gateway, path.join(dir, 'open.key')); fs.chmodSync(path.join(dir, 'open.key'), 0o644); },
    },
    {
      what: 'a feedback key where the pair key goes', args: upArgs({ key: ['--key-file', lab.keys.feedback] }), code: 'MAELSTROM_ERR_KEY', message: /holds a feedback key where a gateway key is needed/,
    },
    { what: 'bad prefix', args: upArgs({ remote: '10.2.0.0/33' }), code: 'MAELSTROM_ERR_CONFIG', message: /bad prefix '10.2.0.0\/33'/ },
    { what: 'bad peer address', args: upArgs({ peer: '10.99.0.256' }), code: 'MAELSTROM_ERR_CONFIG', message: /--peer 10.99.0.256 is not an IPv4 address/ },
    { what: 'r out of range', args: [...upArgs(), '--r', '0'], code: 'MAELSTROM_ERR_CONFIG', message: /r must be an integer from 1 to 255, got 0/ },
    { what: 'c out of range', args: [...upArgs(), '--c', '17'], code: 'MAELSTROM_ERR_CONFIG', message: /c must be an integer from 1 to 16/ },
    { what: 'interleave out of range', args: [...upArgs(), '--interleaves', '1,10,70000'], code: 'MAELSTROM_ERR_CONFIG', message: /interleave 3 must be an integer from 1 to 65535/ },
    { what: 'queue out of range', args: [...upArgs(), '--queues', '0,1'], code: 'MAELSTROM_ERR_CONFIG', message: /--queues 0,1: lan0 has queue 0 only/ },
    { what: 'reorder grace out of range', args: [...upArgs(), '--reorder-grace', '200000'], code: 'MAELSTROM_ERR_CONFIG', message: /reorder grace .* must be 0 to 100000 us, got 200000/ },
    { what: 'XDP mode', args: [...upArgs(), '--xdp-mode', 'hw'], code: 'MAELSTROM_ERR_CONFIG', message: /--xdp-mode is native or skb/ },
    { what: 'peer routed through the LAN', args: upArgs({ peer: ADDRESSES.hostA }), code: 'MAELSTROM_ERR_PEER_UNREACHABLE', message: /reached through lan0, not the WAN interface wan0/ },
    { what: 'peer silent', args: upArgs({ peer: '10.99.0.77' }), code: 'MAELSTROM_ERR_PEER_UNREACHABLE', message: /ARP got no answer/ },
    { what: 'bpffs missing', args: upArgs({ bpffs: false }), code: 'MAELSTROM_ERR_BPFFS', message: /bpffs is not mounted at \/sys\/fs\/bpf: mount -t bpf bpf/ },
    { what: 'config file missing', args: [...upArgs(), '--config', path.join(dir, 'none.json')], code: 'MAELSTROM_ERR_CONFIG', message: /cannot read the config file/ },
    {
      what: 'control path taken by a file', args: upArgs(), code: 'MAELSTROM_ERR_CONTROL_STALE', message: /is in the way of the control socket and is not one: remove it/,
      setup: () => fs.writeFileSync(ctl, 'not a socket'),
      check: () => { assert.is(fs.readFileSync(ctl, 'utf8'), 'not a socket', 'left alone'); fs.rmSync(ctl); },
    },
  ];
  for (const c of cases) {
    c.setup?.();
    assertRefused(maelstrom(lab.ns.gwA, c.args), c.code, c.message, c.what);
    c.check?.();
    assertClean(c.what);
  }
});

errors('up --daemon from a config file; refusals while it runs leave it running; down stops it and leaves nothing', async () => {
  const config = path.join(dir, 'gw.json');
  fs.writeFileSync(config, JSON.stringify({
    lan: 'lan0', wan: 'wan0', peer: ADDRESSES.gwBWan, remote: [ADDRESSES.siteB], 'mount-bpffs': true, 'key-file': lab.keys.gateway,
    control: ctl, 'pid-file': pidFile, 'log-file': logFile, daemon: true, json: true,
  }));
  const r = maelstrom(lab.ns.gwA, ['up', '--config', config]);
  assert.is(r.status, 0, r.stderr);
  const report = JSON.parse(r.stdout) as Record<string, unknown>;
  const pid = report.pid as number;
  daemons.add(pid);
  try {
    assert.is(report.event, 'up');
    assert.is(report.logFile, logFile);
    assert.ok(pid !== process.pid && processAlive(pid), 'the daemon runs after up returned');
    assert.is(fs.readFileSync(pidFile, 'utf8'), `${pid}\n`);
    assert.equal(xdpInterfaces(lab.ns.gwA).sort(), ['lan0', 'wan0']);
    const status = JSON.parse(maelstrom(lab.ns.gwA, ['status', '--control', ctl, '--json']).stdout) as Record<string, unknown>;
    assert.is(status.pid, pid);
    assert.equal([status.queues, status.wanQueues], [[0], [0]], 'the queues bound');
    assert.is(status.pidFile, pidFile);
    assert.match(fs.readFileSync(logFile, 'utf8'), /"event":"up"/, 'the daemon\'s own output goes to its log');

    const other = [path.join(dir, 'other.sock'), path.join(dir, 'other.pid')];
    assertRefused(maelstrom(lab.ns.gwA, [...upArgs()]), 'MAELSTROM_ERR_ALREADY_RUNNING', /a gateway already runs with control socket/, 'same control socket');
    assertRefused(maelstrom(lab.ns.gwA, [...upArgs(), '--control', other[0], '--pid-file', other[1]]), 'MAELSTROM_ERR_ALREADY_ATTACHED',
      /lan0 already has a gateway XDP program .*maelstrom down --lan lan0/, 'same interfaces');
    for (const f of other) assert.not.ok(fs.existsSync(f), `${f} not created`);
    assert.is((await ask(ctl, 'status')).pid, pid, 'the first gateway still answers');

    // As the systemd unit stops it: everything from the config file.
    const down = maelstrom(lab.ns.gwA, ['down', '--config', config]);
    assert.is(down.status, 0, down.stderr);
    assert.match(down.stdout, new RegExp(`stopped the gateway daemon, pid ${pid}\\ndetached 0 gateway programs`), 'the daemon detached its own');
    assert.not.ok(processAlive(pid), 'down returns once the daemon has exited');
    assertClean('after up --daemon and down');
    assertNoGatewayBpf('after up --daemon and down');
  } finally {
    await stopDaemons();
  }
});

errors('a daemon that cannot start: up relays its message, code and exit status, and leaves nothing', () => {
  const r = maelstrom(lab.ns.gwA, [...upArgs(), '--daemon', '--zero-copy', '--log-file', logFile]);
  assertRefused(r, 'MAELSTROM_ERR_NO_ZERO_COPY', /lan0 queue 0 offers AF_XDP only in copy mode/, 'daemon with --zero-copy');
  assert.match(fs.readFileSync(logFile, 'utf8'), /offers AF_XDP only in copy mode.*\[MAELSTROM_ERR_NO_ZERO_COPY\]/, 'the daemon\'s own error is in its log');
  assertClean('failed daemon');
});

errors('a crashed daemon: up refuses its leftovers, down reports the stale PID file, asks for --wan, then detaches and removes them', async () => {
  const r = maelstrom(lab.ns.gwA, [...upArgs(), '--daemon', '--json', '--log-file', logFile]);
  assert.is(r.status, 0, r.stderr);
  const pid = (JSON.parse(r.stdout) as { pid: number }).pid;
  daemons.add(pid);
  process.kill(pid, 'SIGKILL');
  assert.ok(await until(() => !processAlive(pid), 5000), 'the daemon died');
  assert.equal(xdpInterfaces(lab.ns.gwA).sort(), ['lan0', 'wan0'], 'a killed gateway leaves its programs attached (fail-open)');

  const again = maelstrom(lab.ns.gwA, upArgs());
  assertRefused(again, 'MAELSTROM_ERR_ALREADY_ATTACHED', /or one crashed \(maelstrom down --lan lan0 --wan wan0/, 'up over a crashed gateway');
  assert.match(again.stderr, /replacing .*gw\.sock, left by a gateway that is gone/);

  const noWan = maelstrom(lab.ns.gwA, ['down', '--lan', 'lan0', '--pid-file', pidFile, '--control', ctl]);
  assert.is(noWan.status, 2, noWan.stderr);
  assert.match(noWan.stdout, new RegExp(`removed stale PID file ${pidFile}: no process ${pid}`));
  assert.match(noWan.stderr, /give --wan IF: no gateway daemon of lan0 runs/);
  assert.not.ok(fs.existsSync(pidFile));

  // As the systemd unit's ExecStartPre cleans up before a restart: the config file names the WAN
  // interface the crashed gateway cannot.
  const config = path.join(dir, 'crashed.json');
  fs.writeFileSync(config, JSON.stringify({ lan: 'lan0', wan: 'wan0', 'pid-file': pidFile, control: ctl, peer: ADDRESSES.gwBWan }));
  const down = maelstrom(lab.ns.gwA, ['down', '--config', config]);
  assert.is(down.status, 0, down.stderr);
  assert.match(down.stdout, /detached 2 gateway programs/);
  assert.match(down.stdout, /removed .*gw\.sock, left by a gateway that is gone/);
  assertClean('after down over a crashed daemon');
});

errors('a PID file naming a process that is not the gateway is removed, and the process is not signalled', async () => {
  const bystander = spawn('sleep', ['60'], { stdio: 'ignore' });
  try {
    fs.writeFileSync(pidFile, `${bystander.pid}\n`);
    const down = maelstrom(lab.ns.gwA, ['down', '--lan', 'lan0', '--wan', 'wan0', '--pid-file', pidFile, '--control', ctl]);
    assert.is(down.status, 0, down.stderr);
    assert.match(down.stdout, new RegExp(`removed stale PID file .*process ${bystander.pid} is not the gateway \\(sleep 60\\); it was not signalled`));
    assert.is(bystander.exitCode, null);
    assert.ok(processAlive(bystander.pid!), 'still running');
    assertClean('stale PID file');
    assertRefused(maelstrom(lab.ns.gwA, ['down', '--lan', 'nosuch0', '--wan', 'wan0', '--pid-file', pidFile, '--control', ctl]),
      'MAELSTROM_ERR_INTERFACE', /no interface named nosuch0/, 'down on a missing interface');
  } finally {
    bystander.kill();
  }
});

errors('--queues binds the LAN queues asked for and no others; status reports them, and the reorder grace asked for', async () => {
  // A LAN of four queues: hostA sends on TX queue 1 from CPU 0 and on queue 2 from CPU 1 (XPS),
  // and veth delivers on the same RX queue of the gateway's side.
  const { gwA, hostA } = lab.ns;
  run(['ip', '-n', gwA, 'link', 'add', 'mq0', 'numrxqueues', '4', 'numtxqueues', '4', 'type', 'veth', 'peer', 'name', 'mq1', 'netns', hostA, 'numrxqueues', '4', 'numtxqueues', '4']);
  nsRun(gwA, ['ip', 'addr', 'add', '10.3.0.1/24', 'dev', 'mq0']);
  nsRun(gwA, ['ip', 'link', 'set', 'mq0', 'up']);
  nsRun(hostA, ['ip', 'addr', 'add', '10.3.0.2/24', 'dev', 'mq1']);
  nsRun(hostA, ['ip', 'link', 'set', 'mq1', 'up']);
  nsRun(hostA, ['ip', 'route', 'add', '10.2.0.99/32', 'via', '10.3.0.1', 'dev', 'mq1']);
  for (const [queue, cpus] of [[0, 0], [1, 1], [2, 2], [3, 0]]) nsRun(hostA, ['sh', '-c', `echo ${cpus} > /sys/class/net/mq1/queues/tx-${queue}/xps_cpus`]);

  const r = maelstrom(gwA, [...upArgs({ lan: 'mq0' }), '--queues', '3,1', '--reorder-grace', '250', '--daemon', '--json', '--log-file', logFile]);
  assert.is(r.status, 0, r.stderr);
  const report = JSON.parse(r.stdout) as Record<string, unknown>;
  daemons.add(report.pid as number);
  try {
    assert.equal(report.queues, [1, 3]);
    const status = JSON.parse(maelstrom(gwA, ['status', '--control', ctl, '--json']).stdout) as Record<string, unknown>;
    assert.equal(status.queues, [1, 3]);
    assert.is(status.decoderGraceUs, 250, 'the grace asked for, on a WAN of one queue (default 0)');
    assert.match(maelstrom(gwA, ['status', '--control', ctl]).stdout, /LAN queue\(s\) 1,3, WAN queue\(s\) 0/);
    const pingFrom = (cpu: number) => nsRun(hostA, ['taskset', '-c', String(cpu), 'ping', '-c', '5', '-i', '0.01', '-W', '0.1', '10.2.0.99'], { allowFail: true });
    const xdp = async () => (await ask(ctl, 'stats')).xdp as { lanSteered: number; lanNoSocket: number };
    const start = await xdp();
    pingFrom(0);
    const bound = await xdp();
    assert.is(bound.lanSteered - start.lanSteered, 5, 'queue 1 has the engine\'s socket');
    if (os.cpus().length > 1) {
      pingFrom(1);
      const unbound = await xdp();
      assert.is(unbound.lanNoSocket - bound.lanNoSocket, 5, 'queue 2 has none: passed to the kernel');
    }
    const down = maelstrom(gwA, ['down', '--lan', 'mq0', '--pid-file', pidFile, '--control', ctl]);
    assert.is(down.status, 0, down.stderr);
  } finally {
    await stopDaemons();
  }
  assertClean('after --queues');
});

errors('no gateway program or map of these runs is left in the kernel', () => {
  assertNoGatewayBpf('after all runs');
});

errors.run();
