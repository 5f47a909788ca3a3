// A whole lab: the two-site topology and its WAN emulator, built and torn down together.
import type { ChildProcess } from 'node:child_process';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { CONTROL_DIR } from '../gateway/control';
import { inNs, nsRun } from './netns';
import { createTopology, destroyTopology } from './topology';
import type { Topology } from './topology';
import { Wan } from './wan';
import type { WanSettings } from './wan';

export class Lab {
  readonly topology: Topology;
  readonly wan: Wan;
  private readonly children = new Set<ChildProcess>();

  private constructor(topology: Topology, wan: Wan) {
    this.topology = topology;
    this.wan = wan;
  }

  static async create(settings: Partial<WanSettings> & { congestionControl?: string; queues?: number } = {}): Promise<Lab> {
    const t = createTopology(settings.congestionControl, settings.queues);
    try {
      const wan = await Wan.start(t, { delayMs: 0, loss: 0, burstLength: 1, killed: false, ...settings });
      return new Lab(t, wan);
    } catch (err) {
      destroyTopology(t);
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
    const [cmd, ...args] = inNs(ns, argv);
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.children.add(child);
    child.once('exit', () => this.children.delete(child));
    return child;
  }

  async destroy(): Promise<void> {
    for (const child of this.children) child.kill('SIGKILL');
    await this.wan.stop().catch(() => undefined);
    destroyTopology(this.topology);
    // Control sockets of gateways killed on purpose (fail-open tests) stay behind otherwise.
    for (const ns of Object.values(this.topology.ns)) fs.rmSync(path.join(CONTROL_DIR, `${ns}.sock`), { force: true });
  }
}
