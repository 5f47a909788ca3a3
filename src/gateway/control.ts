// The gateway's control socket: a Unix stream socket (mode 0600, in a 0700 directory) that
// `maelstrom up` serves and the other commands talk to. One JSON request per line; answers are
// JSON lines (docs/cli.md, "Control socket"):
//   {"cmd":"status"}                 -> one line: the gateway's status
//   {"cmd":"stats"}                  -> one line: its counters
//   {"cmd":"watch","trace":false}    -> {"event":"watching"}, then one line per network-sync event
//   {"cmd":"tune","r":4,"c":2}       -> one line: the new epoch's record (or an error)
//   {"cmd":"rekey","keyFile":"/abs"} -> one line: the new key's id and the gateway's keys (or an error)
// An error answers {"error": message, "code": MAELSTROM_ERR_...}.
// Events carry tNs (CLOCK_MONOTONIC nanoseconds) as a decimal string; offsets are numbers.
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import readline from 'node:readline';
import { ConfigError, MaelstromError } from '../errors';
import { isErrorCode } from '../errors';
import type { TuneRequest } from './gateway';
import type { NetsyncEvent } from '../native/addon';

export const CONTROL_DIR = '/run/maelstrom';

// Where a gateway of this network namespace keeps its control socket, PID file and log by
// default: /run/maelstrom in the machine's own namespace, /run/maelstrom/netns-<inode> in any
// other (a container's, the lab's), so that gateways whose LAN interfaces share a name in
// different namespaces of one machine do not meet. Commands run in the same namespace find the
// same directory.
export function runDir(): string {
  let own: number;
  try {
    own = fs.statSync('/proc/self/ns/net').ino;
  } catch {
    return CONTROL_DIR; // no /proc: one namespace is all we can tell
  }
  return own === initialNamespace() ? CONTROL_DIR : path.join(CONTROL_DIR, `netns-${own}`);
}

// The inode of the machine's own network namespace: PID 1's where we may read it (not always,
// even as root), else the one the kernel gives init_net (PROC_NET_INIT_INO, Linux 6.x).
const PROC_NET_INIT_INO = 0xeffffff9;
function initialNamespace(): number {
  try {
    return fs.statSync('/proc/1/ns/net').ino;
  } catch {
    return PROC_NET_INIT_INO;
  }
}

export function defaultControlPath(lan: string): string {
  return path.join(runDir(), `${lan}.sock`);
}

export type ControlRequest = { cmd: 'status' } | { cmd: 'stats' } | { cmd: 'watch'; trace?: boolean } | ({ cmd: 'tune' } & TuneRequest)
  | { cmd: 'rekey'; keyFile: string };

export interface ControlHandlers {
  status(): object;
  stats(): object;
  setTrace(on: boolean): void;
  tune(change: TuneRequest): object; // throws a MaelstromError when the change cannot be made
  rekey(keyFile: string): object;    // likewise
}

// A tune request's fields, as numbers and a list of numbers; anything else is refused.
function tuneRequest(req: Record<string, unknown>): TuneRequest {
  const out: TuneRequest = {};
  for (const key of Object.keys(req)) {
    if (key === 'cmd') continue;
    const v = req[key];
    if ((key === 'r' || key === 'c' || key === 'flushTimeoutMs') && typeof v === 'number') out[key] = v;
    else if (key === 'interleaves' && Array.isArray(v) && v.every((x) => typeof x === 'number')) out.interleaves = v as number[];
    else throw new ConfigError(`tune takes r, c, interleaves and flushTimeoutMs as numbers; got ${key}: ${JSON.stringify(v)}`);
  }
  if (Object.keys(out).length === 0) throw new ConfigError('tune needs at least one of r, c, interleaves, flushTimeoutMs');
  return out;
}

// One event as a JSON-ready object: bigint times as strings, offsets as numbers.
export function eventJson(e: NetsyncEvent): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(e)) o[k] = typeof v === 'bigint' ? (k === 'tNs' ? v.toString() : Number(v)) : v;
  return o;
}

function errorLine(message: string, code = 'MAELSTROM_ERR_CONFIG'): string {
  return JSON.stringify({ error: message, code }) + '\n';
}

export class ControlServer {
  private readonly watchers = new Map<net.Socket, { trace: boolean }>();

  private constructor(private readonly server: net.Server, readonly path: string, private readonly handlers: ControlHandlers) {}

