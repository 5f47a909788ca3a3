// Controls the WAN emulator of a lab: spawns the daemon inside the WAN namespace and talks to it
// over its stdin/stdout. Loss (iid, bursts, kill) and delay change while traffic runs.
import { spawn } from 'node:child_process';
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import path from 'node:path';
import readline from 'node:readline';
import type { DelayLineStats, WanLossSettings } from '../native/addon';
import { LabError, inNs } from './netns';
import type { Topology } from './topology';

export interface WanSettings {
  delayMs: number;       // one way, 0 to 200
  loss: number;          // average loss probability, both directions
  burstLength: number;   // mean burst in packets; 1 = iid
  killed: boolean;
  // The link's rate in each direction, emulated by the delay line: frames wait in a bottleneck
  // queue of queueBytes (default: one bandwidth-delay product at the delay given at start, at
  // least 64 KiB) while the link serialises the frames before them; a full queue drops (tail
  // drop). None by default (the veths' speed).
  rateMbit?: number;
  queueBytes?: number;
  // The delay line's thread at SCHED_FIFO (default false): it preempts the lab's other work when
  // a frame falls due, instead of waiting for a CPU behind the gateways and the hosts. For a
  // rate-limited link (smfs reproduce); on an unlimited one its spins before every deadline
  // take a core from the gateways (docs/decisions.md 84).
  realtime?: boolean;
}

// One bandwidth-delay product (the round trip at the given one-way delay), at least 64 KiB.
export function defaultQueueBytes(rateMbit: number, delayMs: number): number {
  return Math.max(64 * 1024, Math.round(rateMbit * 1e6 / 8 * 2 * delayMs / 1000));
}

// The delay line's real-time priority: above the kernel's threaded interrupts (50) and below
// its migration and watchdog threads (99).
export const DELAY_LINE_PRIORITY = 60;

export interface WanStatus {
  state: WanLossSettings;
  delay: DelayLineStats;
  loss: { passed: number; dropped: number };
}

export class Wan {
  private readonly child: ChildProcessWithoutNullStreams;
  private readonly waiting = new Map<number, (s: WanStatus) => void>();
  private nextId = 1;
  private closed = false;

  private constructor(child: ChildProcessWithoutNullStreams) {
    this.child = child;
  }

  static start(t: Topology, settings: WanSettings): Promise<Wan> {
    return Wan.startOn({ ns: t.ns.wan, a: t.ifs.wanA, b: t.ifs.wanB }, settings);
  }

  // The emulator on the link between interfaces a and b of namespace ns.
  static async startOn(link: { ns: string; a: string; b: string }, settings: WanSettings): Promise<Wan> {
    if (!(settings.delayMs >= 0 && settings.delayMs <= 200)) throw new LabError(`WAN delay must be 0 to 200 ms, got ${settings.delayMs}`);
    if (settings.rateMbit !== undefined && !(settings.rateMbit > 0 && settings.rateMbit <= 100_000)) throw new LabError(`WAN rate must be above 0 and at most 100000 Mbit/s, got ${settings.rateMbit}`);
    const rateBps = settings.rateMbit === undefined ? 0 : Math.round(settings.rateMbit * 1e6);
    const queueBytes = settings.queueBytes ?? (settings.rateMbit === undefined ? 0 : defaultQueueBytes(settings.rateMbit, settings.delayMs));
    const daemon = path.resolve(__dirname, 'wan-daemon.js');
    const args = {
      a: link.a, b: link.b, delayMs: settings.delayMs, loss: settings.loss, burstLength: settings.burstLength, killed: settings.killed, generic: false,
      rateBps, queueBytes, realtimePriority: settings.realtime === true ? DELAY_LINE_PRIORITY : 0,
    };
    const [cmd, ...rest] = inNs(link.ns, [process.execPath, daemon, JSON.stringify(args)]);
    const child = spawn(cmd, rest, { stdio: ['pipe', 'pipe', 'pipe'] });
    const wan = new Wan(child);
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    const lines = readline.createInterface({ input: child.stdout });
    await new Promise<void>((resolve, reject) => {
      const failed = (code: number | null) => reject(new LabError(`the WAN emulator exited (${code}): ${stderr.trim()}`));
      child.once('exit', failed);
      lines.once('line', (text) => {
        child.off('exit', failed);
        const first = JSON.parse(text) as { ready?: boolean; error?: string };
        if (first.ready) resolve();
        else reject(new LabError(`the WAN emulator failed: ${first.error ?? text}`));
      });
    });
    lines.on('line', (text) => {
      const msg = JSON.parse(text) as WanStatus & { id?: number; error?: string };
      const done = msg.id === undefined ? undefined : wan.waiting.get(msg.id);
      if (done && msg.id !== undefined) {
        wan.waiting.delete(msg.id);
        done(msg);
      }
    });
    return wan;
  }

  private request(cmd: object): Promise<WanStatus> {
    if (this.closed) return Promise.reject(new LabError('the WAN emulator is stopped'));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const onExit = () => reject(new LabError('the WAN emulator exited'));
      this.child.once('exit', onExit);
      this.waiting.set(id, (s) => {
        this.child.off('exit', onExit);
        resolve(s);
      });
      this.child.stdin.write(JSON.stringify({ id, ...cmd }) + '\n');
    });
  }

  // rateMbit and queueBytes go together (a rate without a queue gets the default at the delay
  // given in the same call, or else 64 KiB); rateMbit 0 lifts the limit.
  set(settings: Partial<Omit<WanSettings, 'realtime'>>): Promise<WanStatus> {
    const { rateMbit, queueBytes, ...rest } = settings;
    if (rateMbit === undefined) return this.request({ set: rest });
    if (!(rateMbit >= 0 && rateMbit <= 100_000)) return Promise.reject(new LabError(`WAN rate must be 0 to 100000 Mbit/s, got ${rateMbit}`));
    const rate = { rateBps: Math.round(rateMbit * 1e6), queueBytes: queueBytes ?? defaultQueueBytes(rateMbit, settings.delayMs ?? 0) };
    return this.request({ set: rest, rate });
  }

  // Drops exactly the next `frames` frames (either direction), sparing UDP to sparePort.
  burst(frames: number, sparePort: number): Promise<WanStatus> {
    return this.request({ burst: { frames, sparePort } });
  }

  status(): Promise<WanStatus> {
    return this.request({ stats: true });
  }

  async stop(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const exited = new Promise<void>((resolve) => {
      if (this.child.exitCode !== null) resolve();
      else this.child.once('exit', () => resolve());
    });
    this.child.stdin.end();
    await exited;
  }
}
