import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import path from 'node:path';
import { LogStore } from '../../src/smfs/store';
import type { Address } from '../../src/smfs/format';
import { formatAddress, segmentFileName } from '../../src/smfs/format';
import { SmfsError } from '../../src/smfs/errors';
import { Rng } from '../helpers/packets';
import { readTag, taggedRecord, withDir } from '../helpers/smfs';

interface Written {
  address: Address;
  data: Buffer;
  live: boolean;
}

async function fill(store: LogStore, logs: number[], groups: number, rng: Rng, first = 0): Promise<Written[]> {
  const out: Written[] = [];
  for (let g = 0; g < groups; g++) {
    const n = rng.int(1, 4);
    const recs = Array.from({ length: n }, (_, i) => ({ log: logs[rng.int(0, logs.length - 1)], data: taggedRecord(first + g, i, n, rng.int(12, 900)) }));
    const addrs = await store.append(recs);
    addrs.forEach((address, i) => out.push({ address, data: recs[i].data, live: true }));
  }
  return out;
}

async function isFreed(store: LogStore, a: Address): Promise<boolean> {
  try {
    await store.read(a);
    return false;
  } catch (err) {
    if (err instanceof SmfsError && err.code === 'SMFS_ERR_FREED') return true;
    throw err;
  }
}

// Every live record reads back as written, every freed one reads as freed.
async function checkAll(store: LogStore, written: Written[], what: string): Promise<void> {
  for (const w of written) {
    if (w.live) assert.ok((await store.read(w.address)).data.equals(w.data), `${what}: ${formatAddress(w.address)} reads back`);
    else assert.ok(await isFreed(store, w.address), `${what}: ${formatAddress(w.address)} stays freed`);
  }
}

const cleaner = suite('smfs cleaner');

cleaner('free at random, clean, reopen, repeat: every live record reads back, no freed one comes back', async () => {
  await withDir('clean', async (dir) => {
    const rng = new Rng(11);
    const opts = { segmentBytes: 8192 };
    let store = await LogStore.open(dir, opts);
    await store.createLog(1);
    await store.createLog(2);
    const written = await fill(store, [1, 2], 300, rng);
    let groups = 300;
    for (let round = 0; round < 4; round++) {
      const frees = written.filter((w) => w.live && rng.next() < 0.6);
      for (let i = 0; i < frees.length; i += 7) {
        const batch = frees.slice(i, i + 7);
        await store.free(batch.map((w) => w.address));
        for (const w of batch) w.live = false;
      }
      const before = store.stat();
      const report = await store.clean({ maxLiveRatio: round === 3 ? 1 : 0.5 });
      const after = store.stat();
      assert.ok(report.segmentsCompacted + report.segmentsDeleted > 0, `round ${round}: something was cleaned`);
      assert.ok(report.bytesAfter < report.bytesBefore, `round ${round}: space came back`);
      const bytes = (s: typeof before) => s.logs.reduce((n, l) => n + l.bytes, 0);
      assert.is(bytes(before) - bytes(after), report.bytesBefore - report.bytesAfter);
      assert.equal(after.logs.map((l) => l.liveRecords), before.logs.map((l) => l.liveRecords), 'cleaning frees nothing live');
      await checkAll(store, written, `round ${round}, after cleaning`);
      await store.close();
      store = await LogStore.open(dir, opts);
      await checkAll(store, written, `round ${round}, reopened`);
      written.push(...await fill(store, [1, 2], 40, rng, groups));
      groups += 40;
    }
    // Tags survive too: every live record is one of ours, once.
    const seen = new Set<string>();
    for (const id of [1, 2]) {
      for (const e of store.entries(id)) {
        if (e.freed) continue;
        const tag = readTag((await store.read(e.address)).data)!;
        assert.ok(tag);
        const key = `${tag.group}/${tag.index}`;
        assert.not.ok(seen.has(key));
        seen.add(key);
      }
    }
    assert.is(seen.size, written.filter((w) => w.live).length);
    await store.close();
  });
});

