// The lab's traffic tools (traffic.ts, smfs-load.ts) take `--name value` arguments and print
// one JSON object a line; these are the two halves of that.
import { ConfigError } from '../errors';

export function arg(name: string, fallback?: string): string {
  const i = process.argv.indexOf(`--${name}`);
  if (i >= 0 && process.argv[i + 1] !== undefined) return process.argv[i + 1];
  if (fallback === undefined) throw new ConfigError(`--${name} is required`);
  return fallback;
}

export function printJson(o: object): void {
  process.stdout.write(JSON.stringify(o) + '\n');
}
