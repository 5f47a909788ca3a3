// Key files (docs/security.md, "Keys"): a gateway pair's master key, and the feedback key
// derived from it for the storage hosts of a site. One text line per key:
//
//   maelstrom-key-v1 gateway 9kT3...=      a pair's master key (both gateways, `up --key-file`)
//   maelstrom-key-v1 feedback q8Zb...=     its feedback key (storage hosts, NetworkSyncListener)
//
// with '#' comments. A feedback key file may hold several lines (the old and the new key during
// a rotation); a gateway key file holds one. Key files must be readable by their owner only:
// anything looser is refused, naming the chmod that fixes it.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import { MaelstromError } from '../errors';
import { addon } from '../native/addon';

export type KeyKind = 'gateway' | 'feedback';
const MAGIC = 'maelstrom-key-v1';
const KEY_BYTES = 32;

function keyError(message: string, cause?: unknown): MaelstromError {
  return new MaelstromError('MAELSTROM_ERR_KEY', message, { cause });
}

export function newMasterKey(): Buffer {
  return randomBytes(KEY_BYTES);
}

// The key's id, as status, stats and the logs name it: the id of its gateway purpose key for a
// master key, its own for a feedback key.
export function keyId(kind: KeyKind, key: Buffer): string {
  return addon().authKey(key, kind === 'gateway' ? 'gateway' : 'as-is').id;
}

// The feedback key of a master key, for the storage hosts of both sites.
export function feedbackKeyOf(master: Buffer): Buffer {
  return addon().authKey(master, 'feedback').key;
}

export function formatKeyFile(kind: KeyKind, key: Buffer, now = new Date()): string {
  const what = kind === 'gateway'
    ? 'the master key of a gateway pair: give it to both gateways (maelstrom up --key-file)'
    : 'a feedback key: give it to the storage hosts behind the gateways (smfs storage --feedback-key)';
  return `# ${what}\n# key ${keyId(kind, key)}, made ${now.toISOString()}; keep it secret (mode 0600)\n${MAGIC} ${kind} ${key.toString('base64')}\n`;
}

// Writes a key file readable by its owner only; refuses to replace a file.
export function writeKeyFile(file: string, kind: KeyKind, key: Buffer): void {
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o600);
  } catch (cause) {
    throw keyError(`cannot create the key file ${file}: ${(cause as Error).message}`, cause);
  }
  try {
    fs.writeSync(fd, formatKeyFile(kind, key));
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

// The keys of one kind in a key file, checked: mode, format, kind, length.
export function readKeyFile(file: string, kind: KeyKind): Buffer[] {
  let st: fs.Stats;
  let text: string;
  try {
    st = fs.statSync(file);
    text = fs.readFileSync(file, 'utf8');
  } catch (cause) {
    throw keyError(`cannot read the key file ${file}: ${(cause as Error).message}${kind === 'gateway' ? ' (make one with: maelstrom keygen > FILE)' : ''}`, cause);
  }
  if (!st.isFile()) throw keyError(`the key file ${file} is not a regular file`);
  if ((st.mode & 0o077) !== 0) {
    throw keyError(`the key file ${file} has mode ${(st.mode & 0o777).toString(8).padStart(4, '0')}: others than its owner may read it; chmod 600 ${file}`);
  }
  const keys: Buffer[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const [magic, k, b64, ...rest] = line.split(/\s+/);
    const where = `${file} line ${i + 1}`;
    if (magic !== MAGIC || rest.length > 0 || !b64) throw keyError(`${where} is not a key line ('${MAGIC} gateway|feedback BASE64')`);
    if (k !== kind) throw keyError(`${where} holds a ${k} key where a ${kind} key is needed${kind === 'feedback' && k === 'gateway' ? ' (a storage host takes the feedback key: maelstrom keygen --feedback --key-file MASTER)' : ''}`);
    const key = Buffer.from(b64, 'base64');
    if (key.length !== KEY_BYTES || key.toString('base64') !== b64) throw keyError(`${where}: a key is ${KEY_BYTES} bytes in base64`);
    keys.push(key);
  });
  if (keys.length === 0) throw keyError(`the key file ${file} holds no ${kind} key`);
  if (kind === 'gateway' && keys.length > 1) throw keyError(`the key file ${file} holds ${keys.length} gateway keys: a gateway takes one (maelstrom rekey changes it at run time)`);
  return keys;
}
