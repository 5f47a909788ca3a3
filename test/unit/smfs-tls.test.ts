// The mirror stream over TLS: a mirror takes it only over TLS unless told otherwise; network-sync
// over TLS counts the bytes of the TCP stream under TLS, as the gateway does, both in
// TrackedSocket and end to end through a fake gateway that forwards the stream and reports
// what it forwarded.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import dgram from 'node:dgram';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { secureClient, secureServer } from '../../src/smfs/auth';
import { LogStore } from '../../src/smfs/store';
import { StorageServer } from '../../src/smfs/server';
import { MirrorLink, writeRole } from '../../src/smfs/mirror';
import { NetworkSyncListener } from '../../src/feedback/listener';
import type { TrackedSocket } from '../../src/feedback/listener';
import { encodeFeedback } from '../../src/feedback/format';
import type { FlowKey } from '../../src/feedback/format';
import { connectStorage, startRelay, testCredential, withDir } from '../helpers/smfs';
import { testFeedbackKey } from '../helpers/feedback-key';
import { until } from '../helpers/until';

const tlsSuite = suite('smfs mirror stream over TLS');

function state(p: Promise<unknown>): Promise<string> {
  return Promise.race([p.then(() => 'resolved', (e: Error) => `rejected: ${e.message}`), new Promise<string>((r) => setImmediate(() => r('pending')))]);
}

// Waits for f, failing the test with `what` after timeoutMs.
async function waitFor(f: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  if (!(await until(f, timeoutMs, 5))) assert.unreachable(`timed out waiting for ${what}`);
}

// The feedback key the fake gateway seals with and the listeners open with.
const feedbackDir = fs.mkdtempSync(path.join(os.tmpdir(), 'smfs-tls-fb-'));
const feedbackKey = testFeedbackKey(feedbackDir);

// A fake gateway: sends the listener one feedback entry for `flow`, from 127.0.0.1, and waits
// until the listener has taken it.
async function report(listener: NetworkSyncListener, flow: FlowKey, safe: bigint): Promise<void> {
  const seen = listener.counters().datagrams;
  const s = dgram.createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
  const b = feedbackKey.seal(encodeFeedback({ sequence: 1, entries: [{ ...flow, isnGuessed: false, safeOffset: safe, sentOffset: safe, repairsSent: 3, repairsPerPacket: 3 }] }));
  await new Promise<void>((r) => s.send(b, listener.port, '127.0.0.1', () => r()));
  s.close();
  await waitFor(() => listener.counters().datagrams > seen, 'the listener to take the feedback');
}

async function startMirror(dir: string, options: { plainMirrorStream?: boolean } = {}): Promise<StorageServer> {
  fs.mkdirSync(dir, { recursive: true });
  writeRole(dir, 'mirror');
  const store = await LogStore.open(dir, { mirror: true });
  return StorageServer.listen(store, { port: 0, role: 'mirror', credential: testCredential(), ...options });
}

tlsSuite('a TLS record damaged on the way ends the mirror connection; the link reconnects and catches up', async () => {
  await withDir('tls-damage-p', (pdir) => withDir('tls-damage-m', async (mdir) => {
    const mirror = await startMirror(mdir);
    const relay = await startRelay(mirror.address.port);
    const store = await LogStore.open(pdir);
    const link = new MirrorLink(store, { host: '127.0.0.1', port: relay.port, credential: testCredential(), retryMs: 50, ackTimeoutMs: 5000 });
    const primary = await StorageServer.listen(store, { port: 0, credential: testCredential(), mirror: link });
    const c = await connectStorage(primary.address.port);
    try {
      await c.createLog(1);
      await c.append([{ log: 1, data: Buffer.from('before') }], { level: 'remote' });
      relay.damageNext();
      await c.append([{ log: 1, data: Buffer.from('through the damage') }], { level: 'remote' });
      const s = link.stat();
      assert.is(s.connects, 2, 'a second connection');
      assert.is(s.remoteSeq, 2);
    } finally {
      await c.close();
      await primary.close();
      await relay.close();
      await mirror.close();
    }
  }));
});

