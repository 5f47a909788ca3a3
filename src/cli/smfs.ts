#!/usr/bin/env node
// smfs: the mirrored log-structured store's command line: the storage server (docs/smfs.md),
// its mirroring, failover and bench, the metadata and file servers and the file commands
// (docs/smfs-files.md).
import fs from 'node:fs';
import { Command, Option } from 'commander';
import { run } from './run';
import { byteSize, decimal, decimalList, integer, integerList } from './parse';
import { requireRoot } from '../gateway/gateway';
import { ConfigError, MaelstromError } from '../errors';
import { LIMITS } from '../smfs/format';
import { FSYNC_POLICIES, LogStore, STORE_DEFAULTS } from '../smfs/store';
import type { FsyncPolicy } from '../smfs/store';
import type { RecoveryReport } from '../smfs/recovery';
import { MAX_CODED_SHARES, StorageServer } from '../smfs/server';
import type { HandoverReport } from '../smfs/handover';
import { STORAGE_PORT } from '../smfs/wire';
import { openMirrorTrace } from '../smfs/trace';
import { ACK_LEVELS, MirrorLink, readRole, writeRole } from '../smfs/mirror';
import type { AckLevel, Role } from '../smfs/mirror';
import { APPEND_LEVELS, StorageClient } from '../smfs/client';
import type { AppendLevel } from '../smfs/client';
import { NetworkSyncListener } from '../feedback/listener';
import { FEEDBACK_PORT } from '../feedback/format';
import net from 'node:net';
import { formatEndpoint, parseEndpoint } from '../smfs/frame-client';
import type { Endpoint } from '../smfs/frame-client';
import { METADATA_PORT, MetadataServer } from '../smfs/metadata';
import { Volume } from '../smfs/fs/volume';
import { FileServer } from '../smfs/fs/server';
import { FileClient } from '../smfs/fs/client';
import { FILES_PORT } from '../smfs/fs/protocol';
import type { FileLevel } from '../smfs/fs/protocol';
import type { Change } from '../smfs/fs/tree';
import { CREDENTIALS_ENV, CREDENTIAL_FILE, findCredential } from '../smfs/credentials';
import type { Credential } from '../smfs/credentials';
import { DEFAULT_CACHE_BYTES, MAX_DIRTY_BYTES, SmfsMount } from '../smfs/mount/mount';
import { SmfsError } from '../smfs/errors';
import { spawnSync } from 'node:child_process';
import { DEFAULTS, FLUSH_BUDGET, LIMITS as LIMITS_FEC } from '../fec/config';
import type { FlushSetting } from '../../bench/disaster';

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

function formatHandover(h: HandoverReport): string {
  const lines = [`clients' caches: ${h.clients} client(s)${h.timedOut ? ` (of ${h.awaitClients} awaited: the grace ended)` : ''} handed over ${h.groups} group(s) and ${h.shares} share(s) in ${h.ms} ms`,
    `  replayed ${h.applied} group(s) after group ${h.startSeq} (${h.decoded} solved from coded shares, ${h.present} already here); last group now ${h.lastSeq}`];
  if (h.gapAt !== null) lines.push(`  stopped at group ${h.gapAt}: ${h.gapReason}; ${h.cutOff.length} group(s) after it not recovered (their clients are told)`);
  if (h.conflicts.length > 0) lines.push(`  copies that differ: groups ${h.conflicts.join(', ')}`);
  if (h.logsCreated.length > 0) lines.push(`  logs created by a replayed group: ${h.logsCreated.join(', ')}`);
  if (h.refused > 0) lines.push(`  ${h.refused} handover(s) refused as malformed or damaged`);
  return lines.join('\n');
}

// HOST:PORT; with a default port, HOST alone too.
function endpoint(option: string, defaultPort?: number) {
  return (text: string): Endpoint => {
    const e = parseEndpoint(text) ?? (defaultPort === undefined || text.includes(':') ? undefined : parseEndpoint(`${text}:${defaultPort}`));
    if (!e) throw new ConfigError(`${option} takes HOST${defaultPort === undefined ? ':PORT' : '[:PORT]'} (port 1 to 65535), got '${text}'`);
    return e;
  };
}

function endpoints(option: string) {
  return (text: string): Endpoint[] => {
    const list = text.split(',').map(endpoint(option));
    const names = list.map(formatEndpoint);
    const twice = names.find((n, i) => names.indexOf(n) !== i);
    if (twice) throw new ConfigError(`${option} names ${twice} twice`);
    return list;
  };
}

function checkPort(port: number): void {
  if (port < 0 || port > 65535) throw new ConfigError(`--port is from 0 to 65535, got ${port}`);
}

// Runs until SIGINT or SIGTERM; a second signal while stopping exits at once.
async function untilSignal(): Promise<string> {
  const signal = await new Promise<string>((resolve) => {
    for (const s of ['SIGINT', 'SIGTERM'] as const) process.once(s, () => resolve(s));
  });
  for (const s of ['SIGINT', 'SIGTERM'] as const) process.once(s, () => process.exit(1));
  return signal;
}

