// Controls the WAN emulator of a lab: spawns the daemon inside the WAN namespace and talks to it
// over its stdin/stdout. Loss (iid, bursts, kill) and delay change while traffic runs.
import { spawn } from 'node:child_process';
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import path from 'node:path';
import readline from 'node:readline';
import type { DelayLineStats, WanLossSettings } from '../native/addon';
import { LabError, inNs, nsRun } from './netns';
import type { Topology } from './topology';

export interface WanSettings {
  delayMs: number;       // one way, 0 to 200
  loss: number;          // average loss probability, both directions
  burstLength: number;   // mean burst in packets; 1 = iid
  killed: boolean;
  rateMbit?: number;     // tc tbf on both directions; none by default
}

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
    if (settings.rateMbit !== undefined) {
      for (const dev of [link.a, link.b]) {
        nsRun(link.ns, ['tc', 'qdisc', 'replace', 'dev', dev, 'root', 'tbf', 'rate', `${settings.rateMbit}mbit`, 'burst', '64kb', 'latency', '400ms']);
      }
    }
    const daemon = path.resolve(__dirname, 'wan-daemon.js');
    const args = { a: link.a, b: link.b, delayMs: settings.delayMs, loss: settings.loss, burstLength: settings.burstLength, killed: settings.killed, generic: false };
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

  set(settings: Partial<Omit<WanSettings, 'rateMbit'>>): Promise<WanStatus> {
    return this.request({ set: settings });
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
