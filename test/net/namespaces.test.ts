// Several gateways on one machine: in different network namespaces their LAN interfaces may share
// a name (the lab's both use lan0), and each keeps its control socket in a directory of its
// namespace's own, found by the commands run in the same namespace. Needs root.
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { withLabGateways } from '../../src/lab/fixture';
import { labRunDir } from '../../src/lab/gateways';
import { inNs } from '../../src/lab/netns';
import { ADDRESSES } from '../../src/lab/topology';

const cli = path.resolve(__dirname, '..', '..', 'src', 'cli', 'maelstrom.js');
const namespaces = suite('gateways in several network namespaces of one machine');

function maelstrom(ns: string, args: string[]): Record<string, any> {
  const [cmd, ...rest] = inNs(ns, [process.execPath, cli, ...args]);
  const r = spawnSync(cmd, rest, { encoding: 'utf8', timeout: 30_000 });
  assert.is(r.status, 0, `${args.join(' ')} in ${ns}: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!);
}

namespaces('two gateways on lan0 in two namespaces run at once; status, stats and tune --lan lan0 reach the one of the caller\'s namespace', async () => {
  const dirs: string[] = [];
  await withLabGateways({ delayMs: 1 }, {}, async ({ lab, gw }) => {
    for (const [ns, g, peer] of [[lab.ns.gwA, gw.a, ADDRESSES.gwBWan], [lab.ns.gwB, gw.b, ADDRESSES.gwAWan]] as const) {
      const s = maelstrom(ns, ['status', '--lan', 'lan0', '--json']);
      assert.is(s.pid, g.up.pid, `status --lan lan0 in ${ns} is its own gateway`);
      assert.is(s.peer, peer);
      assert.is(s.control, path.join(labRunDir(ns), 'lan0.sock'), 'a directory of the namespace\'s own');
      assert.match(s.control, /^\/run\/maelstrom\/netns-\d+\/lan0\.sock$/);
      dirs.push(labRunDir(ns));
      const st = maelstrom(ns, ['stats', '--lan', 'lan0', '--json', '--count', '1']);
      assert.type(st.lanToWan.packets, 'number');
    }
    assert.is.not(dirs[0], dirs[1]);
    const e = maelstrom(lab.ns.gwA, ['tune', '--lan', 'lan0', '--flush-timeout', '2', '--json']);
    assert.is(e.epoch, 1);
    assert.is(maelstrom(lab.ns.gwA, ['status', '--lan', 'lan0', '--json']).epochs.length, 2, 'A took the tune');
    assert.is(maelstrom(lab.ns.gwB, ['status', '--lan', 'lan0', '--json']).epochs.length, 1, 'B did not');
  });
  for (const d of dirs) assert.not.ok(fs.existsSync(d), `${d} went with its gateway`);
});

namespaces.run();
