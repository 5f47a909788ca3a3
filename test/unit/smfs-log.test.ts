import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { crc32, crc32Combine, crc32Table } from '../../src/smfs/checksum';
import { LogStore } from '../../src/smfs/store';
import type { Address } from '../../src/smfs/format';
import { LIMITS, formatAddress } from '../../src/smfs/format';
import { SmfsError } from '../../src/smfs/errors';
import { Rng } from '../helpers/packets';
import { withDir } from '../helpers/smfs';
import * as files from '../../src/smfs/files';

async function refused(p: Promise<unknown>, code: string): Promise<SmfsError> {
  try {
    await p;
  } catch (err) {
    assert.instance(err, SmfsError);
    assert.is((err as SmfsError).code, code, (err as Error).message);
    return err as SmfsError;
  }
  assert.unreachable(`expected ${code}, it succeeded`);
  throw new Error('unreachable');
}

// The store's file calls, real; withFiles runs fn with some of them replaced, then puts them back.
type FileCalls = { writeAllAt: typeof files.writeAllAt; fdatasync: typeof files.fdatasync };
const REAL: FileCalls = { writeAllAt: files.writeAllAt, fdatasync: files.fdatasync };
async function withFiles<T>(patch: Partial<FileCalls>, fn: () => Promise<T>): Promise<T> {
  Object.assign(files, patch);
  try {
    return await fn();
  } finally {
    Object.assign(files, REAL);
  }
}

const log = suite('smfs log store');

log('CRC-32: the native function and the table agree, also carried across buffers', () => {
  const rng = new Rng(3);
  for (const n of [0, 1, 7, 64, 1000, 65537]) {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) b[i] = rng.int(0, 255);
    assert.is(crc32(b), crc32Table(b), `length ${n}`);
    const cut = Math.floor(n / 3);
    assert.is(crc32(b.subarray(cut), crc32(b.subarray(0, cut))), crc32(b));
    assert.is(crc32Table(b.subarray(cut), crc32Table(b.subarray(0, cut))), crc32(b));
  }
  assert.is(crc32(Buffer.from('123456789')), 0xcbf43926); // the check value of CRC-32/ISO-HDLC
});

log('CRC-32 combined: the CRC of a ++ b from the CRCs of a and b and the length of b', () => {
  const rng = new Rng(5);
  for (const [na, nb] of [[0, 0], [0, 9], [9, 0], [1, 1], [100, 4096], [4096, 4096], [12, 4096], [65537, 3], [7, 1 << 20]]) {
    for (let round = 0; round < 2; round++) { // the second time from the kept operator
      const a = Buffer.alloc(na);
      const b = Buffer.alloc(nb);
      for (let i = 0; i < na; i++) a[i] = rng.int(0, 255);
      for (let i = 0; i < nb; i++) b[i] = rng.int(0, 255);
      assert.is(crc32Combine(crc32(a), crc32(b), nb), crc32(Buffer.concat([a, b])), `${na} + ${nb} bytes`);
    }
  }
});

log('a group across logs gets its addresses in order and reads back, also after reopening', async () => {
  await withDir('log', async (dir) => {
    let store = await LogStore.open(dir, { segmentBytes: 4096 });
    await store.createLog(1);
    await store.createLog(7);
    const group = [
      { log: 7, data: Buffer.from('seven-a') },
      { log: 1, data: Buffer.from('one-a') },
      { log: 7, data: Buffer.from('') },
      { log: 1, data: randomBytes(3000) },
    ];
    const a = await store.append(group);
    assert.is(a.length, 4);
    assert.equal(a.map((x) => x.log), [7, 1, 7, 1]);
    assert.ok(a[2].offset > a[0].offset && a[3].offset > a[1].offset, 'later records of a log come later in it');
    for (let i = 0; i < 4; i++) assert.ok((await store.read(a[i])).data.equals(group[i].data), `record ${i}`);
    const b = await store.append([{ log: 1, data: randomBytes(2000) }]);
    assert.is(b[0].segment, 1, 'a part that does not fit starts the next segment');
    assert.is(store.lastSeq, 2);
    assert.is(store.durableSeq, 2, 'fsync always: answered means on disk');
    await store.close();
    store = await LogStore.open(dir, { segmentBytes: 4096 });
    assert.equal(store.logIds(), [1, 7]);
    assert.is(store.lastSeq, 2);
    assert.equal(store.recovery.truncated, []);
    for (let i = 0; i < 4; i++) assert.ok((await store.read(a[i])).data.equals(group[i].data), `record ${i} after reopening`);
    const c = await store.append([{ log: 1, data: Buffer.from('x') }]);
    assert.ok(c[0].segment === 1 && c[0].offset > b[0].offset, 'appends go on after the last record');
    assert.is(store.lastSeq, 3);
    await store.close();
  });
});

