// The test bed of one network setup: a lab (100 Mbit/s WAN), its hosts' TCP, the gateways with
// the experiment's code or none, and for each measurement a fresh SMFS primary (hostA) and
// mirror (hostB) and testers (hostA, or hostC for tagged), all of it tracked so that an
// interruption removes it (abort.ts).
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { NETSYNC_DEFAULTS } from '../../gateway/gateway';
import { Lab } from '../lab';
import type { LabSettings } from '../fixture';
import { labRunDir, startGateways } from '../gateways';
import type { GatewayProcess } from '../gateways';
import { LabError } from '../netns';
import { ADDRESSES, kernelDefaultTcp } from '../topology';
import { MIRROR, PRIMARY, labCredential, promoteAwaiting, startServer } from '../smfs';
import type { SmfsServer } from '../smfs';
import type { WanStatus } from '../wan';
import { defaultQueueBytes } from '../wan';
import { tracked, untrack } from './abort';
import type { Configuration, Level } from './configs';
import { TABLE2, WAN } from './params';

const loadTool = path.resolve(__dirname, '..', 'smfs-load.js');

export interface Setup {
  gateways: boolean;
  c: number;
  flushMs: number;
  flushIdleUs: number;     // the gateways' idle flush (0: off)
  flushBudget?: number;    // the gateways' --flush-budget (default theirs)
  tcp: Configuration['tcp'];
  clientSite: boolean;
}

export function setupKey(s: Setup): string {
  const tcp = s.tcp === 'lab-reno' ? 'reno' : s.tcp.defaults;
  const budget = s.flushBudget === undefined ? '' : `, flush budget ${s.flushBudget}/s`;
  return s.gateways ? `gateways c=${s.c} flush=${s.flushMs}ms${s.flushIdleUs === 0 ? ', no idle flush' : budget}, ${tcp}${s.clientSite ? ', client site' : ''}` : `plain WAN, ${tcp}${s.clientSite ? ', client site' : ''}`;
}

export function setupOf(config: Configuration, c: number, flushMs: number, flushIdleUs: number = NETSYNC_DEFAULTS.flushIdleUs): Setup {
  return { gateways: config.gateways, c, flushMs, flushIdleUs, tcp: config.tcp, clientSite: config.clientSite };
}

export interface Ack { i: number; t: bigint; a: string[] }

export interface Load {
  child: ChildProcess;
  acks: Ack[];
  handover: Promise<Record<string, unknown> | undefined>;
  done: Promise<Record<string, unknown>>;
}

export interface Pair {
  primary: SmfsServer;
  mirror: SmfsServer;
  traces?: { primary: string; mirror: string };
  stop(signal?: NodeJS.Signals): Promise<void>;
}

export class Bed {
  readonly credentials: string;
  private readonly removeCredential: () => void;
  private readonly runDirs: string[];
  private readonly root: string;
  private pairs = 0;

  private constructor(readonly lab: Lab, readonly setup: Setup, readonly gw: { a: GatewayProcess; b: GatewayProcess } | undefined, credential: { file: string; remove(): void }) {
    this.credentials = credential.file;
    this.removeCredential = credential.remove;
    this.runDirs = [lab.ns.gwA, lab.ns.gwB].map(labRunDir);
    this.root = fs.mkdtempSync(path.join(os.tmpdir(), 'smfs-reproduce-'));
    tracked.dirs.add(this.root);
    for (const d of this.runDirs) tracked.dirs.add(d);
  }

  static async create(setup: Setup, delayMs = WAN.delayMs): Promise<Bed> {
    const settings = { delayMs, rateMbit: WAN.rateMbit, queueBytes: defaultQueueBytes(WAN.rateMbit, delayMs), realtime: true, ...(setup.clientSite ? { clientSite: true } : {}) };
    const lab = await Lab.create(settings as LabSettings);
    tracked.labs.add(lab);
    const credential = labCredential();
    tracked.dirs.add(path.dirname(credential.file));
    try {
      if (setup.tcp !== 'lab-reno') kernelDefaultTcp(lab.topology, setup.tcp.defaults);
      const budget = setup.flushBudget === undefined ? [] : ['--flush-budget', String(setup.flushBudget)];
      const gw = setup.gateways ? await startGateways(lab, ['--c', String(setup.c), '--flush-timeout', String(setup.flushMs), '--flush-idle', String(setup.flushIdleUs), ...budget]) : undefined;
      if (gw) for (const g of [gw.a, gw.b]) tracked.children.add(g.child);
      return new Bed(lab, setup, gw, credential);
    } catch (err) {
      credential.remove();
      tracked.labs.delete(lab);
      await lab.destroy();
      throw err;
    }
  }

  // The WAN's delay and loss (its queue follows the delay: one bandwidth-delay product).
  async setWan(o: { delayMs?: number; loss?: number; killed?: boolean }): Promise<WanStatus> {
    const rate = o.delayMs === undefined ? {} : { rateMbit: WAN.rateMbit, queueBytes: defaultQueueBytes(WAN.rateMbit, o.delayMs) };
    return this.lab.wan.set({ ...o, ...rate });
  }