tlsSuite('a mirror takes the mirror stream only over TLS, unless told to take it plain too', async () => {
  await withDir('tls-plain', async (dir) => {
    const strict = await startMirror(path.join(dir, 'strict'));
    const store = await LogStore.open(path.join(dir, 'primary'));
    const plain = new MirrorLink(store, { host: '127.0.0.1', port: strict.address.port, credential: testCredential(), tls: false, retryMs: 20 });
    try {
      await waitFor(() => plain.stat().authFailures >= 1, 'the strict mirror to refuse the plain stream');
      assert.match(plain.stat().lastError ?? '', /takes the mirror stream only over TLS/);
      assert.ok(strict.counters.refused.SMFS_ERR_AUTH >= 1, 'refused after authenticating: counted as a refusal');
      assert.is(strict.counters.primaryStreams, 0);
    } finally {
      plain.close();
      await store.close();
      await strict.close();
    }
    for (const tls of [false, true]) {
      const lenient = await startMirror(path.join(dir, `lenient-${tls}`), { plainMirrorStream: true });
      const pstore = await LogStore.open(path.join(dir, `primary-${tls}`));
      const link = new MirrorLink(pstore, { host: '127.0.0.1', port: lenient.address.port, credential: testCredential(), tls, retryMs: 20 });
      const primary = await StorageServer.listen(pstore, { port: 0, credential: testCredential(), mirror: link });
      const c = await connectStorage(primary.address.port);
      try {
        await c.createLog(1);
        await c.append([{ log: 1, data: Buffer.from('mirrored') }], { level: 'remote' });
        const m = await connectStorage(lenient.address.port);
        assert.is((await m.stat()).primaryTls, tls);
        await m.close();
        assert.is(link.stat().tls, tls);
        assert.is(lenient.counters.tls, tls ? 1 : 0, 'the primary connection, over TLS or not');
        assert.is(link.stat().connects, 1, 'one connection: nothing refused on the way');
      } finally {
        await c.close();
        await primary.close();
        await lenient.close();
      }
    }
  });
});

