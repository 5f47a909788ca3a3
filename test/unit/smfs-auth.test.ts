// Authenticated SMFS: a peer without the deployment's credential is refused SMFS_ERR_AUTH, at
// every server and for every request, and counted, while authorised clients go on; the
// handshake holds against garbage, cut-off and slow input; a mirror refuses a primary with
// another credential; and the credential file itself (made 0600, refused when others may
// read it).
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { AuthOp } from '../../src/smfs/auth';
import { StorageClient } from '../../src/smfs/client';
import { createCredential, credentialFromSecret, readCredential } from '../../src/smfs/credentials';
import type { Credential } from '../../src/smfs/credentials';
import { decodeError, encodeAddress, encodeFrame, encodeU32, FrameReader, ALL_LOGS, Op } from '../../src/smfs/wire';
import type { Frame } from '../../src/smfs/wire';
import { crc32 } from '../../src/smfs/checksum';
import { LogStore } from '../../src/smfs/store';
import { StorageServer } from '../../src/smfs/server';
import { MirrorLink, writeRole } from '../../src/smfs/mirror';
import { MetadataOp, MetadataServer } from '../../src/smfs/metadata';
import { MetadataClient } from '../../src/smfs/metadata-client';
import { FileOp } from '../../src/smfs/fs/protocol';
import { FileClient } from '../../src/smfs/fs/client';
import { FileServer } from '../../src/smfs/fs/server';
import { Volume } from '../../src/smfs/fs/volume';
import { SMFS_BIN, connectStorage, refusedWith, startStorage, testCredential, withDir } from '../helpers/smfs';
import { startStorageHere } from '../helpers/smfs-files';

const local = (port: number) => ({ host: '127.0.0.1', port });

// Another deployment's credential, and one that has this deployment's key id but not its key.
function otherCredentials(dir: string): { other: Credential; forged: Credential } {
  const other = createCredential(path.join(dir, 'other-credentials'));
  const real = testCredential();
  const forged = { ...credentialFromSecret(crypto.randomBytes(32), 'forged'), keyId: real.keyId, pskIdentity: real.pskIdentity };
  return { other, forged };
}