  // Listens at socketPath; refuses when a gateway already answers there, replaces a stale socket.
  static async open(socketPath: string, handlers: ControlHandlers): Promise<ControlServer> {
    fs.mkdirSync(path.dirname(socketPath), { recursive: true, mode: 0o700 });
    if (await controlPathState(socketPath) === 'stale') fs.unlinkSync(socketPath);
    const server = net.createServer();
    const control = new ControlServer(server, socketPath, handlers);
    server.on('connection', (sock) => control.accept(sock));
    const mask = process.umask(0o177);
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(socketPath, () => { server.off('error', reject); resolve(); });
      });
    } finally {
      process.umask(mask);
    }
    fs.chmodSync(socketPath, 0o600);
    return control;
  }

  get watching(): boolean {
    return this.watchers.size > 0;
  }

  // Sends a batch of events to every watcher (trace events only to those who asked).
  publish(events: NetsyncEvent[]): void {
    if (!events.length || !this.watchers.size) return;
    let all = '';
    let plain = '';
    for (const e of events) {
      const line = JSON.stringify(eventJson(e)) + '\n';
      all += line;
      if (e.type !== 'data-done' && e.type !== 'repair-done') plain += line;
    }
    for (const [sock, w] of this.watchers) {
      const text = w.trace ? all : plain;
      if (text) sock.write(text);
    }
  }

  async close(): Promise<void> {
    for (const sock of this.watchers.keys()) sock.end();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    fs.rmSync(this.path, { force: true });
    // A namespace's directory goes with its last gateway.
    if (path.basename(path.dirname(this.path)).startsWith('netns-')) {
      try { fs.rmdirSync(path.dirname(this.path)); } catch { /* not empty: another gateway, or its PID file */ }
    }
  }

  private accept(sock: net.Socket): void {
    sock.on('error', () => sock.destroy());
    sock.on('close', () => {
      if (this.watchers.delete(sock)) this.updateTrace();
    });
    const lines = readline.createInterface({ input: sock });
    lines.on('line', (text) => {
      let req: ControlRequest;
      try {
        req = JSON.parse(text) as ControlRequest;
      } catch {
        sock.write(errorLine('requests are JSON objects, one per line'));
        return;
      }
      switch (req?.cmd) {
        case 'status':
          sock.write(JSON.stringify(this.handlers.status()) + '\n');
          break;
        case 'stats':
          sock.write(JSON.stringify(this.handlers.stats()) + '\n');
          break;
        case 'tune':
          this.answer(sock, () => this.handlers.tune(tuneRequest(req as unknown as Record<string, unknown>)));
          break;
        case 'rekey':
          this.answer(sock, () => {
            const file = (req as { keyFile?: unknown }).keyFile;
            if (typeof file !== 'string' || !path.isAbsolute(file)) throw new ConfigError('rekey takes keyFile, an absolute path');
            return this.handlers.rekey(file);
          });
          break;
        case 'watch':
          this.watchers.set(sock, { trace: req.trace === true });
          this.updateTrace();
          sock.write(JSON.stringify({ event: 'watching', trace: req.trace === true }) + '\n');
          break;
        default:
          sock.write(errorLine(`unknown command ${JSON.stringify((req as { cmd?: unknown })?.cmd)}: status, stats, watch, tune or rekey`));
      }
    });
  }

  // A request that changes the gateway: its answer, or the MaelstromError it was refused with.
  private answer(sock: net.Socket, handle: () => object): void {
    try {
      sock.write(JSON.stringify(handle()) + '\n');
    } catch (err) {
      if (!(err instanceof MaelstromError)) throw err;
      sock.write(errorLine(err.message, err.code));
    }
  }

  private updateTrace(): void {
    this.handlers.setTrace([...this.watchers.values()].some((w) => w.trace));
  }
}

// Whether a gateway may listen at socketPath: 'free' (nothing there) or 'stale' (a socket left
// by a gateway that is gone, to be replaced). Throws when a gateway answers there, or when the
// path is something other than a socket.
export async function controlPathState(socketPath: string): Promise<'free' | 'stale'> {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(socketPath);
  } catch {
    return 'free';
  }
  if (!st.isSocket()) {
    throw new MaelstromError('MAELSTROM_ERR_CONTROL_STALE', `${socketPath} is in the way of the control socket and is not one: remove it, or give another --control`);
  }
  try {
    (await connectControl(socketPath)).destroy();
  } catch (err) {
    // Only a refused connection says nobody listens; anything else (a full backlog) may be a
    // live gateway, and its socket is not ours to remove.
    if ((err as MaelstromError).code === 'MAELSTROM_ERR_CONTROL_STALE') return 'stale';
    throw err;
  }
  throw new MaelstromError('MAELSTROM_ERR_ALREADY_RUNNING',
    `a gateway already runs with control socket ${socketPath}: stop it (maelstrom down) or give another --control`);
}

// Connects to a gateway's control socket, with errors that say what to do.
export function connectControl(socketPath: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect(socketPath);
    s.once('connect', () => { s.removeAllListeners('error'); resolve(s); });
    s.once('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') {
        reject(new MaelstromError('MAELSTROM_ERR_NO_GATEWAY', `no gateway control socket at ${socketPath}: is 'maelstrom up' running? (give its --control path)`));
      } else if (err.code === 'ECONNREFUSED') {
        reject(new MaelstromError('MAELSTROM_ERR_CONTROL_STALE', `${socketPath} is left from a gateway that is gone: remove it, or start the gateway again`));
      } else if (err.code === 'EACCES') {
        reject(new MaelstromError('MAELSTROM_ERR_NOT_ROOT', `${socketPath} is root's only: run with sudo`));
      } else {
        reject(new MaelstromError('MAELSTROM_ERR_NO_GATEWAY', `cannot reach the gateway at ${socketPath}: ${err.message}`));
      }
    });
  });
}

// Sends one request and yields the answer lines until the caller stops or the gateway closes.
export async function* control(socketPath: string, req: ControlRequest): AsyncGenerator<Record<string, unknown>> {
  const sock = await connectControl(socketPath);
  sock.write(JSON.stringify(req) + '\n');
  const lines = readline.createInterface({ input: sock });
  try {
    for await (const line of lines) {
      const msg = JSON.parse(line) as Record<string, unknown>;
      if (typeof msg.error === 'string') {
        const code = isErrorCode(msg.code) ? msg.code : 'MAELSTROM_ERR_CONFIG';
        throw new MaelstromError(code, `the gateway refused: ${msg.error}`);
      }
      yield msg;
    }
  } finally {
    sock.destroy();
  }
}

// One request and its one answer (status, stats, tune, rekey).
export async function request(socketPath: string, req: ControlRequest): Promise<Record<string, unknown>> {
  for await (const msg of control(socketPath, req)) return msg;
  throw new MaelstromError('MAELSTROM_ERR_NO_GATEWAY', `the gateway at ${socketPath} closed without answering`);
}
