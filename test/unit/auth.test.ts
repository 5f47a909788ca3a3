// The authentication envelope (native/auth/): its tags against an independent AES-256-GCM and
// HMAC-SHA256 (node:crypto), every verdict a receiver gives, the replay window, and the key files.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { createCipheriv, createHmac, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { feedbackKeyOf, keyId, newMasterKey, readKeyFile, writeKeyFile } from '../../src/gateway/keys';
import { AUTH_KIND, addon } from '../../src/native/addon';
import { AUTH_CLOCK_SKEW_S, AUTH_OVERHEAD, AUTH_WINDOW } from '../../src/native/constants';

const envelope = suite('authentication envelope');
const { AuthChannel, authKey } = addon();
const HEADER = 28;
const TAG = 16;

// The envelope as docs/protocol.md writes it, computed with node:crypto alone.
function referenceTag(purposeKey: Buffer, d: Buffer): Buffer {
  const session = d.subarray(8, 16);
  const sessionKey = createHmac('sha256', purposeKey).update(Buffer.concat([Buffer.from('maelstrom v2 session'), session])).digest();
  const c = createCipheriv('aes-256-gcm', sessionKey, Buffer.concat([Buffer.alloc(4), d.subarray(16, 24)]));
  c.setAAD(d.subarray(0, d.length - TAG));
  c.final();
  return c.getAuthTag();
}

envelope('the layout, keys, ids and tags are as documented (checked against node:crypto)', () => {
  const master = newMasterKey();
  const gateway = authKey(master, 'gateway');
  const feedback = authKey(master, 'feedback');
  assert.equal(gateway.key, createHmac('sha256', master).update('maelstrom v2 gateway').digest());
  assert.equal(feedback.key, createHmac('sha256', master).update('maelstrom v2 feedback').digest());
  assert.is(gateway.id, createHmac('sha256', gateway.key).update('maelstrom v2 key id').digest().subarray(0, 4).toString('hex'));
  assert.is.not(gateway.id, feedback.id, 'the purposes have keys of their own');
  assert.equal(AUTH_OVERHEAD, HEADER + TAG);
  const inner = randomBytes(1337);
  const tx = new AuthChannel({ sendKey: gateway.key, session: 0x0102030405060708n, counter: 42n });
  const d = tx.seal(AUTH_KIND.repair, inner);
  assert.is(d.length, inner.length + HEADER + TAG);
  assert.equal([d.readUInt16BE(0), d[2], d[3]], [0x4d41, 2, AUTH_KIND.repair]);
  assert.ok(Math.abs(d.readUInt32BE(24) - Date.now() / 1000) < 5, 'the time it was sealed, seconds since 1970');
  assert.is(d.subarray(4, 8).toString('hex'), gateway.id);
  assert.is(d.readBigUInt64BE(8), 0x0102030405060708n);
  assert.is(d.readBigUInt64BE(16), 42n);
  assert.equal(d.subarray(HEADER, HEADER + inner.length), inner, 'the inner datagram is carried as it is');
  assert.equal(d.subarray(d.length - TAG), referenceTag(gateway.key, d), 'GMAC under the session key, nonce 0^32 || counter');
  assert.is(tx.seal(AUTH_KIND.repair, inner).readBigUInt64BE(16), 43n, 'the counter goes up by one per datagram');
});

envelope('a receiver opens what verifies, once, and names why it refuses the rest', () => {
  const key = authKey(newMasterKey(), 'gateway').key;
  const tx = new AuthChannel({ sendKey: key });
  const rx = new AuthChannel({ keys: [key] });
  const inner = Buffer.from('a repair');
  const good = tx.seal(AUTH_KIND.repair, inner);
  const opened = rx.open(good);
  assert.is(opened.verdict, 'ok');
  assert.equal(opened.inner, inner);
  assert.is(opened.kind, AUTH_KIND.repair);
  const mutate = (f: (b: Buffer) => Buffer) => rx.open(f(Buffer.from(tx.seal(AUTH_KIND.repair, inner)))).verdict;
  assert.is(rx.open(good).verdict, 'replayed');
  assert.is(mutate((b) => b.subarray(0, 43)), 'truncated');
  assert.is(mutate((b) => b.subarray(0, 1)), 'truncated');
  assert.is(rx.open(Buffer.from('ML\x01\x00not sealed at all')).verdict, 'notSealed');
  assert.is(mutate((b) => { b[2] = 1; return b; }), 'badVersion');
  assert.is(mutate((b) => { b[3] = 9; return b; }), 'badKind');
  assert.is(mutate((b) => { b[4] ^= 0xff; return b; }), 'unknownKey');
  for (const at of [9, 17, 25, HEADER, HEADER + 7, -1, -16]) {
    assert.is(mutate((b) => { b[at < 0 ? b.length + at : at] ^= 0x01; return b; }), 'badTag', `a bit flipped at ${at} (session, counter, time, inner, tag)`);
  }
  const other = new AuthChannel({ sendKey: authKey(newMasterKey(), 'gateway').key });
  assert.is(rx.open(other.seal(AUTH_KIND.repair, inner)).verdict, 'unknownKey');
  const nowS = Math.floor(Date.now() / 1000);
  const stale = new AuthChannel({ sendKey: key, session: 1n, counter: BigInt(Date.now()) << 23n, timeS: nowS - 2 * AUTH_CLOCK_SKEW_S });
  assert.is(rx.open(stale.seal(AUTH_KIND.repair, inner)).verdict, 'stale', 'sealed before the receiver started, less the clock skew allowed');
  // A sender started long ago and quiet since: its counter is far behind the clock, yet what it
  // seals now is fresh (the time sealed counts, not the counter).
  const old = new AuthChannel({ sendKey: key, session: 2n, counter: BigInt(Date.now() - 7_200_000) << 22n });
  assert.is(new AuthChannel({ keys: [key] }).open(old.seal(AUTH_KIND.repair, inner)).verdict, 'ok', 'a long-running sender meets a restarted receiver');
  const c = rx.counts();
  assert.is(c.ok, 1);
  assert.is(c.replayed, 1);
  assert.ok(c.badTag >= 6 && c.truncated === 2 && c.notSealed === 1 && c.stale === 1);
});

