// Tagged responses in one process, the WAN between primary and mirror a relay the test cuts:
// tags and the client cache, its byte limit, the watermarks pushed to idle clients, 'held'
// ordering, recovery of a promoted mirror from the clients' caches (replay, gaps, conflicts,
// coded shares, spill files, tagged frees) and handovers that are bad input.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { StorageClient } from '../../src/smfs/client';
import type { ServerStat } from '../../src/smfs/client';
import type { Address } from '../../src/smfs/format';
import { LogStore } from '../../src/smfs/store';
import { StorageServer } from '../../src/smfs/server';
import type { PromoteOptions } from '../../src/smfs/server';
import { MirrorLink, writeRole } from '../../src/smfs/mirror';
import { TagCache } from '../../src/smfs/tag-cache';
import { handOver } from '../../src/smfs/failover';
import { SmfsError } from '../../src/smfs/errors';
import { FrameServer } from '../../src/smfs/frame-server';
import { decodeGroupBody, encodeGroupBody, rebuildDataParts } from '../../src/smfs/tagging';
import type { Verdict } from '../../src/smfs/handover';
import { Cursor, Op, decodeError, encodeErrorAnswer } from '../../src/smfs/wire';
import { crc32 } from '../../src/smfs/checksum';
import { connectStorage, refusedWith, segmentFiles, startRelay, testCredential, withDir } from '../helpers/smfs';
import type { Relay } from '../helpers/smfs';

const SEGMENT = 64 * 1024;

interface Deployment {
  pdir: string;
  mdir: string;
  primary: { store: LogStore; server: StorageServer; link: MirrorLink; port: number };
  mirror: { store: LogStore; server: StorageServer; port: number };
  relay: Relay;
  clients: StorageClient[];
  // A client of the primary with a cache of its own (one client id).
  client(options?: { limitBytes?: number; spill?: string; takesShares?: boolean }): Promise<StorageClient>;
  close(): Promise<void>;
}

