// The storage-side half of network-sync: a storage server opens one NetworkSyncListener, tracks
// each TCP socket it mirrors over, and gets, per write, a promise that resolves once everything
// written up to and including that write is network-safe (on the WAN with all its repairs, as
// the gateway reports from its TX completions). Offsets in feedback count bytes from the start of
// the TCP stream, which is what the tracker counts as it writes: the socket's bytes, or for a TLS
// socket made over a TcpCount (tcp-count.ts), the TCP bytes under it.
//
// Feedback is trusted only when it opens under the site's feedback key (docs/protocol.md,
// "Authentication envelope"): forged, replayed or stale datagrams are counted by verdict and
// never resolve a write. Each gateway has a replay window of its own.
import dgram from 'node:dgram';
import type net from 'node:net';
import { ConfigError, MaelstromError } from '../errors';
import { keyId, readKeyFile } from '../gateway/keys';
import { AUTH_KIND, AUTH_VERDICTS, addon } from '../native/addon';
import type { AuthVerdict, NativeAuthChannel } from '../native/addon';
import { FEEDBACK_PORT, flowId, parseFeedback } from './format';
import { TcpCount } from './tcp-count';
import type { FeedbackEntry, FeedbackParseError, FlowKey } from './format';

export type NetworkSyncErrorCode = 'MAELSTROM_NETSYNC_CLOSED' | 'MAELSTROM_NETSYNC_TIMEOUT';

export class NetworkSyncError extends MaelstromError<NetworkSyncErrorCode> {
  constructor(code: NetworkSyncErrorCode, message: string) {
    super(code, message);
    this.name = 'NetworkSyncError';
  }
}

export interface ListenerOptions {
  gateways: string[];   // feedback is accepted only from these addresses
  keyFile?: string;     // the feedback key file (maelstrom keygen --feedback): feedback must open under a key in it
  insecureNoAuth?: boolean; // no key: take unsealed feedback (gateways run with --insecure-no-auth)
  port?: number;        // default 7601
  address?: string;     // bind address, default all
  timeoutMs?: number;   // a write not network-safe after this long is rejected (default 5000)
}

export type RefusedVerdict = Exclude<AuthVerdict, 'ok'>;

export interface ListenerCounters {
  datagrams: number;
  entries: number;          // applied to a tracked flow
  foreignSource: number;    // from an address that is not a configured gateway
  unauthenticated: Record<RefusedVerdict, number>; // did not open under the feedback key, by why
  keyReloads: number;       // the key file read again for a key id it did not hold
  keyReloadFailures: number; // ...and it could not be read (the keys held stay)
  malformed: Record<FeedbackParseError, number>;
  unknownFlow: number;      // for a flow not tracked here (another socket, or one closed)
  isnGuessed: number;       // the gateway missed the SYN: its offsets cannot be mapped
  regressing: number;       // lower than an offset already reported
  beyondWritten: number;    // beyond what was written: forged or confused, ignored
}

function plainIpv4(a: string | undefined): string {
  return (a ?? '').replace(/^::ffff:/, '');
}

interface PendingWrite {
  end: bigint | undefined; // the TCP offset of the write's end; under TLS known once TLS has written it
  deadline: number;
  resolve: () => void;
  reject: (e: NetworkSyncError) => void;
}

export class TrackedSocket {
  readonly flow: FlowKey;
  private written = 0n;
  private safe = 0n;
  private readonly pending: PendingWrite[] = [];
  private timer: NodeJS.Timeout | undefined;
  private readonly tcp: TcpCount | undefined;

  constructor(
    private readonly socket: net.Socket,
    private readonly timeoutMs: number,
    private readonly onClose: (t: TrackedSocket) => void,
  ) {
    this.tcp = TcpCount.under(socket);
    const flowSocket = this.tcp?.tcp ?? socket;
    this.flow = {
      senderAddress: plainIpv4(flowSocket.localAddress),
      senderPort: flowSocket.localPort ?? 0,
      receiverAddress: plainIpv4(flowSocket.remoteAddress),
      receiverPort: flowSocket.remotePort ?? 0,
    };
    // Bytes written before tracking began (a handshake) count too: offsets start at the stream's first byte.
    this.written = this.tcp?.written ?? BigInt(socket.bytesWritten ?? 0);
    socket.once('close', () => {
      this.failAll(new NetworkSyncError('MAELSTROM_NETSYNC_CLOSED', `the socket ${flowId(this.flow)} closed before its writes were network-safe`));
      this.onClose(this);
    });
  }

