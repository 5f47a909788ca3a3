#!/usr/bin/env node
// Traffic for lab experiments, run inside a host namespace (`ip netns exec ... node traffic.js`).
// Every mode prints one JSON line when done.
//   tcp-recv --port P                      accept one connection, count bytes, sha256
//   tcp-send --to IP --port P (--bytes N | --seconds S)   send pseudo-random bytes, report sha256 and time
//   udp-recv --port P --count N --idle-ms T  count distinct sequence numbers until N or T idle
//   udp-send --to IP --port P --count N --pps R --size S
//   udp-blast --to IP --via MAC --size S --seconds T   raw frames as fast as the socket goes
//   record-server --port P [--size S] [--ack]   accept one connection of fixed-size records, check
//       each, report {"records","bad"} as they arrive (every 20 ms) and at the end; --ack answers
//       each intact record with its index (u32), the remote acknowledgement
//   record-client --to IP --port P --records N [--size S] --gateway GW [--interval-ms T]
//       [--warmup-bytes B] [--remote-acks]   write records over TCP, each with a network-sync
//       promise (src/feedback/); one line per promise resolved, in the order they resolve:
//       {"record":i,"level":"network","writtenNs":"...","ackedNs":"..."} (and "remote" with
//       --remote-acks), then {"done":...} with the listener's counters
//   feedback-forge --to IP --kind foreign|truncated|bad-version|beyond --sender-port P
//       --receiver IP --receiver-port P [--count N]   datagrams a listener must ignore and count
import { createHash } from 'node:crypto';
import dgram from 'node:dgram';
import net from 'node:net';
import { NetworkSyncListener } from '../feedback/listener';
import { arg, printJson } from './tool-args';

// Deterministic bytes, so sender and receiver agree without shipping the data.
function chunk(index: number, size: number): Buffer {
  const b = Buffer.alloc(size);
  let x = (index * 2654435761) >>> 0 || 1;
  for (let i = 0; i < size; i += 4) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    b.writeUInt32LE(x, i);
  }
  return b;
}

function tcpRecv(): void {
  const port = Number(arg('port'));
  const server = net.createServer((sock) => {
    const hash = createHash('sha256');
    let bytes = 0;
    const start = process.hrtime.bigint();
    sock.on('data', (d: Buffer) => { hash.update(d); bytes += d.length; });
    sock.on('end', () => {
      const seconds = Number(process.hrtime.bigint() - start) / 1e9;
      printJson({ bytes, sha256: hash.digest('hex'), seconds });
      sock.end();
      server.close();
    });
  });
  server.listen(port, () => printJson({ listening: port }));
}

function tcpSend(): void {
  const seconds = Number(arg('seconds', '0'));
  const total = seconds > 0 ? Infinity : Number(arg('bytes'));
  const size = 65536;
  const hash = createHash('sha256');
  const sock = net.connect(Number(arg('port')), arg('to'));
  const start = process.hrtime.bigint();
  let sent = 0;
  let index = 0;
  const until = start + BigInt(Math.round(seconds * 1e9));
  const pump = () => {
    while (sent < total && (seconds === 0 || process.hrtime.bigint() < until)) {
      const c = chunk(index++, size).subarray(0, Math.min(size, total - sent));
      hash.update(c);
      sent += c.length;
      if (!sock.write(c)) return sock.once('drain', pump);
      if (seconds > 0 && index % 16 === 0) return setImmediate(pump);
    }
    sock.end();
  };
  sock.on('connect', pump);
  sock.on('close', () => printJson({ bytes: sent, sha256: hash.digest('hex'), seconds: Number(process.hrtime.bigint() - start) / 1e9 }));
  sock.on('error', (e) => { printJson({ error: e.message }); process.exitCode = 1; });
}

