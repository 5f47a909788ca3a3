import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { MetadataServer } from '../../src/smfs/metadata';
import { FileClient } from '../../src/smfs/fs/client';
import { BLOCK_BYTES, MAX_FILE_BYTES } from '../../src/smfs/fs/format';
import { FileOp } from '../../src/smfs/fs/protocol';
import { FileServer } from '../../src/smfs/fs/server';
import { Volume } from '../../src/smfs/fs/volume';
import type { Endpoint } from '../../src/smfs/frame-client';
import { Op, encodeU32 } from '../../src/smfs/wire';
import { encodeText } from '../../src/smfs/text';
import { SMFS_BIN, connectStorage, startStorage, testCredential, withDir } from '../helpers/smfs';
import { run } from '../helpers/smfs-mount';
import { EXIT_PIPE_CLOSED } from '../../src/cli/run';
import { freePort, refusedWith, smfsCli, startSmfs, startStorageHere } from '../helpers/smfs-files';
import type { Storage } from '../helpers/smfs-files';

interface Setup {
  dir: string;
  storage: Storage;
  metadata: MetadataServer;
  server: FileServer;
  c: FileClient;
  log: number;
  // Stops the file server and starts a new one on the same log, as after a restart.
  restart(): Promise<void>;
  liveRecords(): Promise<number>;
}

async function withFiles(fn: (s: Setup) => Promise<void>): Promise<void> {
  await withDir('files', async (dir) => {
    const storage = await startStorageHere(path.join(dir, 'storage'));
    const metadata = await MetadataServer.open(path.join(dir, 'meta'), [storage.at], { port: 0, credential: testCredential() });
    const volume = await Volume.open(metadata.address, undefined, testCredential());
    const s: Setup = {
      dir, storage, metadata, log: volume.log,
      server: await FileServer.listen(volume, { port: 0, credential: testCredential() }),
      c: undefined as unknown as FileClient,
      async restart() {
        await s.c.close();
        await s.server.close();
        s.server = await FileServer.listen(await Volume.open(metadata.address, s.log, testCredential()), { port: 0, credential: testCredential() });
        s.c = await FileClient.connect(s.server.address, testCredential());
      },
      async liveRecords() {
        return s.storage.server.store.stat().logs.find((l) => l.id === s.log)!.liveRecords;
      },
    };
    s.c = await FileClient.connect(s.server.address, testCredential());
    try {
      await fn(s);
    } finally {
      await s.c.close();
      await s.server.close();
      await metadata.close();
      await s.storage.close();
    }
  });
}

const tail = suite('smfs storage op 8: tail');

tail('tail is the newest data record of a log, freed or not, and none for a log without records', async () => {
  await withDir('tail', async (dir) => {
    const s = await startStorageHere(dir);
    const c = await connectStorage(s.at.port);
    try {
      await c.createLog(1);
      await c.createLog(2);
      assert.is(await c.tail(1), undefined);
      const [a, , b] = await c.append([{ log: 1, data: Buffer.from('a') }, { log: 2, data: Buffer.from('x') }, { log: 1, data: Buffer.from('b') }]);
      assert.equal(await c.tail(1), b);
      await c.free([b, a]);
      assert.equal(await c.tail(1), b, 'a free is no data record, and a freed record is still the newest');
      const [d] = await c.append([{ log: 1, data: Buffer.alloc(700 * 1024) }, { log: 1, data: Buffer.alloc(700 * 1024) }]).then((x) => x.slice(1));
      assert.ok(d.segment > 0, 'the group went into a new segment');
      assert.equal(await c.tail(1), d);
      await refusedWith(c.tail(9), 'SMFS_ERR_UNKNOWN_LOG');
      await refusedWith(c.request(Op.tail, [Buffer.of(0, 0)]), 'SMFS_ERR_FRAME');
      assert.equal(await c.tail(1), d, 'the connection goes on');
    } finally {
      await c.close();
      await s.close();
    }
  });
});

tail.run();

const readMany = suite('smfs storage op 9: read-many');

