// The file server's protocol version 2, what a mount needs: nodes made with attributes
// (files, directories, symlinks), changes in place (attributes, and a file's content as kept
// bytes, extents and a size), ranges read, the whole tree's metadata, statfs, and commits
// acknowledged at a level; and logs written by version 1 still read.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { MetadataServer } from '../../src/smfs/metadata';
import { FileClient } from '../../src/smfs/fs/client';
import { BLOCK_BYTES, INODE_MAGIC, MAX_FILE_BYTES } from '../../src/smfs/fs/format';
import { FileOp } from '../../src/smfs/fs/protocol';
import { FileServer } from '../../src/smfs/fs/server';
import { Volume } from '../../src/smfs/fs/volume';
import type { Change, ContentPatch } from '../../src/smfs/fs/tree';
import { encodeU32 } from '../../src/smfs/wire';
import { encodeText } from '../../src/smfs/text';
import { LogStore } from '../../src/smfs/store';
import { StorageServer } from '../../src/smfs/server';
import { MirrorLink, writeRole } from '../../src/smfs/mirror';
import { until } from '../helpers/until';
import { connectStorage, testCredential, withDir } from '../helpers/smfs';
import { refusedWith, startStorageHere } from '../helpers/smfs-files';
import type { Storage } from '../helpers/smfs-files';

interface Setup {
  storage: Storage;
  metadata: MetadataServer;
  server: FileServer;
  c: FileClient;
  log: number;
  restart(): Promise<void>;
  liveRecords(): number;
}

async function withFiles(fn: (s: Setup) => Promise<void>, log?: (storage: Storage, metadata: MetadataServer) => Promise<number>): Promise<void> {
  await withDir('files-v2', async (dir) => {
    const storage = await startStorageHere(path.join(dir, 'storage'));
    const metadata = await MetadataServer.open(path.join(dir, 'meta'), [storage.at], { port: 0, credential: testCredential() });
    const volume = await Volume.open(metadata.address, log ? await log(storage, metadata) : undefined, testCredential());
    const s: Setup = {
      storage, metadata, log: volume.log,
      server: await FileServer.listen(volume, { port: 0, credential: testCredential() }),
      c: undefined as unknown as FileClient,
      async restart() {
        await s.c.close();
        await s.server.close();
        s.server = await FileServer.listen(await Volume.open(metadata.address, s.log, testCredential()), { port: 0, credential: testCredential() });
        s.c = await FileClient.connect(s.server.address, testCredential());
      },
      liveRecords: () => storage.server.store.stat().logs.find((l) => l.id === s.log)!.liveRecords,
    };
    s.c = await FileClient.connect(s.server.address, testCredential());
    try {
      await fn(s);
    } finally {
      await s.c.close();
      await s.server.close();
      await metadata.close();
      await storage.close();
    }
  });
}

const T = { s: 1_700_000_000, ns: 123_456_789 };
const v2 = suite('smfs file server, protocol version 2');

