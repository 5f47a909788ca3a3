import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import path from 'node:path';
import { MetadataServer, MetadataOp, STATE_FILE } from '../../src/smfs/metadata';
import { MetadataClient } from '../../src/smfs/metadata-client';
import { encodeFrame, encodeU32 } from '../../src/smfs/wire';
import { connectStorage, testCredential, withDir } from '../helpers/smfs';
import { freePort, refusedWith, smfsCli, startStorageHere } from '../helpers/smfs-files';
import type { Storage } from '../helpers/smfs-files';

const metadata = suite('smfs metadata server');

async function withStorage(dir: string, n: number, fn: (s: Storage[]) => Promise<void>): Promise<void> {
  const servers: Storage[] = [];
  try {
    for (let i = 0; i < n; i++) servers.push(await startStorageHere(path.join(dir, `storage${i}`)));
    await fn(servers);
  } finally {
    for (const s of servers) await s.close();
  }
}

async function storageLogs(s: Storage): Promise<number[]> {
  return s.server.store.logIds();
}

metadata('create places logs on the storage server with the fewest (ties: the order given), lookup finds them, list counts them', async () => {
  await withDir('meta', async (dir) => {
    await withStorage(dir, 2, async ([a, b]) => {
      const m = await MetadataServer.open(path.join(dir, 'm'), [a.at, b.at], { port: 0, credential: testCredential() });
      const c = await MetadataClient.connect(m.address, testCredential());
      try {
        const made = [];
        for (let i = 0; i < 5; i++) made.push(await c.create());
        assert.equal(made.map((p) => p.log), [1, 2, 3, 4, 5]);
        assert.equal(made.map((p) => p.port), [a.at.port, b.at.port, a.at.port, b.at.port, a.at.port]);
        assert.equal(await storageLogs(a), [1, 3, 5], 'the logs exist on the storage server they were placed on');
        assert.equal(await storageLogs(b), [2, 4]);
        for (const p of made) assert.equal(await c.lookup(p.log), p);
        const list = await c.list();
        assert.equal(list.servers.map((s) => s.logs), [3, 2]);
        assert.is(list.nextLog, 6);
        assert.equal(list.intents, []);
      } finally {
        await c.close();
        await m.close();
      }
      // Given in the other order, the least loaded still wins: b has 2, a has 3.
      const again = await MetadataServer.open(path.join(dir, 'm'), [a.at, b.at], { port: 0, credential: testCredential() });
      try {
        assert.is((await again.create()).port, b.at.port);
        assert.is((await again.create()).port, a.at.port, 'a tie (3 and 3) goes to the one named first');
      } finally {
        await again.close();
      }
    });
  });
});

metadata('the state survives a restart: lookups answer, ids go on, the file is whole JSON', async () => {
  await withDir('meta', async (dir) => {
    await withStorage(dir, 1, async ([a]) => {
      const mdir = path.join(dir, 'm');
      const first = await MetadataServer.open(mdir, [a.at], { port: 0, credential: testCredential() });
      const one = await first.create();
      const two = await first.create();
      await first.close();
      const state = JSON.parse(fs.readFileSync(path.join(mdir, STATE_FILE), 'utf8'));
      assert.equal(state, { version: 1, nextLog: 3, logs: [one, two], intents: [] });
      assert.not.ok(fs.existsSync(path.join(mdir, `${STATE_FILE}.tmp`)));
      const second = await MetadataServer.open(mdir, [a.at], { port: 0, credential: testCredential() });
      const c = await MetadataClient.connect(second.address, testCredential());
      try {
        assert.equal(await c.lookup(2), two);
        assert.is((await c.create()).log, 3);
      } finally {
        await c.close();
        await second.close();
      }
    });
  });
});

metadata('an intent left by a crash is completed if its log exists and dropped if not; its id is never given out again', async () => {
  await withDir('meta', async (dir) => {
    await withStorage(dir, 1, async ([a]) => {
      const mdir = path.join(dir, 'm');
      fs.mkdirSync(mdir);
      // Crashed after create-log of 7 was done, and before create-log of 8 was sent.
      const direct = await connectStorage(a.at.port);
      await direct.createLog(7);
      await direct.close();
      const at = { host: a.at.host, port: a.at.port };
      fs.writeFileSync(path.join(mdir, STATE_FILE), JSON.stringify({ version: 1, nextLog: 9, logs: [], intents: [{ log: 7, ...at }, { log: 8, ...at }] }));
      fs.writeFileSync(path.join(mdir, `${STATE_FILE}.tmp`), 'half a write');
      const m = await MetadataServer.open(mdir, [a.at], { port: 0, credential: testCredential() });
      try {
        assert.equal(m.intents, { completed: [7], dropped: [8], pending: [] });
        assert.equal(await m.lookup(7), { log: 7, ...at });
        await refusedWith(m.lookup(8), 'SMFS_ERR_UNKNOWN_LOG');
        assert.is((await m.create()).log, 9, 'the dropped id 8 is not given out');
        assert.equal(await storageLogs(a), [7, 9]);
        assert.not.ok(fs.existsSync(path.join(mdir, `${STATE_FILE}.tmp`)), 'a half-written state file is removed');
      } finally {
        await m.close();
      }
    });
  });
});