readMany('read-many answers records in the order asked, across groups, logs and segments; all or none', async () => {
  await withDir('read-many', async (dir) => {
    const s = await startStorageHere(dir);
    const c = await connectStorage(s.at.port);
    try {
      await c.createLog(1);
      await c.createLog(2);
      const blocks = Array.from({ length: 64 }, () => randomBytes(BLOCK_BYTES));
      const a = await c.append(blocks.map((data) => ({ log: 1, data })));
      const mixed = [{ log: 2, data: randomBytes(10) }, { log: 1, data: Buffer.alloc(0) }, { log: 1, data: randomBytes(700 * 1024) }];
      const b = await c.append(mixed);
      const [big] = await c.append([{ log: 1, data: randomBytes(600 * 1024) }]);
      assert.ok(big.segment > a[0].segment, 'the last record went to another segment (1 MiB segments here)');
      const order = [...a.keys(), ...[...a.keys()].reverse()];
      const asked = [...order.map((i) => a[i]), ...b, big, a[5]];
      const want = [...order.map((i) => blocks[i]), ...mixed.map((m) => m.data), null, blocks[5]];
      const got = await c.readMany(asked);
      assert.is(got.length, asked.length);
      got.forEach((g, i) => { if (want[i]) assert.ok(g.equals(want[i]!), `record ${i}`); });
      assert.ok(got[got.length - 2].equals(await c.read(big)), 'the record in the next segment');
      await c.free([a[10]]);
      await refusedWith(c.readMany([a[9], a[10], a[11]]), 'SMFS_ERR_FREED');
      await refusedWith(c.readMany([a[9], { ...a[9], offset: a[9].offset + 1 }]), 'SMFS_ERR_ADDRESS');
      await refusedWith(c.readMany([{ ...a[0], log: 9 }]), 'SMFS_ERR_UNKNOWN_LOG');
      await refusedWith(c.readMany([]), 'SMFS_ERR_REQUEST');
      await refusedWith(c.request(Op.readMany, [encodeU32(2), Buffer.alloc(12)]), 'SMFS_ERR_FRAME');
      assert.ok((await c.readMany([a[11]]))[0].equals(blocks[11]), 'the connection goes on');
    } finally {
      await c.close();
      await s.close();
    }
  });
});

readMany.run();

const files = suite('smfs file server');

files('write, read, ls, mkdir, rm and mv round trips, with files of many blocks', async () => {
  await withFiles(async ({ c }) => {
    const big = randomBytes(5 * 1024 * 1024 + 123);
    const exact = randomBytes(3 * BLOCK_BYTES);
    await c.mkdir('/docs');
    await c.write('/docs/big.bin', big);
    await c.write('docs/exact.bin', exact);
    await c.write('/docs/empty', Buffer.alloc(0));
    await c.write('/top.txt', Buffer.from('top'));
    assert.ok((await c.read('/docs/big.bin')).equals(big));
    assert.ok((await c.read('/docs/exact.bin')).equals(exact));
    assert.is((await c.read('/docs/empty')).length, 0);
    assert.equal((await c.list('/')).map((e) => [e.name, e.type, e.size]), [['docs', 'dir', 3], ['top.txt', 'file', 3]]);
    assert.equal((await c.list('/docs/')).map((e) => [e.name, e.size]), [['big.bin', big.length], ['empty', 0], ['exact.bin', exact.length]]);
    assert.equal((await c.list('/docs/big.bin')).map((e) => e.name), ['big.bin']);
    assert.ok(Date.parse((await c.list('/'))[0].mtime) > Date.now() - 60_000);
    await c.write('/docs/big.bin', Buffer.from('smaller now'));
    assert.is((await c.read('/docs/big.bin')).toString(), 'smaller now');
    await c.mkdir('/a/b/c', { parents: true });
    await c.mkdir('/a/b', { parents: true });
    await c.rename('/docs/exact.bin', '/a/b/c/moved.bin');
    assert.ok((await c.read('/a/b/c/moved.bin')).equals(exact));
    await refusedWith(c.read('/docs/exact.bin'), 'SMFS_ERR_NOT_FOUND');
    await c.rename('/a/b', '/docs/b');
    assert.ok((await c.read('/docs/b/c/moved.bin')).equals(exact), 'a directory moves with its tree');
    assert.equal((await c.list('/a')), []);
    await c.rename('/top.txt', '/docs/empty');
    assert.is((await c.read('/docs/empty')).toString(), 'top', 'a file replaces a file');
    await c.remove('/a');
    await c.remove('/docs/empty');
    await c.remove('/docs', { recursive: true });
    assert.equal(await c.list('/'), []);
  });
});