const until = async (f: () => boolean | Promise<boolean>, what: string, timeoutMs = 5000): Promise<void> => {
  const deadline = Date.now() + timeoutMs;
  while (!(await f())) {
    if (Date.now() > deadline) assert.unreachable(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
};

async function deploy(pdir: string, mdir: string, options: { codedShares?: number } = {}): Promise<Deployment> {
  writeRole(mdir, 'mirror');
  const mstore = await LogStore.open(mdir, { segmentBytes: SEGMENT, mirror: true });
  const mserver = await StorageServer.listen(mstore, { credential: testCredential(), port: 0, role: 'mirror' });
  const relay = await startRelay(mserver.address.port);
  const pstore = await LogStore.open(pdir, { segmentBytes: SEGMENT });
  const link = new MirrorLink(pstore, { host: '127.0.0.1', port: relay.port, credential: testCredential(), ackTimeoutMs: 5000, retryMs: 50 });
  const pserver = await StorageServer.listen(pstore, { credential: testCredential(), port: 0, mirror: link, codedShares: options.codedShares });
  await until(() => link.stat().state === 'live', 'the mirror link to go live');
  const clients: StorageClient[] = [];
  const d: Deployment = {
    pdir, mdir, relay, clients,
    primary: { store: pstore, server: pserver, link, port: pserver.address.port },
    mirror: { store: mstore, server: mserver, port: mserver.address.port },
    client: async (o = {}) => {
      const cache = await TagCache.open({ limitBytes: o.limitBytes, spill: o.spill, takesShares: o.takesShares, waitTimeoutMs: 5000 });
      const c = await StorageClient.connect({ host: '127.0.0.1', port: pserver.address.port }, testCredential(), { cache });
      clients.push(c);
      return c;
    },
    close: async () => {
      for (const c of clients) await c.close().catch(() => undefined);
      await pserver.close().catch(() => undefined);
      await relay.close();
      await d.mirror.server.close().catch(() => undefined);
    },
  };
  return d;
}

function block(i: number, size: number): Buffer {
  const b = Buffer.alloc(size);
  for (let j = 0; j < size; j += 4) b.writeUInt32BE((i * 2654435761 + j) >>> 0, j);
  return b;
}

interface Done {
  seq: number;
  addresses: Address[];
  data: Buffer[];
}

// `n` tagged appends of 1 to 3 records over logs 1 to 3, each completed, from client c.
async function appendTagged(c: StorageClient, n: number, base: number, size = 3000): Promise<Done[]> {
  const out: Done[] = [];
  for (let i = 0; i < n; i++) {
    const k = base + i;
    const data = Array.from({ length: 1 + (k % 3) }, (_, r) => block(k * 10 + r, size + ((k + r) % 5) * 100));
    const records = data.map((d, r) => ({ log: 1 + ((k + r) % 3), data: d }));
    const { addresses, tag } = await c.appendTimed(records, { level: 'tagged' });
    out.push({ seq: tag!.seq, addresses, data });
  }
  return out;
}

async function createLogs(c: StorageClient): Promise<void> {
  for (const log of [1, 2, 3]) await c.createLog(log);
}

// The promoted mirror holds each completed append's bytes at its addresses.
async function readsBack(port: number, done: Done[]): Promise<void> {
  const c = await connectStorage(port);
  try {
    for (const d of done) {
      for (const [i, a] of d.addresses.entries()) assert.ok((await c.read(a)).equals(d.data[i]), `group ${d.seq} record ${i} reads back its bytes`);
    }
  } finally {
    await c.close();
  }
}

// Every segment file of `b` is the start of the same file in `a` (the whole file but for the
// last segment of each log): b's logs are a prefix of a's, byte for byte.
function assertPrefix(a: string, b: string): { files: number; bytes: number } {
  const fa = segmentFiles(a);
  const fb = segmentFiles(b);
  let bytes = 0;
  for (const [name, mine] of fb) {
    const theirs = fa.get(name);
    assert.ok(theirs, `${name} is at the old primary too`);
    assert.ok(theirs!.subarray(0, mine.length).equals(mine), `${name} is a prefix of the old primary's`);
    bytes += mine.length;
  }
  return { files: fb.size, bytes };
}

// The disaster in one process: the link to the mirror cut (what the primary sends is lost), then
// the primary gone. Its clients' connections close.
async function disaster(d: Deployment): Promise<void> {
  d.relay.cut();
  await d.primary.server.close();
}

async function promote(d: Deployment, o: Partial<PromoteOptions>): Promise<NonNullable<Awaited<ReturnType<StorageClient['promote']>>>> {
  const admin = await connectStorage(d.mirror.port);
  try {
    return await admin.promote(o);
  } finally {
    await admin.close();
  }
}

function sites(d: Deployment) {
  return [{ host: '127.0.0.1', port: d.primary.port }, { host: '127.0.0.1', port: d.mirror.port }];
}

const tagging = suite('smfs tagged responses (in process)');

tagging('a tagged append is answered with its tag; the client keeps the group, byte for byte what the primary wrote, until the mirror has it, also with no append after it', async () => {
  await withDir('tag-p', (pdir) => withDir('tag-m', async (mdir) => {
    const d = await deploy(pdir, mdir);
    try {
      const c = await d.client();
      await createLogs(c);
      d.relay.hold();
      const done = await appendTagged(c, 20, 0);
      const stats = c.tagStats()!;
      assert.is(stats.groups, 20, 'every group kept while the mirror has none of them');
      assert.is(stats.kept, 20);
      assert.ok(done.every((x, i) => i === 0 || x.seq === done[i - 1].seq + 1));
      // The kept group rebuilds the primary's parts exactly.
      for (const body of c.cache.forHandover(0).groups) {
        const { seq, parts } = decodeGroupBody(new Cursor(body, 'kept group'));
        for (const p of parts) assert.ok((await d.primary.store.readRaw(p.log, p.segment, p.offset, p.bytes.length)).equals(p.bytes), `group ${seq}, log ${p.log}: the same bytes`);
      }
      const pushesBefore = d.primary.server.stat().tags as { pushes: number };
      d.relay.pass();
      // No further append: the primary pushes the watermark.
      await until(() => c.cache.empty, 'the cache to drain');
      const after = c.tagStats()!;
      assert.is(after.dropped, 20);
      assert.is(after.mirrored, d.primary.store.lastSeq);
      assert.ok((d.primary.server.stat().tags as { pushes: number }).pushes > pushesBefore.pushes, 'the watermark was pushed');
      assert.is(d.primary.server.counters.appends.tagged, 20);
    } finally {
      await d.close();
    }
  }));
});

tagging('the cache never grows past its limit: appends wait for the watermark (counted); a group larger than the cache goes remote', async () => {
  await withDir('tag-p', (pdir) => withDir('tag-m', async (mdir) => {
    const d = await deploy(pdir, mdir);
    try {
      const c = await d.client({ limitBytes: 40_000 });
      await createLogs(c);
      d.relay.hold();
      let completed = 0;
      const run = (async () => {
        for (let i = 0; i < 12; i++) {
          await c.append([{ log: 1, data: block(i, 9000) }], { level: 'tagged' });
          completed++;
        }
      })();
      await until(() => c.tagStats()!.waits > 0, 'an append to wait for room');
      await new Promise((r) => setTimeout(r, 100));
      assert.is(completed, 4, 'four groups of 9 KB fill a 40 KB cache; the fifth waits');
      d.relay.pass();
      await run;
      const s = c.tagStats()!;
      assert.ok(s.peakBytes <= 40_000, `peak ${s.peakBytes} within the limit`);
      assert.ok(s.waits >= 1 && s.waitMs > 0, JSON.stringify(s));
      const big = await c.appendTimed([{ log: 2, data: block(99, 50_000) }], { level: 'tagged', timings: true });
      assert.is(c.tagStats()!.remoteFallbacks, 1);
      assert.ok(big.timings!.remote !== undefined, 'the group too large for the cache was answered remote');
    } finally {
      await d.close();
    }
  }));
});

tagging('a tagged append completes only once every group before it is held: a local append of another client holds it back until the mirror has that one', async () => {
  await withDir('tag-p', (pdir) => withDir('tag-m', async (mdir) => {
    const d = await deploy(pdir, mdir);
    try {
      const a = await d.client();
      const b = await connectStorage(d.primary.port);
      d.clients.push(b);
      await createLogs(a);
      await appendTagged(a, 2, 0);
      d.relay.hold();
      await b.append([{ log: 1, data: block(7, 100) }], { level: 'local' });
      let completed = false;
      const p = a.append([{ log: 2, data: block(8, 100) }], { level: 'tagged' }).then(() => { completed = true; });
      await new Promise((r) => setTimeout(r, 200));
      assert.is(completed, false, 'not held: the local group before it is neither at the mirror nor kept by a client');
      d.relay.pass();
      await p;
      assert.ok(completed);
    } finally {
      await d.close();
    }
  }));
});

tagging('disaster: the link cut, then the primary gone; the mirror promoted awaiting 3 clients replays their caches: every completed append reads back, the logs byte-identical to the old primary', async () => {
  await withDir('tag-p', (pdir) => withDir('tag-m', async (mdir) => {
    const d = await deploy(pdir, mdir);
    try {
      const clients = [await d.client(), await d.client(), await d.client()];
      await createLogs(clients[0]);
      const done: Done[] = [];
      done.push(...(await Promise.all(clients.map((c, i) => appendTagged(c, 10, i * 100)))).flat());
      d.relay.cut();
      done.push(...(await Promise.all(clients.map((c, i) => appendTagged(c, 15, 1000 + i * 100)))).flat());
      const behind = d.primary.store.lastSeq - d.primary.link.watermark;
      assert.ok(behind >= 45, `${behind} groups the mirror never got`);
      await disaster(d);
      const caches = clients.map((c) => c.cache);
      const [promoted, ...handovers] = await Promise.all([
        promote(d, { awaitClients: 3, graceMs: 10_000 }),
        ...caches.map((cache) => handOver(sites(d), testCredential(), cache, { tls: true, timeoutMs: 10_000, pollMs: 20 })),
      ]);
      const h = promoted.handover!;
      assert.is(h.clients, 3);
      assert.is(h.gapAt, null, h.gapReason ?? '');
      assert.equal(h.cutOff, []);
      assert.ok(h.applied >= 45, `${h.applied} groups replayed`);
      assert.is(promoted.lastSeq, d.primary.store.lastSeq, 'everything the old primary wrote');
      for (const { verdict } of handovers) assert.equal(verdict.lost, []);
      assert.ok(caches.every((c) => c.empty), 'the caches are empty after the handover');
      await readsBack(d.mirror.port, done);
      const { files } = assertPrefix(pdir, mdir);
      assert.equal([...segmentFiles(mdir).keys()].sort(), [...segmentFiles(pdir).keys()].sort(), `the same ${files} segment files`);
      for (const [name, b] of segmentFiles(pdir)) assert.ok(segmentFiles(mdir).get(name)!.equals(b), `${name} byte for byte`);
      const m = await connectStorage(d.mirror.port);
      try {
        const st = await m.stat();
        assert.is(st.role, 'primary');
        assert.is(st.recovering, false);
        await m.append([{ log: 1, data: Buffer.from('after the recovery') }], { level: 'local' });
      } finally {
        await m.close();
      }
      assert.not.ok(fs.existsSync(path.join(mdir, 'MIRROR')), 'a primary on disk once the replay is done');
    } finally {
      await d.close();
    }
  }));
});

tagging('a gap: the only holder of a group gone, no shares: the replay stops there, the store is a prefix, and the clients holding groups past it are told exactly which', async () => {
  await withDir('tag-p', (pdir) => withDir('tag-m', async (mdir) => {
    const d = await deploy(pdir, mdir);
    try {
      const clients = [await d.client(), await d.client(), await d.client()];
      await createLogs(clients[0]);
      await Promise.all(clients.map((c, i) => appendTagged(c, 5, i * 100)));
      d.relay.cut();
      const per = await Promise.all(clients.map((c, i) => appendTagged(c, 10, 1000 + i * 100)));
      await disaster(d);
      const dead = per[2];
      const gap = dead[0].seq;
      const [promoted, ...results] = await Promise.all([
        promote(d, { awaitClients: 2, graceMs: 10_000 }),
        ...[0, 1].map((i) => handOver(sites(d), testCredential(), clients[i].cache, { timeoutMs: 10_000, pollMs: 20 }).then(() => undefined, (err: unknown) => err)),
      ]);
      const h = promoted.handover!;
      assert.is(h.gapAt, gap, `the replay stops at the dead client's first unmirrored group ${gap}: ${h.gapReason}`);
      assert.is(promoted.lastSeq, gap - 1);
      for (const [i, err] of results.entries()) {
        assert.instance(err, SmfsError);
        assert.is((err as SmfsError).code, 'SMFS_ERR_LOST_GROUPS');
        const v = (err as SmfsError).details as Verdict;
        assert.equal(v.lost, per[i].filter((x) => x.seq > gap).map((x) => x.seq), `client ${i} is told exactly its groups past the gap`);
        assert.is(v.gapAt, gap);
        await readsBack(d.mirror.port, per[i].filter((x) => x.seq < gap));
      }
      assert.equal(h.cutOff, [...per[0], ...per[1]].map((x) => x.seq).filter((s) => s > gap).sort((a, b) => a - b));
      assertPrefix(pdir, mdir);
    } finally {
      await d.close();
    }
  }));
});

tagging('coded shares (k = 1): one of three clients lost with the primary, its groups are solved from the survivors\' shares; nothing completed is lost', async () => {
  await withDir('tag-p', (pdir) => withDir('tag-m', async (mdir) => {
    const d = await deploy(pdir, mdir, { codedShares: 1 });
    try {
      const clients = [await d.client(), await d.client(), await d.client()];
      await createLogs(clients[0]);
      const done: Done[] = [];
      done.push(...(await Promise.all(clients.map((c, i) => appendTagged(c, 4, i * 100)))).flat());
      d.relay.cut();
      const per = await Promise.all(clients.map((c, i) => appendTagged(c, 12, 1000 + i * 100)));
      done.push(...per.flat());
      const tags = d.primary.server.stat().tags as NonNullable<ServerStat['tags']>;
      assert.ok(tags.shares > 0 && tags.shareAcks > 0, JSON.stringify(tags));
      await disaster(d);
      const [promoted] = await Promise.all([
        promote(d, { awaitClients: 2, graceMs: 10_000 }),
        ...[0, 1].map((i) => handOver(sites(d), testCredential(), clients[i].cache, { timeoutMs: 10_000, pollMs: 20 })),
      ]);
      const h = promoted.handover!;
      assert.is(h.gapAt, null, h.gapReason ?? '');
      assert.ok(h.decoded >= per[2].length, `${h.decoded} groups solved from shares`);
      assert.is(promoted.lastSeq, d.primary.store.lastSeq);
      await readsBack(d.mirror.port, done);
      for (const [name, b] of segmentFiles(pdir)) assert.ok(segmentFiles(mdir).get(name)!.equals(b), `${name} byte for byte`);
      console.log(`  shares: ${tags.shares} pushed, ${tags.shareBytes} bytes for ${tags.tagged} tagged groups; ${h.decoded} solved`);
    } finally {
      await d.close();
    }
  }));
});

tagging('a spill file keeps the cache across the client\'s restart, under the same client id; tagged frees are kept and replayed too', async () => {
  await withDir('tag-p', (pdir) => withDir('tag-m', async (mdir) => {
    const spill = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'smfs-spill-')), 'cache');
    const d = await deploy(pdir, mdir);
    try {
      const c = await d.client({ spill });
      await createLogs(c);
      const before = await appendTagged(c, 3, 0);
      // Answered 'tagged' is not yet mirrored: the watermark that drops them may still be on its way.
      await until(() => c.cache.empty, 'the first three to be mirrored and dropped');
      d.relay.cut();
      const done = await appendTagged(c, 8, 10);
      await c.free([done[0].addresses[0]], { level: 'tagged' });
      const id = c.cache.clientId.toString('hex');
      assert.ok(c.tagStats()!.spillSyncs > 0);
      await disaster(d);
      // The client restarts: a new cache from the file.
      const reopened = await TagCache.open({ spill });
      assert.is(reopened.clientId.toString('hex'), id);
      assert.is(reopened.getStats().groups, 9, 'eight appends and the free');
      const [promoted, { verdict }] = await Promise.all([
        promote(d, { awaitClients: 1, graceMs: 10_000 }),
        handOver(sites(d), testCredential(), reopened, { timeoutMs: 10_000, pollMs: 20 }),
      ]);
      assert.is(promoted.handover!.gapAt, null);
      assert.is(verdict.applied, 9);
      await readsBack(d.mirror.port, [...before, ...done.slice(1)]);
      const m = await connectStorage(d.mirror.port);
      try {
        await refusedWith(m.read(done[0].addresses[0]), 'SMFS_ERR_FREED', 'the tagged free was replayed');
      } finally {
        await m.close();
      }
      assert.is(fs.statSync(spill).size, 28, 'the file is back to its header once handed over');
      await reopened.close();
      await c.cache.close();
    } finally {
      await d.close();
      fs.rmSync(path.dirname(spill), { recursive: true, force: true });
    }
  }));
});

