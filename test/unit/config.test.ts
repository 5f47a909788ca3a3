// maelstrom up --config FILE: every option has a key, the command line wins, and every kind of
// bad file is a ConfigError naming the file and the key. No root: the gateway is never started.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CommanderError } from 'commander';
import { program } from '../../src/cli/maelstrom';
import { configKey, configOptions, nearestKey } from '../../src/cli/config';
import { ConfigError } from '../../src/errors';

const bin = path.resolve(__dirname, '..', '..', 'src', 'cli', 'maelstrom.js');
const up = program.commands.find((c) => c.name() === 'up')!;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mconfig-'));
let parsed: Record<string, unknown> | undefined;

// The real `up` command with its action replaced: what it would start the gateway with.
for (const c of [program, up]) c.exitOverride().configureOutput({ writeErr: () => {}, writeOut: () => {} });
up.action((o: Record<string, unknown>) => { parsed = o; });

async function parseUp(args: string[]): Promise<Record<string, unknown>> {
  parsed = undefined;
  await program.parseAsync(['up', ...args], { from: 'user' });
  return parsed!;
}

let files = 0;
function configFile(content: unknown): string {
  const file = path.join(dir, `c${files++}.json`);
  fs.writeFileSync(file, typeof content === 'string' ? content : JSON.stringify(content));
  return file;
}

async function configError(args: string[]): Promise<ConfigError> {
  try {
    await parseUp(args);
  } catch (err) {
    assert.instance(err, ConfigError);
    assert.is((err as ConfigError).code, 'MAELSTROM_ERR_CONFIG');
    assert.is((err as ConfigError).exitCode, 2);
    return err as ConfigError;
  }
  assert.unreachable(`up ${args.join(' ')} was accepted`);
  throw new Error('unreachable');
}

const REQUIRED: Record<string, string[]> = {
  lan: ['--lan', 'lan0'], wan: ['--wan', 'wan0'], peer: ['--peer', '10.99.0.2'], remote: ['--remote', '10.2.0.0/24'],
};
const requiredExcept = (key: string) => Object.entries(REQUIRED).filter(([k]) => k !== key).flatMap(([, a]) => a);

// For each option of `up`: a value that is not its default, as the file writes it and as the
// command line does. A new option needs a line here, which makes its author check its key.
const SAMPLES: Record<string, [unknown, string[]]> = {
  '--r': [12, ['--r', '12']],
  '--c': [2, ['--c', '2']],
  '--interleaves': [[1, 20], ['--interleaves', '1,20']],
  '--lan': ['eth9', ['--lan', 'eth9']],
  '--wan': ['eth8', ['--wan', 'eth8']],
  '--peer': ['192.0.2.7', ['--peer', '192.0.2.7']],
  '--remote': [['10.2.0.0/16', '10.3.0.0/16'], ['--remote', '10.2.0.0/16,10.3.0.0/16']],
  '--key-file': ['/etc/maelstrom/pair.key', ['--key-file', '/etc/maelstrom/pair.key']],
  '--insecure-no-auth': [true, ['--insecure-no-auth']],
  '--flush-timeout': [2.5, ['--flush-timeout', '2.5']],
  '--flush-idle': [80, ['--flush-idle', '80']],
  '--flush-budget': [250, ['--flush-budget', '250']],
  '--no-mss-clamp': [false, ['--no-mss-clamp']],
  '--xdp-mode': ['skb', ['--xdp-mode', 'skb']],
  '--copy': [true, ['--copy']],
  '--zero-copy': [true, ['--zero-copy']],
  '--queues': [[0, 2], ['--queues', '0,2']],
  '--cpu': [[1], ['--cpu', '1']],
  '--repair-port': [7700, ['--repair-port', '7700']],
  '--mount-bpffs': [true, ['--mount-bpffs']],
  '--stats-interval': [0.5, ['--stats-interval', '0.5']],
  '--json': [true, ['--json']],
  '--control': ['/tmp/gw.sock', ['--control', '/tmp/gw.sock']],
  '--no-feedback': [false, ['--no-feedback']],
  '--feedback-port': [7701, ['--feedback-port', '7701']],
  '--max-flows': [1000, ['--max-flows', '1000']],
  '--flow-idle': [60, ['--flow-idle', '60']],
  '--daemon': [true, ['--daemon']],
  '--pid-file': ['/tmp/gw.pid', ['--pid-file', '/tmp/gw.pid']],
  '--log-file': ['/tmp/gw.log', ['--log-file', '/tmp/gw.log']],
  '--log-level': ['debug', ['--log-level', 'debug']],
  '--metrics': ['127.0.0.1:9601', ['--metrics', '127.0.0.1:9601']],
  '--r-max': [16, ['--r-max', '16']],
  '--decoder-window': [32000, ['--decoder-window', '32000']],
  '--reorder-grace': [2500, ['--reorder-grace', '2500']],
  '--auto': [true, ['--auto']],
  '--c-min': [2, ['--c-min', '2']],
  '--c-max': [5, ['--c-max', '5']],
  '--target': [1e-9, ['--target', '1e-9']],
};

