// Option parsers shared by the CLIs: each turns text into a value or a ConfigError that names
// the option and what it accepts.
import { ConfigError } from '../errors';

export function integer(option: string) {
  return (text: string): number => {
    const v = Number(text);
    if (!/^-?\d+$/.test(text.trim()) || !Number.isSafeInteger(v)) {
      throw new ConfigError(`${option} takes a whole number, got '${text}'`);
    }
    return v;
  };
}

export function decimal(option: string) {
  return (text: string): number => {
    const v = Number(text);
    if (text.trim() === '' || !Number.isFinite(v)) throw new ConfigError(`${option} takes a number, got '${text}'`);
    return v;
  };
}

export function integerList(option: string) {
  return (text: string): number[] => {
    const parts = text.split(',').map((s) => s.trim());
    if (parts.some((p) => !/^\d+$/.test(p))) {
      throw new ConfigError(`${option} takes whole numbers separated by commas (e.g. 1,10,100), got '${text}'`);
    }
    return parts.map(Number);
  };
}

export function decimalList(option: string) {
  return (text: string): number[] => {
    const parts = text.split(',').map((s) => s.trim());
    if (parts.some((p) => p === '' || !Number.isFinite(Number(p)))) throw new ConfigError(`${option} takes numbers separated by commas (e.g. 0,0.5,1), got '${text}'`);
    return parts.map(Number);
  };
}

// A size in bytes: a whole number, optionally with K, M or G (powers of 1024), e.g. 100M.
export function byteSize(option: string) {
  return (text: string): number => {
    const m = /^(\d+)\s*([kKmMgG]?)(i?[bB])?$/.exec(text.trim());
    const scale = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[(m?.[2] ?? '').toLowerCase()];
    const v = m && scale ? Number(m[1]) * scale : NaN;
    if (!Number.isSafeInteger(v)) throw new ConfigError(`${option} takes a size in bytes, e.g. 4096, 64K or 100M; got '${text}'`);
    return v;
  };
}
