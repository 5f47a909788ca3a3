// Starts the gateway engine on a LAN and a WAN interface of this network namespace: validates
// the options, reads the host (MTUs, addresses, the peer's next hop), checks that repairs will
// fit the WAN MTU, and hands a complete configuration to the native engine.
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { ConfigError, MaelstromError } from '../errors';
import { LIMITS, codecConfig, decoderConfig, flushBudget, nativeEncoderConfig } from '../fec/config';
import type { CodecConfig, CodecOptions } from '../fec/config';
import { addon } from '../native/addon';
import { AUTH_OVERHEAD, FEEDBACK_PORT, MAX_QUEUES, RECIPE_ENTRY_BYTES, REPAIR_HEADER_BYTES, REPAIR_PORT } from '../native/constants';
import type { AuthState, EngineStats, NativeEngine } from '../native/addon';
import { bpffsMounted, interfaceInfo, mountBpffs, nextHop, rxQueues } from './host';
import { keyId, readKeyFile } from './keys';

const IP_UDP = 28;
const TCP_IP = 40;

export interface GatewayOptions extends CodecOptions {
  lan: string;
  wan: string;
  peer: string;
  remote: string[]; // IPv4 prefixes, a.b.c.d/len
  repairPort?: number;
  clampMss?: boolean; // default true
  generic?: boolean;
  forceCopy?: boolean;
  requireZeroCopy?: boolean; // refuse to run where the NIC offers only copy mode
  queues?: number[];         // LAN RX queues to bind (default all)
  cpu?: number[];            // pin engine worker w to cpu[w % length]
  rMax?: number;             // the largest r runtime tuning may set (room for its repair headers)
  decoderWindow?: number;    // packets the decoder keeps (default: twice the widest repair's span)
  reorderGraceUs?: number;   // a repair missing one packet waits this long for it (default: REORDER_GRACE_US with several WAN queues, else 0)
  mountBpffs?: boolean; // mount bpffs at /sys/fs/bpf when missing (for private mount namespaces)
  feedback?: boolean;        // network-sync feedback to LAN senders (default true)
  feedbackPort?: number;     // default 7601
  maxFlows?: number;         // TCP flows tracked at once (default 65536)
  flowIdleS?: number;        // a flow silent this long is forgotten (default 900 s)
  flushIdleUs?: number;      // the idle flush: the LAN quiet this long fires the bins network-sync waits on (default 50; 0: off)
  flushBudget?: number;      // repairs a second the idle flush may add beyond 1.1 x c/r (default FLUSH_BUDGET.perS; 0: none)
  keyFile?: string;          // the pair's master key (maelstrom keygen): repairs, reports and feedback sealed
  insecureNoAuth?: boolean;  // run without a key: anyone who can send to the repair port can inject packets
}

export { FEEDBACK_PORT, REPAIR_PORT };

// A change of code at run time (maelstrom tune, or --auto): what is not given stays.
export interface TuneRequest {
  r?: number;
  c?: number;
  interleaves?: number[];
  flushTimeoutMs?: number;
}

// One configuration epoch of the gateway's encoder, as status shows it.
export interface EpochRecord {
  epoch: number;
  r: number;
  c: number;
  interleaves: number[];
  flushTimeoutMs: number;
  at: string;                  // ISO time it was asked for
  reason: 'start' | 'tune' | 'auto';
  loss?: number;               // --auto: the loss, burst length and modelled rate it acted on
  burst?: number;
  modelled?: number;
}
export const NETSYNC_DEFAULTS = { maxFlows: 65536, flowIdleS: 900, feedbackIntervalUs: 50, flushIdleUs: 50 } as const;

export interface Prefix {
  addr: string;
  len: number;
}

export function parsePrefix(text: string): Prefix {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})(?:\/(\d{1,2}))?$/.exec(text.trim());
  const octets = m ? m.slice(1, 5).map(Number) : [];
  const len = m?.[5] === undefined ? 32 : Number(m[5]);
  if (!m || octets.some((o) => o > 255) || len > 32) {
    throw new ConfigError(`bad prefix '${text}': give an IPv4 prefix like 10.2.0.0/16`);
  }
  const value = ((octets[0] << 24) | (octets[1] << 16) | (octets[2] << 8) | octets[3]) >>> 0;
  const masked = len === 0 ? 0 : (value & (0xffffffff << (32 - len))) >>> 0;
  return { addr: [24, 16, 8, 0].map((s) => (masked >>> s) & 255).join('.'), len };
}

