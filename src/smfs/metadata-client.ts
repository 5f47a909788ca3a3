// A client of `smfs metadata`: create a log (placed by the metadata server on one of its
// storage servers), look up where a log lives, list every log.
import type { Credential } from './credentials';
import { FrameClient, connectSocket } from './frame-client';
import type { Endpoint } from './frame-client';
import { MetadataOp } from './metadata';
import type { LogPlacement, MetadataList } from './metadata';
import { readText, readU16 } from './text';
import { Cursor, encodeU32 } from './wire';

function readEndpoint(c: Cursor): Endpoint {
  const host = readText(c, 'host');
  return { host, port: readU16(c) };
}

export class MetadataClient extends FrameClient {
  static async connect(e: Endpoint, credential: Credential): Promise<MetadataClient> {
    return new MetadataClient(await connectSocket(e, 'metadata server', credential), e, 'metadata server');
  }

  async create(): Promise<LogPlacement> {
    const c = new Cursor(await this.request(MetadataOp.create), 'create answer');
    const log = c.u32();
    const e = readEndpoint(c);
    c.end();
    return { log, ...e };
  }

  async lookup(log: number): Promise<LogPlacement> {
    const c = new Cursor(await this.request(MetadataOp.lookup, [encodeU32(log)]), 'lookup answer');
    const e = readEndpoint(c);
    c.end();
    return { log, ...e };
  }

  async list(): Promise<MetadataList> {
    return JSON.parse((await this.request(MetadataOp.list)).toString('utf8')) as MetadataList;
  }
}
