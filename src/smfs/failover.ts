// A tagged client after its primary's site is lost (docs/smfs.md, "Recovery from the clients'
// caches"): it looks for the new primary among the sites it was configured with (a promoted
// mirror says it is primary), and hands its cache over to it.
import type { Credential } from './credentials';
import { SmfsError } from './errors';
import { formatEndpoint } from './frame-client';
import type { Endpoint } from './frame-client';
import { StorageClient } from './client';
import type { TagHello } from './client';
import type { TagCache } from './tag-cache';
import type { Verdict } from './handover';

export interface FailoverOptions {
  tls?: boolean;             // default true: the other site is across the WAN
  timeoutMs?: number;        // look for a primary this long at most (default 60 s)
  pollMs?: number;           // between rounds over the sites (default 200)
  connectTimeoutMs?: number; // per site and round (default 2000)
  all?: boolean;             // hand over every group kept, not only those past the new primary's last
}

const DEFAULTS = { tls: true, timeoutMs: 60_000, pollMs: 200, connectTimeoutMs: 2000 };

// The first site, in the order given, whose server says it is the primary (and, when `cache` is
// given, connected with that cache).
export async function findPrimary(sites: Endpoint[], credential: Credential, cache: TagCache | undefined, options: FailoverOptions = {}): Promise<{ client: StorageClient; hello: TagHello; site: Endpoint }> {
  const o = { ...DEFAULTS, ...options };
  const deadline = Date.now() + o.timeoutMs;
  const seen: string[] = [];
  for (;;) {
    for (const site of sites) {
      let client: StorageClient | undefined;
      try {
        client = await StorageClient.connect(site, credential, { tls: o.tls, connectTimeoutMs: o.connectTimeoutMs, cache });
        const hello = await client.tagHello();
        if (hello.role === 'primary') return { client, hello, site };
        seen[sites.indexOf(site)] = `${formatEndpoint(site)}: ${hello.role}`;
      } catch (err) {
        seen[sites.indexOf(site)] = `${formatEndpoint(site)}: ${(err as Error).message}`;
      }
      await client?.close().catch(() => undefined);
    }
    if (Date.now() + o.pollMs > deadline) {
      throw new SmfsError('SMFS_ERR_UNAVAILABLE', `no primary among ${sites.map(formatEndpoint).join(', ')} within ${o.timeoutMs} ms (${seen.filter(Boolean).join('; ')})`);
    }
    await new Promise((r) => setTimeout(r, o.pollMs));
  }
}

// Finds the primary and hands the cache over; retries while the primary is still being
// promoted. Resolves to where and what became of the groups, or fails SMFS_ERR_LOST_GROUPS
// naming those lost (its details are the Verdict).
export async function handOver(sites: Endpoint[], credential: Credential, cache: TagCache, options: FailoverOptions = {}): Promise<{ site: Endpoint; verdict: Verdict }> {
  const o = { ...DEFAULTS, ...options };
  const deadline = Date.now() + o.timeoutMs;
  for (;;) {
    const { client, site } = await findPrimary(sites, credential, cache, { ...o, timeoutMs: Math.max(1, deadline - Date.now()) });
    try {
      return { site, verdict: await client.handover({ all: o.all }) };
    } catch (err) {
      const retry = err instanceof SmfsError && ['SMFS_ERR_CLOSED', 'SMFS_ERR_READONLY', 'SMFS_ERR_UNAVAILABLE'].includes(err.code);
      if (!retry || Date.now() + o.pollMs > deadline) throw err;
    } finally {
      await client.close().catch(() => undefined);
    }
    await new Promise((r) => setTimeout(r, o.pollMs));
  }
}
