import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import path from 'node:path';
import { LogStore } from '../../src/smfs/store';
import type { FsyncPolicy } from '../../src/smfs/store';
import type { Address } from '../../src/smfs/format';
import { PART_HEADER, formatAddress, parseAddress, segmentFileName } from '../../src/smfs/format';
import { SmfsError } from '../../src/smfs/errors';
import { readTag, taggedRecord, withDir } from '../helpers/smfs';

// The files of a store as a crash would leave them: copied while it is open (what the page
// cache holds, which is what a killed process leaves), without its lock.
type Snapshot = Map<string, Buffer>;

function snapshot(dir: string): Snapshot {
  const out: Snapshot = new Map();
  const walk = (rel: string) => {
    for (const e of fs.readdirSync(path.join(dir, rel), { withFileTypes: true })) {
      const r = path.join(rel, e.name);
      if (e.isDirectory()) walk(r);
      else if (e.name !== 'LOCK') out.set(r, fs.readFileSync(path.join(dir, r)));
    }
  };
  walk('.');
  return out;
}

function restore(s: Snapshot, dir: string): void {
  fs.rmSync(dir, { recursive: true, force: true });
  for (const [rel, b] of s) {
    fs.mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
    fs.writeFileSync(path.join(dir, rel), b);
  }
}

function segPath(log: number, segment: number): string {
  return path.join('.', 'logs', String(log), segmentFileName(segment));
}

// Appends groups of tagged records (group g, record i of n) and returns each group's addresses.
async function appendGroups(store: LogStore, groups: { log: number; length: number }[][], first = 0): Promise<Address[][]> {
  const out: Address[][] = [];
  for (let g = 0; g < groups.length; g++) {
    const recs = groups[g].map((r, i) => ({ log: r.log, data: taggedRecord(first + g, i, groups[g].length, r.length) }));
    out.push(await store.append(recs));
  }
  return out;
}

// Which groups a log holds, whole or not: group -> record indexes, in address order.
async function groupsIn(store: LogStore, log: number): Promise<Map<number, number[]>> {
  const m = new Map<number, number[]>();
  for (const e of store.entries(log)) {
    const tag = readTag((await store.read(e.address)).data);
    assert.ok(tag, `record at ${formatAddress(e.address)} is intact`);
    m.set(tag!.group, [...(m.get(tag!.group) ?? []), tag!.index]);
  }
  return m;
}

async function expectCorrupt(dir: string): Promise<SmfsError> {
  try {
    await LogStore.open(dir);
  } catch (err) {
    assert.instance(err, SmfsError);
    assert.is((err as SmfsError).code, 'SMFS_ERR_CORRUPT');
    return err as SmfsError;
  }
  assert.unreachable('the store opened');
  throw new Error('unreachable');
}

const recovery = suite('smfs recovery');

