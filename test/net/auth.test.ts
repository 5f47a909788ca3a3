// Authenticated gateway traffic in the lab (docs/security.md): what an attacker on the WAN path
// sends gets nothing onto the far LAN; a key rotated during a lossy transfer loses nothing; a
// gateway run without a key says so. Needs root.
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { withLabGateways } from '../../src/lab/fixture';
import { ADDRESSES } from '../../src/lab/topology';
import { tcpTransfer, udpReceive } from '../../src/lab/runs';
import { newMasterKey, writeKeyFile } from '../../src/gateway/keys';
import { inNs } from '../../src/lab/netns';
import type { AuthState } from '../../src/native/addon';
import { until } from '../helpers/until';

const MB = 1_000_000;
const cli = path.resolve(__dirname, '..', '..', 'src', 'cli', 'maelstrom.js');
const traffic = path.resolve(__dirname, '..', '..', 'src', 'lab', 'traffic.js');
const auth = suite('authenticated gateway traffic');

function maelstrom(ns: string, args: string[]): { status: number | null; stdout: string; stderr: string } {
  const [cmd, ...rest] = inNs(ns, [process.execPath, cli, ...args]);
  const r = spawnSync(cmd, rest, { encoding: 'utf8', timeout: 30_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function status(ns: string, control: string): Record<string, unknown> & { auth: AuthState | null } {
  const r = maelstrom(ns, ['status', '--control', control, '--json']);
  assert.is(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as Record<string, unknown> & { auth: AuthState | null };
}


auth('repairs forged on the WAN path put nothing on the far LAN: unsealed, another key, a forged tag, truncated, stale and replayed ones are counted; a genuine one rebuilds its packet once', async () => {
  const { b } = await withLabGateways({ delayMs: 1 }, {}, async ({ lab, gw }) => {
    // Gateway A stops: the attacker, in its place on the path, sends from its WAN address
    // (the peer address gateway B's XDP program admits) to B's repair port.
    await gw.a.stop();
    const n = 5;
    const forge = new Promise<void>((resolve, reject) => {
      const child = lab.spawn(lab.ns.gwA, [process.execPath, traffic, 'repair-forge', '--to', ADDRESSES.gwBWan, '--key-file', lab.keys.gateway,
        '--from-host', ADDRESSES.hostA, '--host', ADDRESSES.hostB, '--port', '5050', '--count', String(n)]);
      child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`repair-forge exited ${code}`))));
    });
    // Every kind would rebuild packets of its own (ids 5k .. 5k+4 for kind k).
    const received = await udpReceive(lab, 5050, 7 * n, 2000);
    await forge;
    assert.equal(await received.report, { received: n, duplicates: 0 }, 'hostB got the genuine repairs\' packets, each once, and nothing else');
  });
  assert.ok(b, 'gateway B reported its counters');
  const a = b!.auth;
  assert.equal([a.notSealed, a.unknownKey, a.badTag, a.truncated, a.stale, a.replayed], [5, 5, 5, 5, 5, 5],
    'unsealed, another key, forged tag, truncated, stale, replayed');
  assert.is(b!.repairsReceived, 5, 'only the genuine repairs reached the decoder');
  assert.is(b!.recovered, 5, 'each rebuilt its packet once');
  assert.is(b!.malformed, 0);
});

auth('a key rotated during a transfer at 1% loss: nothing lost, no genuine datagram refused, the old key retired', async () => {
  const { a, b } = await withLabGateways({ delayMs: 10, loss: 0.01 }, {}, async ({ lab, gw }) => {
    const next = path.join(lab.keys.dir, 'pair-2.key');
    writeKeyFile(next, 'gateway', newMasterKey());
    const before = status(lab.ns.gwA, gw.a.control).auth!;
    const transfer = tcpTransfer(lab, 40 * MB, 5060);
    // Mid-transfer, each gateway is told the new key, 300 ms apart; the first waits for the second.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const first = JSON.parse(maelstrom(lab.ns.gwA, ['rekey', '--control', gw.a.control, '--key-file', next, '--json']).stdout) as { keyId: string; auth: AuthState };
    assert.is(first.auth.pendingKey, first.keyId, 'A accepts the new key and waits for B to accept it too');
    assert.is(first.auth.sendKey, before.sendKey);
    await new Promise((resolve) => setTimeout(resolve, 300));
    const second = maelstrom(lab.ns.gwB, ['rekey', '--control', gw.b.control, '--key-file', next]);
    assert.is(second.status, 0, second.stderr);
    assert.match(second.stdout, new RegExp(`rekey to ${first.keyId}`));
    const t = await transfer;
    assert.is(t.got.sha256, t.sent.sha256, 'the transfer arrived intact');
    const settled = await until(() => [gw.a, gw.b].every((g) => {
      const k = status(g === gw.a ? lab.ns.gwA : lab.ns.gwB, g.control).auth!;
      return k.sendKey === first.keyId && !k.pendingKey && !k.retiringKey && k.peer?.sendKey === first.keyId;
    }), 10_000);
    assert.ok(settled, 'both seal with the new key and accept only it');
  });
  for (const [name, s] of [['A', a], ['B', b]] as const) {
    const refused = s!.auth.unknownKey + s!.auth.badTag + s!.auth.replayed + s!.auth.stale + s!.auth.notSealed;
    assert.is(refused, 0, `gateway ${name} refused ${refused} of its peer's datagrams (${JSON.stringify(s!.auth)})`);
    assert.is(s!.auth.rotations, 1, `gateway ${name} switched keys once`);
  }
  assert.ok(b!.recovered > 0, 'repairs rebuilt the transfer\'s losses throughout');
  assert.is(b!.verifyFailed, 0);
});

auth('a gateway run with --insecure-no-auth says so at start and in status, and its peer refuses what it sends unsealed', async () => {
  await withLabGateways({ delayMs: 1 }, { only: { a: ['--insecure-no-auth'] } }, async ({ lab, gw }) => {
    const a = { insecure: gw.a, keyed: gw.b };
    assert.is(a.insecure.up.insecure, true, 'the start report says so');
    assert.is(a.insecure.up.auth, null);
    // Traffic both ways, so each sends the other repairs as well as reports.
    lab.exec(lab.ns.hostA, ['ping', '-c', '10', '-i', '0.05', '-q', ADDRESSES.hostB], { allowFail: true });
    const s = status(lab.ns.gwA, a.insecure.control);
    assert.is(s.auth, null);
    assert.is(s.insecure, true);
    const text = maelstrom(lab.ns.gwA, ['status', '--control', a.insecure.control]).stdout;
    assert.match(text, /authentication OFF \(--insecure-no-auth\): anyone who can send to the repair port can put packets on this LAN/);
    assert.ok(await until(() => (a.keyed.latest()?.auth.notSealed ?? 0) > 0, 5000), 'the keyed gateway refuses the reports the insecure one sends bare');
    assert.is(a.keyed.latest()!.auth.ok, 0);
    assert.ok(await until(() => (a.insecure.latest()?.auth.unverifiable ?? 0) > 0, 5000), 'and the insecure one cannot check what the keyed one seals');
  });
});

auth.run();