files('the tree survives a restart of the file server: recovered from the log by tail', async () => {
  await withFiles(async (s) => {
    const data = new Map<string, Buffer>();
    await s.c.mkdir('/x/y', { parents: true });
    for (let i = 0; i < 30; i++) {
      const p = `/x/${i % 2 ? 'y/' : ''}f${i}`;
      data.set(p, randomBytes(i * 997));
      await s.c.write(p, data.get(p)!);
    }
    await s.c.remove('/x/f0');
    data.delete('/x/f0');
    await s.c.rename('/x/f2', '/x/y/g2');
    data.set('/x/y/g2', data.get('/x/f2')!);
    data.delete('/x/f2');
    const before = await s.c.stat();
    await s.restart();
    const after = await s.c.stat();
    assert.equal({ ...after, server: undefined }, { ...before, server: undefined });
    assert.is(after.leaked, 0);
    for (const [p, d] of data) assert.ok((await s.c.read(p)).equals(d), p);
    assert.is((await s.c.list('/x')).length, 13 + 1, 'f4..f28 even, and y');
    assert.is((await s.c.list('/x/y')).length, 15 + 1, 'f1..f29 odd, and g2');
    assert.is(await s.c.write('/after', Buffer.from('!')), before.update + 1, 'update numbers go on from the log');
  });
});

files('a group update is all or none: a change that cannot be done leaves nothing of the others', async () => {
  await withFiles(async (s) => {
    await s.c.mkdir('/d');
    await s.c.write('/d/old', Buffer.from('old'));
    const update = (await s.c.stat()).update;
    const seq = s.storage.server.store.lastSeq;
    await refusedWith(s.c.group([
      { op: 'write', path: '/d/new', data: Buffer.from('new') },
      { op: 'remove', path: '/d/old' },
      { op: 'write', path: '/missing/f', data: Buffer.from('x') },
    ]), 'SMFS_ERR_NOT_FOUND');
    assert.equal((await s.c.list('/d')).map((e) => e.name), ['old']);
    assert.is((await s.c.stat()).update, update);
    assert.is(s.storage.server.store.lastSeq, seq, 'nothing was appended');
    const done = await s.c.group([
      { op: 'write', path: '/d/new', data: Buffer.from('new') },
      { op: 'remove', path: '/d/old' },
      { op: 'mkdir', path: '/e' },
      { op: 'rename', from: '/d/new', to: '/e/new' },
    ]);
    assert.is(done, update + 1, 'one update');
    assert.is(s.storage.server.store.lastSeq, seq + 2, 'one append, and one free of what it superseded');
    assert.equal((await s.c.list('/d')), []);
    assert.is((await s.c.read('/e/new')).toString(), 'new');
  });
});

files('a read of many blocks is one storage request (read-many), not one per block', async () => {
  await withFiles(async (s) => {
    const data = randomBytes(64 * BLOCK_BYTES + 100);
    await s.c.write('/f', data);
    const counters = s.storage.server.counters;
    const before = counters.requests;
    assert.ok((await s.c.readRange('/f', 10, 60 * BLOCK_BYTES)).equals(data.subarray(10, 10 + 60 * BLOCK_BYTES)));
    assert.is(counters.requests - before, 1, 'one storage request for 61 blocks');
    assert.ok((await s.c.read('/f')).equals(data));
    assert.is(counters.requests - before, 2, 'and one for a whole file of 65 blocks');
  });
});

files('a reader that goes away (smfs ls | head) ends the command quietly, with the status of SIGPIPE', async () => {
  await withFiles(async (s) => {
    await s.c.group([{ op: 'mkdir', path: '/many' }, ...Array.from({ length: 2000 }, (_, i) => ({ op: 'write' as const, path: `/many/a-file-with-a-longish-name-${i}`, data: Buffer.alloc(0) }))]);
    await s.c.write('/big', randomBytes(2 << 20));
    const env = { ...process.env, SMFS_CREDENTIALS: testCredential().file };
    const smfs = `"${process.execPath}" "${SMFS_BIN}"`;
    for (const args of ['ls /many', 'ls /many --json', 'read /big']) {
      // Far more than a pipe holds, and head reads 100 bytes and exits: the writes after fail.
      const r = await run('bash', ['-c', `${smfs} ${args} --server 127.0.0.1:${s.server.address.port} | head -c 100 >/dev/null; exit \${PIPESTATUS[0]}`], { env });
      assert.is(r.stderr, '', `smfs ${args}: nothing on stderr`);
      assert.is(r.status, EXIT_PIPE_CLOSED, `smfs ${args}: 128 + SIGPIPE`);
    }
    const all = await run('bash', ['-c', `${smfs} ls /many --server 127.0.0.1:${s.server.address.port} | wc -l`], { env });
    assert.is(all.stdout.trim(), '2000', 'a reader that reads it all gets it all');
  });
});

