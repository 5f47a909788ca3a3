// Mirroring without the gateways, in one process: a primary LogStore served with a MirrorLink to
// a mirror server. Byte-identical logs, catch-up after the mirror was away or the primary
// restarted, the levels local and remote, refusals, divergence, promotion.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import path from 'node:path';
import { StorageClient } from '../../src/smfs/client';
import type { Address } from '../../src/smfs/format';
import { LogStore } from '../../src/smfs/store';
import { StorageServer } from '../../src/smfs/server';
import { MirrorLink, ROLE_FILE, encodeGroup, readRole, writeRole } from '../../src/smfs/mirror';
import type { ShippedPart } from '../../src/smfs/store';
import { Op, encodeFrame, encodeU32 } from '../../src/smfs/wire';
import type { MirrorStat } from '../../src/smfs/mirror';
import { connectStorage, refusedWith, segmentFiles, testCredential, withDir } from '../helpers/smfs';

const SEGMENT = 16 * 1024;

interface Site {
  dir: string;
  store: LogStore;
  server: StorageServer;
  client: StorageClient;
  link?: MirrorLink;
  close(): Promise<void>;
}

async function startMirror(dir: string, port = 0): Promise<Site> {
  writeRole(dir, 'mirror');
  const store = await LogStore.open(dir, { segmentBytes: SEGMENT, mirror: true });
  const server = await StorageServer.listen(store, { credential: testCredential(), port, role: 'mirror' });
  const client = await connectStorage(server.address.port);
  return { dir, store, server, client, close: async () => { await client.close(); await server.close(); } };
}

async function startPrimary(dir: string, mirrorPort: number, ackTimeoutMs = 10_000): Promise<Site> {
  const store = await LogStore.open(dir, { segmentBytes: SEGMENT });
  const link = new MirrorLink(store, { host: '127.0.0.1', port: mirrorPort, credential: testCredential(), ackTimeoutMs, retryMs: 50 });
  const server = await StorageServer.listen(store, { credential: testCredential(), port: 0, mirror: link });
  const client = await connectStorage(server.address.port);
  return { dir, store, server, client, link, close: async () => { await client.close(); await server.close(); } };
}

function assertSameLogs(a: string, b: string): void {
  const fa = segmentFiles(a);
  const fb = segmentFiles(b);
  assert.equal([...fb.keys()].sort(), [...fa.keys()].sort(), 'the same segment files');
  for (const [name, bytes] of fa) assert.ok(bytes.equals(fb.get(name)!), `${name} is byte for byte the same`);
}

function block(i: number, size: number): Buffer {
  return Buffer.alloc(size, (i * 31 + 7) & 0xff);
}

// Mixed appends over three logs (some across several), frees, with segments sealed on the way.
async function workload(c: StorageClient, groups: number, base = 0): Promise<Address[]> {
  const live: Address[] = [];
  for (let g = 0; g < groups; g++) {
    const i = base + g;
    const records = [{ log: 1, data: block(i, 1000 + (i % 7) * 300) }];
    if (i % 3 === 0) records.push({ log: 2, data: block(i + 1, 700) });
    if (i % 5 === 0) records.push({ log: 3, data: block(i + 2, 3000) });
    live.push(...await c.append(records, { level: 'local' }));
    if (i % 4 === 3) await c.free([live.shift()!]);
  }
  return live;
}

const until = async (f: () => boolean, what: string, timeoutMs = 5000): Promise<void> => {
  const deadline = Date.now() + timeoutMs;
  while (!f()) {
    if (Date.now() > deadline) assert.unreachable(`timed out waiting for ${what}`);
    await new Promise((r) => setImmediate(r));
  }
};

const mirror = suite('smfs mirroring (in process, no gateways)');

