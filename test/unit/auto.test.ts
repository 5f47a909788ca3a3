// Adaptive redundancy (--auto): the model, the choice of c, and the controller fed with the
// peer's cumulative receiver reports.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AutoRedundancy, modelledUnrecoverable, smallestC } from '../../src/gateway/auto';
import { closedFormBound } from '../../src/model/redundancy';
import type { PeerReport } from '../../src/native/addon';

const options = { r: 8, cMin: 1, cMax: 4, target: 1e-6 };

test('the model: p times one failing bin per layer; bursts longer than an interleave defeat that layer', () => {
  const p = 0.01;
  const q = 1 - (1 - p) ** 7;
  assert.ok(Math.abs(modelledUnrecoverable(p, 1, 8, [1, 10, 100]) - p * q ** 3) < 1e-15);
  // The project's closed form (1-(1-p)^r)^c bounds it from above (it counts the packet itself).
  assert.ok(modelledUnrecoverable(p, 1, 8, [1, 10, 100]) <= p * closedFormBound(8, 3, p));
  // A mean burst of 20 packets: the interleave-1 and -10 layers mostly fail, the 100 one does not.
  const bursty = modelledUnrecoverable(p, 20, 8, [1, 10, 100]);
  assert.ok(Math.abs(bursty - p * 0.95 * 0.5 * q) < 1e-12, String(bursty));
  assert.is(modelledUnrecoverable(0, 1, 8, [1]), 0);
});

test('smallestC: 0.1% iid needs 2 layers for 1e-6, 3% needs more than 4 (so 4), none meets 1e-30', () => {
  assert.is(smallestC(0.001, 1, options), 2);
  assert.is(smallestC(0.03, 1, options), 4);
  assert.is(smallestC(0.001, 1, { ...options, target: 1e-30 }), 4);
  assert.is(smallestC(1e-7, 1, options), 1);
  assert.is(smallestC(1e-7, 1, { ...options, cMin: 2 }), 2);
});

// Cumulative reports every 100 ms of `pps` packets/s at loss p (losses spread evenly).
function reporter(pps: number) {
  let t = 0, sampled = 0, missing = 0, acc = 0;
  return (p: number, ms: number, controller: AutoRedundancy) => {
    const out: number[] = [];
    for (const end = t + ms; t < end; t += 100) {
      const n = pps / 10;
      sampled += n;
      acc += n * p;
      const lost = Math.floor(acc);
      acc -= lost;
      missing += lost;
      const report: PeerReport = { reports: 0, epoch: 0, window: 1600, sampled, missing, bursts: missing, recovered: 0, unrecoverable: 0, ageMs: 0 };
      const d = controller.observe(report, t + 100);
      if (d) out.push(d.c);
    }
    return out;
  };
}

test('the controller lowers c at 0.1% after the lower code has fitted for a second, raises it at once at 3%, lowers again', () => {
  const auto = new AutoRedundancy(options, 3);
  const feed = reporter(5000);
  const settle = feed(0.001, 3000, auto);
  assert.equal(settle, [2]);
  // The estimate over the last 2 s climbs as 3% reports come in: c follows it step by step.
  const rise = feed(0.03, 600, auto);
  assert.ok(rise.length >= 1 && rise.every((c, i) => c > (i ? rise[i - 1] : 2)), `rose ${rise}`);
  assert.is(rise[rise.length - 1], 4, 'c reaches 4 within 0.6 s of the loss rising');
  assert.equal(feed(0.03, 3000, auto), [], 'and stays');
  const down = feed(0.001, 6000, auto);
  assert.equal(down[down.length - 1], 2);
  assert.is(auto.current, 2);
});

test('the controller waits for enough packets, and starts again when the peer\'s counters go back', () => {
  const auto = new AutoRedundancy(options, 3);
  const feed = reporter(500); // 1000 packets per 2 s window: too few to judge
  assert.equal(feed(0.03, 5000, auto), []);
  const report = (sampled: number, missing: number): PeerReport => ({ reports: 1, epoch: 0, window: 1600, sampled, missing, bursts: missing, recovered: 0, unrecoverable: 0, ageMs: 0 });
  const fresh = new AutoRedundancy(options, 3);
  assert.is(fresh.observe(report(1_000_000, 30_000), 0), undefined);
  // The peer restarted: counters back near zero. No decision from a negative difference.
  assert.is(fresh.observe(report(100, 0), 100), undefined);
  assert.is(fresh.observe(report(5000, 150), 2000)?.c, 4);
});
test.run();