const keys = suite('up --config: keys');

keys('every option of up has a config key that sets what its flag sets', async () => {
  const options = up.options.filter((o) => o.long !== '--config');
  assert.ok(options.length > 20, `only ${options.length} options: is this up?`);
  const defaults = await parseUp(Object.values(REQUIRED).flat());
  for (const option of options) {
    const sample = SAMPLES[option.long!];
    assert.ok(sample, `${option.long} has no sample here: add one, and check that "${configKey(option)}" in a config file works`);
    const [json, argv] = sample;
    const key = configKey(option);
    assert.is(configOptions(up).get(key), option, `${option.long} has the key "${key}"`);
    const name = option.attributeName();
    const fromFlag = await parseUp([...requiredExcept(key), ...argv]);
    const fromFile = await parseUp([...requiredExcept(key), '--config', configFile({ [key]: json })]);
    assert.not.equal(fromFlag[name], defaults[name], `${option.long}: the sample differs from the default`);
    assert.equal(fromFile[name], fromFlag[name], `"${key}": ${JSON.stringify(json)} sets what ${argv.join(' ')} does`);
  }
});

keys('the full example of docs/gateway.md names every key of up and is a config up accepts', async () => {
  const doc = fs.readFileSync(path.resolve(__dirname, '..', '..', '..', 'docs', 'gateway.md'), 'utf8');
  const block = /A full example[^\n]*\n\n```json\n([\s\S]*?)\n```/.exec(doc);
  assert.ok(block, 'docs/gateway.md has "A full example" in a json block');
  const example = JSON.parse(block[1]) as Record<string, unknown>;
  const missing = up.options.filter((o) => o.long !== '--config').map(configKey).filter((k) => !(k in example));
  assert.equal(missing, [], 'keys the example leaves out');
  const o = await parseUp(['--config', configFile(example)]);
  assert.is(o.reorderGrace, example['reorder-grace']);
});

keys('lists may be JSON arrays or comma-separated strings; negated flags take false', async () => {
  const file = configFile({ lan: 'lan0', wan: 'wan0', peer: '10.99.0.2', remote: '10.2.0.0/16, 10.3.0.0/16', interleaves: '1,10', 'mss-clamp': false, feedback: true });
  const o = await parseUp(['--config', file]);
  assert.equal(o.remote, ['10.2.0.0/16', '10.3.0.0/16']);
  assert.equal(o.interleaves, [1, 10]);
  assert.is(o.mssClamp, false);
  assert.is(o.feedback, true);
});

const merge = suite('up --config: merging with the command line');

merge('the command line wins over the file, option by option', async () => {
  const file = configFile({ lan: 'lan0', wan: 'wan0', peer: '10.99.0.2', remote: ['10.2.0.0/24'], r: 12, 'flush-timeout': 5, 'mss-clamp': false });
  const o = await parseUp(['--config', file, '--r', '10', '--lan', 'eth1']);
  assert.is(o.r, 10);
  assert.is(o.lan, 'eth1');
  assert.is(o.flushTimeout, 5, 'not on the command line: from the file');
  assert.is(o.mssClamp, false);
  assert.is(o.wan, 'wan0');
  assert.is(o.repairPort, 7600, 'in neither: the default');
});

merge('required options may come from the file; one missing from both is named', async () => {
  const o = await parseUp(['--config', configFile({ lan: 'lan0', wan: 'wan0', peer: '10.99.0.2', remote: ['10.2.0.0/24'] })]);
  assert.is(o.peer, '10.99.0.2');
  try {
    await parseUp(['--config', configFile({ lan: 'lan0', wan: 'wan0', remote: ['10.2.0.0/24'] })]);
    assert.unreachable('no peer given');
  } catch (err) {
    assert.instance(err, CommanderError);
    assert.is((err as CommanderError).code, 'commander.missingMandatoryOptionValue');
    assert.is((err as CommanderError).exitCode, 2);
    assert.match((err as Error).message, /--peer <ip>.*"peer" in --config/);
  }
});