tagging('handovers are checked as mirrored groups: damaged, partial and malformed ones are refused with their code and counted; copies that disagree stop the replay; late ones are compared', async () => {
  await withDir('tag-p', (pdir) => withDir('tag-m', async (mdir) => {
    const d = await deploy(pdir, mdir);
    try {
      const c = await d.client();
      await createLogs(c);
      await appendTagged(c, 2, 0);
      d.relay.cut();
      const done = await appendTagged(c, 6, 10);
      await disaster(d);
      // A mirror not yet promoted takes no handover.
      const early = await StorageClient.connect({ host: '127.0.0.1', port: d.mirror.port }, testCredential(), { cache: TagCache.create() });
      await refusedWith(early.handover(), 'SMFS_ERR_READONLY');
      await early.close();
      const promoting = promote(d, { awaitClients: 1, graceMs: 10_000 });
      promoting.catch(() => undefined);
      const raw = await connectStorage(d.mirror.port);
      await until(async () => (await raw.stat()).recovering, 'the promoted mirror to be recovering');
      const { groups } = c.cache.forHandover(0);
      const frame = (bodies: Buffer[], shares: Buffer[] = []) => {
        const out: Buffer[] = [Buffer.alloc(16, 7), Buffer.of(0), u32(bodies.length)];
        for (const b of bodies) out.push(u32(b.length), b);
        out.push(u32(shares.length));
        for (const s of shares) out.push(u32(s.length), s);
        return out;
      };
      const damaged = Buffer.from(groups[3]);
      damaged[damaged.length - 30] ^= 1;
      await refusedWith(raw.request(Op.handover, frame([damaged])), 'SMFS_ERR_CHECKSUM', 'a flipped bit');
      const g = decodeGroupBody(new Cursor(groups.find((b) => decodeGroupBody(new Cursor(b, 'g')).parts.length > 1)!, 'g'));
      await refusedWith(raw.request(Op.handover, frame([encodeGroupBody(g.seq, g.parts.slice(1))])), 'SMFS_ERR_REQUEST', 'a group missing a part');
      await refusedWith(raw.request(Op.handover, frame([groups[0].subarray(0, 20)])), 'SMFS_ERR_FRAME', 'a cut-off group');
      await refusedWith(raw.request(Op.handover, [Buffer.alloc(5)]), 'SMFS_ERR_FRAME', 'a cut-off frame');
      const share = Buffer.alloc(8 + 2 + 10 + 16 + 10);
      share.writeUInt16BE(1, 8);
      share.writeBigUInt64BE(5n, 10);
      share.writeUInt16BE(1, 18);
      share.writeUInt32BE(1, 20);
      share.writeUInt32BE(32, 28);
      share.writeUInt32BE(100, 32);
      await refusedWith(raw.request(Op.handover, frame([], [share])), 'SMFS_ERR_REQUEST', 'a share whose payload is shorter than its group');
      // Another client hands over other bytes, whole and well formed, for the fourth group.
      const other = decodeGroupBody(new Cursor(groups[5], 'g'));
      const seqOther = other.seq;
      const records: { log: number; data: Buffer; crc: number }[] = [];
      const addresses: Address[] = [];
      const dOther = done.find((x) => x.seq === seqOther)!;
      dOther.data.forEach((b, i) => {
        const data = Buffer.from(b);
        data[0] ^= 0xff;
        records.push({ log: dOther.addresses[i].log, data, crc: crc32(data) });
        addresses.push(dOther.addresses[i]);
      });
      const forged = encodeGroupBody(seqOther, rebuildDataParts(seqOther, other.parts.length ? decodePartDurable(other.parts[0].bytes) : 0, records, addresses));
      await raw.request(Op.handover, frame([forged]));
      assert.is((await raw.stat()).handover!.refused, 5);
      await refusedWith(handOver(sites(d), testCredential(), c.cache, { timeoutMs: 10_000, pollMs: 20 }), 'SMFS_ERR_LOST_GROUPS');
      const h = (await promoting).handover!;
      assert.is(h.gapAt, seqOther, 'copies that disagree are a gap');
      assert.equal(h.conflicts, [seqOther]);
      assert.is(h.refused, 5);
      assertPrefix(pdir, mdir);
      // Late: the recovery is over; a client compares what it kept with what is there.
      const late = await StorageClient.connect({ host: '127.0.0.1', port: d.mirror.port }, testCredential(), { cache: TagCache.create() });
      const inside = done.filter((x) => x.seq < seqOther);
      const lateCache = late.cache;
      for (const x of inside) await lateCache.keep({ kind: 'body', seq: x.seq, body: groups[done.indexOf(x)], bytes: 1 });
      assert.equal((await late.handover({ all: true })).present, inside.length);
      await late.close();
      await raw.close();
    } finally {
      await d.close();
    }
  }));
});