// Bytes a repair adds around the longest packet it covers: IP + UDP + header + r recipe entries,
// and the authentication envelope when the gateways seal.
export function repairOverhead(r: number, sealed = true): number {
  return IP_UDP + REPAIR_HEADER_BYTES + RECIPE_ENTRY_BYTES * r + (sealed ? AUTH_OVERHEAD : 0);
}

// The master key of `up`: from --key-file, or none with --insecure-no-auth; refused without
// either (secure by default) and with both.
export function gatewayKey(o: Pick<GatewayOptions, 'keyFile' | 'insecureNoAuth'>): Buffer | undefined {
  if (o.keyFile !== undefined && o.insecureNoAuth) throw new ConfigError('--key-file and --insecure-no-auth contradict each other: give one');
  if (o.keyFile !== undefined) return readKeyFile(o.keyFile, 'gateway')[0];
  if (o.insecureNoAuth) return undefined;
  throw new MaelstromError('MAELSTROM_ERR_KEY',
    'no key: the gateways authenticate their repairs, reports and feedback with a shared key. Make one with `maelstrom keygen > /etc/maelstrom/pair.key`, '
    + 'copy it to both gateways (mode 0600) and give it with --key-file; or run with --insecure-no-auth, and anyone who can send to the repair port can put packets on this LAN');
}

// The RX queues to bind on an interface with `available` of them: those asked for (LAN,
// --queues), or all. The XDP program's socket map has MAX_QUEUES slots per interface.
export function selectQueues(ifname: string, available: number, wanted?: number[]): number[] {
  const range = available === 1 ? 'queue 0 only' : `queues 0 to ${available - 1}`;
  if (wanted === undefined) {
    if (available > MAX_QUEUES) {
      throw new ConfigError(`${ifname} has ${available} RX queues and the gateway binds at most ${MAX_QUEUES}: choose them with --queues (LAN), or lower the count (ethtool -L ${ifname} combined ${MAX_QUEUES})`);
    }
    return [...Array(available).keys()];
  }
  if (wanted.length === 0) throw new ConfigError('--queues: give at least one RX queue');
  const bad = wanted.filter((q) => !Number.isInteger(q) || q < 0 || q >= Math.min(available, MAX_QUEUES));
  if (bad.length) throw new ConfigError(`--queues ${wanted.join(',')}: ${ifname} has ${range}${available > MAX_QUEUES ? ` (the gateway binds 0 to ${MAX_QUEUES - 1})` : ''}`);
  const queues = [...new Set(wanted)].sort((x, y) => x - y);
  if (queues.length !== wanted.length) throw new ConfigError(`--queues ${wanted.join(',')} names a queue twice`);
  return queues;
}

// A gateway program already on an interface belongs to another gateway, or to one that crashed.
function refuseIfAttached(interfaces: string[], lan: string, wan: string): void {
  for (const i of interfaces) {
    const ours = addon().xdpAttached(i).programs.filter((p) => p.name === 'gateway');
    if (ours.length) {
      throw new MaelstromError('MAELSTROM_ERR_ALREADY_ATTACHED',
        `${i} already has a gateway XDP program (id ${ours.map((p) => p.id).join(', ')}): another gateway runs on it (stop it: maelstrom down --lan ${lan}), or one crashed (maelstrom down --lan ${lan} --wan ${wan} detaches what it left)`);
    }
  }
}

// The engine's start failure as the error an operator can act on.
function engineError(cause: Error & { errno?: number; step?: string }, xdpMode: string): MaelstromError {
  if (cause.step === 'xdp' && cause.errno === -os.constants.errno.EOPNOTSUPP && xdpMode === 'native') {
    return new MaelstromError('MAELSTROM_ERR_NO_XDP', `${cause.message}: the driver has no native XDP; run with --xdp-mode skb (generic XDP, slower)`, { cause });
  }
  if (cause.step === 'zero-copy') {
    return new MaelstromError('MAELSTROM_ERR_NO_ZERO_COPY', `${cause.message} (its driver has no AF_XDP zero-copy; veth never has): run without --zero-copy`, { cause });
  }
  return new MaelstromError('MAELSTROM_ERR_ATTACH', `cannot start the gateway: ${cause.message}`, { cause });
}