files('superseded blocks and inodes are freed: the log\'s live records are exactly the reachable ones', async () => {
  await withFiles(async (s) => {
    await s.c.mkdir('/keep');
    for (let i = 0; i < 20; i++) await s.c.write(`/keep/f${i}`, randomBytes(100));
    const base = await s.liveRecords();
    for (let i = 0; i < 40; i++) {
      await s.c.write('/hot', randomBytes(3 * BLOCK_BYTES + 1 + i));
      const st = await s.c.stat();
      assert.is(await s.liveRecords(), st.records, `rewrite ${i}`);
    }
    assert.is(await s.liveRecords(), base + 5, 'the root\'s inode and block are replaced, not added to; /hot adds its inode and 4 blocks');
    await s.c.remove('/keep', { recursive: true });
    await s.c.remove('/hot');
    assert.is(await s.liveRecords(), 1, 'the root inode alone (an empty directory has no blocks)');
    assert.is((await s.c.stat()).leaked, 0);
  });
});

files('every refusal has its code, changes nothing, and the connection goes on', async () => {
  await withFiles(async (s) => {
    const { c } = s;
    await c.mkdir('/d');
    await c.write('/d/f', Buffer.from('f'));
    await c.mkdir('/e');
    await c.write('/g', Buffer.from('g'));
    const update = (await c.stat()).update;
    const cases: [string, () => Promise<unknown>, string][] = [
      ['read of a missing file', () => c.read('/nope'), 'SMFS_ERR_NOT_FOUND'],
      ['ls of a missing dir', () => c.list('/nope/x'), 'SMFS_ERR_NOT_FOUND'],
      ['rm of a missing file', () => c.remove('/d/nope'), 'SMFS_ERR_NOT_FOUND'],
      ['write into a missing dir', () => c.write('/nope/f', Buffer.from('x')), 'SMFS_ERR_NOT_FOUND'],
      ['mv of a missing file', () => c.rename('/nope', '/d/x'), 'SMFS_ERR_NOT_FOUND'],
      ['mv into a missing dir', () => c.rename('/g', '/nope/g'), 'SMFS_ERR_NOT_FOUND'],
      ['mkdir of an existing dir', () => c.mkdir('/d'), 'SMFS_ERR_EXISTS'],
      ['mkdir of an existing file', () => c.mkdir('/d/f'), 'SMFS_ERR_EXISTS'],
      ['mkdir of the root', () => c.mkdir('/'), 'SMFS_ERR_EXISTS'],
      ['write under a file', () => c.write('/d/f/g', Buffer.from('x')), 'SMFS_ERR_NOT_DIR'],
      ['read under a file', () => c.read('/d/f/g'), 'SMFS_ERR_NOT_DIR'],
      ['mkdir -p through a file', () => c.mkdir('/d/f/g', { parents: true }), 'SMFS_ERR_NOT_DIR'],
      ['mv a dir onto a file', () => c.rename('/e', '/g'), 'SMFS_ERR_NOT_DIR'],
      ['read of a dir', () => c.read('/d'), 'SMFS_ERR_IS_DIR'],
      ['write onto a dir', () => c.write('/d', Buffer.from('x')), 'SMFS_ERR_IS_DIR'],
      ['mv a file onto a dir', () => c.rename('/g', '/e'), 'SMFS_ERR_IS_DIR'],
      ['rm of a non-empty dir', () => c.remove('/d'), 'SMFS_ERR_NOT_EMPTY'],
      ['mv a dir onto a non-empty dir', () => c.rename('/e', '/d'), 'SMFS_ERR_NOT_EMPTY'],
      ['an empty component', () => c.read('/d//f'), 'SMFS_ERR_PATH'],
      ['an empty path', () => c.read(''), 'SMFS_ERR_PATH'],
      ['..', () => c.read('/d/../d/f'), 'SMFS_ERR_PATH'],
      ['NUL', () => c.write('/d/a\0b', Buffer.from('x')), 'SMFS_ERR_PATH'],
      ['a name too long', () => c.write(`/d/${'n'.repeat(256)}`, Buffer.from('x')), 'SMFS_ERR_PATH'],
      ['a path too long', () => c.read(`/${'d/'.repeat(2100)}f`), 'SMFS_ERR_PATH'],
      ['rm of the root', () => c.remove('/', { recursive: true }), 'SMFS_ERR_PATH'],
      ['mv of a dir into itself', () => c.rename('/d', '/d/sub'), 'SMFS_ERR_PATH'],
      ['a path that is not UTF-8', () => c.request(FileOp.read, [Buffer.of(0, 2, 0xc3, 0x28)]), 'SMFS_ERR_PATH'],
      ['a file over the limit', () => c.write('/huge', Buffer.alloc(MAX_FILE_BYTES + 1)), 'SMFS_ERR_TOO_LARGE'],
      ['a group over one append', () => c.group([0, 1].map((i) => ({ op: 'write' as const, path: `/h${i}`, data: Buffer.alloc(MAX_FILE_BYTES) }))), 'SMFS_ERR_TOO_LARGE'],
      ['unknown op', () => c.request(42), 'SMFS_ERR_FRAME'],
      ['a group with a read in it', () => c.request(FileOp.group, [encodeU32(1), Buffer.of(FileOp.read), encodeText('/d/f')]), 'SMFS_ERR_FRAME'],
      ['a body cut short', () => c.request(FileOp.write, [encodeText('/d/f'), encodeU32(10), Buffer.from('abc')]), 'SMFS_ERR_FRAME'],
      ['bytes left over', () => c.request(FileOp.read, [encodeText('/d/f'), Buffer.of(0)]), 'SMFS_ERR_FRAME'],
      ['unknown flags', () => c.request(FileOp.remove, [encodeText('/d/f'), Buffer.of(6)]), 'SMFS_ERR_REQUEST'],
    ];
    for (const [what, run, code] of cases) {
      await refusedWith(run(), code, what);
      assert.is((await c.read('/d/f')).toString(), 'f', `after ${what}`);
    }
    assert.equal((await c.list('/')).map((e) => e.name), ['d', 'e', 'g']);
    assert.is((await c.stat()).update, update, 'no refusal made an update');
  });
});