v2('make, patch, read-range, tree and statfs; attributes, symlinks and nanosecond mtimes survive a restart', async () => {
  await withFiles(async (s) => {
    const update = await s.c.commit([
      { op: 'make', path: '/d', type: 'dir', mode: 0o750, uid: 1000, gid: 100, mtime: T },
      { op: 'make', path: '/d/f', type: 'file', mode: 0o600, uid: 1000, gid: 100, mtime: T },
      { op: 'make', path: '/d/l', type: 'symlink', mode: 0o777, uid: 0, gid: 0, mtime: T, target: '../d/f' },
      { op: 'patch', path: '/d/f', content: { keep: 0, size: 10_000, extents: [{ offset: 0, data: Buffer.alloc(5000, 1) }, { offset: 9000, data: Buffer.alloc(1000, 2) }] } },
      { op: 'patch', path: '/d/f', mtime: { s: T.s + 1, ns: 7 } },
    ], { level: 'local' });
    assert.ok(update > 0);
    const expect = Buffer.concat([Buffer.alloc(5000, 1), Buffer.alloc(4000), Buffer.alloc(1000, 2)]);
    const check = async () => {
      assert.ok((await s.c.read('/d/f')).equals(expect));
      assert.ok((await s.c.readRange('/d/f', 4990, 20)).equals(expect.subarray(4990, 5010)));
      assert.ok((await s.c.readRange('/d/f', 9990, 100)).equals(expect.subarray(9990)), 'short at the end');
      assert.is((await s.c.readRange('/d/f', 20_000, 100)).length, 0, 'nothing past the end');
      const { root } = await s.c.tree();
      const d = root.entries!.find((e) => e.name === 'd')!;
      assert.equal({ ...d, entries: undefined }, { name: 'd', type: 'dir', mode: 0o750, uid: 1000, gid: 100, size: 2, mtime: d.mtime, entries: undefined });
      assert.equal(d.entries, [
        { name: 'f', type: 'file', mode: 0o600, uid: 1000, gid: 100, size: 10_000, mtime: [T.s + 1, 7] },
        { name: 'l', type: 'symlink', mode: 0o777, uid: 0, gid: 0, size: 6, mtime: [T.s, T.ns], target: '../d/f' },
      ]);
      assert.equal((await s.c.list('/d')).map((e) => [e.name, e.type, e.size]), [['f', 'file', 10_000], ['l', 'symlink', 6]]);
      const fs = await s.c.statfs();
      assert.equal([fs.files, fs.dirs, fs.symlinks, fs.bytes, fs.blockBytes, fs.maxFileBytes], [1, 2, 1, 10_000, BLOCK_BYTES, MAX_FILE_BYTES]);
      assert.ok(fs.disk && fs.disk.totalBytes > 0 && fs.disk.freeBytes <= fs.disk.totalBytes, 'the storage server\'s disk');
    };
    await check();
    await s.c.commit([{ op: 'patch', path: '/d', mode: 0o755, mtime: T }]);
    assert.is((await s.c.tree()).root.entries![0].mode, 0o755, 'a directory\'s attributes patched');
    await s.c.commit([{ op: 'patch', path: '/d', mode: 0o750 }]);
    await s.restart();
    await check();
    assert.is(s.liveRecords(), (await s.c.stat()).records, 'nothing leaked');
  });
});

// A file's content in a model and on the server, patched at random (kept prefixes, extents
// overlapping each other and block edges, sizes up and down), restarted now and then.
v2('random patches read back as the model says, keep committed blocks where they can, and free the rest', async () => {
  await withFiles(async (s) => {
    let seed = 42;
    const rnd = (n: number) => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    const models = new Map<string, Buffer>();
    for (const name of ['a', 'b', 'c']) {
      await s.c.commit([{ op: 'make', path: `/${name}`, type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: T }]);
      models.set(`/${name}`, Buffer.alloc(0));
    }
    for (let round = 0; round < 60; round++) {
      const changes: Change[] = [];
      for (const [p, model] of models) {
        if (rnd(3) === 0) continue;
        const size = rnd(5) === 0 ? rnd(4) * BLOCK_BYTES : rnd(12 * BLOCK_BYTES);
        const keep = rnd(2) === 0 ? model.length : rnd(model.length + 1);
        const next = Buffer.alloc(size);
        model.copy(next, 0, 0, Math.min(keep, size));
        const extents: ContentPatch['extents'] = [];
        for (let k = rnd(4); k > 0 && size > 0; k--) {
          const offset = rnd(size);
          const data = randomBytes(Math.min(size - offset, 1 + rnd(3 * BLOCK_BYTES)));
          extents.push({ offset, data });
          data.copy(next, offset);
        }
        changes.push({ op: 'patch', path: p, content: { keep, size, extents } });
        models.set(p, next);
      }
      if (changes.length > 0) await s.c.commit(changes);
      if (round % 20 === 19) await s.restart();
      for (const [p, model] of models) assert.ok((await s.c.read(p)).equals(model), `${p} after round ${round}`);
      assert.is(s.liveRecords(), (await s.c.stat()).records, `round ${round}: the live records are the reachable ones`);
    }
  });
});

v2('a patch that changes one block of a large file appends that block and the inode, not the file', async () => {
  await withFiles(async (s) => {
    await s.c.commit([{ op: 'make', path: '/big', type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: T },
      { op: 'patch', path: '/big', content: { keep: 0, size: 256 * BLOCK_BYTES, extents: [{ offset: 0, data: randomBytes(256 * BLOCK_BYTES) }] } }]);
    const before = s.storage.server.store.stat().logs.find((l) => l.id === s.log)!.bytes;
    await s.c.commit([{ op: 'patch', path: '/big', content: { keep: 256 * BLOCK_BYTES, size: 256 * BLOCK_BYTES, extents: [{ offset: 100 * BLOCK_BYTES + 5, data: Buffer.from('x') }] } }]);
    const grew = s.storage.server.store.stat().logs.find((l) => l.id === s.log)!.bytes - before;
    assert.ok(grew < 3 * BLOCK_BYTES + 256 * 12 + 1024, `the log grew by ${grew} bytes: one block, the inode and the root`);
  });
});