log('a group whose write fails in one log is taken back in every log, while the other parts are still being written; the store goes on', async () => {
  await withDir('log-fail', async (dir) => {
    const store = await LogStore.open(dir);
    for (const id of [1, 2, 3, 4]) await store.createLog(id);
    const first = await store.append([1, 2, 3, 4].map((id) => ({ log: id, data: Buffer.from(`first-${id}`) })));
    const ends = store.ends();
    const sizes = () => [1, 2, 3, 4].map((id) => fs.statSync(path.join(dir, 'logs', String(id), '0000000000.seg')).size);
    const before = sizes();
    // The part of log 3 fails at once; the other three are written late, after it failed.
    let slow = 0;
    const writeAllAt: typeof files.writeAllAt = async (fd, buffers, position) => {
      if (buffers.some((b) => Buffer.from(b).includes('second-3'))) throw Object.assign(new Error('EIO: i/o error, write'), { code: 'EIO' });
      slow++;
      await new Promise((resolve) => setTimeout(resolve, 30));
      return REAL.writeAllAt(fd, buffers, position);
    };
    await withFiles({ writeAllAt }, () => refused(store.append([1, 2, 3, 4].map((id) => ({ log: id, data: Buffer.from(`second-${id}`) }))), 'SMFS_ERR_IO'));
    assert.is(slow, 3, 'the three other parts were under way when log 3 failed');
    assert.equal(store.ends(), ends, 'every log ends where it did');
    assert.equal(sizes(), before, 'and so does every segment file: the late writes were taken back too');
    assert.is(store.lastSeq, 1);
    const third = await store.append([1, 2, 3, 4].map((id) => ({ log: id, data: Buffer.from(`third-${id}`) })));
    assert.is(store.lastSeq, 2);
    await store.close();
    const reopened = await LogStore.open(dir);
    assert.is(reopened.lastSeq, 2);
    assert.equal(reopened.recovery.truncated, []);
    for (const [k, a] of [...first, ...third].entries()) assert.ok((await reopened.read(a)).data.equals(Buffer.from(`${k < 4 ? 'first' : 'third'}-${(k % 4) + 1}`)));
    await reopened.close();
  });
});

log('fsync always: the next batch is written while the last one is fsynced, and every answer still comes after its own fsync, in order', async () => {
  await withDir('log-overlap', async (dir) => {
    const store = await LogStore.open(dir);
    await store.createLog(1);
    let syncing = 0;
    let writesWhileSyncing = 0;
    let syncsStarted = 0;
    let lastDoneStart = 0;                          // the latest-started fsync that has finished
    const writtenAfter = new Map<string, number>(); // each append's data: fsyncs started before its write ended
    const fdatasync: typeof files.fdatasync = async (fd) => {
      const start = ++syncsStarted;
      syncing++;
      await new Promise((resolve) => setTimeout(resolve, 20));
      await REAL.fdatasync(fd);
      syncing--;
      lastDoneStart = Math.max(lastDoneStart, start);
    };
    const writeAllAt: typeof files.writeAllAt = async (fd, buffers, position) => {
      if (syncing > 0) writesWhileSyncing++;
      await REAL.writeAllAt(fd, buffers, position);
      const text = Buffer.concat(buffers).toString('latin1');
      for (const m of text.matchAll(/<append (\d+)>/g)) writtenAfter.set(m[1], syncsStarted);
    };
    await withFiles({ fdatasync, writeAllAt }, async () => {
      const order: number[] = [];
      const early: string[] = [];
      await Promise.all(Array.from({ length: 40 }, (_, i) => (async () => {
        // One at a time into the queue, so that they make several batches.
        await new Promise((resolve) => setTimeout(resolve, i));
        await store.append([{ log: 1, data: Buffer.from(`<append ${i}>`) }]);
        order.push(i);
        // An fsync that started after this append's write ended has finished.
        if (!(lastDoneStart > writtenAfter.get(String(i))!)) early.push(`append ${i}`);
      })()));
      assert.ok(writesWhileSyncing > 0, 'groups were written while an fsync was under way');
      assert.equal(early, [], 'no append answered before an fsync that began after its write');
      assert.equal(order, [...order].sort((a, b) => a - b), 'answers in the order asked');
    });
    assert.is(store.durableSeq, 40);
    await store.close();
  });
});