export interface StartedGateway {
  engine: NativeEngine;
  info: {
    zeroCopy: boolean; xdpMode: string; queues: number[]; wanQueues: number[]; mssClamp: number; maxProtectedPacket: number;
    r: number; c: number; interleaves: number[]; flushTimeoutMs: number;
    feedback: { from: string; port: number } | null;
    cpu: number[] | null;
    workers: number;           // engine threads: one per queue pair
    epoch: number;
    rMax: number;
    decoderWindow: number;
    decoderGraceUs: number;    // a repair missing one packet waits this long (several WAN queues)
    insecure: boolean;         // --insecure-no-auth: nothing sealed, nothing verified
  };
  epochs: EpochRecord[];
  // Applies a new code at run time (an epoch change); throws ConfigError when it cannot be.
  retune(change: TuneRequest, reason: 'tune' | 'auto', detail?: Pick<EpochRecord, 'loss' | 'burst' | 'modelled'>): EpochRecord;
  stats(): EngineStats;
  // The keys sealed and accepted with (null with --insecure-no-auth).
  auth(): AuthState | null;
  // A new master key from a key file (maelstrom rekey): its id.
  rekey(keyFile: string): string;
  stop(): void;
}

// The decoder's default grace on a WAN of several queues (decision 48).
export const REORDER_GRACE_US = 1000;

