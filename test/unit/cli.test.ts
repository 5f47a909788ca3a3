import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ERROR_CODES, exitStatus } from '../../src/errors';

const bin = path.resolve(__dirname, '..', '..', 'src', 'cli', 'maelstrom.js');
const smfs = path.resolve(__dirname, '..', '..', 'src', 'cli', 'smfs.js');

function maelstrom(...args: string[]) {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const cli = suite('maelstrom CLI');

cli('model --json gives the closed-form bound and the simulated rate', () => {
  const r = maelstrom('model', '--r', '8', '--c', '3', '--interleaves', '1,10,100', '--loss', '0.01', '--packets', '200000', '--json');
  assert.is(r.status, 0, r.stderr);
  const m = JSON.parse(r.stdout);
  assert.is(m.r, 8);
  assert.is(m.c, 3);
  assert.equal(m.interleaves, [1, 10, 100]);
  assert.ok(m.bound > 4.6e-4 && m.bound < 4.62e-4);
  assert.type(m.simulated, 'number');
  assert.ok(m.simulated <= m.bound);
  assert.is(m.inFlight.length, 4);
  assert.ok(m.dataLost > 0);
});

cli('model prints a readable report, with bursts marked as outside the bound', () => {
  const r = maelstrom('model', '--loss', '0.02', '--burst-length', '10', '--packets', '50000');
  assert.is(r.status, 0, r.stderr);
  assert.match(r.stdout, /closed form \(1-\(1-p\)\^r\)\^c/);
  assert.match(r.stdout, /Gilbert-Elliott/);
  assert.match(r.stdout, /not a bound here/);
});

cli('bad arguments exit 2 with the error code and a message naming the option', () => {
  const cases: [string[], RegExp][] = [
    [['model', '--loss', '0.01', '--r', '0'], /r must be an integer from 1 to 255/],
    [['model', '--loss', 'lots'], /--loss takes a number/],
    [['model', '--loss', '0.01', '--interleaves', '1,x'], /--interleaves takes whole numbers/],
    [['model', '--loss', '0.01', '--c', '2', '--interleaves', '1,10,100'], /--c 2 needs 2 interleaves/],
    [['model', '--loss', '2'], /probability/],
    [['bench', 'codec', '--packet-length', '10'], /packet length/],
    [['bench', 'goodput', '--losses', '0,x'], /--losses takes numbers separated by commas/],
    [['bench', 'goodput', '--losses', '0,60'], /--losses are percentages from 0 to below 50/],
    [['bench', 'goodput', '--seconds', '0'], /--seconds is 1 to 600/],
    [['bench', 'goodput', '--auto-target', '2'], /--auto-target is a rate between 0 and 1/],
  ];
  for (const [args, message] of cases) {
    const r = maelstrom(...args);
    assert.is(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, message);
    assert.match(r.stderr, /MAELSTROM_ERR_CONFIG/);
    assert.is(r.stdout, '');
  }
  const missing = maelstrom('model');
  assert.is(missing.status, 2);
  assert.match(missing.stderr, /--loss/);
  assert.is(maelstrom('no-such-command').status, 2);
});

cli('bench codec --json reports encode, decode, memcpy and ISA-L throughput from one run', () => {
  const r = maelstrom('bench', 'codec', '--json', '--seconds', '0.05', '--pool', '2048');
  assert.is(r.status, 0, r.stderr);
  const b = JSON.parse(r.stdout);
  for (const k of ['encode_GBps', 'decode_GBps', 'memcpy_GBps']) assert.ok(b[k] > 0, k);
  assert.is(b.decode_recovered, b.decode_lost, 'at 1% loss every lost packet of the stream is rebuilt');
  assert.ok(Math.abs(b.encode_vs_memcpy - b.encode_GBps / b.memcpy_GBps) < 1e-9);
  // The ISA-L yardstick is built by make build (libisal-dev is one of make deps' packages).
  assert.is(b.isal_missing, undefined, b.isal_missing);
  assert.ok(b.isal_rs_GBps > 0, 'ISA-L RS(8,3) measured in the same run');
  assert.ok(Math.abs(b.encode_vs_isal - b.encode_GBps / b.isal_rs_GBps) < 1e-9);
});

cli('smfs bench local --json: smfs appends beside the raw disk from one run, as ratios; nothing left in --dir; bad options exit 2', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'bench-local-'));
  try {
    const r = spawnSync(process.execPath, [smfs, 'bench', 'local', '--json', '--clients', '1,4', '--seconds', '0.3', '--append-kib', '64', '--dir', dir], { encoding: 'utf8', timeout: 60_000 });
    assert.is(r.status, 0, r.stderr);
    const b = JSON.parse(r.stdout) as { append_kib: number; logs: number; rows: { clients: number; smfs_mbytes_per_s: number; raw_dsync_mbytes_per_s: number; raw_batched_mbytes_per_s: number; vs_dsync: number; vs_batched: number; errors: Record<string, number> }[] };
    assert.is(b.append_kib, 64);
    assert.equal(b.rows.map((x) => x.clients), [1, 4]);
    for (const x of b.rows) {
      assert.ok(x.smfs_mbytes_per_s > 0 && x.raw_dsync_mbytes_per_s > 0 && x.raw_batched_mbytes_per_s > 0, JSON.stringify(x));
      assert.ok(Math.abs(x.vs_dsync - x.smfs_mbytes_per_s / x.raw_dsync_mbytes_per_s) < 0.02, 'the ratio is of the figures beside it');
      assert.equal(x.errors, {});
    }
    assert.equal(readdirSync(dir), [], 'the store, the raw files and the credential are gone');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  for (const [args, message] of [[['--dir', '/nonexistent'], /is not a directory/], [['--append-kib', '6'], /multiple of --block-kib/], [['--clients', '0'], /--clients are from 1/], [['--rounds', '3'], /--rounds goes with the lab bench/]] as [string[], RegExp][]) {
    const bad = spawnSync(process.execPath, [smfs, 'bench', 'local', ...args], { encoding: 'utf8' });
    assert.is(bad.status, 2, bad.stderr);
    assert.match(bad.stderr, message);
  }
});