recovery('a tail torn at every byte of the last group: reopened, the log holds exactly the groups before it', async () => {
  await withDir('torn', async (work) => {
    const live = path.join(work, 'live');
    const dir = path.join(work, 'crashed');
    const store = await LogStore.open(live);
    await store.createLog(1);
    await appendGroups(store, [[{ log: 1, length: 40 }, { log: 1, length: 12 }], [{ log: 1, length: 100 }]]);
    const start = parseAddress(store.stat().logs[0].end)!.offset;
    await appendGroups(store, [[{ log: 1, length: 30 }, { log: 1, length: 0 }, { log: 1, length: 50 }]], 2);
    const crashed = snapshot(live);
    await store.close();
    const full = crashed.get(segPath(1, 0))!;
    assert.ok(full.length > start + 100);
    for (let cut = start; cut < full.length; cut++) {
      for (const mode of cut === start ? ['cut'] : ['cut', 'zeros']) {
        const damaged = new Map(crashed);
        damaged.set(segPath(1, 0), mode === 'cut' ? full.subarray(0, cut) : Buffer.concat([full.subarray(0, cut), Buffer.alloc(full.length - cut)]));
        restore(damaged, dir);
        const s = await LogStore.open(dir);
        const groups = await groupsIn(s, 1);
        assert.equal([...groups.entries()], [[0, [0, 1]], [1, [0]]], `${mode} at ${cut}: groups 0 and 1, whole, and nothing of group 2`);
        if (cut === start) assert.equal(s.recovery.truncated, []);
        else {
          assert.is(s.recovery.truncated.length, 1, `${mode} at ${cut}`);
          assert.is(s.recovery.truncated[0].offset, start);
          assert.is(s.recovery.truncated[0].droppedBytes, (mode === 'cut' ? cut : full.length) - start);
        }
        assert.is(fs.statSync(path.join(dir, segPath(1, 0))).size, start, 'the torn bytes are gone from the file');
        assert.is(s.lastSeq, 2);
        const [again] = await s.append([{ log: 1, data: Buffer.from('next') }]);
        // The new part starts where the torn one did; its record follows the part header.
        assert.equal(again, { log: 1, segment: 0, offset: start + PART_HEADER + 4 }, 'the next append takes the torn group\'s place');
        assert.is(s.lastSeq, 3);
        await s.close();
      }
    }
  });
});

recovery('a group over two logs torn in either log is dropped from both', async () => {
  await withDir('torn2', async (work) => {
    const live = path.join(work, 'live');
    const dir = path.join(work, 'crashed');
    const store = await LogStore.open(live);
    await store.createLog(1);
    await store.createLog(2);
    await appendGroups(store, [[{ log: 1, length: 20 }, { log: 2, length: 20 }], [{ log: 2, length: 64 }]]);
    const starts = store.stat().logs.map((l) => parseAddress(l.end)!.offset);
    await appendGroups(store, [[{ log: 2, length: 33 }, { log: 1, length: 70 }, { log: 2, length: 5 }]], 2);
    const crashed = snapshot(live);
    await store.close();
    for (const [torn, other] of [[1, 2], [2, 1]]) {
      const full = crashed.get(segPath(torn, 0))!;
      const start = starts[torn - 1];
      for (let cut = start; cut < full.length; cut++) {
        const damaged = new Map(crashed);
        damaged.set(segPath(torn, 0), full.subarray(0, cut));
        restore(damaged, dir);
        const s = await LogStore.open(dir);
        const where = `log ${torn} cut at ${cut}`;
        for (const id of [1, 2]) {
          const groups = await groupsIn(s, id);
          assert.not.ok(groups.has(2), `${where}: nothing of group 2 in log ${id}`);
          assert.ok(groups.has(0), `${where}: group 0 kept in log ${id}`);
        }
        const otherCut = s.recovery.truncated.find((t) => t.log === other);
        assert.ok(otherCut, `${where}: log ${other} lost its part too`);
        assert.is(otherCut!.offset, starts[other - 1]);
        assert.match(otherCut!.reason, new RegExp(`group 3 has no part in log ${torn}`));
        assert.is(s.recovery.droppedGroups, 1);
        await s.close();
      }
    }
  });
});

