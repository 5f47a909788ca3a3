// Structured logs (src/log.ts): JSON lines with level, time, pid, event and msg; levels; files;
// errors with their code; and `maelstrom up` logging an error that stops it.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { ConfigError } from '../../src/errors';
import { createLogger, withLogger } from '../../src/log';

const bin = path.resolve(__dirname, '..', '..', 'src', 'cli', 'maelstrom.js');
const log = suite('log: JSON lines for the gateway\'s lifecycle');

function capture() {
  const lines: Record<string, unknown>[] = [];
  return { lines, destination: { write: (line: string) => { lines.push(JSON.parse(line)); } } };
}

function readLines(file: string): Record<string, unknown>[] {
  return readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
}

log('a record is one JSON line: level by name, ISO time, pid, the event, its fields and msg', () => {
  const c = capture();
  const logger = createLogger({ destination: c.destination });
  logger.info({ event: 'tune', r: 8, c: 3, epoch: 2 }, 'code changed');
  logger.debug({ event: 'noise' }, 'not at info');
  assert.is(c.lines.length, 1);
  const [line] = c.lines;
  assert.equal({ ...line, time: undefined }, { level: 'info', time: undefined, pid: process.pid, event: 'tune', r: 8, c: 3, epoch: 2, msg: 'code changed' });
  assert.ok(Math.abs(Date.parse(line.time as string) - Date.now()) < 60_000, `${line.time} is an ISO time of now`);
});

log('levels filter; an unknown level is a ConfigError naming the choices', () => {
  const c = capture();
  const logger = createLogger({ level: 'warn', destination: c.destination });
  logger.info({ event: 'up' }, 'up');
  logger.warn({ event: 'slow' }, 'slow');
  logger.error({ event: 'error' }, 'bad');
  assert.equal(c.lines.map((l) => l.level), ['warn', 'error']);
  assert.is(createLogger({ level: 'silent', destination: c.destination }).isLevelEnabled('fatal'), false);
  assert.throws(() => createLogger({ level: 'loud' }), (e: Error) => e instanceof ConfigError && /--log-level is one of fatal, error, warn, info, debug, trace, silent, got 'loud'/.test(e.message));
});

log('--log-file appends; a file that cannot be opened is a ConfigError', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'mlog-'));
  try {
    const file = path.join(dir, 'gw.log');
    createLogger({ file }).info({ event: 'starting' }, 'one');
    createLogger({ file }).info({ event: 'up' }, 'two');
    assert.equal(readLines(file).map((l) => l.event), ['starting', 'up']);
    assert.throws(() => createLogger({ file: path.join(dir, 'no', 'such', 'dir.log') }), (e: Error) => e instanceof ConfigError && /cannot open it for appending \(ENOENT\)/.test(e.message));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

log('withLogger logs the error that ends an action, with its code, and passes it on', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'mlog-'));
  try {
    const file = path.join(dir, 'gw.log');
    const failing = withLogger(async (_o: { logFile: string }, l) => {
      l.info({ event: 'starting' }, 'starting');
      throw new ConfigError('r must be an integer from 1 to 255, got 0');
    });
    await failing({ logFile: file }).then(() => assert.unreachable('rethrown'), (e: Error) => assert.instance(e, ConfigError));
    const [starting, error] = readLines(file);
    assert.is(starting.event, 'starting');
    assert.equal({ ...error, time: undefined, pid: undefined },
      { level: 'error', time: undefined, pid: undefined, event: 'error', code: 'MAELSTROM_ERR_CONFIG', exitCode: 2, msg: 'r must be an integer from 1 to 255, got 0' });
    // A bug is not a known error: it is logged with its stack.
    const buggy = withLogger(async (_o: { logFile: string }) => { throw new TypeError('x is undefined'); });
    await buggy({ logFile: file }).catch(() => undefined);
    const bug = readLines(file)[2] as { err: { type: string; stack: string } };
    assert.is(bug.err.type, 'TypeError');
    assert.match(bug.err.stack, /TypeError: x is undefined\n\s+at /);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

log('maelstrom up logs starting, then the error that stopped it with the code stderr shows; stdout stays empty', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'mlog-'));
  try {
    const file = path.join(dir, 'up.log');
    // --r 0 stops it before it looks at any interface (as non-root: the root check, earlier still).
    const r = spawnSync(process.execPath, [bin, 'up', '--lan', 'lan0', '--wan', 'wan0', '--peer', '10.99.0.2', '--remote', '10.2.0.0/24', '--r', '0', '--log-file', file], { encoding: 'utf8', timeout: 20_000 });
    assert.ok(r.status === 2 || r.status === 4, r.stderr);
    const code = /\[(MAELSTROM_ERR_\w+)\]/.exec(r.stderr)?.[1];
    assert.ok(code, r.stderr);
    assert.is(r.stdout, '');
    const lines = readLines(file);
    assert.equal(lines.map((l) => l.event), ['starting', 'error']);
    assert.is(lines[0].lan, 'lan0');
    assert.is(lines[1].code, code);
    assert.is(lines[1].level, 'error');
    // Without --log-file the same lines go to stderr, before the CLI's one-line message.
    const e = spawnSync(process.execPath, [bin, 'up', '--lan', 'lan0', '--wan', 'wan0', '--peer', '10.99.0.2', '--remote', '10.2.0.0/24', '--r', '0'], { encoding: 'utf8', timeout: 20_000 });
    const stderr = e.stderr.trim().split('\n');
    assert.equal(stderr.slice(0, 2).map((l) => JSON.parse(l).event), ['starting', 'error']);
    assert.match(stderr[2], /^maelstrom: .*\[MAELSTROM_ERR_\w+\]$/);
    const quiet = spawnSync(process.execPath, [bin, 'up', '--lan', 'lan0', '--wan', 'wan0', '--peer', '10.99.0.2', '--remote', '10.2.0.0/24', '--r', '0', '--log-level', 'silent'], { encoding: 'utf8', timeout: 20_000 });
    assert.equal(quiet.stderr.trim().split('\n').length, 1, quiet.stderr);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

log.run();