mirror('the mirror log is byte-identical to the primary log; remote waits for the mirror, local does not', async () => {
  await withDir('mirror-a', (pdir) => withDir('mirror-b', async (mdir) => {
    const m = await startMirror(mdir);
    const p = await startPrimary(pdir, m.server.address.port);
    try {
      for (const log of [1, 2, 3]) await p.client.createLog(log);
      await workload(p.client, 120);
      // One remote append covers every group before it: the mirror applies in order.
      const [last] = await p.client.append([{ log: 2, data: block(999, 5000) }], { level: 'remote' });
      const stat = p.link!.stat();
      assert.is(stat.remoteSeq, p.store.lastSeq);
      assert.is(stat.pendingGroups, 0, 'nothing kept for the mirror once it has acknowledged');
      assert.ok(p.store.stat().logs[0].segments > 3, 'log 1 spans several segments');
      assert.ok((await m.client.read(last)).equals(block(999, 5000)), 'the mirror reads the record at the same address');
      await p.client.sync();
      await m.client.sync();
      assertSameLogs(pdir, mdir);
      const ms = await m.client.stat();
      assert.is(ms.role, 'mirror');
      assert.is(ms.server.mirroredGroups, p.store.lastSeq);
      assert.is(ms.primaryTls, true, 'the stream runs over TLS by default');
      assert.is(stat.tls, true);
    } finally {
      await p.close();
      await m.close();
    }
  }));
});

mirror('a mirror that was away catches up from the primary log; a restarted primary resumes where the mirror is', async () => {
  await withDir('mirror-a', (pdir) => withDir('mirror-b', async (mdir) => {
    let m = await startMirror(mdir);
    const mport = m.server.address.port;
    let p = await startPrimary(pdir, mport, 300);
    try {
      for (const log of [1, 2, 3]) await p.client.createLog(log);
      await workload(p.client, 30);
      await p.client.append([{ log: 1, data: block(1, 10) }], { level: 'remote' });
      await m.close();
      // Local appends go on while the mirror is away; remote ones fail after the ack timeout,
      // but stay written here.
      await workload(p.client, 40, 100);
      const msg = await refusedWith(p.client.append([{ log: 2, data: block(5, 100) }], { level: 'remote' }), 'SMFS_ERR_MIRROR');
      assert.match(msg, /written here/);
      assert.is(p.link!.stat().ackTimeouts.remote, 1);
      await p.client.createLog(4);
      m = await startMirror(mdir, mport);
      await until(() => p.link!.stat().state === 'live', 'the link to reconnect and catch up', 10_000);
      await p.client.append([{ log: 4, data: block(6, 100) }], { level: 'remote' });
      assert.ok(p.link!.stat().caughtUpGroups >= 41, `caught up ${p.link!.stat().caughtUpGroups} groups`);
      await m.client.sync();
      assertSameLogs(pdir, mdir);
      // The primary restarts: it asks the mirror where it is and sends only what it lacks.
      await p.close();
      p = await startPrimary(pdir, mport);
      await until(() => p.link!.stat().state === 'live', 'the restarted primary to go live');
      assert.is(p.link!.stat().caughtUpGroups, 0, 'nothing to send again');
      await workload(p.client, 20, 500);
      await p.client.append([{ log: 4, data: block(7, 100) }], { level: 'remote' });
      await m.client.sync();
      assertSameLogs(pdir, mdir);
    } finally {
      await p.close();
      await m.close();
    }
  }));
});