async function readInput(file: string | undefined): Promise<Buffer> {
  if (file !== undefined && file !== '-') {
    try {
      return fs.readFileSync(file);
    } catch (err) {
      throw new ConfigError(`cannot read ${file}: ${(err as Error).message}`);
    }
  }
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

// --credentials, for every command that serves or connects.
const credentialsOption = ['--credentials <file>', `the deployment's credential (mode 0600); default $${CREDENTIALS_ENV}`] as const;
const credentialsHelp = `
Every SMFS connection is authenticated both ways with the deployment's credential, a secret file
of mode 0600 that all its servers and clients share: --credentials FILE, or ${CREDENTIALS_ENV}=FILE.
A storage or metadata server given neither uses DIR/${CREDENTIAL_FILE}, made at its first start;
copy that file (mode 0600) to the deployment's other hosts. A peer without it is refused
(SMFS_ERR_AUTH).`;

function clientCredential(o: { credentials?: string }, command: string): Credential {
  return findCredential({ file: o.credentials, command }).credential;
}

async function withFiles<T>(o: { server: Endpoint; credentials?: string }, command: string, fn: (c: FileClient) => Promise<T>): Promise<T> {
  const c = await FileClient.connect(o.server, clientCredential(o, `smfs ${command}`));
  try {
    return await fn(c);
  } finally {
    await c.close();
  }
}

interface StorageOptions {
  dir: string; host: string; port: number; fsync: string; fsyncInterval: number; segmentSize: number; json?: boolean;
  role?: string; mirror?: Endpoint; gateway?: string; feedbackPort: number; feedbackKey?: string; insecureFeedback?: boolean;
  ack?: string; ackTimeout: number; credentials?: string; mirrorTls: string; codedShares: number;
  traceMirror?: string;
}

function ipv4List(flag: string, text: string): string[] {
  const list = text.split(',').map((a) => a.trim());
  for (const a of list) if (net.isIPv4(a) === false) throw new ConfigError(`${flag} takes IPv4 addresses separated by commas, got '${a}'`);
  return list;
}

const program = new Command('smfs')
  .description('SMFS: a log-structured store mirrored to a remote site (local-, network- or remote-sync)')
  .version(version)
  .addHelpText('after', `
Servers: storage (logs of segments, port 7610), metadata (gives out logs and places them on
storage servers, 7611), files (a file tree kept in one log, 7612). The file commands (write,
read, ls, mkdir, rm, mv, put) talk to a file server, --server HOST:PORT (127.0.0.1:7612).
A primary storage server mirrors to another (--mirror, --role mirror), acknowledging appends
local-, network- (--gateway) or remote-sync; smfs promote makes the mirror the primary.
Every connection is authenticated both ways with the deployment's credential (--credentials
FILE or SMFS_CREDENTIALS; a storage server makes DIR/credentials if given none).
Formats and protocols: docs/smfs.md, docs/smfs-files.md.

Examples:
  smfs storage --dir /srv/smfs                            # serve logs on 127.0.0.1:7610
  smfs storage --dir /srv/mirror --role mirror --host 0.0.0.0            # at the remote site
  smfs storage --dir /srv/smfs --mirror 10.2.0.10 --gateway 10.1.0.1 --feedback-key fb.key  # network-sync primary
  smfs promote --host 10.2.0.10                           # failover to the mirror
  smfs metadata --dir /srv/smfs-meta --storage 127.0.0.1:7610
  smfs files --metadata 127.0.0.1:7611                    # creates a log, prints its id
  smfs files --metadata 127.0.0.1:7611 --log 1            # later: the same tree, from the log
  smfs mkdir /docs && smfs write /docs/a.txt a.txt && smfs read /docs/a.txt
  smfs put /v2/a=a.txt /v2/b=b.txt --rm /v1/a             # one update, all or none
  smfs <command> --help`);

program
  .command('storage')
  .description('Run a storage server: logs of segment files in --dir, served over TCP, in the foreground until SIGINT/SIGTERM')
  .requiredOption('--dir <path>', 'the store\'s directory (created if missing; one server per directory)')
  .option('--host <addr>', 'address to listen on', '127.0.0.1')
  .option('--port <n>', `TCP port (0: any free port, printed at start)`, integer('--port'), STORAGE_PORT)
  .option('--fsync <policy>', 'when appends reach the disk: always (before the answer), interval, never (the OS decides)', STORE_DEFAULTS.fsync)
  .option('--fsync-interval <ms>', 'with --fsync interval: how often', integer('--fsync-interval'), STORE_DEFAULTS.fsyncIntervalMs)
  .option('--segment-size <bytes>', 'segment file size, e.g. 100M (K, M, G are powers of 1024)', byteSize('--segment-size'), LIMITS.defaultSegmentBytes)
  .option('--role <role>', 'primary, or mirror (takes changes only from a primary; remembered in --dir until smfs promote)')
  .option('--mirror <host:port>', 'as a primary: stream every change to this mirror storage server (port default 7610)', endpoint('--mirror', STORAGE_PORT))
  .option('--gateway <ip,...>', 'as a primary: the LAN addresses of the Maelstrom gateways whose network-sync feedback to trust (enables --ack network)')
  .option('--feedback-port <n>', 'UDP port the gateways send feedback to', integer('--feedback-port'), FEEDBACK_PORT)
  .option('--feedback-key <file>', 'with --gateway: the gateways\' feedback key (maelstrom keygen --feedback); feedback that does not open under it is ignored')
  .option('--insecure-feedback', 'with --gateway: trust unauthenticated feedback (gateways run with --insecure-no-auth; any LAN host could forge it)')
  .option('--ack <level>', "acknowledgement level of appends that do not ask: local, network or remote (default: network with --gateway, remote with --mirror alone, else local)")
  .option('--ack-timeout <ms>', 'an append not at its level in this long is answered SMFS_ERR_MIRROR (it stays written here)', integer('--ack-timeout'), 10_000)
  .option(credentialsOption[0], `${credentialsOption[1]}, else DIR/${CREDENTIAL_FILE} (made if missing)`)
  .option('--trace-mirror <file>', 'for experiments: append a line per mirrored group sent (primary) or taken in (mirror), with its CLOCK_MONOTONIC time in ns')
  .option('--mirror-tls <on|off>', 'the mirror stream over TLS: a primary streams with TLS, a mirror takes the stream only with TLS; off: without TLS too (a trusted path only)', 'on')
  .option('--coded-shares <k>', "with --mirror: each 'tagged' group also goes into a coded share another client holds, so the clients' caches survive the loss of k clients (0 or 1)", integer('--coded-shares'), 0)
  .option('--json', 'print the start and stop reports as JSON lines')
  .addHelpText('after', `
Requests (docs/smfs.md has the frames): create-log, append (a group of records, for one log or
several, committed all or none), read, free, clean, stat, sync. A bad request is answered with
an SMFS_ERR_... code and the connection goes on.

fsync policies: 'always' answers an append once it is on disk (a power cut loses nothing
answered); 'interval' answers at once and fsyncs every --fsync-interval ms (a power cut loses at
most that much); 'never' leaves it to the OS. A process crash loses nothing answered under any
policy, and every group is all or none after any crash.

Mirroring: a primary started with --mirror streams create-log, append and free to the mirror
(started with --role mirror) as the very bytes it wrote; after a reconnection it sends what the
mirror lacks from its own log. Each append is answered at its level:
  local    written here (fsync per policy) and handed to the kernel for the mirror
  network  also on the WAN with its repairs, as the gateway reports (needs --gateway)
  remote   also written at the mirror (its fsync per its policy)
  tagged   answered like local with a tag; the client keeps the group until the mirror has
           it, and the append completes once every group up to it is held outside this site
           (the mirror, or the clients' caches: docs/smfs.md, "Tagged responses")
The mirror stream runs over TLS (TLS-PSK, keyed from the credential: no certificates), which
the mirror requires; --mirror-tls off at both ends streams in the clear.
${credentialsHelp}

Examples:
  smfs storage --dir /srv/smfs --port 7610
  smfs storage --dir /srv/mirror --role mirror --host 0.0.0.0          # at the remote site
  smfs storage --dir /srv/smfs --mirror 10.2.0.10 --gateway 10.1.0.1 --feedback-key /etc/smfs/feedback.key  # network-sync
  smfs storage --dir /srv/mirror --role mirror --credentials /etc/smfs/credentials  # the primary's, copied
  smfs storage --dir /srv/smfs --host 0.0.0.0 --fsync interval --fsync-interval 5 --segment-size 64M
  smfs storage --dir /tmp/s --port 0 --json     # prints {"event":"listening","port":...}`)
  .action(async (o: StorageOptions) => {
    if (!FSYNC_POLICIES.includes(o.fsync as FsyncPolicy)) throw new ConfigError(`--fsync is one of ${FSYNC_POLICIES.join(', ')}, got '${o.fsync}'`);
    if (o.port < 0 || o.port > 65535) throw new ConfigError(`--port is from 0 to 65535, got ${o.port}`);
    if (o.fsyncInterval < 1 || o.fsyncInterval > 60_000) throw new ConfigError(`--fsync-interval is from 1 to 60000 ms, got ${o.fsyncInterval}`);
    if (o.segmentSize < LIMITS.minSegmentBytes || o.segmentSize > LIMITS.maxSegmentBytes) {
      throw new ConfigError(`--segment-size is from ${LIMITS.minSegmentBytes} bytes to 2G, got ${o.segmentSize}`);
    }
    if (o.role !== undefined && o.role !== 'primary' && o.role !== 'mirror') throw new ConfigError(`--role is primary or mirror, got '${o.role}'`);
    if (o.ack !== undefined && !ACK_LEVELS.includes(o.ack as AckLevel)) throw new ConfigError(`--ack is one of ${ACK_LEVELS.join(', ')}, got '${o.ack}'`);
    if (o.ackTimeout < 1 || o.ackTimeout > 3_600_000) throw new ConfigError(`--ack-timeout is from 1 to 3600000 ms, got ${o.ackTimeout}`);
    if (o.feedbackPort < 1 || o.feedbackPort > 65535) throw new ConfigError(`--feedback-port is from 1 to 65535, got ${o.feedbackPort}`);
    if (o.mirrorTls !== 'on' && o.mirrorTls !== 'off') throw new ConfigError(`--mirror-tls is on or off, got '${o.mirrorTls}'`);
    if (o.codedShares < 0 || o.codedShares > MAX_CODED_SHARES) throw new ConfigError(`--coded-shares is 0 or ${MAX_CODED_SHARES} (a share survives the loss of one client; more needs Reed-Solomon, not built), got ${o.codedShares}`);
    if (o.codedShares > 0 && !o.mirror) throw new ConfigError('--coded-shares covers groups until the mirror has them: give --mirror too');
    const onDisk = fs.existsSync(o.dir) ? readRole(o.dir) : 'primary';
    if (o.role === 'primary' && onDisk === 'mirror') throw new ConfigError(`${o.dir} is a mirror's directory; smfs promote makes it a primary`);
    const role: Role = (o.role as Role | undefined) ?? onDisk;
    const gateways = o.gateway === undefined ? undefined : ipv4List('--gateway', o.gateway);
    if (role === 'mirror' && (o.mirror || gateways)) throw new ConfigError('a mirror does not take --mirror or --gateway: it does not mirror further');
    if (gateways && !o.mirror) throw new ConfigError('--gateway is for network-sync to a mirror: give --mirror too');
    const level = o.ack as AckLevel | undefined;
    if (level && level !== 'local' && !o.mirror) throw new ConfigError(`--ack ${level} needs a mirror (--mirror)`);
    if (level === 'network' && !gateways) throw new ConfigError('--ack network needs the gateways\' feedback (--gateway)');
    if ((o.feedbackKey !== undefined || o.insecureFeedback) && !gateways) throw new ConfigError('--feedback-key and --insecure-feedback go with --gateway');
    if (o.feedbackKey !== undefined && o.insecureFeedback) throw new ConfigError('--feedback-key and --insecure-feedback contradict each other: give one');
    if (gateways && o.feedbackKey === undefined && !o.insecureFeedback) {
      throw new MaelstromError('MAELSTROM_ERR_KEY', '--gateway needs the gateways\' feedback key, --feedback-key FILE (maelstrom keygen --feedback --key-file PAIR.key > FILE), '
        + 'or --insecure-feedback to trust unauthenticated feedback (then any LAN host can make appends look network-safe)');
    }
    const { credential, created } = findCredential({ file: o.credentials, dir: o.dir, command: 'smfs storage' });
    if (o.traceMirror !== undefined) openMirrorTrace(o.traceMirror);
    const mirrorTls = o.mirrorTls === 'on';
    const store = await LogStore.open(o.dir, { fsync: o.fsync as FsyncPolicy, fsyncIntervalMs: o.fsyncInterval, segmentBytes: o.segmentSize, mirror: role === 'mirror' });
    let listener: NetworkSyncListener | undefined;
    let link: MirrorLink | undefined;
    let server: StorageServer;
    try {
      if (role === 'mirror' && onDisk !== 'mirror') writeRole(store.dir, 'mirror');
      if (gateways) {
        listener = await NetworkSyncListener.open({ gateways, port: o.feedbackPort, timeoutMs: o.ackTimeout, keyFile: o.feedbackKey, insecureNoAuth: o.insecureFeedback }).catch((err: Error) => {
          if (err instanceof MaelstromError) throw err;
          throw new ConfigError(`cannot listen for gateway feedback on UDP ${o.feedbackPort}: ${err.message}`);
        });
      }
      if (o.mirror) {
        link = new MirrorLink(store, {
          ...o.mirror, credential, tls: mirrorTls, listener, ackTimeoutMs: o.ackTimeout,
          onEvent: (event, detail) => process.stdout.write((o.json ? JSON.stringify({ event, ...detail }) : `smfs storage: ${event} ${JSON.stringify(detail)}`) + '\n'),
        });
      }
      server = await StorageServer.listen(store, { host: o.host, port: o.port, credential, role, mirror: link, defaultLevel: level, plainMirrorStream: !mirrorTls, codedShares: o.codedShares }).catch((err: Error) => {
        throw new ConfigError(`cannot listen on ${o.host}:${o.port}: ${err.message}`);
      });
    } catch (err) {
      link?.close();
      await listener?.close();
      await store.close();
      throw err;
    }
    const { host, port } = server.address;
    const info = {
      host, port, dir: store.dir, role, fsync: o.fsync, fsyncIntervalMs: o.fsyncInterval, segmentBytes: o.segmentSize, pid: process.pid,
      mirror: o.mirror ? formatEndpoint(o.mirror) : null, gateways: gateways ?? null, defaultLevel: server.defaultLevel,
      credentials: credential.file, credentialsCreated: created, mirrorTls, codedShares: o.codedShares,
    };
    if (!mirrorTls) {
      process.stderr.write(`smfs storage: warning: --mirror-tls off: ${role === 'mirror' ? 'a primary may stream to this mirror' : 'the stream to the mirror goes'} in the clear, readable and changeable by anyone on the path; use it only on a trusted network\n`);
    }
    if (o.json) process.stdout.write(JSON.stringify({ event: 'listening', ...info, recovery: store.recovery }) + '\n');
    else {
      process.stdout.write(`smfs storage: ${role} listening on ${host}:${port}, dir ${store.dir}, fsync ${o.fsync}${o.fsync === 'interval' ? ` every ${o.fsyncInterval} ms` : ''}, segments of ${o.segmentSize} bytes\n`);
      process.stdout.write(`smfs storage: credential ${credential.file}${created ? ' (created: give this file, mode 0600, to the deployment\'s other servers and clients)' : ''}\n`);
      if (o.mirror) process.stdout.write(`smfs storage: mirroring to ${formatEndpoint(o.mirror)}${mirrorTls ? ' over TLS' : ' WITHOUT TLS'}; appends acknowledged ${server.defaultLevel} unless they ask${gateways ? `; network-sync feedback from ${gateways.join(', ')}` : ''}\n`);
      process.stdout.write(formatRecovery(store.recovery) + '\n');
    }
    const signal = await new Promise<string>((resolve) => {
      for (const s of ['SIGINT', 'SIGTERM'] as const) process.once(s, () => resolve(s));
    });
    // A second signal while shutting down means now.
    for (const s of ['SIGINT', 'SIGTERM'] as const) process.once(s, () => process.exit(1));
    await server.close();
    await listener?.close();
    const stats = server.store.stat();
    const stopped = { event: 'stopped', signal, lastSeq: stats.lastSeq, durableSeq: stats.durableSeq, ...server.counters };
    process.stdout.write((o.json ? JSON.stringify(stopped) : `smfs storage: stopped on ${signal}; last group ${stats.lastSeq}, all on disk; ${server.counters.requests} requests, ${Object.values(server.counters.refused).reduce((a, b) => a + b, 0)} refused, ${server.counters.authFailed} connections not authenticated`) + '\n');
  });

// --flush for smfs bench disaster: TIMEOUT_MS:BUDGET_PER_S[,...]. The default: figure 6's 0.1 ms
// unbudgeted (as the committed figure ran), the same with the default budget, the default
// timeout with it.
const FLUSH_SETTINGS_DEFAULT = `0.1:${FLUSH_BUDGET.maxPerS},0.1:${FLUSH_BUDGET.perS},${DEFAULTS.flushTimeoutMs}:${FLUSH_BUDGET.perS}`;

function flushSettings(text: string): FlushSetting[] {
  return text.split(',').map((item) => {
    const m = /^\s*([\d.]+):([\d.e+]+)\s*$/.exec(item);
    const flushMs = m ? Number(m[1]) : NaN;
    const budget = m ? Number(m[2]) : NaN;
    if (!(flushMs > 0 && flushMs <= LIMITS_FEC.flushTimeoutMs.max) || !(budget >= 0 && budget <= FLUSH_BUDGET.maxPerS)) {
      throw new ConfigError(`--flush takes TIMEOUT_MS:BUDGET_PER_S pairs (timeout above 0 and at most ${LIMITS_FEC.flushTimeoutMs.max} ms, budget 0 to ${FLUSH_BUDGET.maxPerS}), got '${item}'`);
    }
    return { flushMs, budget };
  });
}

program
  .command('bench')
  .description('Append throughput and latency per acknowledgement level, mirrored through the gateways in the lab (root); smfs bench local: appends on loopback beside the raw disk; smfs bench mount: a mount against a local directory; smfs bench disaster: network-sync\'s rolling disaster per flush setting')
  .argument('[what]', "'local': appends to one storage server on 127.0.0.1 beside the same appends written to the disk directly (--clients, --seconds, --append-kib, --block-kib, --dir apply); 'mount': fio and postmark on an smfs mount against a local directory (root, FUSE, --level applies); 'disaster': network-sync's rolling disaster (figure 6) per gateway flush setting (root; --flush, --runs, --seconds, --losses apply)")
  .option('--level <level>', 'with mount: the commits\' acknowledgement level', 'local')
  .option('--delays <list>', 'WAN one-way delays in ms', integerList('--delays'), [0, 25, 50, 100])
  .option('--losses <list>', 'WAN loss rates in percent', decimalList('--losses'), [0, 1])
  .option('--clients <list>', 'concurrent clients, one connection each', integerList('--clients'), [1, 64])
  .option('--levels <list>', 'acknowledgement levels, run in this order after a second of warm-up', 'local,tagged,network,remote')
  .option('--seconds <s>', 'appending per figure', decimal('--seconds'), 4)
  .option('--rounds <n>', 'run the levels this many times in turn; each figure is the median of its rounds', integer('--rounds'), 1)
  .option('--append-kib <n>', 'append size in KiB', integer('--append-kib'), 512)
  .option('--block-kib <n>', 'block (record) size in KiB', integer('--block-kib'), 4)
  .option(credentialsOption[0], 'the credential for its servers and clients (default: one made for the run, removed after)')
  .option('--dir <path>', 'with local: where the store and the raw-disk files go, i.e. the disk measured (default: the temporary directory)')
  .addOption(new Option('--flush <list>', "with disaster: the gateways' flush settings to compare, TIMEOUT_MS:BUDGET_PER_S comma-separated")
    .argParser(flushSettings).default(flushSettings(FLUSH_SETTINGS_DEFAULT), FLUSH_SETTINGS_DEFAULT))
  .option('--runs <n>', 'with disaster: runs per setting and loss', integer('--runs'), 5)
  .option('--json', 'print one JSON object: rows (delay_ms, loss, clients, level, mbytes_per_s, p50_ms, p99_ms; tagged also cache_peak_bytes, bdp_bytes, cache_waits) and checks (network_vs_local_*, remote_p50_vs_rtt, tagged_vs_local_*, tagged_cache_peak_vs_bdp)')
  .addHelpText('after', `
The paper's Table 2 workload: each append is a group of --append-kib / --block-kib blocks, over
four logs. Each (delay, loss, clients) gets a fresh primary and mirror, and the levels run in
turn against them. Targets, printed beside the figures: network within 10% of local in
throughput and latency at every delay; remote latency at least one WAN round trip; tagged
within 10% of local in throughput and p50, 20% in p99, with its client cache's peak beside the
bandwidth-delay product (the clients of a run are one client: one cache).
About 16 x (levels x --seconds x --rounds + 4) seconds with the defaults. On a shared machine a
figure of one round is noisy: --rounds 3 gives medians.

smfs bench local needs no root and no lab: per --clients (e.g. --clients 1,8,64) it writes the
appends straight to the disk first (O_DSYNC one at a time, and batches of one append per client
with one fdatasync each), then runs a fresh storage server (fsync always) with that many clients;
targets: 1 client at least 0.8x the O_DSYNC rate, 64 clients at least 0.8x the batched rate.
About 3 x --seconds per client count.

Examples:
  smfs bench --delays 0,25 --losses 0 --rounds 3       # through the gateways in the lab (root)
  smfs bench local --clients 1,8,64 --dir /srv/smfs    # this disk, no lab

smfs bench disaster runs network-sync's rolling disaster of smfs reproduce (figure 6: 8 testers
of 4 KB messages, 100 Mbit/s, 50 ms one way, loss raised for 0.5 s, then the site cut) with the
gateways at each --flush setting (default: 0.1 ms unbudgeted as the committed figure 6 ran, the
same with the default budget, and the default timeout with it), --runs times per --losses point
after --seconds of load (default 10). It prints what each lost and what its repairs cost the
bottleneck: repairs per data packet, tail drops, WAN losses gateway B could not rebuild.
  smfs bench disaster --losses 0.1 --runs 5 --seconds 10   # about 3 x 5 x 25 s`)
  .action(async (what: string | undefined, o: { delays: number[]; losses: number[]; clients: number[]; levels: string; seconds: number; rounds: number; appendKib: number; blockKib: number; credentials?: string; json?: boolean; level: string; dir?: string; flush: FlushSetting[]; runs: number }, cmd: Command) => {
    if (what !== undefined && what !== 'mount' && what !== 'local' && what !== 'disaster') throw new ConfigError(`smfs bench takes nothing, 'local', 'mount' or 'disaster', got '${what}'`);
    for (const k of ['flush', 'runs']) {
      if (what !== 'disaster' && cmd.getOptionValueSource(k) === 'cli') throw new ConfigError(`--${k} goes with smfs bench disaster`);
    }
    if (o.blockKib < 1 || o.appendKib < o.blockKib || o.appendKib % o.blockKib !== 0 || o.appendKib > 60 * 1024) {
      throw new ConfigError('--append-kib is a multiple of --block-kib, at most 61440 (a group holds 64 MiB)');
    }
    if (o.clients.some((c) => c < 1 || c > 1024)) throw new ConfigError('--clients are from 1 to 1024');
    if (o.seconds <= 0 || o.seconds > 600) throw new ConfigError('--seconds is more than 0 and at most 600');
    if (what === 'local') {
      for (const k of ['delays', 'losses', 'levels', 'rounds', 'credentials', 'level']) {
        if (cmd.getOptionValueSource(k) === 'cli') throw new ConfigError(`--${k} goes with the lab bench (or mount), not smfs bench local: it runs one server without a mirror, with a credential of its own`);
      }
      if (o.dir !== undefined && !fs.statSync(o.dir, { throwIfNoEntry: false })?.isDirectory()) throw new ConfigError(`--dir ${o.dir} is not a directory`);
      const { formatLocalBench, runLocalBench } = await import('../../bench/local');
      const progress = (line: string) => process.stderr.write(`smfs bench local: ${line}\n`);
      const r = await runLocalBench({ clients: o.clients, seconds: o.seconds, appendKiB: o.appendKib, blockKiB: o.blockKib, dir: o.dir, onProgress: o.json ? undefined : progress });
      process.stdout.write((o.json ? JSON.stringify(r) : formatLocalBench(r)) + '\n');
      return;
    }
    if (o.dir !== undefined) throw new ConfigError('--dir goes with smfs bench local');
    requireRoot();
    if (what === 'disaster') {
      if (o.losses.some((p) => p < 0 || p > 50)) throw new ConfigError('--losses are percentages from 0 to 50');
      if (o.runs < 1 || o.runs > 100) throw new ConfigError('--runs is from 1 to 100');
      const { formatDisasterBench, runDisasterBench } = await import('../../bench/disaster');
      const seconds = cmd.getOptionValueSource('seconds') === 'cli' ? o.seconds : 10;
      const losses = cmd.getOptionValueSource('losses') === 'cli' ? o.losses : [0.1];
      const progress = (line: string) => process.stderr.write(`smfs bench disaster: ${line}\n`);
      const r = await runDisasterBench({ settings: o.flush, losses: losses.map((p) => p / 100), runs: o.runs, afterSeconds: seconds, onProgress: o.json ? undefined : progress });
      process.stdout.write((o.json ? JSON.stringify(r) : formatDisasterBench(r)) + '\n');
      return;
    }
    if (what === 'mount') {
      if (o.level !== 'local') throw new ConfigError('smfs bench mount runs one storage server without a mirror: --level local only');
      const { formatMountBench, runMountBench } = await import('../../bench/mount');
      const r = await runMountBench({ level: o.level });
      process.stdout.write((o.json ? JSON.stringify(r) : formatMountBench(r)) + '\n');
      return;
    }
    const levels = o.levels.split(',').map((l) => l.trim()) as AppendLevel[];
    for (const l of levels) if (!APPEND_LEVELS.includes(l)) throw new ConfigError(`--levels are ${APPEND_LEVELS.join(', ')}, got '${l}'`);
    if (o.delays.some((d) => d < 0 || d > 200)) throw new ConfigError('--delays are one-way delays from 0 to 200 ms');
    if (o.losses.some((p) => p < 0 || p > 50)) throw new ConfigError('--losses are percentages from 0 to 50');
    if (o.rounds < 1 || o.rounds > 100) throw new ConfigError('--rounds is from 1 to 100');
    const { formatSmfsBench, runSmfsBench } = await import('../../bench/smfs');
    const { rows, checks, appendKiB, blockKiB } = await runSmfsBench({
      delaysMs: o.delays, losses: o.losses.map((p) => p / 100), clients: o.clients, levels, seconds: o.seconds, rounds: o.rounds, appendKiB: o.appendKib, blockKiB: o.blockKib,
      credentials: o.credentials === undefined ? undefined : findCredential({ file: o.credentials, command: 'smfs bench' }).credential.file,
    });
    process.stdout.write((o.json ? JSON.stringify({ append_kib: appendKiB, block_kib: blockKiB, rows, checks }) : formatSmfsBench(rows, checks, appendKiB, blockKiB)) + '\n');
  });

program
  .command('promote')
  .description("Make a mirror the primary, with the longest prefix of whole groups it holds: never a partial group, never a hole")
  .option('--host <addr>', 'the mirror storage server to promote (running)', '127.0.0.1')
  .option('--port <n>', 'its port', integer('--port'), STORAGE_PORT)
  .option('--dir <path>', 'promote a stopped mirror\'s directory instead (recovery runs on it)')
  .option('--await-clients <n>', "take the caches of this many tagged clients (their groups the mirror lacks) before opening for appends; at most --grace", integer('--await-clients'))
  .option('--grace <s>', 'with --await-clients: wait for them this long at most (default 60); alone: take the caches of every client that comes in this long', decimal('--grace'))
  .option(credentialsOption[0], `${credentialsOption[1]} (not needed with --dir)`)
  .option('--json', 'print the result as JSON')
  .addHelpText('after', `
A running mirror stops taking its primary's stream, closes and reopens its logs (recovery cuts
anything a dead primary's stream left unfinished), and takes appends from then on. Point the
clients (and a new mirror) at it. The old primary must not come back as a primary: its log may
hold groups the mirror never got; reseed it as a mirror of the new primary. The request goes
over TLS (it may cross the WAN), authenticated with the deployment's credential.

With --await-clients or --grace, the promoted mirror first takes the caches of the clients that
appended 'tagged' (they find it among their configured sites and hand over the groups it lacks),
replays them in sequence order up to the first group none of them kept, and only then takes
appends. It prints what it recovered; clients whose groups came after such a gap are told which
(SMFS_ERR_LOST_GROUPS). Until the replay is done, writes are refused SMFS_ERR_RECOVERING and the
directory stays a mirror's on disk.
${credentialsHelp}

Examples:
  smfs promote --host 10.2.0.10 --credentials /etc/smfs/credentials   # the mirror at the remote site
  smfs promote --host 10.2.0.10 --await-clients 4 --grace 30          # after the tagged clients' caches
  smfs promote --dir /srv/mirror --json    # a mirror that is not running`)
  .action(async (o: { host: string; port: number; dir?: string; credentials?: string; json?: boolean; awaitClients?: number; grace?: number }) => {
    let result: { lastSeq: number; logs: { log: number; segment: number; offset: number }[]; recovery: RecoveryReport; handover?: HandoverReport | null };
    if (o.awaitClients !== undefined && (o.awaitClients < 1 || o.awaitClients > 100_000)) throw new ConfigError(`--await-clients is from 1 to 100000, got ${o.awaitClients}`);
    if (o.grace !== undefined && !(o.grace > 0 && o.grace <= 3600)) throw new ConfigError(`--grace is from 0 to 3600 seconds, got ${o.grace}`);
    const awaiting = o.awaitClients !== undefined || o.grace !== undefined;
    if (awaiting && o.dir !== undefined) throw new ConfigError('--await-clients and --grace need the mirror running (no --dir): its clients hand their caches to the server');
    if (o.dir !== undefined) {
      if (!fs.existsSync(o.dir) || readRole(o.dir) !== 'mirror') throw new ConfigError(`${o.dir} is not a mirror's directory`);
      const store = await LogStore.open(o.dir, { mirror: true });
      result = { lastSeq: store.lastSeq, logs: store.ends(), recovery: store.recovery };
      await store.close();
      writeRole(store.dir, 'primary');
    } else {
      const client = await StorageClient.connect({ host: o.host, port: o.port }, clientCredential(o, 'smfs promote'), { tls: true });
      try {
        result = await client.promote(awaiting ? { awaitClients: o.awaitClients ?? 0, graceMs: Math.round((o.grace ?? 60) * 1000) } : {});
      } finally {
        await client.close();
      }
    }
    if (o.json) process.stdout.write(JSON.stringify({ event: 'promoted', ...result }) + '\n');
    else {
      process.stdout.write(`smfs: promoted; ${result.logs.length} logs, last group ${result.lastSeq}\n`);
      process.stdout.write(formatRecovery(result.recovery) + '\n');
      if (result.handover) process.stdout.write(formatHandover(result.handover) + '\n');
    }
  });

program
  .command('reproduce')
  .description("The SMFS paper's evaluation (section 5, figures 6 to 11) in the lab, per configuration, with plots (root)")
  .option('--figure <n>', 'one figure (6, 7, 8, 9, 10 or 11) or all', 'all')
  .option('--quick', 'every figure with fewer runs and shorter experiments (about 25 minutes here; the full profile takes hours)')
  .option('--runs <n>', 'runs per point (default: 5, or 2 with --quick)', integer('--runs'))
  .option('--out <dir>', 'where figure-N.json, figure-N.svg, figure-N.png and summary.md go', 'out/reproduce')
  .option('--json', 'print the results (every figure\'s points and runs) as one JSON object at the end')
  .addHelpText('after', `
Each figure runs its points (configuration x loss, c or delay) N times in labs of two sites and a
100 Mbit/s WAN in network namespaces, with Table 2's parameters scaled to this machine (the
scaling table is in summary.md and docs/reproduction.md). Configurations: local-sync,
remote-sync, network-sync, local-sync+FEC, remote-sync+FEC (the paper's), tagged, and
remote-sync over plain TCP with BBR and with cubic (tcp-bbr, tcp-cubic).
Every run is saved in DIR/figure-N.json as it ends; a reproduction interrupted (Ctrl-C removes the
labs) resumes from there when run again with the same --quick and --runs.

Examples:
  smfs reproduce --quick                       # every figure, about 25 minutes here
  smfs reproduce --figure 6 --runs 3           # one figure
  smfs reproduce --out docs/reproduction       # the full run whose plots are committed`)
  .action(async (o: { figure: string; quick?: boolean; runs?: number; out: string; json?: boolean }) => {
    requireRoot();
    const { FIGURE_IDS } = await import('../lab/reproduce/figures');
    const { PROFILES } = await import('../lab/reproduce/params');
    const ids = o.figure === 'all' ? [...FIGURE_IDS] : [Number(o.figure)];
    for (const id of ids) if (!(FIGURE_IDS as readonly number[]).includes(id)) throw new ConfigError(`--figure is one of ${FIGURE_IDS.join(', ')} or all, got '${o.figure}'`);
    const base = PROFILES[o.quick ? 'quick' : 'full'];
    if (o.runs !== undefined && (o.runs < 1 || o.runs > 100)) throw new ConfigError(`--runs is from 1 to 100, got ${o.runs}`);
    const profile = { ...base, runs: o.runs ?? base.runs };
    const { reproduce } = await import('../lab/reproduce/runner');
    const results = await reproduce({ figures: ids as (typeof FIGURE_IDS)[number][], profile, out: o.out, tty: process.stderr.isTTY });
    if (o.json) process.stdout.write(JSON.stringify({ profile, figures: results }) + '\n');
    else process.stdout.write(`smfs reproduce: ${results.length} figure(s) in ${o.out} (summary.md)\n`);
  });

program
  .command('metadata')
  .description('Run a metadata server: gives out log ids and places each new log on the storage server with the fewest; in the foreground until SIGINT/SIGTERM')
  .requiredOption('--dir <path>', 'where its state (metadata.json) lives (created if missing; one server per directory)')
  .requiredOption('--storage <host:port,...>', 'the storage servers to place logs on, in order of preference for ties', endpoints('--storage'))
  .option('--host <addr>', 'address to listen on', '127.0.0.1')
  .option('--port <n>', 'TCP port (0: any free port, printed at start)', integer('--port'), METADATA_PORT)
  .option(credentialsOption[0], `${credentialsOption[1]}, else DIR/${CREDENTIAL_FILE} (made if missing); also for its storage servers`)
  .option('--json', 'print the start and stop reports as JSON lines')
  .addHelpText('after', `
Requests (docs/smfs-files.md): create (a new log on the storage server with the fewest logs
placed; ties go to the one named first), lookup (where a log lives), list. An intent is on disk
before each create-log is sent, so a crash never gives one id out twice; at start, an intent
whose log the storage server has is completed, one it lacks is dropped.
${credentialsHelp}

Examples:
  smfs metadata --dir /srv/smfs-meta --storage 10.0.0.1:7610,10.0.0.2:7610 --credentials /etc/smfs/credentials
  smfs metadata --dir /tmp/m --storage 127.0.0.1:7610 --port 0 --json`)
  .action(async (o: { dir: string; storage: Endpoint[]; host: string; port: number; credentials?: string; json?: boolean }) => {
    checkPort(o.port);
    const { credential, created } = findCredential({ file: o.credentials, dir: o.dir, command: 'smfs metadata' });
    const m = await MetadataServer.open(o.dir, o.storage, { host: o.host, port: o.port, credential });
    const { host, port } = m.address;
    const list = m.list();
    if (o.json) {
      process.stdout.write(JSON.stringify({
        event: 'listening', host, port, dir: m.dir, storage: o.storage.map(formatEndpoint), logs: list.logs.length, nextLog: list.nextLog, intents: m.intents,
        credentials: credential.file, credentialsCreated: created, pid: process.pid,
      }) + '\n');
    } else {
      process.stdout.write(`smfs metadata: listening on ${host}:${port}, dir ${m.dir}, ${list.logs.length} logs on ${o.storage.map(formatEndpoint).join(', ')}\n`);
      process.stdout.write(`smfs metadata: credential ${credential.file}${created ? ' (created: the storage servers must hold the same; give them this file, or start this server with theirs)' : ''}\n`);
      const { completed, dropped, pending } = m.intents;
      if (completed.length + dropped.length + pending.length > 0) {
        process.stdout.write(`  intents from before a crash: completed ${completed.join(' ') || '-'}, dropped ${dropped.join(' ') || '-'}, pending ${pending.join(' ') || '-'}\n`);
      }
    }
    const signal = await untilSignal();
    await m.close();
    const stopped = { event: 'stopped', signal, ...m.counters };
    process.stdout.write((o.json ? JSON.stringify(stopped) : `smfs metadata: stopped on ${signal}; ${m.counters.requests} requests`) + '\n');
  });

program
  .command('files')
  .description('Run a file server: a file tree kept in one log, found through the metadata server; in the foreground until SIGINT/SIGTERM')
  .requiredOption('--metadata <host:port>', 'the metadata server', endpoint('--metadata'))
  .option('--log <n>', 'the log holding the tree (default: create a new log and print its id)', integer('--log'))
  .option('--host <addr>', 'address to listen on', '127.0.0.1')
  .option('--port <n>', 'TCP port (0: any free port, printed at start)', integer('--port'), FILES_PORT)
  .option(...credentialsOption)
  .option('--json', 'print the start and stop reports as JSON lines')
  .addHelpText('after', `
Without --log it asks the metadata server for a new log, writes an empty root directory to it
and prints the log's id: give that id with --log from then on. With --log it looks the log up
and reads the tree back from it (the log's newest record is the newest root inode). Every
change is one append to the log: the changed data blocks, inodes and directories up to the
root, all or none. Run one file server per log.
${credentialsHelp} A file server has no directory: give it the credential.

Examples:
  export SMFS_CREDENTIALS=/srv/smfs/credentials       # made by the storage server
  smfs files --metadata 127.0.0.1:7611                # prints: log 1 (created) ...
  smfs files --metadata 127.0.0.1:7611 --log 1 --host 0.0.0.0
  smfs files --metadata 127.0.0.1:7611 --log 1 --port 0 --json`)
  .action(async (o: { metadata: Endpoint; log?: number; host: string; port: number; credentials?: string; json?: boolean }) => {
    checkPort(o.port);
    if (o.log !== undefined && (o.log < 0 || o.log > LIMITS.maxLogId)) throw new ConfigError(`--log is from 0 to ${LIMITS.maxLogId}, got ${o.log}`);
    const credential = clientCredential(o, 'smfs files');
    const volume = await Volume.open(o.metadata, o.log, credential);
    let server: FileServer;
    try {
      server = await FileServer.listen(volume, { host: o.host, port: o.port, credential });
    } catch (err) {
      await volume.close();
      throw new ConfigError(`cannot listen on ${o.host}:${o.port}: ${(err as Error).message}`);
    }
    const { host, port } = server.address;
    const st = await volume.stat();
    if (o.json) process.stdout.write(JSON.stringify({ event: 'listening', host, port, created: volume.created, ...st, credentials: credential.file, pid: process.pid }) + '\n');
    else {
      process.stdout.write(`smfs files: log ${st.log}${volume.created ? ' (created; give --log ' + st.log + ' from now on)' : ''} on ${st.storage}, listening on ${host}:${port}\n`);
      process.stdout.write(`  ${st.files} files, ${st.dirs} directories, ${st.bytes} bytes; update ${st.update}, root inode at ${st.root}${st.leaked > 0 ? `; ${st.leaked} records no inode reaches (a crash before their free)` : ''}\n`);
    }
    const signal = await untilSignal();
    await server.close();
    const stopped = { event: 'stopped', signal, ...server.counters };
    process.stdout.write((o.json ? JSON.stringify(stopped) : `smfs files: stopped on ${signal}; ${server.counters.requests} requests`) + '\n');
  });

const serverOption = ['--server <host:port>', 'the file server', endpoint('--server'), { host: '127.0.0.1', port: FILES_PORT }] as const;

// The levels a mount may ask its commits to be acknowledged at (docs/smfs-files.md, "Mount").
const MOUNT_LEVELS = [...ACK_LEVELS, 'tagged'] as const;

program
  .command('mount')
  .description('Mount a file server\'s tree as a file system (FUSE), so that any program can keep its files on SMFS; in the foreground until SIGINT/SIGTERM or smfs unmount')
  .argument('<mountpoint>', 'an existing directory')
  .option(...serverOption)
  .option('--level <level>', 'acknowledgement of each commit: local, network, remote or tagged (default: the storage server\'s default)')
  .option('--sites <list>', 'tagged: the file servers of the other sites (HOST:PORT,...), to hand the kept commits to after a disaster', endpoints('--sites'), [])
  .option('--cache <bytes>', 'tagged: commits kept at most until the mirror has them; past it commits go at remote', byteSize('--cache'), DEFAULT_CACHE_BYTES)
  .option('--sync-interval <ms>', 'commit what was written at least this often (fsync commits at once)', integer('--sync-interval'), 1000)
  .option('--max-dirty <bytes>', 'bytes written and not yet committed before writes wait for a commit (at most 48M: one commit is one append)', byteSize('--max-dirty'), MAX_DIRTY_BYTES)
  .option(...credentialsOption)
  .option('--json', 'print the start and stop reports as JSON lines')
  .addHelpText('after', `
The tree is read whole at mount time; reads of file data go to the file server, writes stay in
this process until a sync. A sync commits every change since the last one as ONE update of the
file server (one append group, all or none): fsync and fsyncdir, the interval (at a moment when
no file is half written, or after five intervals at the latest), memory (half of --max-dirty),
and unmount (memory held: up to twice --max-dirty, one commit in flight and the next). fsync returns once that update is acknowledged at --level. close does not commit:
a closed file is in the next commit, within about --sync-interval. After a disaster the tree is
the one of some commit: every file as it was then, never part of a commit.
Unmount with smfs unmount MOUNTPOINT, SIGINT or SIGTERM: what was written is committed first. A
mount killed outright is unmounted by fusermount3 (auto_unmount), losing what it had not
committed. Needs /dev/fuse and fusermount3 (Debian fuse3); as root, allow_other is set.

--level tagged: fsync returns as fast as at local, and the mount keeps each commit (up to
--cache bytes; past that, commits go at remote) until the storage server says its mirror has
it. Run the mount outside the primary's site: when that site is lost and the mirror promoted,
start a file server on the promoted storage server; the mount finds it among --sites and
replays there what it kept, so every fsynced file is back. The file server's storage server
must have a mirror. At unmount it waits up to 30 s for the mirror to have what it keeps.
${credentialsHelp}

Examples:
  mkdir -p /mnt/smfs && smfs mount /mnt/smfs --server 127.0.0.1:7612 &
  tar -C /mnt/smfs -xf backup.tar && sync
  smfs mount /mnt/smfs --level remote --sync-interval 200 --json
  smfs mount /mnt/smfs --server siteA:7612 --level tagged --sites siteB:7612
  smfs unmount /mnt/smfs`)
  .action(async (mountpoint: string, o: { server: Endpoint; level?: string; sites: Endpoint[]; cache: number; syncInterval: number; maxDirty: number; credentials?: string; json?: boolean }) => {
    if (o.level !== undefined && !(MOUNT_LEVELS as readonly string[]).includes(o.level)) throw new ConfigError(`--level is one of ${MOUNT_LEVELS.join(', ')}, got '${o.level}'`);
    if (o.level !== 'tagged' && o.sites.length > 0) throw new ConfigError('--sites is for --level tagged: other sites\' file servers to hand kept commits to');
    if (o.cache < 1024 * 1024) throw new ConfigError(`--cache is at least 1M, got ${o.cache}`);
    if (o.syncInterval < 10 || o.syncInterval > 3_600_000) throw new ConfigError(`--sync-interval is from 10 to 3600000 ms, got ${o.syncInterval}`);
    if (o.maxDirty < 1024 * 1024 || o.maxDirty > MAX_DIRTY_BYTES) throw new ConfigError(`--max-dirty is from 1M to 48M, got ${o.maxDirty}`);
    let st: fs.Stats;
    try {
      st = fs.statSync(mountpoint);
    } catch (err) {
      throw new ConfigError(`cannot use ${mountpoint} as a mount point: ${(err as Error).message}`);
    }
    if (!st.isDirectory()) throw new ConfigError(`${mountpoint} is not a directory`);
    if (!fs.existsSync('/dev/fuse')) throw new ConfigError('/dev/fuse is missing: this kernel has no FUSE (modprobe fuse)');
    // Its real path now: once mounted, this process must not touch the mount point itself (its
    // own FUSE thread would wait for this thread to answer).
    const where = fs.realpathSync(mountpoint);
    const credential = clientCredential(o, 'smfs mount');
    const events = (event: string, detail: Record<string, unknown>) => {
      process.stderr.write((o.json ? JSON.stringify({ event, ...detail }) : `smfs mount: ${event} ${JSON.stringify(detail)}`) + '\n');
    };
    const mount = await SmfsMount.start({
      mountpoint: where, server: o.server, credential, level: o.level as FileLevel | undefined, sites: o.sites, cacheBytes: o.cache,
      syncIntervalMs: o.syncInterval, maxDirtyBytes: o.maxDirty, onEvent: events,
    }).catch((err: Error) => {
      if (err instanceof MaelstromError) throw err;
      throw new SmfsError('SMFS_ERR_UNAVAILABLE', `cannot mount ${mountpoint}: ${err.message}`, { cause: err });
    });
    const info = { mountpoint: where, server: formatEndpoint(o.server), level: o.level ?? 'default', update: mount.stats().update, pid: process.pid };
    process.stdout.write((o.json ? JSON.stringify({ event: 'mounted', ...info }) : `smfs mount: ${info.mountpoint} is the tree of ${info.server} (update ${info.update}); commits acknowledged ${info.level}`) + '\n');
    const signal = await Promise.race([
      new Promise<string>((resolve) => { for (const s of ['SIGINT', 'SIGTERM'] as const) process.once(s, () => resolve(s)); }),
      mount.ended,
    ]);
    for (const s of ['SIGINT', 'SIGTERM'] as const) process.once(s, () => process.exit(1));
    const result = await mount.stop();
    const stopped = { event: 'unmounted', reason: signal, ...result, ...mount.stats() };
    const unmirrored = result.unmirrored ? `; ${result.unmirrored} commits NOT yet at the mirror (no longer kept here)` : '';
    process.stdout.write((o.json ? JSON.stringify(stopped) : `smfs mount: unmounted (${signal}); ${result.committed ? 'everything written is committed' : `NOT committed: ${result.error}`}; ${mount.stats().commits} commits${unmirrored}`) + '\n');
    if (!result.committed) process.exitCode = 1;
  });

program
  .command('unmount')
  .description('Unmount an smfs mount (fusermount3 -u); the mount commits what it holds and exits')
  .argument('<mountpoint>', 'where it is mounted')
  .option('--lazy', 'detach now even if files are open there (fusermount3 -u -z)')
  .addHelpText('after', `
Examples:
  smfs unmount /mnt/smfs
  smfs unmount /mnt/smfs --lazy      # busy: detach now, finish when the last file closes`)
  .action((mountpoint: string, o: { lazy?: boolean }) => {
    const r = spawnSync('fusermount3', ['-u', ...(o.lazy ? ['-z'] : []), mountpoint], { encoding: 'utf8' });
    if (r.error) throw new ConfigError(`cannot run fusermount3 (Debian package fuse3): ${r.error.message}`);
    if (r.status !== 0) throw new SmfsError('SMFS_ERR_REQUEST', `fusermount3 -u ${mountpoint}: ${r.stderr.trim()}${/busy/i.test(r.stderr) ? ' (files are open there; --lazy detaches anyway)' : ''}`);
  });

program
  .command('write')
  .description('Write a whole file on the file server (replacing it), from FILE or stdin')
  .argument('<path>', 'path in the tree, e.g. /docs/a.txt (its directory must exist)')
  .argument('[file]', 'local file to send; - or absent: stdin')
  .option(...serverOption)
  .option(...credentialsOption)
  .addHelpText('after', `
Examples:
  smfs write /docs/a.txt ./a.txt
  echo hello | smfs write /hello.txt
  smfs write /big.bin big.bin --server 10.0.0.5:7612`)
  .action(async (path: string, file: string | undefined, o: { server: Endpoint; credentials?: string }) => {
    const data = await readInput(file);
    await withFiles(o, 'write', (c) => c.write(path, data));
  });

program
  .command('read')
  .description('Print a file of the file server to stdout')
  .argument('<path>', 'path in the tree')
  .option(...serverOption)
  .option(...credentialsOption)
  .addHelpText('after', `
Examples:
  smfs read /docs/a.txt
  smfs read /big.bin > big.bin`)
  .action(async (path: string, o: { server: Endpoint; credentials?: string }) => {
    const data = await withFiles(o, 'read', (c) => c.read(path));
    process.stdout.write(data);
  });

program
  .command('ls')
  .description('List a directory (or show one file) of the file server')
  .argument('[path]', 'path in the tree', '/')
  .option(...serverOption)
  .option(...credentialsOption)
  .option('--json', 'print a JSON array of {name, type, size, mtime}')
  .addHelpText('after', `
Each line: type (d directory, - file), size (bytes; for a directory its entries), mtime, name.

Examples:
  smfs ls /
  smfs ls /docs --json`)
  .action(async (path: string, o: { server: Endpoint; credentials?: string; json?: boolean }) => {
    const entries = await withFiles(o, 'ls', (c) => c.list(path));
    if (o.json) process.stdout.write(JSON.stringify(entries) + '\n');
    else for (const e of entries) process.stdout.write(`${e.type === 'dir' ? 'd' : '-'} ${String(e.size).padStart(10)} ${e.mtime} ${e.name}${e.type === 'dir' ? '/' : ''}\n`);
  });

program
  .command('mkdir')
  .description('Make a directory on the file server')
  .argument('<path>', 'path in the tree')
  .option(...serverOption)
  .option(...credentialsOption)
  .option('-p, --parents', 'make missing parents too; no error if it exists')
  .addHelpText('after', `
Examples:
  smfs mkdir /docs
  smfs mkdir -p /backups/2024/01`)
  .action(async (path: string, o: { server: Endpoint; credentials?: string; parents?: boolean }) => {
    await withFiles(o, 'mkdir', (c) => c.mkdir(path, { parents: o.parents }));
  });

program
  .command('rm')
  .description('Remove a file or an empty directory from the file server')
  .argument('<path>', 'path in the tree')
  .option(...serverOption)
  .option(...credentialsOption)
  .option('-r, --recursive', 'remove a directory and everything under it')
  .addHelpText('after', `
Examples:
  smfs rm /docs/a.txt
  smfs rm -r /backups/2023`)
  .action(async (path: string, o: { server: Endpoint; credentials?: string; recursive?: boolean }) => {
    await withFiles(o, 'rm', (c) => c.remove(path, { recursive: o.recursive }));
  });

program
  .command('mv')
  .description('Rename or move a file or directory within the file server\'s tree, atomically')
  .argument('<from>', 'path in the tree')
  .argument('<to>', 'new path; a file may replace a file, a directory an empty directory')
  .option(...serverOption)
  .option(...credentialsOption)
  .addHelpText('after', `
Examples:
  smfs mv /docs/a.txt /docs/b.txt
  smfs mv /staging /release`)
  .action(async (from: string, to: string, o: { server: Endpoint; credentials?: string }) => {
    await withFiles(o, 'mv', (c) => c.rename(from, to));
  });

program
  .command('put')
  .description('Write several files and remove others as ONE update: all of it is committed, or none')
  .argument('<path=file...>', 'files to write: path in the tree = local file')
  .option(...serverOption)
  .option(...credentialsOption)
  .option('--rm <path...>', 'paths to remove in the same update (before the writes)')
  .option('-r, --recursive', 'with --rm: remove directories and everything under them')
  .addHelpText('after', `
The removals come first, then the writes, in the order given. If any of them cannot be done
(a missing directory, a path that is a directory, ...) nothing changes.

Examples:
  smfs put /site/index.html=index.html /site/app.js=app.js
  smfs put /db/snapshot.2=snap.bin /db/CURRENT=current.txt --rm /db/snapshot.1`)
  .action(async (pairs: string[], o: { server: Endpoint; credentials?: string; rm?: string[]; recursive?: boolean }) => {
    const changes: Change[] = (o.rm ?? []).map((path) => ({ op: 'remove', path, recursive: o.recursive }));
    for (const pair of pairs) {
      const at = pair.lastIndexOf('=');
      if (at <= 0 || at === pair.length - 1) throw new ConfigError(`put takes PATH=FILE, got '${pair}'`);
      changes.push({ op: 'write', path: pair.slice(0, at), data: await readInput(pair.slice(at + 1)) });
    }
    await withFiles(o, 'put', (c) => c.group(changes));
  });

void run(program, process.argv);
