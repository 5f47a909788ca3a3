// Record runs between the lab's hosts (record-server in hostB, record-client in hostA, both in
// src/lab/traffic.ts): what the network-sync tests and `maelstrom bench feedback` drive.
import path from 'node:path';
import readline from 'node:readline';
import type { ChildProcess } from 'node:child_process';
import type { LabHosts } from './lab';
import { ADDRESSES } from './topology';
import type { FlowKey } from '../feedback/format';
import type { ListenerCounters } from '../feedback/listener';

const tool = path.resolve(__dirname, 'traffic.js');

export const RECORD_SIZE = 4096;

export interface RecordServer {
  records(): number; // intact records received so far, in order
  bad(): number;
  // Resolves when at least n records arrived; false if not within timeoutMs.
  reach(n: number, timeoutMs: number): Promise<boolean>;
  stop(): void;
}

export async function startRecordServer(lab: LabHosts, port: number, options: { ack?: boolean; skipBytes?: number } = {}): Promise<RecordServer> {
  const child = lab.spawn(lab.ns.hostB, [process.execPath, tool, 'record-server', '--port', String(port),
    '--size', String(RECORD_SIZE), '--skip-bytes', String(options.skipBytes ?? 0), ...(options.ack ? ['--ack'] : [])]);
  let records = 0;
  let bad = 0;
  const waiters = new Set<() => void>();
  const lines = readline.createInterface({ input: child.stdout! });
  await new Promise<void>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`record-server exited (${code})`)));
    lines.on('line', (text) => {
      const msg = JSON.parse(text) as { listening?: number; records?: number; bad?: number };
      if (msg.listening !== undefined) return resolve();
      records = msg.records ?? records;
      bad = msg.bad ?? bad;
      for (const w of waiters) w();
    });
  });
  return {
    records: () => records,
    bad: () => bad,
    reach: (n, timeoutMs) => new Promise((resolve) => {
      if (records >= n) return resolve(true);
      const check = () => {
        if (records < n) return;
        waiters.delete(check);
        clearTimeout(timer);
        resolve(true);
      };
      const timer = setTimeout(() => { waiters.delete(check); resolve(records >= n); }, timeoutMs);
      waiters.add(check);
    }),
    stop: () => { child.kill('SIGTERM'); },
  };
}

export interface RecordAck {
  record: number;
  level: 'network' | 'remote';
  writtenNs: bigint;
  ackedNs: bigint;
}

export interface RecordClientDone {
  done: true;
  records: number;
  resolved: number;
  failures: number;
  remote: number;
  base: number;
  listener: ListenerCounters;
}

export interface RecordClient {
  child: ChildProcess;
  flow: Promise<FlowKey>;
  acks: RecordAck[];         // in the order they came
  onAck(f: (a: RecordAck) => void): void;
  done: Promise<RecordClientDone>;
}

export interface RecordClientOptions {
  port: number;
  records: number;
  intervalMs?: number;
  warmupBytes?: number;
  remoteAcks?: boolean;
  timeoutMs?: number;
  insecureFeedback?: boolean; // take unsealed feedback (gateways run with --insecure-no-auth); else the lab's feedback key
  gateways?: string[];        // whose feedback to take (default: gateway A's LAN address)
}

export function startRecordClient(lab: LabHosts, o: RecordClientOptions): RecordClient {
  const child = lab.spawn(lab.ns.hostA, [process.execPath, tool, 'record-client', '--to', ADDRESSES.hostB,
    '--port', String(o.port), '--records', String(o.records), '--size', String(RECORD_SIZE), '--gateway', (o.gateways ?? [ADDRESSES.gwALan]).join(','),
    '--interval-ms', String(o.intervalMs ?? 0), '--warmup-bytes', String(o.warmupBytes ?? 0),
    '--timeout-ms', String(o.timeoutMs ?? 30_000), ...(o.remoteAcks ? ['--remote-acks'] : []),
    ...(o.insecureFeedback ? ['--insecure-feedback'] : ['--key-file', lab.keys.feedback])]);
  const acks: RecordAck[] = [];
  const listeners: ((a: RecordAck) => void)[] = [];
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
  let gotFlow: (f: FlowKey) => void = () => undefined;
  const flow = new Promise<FlowKey>((resolve) => { gotFlow = resolve; });
  const done = new Promise<RecordClientDone>((resolve, reject) => {
    const lines = readline.createInterface({ input: child.stdout! });
    lines.on('line', (text) => {
      const msg = JSON.parse(text) as Record<string, unknown>;
      if (msg.flow) gotFlow(msg.flow as FlowKey);
      else if (msg.done) resolve(msg as unknown as RecordClientDone);
      else if (msg.error) reject(new Error(`record-client: ${msg.error as string}`));
      else {
        const a: RecordAck = { record: msg.record as number, level: msg.level as RecordAck['level'], writtenNs: BigInt(msg.writtenNs as string), ackedNs: BigInt(msg.ackedNs as string) };
        acks.push(a);
        for (const l of listeners) l(a);
      }
    });
    child.once('exit', (code, signal) => {
      lines.once('close', () => reject(new Error(`record-client exited (${code ?? signal}) before its report: ${stderr.trim()}`)));
    });
  });
  done.catch(() => undefined);
  return { child, flow, acks, onAck: (f) => listeners.push(f), done };
}
