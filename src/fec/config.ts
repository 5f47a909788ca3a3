// Codec parameters: defaults, limits and validation. The native codec trusts what passes here.
import { ConfigError } from '../errors';
import type { NativeDecoderConfig, NativeEncoderConfig } from '../native/addon';

export const LIMITS = {
  r: { min: 1, max: 255 },            // recipe count is one byte on the wire
  layers: { min: 1, max: 16 },
  interleave: { min: 1, max: 65535 }, // interleave and bin are two bytes on the wire
  maxPacketSize: { min: 64, max: 9216 },
  flushTimeoutMs: { min: 0, max: 10_000 },
  window: { max: 1 << 20 },
  pending: { min: 1, max: 65536 },
  graceUs: { min: 0, max: 100_000 },
} as const;

export const DEFAULTS = {
  r: 8,
  interleaves: [1, 10, 100],
  flushTimeoutMs: 10,  // x the layer's interleave: bins fill first at any rate above r / 10 ms
  maxPacketSize: 1500,
  pending: 1024,
} as const;

export interface CodecConfig {
  r: number;
  interleaves: number[]; // c = interleaves.length
  flushTimeoutMs: number;
  maxPacketSize: number;
}

export interface CodecOptions {
  r?: number;
  c?: number;
  interleaves?: number[];
  flushTimeoutMs?: number;
  maxPacketSize?: number;
}

export interface DecoderOptions {
  r?: number;
  interleaves?: number[];
  maxPacketSize?: number;
  window?: number;
  pending?: number;
  seen?: number;
  graceUs?: number;  // a repair missing one packet waits this long before rebuilding (default 0)
}

function integerIn(name: string, value: number, min: number, max: number): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new ConfigError(`${name} must be an integer from ${min} to ${max}, got ${value}`);
  }
  return value;
}

function numberIn(name: string, value: number, min: number, max: number): number {
  if (!Number.isFinite(value) || value < min || value > max) {
    throw new ConfigError(`${name} must be a number from ${min} to ${max}, got ${value}`);
  }
  return value;
}

// Interleaves 1, 10, 100, ... for c layers when only c is given (the paper's (8,3) uses 1,10,100).
export function defaultInterleaves(c: number): number[] {
  return Array.from({ length: c }, (_, k) => 10 ** k);
}

export function resolveInterleaves(c: number | undefined, interleaves: number[] | undefined): number[] {
  if (c !== undefined) integerIn('c', c, LIMITS.layers.min, LIMITS.layers.max);
  const list = interleaves ?? (c !== undefined ? defaultInterleaves(c) : [...DEFAULTS.interleaves]);
  if (list.length < LIMITS.layers.min || list.length > LIMITS.layers.max) {
    throw new ConfigError(`give ${LIMITS.layers.min} to ${LIMITS.layers.max} interleaves (one per layer), got ${list.length}`);
  }
  list.forEach((i, k) => integerIn(`interleave ${k + 1}`, i, LIMITS.interleave.min, LIMITS.interleave.max));
  if (new Set(list).size !== list.length) {
    throw new ConfigError(`interleaves must differ: two layers with interleave ${list.find((i, k) => list.indexOf(i) !== k)} send the same repairs twice`);
  }
  if (c !== undefined && c !== list.length) {
    throw new ConfigError(`c is the number of layers: --c ${c} needs ${c} interleaves, got ${list.length} (${list.join(',')})`);
  }
  return list;
}

export function codecConfig(options: CodecOptions = {}): CodecConfig {
  const r = integerIn('r', options.r ?? DEFAULTS.r, LIMITS.r.min, LIMITS.r.max);
  const interleaves = resolveInterleaves(options.c, options.interleaves);
  const flushTimeoutMs = numberIn('flush timeout (ms)', options.flushTimeoutMs ?? DEFAULTS.flushTimeoutMs,
    LIMITS.flushTimeoutMs.min, LIMITS.flushTimeoutMs.max);
  const maxPacketSize = integerIn('max packet size', options.maxPacketSize ?? DEFAULTS.maxPacketSize,
    LIMITS.maxPacketSize.min, LIMITS.maxPacketSize.max);
  return { r, interleaves, flushTimeoutMs, maxPacketSize };
}

export function nativeEncoderConfig(config: CodecConfig, epoch = 0): NativeEncoderConfig {
  return {
    r: config.r,
    interleaves: config.interleaves,
    flushTimeoutNs: Math.round(config.flushTimeoutMs * 1e6),
    maxPacketSize: config.maxPacketSize,
    epoch,
  };
}

// The idle flush's budget (native/fec/encoder.h, docs/decisions.md 96): bins fired early for
// network-sync may bring the repairs to budgetRatio x c / r per data packet plus budgetPerS a
// second. The floor answers sparse writes at once; 0 holds the overhead to the ratio.
export const FLUSH_BUDGET = { ratio: 1.1, perS: 2000, maxPerS: 10_000_000 } as const;

export function flushBudget(o: { budgetPerS?: number; budgetRatio?: number }): { budgetPerS: number; budgetRatio: number } {
  return {
    budgetPerS: numberIn('the flush budget (repairs a second)', o.budgetPerS ?? FLUSH_BUDGET.perS, 0, FLUSH_BUDGET.maxPerS),
    budgetRatio: numberIn('the flush budget ratio (x c/r)', o.budgetRatio ?? FLUSH_BUDGET.ratio, 1, 1000),
  };
}

// A repair of the widest layer spans r * max(I) packets; the window holds twice that so a
// repair's packets are all still there when it arrives, with room for reordering and for
// pending repairs to be peeled by later layers.
export function defaultWindow(r: number, interleaves: number[]): number {
  return Math.max(64, 2 * r * Math.max(...interleaves));
}

export function decoderConfig(options: DecoderOptions = {}): NativeDecoderConfig {
  const r = integerIn('r', options.r ?? DEFAULTS.r, LIMITS.r.min, LIMITS.r.max);
  const interleaves = resolveInterleaves(undefined, options.interleaves);
  const maxPacketSize = integerIn('max packet size', options.maxPacketSize ?? DEFAULTS.maxPacketSize,
    LIMITS.maxPacketSize.min, LIMITS.maxPacketSize.max);
  const span = r * Math.max(...interleaves);
  const window = integerIn('window', options.window ?? defaultWindow(r, interleaves), span, LIMITS.window.max);
  const pending = integerIn('pending repairs', options.pending ?? DEFAULTS.pending, LIMITS.pending.min, LIMITS.pending.max);
  const seen = integerIn('seen', options.seen ?? 4 * window, window, 4 * LIMITS.window.max);
  const graceUs = options.graceUs ?? 0;
  if (!Number.isFinite(graceUs) || graceUs < LIMITS.graceUs.min || graceUs > LIMITS.graceUs.max) {
    throw new ConfigError(`the reorder grace (a repair missing one packet waits for it) must be ${LIMITS.graceUs.min} to ${LIMITS.graceUs.max} us, got ${graceUs}`);
  }
  return { maxPacketSize, window, pending, seen, graceUs };
}
