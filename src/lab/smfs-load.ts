#!/usr/bin/env node
// SMFS load for lab experiments, run inside a host namespace next to a storage server. Every
// line it prints is JSON. Both modes connect with the credential of --credentials FILE (or
// $SMFS_CREDENTIALS).
//   append --server H:P --level L [--logs N] [--blocks B] [--block-size S] [--clients C]
//       [--appends N] [--seconds T] [--acks] [--timings] [--data-pool N]
//     C clients (one connection each) append groups of B blocks (over the logs, round robin)
//     as fast as they are answered at level L, until N appends or T seconds; with --acks one
//     line per answered append {"i","a":[addresses],"t":"<monotonic ns>"}; at the end
//     {"done":true,"appends","bytes","seconds","latencyUs":{p50,p99,max},"errors":{code:n}};
//     --data-pool N reuses the blocks of N appends, made once, instead of making each append's
//     (not with --acks); --timings asks the server when each append reached each level, and the summary adds
//     "levelsUs":{local,network,remote:{p50,p99,n}} and "misordered" (appends where a level
//     came before the one below it)
//     Level tagged (one tag cache for all C connections: one client), also:
//       [--cache-bytes N] [--spill FILE] [--no-shares] [--sites H:P,H:P] [--dead-after MS]
//       [--memory] [--drain]
//     each ack line also has "s" (the group's sequence number); the summary adds "cache" (the
//     cache's stats). With --sites, once the primary is lost (a connection closed, or no answer
//     in --dead-after ms) it stops appending, finds the new primary among the sites and hands
//     the cache over: {"handover":{"site","verdict"}} or {"handover":{"error","code","lost"}}.
//     --memory samples memory once a second, after a GC when node runs with --expose-gc
//     ("memory":[{t,rss,heap,external,cache}]); --drain waits after the run until the cache is
//     empty ("drainMs").
//   verify --server H:P   reads {"i","a"} lines on stdin and reads every address back:
//     {"checked" appends,"missing" appends with a block not there,"bad" blocks that read back
//     different,"errors":{code:n} of the reads that failed}
import os from 'node:os';
import readline from 'node:readline';
import { StorageClient } from '../smfs/client';
import type { AppendLevel } from '../smfs/client';
import { findCredential } from '../smfs/credentials';
import type { Credential } from '../smfs/credentials';
import { SmfsError } from '../smfs/errors';
import { formatAddress, parseAddress } from '../smfs/format';
import type { Address } from '../smfs/format';
import type { AckLevel } from '../smfs/mirror';
import { TagCache } from '../smfs/tag-cache';
import { handOver } from '../smfs/failover';
import { parseEndpoint } from '../smfs/frame-client';
import type { Endpoint } from '../smfs/frame-client';
import { arg, printJson } from './tool-args';

// Block k of append i: deterministic, so a reader can check it without being sent the data.
// Filled a word at a time through a Uint32Array (4x faster than writeUInt32LE, which made the
// generator, not the server, the bound of one client: 2.6 ms per 512 KB append); the words are
// little-endian either way.
const LITTLE_ENDIAN = os.endianness() === 'LE';
export function blockData(i: number, k: number, size: number): Buffer {
  const b = Buffer.alloc(size);
  const words = LITTLE_ENDIAN && b.byteOffset % 4 === 0 ? new Uint32Array(b.buffer, b.byteOffset, size >>> 2) : undefined;
  let x = ((i * 2654435761) ^ (k * 40503 + 1)) >>> 0 || 1;
  for (let j = 0; j < size >>> 2; j++) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    if (words) words[j] = x;
    else b.writeUInt32LE(x, j * 4);
  }
  return b;
}

function server(): { host: string; port: number } {
  const [host, port] = arg('server').split(':');
  return { host, port: Number(port ?? 7610) };
}

function credential(): Credential {
  return findCredential({ file: arg('credentials', '') || undefined, command: 'smfs-load' }).credential;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
}

interface MemorySample {
  t: number;
  rss: number;
  heap: number;
  external: number;
  cache: number;
}

function sampleMemory(start: number, cache: TagCache | undefined): MemorySample {
  (globalThis as { gc?: () => void }).gc?.();
  const m = process.memoryUsage();
  return { t: Math.round((Date.now() - start) / 100) / 10, rss: m.rss, heap: m.heapUsed, external: m.external, cache: cache?.getStats().bytes ?? 0 };
}

