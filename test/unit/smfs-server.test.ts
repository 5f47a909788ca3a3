import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { StorageClient } from '../../src/smfs/client';
import { LIMITS } from '../../src/smfs/format';
import type { Address } from '../../src/smfs/format';
import { LogStore } from '../../src/smfs/store';
import { StorageServer } from '../../src/smfs/server';
import { ALL_LOGS, FrameReader, MAX_FRAME, Op, encodeAddress, encodeFrame, encodeU32 } from '../../src/smfs/wire';
import { crc32 } from '../../src/smfs/checksum';
import { SMFS_ERROR_CODES } from '../../src/smfs/errors';
import { SMFS_BIN, connectStorage, refusedWith, startStorage, testCredential, withDir } from '../helpers/smfs';

function appendBody(records: { log: number; data: Buffer; crc?: number; length?: number }[], flags = 0): Buffer[] {
  const body = [encodeU32(flags), encodeU32(records.length)];
  for (const r of records) {
    const h = Buffer.alloc(12);
    h.writeUInt32BE(r.log, 0);
    h.writeUInt32BE(r.length ?? r.data.length, 4);
    h.writeUInt32BE(r.crc ?? crc32(r.data), 8);
    body.push(h, r.data);
  }
  return body;
}

function frame(op: number, id: number, body: Buffer[] = []): Buffer {
  return Buffer.concat(encodeFrame(op, id, body));
}

// An in-process server on a free port, with a client; closed and removed after.
async function withServer(fn: (c: StorageClient, server: StorageServer, dir: string) => Promise<void>): Promise<void> {
  await withDir('server', async (dir) => {
    const store = await LogStore.open(dir, { segmentBytes: 16 * 1024 });
    const server = await StorageServer.listen(store, { credential: testCredential(), port: 0 });
    const client = await connectStorage(server.address.port);
    try {
      await fn(client, server, dir);
    } finally {
      await client.close();
      await server.close();
    }
  });
}

const server = suite('smfs storage server');

server('create-log, append, read, free, clean, stat and sync over TCP', async () => {
  await withServer(async (c) => {
    await c.createLog(1);
    await c.createLog(2);
    const data = Array.from({ length: 40 }, (_, i) => Buffer.alloc(3000 + i, i));
    const addrs: Address[] = [];
    for (let i = 0; i < 40; i += 4) {
      addrs.push(...await c.append(data.slice(i, i + 4).map((d, k) => ({ log: 1 + (k % 2), data: d }))));
    }
    for (let i = 0; i < 40; i++) assert.ok((await c.read(addrs[i])).equals(data[i]), `record ${i}`);
    await c.free(addrs.filter((_, i) => i % 4 !== 0));
    await refusedWith(c.read(addrs[1]), 'SMFS_ERR_FREED');
    const report = await c.clean({ maxLiveRatio: 0.5 });
    assert.ok(report.segmentsCompacted > 0);
    assert.ok(report.bytesAfter < report.bytesBefore);
    for (let i = 0; i < 40; i += 4) assert.ok((await c.read(addrs[i])).equals(data[i]), `record ${i} after cleaning`);
    const st = await c.stat();
    assert.equal(st.logs.map((l) => l.liveRecords), [10, 0]);
    assert.is(st.fsync, 'always');
    assert.is(st.recovery.truncated.length, 0);
    assert.ok(st.server.requests >= 50);
    assert.is(st.server.refused.SMFS_ERR_FREED, 1);
    assert.is(await c.sync(), st.lastSeq);
  });
});

server('requests pipelined on one connection are answered by id, and changes apply in the order sent', async () => {
  await withServer(async (c) => {
    await c.createLog(3);
    const sends = Array.from({ length: 200 }, (_, i) => c.append([{ log: 3, data: Buffer.from(`record ${i}`) }]));
    const addrs = (await Promise.all(sends)).map((a) => a[0]);
    for (let i = 1; i < addrs.length; i++) assert.ok(addrs[i].segment > addrs[i - 1].segment || addrs[i].offset > addrs[i - 1].offset, 'in the order sent');
    const reads = await Promise.all(addrs.map((a) => c.read(a)));
    reads.forEach((r, i) => assert.is(r.toString(), `record ${i}`));
  });
});