files('a log that is not a file server\'s is CORRUPT, an unknown log UNKNOWN_LOG, a storage server that is gone UNAVAILABLE', async () => {
  await withFiles(async (s) => {
    const placement = await s.metadata.create();
    const direct = await connectStorage(s.storage.at.port);
    await direct.append([{ log: placement.log, data: Buffer.from('not an inode') }]);
    await direct.close();
    await refusedWith(Volume.open(s.metadata.address, placement.log, testCredential()), 'SMFS_ERR_CORRUPT');
    await refusedWith(Volume.open(s.metadata.address, 999, testCredential()), 'SMFS_ERR_UNKNOWN_LOG');
    await s.c.write('/f', Buffer.from('f'));
    await s.storage.close();
    await refusedWith(s.c.write('/g', Buffer.from('g')), 'SMFS_ERR_UNAVAILABLE');
    await refusedWith(s.c.read('/f'), 'SMFS_ERR_UNAVAILABLE', 'a stale volume cannot reach storage to reload');
    s.storage = await startStorageHere(path.join(s.dir, 'storage'), s.storage.at.port);
    assert.is((await s.c.read('/f')).toString(), 'f', 'back once the storage server is');
    await refusedWith(s.c.read('/g'), 'SMFS_ERR_NOT_FOUND');
  });
});

// Group g writes /g/<g>-0, -1, -2 and /latest = g, and removes /g/<g-1>-2.
function groupChanges(g: number): { op: 'write' | 'remove'; path: string; data: Buffer }[] {
  const changes: { op: 'write' | 'remove'; path: string; data: Buffer }[] = [];
  if (g > 0) changes.push({ op: 'remove', path: `/g/${g - 1}-2`, data: Buffer.alloc(0) });
  for (let i = 0; i < 3; i++) changes.push({ op: 'write', path: `/g/${g}-${i}`, data: Buffer.alloc(((g * 7 + i * 3) % 5) * BLOCK_BYTES + 100 + g, (g + i) & 0xff) });
  changes.push({ op: 'write', path: '/latest', data: Buffer.from(String(g)) });
  return changes;
}