function udpRecv(): void {
  const want = Number(arg('count'));
  const idleMs = Number(arg('idle-ms', '2000'));
  const seen = new Set<number>();
  let duplicates = 0;
  const s = dgram.createSocket('udp4');
  let timer: NodeJS.Timeout | undefined;
  const finish = () => { s.close(); printJson({ received: seen.size, duplicates }); };
  const arm = () => { if (timer) clearTimeout(timer); timer = setTimeout(finish, idleMs); };
  s.on('message', (m: Buffer) => {
    const seq = m.readUInt32BE(0);
    if (seen.has(seq)) duplicates++;
    seen.add(seq);
    if (seen.size >= want) { if (timer) clearTimeout(timer); finish(); } else arm();
  });
  s.bind(Number(arg('port')), () => { printJson({ listening: Number(arg('port')) }); arm(); });
}

function udpSend(): void {
  const count = Number(arg('count'));
  const pps = Number(arg('pps', '5000'));
  const size = Number(arg('size', '1000'));
  const to = arg('to');
  const port = Number(arg('port'));
  const s = dgram.createSocket('udp4');
  const start = process.hrtime.bigint();
  let next = 0;
  const tick = () => {
    const due = Math.min(count, Math.floor((Number(process.hrtime.bigint() - start) / 1e9) * pps) + 1);
    while (next < due) {
      const b = chunk(next, size);
      b.writeUInt32BE(next, 0);
      s.send(b, port, to);
      next++;
    }
    if (next < count) setTimeout(tick, 1);
    else setTimeout(() => { s.close(); printJson({ sent: count }); }, 50);
  };
  tick();
}

function udpBlast(): void {
  // Imported here: the other modes run without the native addon.
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const { addon } = require('../native/addon') as typeof import('../native/addon');
  const { interfaceInfo } = require('../gateway/host') as typeof import('../gateway/host');
  const dev = arg('dev', 'eth0');
  const self = interfaceInfo(dev);
  const r = addon().blast({
    ifname: dev,
    dstMac: Buffer.from(arg('via').split(':').map((h) => parseInt(h, 16))),
    srcMac: self.mac,
    srcIp: self.ipv4[0],
    dstIp: arg('to'),
    dstPort: Number(arg('port', '9')),
    ipLength: Number(arg('size')),
    seconds: Number(arg('seconds', '2')),
  });
  printJson(r);
}

// Record i: its index (u32) then deterministic bytes, so the receiver can check every record.
function record(i: number, size: number): Buffer {
  const b = chunk(i + 1, size);
  b.writeUInt32BE(i, 0);
  return b;
}

function recordServer(): void {
  const size = Number(arg('size', '4096'));
  const ack = process.argv.includes('--ack');
  const server = net.createServer((sock) => {
    server.close();
    sock.setNoDelay(true); // acknowledgements go out at once, not behind Nagle
    let skip = Number(arg('skip-bytes', '0')); // the client's warm-up
    let records = 0;
    let bad = 0;
    let buffered: Buffer[] = [];
    let have = 0;
    let reported = -1;
    const report = () => {
      if (records + bad !== reported) printJson({ records, bad });
      reported = records + bad;
    };
    const timer = setInterval(report, 20);
    sock.on('data', (d: Buffer) => {
      if (skip > 0) {
        const n = Math.min(skip, d.length);
        skip -= n;
        d = d.subarray(n);
      }
      buffered.push(d);
      have += d.length;
      if (have < size) return;
      const all = Buffer.concat(buffered);
      let at = 0;
      const acks: Buffer[] = [];
      for (; at + size <= all.length; at += size) {
        const r = all.subarray(at, at + size);
        const i = r.readUInt32BE(0);
        if (i === records && r.equals(record(i, size))) {
          records++;
          if (ack) { const a = Buffer.alloc(4); a.writeUInt32BE(i); acks.push(a); }
        } else {
          bad++;
        }
      }
      buffered = [all.subarray(at)];
      have = all.length - at;
      if (acks.length) sock.write(Buffer.concat(acks));
    });
    const finish = () => { clearInterval(timer); reported = -1; report(); };
    sock.on('end', () => { finish(); sock.end(); });
    sock.on('error', () => finish());
    process.once('SIGTERM', () => { finish(); process.exit(0); });
  });
  server.listen(Number(arg('port')), () => printJson({ listening: Number(arg('port')) }));
}