server('bad requests get their error codes and the connection goes on', async () => {
  await withServer(async (c) => {
    await c.createLog(1);
    const [good] = await c.append([{ log: 1, data: Buffer.from('good') }]);
    const stillWorks = async (what: string) => assert.is((await c.read(good)).toString(), 'good', `after ${what}`);
    const cases: [string, number, Buffer[], string][] = [
      ['unknown log', Op.append, appendBody([{ log: 9, data: Buffer.from('x') }]), 'SMFS_ERR_UNKNOWN_LOG'],
      ['read of an unknown log', Op.read, [encodeAddress({ log: 9, segment: 0, offset: 32 })], 'SMFS_ERR_UNKNOWN_LOG'],
      ['address out of range', Op.read, [encodeAddress({ ...good, segment: 7 })], 'SMFS_ERR_ADDRESS'],
      ['address inside a record', Op.read, [encodeAddress({ ...good, offset: good.offset + 3 })], 'SMFS_ERR_ADDRESS'],
      ['free out of range', Op.free, [encodeU32(1), encodeAddress({ ...good, offset: 1 << 30 })], 'SMFS_ERR_ADDRESS'],
      ['oversize record', Op.append, appendBody([{ log: 1, data: Buffer.alloc(8), length: LIMITS.recordBytes + 1 }]), 'SMFS_ERR_TOO_LARGE'],
      ['too many records', Op.append, [encodeU32(0), encodeU32(LIMITS.groupRecords + 1)], 'SMFS_ERR_TOO_LARGE'],
      ['bad checksum', Op.append, appendBody([{ log: 1, data: Buffer.from('abc'), crc: 12345 }]), 'SMFS_ERR_CHECKSUM'],
      ['empty group', Op.append, appendBody([]), 'SMFS_ERR_REQUEST'],
      ['unknown append flags', Op.append, appendBody([{ log: 1, data: Buffer.from('x') }], 8), 'SMFS_ERR_REQUEST'],
      ['log exists', Op.createLog, [encodeU32(1)], 'SMFS_ERR_LOG_EXISTS'],
      ['log id out of range', Op.createLog, [encodeU32(ALL_LOGS)], 'SMFS_ERR_REQUEST'],
      ['body cut short', Op.append, appendBody([{ log: 1, data: Buffer.from('abcdef') }]).map((b, i, all) => (i === all.length - 1 ? b.subarray(0, 3) : b)), 'SMFS_ERR_FRAME'],
      ['bytes left over', Op.read, [encodeAddress(good), Buffer.from([0])], 'SMFS_ERR_FRAME'],
      ['unknown op', 42, [], 'SMFS_ERR_FRAME'],
      ['clean over 100%', Op.clean, [encodeU32(ALL_LOGS), Buffer.from([101])], 'SMFS_ERR_REQUEST'],
    ];
    for (const [what, op, body, code] of cases) {
      await refusedWith(c.request(op, body), code);
      await stillWorks(what);
    }
    // Frames wrong in their header, written by hand; each is answered under its id.
    const bad = frame(Op.read, 901, [encodeAddress(good)]);
    bad.writeUInt16BE(0x1234, 4);
    const wrongVersion = frame(Op.read, 902, [encodeAddress(good)]);
    wrongVersion[6] = 9;
    const answer = frame(Op.read | 0x80, 903, [encodeAddress(good)]);
    const short = Buffer.from([0, 0, 0, 3, 1, 2, 3]);
    for (const [what, bytes, id] of [['bad magic', bad, 901], ['wrong version', wrongVersion, 902], ['an answer sent as a request', answer, 903], ['a frame shorter than its header', short, 0]] as const) {
      const p = c.expect(id, id === 0 ? 0 : (bytes[7] & 0x7f));
      c.writeRaw(bytes);
      const message = await refusedWith(p, 'SMFS_ERR_FRAME');
      assert.ok(message.length > 0);
      await stillWorks(what);
    }
    // A good request and a bad one in one write, the good one after: both answered.
    const mixed = c.expect(904, Op.read);
    const after = c.expect(905, Op.read);
    c.writeRaw(Buffer.concat([frame(Op.read, 904, [encodeAddress({ ...good, segment: 99 })]), frame(Op.read, 905, [encodeAddress(good)])]));
    await refusedWith(mixed, 'SMFS_ERR_ADDRESS');
    assert.ok((await after).length > 0);
  });
});

