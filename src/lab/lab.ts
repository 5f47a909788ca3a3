// A whole lab: the two-site topology and its WAN emulator, built and torn down together.
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { feedbackKeyOf, formatKeyFile, newMasterKey, writeKeyFile } from '../gateway/keys';
import { labRunDir } from './gateways';
import { nsRun, spawnInNs } from './netns';
import { createTopology, destroyTopology } from './topology';
import type { Topology } from './topology';
import { Wan } from './wan';
import type { WanSettings } from './wan';

// A fresh key for the lab's gateway pair and its feedback key for the hosts, in a directory of
// their own (0700, files 0600), so the gateways and storage servers of a lab run authenticated.
export interface LabKeys {
  dir: string;
  gateway: string;   // maelstrom up --key-file (the first pair's)
  pairs: string[];   // each pair's key file, one pair per key (pairs.ts)
  feedback: string;  // NetworkSyncListener keyFile, smfs storage --feedback-key: every pair's feedback key
}

export function makeKeys(pairs = 1): LabKeys {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mlab-keys-'));
  const masters = Array.from({ length: pairs }, () => newMasterKey());
  const files = masters.map((_, i) => path.join(dir, i === 0 ? 'pair.key' : `pair${i + 1}.key`));
  masters.forEach((m, i) => writeKeyFile(files[i], 'gateway', m));
  const feedback = path.join(dir, 'feedback.key');
  fs.writeFileSync(feedback, masters.map((m) => formatKeyFile('feedback', feedbackKeyOf(m))).join(''), { mode: 0o600 });
  return { dir, gateway: files[0], pairs: files, feedback };
}

// What runs between the hosts of a lab needs of it: its two hosts' namespaces, running commands
// in them, and its keys. Both labs have it (this one and the several-pairs one, pairs.ts).
export interface LabHosts {
  ns: { hostA: string; hostB: string };
  keys: LabKeys;
  exec(ns: string, argv: string[], options?: { allowFail?: boolean; timeoutMs?: number }): string;
  spawn(ns: string, argv: string[]): ChildProcess;
}

export class Lab implements LabHosts {
  readonly topology: Topology;
  readonly wan: Wan;
  readonly keys: LabKeys;
  private readonly children = new Set<ChildProcess>();

  private constructor(topology: Topology, wan: Wan, keys: LabKeys) {
    this.topology = topology;
    this.wan = wan;
    this.keys = keys;
  }

  // `clientSite`: a third site for clients, hostC, with links of its own to hostA and hostB
  // that outlive the WAN (src/lab/topology.ts).
  static async create(settings: Partial<WanSettings> & { congestionControl?: string; queues?: number; hostOffloads?: boolean; clientSite?: boolean } = {}): Promise<Lab> {
    const keys = makeKeys();
    let t: Topology | undefined;
    try {
      const { clientSite, hostOffloads, ...wanSettings } = settings;
      t = createTopology(settings.congestionControl, settings.queues, { clientSite, hostOffloads });
      const wan = await Wan.start(t, { delayMs: 0, loss: 0, burstLength: 1, killed: false, ...wanSettings });
      return new Lab(t, wan, keys);
    } catch (err) {
      if (t) destroyTopology(t);
      fs.rmSync(keys.dir, { recursive: true, force: true });
      throw err;
    }
  }

  get ns() {
    return this.topology.ns;
  }

  // Runs a command to completion in one of the lab's namespaces.
  exec(ns: string, argv: string[], options: { allowFail?: boolean; timeoutMs?: number } = {}): string {
    return nsRun(ns, argv, options);
  }

  // Starts a long-running command in a namespace; it is killed (by PID) when the lab goes.
  spawn(ns: string, argv: string[]): ChildProcess {
    return spawnInNs(ns, argv, this.children);
  }

  async destroy(): Promise<void> {
    for (const child of this.children) child.kill('SIGKILL');
    await this.wan.stop().catch(() => undefined);
    // What gateways killed on purpose (fail-open tests) leave in their namespaces' directory.
    for (const ns of [this.topology.ns.gwA, this.topology.ns.gwB]) {
      try { fs.rmSync(labRunDir(ns), { recursive: true, force: true }); } catch { /* the namespace is gone already */ }
    }
    destroyTopology(this.topology);
    fs.rmSync(this.keys.dir, { recursive: true, force: true });
  }
}