log('an fsync that fails while a sync waits behind it: the sync is refused, and nothing is marked durable', async () => {
  await withDir('log-sync-fail', async (dir) => {
    const store = await LogStore.open(dir);
    await store.createLog(1);
    let writing!: () => void;
    const written = new Promise<void>((resolve) => { writing = resolve; });
    // The group's write is slow, so the sync is queued behind it; then its fsync fails.
    const writeAllAt: typeof files.writeAllAt = async (fd, buffers, position) => {
      writing();
      await new Promise((resolve) => setTimeout(resolve, 10));
      return REAL.writeAllAt(fd, buffers, position);
    };
    const fdatasync: typeof files.fdatasync = async () => {
      await new Promise((resolve) => setTimeout(resolve, 10));
      throw Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' });
    };
    await withFiles({ fdatasync, writeAllAt }, async () => {
      const append = store.append([{ log: 1, data: Buffer.from('lost') }]);
      append.catch(() => undefined);
      await written;
      const sync = store.sync();
      sync.catch(() => undefined);
      await refused(append, 'SMFS_ERR_IO');
      await refused(sync, 'SMFS_ERR_IO');
    });
    assert.is(store.durableSeq, 0, 'the failed group is not under the durable mark');
    await refused(store.append([{ log: 1, data: Buffer.from('after') }]), 'SMFS_ERR_IO');
    await store.close().catch(() => undefined);
  });
});

log('a segment is sealed (its fsync done) before the next one starts, also when the last batch\'s fsync of it is still under way', async () => {
  await withDir('log-seal', async (dir) => {
    const store = await LogStore.open(dir, { segmentBytes: 4096 });
    await store.createLog(1);
    const pending = new Set<number>();
    let headersWritten = 0;
    const early: string[] = [];
    const appends: Promise<unknown>[] = [];
    // Each append takes most of a segment, and the next is asked for once the last is written,
    // so it is written (in a segment of its own) while the last one's batch is fsynced.
    const appendNext = (): void => {
      if (appends.length < 30) appends.push(store.append([{ log: 1, data: Buffer.alloc(3000, appends.length) }]));
    };
    const fdatasync: typeof files.fdatasync = async (fd) => {
      pending.add(fd);
      await new Promise((resolve) => setTimeout(resolve, 5));
      try {
        await REAL.fdatasync(fd);
      } finally {
        pending.delete(fd);
      }
    };
    const writeAllAt: typeof files.writeAllAt = async (fd, buffers, position) => {
      // A new segment's header: every fsync of another file must be done by now.
      if (position === 0) {
        headersWritten++;
        if ([...pending].some((p) => p !== fd)) early.push(`segment header ${headersWritten} written while an fsync of an earlier segment ran`);
      }
      await REAL.writeAllAt(fd, buffers, position);
      if (position !== 0) appendNext();
    };
    await withFiles({ fdatasync, writeAllAt }, async () => {
      appendNext();
      // Each append is asked for before the one before it is answered.
      while (appends.length < 30) await Promise.all(appends);
      await Promise.all(appends);
    });
    assert.is(headersWritten, 29, 'every append but the first started a segment');
    assert.equal(early, []);
    await store.close();
  });
});

log('a record larger than a segment gets a segment of its own', async () => {
  await withDir('log', async (dir) => {
    const store = await LogStore.open(dir, { segmentBytes: 4096 });
    await store.createLog(0);
    const big = randomBytes(10_000);
    const [x] = await store.append([{ log: 0, data: Buffer.from('small') }]);
    const [y] = await store.append([{ log: 0, data: big }]);
    const [z] = await store.append([{ log: 0, data: Buffer.from('after') }]);
    assert.equal([x.segment, y.segment, z.segment], [0, 1, 2]);
    assert.ok((await store.read(y)).data.equals(big));
    await store.close();
  });
});