mirror('a mirror refuses changes from clients and streams from non-primaries; a primary refuses what it cannot acknowledge', async () => {
  await withDir('mirror-a', (pdir) => withDir('mirror-b', async (mdir) => {
    const m = await startMirror(mdir);
    const p = await startPrimary(pdir, m.server.address.port);
    try {
      await p.client.createLog(1);
      const [a] = await p.client.append([{ log: 1, data: block(1, 100) }], { level: 'remote' });
      await refusedWith(m.client.append([{ log: 1, data: block(2, 100) }]), 'SMFS_ERR_READONLY');
      await refusedWith(m.client.createLog(9), 'SMFS_ERR_READONLY');
      await refusedWith(m.client.free([a]), 'SMFS_ERR_READONLY');
      assert.ok((await m.client.read(a)).equals(block(1, 100)), 'reads are served');
      // A second client cannot slip changes into the stream without saying hello.
      await refusedWith(m.client.request(Op.mirrorCreate, [encodeU32(7)]), 'SMFS_ERR_REQUEST');
      await refusedWith(p.client.request(Op.mirrorHello), 'SMFS_ERR_REQUEST');
      await refusedWith(p.client.append([{ log: 1, data: block(3, 10) }], { level: 'network' }), 'SMFS_ERR_REQUEST');
      const ms = await m.client.stat();
      assert.is(ms.server.refused.SMFS_ERR_READONLY, 3);
    } finally {
      await p.close();
      await m.close();
    }
    // Without a mirror, only local.
    await withDir('mirror-c', async (dir) => {
      const store = await LogStore.open(dir);
      const server = await StorageServer.listen(store, { credential: testCredential(), port: 0 });
      const c = await connectStorage(server.address.port);
      try {
        await c.createLog(1);
        await refusedWith(c.append([{ log: 1, data: block(1, 10) }], { level: 'remote' }), 'SMFS_ERR_REQUEST');
        assert.is((await c.append([{ log: 1, data: block(1, 10) }])).length, 1, 'the default level is local');
      } finally {
        await c.close();
        await server.close();
      }
    });
  }));
});

mirror('a mirror whose log is not a prefix of the primary log is refused and left untouched', async () => {
  await withDir('mirror-a', (pdir) => withDir('mirror-b', async (mdir) => {
    // The mirror directory holds a log of another history: more bytes in log 1 than the primary has.
    const other = await LogStore.open(mdir, { segmentBytes: SEGMENT });
    await other.createLog(1);
    await other.append([{ log: 1, data: block(1, 4000) }]);
    await other.append([{ log: 1, data: block(2, 4000) }]);
    await other.close();
    const before = segmentFiles(mdir);
    const m = await startMirror(mdir);
    const p = await startPrimary(pdir, m.server.address.port, 300);
    try {
      await p.client.createLog(1);
      await p.client.append([{ log: 1, data: block(3, 10) }], { level: 'local' });
      await until(() => /reseed/.test(p.link!.stat().lastError ?? ''), 'the link to report the divergence');
      await refusedWith(p.client.append([{ log: 1, data: block(4, 10) }], { level: 'remote' }), 'SMFS_ERR_MIRROR');
      await m.client.sync();
      const after = segmentFiles(mdir);
      for (const [name, bytes] of before) assert.ok(bytes.equals(after.get(name)!), `${name} untouched`);
    } finally {
      await p.close();
      await m.close();
    }
  }));
});

mirror('promote: the mirror takes appends, keeps every address, and its directory says primary', async () => {
  await withDir('mirror-a', (pdir) => withDir('mirror-b', async (mdir) => {
    const m = await startMirror(mdir);
    const p = await startPrimary(pdir, m.server.address.port);
    let acked: Address[] = [];
    try {
      for (const log of [1, 2, 3]) await p.client.createLog(log);
      acked = await workload(p.client, 50);
      await p.client.append([{ log: 1, data: block(0, 1) }], { level: 'remote' });
    } finally {
      await p.close();
    }
    try {
      const promoted = await m.client.promote();
      assert.is(promoted.lastSeq, p.store.lastSeq);
      assert.is(promoted.recovery.droppedGroups, 0);
      assert.is(readRole(mdir), 'primary');
      assert.not.ok(fs.existsSync(path.join(mdir, ROLE_FILE)));
      for (const a of acked) await m.client.read(a);
      const [n] = await m.client.append([{ log: 2, data: block(77, 100) }]);
      assert.ok((await m.client.read(n)).equals(block(77, 100)));
      await refusedWith(m.client.promote(), 'SMFS_ERR_REQUEST');
      assert.is((await m.client.stat()).role, 'primary');
    } finally {
      await m.close();
    }
  }));
});