export async function startGateway(o: GatewayOptions): Promise<StartedGateway> {
  requireRoot();
  if (o.forceCopy && o.requireZeroCopy) throw new ConfigError('--copy and --zero-copy ask for opposite AF_XDP modes: give one');
  const codec = codecConfig(o);
  const masterKey = gatewayKey(o);
  const remote = o.remote.map(parsePrefix);
  if (remote.length === 0) throw new ConfigError('give at least one remote-site prefix (--remote 10.2.0.0/16)');
  if (!net.isIPv4(o.peer)) throw new ConfigError(`--peer ${o.peer} is not an IPv4 address: give the peer gateway's WAN address`);
  const lan = interfaceInfo(o.lan);
  const wan = interfaceInfo(o.wan);
  for (const i of [lan, wan]) {
    if (!i.up) throw new MaelstromError('MAELSTROM_ERR_INTERFACE', `${i.name} is down: 'ip link set ${i.name} up'`);
  }
  if (wan.ipv4.length === 0) throw new MaelstromError('MAELSTROM_ERR_INTERFACE', `${wan.name} has no IPv4 address to send repairs from`);
  const rMax = o.rMax ?? codec.r;
  if (!Number.isInteger(rMax) || rMax < codec.r || rMax > LIMITS.r.max) throw new ConfigError(`--r-max must be an integer from r (${codec.r}) to ${LIMITS.r.max}, got ${rMax}`);
  // Room for the repair headers of the largest r tuning may set, so every packet fits in a repair.
  const overhead = repairOverhead(rMax, masterKey !== undefined);
  const maxProtected = wan.mtu - overhead;
  const clamp = o.clampMss ?? true;
  if (maxProtected < 576 - TCP_IP) {
    throw new MaelstromError('MAELSTROM_ERR_MTU', `WAN MTU ${wan.mtu} leaves no room for repairs (${overhead} bytes each at r=${rMax}): raise the WAN MTU or lower r${o.rMax ? ' or --r-max' : ''}`);
  }
  if (!clamp && lan.mtu > maxProtected) {
    throw new MaelstromError('MAELSTROM_ERR_MTU',
      `WAN MTU ${wan.mtu} is too small for LAN MTU ${lan.mtu} plus ${overhead} bytes of repair headers: raise the WAN MTU to ${lan.mtu + overhead} or keep TCP MSS clamping on`);
  }
  if (!bpffsMounted()) {
    if (!o.mountBpffs) {
      throw new MaelstromError('MAELSTROM_ERR_BPFFS',
        'bpffs is not mounted at /sys/fs/bpf: mount -t bpf bpf /sys/fs/bpf (or --mount-bpffs where this process has a mount namespace of its own, as under ip netns exec)');
    }
    mountBpffs();
  }
  const maxFlows = o.maxFlows ?? NETSYNC_DEFAULTS.maxFlows;
  if (!Number.isInteger(maxFlows) || maxFlows < 1 || maxFlows > 1 << 22) throw new ConfigError(`max flows must be an integer from 1 to ${1 << 22}, got ${maxFlows}`);
  const flowIdleS = o.flowIdleS ?? NETSYNC_DEFAULTS.flowIdleS;
  if (!Number.isFinite(flowIdleS) || flowIdleS <= 0) throw new ConfigError(`the flow idle timeout must be a positive number of seconds, got ${flowIdleS}`);
  const flushIdleUs = o.flushIdleUs ?? NETSYNC_DEFAULTS.flushIdleUs;
  if (!Number.isFinite(flushIdleUs) || flushIdleUs < 0 || flushIdleUs > 1_000_000) throw new ConfigError(`the idle flush must be from 0 (off) to 1000000 microseconds, got ${flushIdleUs}`);
  const feedbackPort = o.feedbackPort ?? FEEDBACK_PORT;
  if (!Number.isInteger(feedbackPort) || feedbackPort < 1 || feedbackPort > 65535) throw new ConfigError(`the feedback port must be from 1 to 65535, got ${feedbackPort}`);
  const feedback = (o.feedback ?? true) ? lan.ipv4[0] : undefined;
  if ((o.feedback ?? true) && !feedback) {
    throw new MaelstromError('MAELSTROM_ERR_INTERFACE', `${lan.name} has no IPv4 address to send network-sync feedback from: give it one, or run with --no-feedback`);
  }
  const cpus = os.cpus().length;
  if (o.cpu !== undefined) {
    if (o.cpu.length === 0) throw new ConfigError('--cpu: give at least one CPU');
    const bad = o.cpu.filter((c) => !Number.isInteger(c) || c < 0 || c >= cpus);
    if (bad.length) throw new ConfigError(`--cpu must list CPU numbers from 0 to ${cpus - 1}, got ${bad.join(',')}`);
  }
  const queues = selectQueues(lan.name, rxQueues(lan.name), o.queues);
  const wanQueues = selectQueues(wan.name, rxQueues(wan.name));
  refuseIfAttached([lan.name, wan.name], lan.name, wan.name);
  const hop = await nextHop(o.peer, wan.name);
  const maxPacket = Math.min(maxProtected, 9216);
  const mssClamp = clamp ? maxProtected - TCP_IP : 0;
  // With several WAN queues, data and repairs are handled by different threads and a repair can
  // overtake the packets it covers: its rebuild waits a little for them (decision 48).
  const graceUs = o.reorderGraceUs ?? (wanQueues.length > 1 ? REORDER_GRACE_US : 0);
  const decoder = decoderConfig({ r: codec.r, interleaves: codec.interleaves, maxPacketSize: Math.min(9216, Math.max(lan.mtu, wan.mtu)), window: o.decoderWindow, graceUs });
  const native = addon();
  let engine: NativeEngine;
  try {
    engine = new native.Engine({
      lanIf: lan.name,
      wanIf: wan.name,
      bpfObject: path.resolve(__dirname, '..', '..', '..', 'out', 'bpf', 'gateway.bpf.o'),
      wanAddr: wan.ipv4[0],
      peerAddr: o.peer,
      wanMac: wan.mac,
      peerMac: hop.mac,
      repairPort: o.repairPort ?? REPAIR_PORT,
      remote,
      encoder: { ...nativeEncoderConfig({ ...codec, maxPacketSize: maxPacket }), ...flushBudget({ budgetPerS: o.flushBudget }) },
      decoder,
      mssClamp,
      queues,
      wanQueues,
      frameSize: Math.max(lan.mtu, wan.mtu) + 14 <= 2048 ? 2048 : 4096,
      generic: o.generic ?? false,
      forceCopy: o.forceCopy ?? false,
      requireZeroCopy: o.requireZeroCopy ?? false,
      cpus: o.cpu ?? [],
      lanAddr: feedback,
      feedbackPort,
      flushIdleNs: Math.round(flushIdleUs * 1000),
      netsync: { maxFlows, idleTimeoutNs: flowIdleS * 1e9, feedbackIntervalNs: NETSYNC_DEFAULTS.feedbackIntervalUs * 1000 },
      masterKey,
    });
  } catch (cause) {
    throw engineError(cause as Error, o.generic ? 'skb' : 'native');
  }
  const info = engine.info();
  const gatewayInfo: StartedGateway['info'] = {
    zeroCopy: info.zeroCopy, xdpMode: info.xdpMode, queues, wanQueues, mssClamp, maxProtectedPacket: maxPacket,
    r: codec.r, c: codec.interleaves.length, interleaves: codec.interleaves, flushTimeoutMs: codec.flushTimeoutMs,
    feedback: feedback ? { from: feedback, port: feedbackPort } : null,
    cpu: o.cpu ?? null,
    workers: info.workers,
    epoch: info.epoch, rMax, decoderWindow: decoder.window, decoderGraceUs: graceUs,
    insecure: masterKey === undefined,
  };
  const epochs: EpochRecord[] = [{
    epoch: info.epoch, r: codec.r, c: codec.interleaves.length, interleaves: codec.interleaves,
    flushTimeoutMs: codec.flushTimeoutMs, at: new Date().toISOString(), reason: 'start',
  }];
  const retune: StartedGateway['retune'] = (change, reason, detail) => {
    const code = tunedCode(gatewayInfo, change, info.trackerRing, engine.stats().peer?.window);
    const epoch = engine.retune(nativeEncoderConfig({ ...code, maxPacketSize: maxPacket }));
    Object.assign(gatewayInfo, { r: code.r, c: code.interleaves.length, interleaves: code.interleaves, flushTimeoutMs: code.flushTimeoutMs, epoch });
    const record: EpochRecord = { epoch, r: code.r, c: code.interleaves.length, interleaves: code.interleaves, flushTimeoutMs: code.flushTimeoutMs, at: new Date().toISOString(), reason, ...detail };
    // Two requests before the engine applied the first share its epoch: the later one stands.
    if (epochs[epochs.length - 1].epoch === epoch) epochs.pop();
    epochs.push(record);
    return record;
  };
  return {
    engine,
    info: gatewayInfo,
    epochs,
    retune,
    stats: () => engine.stats(),
    auth: () => engine.auth(),
    rekey: (keyFile) => {
      if (!masterKey) throw new ConfigError('this gateway runs with --insecure-no-auth: restart it with --key-file to authenticate');
      const [key] = readKeyFile(keyFile, 'gateway');
      engine.rekey(key);
      return keyId('gateway', key);
    },
    stop: () => engine.stop(),
  };
}

