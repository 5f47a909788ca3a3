// The storage-side half of network-sync: a storage server opens one NetworkSyncListener, tracks
// each TCP socket it mirrors over, and gets, per write, a promise that resolves once everything
// written up to and including that write is network-safe (on the WAN with all its repairs, as
// the gateway reports from its TX completions). Offsets in feedback count bytes from the start of
// the TCP stream, which is what the tracker counts as it writes: the socket's bytes, or for a TLS
// socket made over a TcpCount (tcp-count.ts), the TCP bytes under it.
import dgram from 'node:dgram';
import type net from 'node:net';
import { FEEDBACK_PORT, flowId, parseFeedback } from './format';
import { TcpCount } from './tcp-count';
import type { FeedbackEntry, FeedbackParseError, FlowKey } from './format';

export type NetworkSyncErrorCode = 'MAELSTROM_NETSYNC_CLOSED' | 'MAELSTROM_NETSYNC_TIMEOUT';

export class NetworkSyncError extends Error {
  readonly code: NetworkSyncErrorCode;
  constructor(code: NetworkSyncErrorCode, message: string) {
    super(message);
    this.name = 'NetworkSyncError';
    this.code = code;
  }
}

export interface ListenerOptions {
  gateways: string[];   // feedback is accepted only from these addresses
  port?: number;        // default 7601
  address?: string;     // bind address, default all
  timeoutMs?: number;   // a write not network-safe after this long is rejected (default 5000)
}

export interface ListenerCounters {
  datagrams: number;
  entries: number;          // applied to a tracked flow
  foreignSource: number;    // from an address that is not a configured gateway
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

export class NetworkSyncListener {
  private readonly flows = new Map<string, TrackedSocket>();
  private readonly gateways: Set<string>;
  private readonly counts: ListenerCounters = {
    datagrams: 0, entries: 0, foreignSource: 0,
    malformed: { truncated: 0, bad_magic: 0, bad_version: 0, bad_flags: 0, bad_length: 0, bad_entry: 0 },
    unknownFlow: 0, isnGuessed: 0, regressing: 0, beyondWritten: 0,
  };

  private constructor(private readonly udp: dgram.Socket, private readonly options: ListenerOptions) {
    this.gateways = new Set(options.gateways.map(plainIpv4));
    udp.on('message', (msg, rinfo) => this.receive(msg, rinfo.address));
  }

  static async open(options: ListenerOptions): Promise<NetworkSyncListener> {
    if (!options.gateways.length) throw new TypeError('give the gateway addresses feedback may come from');
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
    return { ...this.counts, malformed: { ...this.counts.malformed } };
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.udp.close(() => resolve()));
  }

  private receive(msg: Buffer, from: string): void {
    this.counts.datagrams++;
    if (!this.gateways.has(plainIpv4(from))) {
      this.counts.foreignSource++;
      return;
    }
    const d = parseFeedback(msg);
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