envelope('the replay window: reordered datagrams open once; duplicates and those a window behind do not', () => {
  const key = authKey(newMasterKey(), 'gateway').key;
  const base = BigInt(Date.now()) << 22n;
  const at = (n: bigint) => new AuthChannel({ sendKey: key, session: 5n, counter: base + n }).seal(AUTH_KIND.repair, Buffer.from([1]));
  const rx = new AuthChannel({ keys: [key] });
  const W = BigInt(AUTH_WINDOW);
  const order = [10n, 3n, 7n, 4n, 10n, 3n, 200n, 11n, 199n + W, 200n, 199n, 250n, 262n + W, 260n, 500n + 5n * W, 300n + 5n * W, 499n + 5n * W, 300n + 5n * W];
  const verdicts = order.map((n) => rx.open(at(n)).verdict);
  assert.equal(verdicts, [
    'ok', 'ok', 'ok', 'ok', 'replayed', 'replayed', 'ok', 'ok', // in any order within the window, each once
    'ok', 'replayed', 'replayed', 'ok', // the window is the W counters up to the newest: 199 is out, 250 in
    'ok', 'replayed', // 260 is more than a window behind 262 + W
    'ok', 'ok', 'ok', 'replayed', // a jump forward by far: a fresh window
  ]);
});

envelope.run();

const keys = suite('key files');

function tmp(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'mkeys-'));
}

keys('a key file round trip; what others may read, the wrong kind and malformed lines are refused with the fix', () => {
  const dir = tmp();
  try {
    const master = newMasterKey();
    const file = path.join(dir, 'pair.key');
    writeKeyFile(file, 'gateway', master);
    assert.is(fs.statSync(file).mode & 0o777, 0o600);
    assert.equal(readKeyFile(file, 'gateway'), [master]);
    assert.match(fs.readFileSync(file, 'utf8'), new RegExp(`key ${keyId('gateway', master)}`), 'the file names its key id');
    assert.throws(() => writeKeyFile(file, 'gateway', master), /cannot create the key file/, 'never replaces a key');
    const refused = (text: string, kind: 'gateway' | 'feedback', message: RegExp, mode = 0o600) => {
      const f = path.join(dir, `k${Math.random()}`);
      fs.writeFileSync(f, text, { mode });
      fs.chmodSync(f, mode);
      let err: { code?: string; message: string } | undefined;
      try { readKeyFile(f, kind); } catch (e) { err = e as typeof err; }
      assert.is(err?.code, 'MAELSTROM_ERR_KEY', text);
      assert.match(err!.message, message);
    };
    const line = fs.readFileSync(file, 'utf8');
    refused(line, 'gateway', /has mode 0640: others than its owner may read it; chmod 600/, 0o640);
    refused(line, 'feedback', /holds a gateway key where a feedback key is needed \(a storage host takes the feedback key: maelstrom keygen --feedback/);
    refused(`${line}${line}`, 'gateway', /holds 2 gateway keys: a gateway takes one/);
    refused('# nothing\n', 'gateway', /holds no gateway key/);
    refused('maelstrom-key-v1 gateway c2hvcnQ=\n', 'gateway', /a key is 32 bytes in base64/);
    refused('maelstrom-key-v2 gateway AAAA\n', 'gateway', /line 1 is not a key line/);
    assert.throws(() => readKeyFile(path.join(dir, 'none'), 'gateway'), /cannot read the key file .*maelstrom keygen > FILE/);
    const fb = path.join(dir, 'feedback.key');
    fs.writeFileSync(fb, ['one', 'two'].map(() => `maelstrom-key-v1 feedback ${newMasterKey().toString('base64')}`).join('\n') + '\n', { mode: 0o600 });
    assert.is(readKeyFile(fb, 'feedback').length, 2, 'a feedback key file holds the keys of a rotation');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

keys('maelstrom keygen > FILE writes a key only its owner may read; --feedback gives the pair\'s feedback key', () => {
  const dir = tmp();
  const cli = path.resolve(__dirname, '..', '..', 'src', 'cli', 'maelstrom.js');
  try {
    const file = path.join(dir, 'pair.key');
    const r = spawnSync('sh', ['-c', `umask 022; "${process.execPath}" "${cli}" keygen > "${file}"`], { encoding: 'utf8' });
    assert.is(r.status, 0, r.stderr);
    assert.is(fs.statSync(file).mode & 0o777, 0o600, 'owner only, whatever the umask');
    const [master] = readKeyFile(file, 'gateway');
    const fb = path.join(dir, 'feedback.key');
    const f = spawnSync('sh', ['-c', `"${process.execPath}" "${cli}" keygen --feedback --key-file "${file}" > "${fb}"`], { encoding: 'utf8' });
    assert.is(f.status, 0, f.stderr);
    assert.equal(readKeyFile(fb, 'feedback'), [feedbackKeyOf(master)]);
    const bad = spawnSync(process.execPath, [cli, 'keygen', '--feedback'], { encoding: 'utf8' });
    assert.is(bad.status, 2);
    assert.match(bad.stderr, /--feedback needs --key-file/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

keys.run();
