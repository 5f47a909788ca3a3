// Runs every test group and ends with the line CI reads: "N passed, N failed".
//   unit   uvu over dist/test/unit (no root needed)
//   net    uvu over dist/test/net, as root, in network namespaces (when the directory exists)
//   fuzz   libFuzzer targets for the repair parser and decoder, FUZZ_SECONDS each
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';

const env = { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0' };
let passed = 0;
let failed = 0;

function uvu(dir) {
  if (!existsSync(dir)) return;
  console.log(`\n== ${dir}`);
  const r = spawnSync(process.execPath, ['node_modules/uvu/bin.js', dir, '\\.test\\.js$'], { env, encoding: 'utf8' });
  process.stdout.write(r.stdout);
  process.stderr.write(r.stderr);
  const total = Number(/Total:\s+(\d+)/.exec(r.stdout)?.[1] ?? NaN);
  const ok = Number(/Passed:\s+(\d+)/.exec(r.stdout)?.[1] ?? NaN);
  const skipped = Number(/Skipped:\s+(\d+)/.exec(r.stdout)?.[1] ?? 0);
  if (Number.isNaN(total) || Number.isNaN(ok)) {
    console.log(`!! ${dir}: the test runner crashed before reporting (exit ${r.status})`);
    failed++;
    return;
  }
  passed += ok;
  failed += total - ok - skipped;
  if (r.status !== 0 && total === ok) failed++; // a crash after the last test
}

function step(name, command, args) {
  console.log(`\n== ${name}`);
  const r = spawnSync(command, args, { env, stdio: 'inherit' });
  if (r.status === 0) passed++;
  else {
    console.log(`!! ${name} failed (exit ${r.status})`);
    failed++;
  }
}

function nothingLeftBehind() {
  console.log('\n== nothing of ours left: no lab namespace (mlab*), no wan_emu or gateway XDP program, no lab control socket or namespace directory, no smfs FUSE mount');
  const ns = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout.split('\n').filter((l) => l.startsWith('mlab'));
  const progs = spawnSync('bpftool', ['prog', 'show'], { encoding: 'utf8' }).stdout.split('\n').filter((l) => / name (wan_emu|gateway) /.test(l));
  // Lab gateways keep their sockets in /run/maelstrom/netns-<inode> (gone with the lab).
  const sockets = existsSync('/run/maelstrom') ? readdirSync('/run/maelstrom').filter((f) => f.startsWith('mlab') || f.startsWith('netns-')) : [];
  const mounts = readFileSync('/proc/mounts', 'utf8').split('\n').filter((l) => l.split(' ')[2] === 'fuse.smfs');
  if (ns.length === 0 && progs.length === 0 && sockets.length === 0 && mounts.length === 0) passed++;
  else {
    console.log(`!! left behind: ${[...ns, ...progs, ...sockets, ...mounts].join('; ')}`);
    failed++;
  }
}

uvu('dist/test/unit');
if (process.getuid?.() === 0) {
  uvu('dist/test/net');
  nothingLeftBehind();
} else if (existsSync('dist/test/net')) console.log('\n== dist/test/net skipped: needs root for network namespaces');
step(`fuzz (${process.env.FUZZ_SECONDS ?? 20}s per target)`, 'make', ['--no-print-directory', 'fuzz']);

console.log(`\n${passed} passed, ${failed} failed`);
process.exitCode = failed ? 1 : 0;
