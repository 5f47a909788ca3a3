#!/usr/bin/env node
// Traffic for lab experiments, run inside a host namespace (`ip netns exec ... node traffic.js`).
// Every mode prints one JSON line when done.
//   tcp-recv --port P                      accept one connection, count bytes, sha256
//   tcp-send --to IP --port P (--bytes N | --seconds S)   send pseudo-random bytes, report sha256 and time
//   udp-recv --port P --count N --idle-ms T  count distinct sequence numbers until N or T idle
//   udp-send --to IP --port P --count N --pps R --size S
//   udp-blast --to IP --via MAC --size S --seconds T   raw frames as fast as the socket goes
import { createHash } from 'node:crypto';
import dgram from 'node:dgram';
import net from 'node:net';

function arg(name: string, fallback?: string): string {
  const i = process.argv.indexOf(`--${name}`);
  if (i >= 0 && process.argv[i + 1] !== undefined) return process.argv[i + 1];
  if (fallback === undefined) throw new Error(`--${name} is required`);
  return fallback;
}

function done(o: object): void {
  process.stdout.write(JSON.stringify(o) + '\n');
}

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
      done({ bytes, sha256: hash.digest('hex'), seconds });
      sock.end();
      server.close();
    });
  });
  server.listen(port, () => done({ listening: port }));
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
  sock.on('close', () => done({ bytes: sent, sha256: hash.digest('hex'), seconds: Number(process.hrtime.bigint() - start) / 1e9 }));
  sock.on('error', (e) => { done({ error: e.message }); process.exitCode = 1; });
}

function udpRecv(): void {
  const want = Number(arg('count'));
  const idleMs = Number(arg('idle-ms', '2000'));
  const seen = new Set<number>();
  let duplicates = 0;
  const s = dgram.createSocket('udp4');
  let timer: NodeJS.Timeout | undefined;
  const finish = () => { s.close(); done({ received: seen.size, duplicates }); };
  const arm = () => { if (timer) clearTimeout(timer); timer = setTimeout(finish, idleMs); };
  s.on('message', (m: Buffer) => {
    const seq = m.readUInt32BE(0);
    if (seen.has(seq)) duplicates++;
    seen.add(seq);
    if (seen.size >= want) { if (timer) clearTimeout(timer); finish(); } else arm();
  });
  s.bind(Number(arg('port')), () => { done({ listening: Number(arg('port')) }); arm(); });
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
    else setTimeout(() => { s.close(); done({ sent: count }); }, 50);
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
  done(r);
}

const modes: Record<string, () => void> = { 'tcp-recv': tcpRecv, 'tcp-send': tcpSend, 'udp-recv': udpRecv, 'udp-send': udpSend, 'udp-blast': udpBlast };
const mode = modes[process.argv[2]];
if (!mode) {
  process.stderr.write(`usage: traffic.js ${Object.keys(modes).join('|')} [options]\n`);
  process.exitCode = 2;
} else {
  mode();
}
