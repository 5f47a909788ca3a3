// What operators install with the gateway (deploy/): the systemd unit runs commands and options
// that exist, and every metric and label the Grafana dashboard queries is one the gateway exports.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { GatewayMetrics } from '../../src/gateway/metrics';
import { program } from '../../src/cli/maelstrom';
import { engineStats } from '../helpers/engine-stats';

const root = path.resolve(__dirname, '..', '..', '..');
const deploy = suite('deploy: the systemd unit and the Grafana dashboard');

deploy('maelstrom@.service runs up as a daemon with a PID file and down from the config file, with options that exist', () => {
  const unit = fs.readFileSync(path.join(root, 'deploy', 'maelstrom@.service'), 'utf8');
  const value = (key: string) => [...unit.matchAll(new RegExp(`^${key}=(.*)$`, 'gm'))].map((m) => m[1]);
  assert.equal(value('Type'), ['forking'], 'up --daemon returns once the gateway is up');
  assert.equal(value('PIDFile'), ['/run/maelstrom/%i.pid']);
  assert.equal(value('Restart'), ['on-failure']);
  const commands = [...value('ExecStart'), ...value('ExecStop'), ...value('ExecStartPre')].map((c) => c.replace(/^-/, '').split(/\s+/));
  assert.equal(commands.map((c) => [c[0], c[1]]), [['maelstrom', 'up'], ['maelstrom', 'down'], ['maelstrom', 'down']]);
  for (const [, name, ...args] of commands) {
    const command = program.commands.find((c: Command) => c.name() === name)!;
    for (const flag of args.filter((a) => a.startsWith('--'))) {
      assert.ok(command.options.some((o) => o.long === flag), `maelstrom ${name} has ${flag}`);
    }
    assert.ok(args.includes('--pid-file') && args[args.indexOf('--pid-file') + 1] === '/run/maelstrom/%i.pid', `${name}: the unit's PID file`);
    assert.ok(args.includes('--config') && args[args.indexOf('--config') + 1] === '/etc/maelstrom/%i.json', `${name}: the instance's config file`);
  }
  assert.ok(commands[0].includes('--daemon'));
});

deploy('every metric and label the Grafana dashboard queries is one the gateway exports', async () => {
  const dashboard = JSON.parse(fs.readFileSync(path.join(root, 'deploy', 'grafana-dashboard.json'), 'utf8'));
  const metrics = new GatewayMetrics({
    stats: () => engineStats({ netsync: { safeLatencyUs: { count: 1, p50: 100, p99: 200, max: 300 } } }),
    status: () => ({ lan: 'lan0', wan: 'wan0', peer: '10.99.0.2', r: 8, c: 3, interleaves: [1, 10, 100], flushTimeoutMs: 1, epoch: 0 }),
  });
  const text = await metrics.exposition();
  const exported = new Set([...text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]));
  const samples = text.split('\n').filter((l) => l && !l.startsWith('#'));
  const exprs: string[] = dashboard.panels.flatMap((p: { targets: { expr: string }[] }) => p.targets.map((t) => t.expr));
  assert.ok(exprs.length >= 10, `${exprs.length} queries`);
  let checked = 0;
  for (const expr of exprs) {
    for (const m of expr.matchAll(/\b((?:maelstrom|process|nodejs)_[a-z0-9_]+)(\{([^}]*)\})?/g)) {
      const [, name, , selector] = m;
      assert.ok(exported.has(name), `the dashboard queries ${name}, which the gateway does not export (${expr})`);
      for (const [, label, op, v] of (selector ?? '').matchAll(/(\w+)\s*(=~|!=|=)\s*"([^"]*)"/g)) {
        if (label === 'instance') continue; // Prometheus adds it
        assert.ok(samples.some((s) => s.startsWith(`${name}{`) && s.includes(`${label}="`)), `${name} has no label ${label}`);
        if (op === '=') assert.ok(samples.some((s) => s.startsWith(`${name}{`) && s.includes(`${label}="${v}"`)), `${name}{${label}="${v}"} is never exported`);
      }
      checked++;
    }
    for (const [, labels] of expr.matchAll(/by \(([^)]*)\)/g)) {
      for (const label of labels.split(',').map((l) => l.trim()).filter((l) => l !== 'instance')) {
        assert.ok(new RegExp(`[{,]${label}="`).test(text), `the dashboard groups by ${label}, which no metric has`);
      }
    }
  }
  assert.ok(checked >= 20, `${checked} metrics checked`);
});

deploy.run();