const errors = suite('up --config: bad files');

errors('an unknown key is named with the file and the nearest valid key', async () => {
  const file = configFile({ lan: 'lan0', 'flush-timout': 1 });
  const e = await configError(['--config', file]);
  assert.ok(e.message.includes(file), e.message);
  assert.match(e.message, /unknown key "flush-timout" \(did you mean "flush-timeout"\?\)/);
  assert.match((await configError(['--config', configFile({ flushTimeout: 1 })])).message, /did you mean "flush-timeout"/);
  assert.match((await configError(['--config', configFile({ 'no-mss-clamp': true })])).message, /write "mss-clamp": false/);
  assert.match((await configError(['--config', configFile({ config: 'other.json' })])).message, /cannot name another/);
  assert.not.match((await configError(['--config', configFile({ banana: 1 })])).message, /did you mean/);
});

errors('wrong types and values the option refuses name the file and the key', async () => {
  const cases: [unknown, RegExp][] = [
    [{ r: true }, /"r" takes a string, a number or a list of them/],
    [{ r: 'eight' }, /"r": --r takes a whole number, got 'eight'/],
    [{ json: 'yes' }, /"json" is true or false, got "yes"/],
    [{ 'mss-clamp': 0 }, /"mss-clamp" is true or false/],
    [{ remote: { prefix: '10.2.0.0/16' } }, /"remote" takes a string, a number or a list/],
    [{ interleaves: [[1, 10]] }, /"interleaves" takes a string, a number or a list/],
    [{ queues: [] }, /"queues" takes/],
    [{ lan: null }, /"lan" takes/],
  ];
  for (const [content, message] of cases) {
    const file = configFile(content);
    const e = await configError(['--config', file]);
    assert.match(e.message, message);
    assert.ok(e.message.startsWith(`${file}: `), e.message);
  }
});

errors('an unreadable file, invalid JSON and a file that is not an object name the file', async () => {
  const missing = path.join(dir, 'none.json');
  assert.match((await configError(['--config', missing])).message, new RegExp(`cannot read the config file ${missing}: ENOENT`));
  const broken = configFile('{"lan": "lan0",}');
  assert.match((await configError(['--config', broken])).message, new RegExp(`${broken} is not valid JSON: .*position`));
  const list = configFile([{ lan: 'lan0' }]);
  assert.match((await configError(['--config', list])).message, new RegExp(`${list} must hold one JSON object`));
});

errors('every key is checked, also those the command line overrides', async () => {
  const e = await configError([...Object.values(REQUIRED).flat(), '--r', '9', '--config', configFile({ r: 'x' })]);
  assert.match(e.message, /"r": --r takes a whole number/);
});

errors('through the command: exit status 2 and the code, before anything needs root', () => {
  const file = configFile({ lan: 'lan0', wan: 'wan0', peer: '10.99.0.2', remote: '10.2.0.0/24', 'repair-prot': 7600 });
  const r = spawnSync(process.execPath, [bin, 'up', '--config', file], { encoding: 'utf8' });
  assert.is(r.status, 2, r.stderr);
  assert.match(r.stderr, /unknown key "repair-prot" \(did you mean "repair-port"\?\).*\[MAELSTROM_ERR_CONFIG\]/);
  assert.is(r.stdout, '');
});

errors('nearestKey suggests only what is near', () => {
  const all = ['lan', 'wan', 'r', 'c', 'interleaves', 'flush-timeout', 'xdp-mode', 'zero-copy'];
  assert.is(nearestKey('interleave', all), 'interleaves');
  assert.is(nearestKey('xdp_mode', all), 'xdp-mode');
  assert.is(nearestKey('zeroCopy', all), 'zero-copy');
  assert.is(nearestKey('lna', all), 'lan');
  assert.is(nearestKey('peer-address', all), undefined);
  assert.is(nearestKey('q', ['r', 'c', 'lan']), undefined, 'one letter away from r, but so is everything one letter long');
});

errors.after(() => fs.rmSync(dir, { recursive: true, force: true }));

keys.run();
merge.run();
errors.run();