// The tree after groups 0..last, each wholly there, none of a later one.
async function checkGroups(c: FileClient, acknowledged: number): Promise<number> {
  const last = Number((await c.read('/latest')).toString());
  assert.ok(last >= acknowledged, `group ${last} is the newest there; ${acknowledged} was acknowledged`);
  const names = new Set((await c.list('/g')).map((e) => e.name));
  const expected = new Set<string>();
  for (let g = 0; g <= last; g++) for (let i = 0; i < (g === last ? 3 : 2); i++) expected.add(`${g}-${i}`);
  assert.equal([...names].sort(), [...expected].sort(), `groups 0..${last} wholly, nothing of later ones`);
  for (const name of names) {
    const g = Number(name.split('-')[0]);
    const want = groupChanges(g).find((ch) => ch.path === `/g/${name}`)!.data;
    assert.ok((await c.read(`/g/${name}`)).equals(want), name);
  }
  return last;
}

files('group updates under SIGKILL of the storage server: every group wholly there or wholly absent, after restarts of both', async () => {
  await withDir('crash', async (dir) => {
    const sdir = path.join(dir, 'storage');
    let storage = await startStorage(sdir);
    const port = storage.port;
    const at: Endpoint = { host: '127.0.0.1', port };
    const metadata = await MetadataServer.open(path.join(dir, 'meta'), [at], { port: 0, credential: testCredential() });
    let volume = await Volume.open(metadata.address, undefined, testCredential());
    let server = await FileServer.listen(volume, { port: 0, credential: testCredential() });
    let c = await FileClient.connect(server.address, testCredential());
    try {
      await c.mkdir('/g');
      let next = 0;
      let acknowledged = -1;
      const logDir = path.join(sdir, 'logs', String(volume.log));
      // Killed at an answer, the next group is on its way; killed when the log's segment next
      // changes after an answer, a group (or the free before it) is being written.
      for (const [killAfter, on] of [[3, 'answer'], [7, 'write'], [12, 'answer'], [5, 'write']] as const) {
        let acks = 0;
        let killed = false;
        const kill = () => {
          if (killed) return;
          killed = true;
          storage.child.kill('SIGKILL');
        };
        let armed = false;
        const watcher = fs.watch(logDir, () => { if (armed) kill(); });
        const inFlight: Promise<void>[] = [];
        // Four groups in flight.
        const send = (): Promise<void> => {
          if (killed) return Promise.resolve();
          const g = next++;
          return c.group(groupChanges(g)).then(
            () => {
              acknowledged = Math.max(acknowledged, g);
              if (++acks === killAfter) {
                if (on === 'answer') kill();
                else armed = true;
              }
              return send();
            },
            (err: { code?: string }) => assert.is(err.code, 'SMFS_ERR_UNAVAILABLE', String(err)),
          );
        };
        for (let k = 0; k < 4; k++) inFlight.push(send());
        await Promise.all(inFlight);
        watcher.close();
        assert.is((await storage.exited).signal, 'SIGKILL');
        storage = await startStorage(sdir, ['--port', String(port)]);
        const last = await checkGroups(c, acknowledged);
        next = last + 1;
        acknowledged = last;
      }
      // A file server started afresh on the log finds the same tree.
      await c.close();
      await server.close();
      volume = await Volume.open(metadata.address, volume.log, testCredential());
      server = await FileServer.listen(volume, { port: 0, credential: testCredential() });
      c = await FileClient.connect(server.address, testCredential());
      assert.is(await checkGroups(c, acknowledged), acknowledged);
      assert.ok(acknowledged + 1 >= 3 + 7 + 12 + 5, `${acknowledged + 1} groups committed over four kills`);
    } finally {
      await c.close();
      await server.close();
      await metadata.close();
      storage.child.kill('SIGTERM');
      await storage.exited;
    }
  });
});

