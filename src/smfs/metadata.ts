// `smfs metadata`: the metadata server of SMFS (docs/smfs-files.md). It gives out log ids and
// places each new log on one of its storage servers, the one with the fewest logs it has
// placed (ties: the order given), so file servers need to know only this server's address.
//
// Its state is one JSON file, replaced atomically. Before it asks a storage server to create a
// log it records an *intent* (id and server) and moves the next id past it, so a crash between
// the two cannot give one id out twice; at the next start (or the next create, or a lookup of
// that id) an intent whose log exists on its storage server is completed, otherwise dropped.
// A dropped intent's id is never given out again: its create-log may still have been on the
// way when the server crashed.
import fs from 'node:fs';
import path from 'node:path';
import { SmfsError } from './errors';
import { fsyncDirectory } from './files';
import { LIMITS } from './format';
import { formatEndpoint } from './frame-client';
import { StorageClient } from './client';
import type { Credential } from './credentials';
import type { Endpoint } from './frame-client';
import { FrameServer } from './frame-server';
import type { FrameServerOptions } from './frame-server';
import { DirectoryLock } from './lock';
import { encodeText, encodeU16 } from './text';
import { Cursor, encodeJson, encodeU32 } from './wire';
import { Serial } from '../serial';

export const METADATA_PORT = 7611;
export const STATE_FILE = 'metadata.json';
const STATE_VERSION = 1;

export const MetadataOp = { create: 1, lookup: 2, list: 3 } as const;

export interface LogPlacement {
  log: number;
  host: string;
  port: number;
}

interface State {
  version: number;
  nextLog: number;
  logs: LogPlacement[];
  intents: LogPlacement[];
}

export interface MetadataList {
  nextLog: number;
  servers: (Endpoint & { logs: number })[];
  logs: LogPlacement[];
  intents: LogPlacement[];
}

export interface IntentReport {
  completed: number[]; // logs found on their storage server: now placed
  dropped: number[];   // logs not there: their ids are not given out again
  pending: number[];   // storage server unreachable: tried again later
}

function placementOk(p: unknown): p is LogPlacement {
  const o = p as LogPlacement;
  return typeof o === 'object' && o !== null && Number.isInteger(o.log) && typeof o.host === 'string' && Number.isInteger(o.port);
}

function readState(file: string): State {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { version: STATE_VERSION, nextLog: 1, logs: [], intents: [] };
    throw new SmfsError('SMFS_ERR_IO', `reading ${file}: ${(err as Error).message}`, { cause: err });
  }
  let s: State;
  try {
    s = JSON.parse(text) as State;
  } catch (err) {
    throw new SmfsError('SMFS_ERR_CORRUPT', `${file} is not JSON: ${(err as Error).message}`, { cause: err });
  }
  if (s?.version !== STATE_VERSION || !Number.isInteger(s.nextLog) || !Array.isArray(s.logs) || !Array.isArray(s.intents)
    || !s.logs.every(placementOk) || !s.intents.every(placementOk)) {
    throw new SmfsError('SMFS_ERR_CORRUPT', `${file} is not a version ${STATE_VERSION} metadata state ({version, nextLog, logs, intents})`);
  }
  return s;
}

function isUnavailable(err: unknown): boolean {
  return err instanceof SmfsError && (err.code === 'SMFS_ERR_UNAVAILABLE' || err.code === 'SMFS_ERR_CLOSED');
}

export class MetadataServer {
  readonly intents: IntentReport;
  private readonly links = new Map<string, Promise<StorageClient>>();
  private readonly serial = new Serial();
  private frames: FrameServer | undefined;

  private constructor(
    readonly dir: string,
    readonly storage: Endpoint[],
    private readonly lock: DirectoryLock,
    private state: State,
    private readonly credential: Credential,
  ) {
    this.intents = { completed: [], dropped: [], pending: [] };
  }

  // Opens the state in `dir` (created if missing), settles what intents it can, and listens.
  // `options.credential` also serves its own connections to the storage servers.
  static async open(dir: string, storage: Endpoint[], options: FrameServerOptions): Promise<MetadataServer> {
    if (storage.length === 0) throw new SmfsError('SMFS_ERR_REQUEST', 'a metadata server needs at least one storage server');
    fs.mkdirSync(dir, { recursive: true });
    const lock = DirectoryLock.take(dir);
    let m: MetadataServer | undefined;
    try {
      fs.rmSync(path.join(dir, `${STATE_FILE}.tmp`), { force: true });
      m = new MetadataServer(path.resolve(dir), storage, lock, readState(path.join(dir, STATE_FILE)), options.credential);
      Object.assign(m.intents, await m.settleIntents());
      m.frames = await FrameServer.listen('smfs metadata', (op, body) => m!.dispatch(op, body), options);
      return m;
    } catch (err) {
      if (m) await m.closeLinks();
      lock.release();
      throw err;
    }
  }

  get address(): Endpoint {
    return this.frames!.address;
  }

  get counters() {
    return this.frames!.counters;
  }

