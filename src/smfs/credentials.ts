// The credential of an SMFS deployment (docs/smfs.md, "Authentication"): 32 random bytes in a
// small text file of mode 0600, shared by every server and client of the deployment. Nothing
// uses the secret itself: each use gets its own key derived from it with HKDF-SHA256, so a key
// that leaks from one use (a TLS library, a log) says nothing of the others.
//
//   # comment lines
//   smfs-credential 1 <64 hex digits>
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { SmfsError } from './errors';
import { fsyncDirectory } from './files';

export const CREDENTIAL_FILE = 'credentials';
export const CREDENTIALS_ENV = 'SMFS_CREDENTIALS';
const SECRET_BYTES = 32;
const LINE = /^smfs-credential 1 ([0-9a-f]{64})$/;

export interface Credential {
  file: string;
  keyId: string;      // 16 hex digits naming the deployment: sent in the clear, says nothing of the secret
  authKey: Buffer;    // the handshake's HMAC key
  pskKey: Buffer;     // TLS-PSK's key
  pskIdentity: string;
}

function derive(secret: Buffer, label: string, bytes: number): Buffer {
  return Buffer.from(crypto.hkdfSync('sha256', secret, Buffer.alloc(0), `SMFS ${label} 1`, bytes));
}

export function credentialFromSecret(secret: Buffer, file: string): Credential {
  const keyId = derive(secret, 'key id', 8).toString('hex');
  return { file, keyId, authKey: derive(secret, 'auth key', 32), pskKey: derive(secret, 'TLS-PSK', 32), pskIdentity: `smfs-${keyId}` };
}

function refused(file: string, what: string, cause?: unknown): SmfsError {
  return new SmfsError('SMFS_ERR_AUTH', `the credential file ${file} ${what}`, { cause });
}

// Reads a credential file; refuses one that group or others may read or write.
export function readCredential(file: string): Credential {
  let text: string;
  try {
    const st = fs.statSync(file);
    if (!st.isFile()) throw refused(file, 'is not a regular file');
    if ((st.mode & 0o077) !== 0) {
      throw refused(file, `is open to group or others (mode 0${(st.mode & 0o777).toString(8)}): it holds the deployment's secret; chmod 600 ${file}`);
    }
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if (err instanceof SmfsError) throw err;
    throw refused(file, `cannot be read: ${(err as Error).message}`, err);
  }
  const lines = text.split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
  const m = lines.length === 1 ? LINE.exec(lines[0]) : null;
  if (!m) throw refused(file, "is not an SMFS credential (one line 'smfs-credential 1 <64 hex digits>')");
  return credentialFromSecret(Buffer.from(m[1], 'hex'), path.resolve(file));
}

// Writes a new credential to `file` (mode 0600); fails if the file exists.
export function createCredential(file: string): Credential {
  const secret = crypto.randomBytes(SECRET_BYTES);
  const text = `# SMFS deployment credential. Secret: keep it mode 0600 and give it only to this deployment's
# servers and clients (smfs ... --credentials ${path.basename(file)}, or SMFS_CREDENTIALS).
smfs-credential 1 ${secret.toString('hex')}
`;
  const fd = fs.openSync(file, 'wx', 0o600);
  try {
    fs.fchmodSync(fd, 0o600); // whatever the umask
    fs.writeSync(fd, text);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fsyncDirectory(path.dirname(file));
  return credentialFromSecret(secret, path.resolve(file));
}

// The credential a command uses: --credentials, else $SMFS_CREDENTIALS, else (for a server with
// a directory) DIR/credentials, created if it is not there. Commands without a directory must
// be given one.
export function findCredential(options: { file?: string; dir?: string; command: string }): { credential: Credential; created: boolean } {
  const given = options.file ?? process.env[CREDENTIALS_ENV];
  if (given) return { credential: readCredential(given), created: false };
  if (options.dir === undefined) {
    throw new SmfsError('SMFS_ERR_AUTH', `${options.command} needs the deployment's credential: --credentials FILE or ${CREDENTIALS_ENV}=FILE (a storage server started without one made DIR/${CREDENTIAL_FILE})`);
  }
  const file = path.join(path.resolve(options.dir), CREDENTIAL_FILE);
  try {
    fs.mkdirSync(options.dir, { recursive: true });
    return { credential: createCredential(file), created: true };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw refused(file, `cannot be created: ${(err as Error).message}`, err);
  }
  return { credential: readCredential(file), created: false };
}