files('the smfs commands end to end: metadata and file servers, write, read, ls, mkdir, rm, mv, put', async () => {
  await withDir('cli', async (dir) => {
    const storage = await startStorageHere(path.join(dir, 'storage'));
    const meta = await startSmfs(['metadata', '--dir', path.join(dir, 'meta'), '--storage', `127.0.0.1:${storage.at.port}`]);
    const metaAt = `127.0.0.1:${meta.listening.port as number}`;
    let filesChild = await startSmfs(['files', '--metadata', metaAt]);
    try {
      assert.is(filesChild.listening.created, true);
      const log = filesChild.listening.log as number;
      const smfs = (args: string[], input?: Buffer) => smfsCli([...args, '--server', `127.0.0.1:${filesChild.listening.port as number}`], input);
      const ok = async (args: string[], input?: Buffer) => {
        const r = await smfs(args, input);
        assert.is(r.status, 0, `${args.join(' ')}: ${r.stderr}`);
        return r.stdout;
      };
      await ok(['mkdir', '/docs']);
      await ok(['mkdir', '-p', '/a/b']);
      const body = randomBytes(10_000);
      await ok(['write', '/docs/stdin.bin'], body);
      const local = path.join(dir, 'local.txt');
      fs.writeFileSync(local, 'from a file\n');
      await ok(['write', '/docs/file.txt', local]);
      assert.ok((await ok(['read', '/docs/stdin.bin'])).equals(body));
      assert.is((await ok(['read', '/docs/file.txt'])).toString(), 'from a file\n');
      assert.match((await ok(['ls', '/docs'])).toString(), /^- +12 \S+ file\.txt\n- +10000 \S+ stdin\.bin\n$/);
      assert.equal(JSON.parse((await ok(['ls', '--json'])).toString()).map((e: { name: string }) => e.name), ['a', 'docs']);
      await ok(['mv', '/docs/file.txt', '/a/b/moved.txt']);
      await ok(['put', `/a/one=${local}`, `/a/two=${local}`, '--rm', '/docs/stdin.bin']);
      assert.equal(JSON.parse((await ok(['ls', '/a', '--json'])).toString()).map((e: { name: string }) => e.name), ['b', 'one', 'two']);
      await ok(['rm', '-r', '/a/b']);
      const missing = await smfs(['put', `/a/three=${local}`, '--rm', '/nope']);
      assert.is(missing.status, 1);
      assert.match(missing.stderr, /^smfs: \/nope: no such file or directory \[SMFS_ERR_NOT_FOUND\]\n$/);
      assert.equal(JSON.parse((await ok(['ls', '/a', '--json'])).toString()).map((e: { name: string }) => e.name), ['one', 'two'], 'the failed put changed nothing');
      const notEmpty = await smfs(['rm', '/a']);
      assert.is(notEmpty.status, 1);
      assert.match(notEmpty.stderr, /\[SMFS_ERR_NOT_EMPTY\]/);
      for (const args of [['put', 'noequals'], ['ls', '/', '--server', 'x'], ['write', '/f', path.join(dir, 'no-such-file')]]) {
        const r = await smfsCli(args);
        assert.is(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
        assert.match(r.stderr, /MAELSTROM_ERR_CONFIG/);
      }
      const gone = await smfsCli(['ls', '/', '--server', `127.0.0.1:${await freePort()}`]);
      assert.is(gone.status, 1);
      assert.match(gone.stderr, /\[SMFS_ERR_UNAVAILABLE\]/);
      filesChild.child.kill('SIGTERM');
      assert.is((await filesChild.exited).code, 0, filesChild.stderr());
      filesChild = await startSmfs(['files', '--metadata', metaAt, '--log', String(log)]);
      assert.is(filesChild.listening.created, false);
      assert.is(filesChild.listening.files, 2);
      assert.is((await ok(['read', '/a/two'])).toString(), 'from a file\n');
      for (const command of ['files', 'write', 'read', 'ls', 'mkdir', 'rm', 'mv', 'put']) {
        const help = await smfsCli([command, '--help']);
        assert.is(help.status, 0);
        assert.ok(help.stdout.toString().includes('Examples:'), command);
      }
    } finally {
      filesChild.child.kill('SIGTERM');
      meta.child.kill('SIGTERM');
      assert.is((await meta.exited).code, 0, meta.stderr());
      await filesChild.exited;
      await storage.close();
    }
  });
});

files.run();