  // Bytes reported network-safe so far, from the start of the stream.
  get safeOffset(): bigint {
    return this.safe;
  }

  // Bytes given to TCP so far, from the start of the stream.
  get writtenOffset(): bigint {
    return this.tcp ? this.tcp.written : this.written;
  }

  // Writes to the socket; resolves when this write and all before it are network-safe.
  // `flushed` is socket.write's callback: the kernel has taken the bytes.
  write(data: Buffer | string, flushed?: (err?: Error | null) => void): Promise<void> {
    const p: PendingWrite = { end: undefined, deadline: Date.now() + this.timeoutMs, resolve: () => undefined, reject: () => undefined };
    const done = new Promise<void>((resolve, reject) => {
      p.resolve = resolve;
      p.reject = reject;
    });
    this.pending.push(p);
    if (this.tcp) {
      // TLS calls back once the records carrying the write are in TCP: the count then covers them.
      const tcp = this.tcp;
      this.socket.write(data, (err) => {
        if (!err) p.end = tcp.written;
        this.settle();
        flushed?.(err);
      });
    } else {
      this.written += BigInt(typeof data === 'string' ? Buffer.byteLength(data) : data.length);
      p.end = this.written;
      this.socket.write(data, flushed);
    }
    this.arm();
    return done;
  }

  // Applies one feedback entry; returns which counter it belongs to, if it was not applied.
  apply(e: FeedbackEntry): 'isnGuessed' | 'regressing' | 'beyondWritten' | undefined {
    if (e.isnGuessed) return 'isnGuessed';
    if (e.safeOffset > this.writtenOffset) return 'beyondWritten';
    if (e.safeOffset < this.safe) return 'regressing';
    this.safe = e.safeOffset;
    this.settle();
    return undefined;
  }

  // Resolves the writes, in order, whose end is known and safe.
  private settle(): void {
    let resolved = false;
    while (this.pending.length && this.pending[0].end !== undefined && this.pending[0].end <= this.safe) {
      this.pending.shift()!.resolve();
      resolved = true;
    }
    if (resolved) this.arm();
  }

  private arm(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (!this.pending.length) return;
    this.timer = setTimeout(() => this.expire(), Math.max(0, this.pending[0].deadline - Date.now()));
    this.timer.unref();
  }

  private expire(): void {
    const now = Date.now();
    while (this.pending.length && this.pending[0].deadline <= now) {
      const p = this.pending.shift()!;
      p.reject(new NetworkSyncError('MAELSTROM_NETSYNC_TIMEOUT',
        `no network-sync feedback covering ${p.end === undefined ? 'a write TLS had not yet put into TCP' : `byte ${p.end}`} of ${flowId(this.flow)} within ${this.timeoutMs} ms (safe so far: ${this.safe}): is a gateway on the path and sending feedback here?`));
    }
    this.arm();
  }

  private failAll(err: NetworkSyncError): void {
    if (this.timer) clearTimeout(this.timer);
    for (const p of this.pending.splice(0)) p.reject(err);
  }
}

const KEY_RELOAD_MS = 1000;
const AUTH_MAGIC = 0x4d41;

export class NetworkSyncListener {
  private readonly flows = new Map<string, TrackedSocket>();
  private readonly gateways: Set<string>;
  private readonly channels = new Map<string, NativeAuthChannel>(); // per gateway: its replay window
  private keys: Buffer[] | undefined;
  private keyIds = new Set<string>();
  private lastReload = 0;
  private readonly counts: ListenerCounters = {
    datagrams: 0, entries: 0, foreignSource: 0,
    unauthenticated: Object.fromEntries(AUTH_VERDICTS.filter((v) => v !== 'ok').map((v) => [v, 0])) as Record<RefusedVerdict, number>,
    keyReloads: 0, keyReloadFailures: 0,
    malformed: { truncated: 0, bad_magic: 0, bad_version: 0, bad_flags: 0, bad_length: 0, bad_entry: 0 },
    unknownFlow: 0, isnGuessed: 0, regressing: 0, beyondWritten: 0,
  };

