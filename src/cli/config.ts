// `--config FILE` for a command: a JSON object whose keys are the command's long option names
// without the dashes ("flush-timeout": 1; "mss-clamp": false for --no-mss-clamp). Values given
// on the command line win over the file. Required options may come from either: commander checks
// its mandatory options before any hook runs, so this module takes that check over.
import fs from 'node:fs';
import type { Command, Option } from 'commander';
import { InvalidArgumentError } from 'commander';
import { ConfigError } from '../errors';

const CONFIG_KEY = 'config';

// The config key of an option: its long name without the dashes, and without "no-" for a
// negated flag (whose key then takes false).
export function configKey(option: Option): string {
  const long = option.long ?? option.short ?? '';
  return long.replace(/^--?/, '').replace(option.negate ? /^no-/ : /^$/, '');
}

// Every option the file may set, by key.
export function configOptions(command: Command): Map<string, Option> {
  const keys = new Map<string, Option>();
  for (const option of command.options) {
    const key = configKey(option);
    if (key !== CONFIG_KEY && !keys.has(key)) keys.set(key, option);
  }
  return keys;
}

export function readConfigFile(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read the config file ${file}: ${(err as Error).message}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`${file} is not valid JSON: ${(err as Error).message}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ConfigError(`${file} must hold one JSON object of options, like {"lan": "eth1", "r": 8}`);
  }
  return value as Record<string, unknown>;
}

// Optimal string alignment distance (Levenshtein with adjacent swaps), for "did you mean".
function distance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (__, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.length][b.length];
}

export function nearestKey(key: string, keys: Iterable<string>): string | undefined {
  const plain = key.toLowerCase().replace(/[_\s]/g, '-').replace(/([a-z])([A-Z])/g, '$1-$2');
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const k of keys) {
    const d = Math.min(distance(key, k), distance(plain, k));
    if (d < bestDistance) [best, bestDistance] = [k, d];
  }
  const near = bestDistance <= Math.max(1, Math.floor(Math.max(key.length, (best ?? '').length) / 3)) && bestDistance < (best ?? '').length;
  return near ? best : undefined;
}

function unknownKey(file: string, key: string, options: Map<string, Option>): ConfigError {
  if (key === CONFIG_KEY) return new ConfigError(`${file}: "${key}": a config file cannot name another one`);
  const negated = key.startsWith('no-') ? options.get(key.slice(3)) : undefined;
  if (negated?.negate) return new ConfigError(`${file}: unknown key "${key}": write "${key.slice(3)}": false`);
  const near = nearestKey(key, options.keys());
  return new ConfigError(`${file}: unknown key "${key}"${near ? ` (did you mean "${near}"?)` : ''}; the keys are the long options of --help without the dashes`);
}

// The option's value from the file's value: booleans for flags, and for options that take a
// value the text the command line would carry (numbers as written, lists joined by commas),
// through the option's own parser.
function optionValue(file: string, key: string, option: Option, value: unknown): unknown {
  const where = `${file}: "${key}"`;
  if (!option.required && !option.optional) {
    if (typeof value !== 'boolean') throw new ConfigError(`${where} is true or false, got ${JSON.stringify(value)}`);
    if (option.negate) return value;
    return value ? option.presetArg ?? true : undefined;
  }
  const scalar = (v: unknown) => typeof v === 'string' || (typeof v === 'number' && Number.isFinite(v));
  const ok = scalar(value) || (Array.isArray(value) && value.length > 0 && value.every(scalar));
  if (!ok) throw new ConfigError(`${where} takes a string, a number or a list of them (${option.flags}), got ${JSON.stringify(value)}`);
  const text = Array.isArray(value) ? value.join(',') : String(value);
  if (!option.parseArg) return text;
  try {
    return option.parseArg(text, option.defaultValue);
  } catch (err) {
    if (err instanceof ConfigError || err instanceof InvalidArgumentError) throw new ConfigError(`${where}: ${err.message}`);
    throw err;
  }
}

// Sets the command's options from the file, except those given on the command line or in the
// environment. Every key is checked, overridden or not.
export function applyConfigFile(command: Command, file: string): void {
  const options = configOptions(command);
  const settings: [Option, unknown][] = [];
  for (const [key, value] of Object.entries(readConfigFile(file))) {
    const option = options.get(key);
    if (!option) throw unknownKey(file, key, options);
    settings.push([option, optionValue(file, key, option, value)]);
  }
  for (const [option, value] of settings) {
    const name = option.attributeName();
    const source = command.getOptionValueSource(name);
    if (value !== undefined && (source === undefined || source === 'default' || source === 'implied')) {
      command.setOptionValueWithSource(name, value, 'config');
    }
  }
}

// Adds --config FILE to a command whose options are all defined. Its mandatory options become
// optional to commander and are checked here once the file is read.
export function withConfigFile(command: Command): Command {
  const mandatory = command.options.filter((o) => o.mandatory);
  for (const option of mandatory) option.makeOptionMandatory(false);
  return command
    .option(`--${CONFIG_KEY} <file>`, 'read options from a JSON file (keys: the long options without dashes); the command line wins')
    .hook('preAction', (cmd) => {
      const file = cmd.getOptionValue(CONFIG_KEY) as string | undefined;
      if (file !== undefined) applyConfigFile(cmd, file);
      for (const option of mandatory) {
        if (cmd.getOptionValue(option.attributeName()) === undefined) {
          cmd.error(`error: required option '${option.flags}' not specified (give it, or "${configKey(option)}" in --config)`,
            { exitCode: 2, code: 'commander.missingMandatoryOptionValue' });
        }
      }
    });
}
