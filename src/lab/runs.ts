// Traffic between the lab's hosts with the tools in src/lab/traffic.ts, and TCP counters.
import path from 'node:path';
import readline from 'node:readline';
import type { Lab } from '../../src/lab/lab';
import { ADDRESSES } from '../../src/lab/topology';

const tool = path.resolve(__dirname, '..', '..', 'src', 'lab', 'traffic.js');

// Starts a receiver in hostB; resolves once it listens, with a promise of its final report
// (wrapped: an async function returning a bare promise would wait for it).
async function receiver(lab: Lab, args: string[]): Promise<{ report: Promise<Record<string, number | string>> }> {
  const child = lab.spawn(lab.ns.hostB, [process.execPath, tool, ...args]);
  const lines = readline.createInterface({ input: child.stdout! });
  let report: (r: Record<string, number | string>) => void = () => undefined;
  const final = new Promise<Record<string, number | string>>((resolve) => { report = resolve; });
  await new Promise<void>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`receiver exited (${code})`)));
    lines.on('line', (text) => {
      const msg = JSON.parse(text) as Record<string, number | string>;
      if ('listening' in msg) resolve();
      else report(msg);
    });
  });
  return { report: final };
}

// Runs a sender in hostA without blocking the event loop (timers in tests must fire meanwhile).
function send(lab: Lab, args: string[], timeoutMs: number): Promise<Record<string, number | string>> {
  const child = lab.spawn(lab.ns.hostA, [process.execPath, tool, ...args]);
  let out = '';
  child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`sender timed out after ${timeoutMs} ms`)); }, timeoutMs);
    child.once('exit', (code) => {
      clearTimeout(timer);
      try {
        resolve(JSON.parse(out.trim().split('\n').pop()!));
      } catch {
        reject(new Error(`sender exited (${code}) without a report: ${out}`));
      }
    });
  });
}

export async function tcpTransfer(lab: Lab, bytes: number, port = 5001, timeoutMs = 300_000) {
  const done = await receiver(lab, ['tcp-recv', '--port', String(port)]);
  const sent = await send(lab, ['tcp-send', '--to', ADDRESSES.hostB, '--port', String(port), '--bytes', String(bytes)], timeoutMs);
  const got = await done.report;
  return { sent, got };
}

export async function udpStream(lab: Lab, count: number, pps: number, port = 5002, onSending?: () => Promise<void>) {
  const done = await receiver(lab, ['udp-recv', '--port', String(port), '--count', String(count), '--idle-ms', '3000']);
  const sending = onSending?.();
  await send(lab, ['udp-send', '--to', ADDRESSES.hostB, '--port', String(port), '--count', String(count), '--pps', String(pps), '--size', '1000'], 120_000);
  await sending;
  return (await done.report) as { received: number; duplicates: number };
}

// TCP segments the sender retransmitted, from /proc/net/snmp of its namespace.
export function tcpRetransmissions(lab: Lab, ns: string): number {
  const lines = lab.exec(ns, ['cat', '/proc/net/snmp']).split('\n').filter((l) => l.startsWith('Tcp:'));
  const names = lines[0].split(/\s+/);
  const values = lines[1].split(/\s+/);
  return Number(values[names.indexOf('RetransSegs')]);
}