  // Gives out the next log id and creates the log on the storage server with the fewest logs.
  create(): Promise<LogPlacement> {
    return this.serial.run(async () => {
      await this.settleIntents();
      const counts = this.storage.map((e) => this.state.logs.filter((l) => l.host === e.host && l.port === e.port).length);
      const target = this.storage[counts.indexOf(Math.min(...counts))];
      const client = await this.link(target);
      const log = this.state.nextLog;
      if (log > LIMITS.maxLogId) throw new SmfsError('SMFS_ERR_TOO_LARGE', `every log id up to ${LIMITS.maxLogId} has been given out`);
      const placement = { log, host: target.host, port: target.port };
      this.state.nextLog = log + 1;
      this.state.intents.push(placement);
      this.save();
      try {
        await client.createLog(log);
      } catch (err) {
        if (isUnavailable(err)) {
          this.dropLink(target);
          throw new SmfsError('SMFS_ERR_UNAVAILABLE', `log ${log}: the storage server at ${formatEndpoint(target)} went away during create-log; whether it made the log is settled later (lookup ${log}, or the next create)`, { cause: err });
        }
        this.state.intents = this.state.intents.filter((i) => i.log !== log);
        this.save();
        throw err;
      }
      this.settle(placement, true);
      return placement;
    });
  }

  lookup(log: number): Promise<LogPlacement> {
    const placed = this.state.logs.find((l) => l.log === log);
    if (placed) return Promise.resolve(placed);
    if (!this.state.intents.some((i) => i.log === log)) return Promise.reject(new SmfsError('SMFS_ERR_UNKNOWN_LOG', `no log ${log} was created through this metadata server`));
    return this.serial.run(async () => {
      const report = await this.settleIntents();
      const found = this.state.logs.find((l) => l.log === log);
      if (found) return found;
      if (report.pending.includes(log)) throw new SmfsError('SMFS_ERR_UNAVAILABLE', `log ${log}: its storage server cannot be reached to confirm it was created`);
      throw new SmfsError('SMFS_ERR_UNKNOWN_LOG', `log ${log} was never created (its create-log did not reach the storage server)`);
    });
  }

  list(): MetadataList {
    return {
      nextLog: this.state.nextLog,
      servers: this.storage.map((e) => ({ ...e, logs: this.state.logs.filter((l) => l.host === e.host && l.port === e.port).length })),
      logs: this.state.logs,
      intents: this.state.intents,
    };
  }

  async close(): Promise<void> {
    await this.frames?.close();
    await this.serial.idle();
    await this.closeLinks();
    this.lock.release();
  }

  private async dispatch(op: number, body: Buffer): Promise<Uint8Array[]> {
    const c = new Cursor(body, `metadata op ${op}`);
    switch (op) {
      case MetadataOp.create: {
        c.end();
        const p = await this.create();
        return [encodeU32(p.log), encodeText(p.host), encodeU16(p.port)];
      }
      case MetadataOp.lookup: {
        const log = c.u32();
        c.end();
        const p = await this.lookup(log);
        return [encodeText(p.host), encodeU16(p.port)];
      }
      case MetadataOp.list:
        c.end();
        return [encodeJson(this.list())];
      default:
        throw new SmfsError('SMFS_ERR_FRAME', `unknown op ${op}; the metadata server knows ${Object.entries(MetadataOp).map(([k, v]) => `${v} (${k})`).join(', ')}`);
    }
  }

  // Asks each intent's storage server whether the log is there (tail answers for any log it
  // has, UNKNOWN_LOG otherwise).
  private async settleIntents(): Promise<IntentReport> {
    const report: IntentReport = { completed: [], dropped: [], pending: [] };
    for (const intent of [...this.state.intents]) {
      try {
        await (await this.link(intent)).tail(intent.log);
        this.settle(intent, true);
        report.completed.push(intent.log);
      } catch (err) {
        if (err instanceof SmfsError && err.code === 'SMFS_ERR_UNKNOWN_LOG') {
          this.settle(intent, false);
          report.dropped.push(intent.log);
        } else if (isUnavailable(err)) {
          this.dropLink(intent);
          report.pending.push(intent.log);
        } else throw err;
      }
    }
    return report;
  }

  private settle(intent: LogPlacement, made: boolean): void {
    this.state.intents = this.state.intents.filter((i) => i.log !== intent.log);
    if (made) this.state.logs.push({ log: intent.log, host: intent.host, port: intent.port });
    this.save();
  }

  // The state file: written to a .tmp, fsynced, renamed over, the directory fsynced.
  private save(): void {
    const file = path.join(this.dir, STATE_FILE);
    const tmp = `${file}.tmp`;
    const fd = fs.openSync(tmp, 'w');
    try {
      fs.writeFileSync(fd, JSON.stringify(this.state, null, 1) + '\n');
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, file);
    fsyncDirectory(this.dir);
  }

  private link(e: Endpoint): Promise<StorageClient> {
    const key = formatEndpoint(e);
    let client = this.links.get(key);
    if (!client) {
      client = StorageClient.connect(e, this.credential);
      this.links.set(key, client);
      const mine = client;
      mine.catch(() => { if (this.links.get(key) === mine) this.links.delete(key); });
    }
    return client;
  }

  private dropLink(e: Endpoint): void {
    const key = formatEndpoint(e);
    const client = this.links.get(key);
    this.links.delete(key);
    void client?.then((c) => c.close(), () => undefined);
  }

  private async closeLinks(): Promise<void> {
    const all = [...this.links.values()];
    this.links.clear();
    await Promise.all(all.map((p) => p.then((c) => c.close(), () => undefined)));
  }
}