tagging('a pushed frame the client does not know is ignored; an error answer carries its details', async () => {
  const frames = await FrameServer.listen('test', async (_op, _body, conn) => {
    conn.push(99, [Buffer.from('unknown to the client')]);
    return [Buffer.from('ok')];
  }, { port: 0, credential: testCredential() });
  try {
    const c = await connectStorage(frames.address.port);
    assert.is((await c.request(Op.stat)).toString(), 'ok');
    await c.close();
  } finally {
    await frames.close();
  }
  const frame = Buffer.concat(encodeErrorAnswer(Op.handover, 1, 'SMFS_ERR_LOST_GROUPS', 'lost', { lost: [3, 4] }));
  const e = decodeError(frame.subarray(13));
  assert.is(e.code, 'SMFS_ERR_LOST_GROUPS');
  assert.equal(e.details, { lost: [3, 4] });
  assert.is(decodeError(Buffer.concat(encodeErrorAnswer(1, 1, 'SMFS_ERR_IO', 'x')).subarray(13)).details, undefined);
});

tagging('a spill file cut off in its last entry keeps the entries before it; a header that does not check out is refused', async () => {
  await withDir('tag-spill', async (dir) => {
    const file = path.join(dir, 'cache');
    const c = await TagCache.open({ spill: file });
    const parts = (seq: number) => rebuildDataParts(seq, 0, [{ log: 1, data: block(seq, 100), crc: crc32(block(seq, 100)) }], [{ log: 1, segment: 0, offset: 68 }]);
    for (const seq of [5, 6, 7]) await c.keep({ kind: 'body', seq, body: encodeGroupBody(seq, parts(seq)), bytes: 100 });
    await c.close();
    const whole = fs.readFileSync(file);
    fs.writeFileSync(file, whole.subarray(0, whole.length - 9)); // the last entry torn
    const d = await TagCache.open({ spill: file });
    assert.is(d.getStats().groups, 2);
    assert.equal(d.forHandover(0).groups.map((b) => decodeGroupBody(new Cursor(b, 'g')).seq), [5, 6]);
    assert.is(d.clientId.toString('hex'), c.clientId.toString('hex'));
    await d.close();
    assert.ok(fs.statSync(file).size < whole.length - 9, 'the torn entry was cut off');
    const bad = fs.readFileSync(file);
    bad[9] ^= 1;
    fs.writeFileSync(file, bad);
    await refusedWith(TagCache.open({ spill: file }), 'SMFS_ERR_CORRUPT');
  });
});

tagging('a server that stops answering is given up on after deadAfterMs: the waiting request fails SMFS_ERR_CLOSED', async () => {
  const frames = await FrameServer.listen('silent', () => new Promise<Uint8Array[]>(() => undefined), { port: 0, credential: testCredential() });
  try {
    const c = await StorageClient.connect({ host: '127.0.0.1', port: frames.address.port }, testCredential(), { deadAfterMs: 200 });
    const t0 = Date.now();
    await refusedWith(c.stat(), 'SMFS_ERR_CLOSED');
    const ms = Date.now() - t0;
    assert.ok(ms >= 200 && ms < 2000, `given up after ${ms} ms`);
  } finally {
    await frames.close();
  }
});

function u32(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v, 0);
  return b;
}

function decodePartDurable(part: Buffer): number {
  return Number(part.readBigUInt64BE(24));
}

tagging.run();