cli('--help teaches: every command lists its options and examples', () => {
  const r = maelstrom('model', '--help');
  assert.is(r.status, 0);
  for (const opt of ['--r', '--c', '--interleaves', '--loss', '--burst-length', '--json']) assert.ok(r.stdout.includes(opt), opt);
  assert.match(r.stdout, /Examples:/);
  const s = spawnSync(process.execPath, [smfs, '--version'], { encoding: 'utf8' });
  assert.is(s.status, 0);
  assert.match(s.stdout, /^\d+\.\d+\.\d+/);
});

cli('watch: a missing gateway, a stale control socket and a missing target each get their own error', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'mwatch-'));
  try {
    const none = maelstrom('watch', '--control', path.join(dir, 'none.sock'));
    assert.is(none.status, 3);
    assert.match(none.stderr, /no gateway control socket at .*is 'maelstrom up' running\?.*\[MAELSTROM_ERR_NO_GATEWAY\]/);
    // A socket file nobody listens on: what a killed gateway leaves.
    const stale = path.join(dir, 'stale.sock');
    const made = spawnSync('python3', ['-c', `import socket; socket.socket(socket.AF_UNIX).bind(${JSON.stringify(stale)})`]);
    assert.is(made.status, 0);
    const r = maelstrom('watch', '--control', stale);
    assert.is(r.status, 3);
    assert.match(r.stderr, /left from a gateway that is gone.*\[MAELSTROM_ERR_CONTROL_STALE\]/);
    const usage = maelstrom('watch');
    assert.is(usage.status, 2);
    assert.match(usage.stderr, /give --lan IF or --control PATH/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

cli('up and down refuse to run without root, before they touch anything', () => {
  // As root (the usual case here) the CLI runs as nobody; otherwise as this user.
  const as = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : {};
  const upArgs = ['up', '--lan', 'lan0', '--wan', 'wan0', '--peer', '10.99.0.2', '--remote', '10.2.0.0/24'];
  for (const args of [upArgs, [...upArgs, '--daemon'], ['down', '--lan', 'lan0', '--wan', 'wan0']]) {
    const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', cwd: tmpdir(), timeout: 60_000, ...as });
    assert.is(r.status, 4, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, /needs root.*run it with sudo \[MAELSTROM_ERR_NOT_ROOT\]/);
    assert.is(r.stdout, '');
  }
});

cli('every error code is in the table of docs/cli.md, with the exit status it exits with', () => {
  const doc = readFileSync(path.resolve(__dirname, '..', '..', '..', 'docs', 'cli.md'), 'utf8');
  const rows = new Map([...doc.matchAll(/^\| `(MAELSTROM_ERR_\w+)` \| (\d+) \|/gm)].map((m) => [m[1], Number(m[2])]));
  for (const code of ERROR_CODES) assert.is(rows.get(code), exitStatus(code), code);
  assert.equal([...rows.keys()].sort(), [...ERROR_CODES].sort(), 'no code in the table that the code does not have');
});

cli.run();