v2('version 2 refusals have their codes and change nothing', async () => {
  await withFiles(async (s) => {
    const { c } = s;
    await c.commit([{ op: 'make', path: '/d', type: 'dir', mode: 0o755, uid: 0, gid: 0, mtime: T }, { op: 'make', path: '/f', type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: T }]);
    const update = (await c.stat()).update;
    const make = (p: string, extra: Partial<Extract<Change, { op: 'make' }>> = {}): Change => ({ op: 'make', path: p, type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: T, ...extra });
    const cases: [string, () => Promise<unknown>, string][] = [
      ['make of an existing path', () => c.commit([make('/f')]), 'SMFS_ERR_EXISTS'],
      ['make in a missing directory', () => c.commit([make('/nope/f')]), 'SMFS_ERR_NOT_FOUND'],
      ['make under a file', () => c.commit([make('/f/g')]), 'SMFS_ERR_NOT_DIR'],
      ['a symlink without a target', () => c.commit([make('/l', { type: 'symlink', target: '' })]), 'SMFS_ERR_PATH'],
      ['a symlink target too long', () => c.commit([make('/l', { type: 'symlink', target: 'x'.repeat(4096) })]), 'SMFS_ERR_PATH'],
      ['patch of a missing file', () => c.commit([{ op: 'patch', path: '/nope', mode: 0o600 }]), 'SMFS_ERR_NOT_FOUND'],
      ['content for a directory', () => c.commit([{ op: 'patch', path: '/d', content: { keep: 0, size: 1, extents: [] } }]), 'SMFS_ERR_IS_DIR'],
      ['an extent past the size', () => c.commit([{ op: 'patch', path: '/f', content: { keep: 0, size: 4, extents: [{ offset: 2, data: Buffer.from('abc') }] } }]), 'SMFS_ERR_REQUEST'],
      ['a size over the limit', () => c.commit([{ op: 'patch', path: '/f', content: { keep: 0, size: MAX_FILE_BYTES + 1, extents: [] } }]), 'SMFS_ERR_TOO_LARGE'],
      ['read-range of a directory', () => c.readRange('/d', 0, 10), 'SMFS_ERR_IS_DIR'],
      ['a level this storage server cannot give', () => c.commit([make('/g')], { level: 'remote' }), 'SMFS_ERR_REQUEST'],
      ['an unknown level', () => c.request(FileOp.commit, [Buffer.of(9), encodeU32(0)]), 'SMFS_ERR_REQUEST'],
      ['an unknown type', () => c.request(FileOp.make, [encodeText('/x'), Buffer.of(7), Buffer.alloc(12), Buffer.alloc(12), encodeText('')]), 'SMFS_ERR_REQUEST'],
      ['a time of 10^9 ns', () => c.request(FileOp.make, [encodeText('/x'), Buffer.of(1), Buffer.alloc(12), Buffer.alloc(8), encodeU32(1e9), encodeText('')]), 'SMFS_ERR_REQUEST'],
      ['a file with a target', () => c.request(FileOp.make, [encodeText('/x'), Buffer.of(1), Buffer.alloc(24), encodeText('t')]), 'SMFS_ERR_REQUEST'],
      ['unknown patch flags', () => c.request(FileOp.patch, [encodeText('/f'), Buffer.of(32), Buffer.alloc(24)]), 'SMFS_ERR_REQUEST'],
      ['more extents than the body holds', () => c.request(FileOp.patch, [encodeText('/f'), Buffer.of(16), Buffer.alloc(24), Buffer.alloc(16), encodeU32(1e6)]), 'SMFS_ERR_FRAME'],
    ];
    for (const [what, run, code] of cases) await refusedWith(run(), code, what);
    assert.is((await c.stat()).update, update, 'no refusal made an update');
    assert.equal((await c.list('/')).map((e) => e.name), ['d', 'f']);
  });
});

// A version 1 inode, as the file server wrote them before version 2.
function inodeV1(type: 1 | 2, size: number, mtimeMs: number, update: number, pointers: Buffer[], root: boolean): Buffer {
  const b = Buffer.alloc(36);
  b.writeUInt32BE(INODE_MAGIC, 0);
  b[4] = 1;
  b[5] = type;
  b[6] = root ? 1 : 0;
  b.writeBigUInt64BE(BigInt(size), 8);
  b.writeBigUInt64BE(BigInt(mtimeMs), 16);
  b.writeBigUInt64BE(BigInt(update), 24);
  b.writeUInt32BE(pointers.length, 32);
  return Buffer.concat([b, ...pointers]);
}