server('a frame over the limit is answered TOO_LARGE and skipped without being held; one no frame could be long closes the connection', async () => {
  await withServer(async (c, srv) => {
    await c.createLog(1);
    const [good] = await c.append([{ log: 1, data: Buffer.from('good') }]);
    const length = MAX_FRAME + 1;
    const head = Buffer.alloc(12);
    head.writeUInt32BE(length, 0);
    head.writeUInt16BE(0x534d, 4);
    head[6] = 1;
    head[7] = Op.append;
    head.writeUInt32BE(77, 8);
    const p = c.expect(77, Op.append);
    c.writeRaw(head);
    const chunk = Buffer.alloc(1 << 20, 0xab);
    for (let left = length - 8; left > 0; left -= chunk.length) c.writeRaw(left >= chunk.length ? chunk : chunk.subarray(0, left));
    await refusedWith(p, 'SMFS_ERR_TOO_LARGE');
    assert.is((await c.read(good)).toString(), 'good', 'the next frame is read after the skipped one');
    // 2 GiB: the connection is answered and closed, the server goes on.
    head.writeUInt32BE(0x80000000, 0);
    head.writeUInt32BE(78, 8);
    const q = c.expect(78, Op.append);
    c.writeRaw(head);
    await refusedWith(q, 'SMFS_ERR_TOO_LARGE');
    await refusedWith(c.read(good), 'SMFS_ERR_CLOSED');
    const other = await connectStorage(srv.address.port);
    assert.is((await other.read(good)).toString(), 'good');
    await other.close();
  });
});

server('the frame reader holds nothing of a frame it skips: what it buffers stays under one chunk', () => {
  const reader = new FrameReader();
  const head = Buffer.alloc(12);
  head.writeUInt32BE(MAX_FRAME + 1, 0);
  head.writeUInt16BE(0x534d, 4);
  head[6] = 1;
  head[7] = Op.append;
  head.writeUInt32BE(9, 8);
  const first = reader.push(head);
  assert.is(first.length, 1);
  assert.is(first[0].kind, 'bad');
  const chunk = Buffer.alloc(64 * 1024, 0xab);
  let most = 0;
  for (let left = MAX_FRAME + 1 - 8; left > 0; left -= chunk.length) {
    assert.equal(reader.push(left >= chunk.length ? chunk : chunk.subarray(0, left)), []);
    most = Math.max(most, reader.buffered);
  }
  assert.ok(most <= chunk.length, `held ${most} bytes of a skipped frame`);
  assert.is(reader.buffered, 0);
});

