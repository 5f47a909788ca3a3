import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import dgram from 'node:dgram';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { feedbackKeyOf, newMasterKey, writeKeyFile } from '../../src/gateway/keys';
import { testFeedbackKey } from '../helpers/feedback-key';
import { AUTH_KIND, addon } from '../../src/native/addon';
import { FEEDBACK_ENTRY_BYTES, FEEDBACK_HEADER_BYTES, encodeFeedback, parseFeedback } from '../../src/feedback/format';
import type { FeedbackEntry } from '../../src/feedback/format';
import { NetworkSyncError, NetworkSyncListener } from '../../src/feedback/listener';

const format = suite('feedback datagram format');

const entry = (o: Partial<FeedbackEntry> = {}): FeedbackEntry => ({
  senderAddress: '10.1.0.2', senderPort: 40000, receiverAddress: '10.2.0.2', receiverPort: 7700,
  isnGuessed: false, safeOffset: 4096n, sentOffset: 8192n, repairsSent: 3, repairsPerPacket: 3, ...o,
});

format('round trip, every field', () => {
  const d = { sequence: 0xfffffffe, entries: [entry(), entry({ senderPort: 1, isnGuessed: true, safeOffset: 2n ** 40n, sentOffset: 2n ** 41n, repairsSent: 1 })] };
  const b = encodeFeedback(d);
  assert.is(b.length, FEEDBACK_HEADER_BYTES + 2 * FEEDBACK_ENTRY_BYTES);
  assert.equal(parseFeedback(b), d);
});

format('malformed datagrams are named, never trusted', () => {
  const good = encodeFeedback({ sequence: 1, entries: [entry()] });
  const bad = (f: (b: Buffer) => Buffer) => parseFeedback(f(Buffer.from(good)));
  assert.equal(bad((b) => b.subarray(0, 11)), { error: 'truncated' });
  assert.equal(bad((b) => b.subarray(0, b.length - 1)), { error: 'truncated' });
  assert.equal(bad((b) => Buffer.concat([b, Buffer.alloc(1)])), { error: 'bad_length' });
  assert.equal(bad((b) => { b[0] = 0; return b; }), { error: 'bad_magic' });
  assert.equal(bad((b) => { b[2] = 1; return b; }), { error: 'bad_version' }, 'version 1 (unsealed, before authentication)');
  assert.equal(bad((b) => { b[3] = 1; return b; }), { error: 'bad_flags' });
  assert.equal(bad((b) => { b.writeUInt16BE(500, 4); return b; }), { error: 'truncated' });
  assert.equal(bad((b) => { b.writeBigUInt64BE(9999n, 12 + 16); return b; }), { error: 'bad_entry' }, 'safe beyond sent');
  assert.equal(bad((b) => { b[12 + 32] = 4; return b; }), { error: 'bad_entry' }, 'more repairs sent than c');
});

format.run();

const listener = suite('NetworkSyncListener');

async function send(l: NetworkSyncListener, b: Buffer, from = '127.0.0.1') {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, from, r));
  await new Promise<void>((r) => s.send(b, l.port, '127.0.0.1', () => r()));
  s.close();
  await settle(l);
}

// A TCP connection on loopback, the client tracked by a listener that accepts feedback from
// 127.0.0.1 under the site's feedback key, and a fake gateway that seals feedback with that key
// and sends it from a chosen source address (`seal` = false: bare, as an insecure gateway's).
async function setup(timeoutMs = 2000, gateways = ['127.0.0.1']) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mfb-'));
  const key = testFeedbackKey(dir);
  const server = net.createServer((s) => s.resume());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  await new Promise((r) => client.once('connect', r));
  const l = await NetworkSyncListener.open({ gateways, port: 0, address: '127.0.0.1', timeoutMs, keyFile: key.file });
  const t = l.track(client);
  const datagram = (safe: bigint, o: Partial<FeedbackEntry> = {}) =>
    encodeFeedback({ sequence: 1, entries: [{ ...t.flow, isnGuessed: false, safeOffset: safe, sentOffset: safe > t.writtenOffset ? safe : t.writtenOffset, repairsSent: 3, repairsPerPacket: 3, ...o }] });
  const feedback = async (safe: bigint, from = '127.0.0.1', o: Partial<FeedbackEntry> = {}) => {
    await send(l, key.gateway.seal(AUTH_KIND.feedback, datagram(safe, o)), from);
  };
  const close = async () => { client.destroy(); await l.close(); server.close(); fs.rmSync(dir, { recursive: true, force: true }); };
  return { l, t, client, feedback, datagram, key, dir, close };
}

