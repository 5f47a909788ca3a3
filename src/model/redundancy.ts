// The redundancy model: how likely a lost packet stays lost under layered interleaving at
// (r, c), in closed form and measured by running the real codec over a simulated channel.
//
// Closed form (conservative, iid loss p): a lost packet is rebuilt from the repair of one of
// its c layers when none of the other r - 1 packets of that bin nor the repair itself is lost.
// A layer fails with probability 1 - (1 - p)^r; the packet is given up only when all c fail,
// assuming the layers fail independently and ignoring cascades between them:
//     bound = (1 - (1 - p)^r)^c.
// Cascading recovery only helps, so the measured rate sits below this at iid loss. Under
// bursty loss the layers are no longer independent and the closed form is not a bound.
import { addon } from '../native/addon';
import type { SimulationOutput } from '../native/addon';
import { ConfigError } from '../errors';
import { codecConfig, decoderConfig, nativeEncoderConfig } from '../fec/config';
import type { CodecOptions } from '../fec/config';

function probability(name: string, p: number): number {
  if (!Number.isFinite(p) || p < 0 || p > 1) throw new ConfigError(`${name} must be a probability from 0 to 1, got ${p}`);
  return p;
}

// P(a layer's repair cannot rebuild a given lost packet) at iid loss p.
export function layerFailure(r: number, p: number): number {
  return 1 - (1 - probability('loss', p)) ** r;
}

// P(a lost packet is unrecoverable), the conservative closed form.
export function closedFormBound(r: number, c: number, p: number): number {
  return layerFailure(r, p) ** c;
}

// Risk for a packet in flight when the sending site fails now, with k of its c repairs already
// on the wire: it is lost for good if it is dropped and none of those k repairs can rebuild it.
export function inFlightRisk(r: number, k: number, p: number): number {
  if (!Number.isInteger(k) || k < 0) throw new ConfigError(`repairs sent must be a whole number, got ${k}`);
  return probability('loss', p) * layerFailure(r, p) ** k;
}

// Upper end of a 95% Wilson interval for x successes in n trials (3/n when x = 0).
export function upper95(x: number, n: number): number {
  if (n === 0) return 1;
  if (x === 0) return Math.min(1, 3 / n);
  const z = 1.96;
  const phat = x / n;
  const denom = 1 + (z * z) / n;
  const centre = phat + (z * z) / (2 * n);
  const margin = z * Math.sqrt((phat * (1 - phat)) / n + (z * z) / (4 * n * n));
  return Math.min(1, (centre + margin) / denom);
}

export interface ModelOptions extends CodecOptions {
  loss: number;
  burstLength?: number; // mean burst length in packets; 1 or less: iid
  packets?: number;
  seed?: number;
  minLength?: number;
  maxLength?: number;
}

export interface ModelReport {
  r: number;
  c: number;
  interleaves: number[];
  loss: number;
  burstLength: number;
  overhead: number; // repair packets per data packet, c / r
  bound: number;
  simulated: number; // lost data packets never rebuilt / lost data packets
  simulatedUpper95: number;
  packets: number;
  dataLost: number;
  recovered: number;
  unrecovered: number;
  repairsLost: number;
  inFlight: { repairsSent: number; risk: number }[];
  simulation: SimulationOutput;
}

export function runModel(options: ModelOptions): ModelReport {
  const config = codecConfig(options);
  const loss = probability('loss', options.loss);
  const burstLength = options.burstLength ?? 1;
  if (!Number.isFinite(burstLength) || burstLength < 1 || burstLength > 1e6) {
    throw new ConfigError(`burst length must be at least 1 packet (1 means iid loss), got ${burstLength}`);
  }
  if (burstLength > 1 && loss >= 1) throw new ConfigError('bursty loss needs a loss rate below 1');
  const packets = options.packets ?? 1_000_000;
  if (!Number.isInteger(packets) || packets < 1 || packets > 100_000_000) {
    throw new ConfigError(`packets must be an integer from 1 to 100000000, got ${packets}`);
  }
  const minLength = options.minLength ?? 64;
  const maxLength = options.maxLength ?? config.maxPacketSize;
  if (!Number.isInteger(minLength) || !Number.isInteger(maxLength) || minLength < 36 || maxLength < minLength || maxLength > config.maxPacketSize) {
    throw new ConfigError(`packet lengths must satisfy 36 <= min <= max <= max packet size (${config.maxPacketSize})`);
  }
  const { r, interleaves } = config;
  const c = interleaves.length;
  const simulation = addon().simulate({
    // The flush timeout is a latency bound, not part of the loss model: bins fill by count.
    encoder: { ...nativeEncoderConfig(config), flushTimeoutNs: 0 },
    decoder: decoderConfig({ r, interleaves, maxPacketSize: config.maxPacketSize }),
    packets,
    minLength,
    maxLength,
    loss,
    burstLength,
    loseRepairs: true,
    seed: options.seed ?? 1,
    packetIntervalNs: 1000,
  });
  if (simulation.wrongOutput || simulation.repeatedOutput) {
    throw new Error(`codec fault: ${simulation.wrongOutput} wrong and ${simulation.repeatedOutput} repeated packets rebuilt`);
  }
  const lost = simulation.dataLost;
  return {
    r,
    c,
    interleaves,
    loss,
    burstLength,
    overhead: c / r,
    bound: closedFormBound(r, c, loss),
    simulated: lost ? simulation.unrecovered / lost : 0,
    simulatedUpper95: upper95(simulation.unrecovered, lost),
    packets,
    dataLost: lost,
    recovered: simulation.recovered,
    unrecovered: simulation.unrecovered,
    repairsLost: simulation.repairsLost,
    inFlight: Array.from({ length: c + 1 }, (_, k) => ({ repairsSent: k, risk: inFlightRisk(r, k, loss) })),
    simulation,
  };
}