log('bad requests are refused with their codes and change nothing', async () => {
  await withDir('log', async (dir) => {
    const store = await LogStore.open(dir, { segmentBytes: 4096 });
    await store.createLog(1);
    const [a] = await store.append([{ log: 1, data: Buffer.from('keep') }]);
    await refused(store.createLog(1), 'SMFS_ERR_LOG_EXISTS');
    await refused(store.createLog(-1), 'SMFS_ERR_REQUEST');
    await refused(store.createLog(2 ** 32 - 1), 'SMFS_ERR_REQUEST');
    await refused(store.append([]), 'SMFS_ERR_REQUEST');
    await refused(store.append([{ log: 1, data: Buffer.from('a') }, { log: 2, data: Buffer.from('b') }]), 'SMFS_ERR_UNKNOWN_LOG');
    await refused(store.append([{ log: 1, data: Buffer.alloc(LIMITS.recordBytes + 1) }]), 'SMFS_ERR_TOO_LARGE');
    await refused(store.append([{ log: 1, data: Buffer.from('abc'), crc: crc32(Buffer.from('abd')) }]), 'SMFS_ERR_CHECKSUM');
    await refused(store.read({ log: 2, segment: 0, offset: 32 }), 'SMFS_ERR_UNKNOWN_LOG');
    await refused(store.read({ log: 1, segment: 5, offset: 32 }), 'SMFS_ERR_ADDRESS');
    await refused(store.read({ log: 1, segment: 0, offset: a.offset + 1 }), 'SMFS_ERR_ADDRESS');
    await refused(store.read({ log: 1, segment: 0, offset: 1 << 20 }), 'SMFS_ERR_ADDRESS');
    await refused(store.read({ log: 1, segment: 0, offset: -1 }), 'SMFS_ERR_ADDRESS');
    await refused(store.free([a, { ...a, offset: a.offset + 2 }]), 'SMFS_ERR_ADDRESS');
    await refused(store.free([a, a]), 'SMFS_ERR_REQUEST');
    assert.ok((await store.read(a)).data.equals(Buffer.from('keep')), 'a refused free frees nothing');
    assert.is(store.lastSeq, 1, 'no refused request took a sequence number');
    await store.free([a]);
    await refused(store.read(a), 'SMFS_ERR_FREED');
    await refused(store.free([a]), 'SMFS_ERR_FREED');
    const st = store.stat().logs[0];
    assert.equal([st.liveRecords, st.freedRecords], [0, 1]);
    await store.close();
    await refused(store.read(a), 'SMFS_ERR_CLOSED');
    await refused(store.append([{ log: 1, data: Buffer.from('late') }]), 'SMFS_ERR_CLOSED');
  });
});

log('one server per directory: a second open is refused; a dead holder\'s lock is taken over', async () => {
  await withDir('log', async (dir) => {
    const store = await LogStore.open(dir);
    await refused(LogStore.open(dir), 'SMFS_ERR_LOCKED');
    await store.close();
    // A holder that died without releasing: its pid is gone (reaped by spawnSync).
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
    fs.writeFileSync(path.join(dir, 'LOCK'), `${dead.stdout} -\n`);
    const again = await LogStore.open(dir);
    await again.close();
    assert.not.ok(fs.existsSync(path.join(dir, 'LOCK')), 'close releases the lock');
  });
});