  // A fresh primary in hostA mirroring to a fresh mirror in hostB, the primary given gateway
  // A's feedback only for network-sync; resolves once the mirror stream is live.
  async startPair(o: { feedback: boolean; trace?: boolean; ackTimeoutMs?: number }): Promise<Pair> {
    const dir = path.join(this.root, `pair${this.pairs++}`);
    fs.mkdirSync(dir);
    const traces = o.trace ? { primary: path.join(dir, 'primary.trace'), mirror: path.join(dir, 'mirror.trace') } : undefined;
    const common = ['--fsync', 'always', '--credentials', this.credentials, '--segment-size', String(TABLE2.segmentBytes)];
    const mirror = await startServer(this.lab, this.lab.ns.hostB, ['--dir', path.join(dir, 'mirror'), '--role', 'mirror', '--host', ADDRESSES.hostB, '--port', '7610', ...common,
      ...(traces ? ['--trace-mirror', traces.mirror] : [])]);
    tracked.children.add(mirror.child);
    try {
      const primary = await startServer(this.lab, this.lab.ns.hostA, ['--dir', path.join(dir, 'primary'), '--host', ADDRESSES.hostA, '--port', '7610', ...common,
        '--mirror', MIRROR, '--ack-timeout', String(o.ackTimeoutMs ?? 60_000),
        ...(o.feedback ? ['--gateway', ADDRESSES.gwALan, '--feedback-key', this.lab.keys.feedback] : []),
        ...(traces ? ['--trace-mirror', traces.primary] : [])]);
      tracked.children.add(primary.child);
      if (!await primary.until('mirror-live', 15_000)) {
        await primary.stop('SIGKILL');
        throw new LabError(`the primary's link to the mirror did not go live: ${JSON.stringify(primary.events)}`);
      }
      return {
        primary, mirror, traces,
        stop: async (signal = 'SIGKILL') => {
          await primary.stop(signal);
          await mirror.stop(signal);
          untrack(primary.child, mirror.child);
          if (!traces) fs.rmSync(dir, { recursive: true, force: true });
        },
      };
    } catch (err) {
      await mirror.stop('SIGKILL');
      throw err;
    }
  }

  removePairDir(pair: Pair): void {
    if (pair.traces) fs.rmSync(path.dirname(pair.traces.primary), { recursive: true, force: true });
  }

  // Testers appending at `level` to the primary: `testers` connections (one process, so one
  // tagged cache), groups of `blocks` records over four logs; every acknowledgement with its
  // CLOCK_MONOTONIC time. Tagged testers run at the client site and hand their cache over to
  // the promoted mirror.
  spawnLoad(o: { level: Level; testers: number; blocks: number; blockSize: number; seconds: number; clientSite: boolean }): Load {
    const ns = o.clientSite ? (this.lab.ns as { hostC?: string }).hostC : this.lab.ns.hostA;
    if (!ns) throw new LabError('this lab has no client site (hostC), where the tagged configuration runs its testers');
    const tagged = o.level === 'tagged' ? ['--sites', `${PRIMARY},${MIRROR}`, '--dead-after', '5000', '--no-shares'] : [];
    const child = this.lab.spawn(ns, [process.execPath, loadTool, 'append', '--server', PRIMARY, '--credentials', this.credentials, '--level', o.level,
      '--logs', '4', '--blocks', String(o.blocks), '--block-size', String(o.blockSize), '--clients', String(o.testers), '--seconds', String(o.seconds), '--acks', ...tagged]);
    tracked.children.add(child);
    const acks: Ack[] = [];
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
    let gotHandover: (h: Record<string, unknown> | undefined) => void = () => undefined;
    const handover = new Promise<Record<string, unknown> | undefined>((resolve) => { gotHandover = resolve; });
    const done = new Promise<Record<string, unknown>>((resolve, reject) => {
      readline.createInterface({ input: child.stdout! }).on('line', (text) => {
        const m = JSON.parse(text) as Record<string, unknown>;
        if (m.error) reject(new LabError(`smfs-load: ${m.error as string}`));
        else if (m.handover) gotHandover(m.handover as Record<string, unknown>);
        else if (m.done) {
          gotHandover(undefined);
          resolve(m);
        } else acks.push({ i: m.i as number, t: BigInt(m.t as string), a: m.a as string[] });
      });
      child.once('exit', (code, signal) => {
        gotHandover(undefined);
        untrack(child);
        reject(new LabError(`smfs-load exited (${code ?? signal}) without a summary: ${stderr.trim().slice(-400)}`));
      });
    });
    done.catch(() => undefined);
    return { child, acks, handover, done };
  }

  // `smfs promote` of the mirror; with awaitClients, after taking that many testers' caches.
  promote(awaitClients = 0): Promise<Record<string, unknown>> {
    return promoteAwaiting(this.lab, this.credentials, { awaitClients, graceS: 30 }, { started: (c) => tracked.children.add(c), ended: (c) => untrack(c) });
  }

  async destroy(): Promise<void> {
    try {
      if (this.gw) {
        await this.gw.a.stop();
        await this.gw.b.stop();
        untrack(this.gw.a.child, this.gw.b.child);
      }
    } finally {
      this.removeCredential();
      fs.rmSync(this.root, { recursive: true, force: true });
      tracked.dirs.delete(this.root);
      tracked.labs.delete(this.lab);
      await this.lab.destroy();
    }
  }
}