// Waits until the listener has handled every datagram sent so far.
async function settle(l: NetworkSyncListener) {
  const seen = l.counters().datagrams;
  for (let i = 0; i < 200 && l.counters().datagrams === seen; i++) await new Promise((r) => setTimeout(r, 5));
}

function state(p: Promise<void>): Promise<'resolved' | 'pending' | string> {
  return Promise.race([p.then(() => 'resolved', (e: NetworkSyncError) => e.code), new Promise<'pending'>((r) => setImmediate(() => r('pending')))]);
}

listener('each write resolves, in order, once the gateway reports everything up to it network-safe', async () => {
  const { t, feedback, close, l } = await setup();
  try {
    const w = [t.write(Buffer.alloc(4096)), t.write(Buffer.alloc(4096)), t.write('x'.repeat(100))];
    assert.equal(await Promise.all(w.map(state)), ['pending', 'pending', 'pending']);
    await feedback(4095n);
    assert.equal(await Promise.all(w.map(state)), ['pending', 'pending', 'pending'], 'one byte short');
    await feedback(4096n);
    assert.equal(await Promise.all(w.map(state)), ['resolved', 'pending', 'pending']);
    await feedback(8292n);
    assert.equal(await Promise.all(w.map(state)), ['resolved', 'resolved', 'resolved']);
    assert.is(t.safeOffset, 8292n);
    assert.is(l.counters().entries, 3);
  } finally {
    await close();
  }
});

listener('feedback from other addresses, beyond what was written, regressing or without the SYN is ignored and counted', async () => {
  const { t, feedback, close, l } = await setup(2000, ['127.0.0.1']);
  try {
    const w = t.write(Buffer.alloc(1000));
    await feedback(1000n, '127.0.0.2');
    await feedback(5000n);
    await feedback(1000n, '127.0.0.1', { isnGuessed: true });
    assert.is(await state(w), 'pending');
    await feedback(600n);
    await feedback(500n);
    const c = l.counters();
    assert.is(c.foreignSource, 1);
    assert.is(c.beyondWritten, 1);
    assert.is(c.isnGuessed, 1);
    assert.is(c.regressing, 1);
    assert.is(c.entries, 1);
    assert.is(await state(w), 'pending');
  } finally {
    await close();
  }
});

listener('garbage datagrams are counted as malformed and change nothing', async () => {
  const { t, close, l } = await setup();
  try {
    const w = t.write('abc');
    const s = dgram.createSocket('udp4');
    await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
    for (const b of [Buffer.alloc(3), Buffer.from('MF not really'), Buffer.alloc(52, 0xff)]) {
      await new Promise<void>((r) => s.send(b, l.port, '127.0.0.1', () => r()));
    }
    s.close();
    for (let i = 0; i < 100 && l.counters().datagrams < 3; i++) await new Promise((r) => setTimeout(r, 5));
    const u = l.counters().unauthenticated;
    assert.is(u.truncated + u.notSealed, 3, 'none opens under the key: nothing of them is parsed');
    assert.is(await state(w), 'pending');
  } finally {
    await close();
  }
});

listener('pending writes are rejected with a typed error on timeout and when the socket closes', async () => {
  const a = await setup(100);
  try {
    const err = await a.t.write('late').then(() => undefined, (e: unknown) => e);
    assert.instance(err, NetworkSyncError);
    assert.is((err as NetworkSyncError).code, 'MAELSTROM_NETSYNC_TIMEOUT');
  } finally {
    await a.close();
  }
  const b = await setup();
  const w = b.t.write('bye');
  b.client.destroy();
  const e = await w.then(() => undefined, (x: unknown) => x);
  assert.is((e as NetworkSyncError).code, 'MAELSTROM_NETSYNC_CLOSED');
  await b.feedback(3n);
  assert.is(b.l.counters().unknownFlow, 1, 'feedback for a closed socket finds no flow');
  await b.close();
});