tlsSuite('over TLS a tracked write resolves only once the TCP bytes that carry it are reported safe, not its cleartext length', async () => {
  const server = net.createServer((tcp) => {
    secureServer(tcp, testCredential()).then((s) => s.resume(), () => undefined);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  const tcp = net.connect(port, '127.0.0.1');
  await new Promise((r) => tcp.once('connect', r));
  const listener = await NetworkSyncListener.open({ gateways: ['127.0.0.1'], port: 0, address: '127.0.0.1', keyFile: feedbackKey.file });
  try {
    const socket = await secureClient(tcp, { credential: testCredential(), tls: true, peer: 'test server' });
    const t: TrackedSocket = listener.track(socket);
    assert.equal(t.flow, { senderAddress: '127.0.0.1', senderPort: tcp.localPort, receiverAddress: '127.0.0.1', receiverPort: port }, 'the flow of the TCP connection under TLS');
    const start = BigInt(tcp.bytesWritten);
    assert.ok(start > 200n, `the TLS and SMFS handshakes (${start} bytes) count as written`);
    assert.is(t.writtenOffset, start);
    const data = Buffer.alloc(100_000, 7);
    let flushed = false;
    const w = t.write(data, () => { flushed = true; });
    await waitFor(() => flushed, 'TLS to call the write back');
    const end = BigInt(tcp.bytesWritten);
    assert.is(t.writtenOffset, end, 'the tracker counts what went into TCP');
    assert.ok(end - start > BigInt(data.length), `TLS added its own bytes (${end - start - BigInt(data.length)})`);
    await report(listener, t.flow, start + BigInt(data.length));
    assert.is(await state(w), 'pending', 'the cleartext length is not enough');
    await report(listener, t.flow, end - 1n);
    assert.is(await state(w), 'pending', 'one TCP byte short');
    await report(listener, t.flow, end);
    assert.is(await state(w), 'resolved');
    const counts = listener.counters();
    assert.is(counts.entries, 3);
    assert.is(counts.beyondWritten, 0);
    socket.destroy();
  } finally {
    tcp.destroy();
    await listener.close();
    server.close();
  }
});

// Between the primary and its mirror: forwards the primary's stream as long as it is not held,
// and reports, as a gateway would, every byte it forwarded as network-safe.
async function fakeGateway(mirrorPort: number, listener: NetworkSyncListener): Promise<{ port: number; hold(on: boolean): void; close(): void }> {
  let held = false;
  const sockets: net.Socket[] = [];
  const server = net.createServer((from) => {
    const to = net.connect(mirrorPort, '127.0.0.1');
    sockets.push(from, to);
    const flow: FlowKey = { senderAddress: '127.0.0.1', senderPort: from.remotePort!, receiverAddress: '127.0.0.1', receiverPort: from.localPort! };
    let forwarded = 0n;
    from.on('data', (chunk: Buffer) => {
      to.write(chunk);
      forwarded += BigInt(chunk.length);
      void report(listener, flow, forwarded);
    });
    to.on('data', (chunk: Buffer) => from.write(chunk));
    from.on('close', () => to.destroy());
    to.on('close', () => from.destroy());
    from.on('error', () => undefined);
    to.on('error', () => undefined);
    if (held) from.pause();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    hold: (on) => {
      held = on;
      for (const s of sockets) if (on) s.pause(); else s.resume();
    },
    close: () => {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}

tlsSuite('network-sync over TLS end to end: a network append is answered once the TCP bytes carrying it are reported, and not before', async () => {
  await withDir('tls-netsync', async (dir) => {
    const mirror = await startMirror(path.join(dir, 'mirror'));
    const listener = await NetworkSyncListener.open({ gateways: ['127.0.0.1'], port: 0, address: '127.0.0.1', timeoutMs: 3000, keyFile: feedbackKey.file });
    const gateway = await fakeGateway(mirror.address.port, listener);
    const store = await LogStore.open(path.join(dir, 'primary'));
    const link = new MirrorLink(store, { host: '127.0.0.1', port: gateway.port, credential: testCredential(), listener, ackTimeoutMs: 3000, retryMs: 20 });
    const primary = await StorageServer.listen(store, { port: 0, credential: testCredential(), mirror: link });
    const c = await connectStorage(primary.address.port);
    try {
      await c.createLog(1);
      await waitFor(() => link.stat().state === 'live', 'the link to go live');
      assert.is(primary.defaultLevel, 'network');
      await c.append([{ log: 1, data: Buffer.alloc(5000, 1) }], { level: 'network' });
      gateway.hold(true);
      const held = c.append([{ log: 1, data: Buffer.alloc(5000, 2) }], { level: 'network' });
      // A local append after it is answered once the kernel has taken both.
      await c.append([{ log: 1, data: Buffer.alloc(10, 3) }], { level: 'local' });
      assert.is(await state(held), 'pending', 'not network-safe while the gateway holds its bytes');
      gateway.hold(false);
      assert.is((await held).length, 1);
      await c.append([{ log: 1, data: Buffer.alloc(10, 4) }], { level: 'remote' });
      const counts = listener.counters();
      assert.ok(counts.entries > 0);
      assert.is(counts.beyondWritten, 0, 'every offset reported was within the TCP bytes counted as written');
      assert.is(link.stat().tls, true);
    } finally {
      await c.close();
      await primary.close();
      gateway.close();
      await listener.close();
      await mirror.close();
    }
  });
});

tlsSuite.after(() => fs.rmSync(feedbackDir, { recursive: true, force: true }));

tlsSuite.run();