function relative(back: number): Buffer {
  const p = Buffer.alloc(12);
  p.writeUInt32BE(0xffffffff, 0);
  p.writeUInt32BE(back, 8);
  return p;
}

v2('a log of version 1 inodes reads, with default modes, and is written on in version 2', async () => {
  const ms = 1_600_000_000_123;
  await withFiles(async (s) => {
    assert.is((await s.c.read('/old')).toString(), 'hello');
    const { root } = await s.c.tree();
    assert.equal(root.entries, [{ name: 'old', type: 'file', mode: 0o644, uid: 0, gid: 0, size: 5, mtime: [1_600_000_000, 123_000_000] }]);
    assert.is(root.mode, 0o755);
    await s.c.commit([{ op: 'patch', path: '/old', content: { keep: 5, size: 11, extents: [{ offset: 5, data: Buffer.from(' world') }] } }]);
    await s.restart();
    assert.is((await s.c.read('/old')).toString(), 'hello world');
  }, async (storage, metadata) => {
    const { log } = await metadata.create();
    // data (8+5), file inode (8+36+12), directory block (8+6+1+3+12), root inode.
    const data = Buffer.from('hello');
    const file = inodeV1(1, 5, ms, 1, [relative(8 + 5)], false);
    const dirBlock = Buffer.alloc(6 + 1 + 3 + 12);
    dirBlock.writeUInt32BE(0x534d4442, 0);
    dirBlock.writeUInt16BE(1, 4);
    dirBlock[6] = 3;
    dirBlock.write('old', 7);
    relative(8 + file.length).copy(dirBlock, 10);
    const rootInode = inodeV1(2, 1, ms, 1, [relative(8 + dirBlock.length)], true);
    const c = await connectStorage(storage.at.port);
    await c.append([data, file, dirBlock, rootInode].map((d) => ({ log, data: d })));
    await c.close();
    return log;
  });
});

v2('commit at tagged: refused without a mirror; with one, answered with the group\'s sequence number and the watermark, which tag-state then shows passing it', async () => {
  await withFiles(async (s) => {
    assert.equal(await s.c.tagState(), { update: 1, role: 'primary', mirrored: null });
    await refusedWith(s.c.commitTagged([{ op: 'write', path: '/x', data: Buffer.from('x') }]), 'SMFS_ERR_REQUEST');
  });
  await withDir('files-tagged', async (dir) => {
    fs.mkdirSync(path.join(dir, 'm'));
    writeRole(path.join(dir, 'm'), 'mirror');
    const mirrorStore = await LogStore.open(path.join(dir, 'm'), { segmentBytes: 1 << 20, mirror: true });
    const mirror = await StorageServer.listen(mirrorStore, { credential: testCredential(), port: 0, role: 'mirror' });
    const store = await LogStore.open(path.join(dir, 'p'), { segmentBytes: 1 << 20 });
    const link = new MirrorLink(store, { host: '127.0.0.1', port: mirror.address.port, credential: testCredential(), ackTimeoutMs: 10_000, retryMs: 50 });
    const primary = await StorageServer.listen(store, { credential: testCredential(), port: 0, mirror: link });
    const at = { host: '127.0.0.1', port: primary.address.port };
    const metadata = await MetadataServer.open(path.join(dir, 'meta'), [at], { port: 0, credential: testCredential() });
    const server = await FileServer.listen(await Volume.open(metadata.address, undefined, testCredential()), { port: 0, credential: testCredential() });
    const c = await FileClient.connect(server.address, testCredential());
    try {
      const r = await c.commitTagged([{ op: 'write', path: '/a', data: Buffer.from('tagged') }]);
      assert.is(r.update, 2);
      assert.ok(r.seq > 0 && r.mirrored <= r.seq, JSON.stringify(r));
      assert.equal(await c.commitTagged([{ op: 'mkdir', path: '/', parents: true }]), { update: 2, seq: 0, mirrored: 0 }, 'nothing changed: nothing to keep');
      let state = await c.tagState();
      assert.ok(await until(() => { void c.tagState().then((t) => { state = t; }, () => undefined); return (state.mirrored ?? 0) >= r.seq; }, 10_000), JSON.stringify(state));
      assert.is(state.role, 'primary');
      assert.is(state.update, 2);
      assert.is((await c.read('/a')).toString(), 'tagged');
    } finally {
      await c.close();
      await server.close();
      await metadata.close();
      await primary.close();
      await mirror.close();
    }
  });
});

v2.run();