listener('forged, replayed and stale feedback is counted and never resolves a write', async () => {
  const { t, l, datagram, key, close } = await setup();
  try {
    const w = t.write(Buffer.alloc(1000));
    const covering = datagram(1000n);
    const other = testFeedbackKey(path.dirname(key.file), 'other.key');
    const sealed = other.gateway.seal(AUTH_KIND.feedback, covering);
    const forged = Buffer.from(sealed);
    forged.set(key.gateway.seal(AUTH_KIND.feedback, datagram(0n)).subarray(4, 8), 4); // the real key's id, a tag without the key
    const flipped = key.gateway.seal(AUTH_KIND.feedback, covering);
    flipped[30] ^= 1;
    const staleSender = new (addon().AuthChannel)({ sendKey: feedbackKeyOf(key.master), session: 7n, counter: BigInt(Date.now()) << 23n, timeS: Math.floor(Date.now() / 1000) - 600 });
    const asRepair = key.gateway.seal(AUTH_KIND.repair, covering);
    for (const b of [covering, sealed, forged, flipped, staleSender.seal(AUTH_KIND.feedback, covering), asRepair]) await send(l, b);
    assert.is(await state(w), 'pending');
    const u = l.counters().unauthenticated;
    assert.equal([u.notSealed, u.unknownKey, u.badTag, u.stale, u.badKind], [1, 1, 2, 1, 1], 'bare, another key, a forged and a flipped tag, stale, not feedback');
    const genuine = key.gateway.seal(AUTH_KIND.feedback, datagram(500n));
    await send(l, genuine);
    assert.is(t.safeOffset, 500n, 'genuine feedback is taken');
    await send(l, genuine);
    assert.is(l.counters().unauthenticated.replayed, 1, 'the same datagram again is a replay');
    assert.is(l.counters().entries, 1);
    assert.is(await state(w), 'pending');
  } finally {
    await close();
  }
});

listener('each gateway has its own replay window; a rotated key is read from the key file when it first comes', async () => {
  const { t, l, datagram, key, close } = await setup(2000, ['127.0.0.1', '127.0.0.2']);
  try {
    const w = t.write(Buffer.alloc(2000));
    // A second gateway with the same key, whose counter lags the first one's by far.
    const second = new (addon().AuthChannel)({ sendKey: feedbackKeyOf(key.master), session: 9n, counter: BigInt(Date.now() - 1000) << 22n });
    await send(l, key.gateway.seal(AUTH_KIND.feedback, datagram(1000n)));
    await send(l, second.seal(AUTH_KIND.feedback, datagram(1500n)), '127.0.0.2');
    assert.is(t.safeOffset, 1500n, 'the second gateway\'s lower counter is no replay of the first\'s');
    // Rotation: the gateways switch to a new key; the host's key file gains it.
    const next = newMasterKey();
    const rotated = new (addon().AuthChannel)({ sendKey: feedbackKeyOf(next) });
    await send(l, rotated.seal(AUTH_KIND.feedback, datagram(1800n)));
    assert.is(l.counters().unauthenticated.unknownKey, 1, 'not in the file yet');
    const lines = fs.readFileSync(key.file, 'utf8');
    const extra = path.join(path.dirname(key.file), 'next.key');
    writeKeyFile(extra, 'feedback', feedbackKeyOf(next));
    fs.writeFileSync(key.file, lines + fs.readFileSync(extra, 'utf8'));
    await new Promise((r) => setTimeout(r, 1000)); // the listener reads the file at most once a second
    await send(l, rotated.seal(AUTH_KIND.feedback, datagram(2000n)));
    assert.is(t.safeOffset, 2000n, 'the new key opens once the file has it');
    assert.is(l.counters().keyReloads, 2);
    assert.is(await state(w), 'resolved');
  } finally {
    await close();
  }
});

listener('a listener without a key refuses to open unless told to take unauthenticated feedback', async () => {
  const err = await NetworkSyncListener.open({ gateways: ['127.0.0.1'], port: 0 }).then(() => undefined, (e: unknown) => e);
  assert.is((err as { code?: string })?.code, 'MAELSTROM_ERR_KEY');
  assert.match((err as Error).message, /maelstrom keygen --feedback/);
  const l = await NetworkSyncListener.open({ gateways: ['127.0.0.1'], port: 0, address: '127.0.0.1', insecureNoAuth: true });
  await l.close();
});

listener.run();