metadata('an intent whose storage server is down stays pending; a lookup settles it once the server is back', async () => {
  await withDir('meta', async (dir) => {
    const port = await freePort();
    const mdir = path.join(dir, 'm');
    fs.mkdirSync(mdir);
    fs.writeFileSync(path.join(mdir, STATE_FILE), JSON.stringify({ version: 1, nextLog: 4, logs: [], intents: [{ log: 3, host: '127.0.0.1', port }] }));
    const m = await MetadataServer.open(mdir, [{ host: '127.0.0.1', port }], { port: 0, credential: testCredential() });
    try {
      assert.equal(m.intents.pending, [3]);
      await refusedWith(m.lookup(3), 'SMFS_ERR_UNAVAILABLE');
      const s = await startStorageHere(path.join(dir, 's'), port);
      try {
        await s.server.store.createLog(3);
        assert.equal(await m.lookup(3), { log: 3, host: '127.0.0.1', port });
        assert.equal(m.list().intents, []);
      } finally {
        await s.close();
      }
    } finally {
      await m.close();
    }
  });
});

metadata('an unreachable storage server is SMFS_ERR_UNAVAILABLE and uses up no id', async () => {
  await withDir('meta', async (dir) => {
    const port = await freePort();
    const m = await MetadataServer.open(path.join(dir, 'm'), [{ host: '127.0.0.1', port }], { port: 0, credential: testCredential() });
    const at = m.address;
    const c = await MetadataClient.connect(at, testCredential());
    try {
      const message = await refusedWith(c.create(), 'SMFS_ERR_UNAVAILABLE');
      assert.match(message, new RegExp(`127\\.0\\.0\\.1:${port}`));
      assert.equal(await c.list(), { nextLog: 1, servers: [{ host: '127.0.0.1', port, logs: 0 }], logs: [], intents: [] });
    } finally {
      await c.close();
      await m.close();
    }
    await refusedWith(MetadataClient.connect(at, testCredential()), 'SMFS_ERR_UNAVAILABLE', 'a metadata server that is gone');
  });
});

metadata('bad requests get their codes and the connection goes on', async () => {
  await withDir('meta', async (dir) => {
    await withStorage(dir, 1, async ([a]) => {
      const m = await MetadataServer.open(path.join(dir, 'm'), [a.at], { port: 0, credential: testCredential() });
      const c = await MetadataClient.connect(m.address, testCredential());
      try {
        const made = await c.create();
        const cases: [string, number, Buffer[], string][] = [
          ['unknown op', 42, [], 'SMFS_ERR_FRAME'],
          ['lookup cut short', MetadataOp.lookup, [Buffer.of(0, 1)], 'SMFS_ERR_FRAME'],
          ['create with a body', MetadataOp.create, [Buffer.of(1)], 'SMFS_ERR_FRAME'],
          ['unknown log', MetadataOp.lookup, [encodeU32(99)], 'SMFS_ERR_UNKNOWN_LOG'],
        ];
        for (const [what, op, body, code] of cases) {
          await refusedWith(c.request(op, body), code);
          assert.equal(await c.lookup(made.log), made, `after ${what}`);
        }
        const bad = Buffer.concat(encodeFrame(MetadataOp.list, 77));
        bad.writeUInt16BE(0x1234, 4);
        const answer = c.expect(77, MetadataOp.list);
        c.writeRaw(bad);
        await refusedWith(answer, 'SMFS_ERR_FRAME');
        assert.is((await c.list()).logs.length, 1, 'after bad magic');
      } finally {
        await c.close();
        await m.close();
      }
    });
  });
});

metadata('a damaged state file or a directory in use refuses to open', async () => {
  await withDir('meta', async (dir) => {
    const mdir = path.join(dir, 'm');
    fs.mkdirSync(mdir);
    const at = [{ host: '127.0.0.1', port: await freePort() }];
    fs.writeFileSync(path.join(mdir, STATE_FILE), '{"version":1,');
    await refusedWith(MetadataServer.open(mdir, at, { port: 0, credential: testCredential() }), 'SMFS_ERR_CORRUPT');
    fs.writeFileSync(path.join(mdir, STATE_FILE), '{"version":1,"nextLog":"x","logs":[],"intents":[]}');
    await refusedWith(MetadataServer.open(mdir, at, { port: 0, credential: testCredential() }), 'SMFS_ERR_CORRUPT');
    fs.rmSync(path.join(mdir, STATE_FILE));
    const held = await MetadataServer.open(mdir, at, { port: 0, credential: testCredential() });
    try {
      await refusedWith(MetadataServer.open(mdir, at, { port: 0, credential: testCredential() }), 'SMFS_ERR_LOCKED');
    } finally {
      await held.close();
    }
  });
});

metadata('smfs metadata refuses bad options with exit 2', async () => {
  await withDir('meta', async (dir) => {
    const cases: [string[], RegExp][] = [
      [['metadata', '--dir', dir], /--storage/],
      [['metadata', '--dir', dir, '--storage', 'nohost'], /--storage takes HOST:PORT.*MAELSTROM_ERR_CONFIG/],
      [['metadata', '--dir', dir, '--storage', '127.0.0.1:1,127.0.0.1:1'], /names 127\.0\.0\.1:1 twice/],
      [['metadata', '--dir', dir, '--storage', '127.0.0.1:1', '--port', '70000'], /--port is from 0 to 65535/],
    ];
    for (const [args, message] of cases) {
      const r = await smfsCli(args);
      assert.is(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, message);
    }
    const help = await smfsCli(['metadata', '--help']);
    assert.is(help.status, 0);
    for (const word of ['--dir', '--storage', '--port', 'Examples:']) assert.ok(help.stdout.toString().includes(word), word);
  });
});

metadata.run();
