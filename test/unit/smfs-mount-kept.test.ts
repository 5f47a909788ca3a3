// A tagged mount's kept commits (src/smfs/mount/kept.ts): released by the watermark, handed over
// past a promoted site's update, a gap named.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { KeptCommits, commitBytes } from '../../src/smfs/mount/kept';
import type { KeptCommit } from '../../src/smfs/mount/kept';
import type { Change } from '../../src/smfs/fs/tree';

function commit(update: number, seq: number | undefined, bytes = 100): KeptCommit {
  return { update, seq, changes: [{ op: 'write', path: `/f${update}`, data: Buffer.alloc(bytes) }], bytes };
}

test('the watermark drops every commit at or under it, and with it the commits before it whose answer was lost', () => {
  const k = new KeptCommits(1 << 20);
  k.keep(commit(3, 10));
  k.keep(commit(4, undefined));
  k.keep(commit(5, 14));
  k.keep(commit(6, 20));
  k.release(9);
  assert.is(k.size, 4);
  k.release(10);
  assert.is(k.size, 3, 'update 3 (seq 10) is mirrored');
  k.release(13);
  assert.is(k.size, 3, 'the lost answer (update 4) stays until a later commit is mirrored');
  k.release(14);
  assert.is(k.size, 1, 'seq 14 vouches for update 4 before it');
  assert.is(k.stats.dropped, 3);
  assert.is(k.stats.keptBytes, 100);
  assert.is(k.stats.peakBytes, 400);
  assert.is(k.stats.mirrored, 14);
});

test('the cache limit says what fits', () => {
  const k = new KeptCommits(250);
  assert.ok(k.fits(250));
  k.keep(commit(1, 1));
  assert.ok(k.fits(150));
  assert.not.ok(k.fits(151));
});

test('a hand-over replays the kept commits past the promoted site\'s update, in order; what it has already is dropped', () => {
  const k = new KeptCommits(1 << 20);
  for (let u = 3; u <= 7; u++) k.keep(commit(u, u * 2));
  const plan = k.handOver(4, 7);
  assert.ok('replay' in plan);
  if ('replay' in plan) assert.equal(plan.replay.map((c) => c.update), [5, 6, 7]);
  assert.is(k.size, 3);
  assert.equal(k.handOver(7, 7), { replay: [] });
});

test('a hand-over with an update neither the site nor the mount has names the gap', () => {
  const k = new KeptCommits(1 << 20);
  k.keep(commit(6, 12));
  k.keep(commit(7, 14));
  assert.equal(k.handOver(4, 7), { missing: { from: 5, to: 5 } });
  const k2 = new KeptCommits(1 << 20);
  k2.keep(commit(5, 10));
  assert.equal(k2.handOver(4, 7), { missing: { from: 6, to: 7 } });
});

test('a replayed commit is kept under the new site\'s sequence number, or dropped where there is no mirror', () => {
  const k = new KeptCommits(1 << 20);
  const a = commit(5, 40);
  const b = commit(6, 41);
  k.keep(a);
  k.keep(b);
  k.replayed(a, 3);
  assert.is(a.seq, 3);
  k.replayed(b, undefined);
  assert.is(k.size, 1);
  assert.is(k.stats.replayed, 2);
  k.release(3);
  assert.is(k.size, 0);
});

test('a commit costs its data and a little per change', () => {
  const changes: Change[] = [
    { op: 'write', path: '/a', data: Buffer.alloc(1000) },
    { op: 'mkdir', path: '/d' },
    { op: 'patch', path: '/b', content: { keep: 0, size: 10, extents: [{ offset: 0, data: Buffer.alloc(10) }] } },
  ];
  assert.is(commitBytes(changes), 3 * 128 + 1000 + 10);
});

test.run();