  private constructor(private readonly udp: dgram.Socket, private readonly options: ListenerOptions) {
    this.gateways = new Set(options.gateways.map(plainIpv4));
    if (options.keyFile !== undefined) this.setKeys(readKeyFile(options.keyFile, 'feedback'));
    udp.on('message', (msg, rinfo) => this.receive(msg, rinfo.address));
  }

  static async open(options: ListenerOptions): Promise<NetworkSyncListener> {
    if (!options.gateways.length) throw new ConfigError('give the gateway addresses feedback may come from');
    if (options.keyFile !== undefined && options.insecureNoAuth) throw new ConfigError('keyFile and insecureNoAuth contradict each other');
    if (options.keyFile === undefined && !options.insecureNoAuth) {
      throw new MaelstromError('MAELSTROM_ERR_KEY', 'network-sync feedback is trusted only under the site\'s feedback key: give its file (maelstrom keygen --feedback --key-file PAIR.key > FILE), '
        + 'or take unauthenticated feedback (insecure: any host on the LAN could then make writes look network-safe)');
    }
    if (options.keyFile !== undefined) readKeyFile(options.keyFile, 'feedback'); // refused before the port is taken
    const udp = dgram.createSocket('udp4');
    await new Promise<void>((resolve, reject) => {
      udp.once('error', reject);
      udp.bind(options.port ?? FEEDBACK_PORT, options.address, () => { udp.off('error', reject); resolve(); });
    });
    return new NetworkSyncListener(udp, options);
  }

  get port(): number {
    return this.udp.address().port;
  }

  track(socket: net.Socket): TrackedSocket {
    const t = new TrackedSocket(socket, this.options.timeoutMs ?? 5000, (gone) => this.flows.delete(flowId(gone.flow)));
    this.flows.set(flowId(t.flow), t);
    return t;
  }

  counters(): ListenerCounters {
    return { ...this.counts, unauthenticated: { ...this.counts.unauthenticated }, malformed: { ...this.counts.malformed } };
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.udp.close(() => resolve()));
  }

  private setKeys(keys: Buffer[]): void {
    this.keys = keys;
    this.keyIds = new Set(keys.map((k) => keyId('feedback', k)));
    for (const c of this.channels.values()) c.setKeys(keys);
  }

  // A key id not held: the key file may have gained the new key of a rotation (at most once a second).
  private reloadFor(msg: Buffer): void {
    if (msg.length < 8 || msg.readUInt16BE(0) !== AUTH_MAGIC || this.keyIds.has(msg.subarray(4, 8).toString('hex'))) return;
    const now = Date.now();
    if (now - this.lastReload < KEY_RELOAD_MS) return;
    this.lastReload = now;
    this.counts.keyReloads++;
    try {
      this.setKeys(readKeyFile(this.options.keyFile!, 'feedback'));
    } catch {
      this.counts.keyReloadFailures++;
    }
  }

  // The feedback inside a datagram from `source`, or undefined when it does not open.
  private open(msg: Buffer, source: string): Buffer | undefined {
    if (!this.keys) return msg;
    this.reloadFor(msg);
    let channel = this.channels.get(source);
    if (!channel) {
      channel = new (addon().AuthChannel)({ keys: this.keys });
      this.channels.set(source, channel);
    }
    const o = channel.open(msg);
    if (o.verdict !== 'ok') this.counts.unauthenticated[o.verdict]++;
    else if (o.kind !== AUTH_KIND.feedback) this.counts.unauthenticated.badKind++;
    else return o.inner;
    return undefined;
  }

  private receive(msg: Buffer, from: string): void {
    this.counts.datagrams++;
    const source = plainIpv4(from);
    if (!this.gateways.has(source)) {
      this.counts.foreignSource++;
      return;
    }
    const inner = this.open(msg, source);
    if (!inner) return;
    const d = parseFeedback(inner);
    if ('error' in d) {
      this.counts.malformed[d.error]++;
      return;
    }
    for (const e of d.entries) {
      const t = this.flows.get(flowId(e));
      if (!t) {
        this.counts.unknownFlow++;
        continue;
      }
      const rejected = t.apply(e);
      if (rejected) this.counts[rejected]++;
      else this.counts.entries++;
    }
  }
}