mirror('the cleaner leaves raw what the mirror has not acknowledged', async () => {
  await withDir('mirror-a', (pdir) => withDir('mirror-b', async (mdir) => {
    const m = await startMirror(mdir);
    const p = await startPrimary(pdir, m.server.address.port, 200);
    try {
      await p.client.createLog(1);
      const early: Address[] = [];
      for (let i = 0; i < 20; i++) early.push(...await p.client.append([{ log: 1, data: block(i, 3000) }], { level: 'remote' }));
      await m.close();
      const late: Address[] = [];
      for (let i = 0; i < 20; i++) late.push(...await p.client.append([{ log: 1, data: block(i, 3000) }], { level: 'local' }));
      await p.client.free([...early, ...late]);
      const report = await p.client.clean({ maxLiveRatio: 1 });
      const stat: MirrorStat = p.link!.stat();
      const segs = p.store.stat().logs[0];
      assert.ok(report.segmentsCompacted + report.segmentsDeleted > 0, 'segments the mirror has are cleaned');
      assert.ok(segs.segments - segs.compactedSegments >= 4, `segments past group ${stat.remoteSeq} stay raw (${segs.segments} segments, ${segs.compactedSegments} compacted)`);
    } finally {
      await p.close();
    }
  }));
});

mirror('a mirror refuses malformed, damaged, misplaced and out-of-order groups, and the stream goes on', async () => {
  await withDir('mirror-a', (pdir) => withDir('mirror-b', async (mdir) => {
    const m = await startMirror(mdir);
    const source = await LogStore.open(pdir, { segmentBytes: SEGMENT });
    const parts: ShippedPart[][] = [];
    source.onChange = (c) => { if (c.kind === 'group') parts.push(c.parts); };
    const stream = await connectStorage(m.server.address.port, { tls: true }); // a mirror takes the stream only over TLS
    try {
      await source.createLog(1);
      await source.append([{ log: 1, data: block(1, 500) }]);
      await source.append([{ log: 1, data: block(2, 500) }]);
      const hello = JSON.parse((await stream.request(Op.mirrorHello)).toString('utf8')) as { lastSeq: number };
      assert.is(hello.lastSeq, 0);
      await stream.request(Op.mirrorCreate, [encodeU32(1)]);
      const [first] = parts[0];
      const damaged = { ...first, bytes: Buffer.from(first.bytes) };
      damaged.bytes[damaged.bytes.length - 10] ^= 0xff;
      const cases: [string, Uint8Array[], string][] = [
        ['a damaged part', encodeGroup(1, [damaged]), 'SMFS_ERR_CHECKSUM'],
        ['a part claiming another group', encodeGroup(2, [first]), 'SMFS_ERR_REQUEST'],
        ['a part past the end of the log', encodeGroup(2, parts[1]), 'SMFS_ERR_DIVERGED'],
        ['a part for a log the mirror lacks', encodeGroup(1, [{ ...first, log: 9 }]), 'SMFS_ERR_UNKNOWN_LOG'],
        ['no parts', encodeGroup(1, []), 'SMFS_ERR_REQUEST'],
        ['a body cut short', [Buffer.concat(encodeGroup(1, [first])).subarray(0, 30)], 'SMFS_ERR_FRAME'],
      ];
      for (const [what, body, code] of cases) {
        const msg = await refusedWith(stream.request(Op.mirrorGroup, body), code);
        assert.ok(msg.length > 0, what);
      }
      await stream.request(Op.mirrorGroup, encodeGroup(1, parts[0]));
      await refusedWith(stream.request(Op.mirrorGroup, encodeGroup(1, parts[0])), 'SMFS_ERR_DIVERGED');
      await stream.request(Op.mirrorGroup, encodeGroup(2, parts[1]));
      // A create-log and a group in the new log, in one write: the group waits for the log.
      await source.createLog(2);
      await source.append([{ log: 2, data: block(3, 500) }]);
      const created = stream.expect(901, Op.mirrorCreate);
      const grouped = stream.expect(902, Op.mirrorGroup);
      stream.writeRaw(Buffer.concat([...encodeFrame(Op.mirrorCreate, 901, [encodeU32(2)]), ...encodeFrame(Op.mirrorGroup, 902, encodeGroup(3, parts[2]))]));
      await Promise.all([created, grouped]);
      await m.client.sync();
      await source.sync();
      assertSameLogs(pdir, mdir);
    } finally {
      await stream.close();
      await source.close();
      await m.close();
    }
  }));
});

mirror.run();
