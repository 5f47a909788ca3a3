import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import dgram from 'node:dgram';
import net from 'node:net';
import { FEEDBACK_ENTRY, FEEDBACK_HEADER, encodeFeedback, parseFeedback } from '../../src/feedback/format';
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
  assert.is(b.length, FEEDBACK_HEADER + 2 * FEEDBACK_ENTRY);
  assert.equal(parseFeedback(b), d);
});

format('malformed datagrams are named, never trusted', () => {
  const good = encodeFeedback({ sequence: 1, entries: [entry()] });
  const bad = (f: (b: Buffer) => Buffer) => parseFeedback(f(Buffer.from(good)));
  assert.equal(bad((b) => b.subarray(0, 11)), { error: 'truncated' });
  assert.equal(bad((b) => b.subarray(0, b.length - 1)), { error: 'truncated' });
  assert.equal(bad((b) => Buffer.concat([b, Buffer.alloc(1)])), { error: 'bad_length' });
  assert.equal(bad((b) => { b[0] = 0; return b; }), { error: 'bad_magic' });
  assert.equal(bad((b) => { b[2] = 2; return b; }), { error: 'bad_version' });
  assert.equal(bad((b) => { b[3] = 1; return b; }), { error: 'bad_flags' });
  assert.equal(bad((b) => { b.writeUInt16BE(500, 4); return b; }), { error: 'truncated' });
  assert.equal(bad((b) => { b.writeBigUInt64BE(9999n, 12 + 16); return b; }), { error: 'bad_entry' }, 'safe beyond sent');
  assert.equal(bad((b) => { b[12 + 32] = 4; return b; }), { error: 'bad_entry' }, 'more repairs sent than c');
});

format.run();

const listener = suite('NetworkSyncListener');

// A TCP connection on loopback, the client tracked by a listener that accepts feedback from
// 127.0.0.1, and a fake gateway that sends feedback from a chosen source address.
async function setup(timeoutMs = 2000, gateways = ['127.0.0.1']) {
  const server = net.createServer((s) => s.resume());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  await new Promise((r) => client.once('connect', r));
  const l = await NetworkSyncListener.open({ gateways, port: 0, address: '127.0.0.1', timeoutMs });
  const t = l.track(client);
  const feedback = async (safe: bigint, from = '127.0.0.1', o: Partial<FeedbackEntry> = {}) => {
    const s = dgram.createSocket('udp4');
    await new Promise<void>((r) => s.bind(0, from, r));
    const b = encodeFeedback({ sequence: 1, entries: [{ ...t.flow, isnGuessed: false, safeOffset: safe, sentOffset: safe > t.writtenOffset ? safe : t.writtenOffset, repairsSent: 3, repairsPerPacket: 3, ...o }] });
    await new Promise<void>((r) => s.send(b, l.port, '127.0.0.1', () => r()));
    s.close();
    await settle(l);
  };
  const close = async () => { client.destroy(); await l.close(); server.close(); };
  return { l, t, client, feedback, close };
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
    const m = l.counters().malformed;
    assert.is(m.truncated + m.bad_magic + m.bad_version + m.bad_flags + m.bad_length + m.bad_entry, 3);
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

listener.run();