server('smfs storage: SIGTERM answers what is in flight, closes the store and exits 0; restarted, the data is there', async () => {
  await withDir('cli', async (dir) => {
    const s = await startStorage(dir, ['--segment-size', '64K']);
    assert.is(s.listening.event, 'listening');
    assert.is(s.listening.segmentBytes, 65536);
    const c = await connectStorage(s.port);
    await c.createLog(4);
    const inFlight = Array.from({ length: 50 }, (_, i) => c.append([{ log: 4, data: Buffer.alloc(2000, i) }]).then((a) => a[0], () => undefined));
    await inFlight[0];
    s.child.kill('SIGTERM');
    const answered = (await Promise.all(inFlight)).filter((a): a is Address => a !== undefined);
    assert.ok(answered.length >= 1);
    const stopped = JSON.parse((await s.nextLine())!);
    assert.is(stopped.event, 'stopped');
    assert.is(stopped.signal, 'SIGTERM');
    const exit = await s.exited;
    assert.is(exit.code, 0, s.stderr());
    assert.not.ok(fs.existsSync(path.join(dir, 'LOCK')));
    await c.close();
    const again = await startStorage(dir);
    const recovery = again.listening.recovery as { truncated: unknown[]; lastSeq: number };
    assert.equal(recovery.truncated, [], 'a graceful stop leaves nothing torn');
    assert.ok(recovery.lastSeq >= answered.length);
    const c2 = await connectStorage(again.port);
    for (const a of answered) assert.is((await c2.read(a)).length, 2000);
    await c2.close();
    again.child.kill('SIGTERM');
    assert.is((await again.exited).code, 0);
  });
});

server('smfs storage refuses bad options with exit 2 and a directory in use with SMFS_ERR_LOCKED', async () => {
  await withDir('cliopts', async (dir) => {
    // Also the options of level 'tagged': coded shares at the primary, clients awaited at promote.
    const smfs = (...args: string[]) => spawnSync(process.execPath, [SMFS_BIN, ...args], { encoding: 'utf8', timeout: 30_000 });
    const cases: [string[], RegExp][] = [
      [['storage'], /--dir/],
      [['storage', '--dir', dir, '--fsync', 'sometimes'], /--fsync is one of always, interval, never.*MAELSTROM_ERR_CONFIG/],
      [['storage', '--dir', dir, '--segment-size', '1K'], /--segment-size is from 4096/],
      [['storage', '--dir', dir, '--segment-size', 'lots'], /--segment-size takes a size in bytes/],
      [['storage', '--dir', dir, '--port', '70000'], /--port is from 0 to 65535/],
      [['storage', '--dir', dir, '--mirror', '127.0.0.1:9', '--coded-shares', '2'], /--coded-shares is 0 or 1 .*Reed-Solomon/],
      [['storage', '--dir', dir, '--coded-shares', '1'], /--coded-shares covers groups until the mirror has them: give --mirror too/],
      [['promote', '--dir', dir, '--await-clients', '2'], /--await-clients and --grace need the mirror running/],
      [['promote', '--await-clients', '0'], /--await-clients is from 1/],
      [['promote', '--grace', '0'], /--grace is from 0 to 3600 seconds/],
    ];
    for (const [args, message] of cases) {
      const r = smfs(...args);
      assert.is(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, message);
    }
    const held = await LogStore.open(dir);
    const r = smfs('storage', '--dir', dir, '--port', '0');
    assert.is(r.status, 1);
    assert.match(r.stderr, /in use by process \d+.*\[SMFS_ERR_LOCKED\]/);
    await held.close();
    const help = smfs('storage', '--help');
    assert.is(help.status, 0);
    for (const word of ['--dir', '--port', '--fsync', '--segment-size', '--json', 'Examples:']) assert.ok(help.stdout.includes(word), word);
    assert.match(smfs('--help').stdout, /storage/);
  });
});

server('every SMFS error code is in the error tables of docs/smfs.md and docs/smfs-files.md, and no other', () => {
  const docs = ['smfs.md', 'smfs-files.md'].map((f) => fs.readFileSync(path.resolve(__dirname, '..', '..', '..', 'docs', f), 'utf8')).join('\n');
  const rows = new Set<string>();
  for (const m of docs.matchAll(/^\| ((?:`SMFS_ERR_\w+`(?:, )?)+) \|/gm)) for (const c of m[1].matchAll(/SMFS_ERR_\w+/g)) rows.add(c[0]);
  assert.equal([...rows].sort(), [...SMFS_ERROR_CODES].sort());
});

server.run();
