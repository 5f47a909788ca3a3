// The lab's WAN emulator (bpf/wan_emu.bpf.c) run through BPF_PROG_TEST_RUN: loss rates within
// binomial confidence of the configured probability, link kill, bursts. Needs root (bpffs).
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { runInBpfSandbox } from '../helpers/bpf-sandbox';

const XDP_DROP = 1;
const XDP_PASS = 2;

// struct wan_emu_config { killed, drop_good, enter_bad, leave_bad, drop_next: u32 LE;
// spare_port: u16 network order; pad }.
function config(c: { killed?: boolean; dropGood?: number; enterBad?: number; leaveBad?: number; dropNext?: number }): number[] {
  const b = Buffer.alloc(24);
  const frac = (p = 0) => Math.min(0xffffffff, Math.round(p * 2 ** 32));
  b.writeUInt32LE(c.killed ? 1 : 0, 0);
  b.writeUInt32LE(frac(c.dropGood), 4);
  b.writeUInt32LE(frac(c.enterBad), 8);
  b.writeUInt32LE(frac(c.leaveBad), 12);
  b.writeUInt32LE(c.dropNext ?? 0, 16);
  return [...b];
}

const emu = suite('WAN emulator XDP program');

emu('passes all with no loss, drops all when killed, drops at the configured iid and bursty rates', () => {
  const packet = Buffer.alloc(98, 0xab);
  const n = 40_000;
  const p = 0.25;
  const ge = { p: 0.1, burst: 10 };
  const results = runInBpfSandbox('out/bpf/wan_emu.bpf.o', ['wan_stats'], [
    { name: 'clean', packet, repeat: 2000 },
    { name: 'killed', config: { map: 'wan_config', value: config({ killed: true }) }, packet, repeat: 2000 },
    { name: 'iid', config: { map: 'wan_config', value: config({ dropGood: p }) }, packet, repeat: n },
    {
      name: 'bursty',
      config: { map: 'wan_config', value: config({ enterBad: (ge.p / ge.burst) / (1 - ge.p), leaveBad: 1 / ge.burst }) },
      packet,
      repeat: n,
    },
  ]);
  const [clean, killed, iid, bursty] = results;
  const stats = (r: typeof clean) => ({ passed: r.counters.wan_stats[0], dropped: r.counters.wan_stats[1] });

  assert.is(clean.retval, XDP_PASS);
  assert.equal(stats(clean), { passed: 2000, dropped: 0 });

  assert.is(killed.retval, XDP_DROP);
  assert.equal(stats(killed), { passed: 2000, dropped: 2000 });

  const iidDropped = stats(iid).dropped - 2000;
  assert.is(stats(iid).passed + stats(iid).dropped, 4000 + n);
  const sigma = Math.sqrt(n * p * (1 - p));
  assert.ok(Math.abs(iidDropped - n * p) < 5 * sigma, `iid: ${iidDropped} dropped of ${n}, expected ${n * p} ± ${5 * sigma}`);

  const burstDropped = stats(bursty).dropped - stats(iid).dropped;
  // Bursts make drops correlated, so the spread is wider than binomial: allow ±30% of the mean.
  assert.ok(Math.abs(burstDropped - n * ge.p) < 0.3 * n * ge.p, `bursty: ${burstDropped} dropped of ${n}, expected about ${n * ge.p}`);
});

emu('an exact burst drops the next n frames and then stops', () => {
  const packet = Buffer.alloc(98, 0xab);
  const [burst, after] = runInBpfSandbox('out/bpf/wan_emu.bpf.o', ['wan_stats'], [
    { name: 'burst', config: { map: 'wan_config', value: config({ dropNext: 50 }) }, packet, repeat: 80 },
    { name: 'after', packet, repeat: 100 },
  ]);
  assert.equal(burst.counters.wan_stats, [30, 50]);
  assert.equal(after.counters.wan_stats, [130, 50]);
});

emu.run();