// A raw connection that has not authenticated: what it receives, and when the server closes it.
async function rawConnection(port: number): Promise<{ socket: net.Socket; frames: Frame[]; closed: Promise<void> }> {
  const socket = net.connect(port, '127.0.0.1');
  await new Promise((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  socket.on('error', () => undefined);
  const reader = new FrameReader(true);
  const frames: Frame[] = [];
  socket.on('data', (chunk: Buffer) => frames.push(...reader.push(chunk)));
  const closed = new Promise<void>((resolve, reject) => {
    const guard = setTimeout(() => reject(new Error('the server did not close the connection within 5 s')), 5000);
    socket.once('close', () => {
      clearTimeout(guard);
      resolve();
    });
  });
  return { socket, frames, closed };
}

// One request sent without authenticating: the server's one answer, after which it closes.
async function unauthenticated(port: number, op: number, body: Uint8Array[], id: number): Promise<{ code: string; message: string }> {
  const c = await rawConnection(port);
  c.socket.write(Buffer.concat(encodeFrame(op, id, body)));
  await c.closed;
  assert.is(c.frames.length, 1, 'one answer, then the connection is closed');
  const f = c.frames[0];
  assert.is(f.kind, 'frame');
  if (f.kind !== 'frame') throw new Error('unreachable');
  assert.is(f.op, op | 0x80, 'answered under the op');
  assert.is(f.id, id, 'and the request id');
  assert.is(f.body[0], 1, 'an error');
  const e = decodeError(f.body.subarray(1));
  return { code: e.code, message: e.message };
}

function appendBody(log: number, data: Buffer): Buffer[] {
  const h = Buffer.alloc(12);
  h.writeUInt32BE(log, 0);
  h.writeUInt32BE(data.length, 4);
  h.writeUInt32BE(crc32(data), 8);
  return [encodeU32(0), encodeU32(1), h, data];
}

async function withStorage(fn: (server: StorageServer, c: StorageClient, dir: string) => Promise<void>, options: { role?: 'mirror'; authTimeoutMs?: number } = {}): Promise<void> {
  await withDir('auth', async (dir) => {
    const sdir = path.join(dir, 'store');
    fs.mkdirSync(sdir);
    if (options.role) writeRole(sdir, 'mirror');
    const store = await LogStore.open(sdir, { mirror: options.role === 'mirror' });
    const server = await StorageServer.listen(store, { port: 0, credential: testCredential(), role: options.role, authTimeoutMs: options.authTimeoutMs });
    const c = await connectStorage(server.address.port);
    try {
      await fn(server, c, dir);
    } finally {
      await c.close();
      await server.close();
    }
  });
}

// Appends from an authorised client until stopped: how many, all answered.
function steadyAppends(c: StorageClient, log: number): { stop(): Promise<number> } {
  let stopping = false;
  let n = 0;
  const loop = (async () => {
    while (!stopping) {
      await c.append([{ log, data: Buffer.from(`steady ${n}`) }]);
      n++;
    }
  })();
  return { stop: async () => { stopping = true; await loop; return n; } };
}

const auth = suite('smfs authentication');

auth('a client without the credential cannot create, append, read, free, clean, sync, tail or stat: each request is answered SMFS_ERR_AUTH and counted, and an authorised client goes on', async () => {
  await withStorage(async (server, c) => {
    await c.createLog(1);
    const [kept] = await c.append([{ log: 1, data: Buffer.from('kept') }]);
    const before = (await c.stat()).lastSeq;
    const steady = steadyAppends(c, 1);
    const attempts: [string, number, Uint8Array[]][] = [
      ['create-log', Op.createLog, [encodeU32(2)]],
      ['append', Op.append, appendBody(1, Buffer.from('intruder'))],
      ['read', Op.read, [encodeAddress(kept)]],
      ['free', Op.free, [encodeU32(1), encodeAddress(kept)]],
      ['clean', Op.clean, [encodeU32(ALL_LOGS), Buffer.of(100)]],
      ['sync', Op.sync, []],
      ['tail', Op.tail, [encodeU32(1)]],
      ['stat', Op.stat, []],
      ['mirror-hello', Op.mirrorHello, []],
      ['auth-proof before auth-hello', AuthOp.proof, [Buffer.alloc(32)]],
    ];
    for (const [what, op, body] of attempts) {
      const r = await unauthenticated(server.address.port, op, body, 100 + op);
      assert.is(r.code, 'SMFS_ERR_AUTH', what);
      assert.match(r.message, /credential/, what);
    }
    const appended = await steady.stop();
    assert.ok(appended > 0, 'the authorised client appended all along');
    assert.is((await c.read(kept)).toString(), 'kept', 'the free was not applied');
    const st = await c.stat();
    assert.is(st.lastSeq, before + appended, "no group but the authorised client's");
    assert.equal(st.logs.map((l) => l.id), [1], 'no log created');
    assert.is(st.server.authFailed, attempts.length, 'every refusal counted');
    assert.is(st.server.connections, 1);
    assert.is(st.server.refused.SMFS_ERR_AUTH, undefined, 'none of them reached a dispatch');
  });
});

auth('a client with a wrong credential is refused SMFS_ERR_AUTH at connect, plain or over TLS, and a mirror it would promote stays a mirror', async () => {
  await withStorage(async (server, c, dir) => {
    const { other, forged } = otherCredentials(dir);
    const cases: [string, Credential, boolean, RegExp][] = [
      ["another deployment's", other, false, /refused our credential: the client's credential is another deployment's/],
      ["another deployment's, TLS", other, true, /TLS-PSK handshake with the storage server at .* failed/],
      ['the right key id without the key', forged, false, /did not prove it holds our credential/],
      ['the right key id without the key, TLS', forged, true, /TLS-PSK handshake with the storage server at .* failed/],
    ];
    for (const [what, credential, tls, message] of cases) {
      const m = await refusedWith(StorageClient.connect(local(server.address.port), credential, { tls }), 'SMFS_ERR_AUTH', what);
      assert.match(m, message, what);
    }
    const r = await unauthenticated(server.address.port, Op.promote, [], 5);
    assert.is(r.code, 'SMFS_ERR_AUTH');
    // A client that knows the key id and sends a proof it made up.
    const raw = await rawConnection(server.address.port);
    raw.socket.write(Buffer.concat(encodeFrame(AuthOp.hello, 1, [Buffer.of(1), Buffer.from(testCredential().keyId, 'hex'), crypto.randomBytes(32)])));
    raw.socket.write(Buffer.concat(encodeFrame(AuthOp.proof, 2, [crypto.randomBytes(32)])));
    await raw.closed;
    assert.is(raw.frames.length, 2);
    const [hello, proof] = raw.frames;
    assert.ok(hello.kind === 'frame' && hello.body[0] === 0 && hello.body.length === 65, 'the server answered hello with its nonce and proof');
    assert.ok(proof.kind === 'frame' && proof.body[0] === 1);
    if (proof.kind === 'frame') assert.match(decodeError(proof.body.subarray(1)).message, /proof does not check out/);
    const st = await c.stat();
    assert.is(st.role, 'mirror', 'not promoted');
    assert.is(st.server.authFailed, cases.length + 2);
    // The authorised client promotes it.
    await c.promote();
    assert.is((await c.stat()).role, 'primary');
  }, { role: 'mirror' });
});

auth('a server that cannot prove it holds the credential is refused by the client before it sends anything', async () => {
  await withDir('auth-server', async (dir) => {
    const { forged } = otherCredentials(dir);
    // A server of another deployment, with our key id: it answers the hello with a proof made with another key.
    const store = await LogStore.open(path.join(dir, 'impostor'));
    const impostor = await StorageServer.listen(store, { port: 0, credential: forged });
    try {
      const m = await refusedWith(connectStorage(impostor.address.port), 'SMFS_ERR_AUTH');
      assert.match(m, /storage server at 127\.0\.0\.1:\d+ did not prove it holds our credential/);
      assert.is(impostor.counters.connections, 0);
      assert.is(impostor.counters.requests, 0);
    } finally {
      await impostor.close();
    }
  });
});

auth('the metadata and file servers refuse the same way, and a metadata server with the wrong credential is refused by its storage server', async () => {
  await withDir('auth-files', async (dir) => {
    const { other } = otherCredentials(dir);
    const storage = await startStorageHere(path.join(dir, 'storage'));
    const metadata = await MetadataServer.open(path.join(dir, 'meta'), [storage.at], { port: 0, credential: testCredential() });
    const files = await FileServer.listen(await Volume.open(metadata.address, undefined, testCredential()), { port: 0, credential: testCredential() });
    try {
      assert.is((await unauthenticated(metadata.address.port, MetadataOp.list, [], 3)).code, 'SMFS_ERR_AUTH');
      assert.is((await unauthenticated(files.address.port, FileOp.stat, [], 4)).code, 'SMFS_ERR_AUTH');
      await refusedWith(MetadataClient.connect(metadata.address, other), 'SMFS_ERR_AUTH');
      await refusedWith(FileClient.connect(files.address, other), 'SMFS_ERR_AUTH');
      await refusedWith(Volume.open(metadata.address, undefined, other), 'SMFS_ERR_AUTH', 'a file server with the wrong credential');
      assert.is(metadata.counters.authFailed, 3);
      assert.is(files.counters.authFailed, 2);
      const fc = await FileClient.connect(files.address, testCredential());
      await fc.write('/a', Buffer.from('authorised'));
      assert.is((await fc.read('/a')).toString(), 'authorised');
      await fc.close();
      // A metadata server holding another credential cannot create logs on our storage server.
      const wrong = await MetadataServer.open(path.join(dir, 'meta-wrong'), [storage.at], { port: 0, credential: other });
      const mc = await MetadataClient.connect(wrong.address, other);
      try {
        const m = await refusedWith(mc.create(), 'SMFS_ERR_AUTH');
        assert.match(m, /storage server at 127\.0\.0\.1:\d+ refused our credential/);
      } finally {
        await mc.close();
        await wrong.close();
      }
    } finally {
      await files.close();
      await metadata.close();
      await storage.close();
    }
  });
});

auth('garbage, cut-off and slow handshakes are closed without holding up the server or its other connections', async () => {
  await withStorage(async (server, c) => {
    await c.createLog(1);
    const before = (await c.stat()).lastSeq;
    const steady = steadyAppends(c, 1);
    const port = server.address.port;
    const hello = Buffer.concat(encodeFrame(AuthOp.hello, 1, [Buffer.of(1), Buffer.from(testCredential().keyId, 'hex'), crypto.randomBytes(32)]));
    const huge = Buffer.alloc(12);
    huge.writeUInt32BE(0xfffffff0, 0);
    huge.writeUInt16BE(0x534d, 4);
    huge[6] = 1;
    huge[7] = AuthOp.hello;
    const inputs: [string, (s: net.Socket) => void][] = [
      ['random bytes', (s) => s.write(Buffer.concat([Buffer.of(0), crypto.randomBytes(4095)]))],
      ['random bytes after a TLS record type', (s) => s.write(Buffer.concat([Buffer.of(0x16), crypto.randomBytes(4095)]))],
      ['a hello frame claiming 4 GiB', (s) => s.write(huge)],
      ['a hello, then 1 MiB of garbage', (s) => s.write(Buffer.concat([hello, crypto.randomBytes(1 << 20)]))],
      ['half a hello, then FIN', (s) => s.end(hello.subarray(0, 20))],
      ['half a hello, then silence', (s) => s.write(hello.subarray(0, 5))],
      ['the start of a TLS record, then silence', (s) => s.write(Buffer.of(0x16, 0x03, 0x01, 0x00, 0x50))],
      ['nothing, then FIN', (s) => s.end()],
      ['nothing, then silence', () => undefined],
    ];
    const started = Date.now();
    const connections = await Promise.all(Array.from({ length: 4 }, () => inputs).flat().map(async ([what, send]) => {
      const raw = await rawConnection(port);
      send(raw.socket);
      await raw.closed;
      return { what, frames: raw.frames };
    }));
    const giant = connections.find((x) => x.what === 'a hello frame claiming 4 GiB')!;
    assert.is(giant.frames.length, 1, 'a frame too large for the handshake is answered without being read');
    if (giant.frames[0].kind === 'frame') assert.match(decodeError(giant.frames[0].body.subarray(1)).message, /takes at most/);
    const appended = await steady.stop();
    assert.ok(appended > 0, 'the authorised client appended all along');
    assert.ok(Date.now() - started >= 250, 'the silent ones were closed by the handshake timeout');
    const st = await c.stat();
    assert.is(st.server.authFailed, connections.length);
    assert.is(st.server.connections, 1);
    assert.is(st.lastSeq, before + appended);
  }, { authTimeoutMs: 300 });
});

auth('a mirror refuses a primary with another credential, over TLS and plain; the primary counts it in its mirror stat and nothing is written there', async () => {
  await withDir('auth-mirror', async (dir) => {
    const { other } = otherCredentials(dir);
    const mdir = path.join(dir, 'mirror');
    fs.mkdirSync(mdir);
    writeRole(mdir, 'mirror');
    const mstore = await LogStore.open(mdir, { mirror: true });
    const mirror = await StorageServer.listen(mstore, { port: 0, role: 'mirror', credential: testCredential(), plainMirrorStream: true });
    try {
      for (const tls of [true, false]) {
        const store = await LogStore.open(path.join(dir, `primary-${tls}`));
        const link = new MirrorLink(store, { host: '127.0.0.1', port: mirror.address.port, credential: other, tls, retryMs: 20 });
        try {
          await store.createLog(1);
          await store.append([{ log: 1, data: Buffer.from('not for that mirror') }]);
          const deadline = Date.now() + 5000;
          while (link.stat().authFailures < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
          const st = link.stat();
          assert.ok(st.authFailures >= 2, `refused, and refused again on retry (${st.authFailures})`);
          assert.is.not(st.state, 'live');
          assert.is(st.remoteSeq, 0);
          assert.match(st.lastError ?? '', tls ? /TLS-PSK handshake with the mirror at 127\.0\.0\.1:\d+ failed/ : /mirror at 127\.0\.0\.1:\d+ refused our credential: the client's credential is another deployment's/);
        } finally {
          link.close();
          await store.close();
        }
      }
      assert.ok(mirror.counters.authFailed >= 4);
      assert.is(mirror.counters.primaryStreams, 0);
      assert.is(mirror.counters.mirroredGroups, 0);
      assert.equal(mirror.store.logIds(), []);
    } finally {
      await mirror.close();
    }
  });
});

auth('smfs storage without --credentials makes DIR/credentials (0600) and reports it; a credential others may read, or no credential at all, is refused with what to do', async () => {
  await withDir('auth-cli', async (dir) => {
    const env = { ...process.env };
    delete env.SMFS_CREDENTIALS;
    const smfs = (...args: string[]) => spawnSync(process.execPath, [SMFS_BIN, ...args], { encoding: 'utf8', timeout: 30_000, env });
    const sdir = path.join(dir, 'store');
    const file = path.join(sdir, 'credentials');
    const first = await startStorage(sdir, [], { ownCredential: true });
    try {
      assert.is(first.listening.credentials, file);
      assert.is(first.listening.credentialsCreated, true);
      assert.is(fs.statSync(file).mode & 0o777, 0o600);
      assert.match(fs.readFileSync(file, 'utf8'), /^smfs-credential 1 [0-9a-f]{64}$/m);
      const made = readCredential(file);
      const c = await StorageClient.connect(local(first.port), made);
      await c.createLog(1);
      await c.close();
      await refusedWith(connectStorage(first.port), 'SMFS_ERR_AUTH', "the tests' credential is not this server's");
      const promoted = smfs('promote', '--port', String(first.port), '--credentials', testCredential().file);
      assert.is(promoted.status, 1);
      assert.match(promoted.stderr, /refused our credential|TLS-PSK handshake .* failed/);
      assert.match(promoted.stderr, /\[SMFS_ERR_AUTH\]$/m);
    } finally {
      first.child.kill('SIGTERM');
      await first.exited;
    }
    const again = await startStorage(sdir, [], { ownCredential: true });
    assert.is(again.listening.credentialsCreated, false, 'the second start uses the file it made');
    const c = await StorageClient.connect(local(again.port), readCredential(file));
    assert.equal((await c.stat()).logs.map((l) => l.id), [1]);
    await c.close();
    again.child.kill('SIGTERM');
    await again.exited;
    fs.chmodSync(file, 0o640);
    const open = smfs('storage', '--dir', sdir, '--port', '0');
    assert.is(open.status, 1);
    assert.match(open.stderr, /credential file .* is open to group or others \(mode 0640\).*chmod 600 .*\[SMFS_ERR_AUTH\]/);
    assert.throws(() => readCredential(file), /chmod 600/);
    fs.writeFileSync(path.join(dir, 'bad'), 'hello\n', { mode: 0o600 });
    assert.match(smfs('storage', '--dir', sdir, '--port', '0', '--credentials', path.join(dir, 'bad')).stderr, /is not an SMFS credential/);
    assert.match(smfs('storage', '--dir', sdir, '--port', '0', '--credentials', path.join(dir, 'missing')).stderr, /missing cannot be read/);
    const ls = smfs('ls', '--server', '127.0.0.1:1');
    assert.is(ls.status, 1);
    assert.match(ls.stderr, /smfs ls needs the deployment's credential: --credentials FILE or SMFS_CREDENTIALS=FILE.*\[SMFS_ERR_AUTH\]/);
    for (const command of ['storage', 'promote', 'metadata', 'files', 'ls', 'write', 'put', 'bench']) {
      assert.match(smfs(command, '--help').stdout, /--credentials/, command);
    }
  });
});

auth.run();