async function recordClient(): Promise<void> {
  const size = Number(arg('size', '4096'));
  const count = Number(arg('records'));
  const intervalMs = Number(arg('interval-ms', '0'));
  const warmup = Number(arg('warmup-bytes', '0'));
  const remoteAcks = process.argv.includes('--remote-acks');
  const listener = await NetworkSyncListener.open({ gateways: [arg('gateway')], timeoutMs: Number(arg('timeout-ms', '30000')) });
  const sock = net.connect(Number(arg('port')), arg('to'));
  sock.setNoDelay(true);
  await new Promise<void>((resolve, reject) => { sock.once('connect', resolve); sock.once('error', reject); });
  const tracked = listener.track(sock);
  printJson({ flow: tracked.flow });
  const written: bigint[] = [];
  let failures = 0;
  let resolved = 0;
  let remote = 0;
  if (remoteAcks) {
    let pending = Buffer.alloc(0);
    sock.on('data', (d: Buffer) => {
      const t = process.hrtime.bigint();
      pending = Buffer.concat([pending, d]);
      for (; pending.length >= 4; pending = pending.subarray(4)) {
        const i = pending.readUInt32BE(0);
        remote++;
        printJson({ record: i, level: 'remote', writtenNs: String(written[i]), ackedNs: String(t) });
      }
    });
  }
  // Warm-up: open the congestion window first, unmeasured, as a long-lived mirror connection has.
  if (warmup > 0) await tracked.write(Buffer.alloc(warmup));
  const base = tracked.writtenOffset;
  const all: Promise<void>[] = [];
  for (let i = 0; i < count; i++) {
    if (intervalMs > 0 && i > 0) await new Promise((r) => setTimeout(r, intervalMs));
    written[i] = process.hrtime.bigint();
    all.push(tracked.write(record(i, size)).then(() => {
      resolved++;
      printJson({ record: i, level: 'network', writtenNs: String(written[i]), ackedNs: String(process.hrtime.bigint()) });
    }, () => { failures++; }));
  }
  await Promise.all(all);
  if (remoteAcks) {
    const until = Date.now() + 30_000;
    while (remote < count && Date.now() < until) await new Promise((r) => setTimeout(r, 5));
  }
  printJson({ done: true, records: count, resolved, failures, remote, base: Number(base), listener: listener.counters() });
  sock.end();
  await listener.close();
}

function feedbackForge(): void {
  const { encodeFeedback, FEEDBACK_PORT } = require('../feedback/format') as typeof import('../feedback/format');
  const kind = arg('kind');
  const count = Number(arg('count', '20'));
  const entry = {
    senderAddress: arg('to'), senderPort: Number(arg('sender-port')),
    receiverAddress: arg('receiver'), receiverPort: Number(arg('receiver-port')),
    isnGuessed: false, safeOffset: 4096n * 20n, sentOffset: 4096n * 20n, repairsSent: 3, repairsPerPacket: 3,
  };
  if (kind === 'beyond') { entry.safeOffset = 1n << 40n; entry.sentOffset = 1n << 40n; }
  let b = encodeFeedback({ sequence: 1, entries: [entry] });
  if (kind === 'truncated') b = b.subarray(0, 30);
  if (kind === 'bad-version') b[2] = 9;
  const s = dgram.createSocket('udp4');
  let sent = 0;
  const next = () => {
    if (sent === count) { s.close(); printJson({ sent }); return; }
    sent++;
    s.send(b, FEEDBACK_PORT, arg('to'), () => setTimeout(next, 1));
  };
  next();
}

const modes: Record<string, () => void> = {
  'feedback-forge': feedbackForge,
  'tcp-recv': tcpRecv, 'tcp-send': tcpSend, 'udp-recv': udpRecv, 'udp-send': udpSend, 'udp-blast': udpBlast,
  'record-server': recordServer, 'record-client': () => { recordClient().catch((e: Error) => { printJson({ error: e.message }); process.exitCode = 1; }); },
};
const mode = modes[process.argv[2]];
if (!mode) {
  process.stderr.write(`usage: traffic.js ${Object.keys(modes).join('|')} [options]\n`);
  process.exitCode = 2;
} else {
  mode();
}