recovery('fsync never: a group lost in one log takes what came after it in the logs it touched', async () => {
  await withDir('cascade', async (work) => {
    const live = path.join(work, 'live');
    const dir = path.join(work, 'crashed');
    const store = await LogStore.open(live, { fsync: 'never' as FsyncPolicy });
    for (const id of [1, 2, 3, 4]) await store.createLog(id);
    await appendGroups(store, [[{ log: 1, length: 10 }, { log: 2, length: 10 }, { log: 3, length: 10 }, { log: 4, length: 10 }]]);
    const starts = store.stat().logs.map((l) => parseAddress(l.end)!.offset);
    // group 1 in logs 1 and 2; group 2 in logs 2 and 3; group 3 in log 3; group 4 in log 4.
    await appendGroups(store, [
      [{ log: 1, length: 10 }, { log: 2, length: 10 }],
      [{ log: 2, length: 10 }, { log: 3, length: 10 }],
      [{ log: 3, length: 10 }],
      [{ log: 4, length: 10 }],
    ], 1);
    const crashed = snapshot(live);
    await store.close();
    // A power cut under fsync never: log 1's last page never reached the disk.
    const damaged = new Map(crashed);
    damaged.set(segPath(1, 0), crashed.get(segPath(1, 0))!.subarray(0, starts[0]));
    restore(damaged, dir);
    const s = await LogStore.open(dir);
    assert.equal([...(await groupsIn(s, 1)).keys()], [0]);
    assert.equal([...(await groupsIn(s, 2)).keys()], [0], 'log 2 lost group 1 (no part in log 1) and group 2 after it');
    assert.equal([...(await groupsIn(s, 3)).keys()], [0], 'log 3 lost group 2 (no part in log 2 any more) and group 3 after it');
    assert.equal([...(await groupsIn(s, 4)).keys()], [0, 4], 'log 4 shares no group with them and keeps group 4');
    assert.equal(s.recovery.truncated.map((t) => t.log).sort(), [2, 3]);
    assert.is(s.recovery.droppedGroups, 3);
    await s.close();
  });
});

recovery('damage where no write can be torn is refused as corruption, and nothing is changed', async () => {
  await withDir('corrupt', async (work) => {
    const live = path.join(work, 'live');
    const dir = path.join(work, 'damaged');
    const store = await LogStore.open(live, { segmentBytes: 4096 });
    await store.createLog(1);
    await appendGroups(store, Array.from({ length: 12 }, () => [{ log: 1, length: 500 }]));
    assert.ok(store.stat().logs[0].segments >= 2);
    await store.close();
    const clean = snapshot(live);
    // A flipped byte in the sealed segment 0.
    const damaged = new Map(clean);
    const seg0 = Buffer.from(clean.get(segPath(1, 0))!);
    seg0[300] ^= 0x40;
    damaged.set(segPath(1, 0), seg0);
    restore(damaged, dir);
    const err = await expectCorrupt(dir);
    assert.match(err.message, /0000000000\.seg: at offset \d+: part checksum/);
    assert.ok(fs.readFileSync(path.join(dir, segPath(1, 0))).equals(seg0), 'the damaged segment is left as it was');
    assert.not.ok(fs.existsSync(path.join(dir, 'LOCK')), 'a refused open leaves no lock');
    // A segment header naming another segment, and a durable mark that does not check out.
    const renamed = new Map(clean);
    renamed.set(segPath(1, 0), clean.get(segPath(1, 1))!);
    restore(renamed, dir);
    assert.match((await expectCorrupt(dir)).message, /header names log 1 segment 1/);
    const mark = new Map(clean);
    mark.set('durable', Buffer.alloc(16, 1));
    restore(mark, dir);
    assert.match((await expectCorrupt(dir)).message, /durable mark/);
  });
});

recovery('leftovers of unfinished work are removed: a torn new segment, a log never created, a cleaner\'s temp file', async () => {
  await withDir('leftovers', async (dir) => {
    let store = await LogStore.open(dir);
    await store.createLog(1);
    const [[a]] = await appendGroups(store, [[{ log: 1, length: 10 }]]);
    await store.close();
    fs.writeFileSync(path.join(dir, segPath(1, 1)), Buffer.from('SMFS\0\x01'));   // a header cut short
    fs.writeFileSync(path.join(dir, segPath(1, 0) + '.tmp'), Buffer.alloc(100));   // a compaction cut short
    fs.mkdirSync(path.join(dir, 'logs', '5'));                                     // create-log cut short
    store = await LogStore.open(dir);
    assert.equal(store.logIds(), [1]);
    assert.is(store.recovery.removed.length, 3);
    assert.ok(readTag((await store.read(a)).data));
    const [b] = await store.append([{ log: 1, data: Buffer.from('more') }]);
    assert.is(b.segment, 0);
    await store.createLog(5);
    await store.close();
  });
});

recovery.run();
