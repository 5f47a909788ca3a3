#!/usr/bin/env node
// smfs: the mirrored log-structured store's command line. So far the storage server
// (docs/smfs.md); the metadata and file servers and mirroring come next (docs/roadmap.md).
import { Command } from 'commander';
import { run } from './run';
import { byteSize, integer } from './parse';
import { ConfigError } from '../errors';
import { LIMITS } from '../smfs/format';
import { FSYNC_POLICIES, LogStore, STORE_DEFAULTS } from '../smfs/store';
import type { FsyncPolicy } from '../smfs/store';
import type { RecoveryReport } from '../smfs/recovery';
import { StorageServer } from '../smfs/server';
import { STORAGE_PORT } from '../smfs/wire';

const { version } = require('../../../package.json') as { version: string };

function formatRecovery(r: RecoveryReport): string {
  const lines = [`recovered ${r.logs} logs, ${r.segments} segments, ${r.records} records; last group ${r.lastSeq}, durable up to ${r.durableSeq}`];
  for (const t of r.truncated) {
    lines.push(`  log ${t.log} cut back to segment ${t.segment} offset ${t.offset}: ${t.droppedBytes} bytes dropped (${t.reason})`);
  }
  if (r.droppedGroups > 0) lines.push(`  ${r.droppedGroups} incomplete group(s) dropped`);
  for (const f of r.removed) lines.push(`  removed ${f}`);
  return lines.join('\n');
}

interface StorageOptions {
  dir: string; host: string; port: number; fsync: string; fsyncInterval: number; segmentSize: number; json?: boolean;
}

const program = new Command('smfs')
  .description('SMFS: a log-structured store mirrored to a remote site (local-, network- or remote-sync)')
  .version(version)
  .addHelpText('after', `
So far the storage server; the metadata and file servers and mirroring come next
(docs/roadmap.md). The on-disk format and the protocol are in docs/smfs.md.

Examples:
  smfs storage --dir /srv/smfs                 # serve the logs in /srv/smfs on 127.0.0.1:7610
  smfs storage --help`);

program
  .command('storage')
  .description('Run a storage server: logs of segment files in --dir, served over TCP, in the foreground until SIGINT/SIGTERM')
  .requiredOption('--dir <path>', 'the store\'s directory (created if missing; one server per directory)')
  .option('--host <addr>', 'address to listen on', '127.0.0.1')
  .option('--port <n>', `TCP port (0: any free port, printed at start)`, integer('--port'), STORAGE_PORT)
  .option('--fsync <policy>', 'when appends reach the disk: always (before the answer), interval, never (the OS decides)', STORE_DEFAULTS.fsync)
  .option('--fsync-interval <ms>', 'with --fsync interval: how often', integer('--fsync-interval'), STORE_DEFAULTS.fsyncIntervalMs)
  .option('--segment-size <bytes>', 'segment file size, e.g. 100M (K, M, G are powers of 1024)', byteSize('--segment-size'), LIMITS.defaultSegmentBytes)
  .option('--json', 'print the start and stop reports as JSON lines')
  .addHelpText('after', `
Requests (docs/smfs.md has the frames): create-log, append (a group of records, for one log or
several, committed all or none), read, free, clean, stat, sync. A bad request is answered with
an SMFS_ERR_... code and the connection goes on.

fsync policies: 'always' answers an append once it is on disk (a power cut loses nothing
answered); 'interval' answers at once and fsyncs every --fsync-interval ms (a power cut loses at
most that much); 'never' leaves it to the OS. A process crash loses nothing answered under any
policy, and every group is all or none after any crash.

Examples:
  smfs storage --dir /srv/smfs --port 7610
  smfs storage --dir /srv/smfs --host 0.0.0.0 --fsync interval --fsync-interval 5 --segment-size 64M
  smfs storage --dir /tmp/s --port 0 --json     # prints {"event":"listening","port":...}`)
  .action(async (o: StorageOptions) => {
    if (!FSYNC_POLICIES.includes(o.fsync as FsyncPolicy)) throw new ConfigError(`--fsync is one of ${FSYNC_POLICIES.join(', ')}, got '${o.fsync}'`);
    if (o.port < 0 || o.port > 65535) throw new ConfigError(`--port is from 0 to 65535, got ${o.port}`);
    if (o.fsyncInterval < 1 || o.fsyncInterval > 60_000) throw new ConfigError(`--fsync-interval is from 1 to 60000 ms, got ${o.fsyncInterval}`);
    if (o.segmentSize < LIMITS.minSegmentBytes || o.segmentSize > LIMITS.maxSegmentBytes) {
      throw new ConfigError(`--segment-size is from ${LIMITS.minSegmentBytes} bytes to 2G, got ${o.segmentSize}`);
    }
    const store = await LogStore.open(o.dir, { fsync: o.fsync as FsyncPolicy, fsyncIntervalMs: o.fsyncInterval, segmentBytes: o.segmentSize });
    let server: StorageServer;
    try {
      server = await StorageServer.listen(store, { host: o.host, port: o.port });
    } catch (err) {
      await store.close();
      throw new ConfigError(`cannot listen on ${o.host}:${o.port}: ${(err as Error).message}`);
    }
    const { host, port } = server.address;
    const info = { host, port, dir: store.dir, fsync: o.fsync, fsyncIntervalMs: o.fsyncInterval, segmentBytes: o.segmentSize, pid: process.pid };
    if (o.json) process.stdout.write(JSON.stringify({ event: 'listening', ...info, recovery: store.recovery }) + '\n');
    else {
      process.stdout.write(`smfs storage: listening on ${host}:${port}, dir ${store.dir}, fsync ${o.fsync}${o.fsync === 'interval' ? ` every ${o.fsyncInterval} ms` : ''}, segments of ${o.segmentSize} bytes\n`);
      process.stdout.write(formatRecovery(store.recovery) + '\n');
    }
    const signal = await new Promise<string>((resolve) => {
      for (const s of ['SIGINT', 'SIGTERM'] as const) process.once(s, () => resolve(s));
    });
    // A second signal while shutting down means now.
    for (const s of ['SIGINT', 'SIGTERM'] as const) process.once(s, () => process.exit(1));
    await server.close();
    const stats = store.stat();
    const stopped = { event: 'stopped', signal, lastSeq: stats.lastSeq, durableSeq: stats.durableSeq, ...server.counters };
    process.stdout.write((o.json ? JSON.stringify(stopped) : `smfs storage: stopped on ${signal}; last group ${stats.lastSeq}, all on disk; ${server.counters.requests} requests, ${Object.values(server.counters.refused).reduce((a, b) => a + b, 0)} refused`) + '\n');
  });

void run(program, process.argv);
