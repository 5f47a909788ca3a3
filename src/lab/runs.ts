// Runs of the traffic tools (src/lab/traffic.ts) between a lab's hosts, and their TCP counters:
// for the tests, the demo and the engine benchmark.
import path from 'node:path';
import readline from 'node:readline';
import type { LabHosts } from './lab';
import { ADDRESSES } from './topology';

const tool = path.resolve(__dirname, 'traffic.js');

// Starts a receiver in hostB; resolves once it listens, with a promise of its final report
// (wrapped: an async function returning a bare promise would wait for it).
// Lines with a "mark" go to onMark (tcp-recv's window).
async function receiver(lab: LabHosts, args: string[], onMark?: (mark: number) => void): Promise<{ report: Promise<Record<string, number | string>> }> {
  const child = lab.spawn(lab.ns.hostB, [process.execPath, tool, ...args]);
  const lines = readline.createInterface({ input: child.stdout! });
  let report: (r: Record<string, number | string>) => void = () => undefined;
  let reported = false;
  const final = new Promise<Record<string, number | string>>((resolve, reject) => {
    report = (r) => {
      reported = true;
      resolve(r);
    };
    // Read to the end ('close', not 'exit'): a receiver that dies without its report fails
    // the run instead of leaving it waiting.
    child.once('close', (code, signal) => { if (!reported) reject(new Error(`receiver exited (${code ?? signal}) without a report`)); });
  });
  final.catch(() => undefined); // awaited by the caller; not unhandled if the sender failed first
  await new Promise<void>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`receiver exited (${code})`)));
    lines.on('line', (text) => {
      let msg: Record<string, number | string>;
      try {
        msg = JSON.parse(text) as Record<string, number | string>;
      } catch {
        return; // not one of the tool's lines
      }
      if ('listening' in msg) resolve();
      else if ('mark' in msg) onMark?.(Number(msg.mark));
      else report(msg);
    });
  });
  return { report: final };
}

// Runs a sender in hostA without blocking the event loop (timers in tests must fire meanwhile).
function send(lab: LabHosts, args: string[], timeoutMs: number): Promise<Record<string, number | string>> {
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

// A TCP transfer hostA -> hostB of a number of bytes, or for { seconds }. With { window }, the
// receiver also counts what arrives from `omit` to `omit + window` seconds after it accepts the
// connection (got.windowBytes over got.windowSeconds): goodput after slow start; the sender
// sends for `omit + window + 1` seconds, so the window ends before the sender does. onMark
// hears the window open (0) and close (1), as the receiver takes its counts.
export async function tcpTransfer(lab: LabHosts, amount: number | { seconds: number } | { omit: number; window: number; onMark?: (mark: number) => void }, port = 5001, timeoutMs = 300_000) {
  const windowed = typeof amount === 'object' && 'window' in amount;
  const done = await receiver(lab, ['tcp-recv', '--port', String(port), ...(windowed ? ['--omit', String(amount.omit), '--window', String(amount.window)] : [])],
    windowed ? amount.onMark : undefined);
  const how = typeof amount === 'number' ? ['--bytes', String(amount)]
    : ['--seconds', String('window' in amount ? amount.omit + amount.window + 1 : amount.seconds)];
  const sent = await send(lab, ['tcp-send', '--to', ADDRESSES.hostB, '--port', String(port), ...how], timeoutMs);
  const got = await done.report;
  return { sent, got };
}

// A receiver in hostB of datagrams whose payload starts with a u32 id: distinct ids and
// duplicates, reported once it has `count` of them or heard nothing for idleMs.
export async function udpReceive(lab: LabHosts, port: number, count: number, idleMs: number): Promise<{ report: Promise<{ received: number; duplicates: number }> }> {
  const done = await receiver(lab, ['udp-recv', '--port', String(port), '--count', String(count), '--idle-ms', String(idleMs)]);
  return done as { report: Promise<{ received: number; duplicates: number }> };
}

// Distinct datagrams at `port` of hostB (by their first 4 bytes) until `idleMs` pass without one.
export async function udpCount(lab: LabHosts, port: number, idleMs: number): Promise<{ report: Promise<{ received: number; duplicates: number }> }> {
  const done = await receiver(lab, ['udp-recv', '--port', String(port), '--count', String(2 ** 32), '--idle-ms', String(idleMs)]);
  return { report: done.report as Promise<{ received: number; duplicates: number }> };
}

export async function udpStream(lab: LabHosts, count: number, pps: number, port = 5002, onSending?: () => Promise<void>) {
  const done = await receiver(lab, ['udp-recv', '--port', String(port), '--count', String(count), '--idle-ms', '3000']);
  const sending = onSending?.();
  await send(lab, ['udp-send', '--to', ADDRESSES.hostB, '--port', String(port), '--count', String(count), '--pps', String(pps), '--size', '1000'], 120_000);
  await sending;
  return (await done.report) as { received: number; duplicates: number };
}

// TCP segments the sender retransmitted, from /proc/net/snmp of its namespace.
export function tcpRetransmissions(lab: LabHosts, ns: string): number {
  const lines = lab.exec(ns, ['cat', '/proc/net/snmp']).split('\n').filter((l) => l.startsWith('Tcp:'));
  const names = lines[0].split(/\s+/);
  const values = lines[1].split(/\s+/);
  return Number(values[names.indexOf('RetransSegs')]);
}

// Raw UDP frames from hostA to `port` of hostB through `via` (a MAC) as fast as one packet socket
// goes, or with `xdp` by XDP_TX from a thread on each of its CPUs (bpf/lab_gen.bpf.c; the veth
// peer needs an XDP program).
export async function udpBlast(lab: LabHosts, ipLength: number, seconds: number, via: string, xdp?: { cpus: number[] }, port = 9): Promise<{ sent: number; seconds: number }> {
  const gen = xdp ? ['--xdp', path.resolve(__dirname, '..', '..', '..', 'out', 'bpf', 'lab_gen.bpf.o'), '--cpus', xdp.cpus.join(',')] : [];
  const r = await send(lab, ['udp-blast', '--to', ADDRESSES.hostB, '--via', via, '--port', String(port), '--size', String(ipLength), '--seconds', String(seconds), ...gen], seconds * 1000 + 30_000);
  return { sent: Number(r.sent), seconds: Number(r.seconds) };
}
