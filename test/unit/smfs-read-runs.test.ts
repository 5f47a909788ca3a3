// Read coalescing for the storage server's read-many (src/smfs/read-runs.ts): records that lie
// one after the other in a segment are read with one pread, each sliced back out in the order
// asked; anything else starts a new read.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { MAX_GAP, MAX_RUN, readRuns, sliceRuns } from '../../src/smfs/read-runs';
import type { Wanted } from '../../src/smfs/read-runs';

const runs = suite('read-many: runs of records read at once');

// Records of `length` bytes each with an 8-byte header before it, from `start` in file `file`.
function laidOut(file: string, start: number, count: number, length = 4096): Wanted<string>[] {
  return Array.from({ length: count }, (_, i) => ({ file, position: start + 8 + i * (8 + length), length }));
}

runs('the blocks of a file written in one append are one read, headers between them skipped', () => {
  const wanted = laidOut('seg1', 100, 256);
  const r = readRuns(wanted);
  assert.is(r.length, 1);
  assert.equal(r[0], { file: 'seg1', position: 108, length: 256 * 4104 - 8, members: [...Array(256).keys()] });
});

runs('another segment, a record before the last one, or a gap past MAX_GAP starts a new read', () => {
  const a = laidOut('seg1', 0, 3);
  const b = laidOut('seg2', 0, 2);
  const back = { file: 'seg1', position: 0, length: 10 };
  const far = { file: 'seg1', position: a[2].position + 4096 + MAX_GAP + 1, length: 10 };
  const near = { file: 'seg1', position: far.position + 10 + MAX_GAP, length: 10 };
  const r = readRuns([...a, ...b, back, far, near]);
  assert.equal(r.map((x) => [x.file, x.members]), [['seg1', [0, 1, 2]], ['seg2', [3, 4]], ['seg1', [5]], ['seg1', [6, 7]]]);
  assert.is(r[3].length, 10 + MAX_GAP + 10, 'a gap up to MAX_GAP is read and dropped');
});

runs('the same record asked twice, and a run past MAX_RUN, are read again', () => {
  const one = { file: 's', position: 8, length: 100 };
  assert.is(readRuns([one, one]).length, 2, 'a record overlapping the run so far is not joined to it');
  const big = laidOut('s', 0, Math.ceil(MAX_RUN / 4104) + 10);
  const r = readRuns(big);
  assert.is(r.length, 2);
  assert.ok(r.every((x) => x.length <= MAX_RUN));
  assert.equal(r.flatMap((x) => x.members), [...big.keys()], 'every record once, in order');
});

runs('sliceRuns gives each record its own bytes, in the order asked', () => {
  // A "file" whose byte at position p is p % 251; records of different lengths, two files.
  const file = (name: string, size: number) => ({ name, bytes: Buffer.from(Array.from({ length: size }, (_, p) => (p * (name === 'x' ? 1 : 7)) % 251)) });
  const files = { x: file('x', 5000), y: file('y', 5000) };
  const wanted: Wanted<'x' | 'y'>[] = [
    { file: 'x', position: 8, length: 100 }, { file: 'x', position: 116, length: 1 }, { file: 'x', position: 125, length: 0 },
    { file: 'y', position: 1000, length: 50 }, { file: 'x', position: 200, length: 300 }, { file: 'x', position: 0, length: 4 },
  ];
  const r = readRuns(wanted);
  const read = r.map((run) => files[run.file].bytes.subarray(run.position, run.position + run.length));
  const out = sliceRuns(wanted, r, read);
  wanted.forEach((w, i) => assert.ok(out[i].equals(files[w.file].bytes.subarray(w.position, w.position + w.length)), `record ${i}`));
  assert.equal(r.map((x) => [x.file, x.position, x.length]), [['x', 8, 117], ['y', 1000, 50], ['x', 200, 300], ['x', 0, 4]],
    'x 8..125 one read (gaps of 8 bytes; an empty record too), y one, then x again after y, and x 0..4 before it');
});

runs.run();