cleaner('frees kept in a cleaned segment still hold after a restart when their records are elsewhere', async () => {
  await withDir('carry', async (dir) => {
    const opts = { segmentBytes: 4096 };
    let store = await LogStore.open(dir, opts);
    await store.createLog(1);
    const rec = (n: number) => ({ log: 1, data: Buffer.alloc(900, n) });
    // Segment 0: four records. Segment 1: two records, then the free of segment 0's first
    // two, then enough to seal it.
    const seg0 = await store.append([rec(1), rec(2), rec(3), rec(4)]);
    assert.ok(seg0.every((a) => a.segment === 0));
    const [x] = await store.append([rec(5)]);
    assert.is(x.segment, 1);
    await store.free([seg0[0], seg0[1]]);
    const [y, z] = await store.append([rec(6), rec(7)]);
    await store.append([rec(8), rec(9), rec(10)]);
    assert.is(store.stat().logs[0].segments, 3);
    // Segment 1 mostly freed; segment 0 half live, left alone at 0.4.
    await store.free([x, y, z]);
    const report = await store.clean({ maxLiveRatio: 0.4 });
    assert.is(report.segmentsDeleted + report.segmentsCompacted, 1);
    const seg1 = fs.readFileSync(path.join(dir, 'logs', '1', segmentFileName(1)));
    assert.is(seg1[6], 2, 'segment 1 is compacted');
    assert.ok(seg1.length < 100, 'it holds no records, only the frees of segment 0\'s records');
    await store.close();
    store = await LogStore.open(dir, opts);
    assert.ok(await isFreed(store, seg0[0]));
    assert.ok(await isFreed(store, seg0[1]));
    assert.ok((await store.read(seg0[2])).data.equals(Buffer.alloc(900, 3)));
    // Once segment 0 is cleaned too (segments go in order), nothing needs those frees and
    // segment 1 goes in the same pass.
    const second = await store.clean({ maxLiveRatio: 1 });
    assert.equal([second.segmentsCompacted, second.segmentsDeleted], [1, 1]);
    assert.not.ok(fs.existsSync(path.join(dir, 'logs', '1', segmentFileName(1))));
    assert.ok(await isFreed(store, x), 'an address in a deleted segment reads as freed');
    await store.close();
    store = await LogStore.open(dir, opts);
    assert.ok(await isFreed(store, seg0[1]));
    assert.ok((await store.read(seg0[3])).data.equals(Buffer.alloc(900, 4)));
    const [next] = await store.append([rec(11)]);
    assert.ok(next.segment >= 2, 'segment numbers are never used twice');
    await store.close();
  });
});

cleaner('reads and frees while the cleaner runs see the right records', async () => {
  await withDir('busy', async (dir) => {
    const rng = new Rng(5);
    const store = await LogStore.open(dir, { segmentBytes: 8192 });
    await store.createLog(1);
    const written = await fill(store, [1], 400, rng);
    for (const w of written) if (rng.next() < 0.7) w.live = false;
    await store.free(written.filter((w) => !w.live).map((w) => w.address));
    const cleaning = store.clean({ maxLiveRatio: 0.9 });
    let done = false;
    void cleaning.finally(() => { done = true; });
    let reads = 0;
    const freedDuring: Written[] = [];
    while (!done) {
      const live = written.filter((w) => w.live);
      const w = live[rng.int(0, live.length - 1)];
      if (rng.next() < 0.1) {
        await store.free([w.address]);
        w.live = false;
        freedDuring.push(w);
      } else {
        assert.ok((await store.read(w.address)).data.equals(w.data), `read ${formatAddress(w.address)} while cleaning`);
        reads++;
      }
    }
    const report = await cleaning;
    assert.ok(report.segmentsCompacted > 0);
    assert.ok(reads > 0, 'reads ran beside the cleaner');
    await checkAll(store, written, 'after cleaning');
    await store.close();
    const again = await LogStore.open(dir, { segmentBytes: 8192 });
    await checkAll(again, written, 'reopened');
    for (const w of freedDuring) assert.ok(await isFreed(again, w.address));
    await again.close();
  });
});

cleaner.run();
