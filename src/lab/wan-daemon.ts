// Runs inside the lab's WAN namespace (spawned by src/lab/wan.ts with `ip netns exec`): attaches
// the XDP loss program to both WAN links and bridges them through the delay line. Commands
// arrive as JSON lines on stdin, answers leave as JSON lines on stdout; end of stdin (the
// parent went away) detaches everything and exits.
import path from 'node:path';
import readline from 'node:readline';
import { addon } from '../native/addon';

interface Settings {
  a: string;
  b: string;
  delayMs: number;
  loss: number;
  burstLength: number;
  killed: boolean;
  generic: boolean;
  rateBps: number;
  queueBytes: number;
  realtimePriority: number;
}

const settings = JSON.parse(process.argv[2]) as Settings;
const objectPath = path.resolve(__dirname, '..', '..', '..', 'out', 'bpf', 'wan_emu.bpf.o');
const native = addon();

const loss = new native.WanLoss(objectPath);
loss.attach(settings.a, settings.generic);
loss.attach(settings.b, settings.generic);
loss.set({ killed: settings.killed, loss: settings.loss, burstLength: settings.burstLength });
const line = new native.DelayLine({
  a: settings.a, b: settings.b, delayNs: Math.round(settings.delayMs * 1e6),
  rateBps: settings.rateBps, queueBytes: settings.queueBytes, realtimePriority: settings.realtimePriority,
});

function reply(o: unknown): void {
  process.stdout.write(JSON.stringify(o) + '\n');
}

function shutdown(): void {
  line.stop();
  loss.close();
}

const state = { killed: settings.killed, loss: settings.loss, burstLength: settings.burstLength };
reply({ ready: true });

readline.createInterface({ input: process.stdin }).on('line', (text) => {
  try {
    const cmd = JSON.parse(text) as {
      id: number;
      set?: Partial<typeof state> & { delayMs?: number };
      rate?: { rateBps: number; queueBytes: number };
      burst?: { frames: number; sparePort: number };
      stats?: boolean;
    };
    if (cmd.set) {
      const { delayMs, ...rest } = cmd.set;
      Object.assign(state, rest);
      loss.set(state);
      if (delayMs !== undefined) line.setDelay(Math.round(delayMs * 1e6));
    }
    if (cmd.rate) line.setRate(cmd.rate.rateBps, cmd.rate.queueBytes);
    if (cmd.burst) loss.set({ ...state, dropNext: cmd.burst.frames, sparePort: cmd.burst.sparePort });
    reply({ id: cmd.id, ok: true, state, delay: line.stats(), loss: loss.counters() });
  } catch (err) {
    reply({ error: err instanceof Error ? err.message : String(err) });
  }
}).on('close', () => {
  shutdown();
  process.exit(0);
});

for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => { shutdown(); process.exit(0); });
