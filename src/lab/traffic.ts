#!/usr/bin/env node
// Traffic for lab experiments, run inside a host namespace (`ip netns exec ... node traffic.js`).
// Every mode prints one JSON line when done.
//   tcp-recv --port P [--omit S --window T]   accept one connection, count bytes, sha256; with a
//       window, also the bytes that arrived from S to S + T seconds after the accept, and a line
//       {"mark":0} when the window opens, {"mark":1} when it closes
//   tcp-send --to IP --port P (--bytes N | --seconds S)   send pseudo-random bytes, report sha256 and time
//   udp-recv --port P --count N --idle-ms T  count distinct sequence numbers until N or T idle
//   udp-send --to IP --port P --count N --pps R --size S
//   udp-blast --to IP --via MAC --size S --seconds T [--xdp OBJECT --cpus 0,1]   raw frames
//       as fast as one packet socket goes, or with --xdp by XDP_TX from a thread on each CPU listed
//       (native/lab/blaster.cc)
//   record-server --port P [--size S] [--ack]   accept one connection of fixed-size records, check
//       each, report {"records","bad"} as they arrive (every 20 ms) and at the end; --ack answers
//       each intact record with its index (u32), the remote acknowledgement
//   record-client --to IP --port P --records N [--size S] --gateway GW[,GW...] [--interval-ms T]
//       [--warmup-bytes B] [--remote-acks]   write records over TCP, each with a network-sync
//       promise (src/feedback/); one line per promise resolved, in the order they resolve:
//       {"record":i,"level":"network","writtenNs":"...","ackedNs":"..."} (and "remote" with
//       --remote-acks), then {"done":...} with the listener's counters
//   record-client ... (--key-file FEEDBACK_KEY | --insecure-feedback)
//   repair-forge --to GW --key-file PAIR_KEY --from-host IP --host IP --port P [--count N]
//       repairs an attacker on the WAN path would send a gateway, of every kind (see repairForge)
//   feedback-forge --to IP --kind foreign|unsealed|wrong-key|bad-tag|truncated --sender-port P
//       --receiver IP --receiver-port P [--records N] [--key-id HEX] [--count N]   feedback covering
//       N records that a listener must ignore and count (bad-tag claims the real key's id)
import { createHash, randomBytes } from 'node:crypto';
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
    // The window: goodput once slow start is over, not averaged with it.
    const omit = Number(arg('omit', '0'));
    const windowS = Number(arg('window', '0'));
    const marks: { bytes: number; t: bigint }[] = [];
    const mark = () => {
      marks.push({ bytes, t: process.hrtime.bigint() });
      printJson({ mark: marks.length - 1 });
    };
    const timers = windowS > 0 ? [setTimeout(mark, omit * 1000), setTimeout(mark, (omit + windowS) * 1000)] : [];
    sock.on('end', () => {
      const seconds = Number(process.hrtime.bigint() - start) / 1e9;
      for (const t of timers) clearTimeout(t);
      const window = marks.length === 2 ? { windowBytes: marks[1].bytes - marks[0].bytes, windowSeconds: Number(marks[1].t - marks[0].t) / 1e9 } : {};
      printJson({ bytes, sha256: hash.digest('hex'), seconds, ...window });
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
    ...(process.argv.includes('--xdp') ? { xdpObject: arg('xdp'), cpus: arg('cpus', '0').split(',').map(Number) } : {}),
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
  const insecure = process.argv.includes('--insecure-feedback');
  const listener = await NetworkSyncListener.open({ gateways: arg('gateway').split(','), timeoutMs: Number(arg('timeout-ms', '30000')),
    keyFile: insecure ? undefined : arg('key-file'), insecureNoAuth: insecure });
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

// Feedback a listener must ignore and count: covering all `records` of a flow, as a forger on
// the LAN would send it, never opening under the site's feedback key.
function feedbackForge(): void {
  const { encodeFeedback, FEEDBACK_PORT } = require('../feedback/format') as typeof import('../feedback/format');
  const { AUTH_KIND, addon } = require('../native/addon') as typeof import('../native/addon');
  const kind = arg('kind');
  const count = Number(arg('count', '20'));
  const covered = BigInt(Number(arg('records', '20')) * 4096);
  const entry = {
    senderAddress: arg('to'), senderPort: Number(arg('sender-port')),
    receiverAddress: arg('receiver'), receiverPort: Number(arg('receiver-port')),
    isnGuessed: false, safeOffset: covered, sentOffset: covered, repairsSent: 3, repairsPerPacket: 3,
  };
  const bare = encodeFeedback({ sequence: 1, entries: [entry] });
  const forger = new (addon().AuthChannel)({ sendKey: randomBytes(32) });
  const datagram = (): Buffer => {
    switch (kind) {
      case 'foreign': case 'unsealed': return bare;
      case 'wrong-key': return forger.seal(AUTH_KIND.feedback, bare);
      case 'bad-tag': {
        // The real key's id (it is on the wire for anyone to read), a tag made without the key.
        const d = forger.seal(AUTH_KIND.feedback, bare);
        Buffer.from(arg('key-id'), 'hex').copy(d, 4);
        return d;
      }
      case 'truncated': return forger.seal(AUTH_KIND.feedback, bare).subarray(0, 30);
      default: throw new Error(`--kind is foreign, unsealed, wrong-key, bad-tag or truncated, got ${kind}`);
    }
  };
  const s = dgram.createSocket('udp4');
  let sent = 0;
  const next = () => {
    if (sent === count) { s.close(); printJson({ sent }); return; }
    sent++;
    s.send(datagram(), FEEDBACK_PORT, arg('to'), () => setTimeout(next, 1));
  };
  next();
}

// Repairs an attacker on the WAN path would send the gateway at --to (from its peer's address),
// each rebuilding an invented UDP packet from --from-host to --host:--port whose payload starts
// with its id (as udp-send's, so udp-recv counts them). N of each kind, in this order, ids from
// 0: unsealed, sealed under another key, a forged tag (the real key's id), truncated, stale (sealed
// an hour before the gateway started), genuine (under the pair's key), then the genuine
// ones sent again (replays). A plain XOR of one packet (r = 1): whatever opens, rebuilds.
const FORGED_KINDS = ['unsealed', 'wrong-key', 'bad-tag', 'truncated', 'stale', 'genuine', 'replay'] as const;

function repairForge(): void {
  const { AUTH_KIND, addon } = require('../native/addon') as typeof import('../native/addon');
  const { readKeyFile } = require('../gateway/keys') as typeof import('../gateway/keys');
  const native = addon();
  const n = Number(arg('count', '5'));
  const [master] = readKeyFile(arg('key-file'), 'gateway');
  const key = native.authKey(master, 'gateway');
  const genuine = new native.AuthChannel({ sendKey: key.key });
  const other = new native.AuthChannel({ sendKey: randomBytes(32) });
  const stale = new native.AuthChannel({ sendKey: key.key, session: 1n, counter: BigInt(Date.now()) << 22n, timeS: Math.floor(Date.now() / 1000) - 3600 });
  const encoder = new native.Encoder({ r: 1, interleaves: [1], flushTimeoutNs: 1e12, maxPacketSize: 1500 });
  const ip = (a: string) => Buffer.from(a.split('.').map(Number));
  const repairOf = (id: number): Buffer => {
    const p = Buffer.alloc(20 + 8 + 64);
    p[0] = 0x45;
    p.writeUInt16BE(p.length, 2);
    p[8] = 63;
    p[9] = 17;
    ip(arg('from-host')).copy(p, 12);
    ip(arg('host')).copy(p, 16);
    let sum = 0;
    for (let i = 0; i < 20; i += 2) sum += p.readUInt16BE(i);
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    p.writeUInt16BE(~sum & 0xffff, 10);
    p.writeUInt16BE(40000 + id, 20);
    p.writeUInt16BE(Number(arg('port')), 22);
    p.writeUInt16BE(8 + 64, 24);
    p.writeUInt32BE(id, 28); // the UDP checksum stays 0: none
    return encoder.encode([p]).repairs[0];
  };
  const sealed: Buffer[] = [];
  const datagrams: Buffer[] = [];
  FORGED_KINDS.forEach((kind, k) => {
    for (let i = 0; i < n; i++) {
      if (kind === 'replay') { datagrams.push(sealed[i]); continue; }
      const r = repairOf(k * n + i);
      if (kind === 'unsealed') datagrams.push(r);
      else if (kind === 'wrong-key') datagrams.push(other.seal(AUTH_KIND.repair, r));
      else if (kind === 'bad-tag') { const d = other.seal(AUTH_KIND.repair, r); Buffer.from(key.id, 'hex').copy(d, 4); datagrams.push(d); }
      else if (kind === 'truncated') datagrams.push(genuine.seal(AUTH_KIND.repair, r).subarray(0, 30));
      else if (kind === 'stale') datagrams.push(stale.seal(AUTH_KIND.repair, r));
      else { const d = genuine.seal(AUTH_KIND.repair, r); sealed.push(d); datagrams.push(d); }
    }
  });
  const s = dgram.createSocket('udp4');
  let sent = 0;
  const next = () => {
    if (sent === datagrams.length) { s.close(); printJson({ sent, genuine: sealed.length }); return; }
    s.send(datagrams[sent++], Number(arg('repair-port', '7600')), arg('to'), () => setTimeout(next, 2));
  };
  next();
}

const modes: Record<string, () => void> = {
  'feedback-forge': feedbackForge, 'repair-forge': repairForge,
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