// The code a tune request makes of the current one, checked against what the running gateway
// can carry: r up to --r-max (room in the WAN MTU), the flow tracker's ring, and the window of
// the peer's decoder when a receiver report has told it.
export function tunedCode(current: { r: number; interleaves: number[]; flushTimeoutMs: number; rMax: number; maxProtectedPacket: number; insecure?: boolean },
  change: TuneRequest, trackerRing: number, peerWindow?: number): CodecConfig {
  const sameLayers = change.c === undefined || change.c === current.interleaves.length;
  const code = codecConfig({
    r: change.r ?? current.r,
    c: change.c,
    interleaves: change.interleaves ?? (sameLayers ? current.interleaves : undefined),
    flushTimeoutMs: change.flushTimeoutMs ?? current.flushTimeoutMs,
    maxPacketSize: current.maxProtectedPacket,
  });
  if (code.r > current.rMax) {
    throw new ConfigError(`r ${code.r} needs ${repairOverhead(code.r, !current.insecure)} bytes of repair headers, more than this gateway left room for (r up to ${current.rMax}): start it with --r-max ${code.r}`);
  }
  const span = code.r * Math.max(...code.interleaves);
  if (8 * span > trackerRing) {
    throw new ConfigError(`(r=${code.r}, interleaves ${code.interleaves.join(',')}) spans ${span} packets, more than the flow tracker's ring of ${trackerRing} records keeps (${trackerRing / 8}): choose smaller interleaves`);
  }
  if (peerWindow !== undefined && span > peerWindow) {
    throw new ConfigError(`(r=${code.r}, interleaves ${code.interleaves.join(',')}) spans ${span} packets, but the peer gateway's decoder keeps ${peerWindow}: start the peer with --decoder-window ${2 * span}, or choose smaller interleaves`);
  }
  return code;
}

export function requireRoot(): void {
  if (process.getuid?.() !== 0) throw new MaelstromError('MAELSTROM_ERR_NOT_ROOT', 'the gateway needs root (CAP_NET_ADMIN and CAP_BPF): run it with sudo');
}

// Detaches gateway programs left behind on the interfaces (after a crash).
export function detachGateway(interfaces: string[]): number {
  for (const i of interfaces) interfaceInfo(i); // a missing interface is named before anything is detached
  let n = 0;
  for (const i of interfaces) n += addon().detachXdp(i, 'gateway');
  return n;
}