async function append(): Promise<void> {
  const at = server();
  const cred = credential();
  const level = arg('level') as AppendLevel;
  const tagged = level === 'tagged';
  const cache = tagged ? await TagCache.open({
    limitBytes: Number(arg('cache-bytes', String(64 * 1024 * 1024))), spill: arg('spill', '') || undefined, takesShares: !process.argv.includes('--no-shares'),
  }) : undefined;
  const sites = arg('sites', '') ? arg('sites').split(',').map((t) => parseEndpoint(t) as Endpoint) : undefined;
  const deadAfterMs = Number(arg('dead-after', '0')) || undefined;
  const logs = Number(arg('logs', '1'));
  const blocks = Number(arg('blocks', '4'));
  const blockSize = Number(arg('block-size', '4096'));
  const clients = Number(arg('clients', '1'));
  const maxAppends = Number(arg('appends', '1000000000'));
  const seconds = Number(arg('seconds', '3600'));
  const acks = process.argv.includes('--acks');
  // --data-pool N: the blocks of appends i and i + N are the same, made once (a client whose data
  // is ready, as a benchmark of the server wants); verify would not know them, so no --acks.
  const pool = Number(arg('data-pool', '0'));
  if (pool > 0 && acks) throw new Error('--data-pool and --acks do not go together: verify reads back blockData(i, k)');
  const made = new Map<number, Buffer>();
  const dataOf = (i: number, k: number): Buffer => {
    if (pool <= 0) return blockData(i, k, blockSize);
    const key = (i % pool) * blocks + k;
    let b = made.get(key);
    if (!b) made.set(key, (b = blockData(i % pool, k, blockSize)));
    return b;
  };
  const timings = process.argv.includes('--timings');
  const levels: Record<AckLevel, number[]> = { local: [], network: [], remote: [] };
  let misordered = 0;
  const setup = await StorageClient.connect(at, cred);
  for (let log = 1; log <= logs; log++) {
    await setup.createLog(log).catch((err: unknown) => {
      if (!(err instanceof SmfsError && err.code === 'SMFS_ERR_LOG_EXISTS')) throw err;
    });
  }
  await setup.close();
  const connections = await Promise.all(Array.from({ length: clients }, () => StorageClient.connect(at, cred, { cache, deadAfterMs })));
  const latencies: number[] = [];
  const errors: Record<string, number> = {};
  let next = 0;
  let bytes = 0;
  let primaryLost = false;
  const start = process.hrtime.bigint();
  const deadline = start + BigInt(Math.round(seconds * 1e9));
  const memory: MemorySample[] = [];
  const startMs = Date.now();
  const sampler = process.argv.includes('--memory') ? setInterval(() => memory.push(sampleMemory(startMs, cache)), 1000) : undefined;
  await Promise.all(connections.map(async (c) => {
    while (next < maxAppends && process.hrtime.bigint() < deadline && !primaryLost) {
      const i = next++;
      const records = Array.from({ length: blocks }, (_, k) => ({ log: 1 + ((i + k) % logs), data: dataOf(i, k) }));
      const t0 = process.hrtime.bigint();
      try {
        const { addresses, timings: at, tag } = await c.appendTimed(records, { level, timings });
        const t = process.hrtime.bigint();
        if (at) {
          const reached = (['local', 'network', 'remote'] as const).filter((l) => at[l] !== undefined);
          for (const l of reached) levels[l].push(at[l]!);
          for (let k = 1; k < reached.length; k++) if (at[reached[k]]! < at[reached[k - 1]]!) misordered++;
        }
        latencies.push(Number(t - t0) / 1000);
        bytes += blocks * blockSize;
        if (acks) printJson({ i, a: addresses.map(formatAddress), t: String(t), ...(tag ? { s: tag.seq } : {}) });
      } catch (err) {
        const code = err instanceof SmfsError ? err.code : 'internal';
        errors[code] = (errors[code] ?? 0) + 1;
        if (code === 'SMFS_ERR_CLOSED') {
          primaryLost = true;
          return;
        }
      }
    }
  }));
  const elapsed = Number(process.hrtime.bigint() - start) / 1e9;
  if (sampler) clearInterval(sampler);
  let drainMs: number | undefined;
  if (cache && process.argv.includes('--drain') && !primaryLost) {
    const t0 = Date.now();
    while (!cache.empty && Date.now() - t0 < 30_000) await new Promise((r) => setTimeout(r, 2));
    drainMs = cache.empty ? Date.now() - t0 : -1;
  }
  await Promise.all(connections.map((c) => c.close()));
  if (cache && sites && primaryLost) {
    try {
      const { site, verdict } = await handOver(sites, cred, cache, { timeoutMs: 60_000 });
      printJson({ handover: { site: `${site.host}:${site.port}`, verdict } });
    } catch (err) {
      const e = err as SmfsError;
      printJson({ handover: { code: e.code ?? 'internal', error: e.message, lost: (e.details as { lost?: number[] } | undefined)?.lost ?? [] } });
    }
  }
  await cache?.close();
  latencies.sort((a, b) => a - b);
  printJson({
    done: true, appends: latencies.length, bytes, seconds: elapsed,
    latencyUs: { p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99), max: latencies[latencies.length - 1] ?? 0 }, errors,
    ...(cache ? { cache: cache.getStats() } : {}), ...(memory.length > 0 ? { memory } : {}), ...(drainMs !== undefined ? { drainMs } : {}),
    ...(timings ? {
      misordered,
      levelsUs: Object.fromEntries(Object.entries(levels).map(([l, v]) => {
        v.sort((a, b) => a - b);
        return [l, { p50: percentile(v, 0.5), p99: percentile(v, 0.99), n: v.length }];
      })),
    } : {}),
  });
}

async function verify(): Promise<void> {
  const blockSize = Number(arg('block-size', '4096'));
  const c = await StorageClient.connect(server(), credential());
  const result = { checked: 0, missing: 0, bad: 0, errors: {} as Record<string, number> };
  const lines = readline.createInterface({ input: process.stdin });
  for await (const line of lines) {
    if (!line.trim()) continue;
    const { i, a } = JSON.parse(line) as { i: number; a: string[] };
    result.checked++;
    let missing = false;
    for (const [k, text] of a.entries()) {
      try {
        const data = await c.read(parseAddress(text) as Address);
        if (!data.equals(blockData(i, k, blockSize))) result.bad++;
      } catch (err) {
        missing = true;
        const code = err instanceof SmfsError ? err.code : 'internal';
        result.errors[code] = (result.errors[code] ?? 0) + 1;
      }
    }
    if (missing) result.missing++;
  }
  await c.close();
  printJson(result);
}

// Run as a tool; imported (for blockData), nothing runs.
if (require.main === module) {
  const modes: Record<string, () => Promise<void>> = { append, verify };
  const mode = modes[process.argv[2]];
  if (!mode) {
    process.stderr.write(`usage: smfs-load append|verify ... (see the head of ${__filename})\n`);
    process.exitCode = 2;
  } else {
    mode().catch((err: Error) => {
      printJson({ error: err.message });
      process.exitCode = 1;
    });
  }
}
