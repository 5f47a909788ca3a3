import fs from 'node:fs';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { LogStore } from '../../src/smfs/store';
import type { FsyncPolicy } from '../../src/smfs/store';
import { LIMITS, formatAddress } from '../../src/smfs/format';
import { Rng } from '../helpers/packets';
import { connectStorage, readTag, startStorage, taggedRecord, withDir } from '../helpers/smfs';

const LOGS = [1, 2, 3];
const PIPELINE = 4;          // groups in flight at once
const WANT_TORN = 6;         // rounds whose kill landed inside a group
const MAX_ROUNDS = 30;
const BIG_WRITTEN = 2 * 1024 * 1024;

interface Shape {
  logs: number[];            // the log of each record, in the group's order
}

// Reads every record of every log back and checks it against what was sent: each group is
// there whole (every record, once, in the log it was sent to) or not at all.
async function groupsOnDisk(store: LogStore, shapes: Map<number, Shape>): Promise<Set<number>> {
  const found = new Map<number, Map<number, number>>(); // group -> record index -> log
  for (const log of LOGS) {
    for (const e of store.entries(log)) {
      const tag = readTag((await store.read(e.address)).data);
      assert.ok(tag, `the record at ${formatAddress(e.address)} is one we sent, intact`);
      const records = found.get(tag!.group) ?? new Map<number, number>();
      assert.not.ok(records.has(tag!.index), `group ${tag!.group} record ${tag!.index} is there once`);
      records.set(tag!.index, log);
      found.set(tag!.group, records);
    }
  }
  for (const [group, records] of found) {
    const shape = shapes.get(group);
    assert.ok(shape, `group ${group} was sent`);
    assert.is(records.size, shape!.logs.length, `group ${group} is whole: ${records.size} of ${shape!.logs.length} records`);
    shape!.logs.forEach((log, i) => assert.is(records.get(i), log, `group ${group} record ${i} is in log ${log}`));
  }
  return new Set(found.keys());
}

// The bytes in every segment of every log, as the file system has them now.
function logBytes(dir: string): number {
  let n = 0;
  for (const log of LOGS) {
    const d = path.join(dir, 'logs', String(log));
    for (const f of fs.readdirSync(d)) n += fs.statSync(path.join(d, f), { throwIfNoEntry: false })?.size ?? 0;
  }
  return n;
}

const crash = suite('smfs crash');

crash('SIGKILL in the middle of groups: after restart every group is all or none, the log is a prefix of what was sent, nothing answered is lost', async () => {
  await withDir('kill', async (dir) => {
    const rng = new Rng(2024);
    const setup = await LogStore.open(dir);
    for (const id of LOGS) await setup.createLog(id);
    await setup.close();
    const shapes = new Map<number, Shape>();
    let present = new Set<number>();
    let nextGroup = 0;
    let torn = 0;
    let rounds = 0;
    while (torn < WANT_TORN && rounds < MAX_ROUNDS) {
      rounds++;
      const fsync: FsyncPolicy = rounds % 3 === 0 ? 'always' : 'never';
      const server = await startStorage(dir, ['--fsync', fsync, '--segment-size', '2M']);
      const client = await connectStorage(server.port);
      const sent: number[] = [];
      const answered = new Set<number>();
      const killAfter = rng.int(2, 8);
      let killed = false;
      let inFlight = 0;
      await new Promise<void>((resolve) => {
        // After killAfter answers the pipeline drains; then a group with one record of 16 MB
        // goes first, PIPELINE - 1 groups behind it, and the server is killed as soon as the
        // logs are seen to have 2 MB of it: while that record is still being written (the
        // parts of a group are written at once, so a kill at any other moment seldom lands
        // inside one).
        const sendOne = (big = false): void => {
          const group = nextGroup++;
          const n = rng.int(2, 6);
          const records = Array.from({ length: n }, (_, i) => ({ log: LOGS[rng.int(0, LOGS.length - 1)], data: taggedRecord(group, i, n, big && i === 0 ? LIMITS.recordBytes : rng.int(16 * 1024, 256 * 1024)) }));
          shapes.set(group, { logs: records.map((r) => r.log) });
          sent.push(group);
          inFlight++;
          client.append(records).then(() => {
            inFlight--;
            answered.add(group);
            if (killed) return;
            if (answered.size < killAfter) return sendOne();
            if (inFlight > 0 || answered.size > killAfter + PIPELINE) return;
            const before = logBytes(dir);
            sendOne(true);
            for (let i = 1; i < PIPELINE; i++) sendOne();
            const watch = (): void => {
              if (killed) return;
              // 2 MB more than before: the big record is being written (a new segment's header
              // or the group's other records are less).
              if (logBytes(dir) - before < BIG_WRITTEN) return void setImmediate(watch);
              killed = true;
              server.child.kill('SIGKILL');
              resolve();
            };
            watch();
          }, () => { inFlight--; });
        };
        for (let i = 0; i < PIPELINE; i++) sendOne();
        // A server that dies by itself ends the round too (and fails it, below).
        void server.exited.then(() => {
          killed = true;
          resolve();
        });
      });
      const exit = await server.exited;
      assert.is(exit.signal, 'SIGKILL');
      await client.close();

      const store = await LogStore.open(dir);
      const r = store.recovery;
      if (r.truncated.length > 0 || r.droppedGroups > 0) torn++;
      const now = await groupsOnDisk(store, shapes);
      for (const g of present) assert.ok(now.has(g), `round ${rounds}: group ${g}, there before, is still there`);
      for (const g of answered) assert.ok(now.has(g), `round ${rounds} (fsync ${fsync}): answered group ${g} survived the kill`);
      const fromThisRound = sent.filter((g) => now.has(g));
      assert.equal(fromThisRound, sent.slice(0, fromThisRound.length), `round ${rounds}: the groups kept are the first ones sent`);
      assert.is(now.size, present.size + fromThisRound.length, `round ${rounds}: nothing on disk that was not sent`);
      present = now;
      await store.close();
    }
    assert.ok(torn >= WANT_TORN, `${torn} of ${rounds} kills landed inside a group; the test needs ${WANT_TORN} to mean something`);
  });
});

crash.run();