log('fsync interval: answered at once, on disk within the interval without anyone asking', async () => {
  await withDir('log', async (dir) => {
    const store = await LogStore.open(dir, { fsync: 'interval', fsyncIntervalMs: 5 });
    await store.createLog(1);
    await store.append([{ log: 1, data: Buffer.from('a') }]);
    await store.append([{ log: 1, data: Buffer.from('b') }]);
    assert.is(store.lastSeq, 2);
    const deadline = Date.now() + 5000;
    while (store.durableSeq < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    assert.is(store.durableSeq, 2, 'the interval fsync moved the durable mark');
    await store.close();
    const never = await LogStore.open(dir, { fsync: 'never' });
    await never.append([{ log: 1, data: Buffer.from('c') }]);
    assert.is(never.durableSeq, 2, 'never: not on disk until asked');
    assert.is(await never.sync(), 3);
    await never.close();
  });
});

// A random run of appends (groups over several logs, some records larger than a segment),
// frees (some refused), reads, cleans and reopenings, checked at every step against a model
// of what each address should hold.
async function modelRun(seed: number, steps: number, cleaned: { compacted: number; deleted: number }): Promise<void> {
  const rng = new Rng(seed);
  await withDir('model', async (dir) => {
    const opts = { segmentBytes: 4096, fsync: (['always', 'never', 'interval'] as const)[seed % 3] };
    let store = await LogStore.open(dir, opts);
    const logs = [3, 4, 9];
    for (const id of logs) await store.createLog(id);
    const model = new Map<string, { address: Address; data: Buffer; live: boolean }>();
    const lastOffset = new Map<number, [number, number]>();
    const pick = (live: boolean) => {
      const all = [...model.values()].filter((r) => r.live === live);
      return all.length ? all[rng.int(0, all.length - 1)] : undefined;
    };
    const where = (step: number) => `seed ${seed} step ${step}`;
    for (let step = 0; step < steps; step++) {
      const roll = rng.next();
      if (roll < 0.4) {
        const n = rng.int(1, 5);
        const group = Array.from({ length: n }, () => {
          const size = rng.next() < 0.03 ? rng.int(4096, 9000) : rng.int(0, 700);
          const data = Buffer.alloc(size);
          for (let i = 0; i < size; i += 97) data[i] = rng.int(0, 255);
          return { log: logs[rng.int(0, logs.length - 1)], data };
        });
        const addresses = await store.append(group);
        addresses.forEach((a, i) => {
          assert.is(a.log, group[i].log, where(step));
          const prev = lastOffset.get(a.log);
          assert.ok(!prev || a.segment > prev[0] || (a.segment === prev[0] && a.offset > prev[1]), `${where(step)}: addresses grow in a log`);
          lastOffset.set(a.log, [a.segment, a.offset]);
          assert.not.ok(model.has(formatAddress(a)), `${where(step)}: address ${formatAddress(a)} given twice`);
          model.set(formatAddress(a), { address: a, data: group[i].data, live: true });
        });
      } else if (roll < 0.6) {
        const chosen = new Set<string>();
        for (let k = rng.int(1, 4); k > 0; k--) {
          const r = pick(true);
          if (r) chosen.add(formatAddress(r.address));
        }
        const withFreed = rng.next() < 0.2 ? pick(false) : undefined;
        if (chosen.size === 0) continue;
        const addrs = [...chosen].map((k) => model.get(k)!.address);
        if (withFreed) {
          await refused(store.free([...addrs, withFreed.address]), 'SMFS_ERR_FREED');
        } else {
          await store.free(addrs);
          for (const k of chosen) model.get(k)!.live = false;
        }
      } else if (roll < 0.9) {
        const r = rng.next() < 0.8 ? pick(true) : pick(false);
        if (!r) continue;
        if (r.live) assert.ok((await store.read(r.address)).data.equals(r.data), `${where(step)}: read ${formatAddress(r.address)}`);
        else await refused(store.read(r.address), 'SMFS_ERR_FREED');
      } else if (roll < 0.96) {
        const c = await store.clean({ maxLiveRatio: rng.next() });
        cleaned.compacted += c.segmentsCompacted;
        cleaned.deleted += c.segmentsDeleted;
      } else {
        await store.close();
        store = await LogStore.open(dir, opts);
        assert.equal(store.recovery.truncated, [], `${where(step)}: a clean close leaves nothing torn`);
      }
    }
    // Everything, at the end and once more after a reopening.
    for (let round = 0; round < 2; round++) {
      for (const r of model.values()) {
        if (r.live) assert.ok((await store.read(r.address)).data.equals(r.data), `seed ${seed}: final read ${formatAddress(r.address)}`);
        else await refused(store.read(r.address), 'SMFS_ERR_FREED');
      }
      for (const id of logs) {
        const live = [...store.entries(id)].filter((e) => !e.freed).map((e) => formatAddress(e.address));
        const expected = [...model.values()].filter((r) => r.live && r.address.log === id).map((r) => formatAddress(r.address));
        assert.equal(live, expected, `seed ${seed}: log ${id}'s live records, in address order`);
        const st = store.stat().logs.find((l) => l.id === id)!;
        assert.is(st.liveRecords, expected.length);
      }
      await store.close();
      store = await LogStore.open(dir, opts);
    }
    await store.close();
  });
}

log('random appends, frees, reads, cleans and reopenings agree with a model', async () => {
  const cleaned = { compacted: 0, deleted: 0 };
  for (const seed of [1, 2, 3, 4]) await modelRun(seed, 600, cleaned);
  assert.ok(cleaned.compacted > 10 && cleaned.deleted > 10, `the runs cleaned: ${JSON.stringify(cleaned)}`);
});

log.run();
