// Codec throughput on one core at (r, c): encode (hash + c XORs + repair serialisation), the same
// with every repair sealed (GMAC, as the gateway sends it), decode at a given loss, and two
// yardsticks measured in the same run on the same packets: memcpy, and ISA-L's Reed-Solomon
// encoder RS(r, c) (the same overhead, c repairs per r packets; maelstrom_yardstick.node). Prints
// figures; never passes or fails on them.
import fs from 'node:fs';
import path from 'node:path';
import { addon } from '../src/native/addon';
import { codecConfig, nativeEncoderConfig } from '../src/fec/config';
import type { CodecOptions } from '../src/fec/config';
import { ConfigError } from '../src/errors';

export interface CodecBenchOptions extends CodecOptions {
  packetLength?: number;
  poolPackets?: number;
  loss?: number;
  seconds?: number;
}

// The report `bench codec --json` prints (keys as documented in docs/cli.md).
export interface CodecBenchReport {
  r: number;
  c: number;
  interleaves: number[];
  packet_length: number;
  loss: number;
  encode_vs_memcpy: number;
  sealed_vs_encode: number;  // encode with sealing over encode without: 1 - the MAC's share
  decode_vs_memcpy: number;
  encode_Gbps: number;
  encode_GBps: number;
  encode_sealed_GBps: number;
  decode_GBps: number;
  memcpy_GBps: number;
  encode_packets: number;
  decode_packets: number;
  decode_lost: number;
  decode_recovered: number;
  xor_impl: string;
  isal_rs_GBps: number | null;     // ISA-L ec_encode_data RS(r, c), data bytes in; null when not built
  encode_vs_isal: number | null;
  isal_missing?: string;           // why isal_rs_GBps is null
}

interface Yardstick {
  isalEncode(o: { packetLength: number; poolPackets: number; k: number; m: number; minSeconds: number }): { GBps: number; groups: number; impl: string };
}

// dist/bench/codec.js -> <root>/build/Release/maelstrom_yardstick.node, built beside the addon
// (libisal-dev, from make deps). Why it is missing, when it is.
const yardstickPath = path.resolve(__dirname, '..', '..', 'build', 'Release', 'maelstrom_yardstick.node');
function yardstick(): Yardstick | string {
  if (!fs.existsSync(yardstickPath)) return `${yardstickPath} not built (make build, after make deps for libisal-dev)`;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return require(yardstickPath) as Yardstick;
  } catch (err) {
    return `${yardstickPath} does not load: ${(err as Error).message}`;
  }
}

export function runCodecBench(options: CodecBenchOptions = {}): CodecBenchReport {
  const config = codecConfig(options);
  const packetLength = options.packetLength ?? 1500;
  const loss = options.loss ?? 0.01;
  const poolPackets = options.poolPackets ?? 65536;
  const seconds = options.seconds ?? 0.5;
  if (!Number.isInteger(packetLength) || packetLength < 36 || packetLength > config.maxPacketSize) {
    throw new ConfigError(`packet length must be from 36 to the max packet size (${config.maxPacketSize}), got ${packetLength}`);
  }
  if (!(loss >= 0 && loss < 1)) throw new ConfigError(`loss must be from 0 to below 1, got ${loss}`);
  if (!Number.isInteger(poolPackets) || poolPackets < 1 || poolPackets > 10_000_000) {
    throw new ConfigError(`pool must be from 1 to 10000000 packets, got ${poolPackets}`);
  }
  if (!(seconds > 0 && seconds <= 600)) throw new ConfigError(`seconds must be above 0 and at most 600, got ${seconds}`);
  // ISA-L before and after the codec, keeping its best: as the codec keeps its own best of two.
  const isal = yardstick();
  const isalRun = () => typeof isal === 'string' ? null : isal.isalEncode({ packetLength, poolPackets, k: config.r, m: config.interleaves.length, minSeconds: seconds }).GBps;
  const isalBefore = isalRun();
  const out = addon().benchCodec({
    encoder: { ...nativeEncoderConfig(config), flushTimeoutNs: 0 },
    packetLength,
    poolPackets,
    loss,
    minSeconds: seconds,
  });
  const isalAfter = isalRun();
  const isalGBps = isalBefore === null || isalAfter === null ? null : Math.max(isalBefore, isalAfter);
  return {
    r: config.r,
    c: config.interleaves.length,
    interleaves: config.interleaves,
    packet_length: packetLength,
    loss,
    encode_GBps: out.encodeGBps,
    encode_sealed_GBps: out.encodeSealedGBps,
    decode_GBps: out.decodeGBps,
    memcpy_GBps: out.memcpyGBps,
    encode_packets: out.encodePackets,
    decode_packets: out.decodePackets,
    decode_lost: out.decodeLost,
    decode_recovered: out.decodeRecovered,
    xor_impl: out.xorImpl,
    encode_vs_memcpy: out.encodeGBps / out.memcpyGBps,
    sealed_vs_encode: out.encodeSealedGBps / out.encodeGBps,
    decode_vs_memcpy: out.decodeGBps / out.memcpyGBps,
    encode_Gbps: out.encodeGBps * 8,
    isal_rs_GBps: isalGBps,
    encode_vs_isal: isalGBps === null ? null : out.encodeGBps / isalGBps,
    ...(typeof isal === 'string' ? { isal_missing: isal } : {}),
  };
}

export function formatCodecBench(b: CodecBenchReport): string {
  const f = (x: number) => x.toFixed(2);
  return [
    `codec (${b.r},${b.c}) interleaves ${b.interleaves.join(',')}, ${b.packet_length}-byte packets, one core, xor ${b.xor_impl}`,
    `  encode  ${f(b.encode_GBps)} GB/s  (${f(b.encode_Gbps)} Gbit/s, ${f(b.encode_vs_memcpy)} x memcpy)`,
    `  sealed  ${f(b.encode_sealed_GBps)} GB/s  (${f(b.sealed_vs_encode)} x encode: every repair's MAC costs ${((1 - b.sealed_vs_encode) * 100).toFixed(0)}% of it; target at most 15%)`,
    `  decode  ${f(b.decode_GBps)} GB/s  (${f(b.decode_vs_memcpy)} x memcpy) at ${(b.loss * 100).toFixed(2)}% loss: ${b.decode_recovered}/${b.decode_lost} lost packets rebuilt`,
    `  memcpy  ${f(b.memcpy_GBps)} GB/s  (same packet stream, same run)`,
    b.isal_rs_GBps === null
      ? `  ISA-L   not measured: ${b.isal_missing}`
      : `  ISA-L   ${f(b.isal_rs_GBps)} GB/s  RS(${b.r},${b.c}) ec_encode_data, same packets, same run: encode is ${f(b.encode_vs_isal!)} x it`,
    `  targets: encode >= 5 GB/s and >= 0.4 x memcpy (aim 0.7 x); encode >= 1.0 x ISA-L`,
  ].join('\n');
}
