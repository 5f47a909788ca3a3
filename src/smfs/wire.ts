// The storage server's wire format (docs/smfs.md, "Protocol"): length-prefixed binary frames
// over TCP, big-endian, requests and answers matched by a request id the client picks.
//
//   request   0 u32 length of what follows   4 u16 magic "SM"   6 u8 version (1)   7 u8 op
//             8 u32 request id   12 body
//   answer    the same header with op | 0x80, then u8 status (0 ok, 1 error) and the body;
//             an error's body is u16 + code (ASCII, SMFS_ERR_...), u16 + message (UTF-8)
//
// The length prefix is the one field trusted to find the next frame: a frame that is too
// long, or whose header or body is wrong, is answered with an error and skipped, and the
// connection goes on with the next frame.
import type { Address } from './format';
import { LIMITS } from './format';
import { SmfsError } from './errors';
import type { SmfsErrorCode } from './errors';

export const WIRE_MAGIC = 0x534d; // "SM"
export const WIRE_VERSION = 1;
export const FRAME_HEADER = 8;     // after the length: magic, version, op, request id
export const ANSWER_FLAG = 0x80;
export const ALL_LOGS = 0xffffffff;
export const STORAGE_PORT = 7610;
// The largest append: every record's data and its 12-byte header, and the append's own header.
export const MAX_FRAME = FRAME_HEADER + 8 + LIMITS.groupBytes + LIMITS.groupRecords * 12;
// A frame longer than this cannot be a client of ours gone wrong in one field: the connection
// is answered and closed instead of waiting for that many bytes to skip.
export const MAX_SKIP = 1024 * 1024 * 1024;

export const Op = {
  createLog: 1,
  append: 2,
  read: 3,
  free: 4,
  clean: 5,
  stat: 6,
  sync: 7,
  tail: 8,
  readMany: 9,
  // 10 to 15: more client requests. 16 on: between a primary and its mirror.
  mirrorHello: 16,
  mirrorCreate: 17,
  mirrorGroup: 18,
  promote: 19,
  // 20 on: tagged responses (tagging.ts), between a primary and its clients.
  tagHello: 20,
  handover: 21,
  share: 22,      // pushed by the server only (request id 0)
  held: 23,
  watermark: 24,  // pushed by the server only (request id 0)
} as const;
export type Op = (typeof Op)[keyof typeof Op];

// An append's flags: the acknowledgement level (0: the server's default), whether the answer
// also tells when the group reached each level, and whether it carries the tag (sequence
// number, durable mark of its parts, the mirrored-through watermark). Level local with the tag
// is the level 'tagged': the client keeps the group until the watermark passes it. `sequence`
// asks for the same tag in the answer without the group being kept by this client (it counts as
// an append at its level): a file server uses it for a mount that keeps its own commits
// (docs/smfs-files.md, "Tagged mounts").
export const AppendFlags = { levelMask: 0x3, timings: 0x4, tag: 0x8, sequence: 0x10 } as const;
// Frames a server sends unasked (the watermark, coded shares) carry this request id, which no
// request after the handshake uses: clients number theirs from 1.
export const PUSH_ID = 0;
export const LEVEL_CODES = { local: 1, network: 2, remote: 3 } as const;
export const NOT_REACHED = 0xffffffff;
export const OP_NAMES: Record<number, string> = Object.fromEntries(Object.entries(Op).map(([k, v]) => [v, k]));

export type Frame =
  | { kind: 'frame'; op: number; id: number; body: Buffer }
  // A frame that could not be taken: answer `error` to request `id` (0 when not known).
  | { kind: 'bad'; op: number; id: number; error: SmfsError; close: boolean };

// Splits a byte stream into frames without trusting anything but the length prefixes.
export class FrameReader {
  private chunks: Buffer[] = [];
  private have = 0;
  private skip = 0;

  constructor(private readonly answers = false) {}

  push(chunk: Buffer): Frame[] {
    this.chunks.push(chunk);
    this.have += chunk.length;
    const out: Frame[] = [];
    for (;;) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, this.have);
        this.take(n);
        this.skip -= n;
        if (this.skip > 0) return out;
      }
      if (this.have < 4) return out;
      const length = this.peek(4).readUInt32BE(0);
      if (length < FRAME_HEADER) {
        if (this.have < 4 + length) return out;
        this.take(4 + length);
        out.push({ kind: 'bad', op: 0, id: 0, error: new SmfsError('SMFS_ERR_FRAME', `a frame of ${length} bytes has no room for its ${FRAME_HEADER}-byte header`), close: false });
        continue;
      }
      if (length > MAX_FRAME) {
        if (this.have < 4 + FRAME_HEADER) return out;
        const head = this.take(4 + FRAME_HEADER);
        const close = length > MAX_SKIP;
        this.skip = close ? 0 : length - FRAME_HEADER;
        out.push({ kind: 'bad', op: head[7], id: head.readUInt32BE(8), close, error: new SmfsError('SMFS_ERR_TOO_LARGE', `a frame of ${length} bytes; frames carry at most ${MAX_FRAME}${close ? ' (closing the connection: this is no frame)' : ''}`) });
        if (close) {
          this.chunks = [];
          this.have = 0;
          return out;
        }
        continue;
      }
      if (this.have < 4 + length) return out;
      const frame = this.take(4 + length);
      const op = frame[7];
      const id = frame.readUInt32BE(8);
      const problem = frame.readUInt16BE(4) !== WIRE_MAGIC ? 'bad magic'
        : frame[6] !== WIRE_VERSION ? `version ${frame[6]}; this server speaks ${WIRE_VERSION}`
        : ((op & ANSWER_FLAG) !== 0) !== this.answers ? (this.answers ? 'a request where an answer was due' : 'an answer sent as a request')
        : undefined;
      if (problem) out.push({ kind: 'bad', op, id, error: new SmfsError('SMFS_ERR_FRAME', `malformed frame: ${problem}`), close: false });
      else out.push({ kind: 'frame', op, id, body: frame.subarray(4 + FRAME_HEADER) });
    }
  }

  // Bytes held of a frame not yet whole (what a paused connection is sitting on).
  get buffered(): number {
    return this.have;
  }

  private peek(n: number): Buffer {
    if (this.chunks[0].length >= n) return this.chunks[0];
    return Buffer.concat(this.chunks, n);
  }

  private take(n: number): Buffer {
    if (n === 0) return Buffer.alloc(0);
    let out: Buffer;
    if (this.chunks[0].length >= n) {
      out = this.chunks[0].subarray(0, n);
    } else {
      out = Buffer.allocUnsafe(n);
      let at = 0;
      for (const c of this.chunks) {
        const k = Math.min(c.length, n - at);
        c.copy(out, at, 0, k);
        at += k;
        if (at === n) break;
      }
    }
    let left = n;
    while (left > 0) {
      const c = this.chunks[0];
      if (c.length <= left) {
        this.chunks.shift();
        left -= c.length;
      } else {
        this.chunks[0] = c.subarray(left);
        left = 0;
      }
    }
    this.have -= n;
    return out;
  }
}

export function encodeFrame(op: number, id: number, body: Uint8Array[] = []): Uint8Array[] {
  const length = FRAME_HEADER + body.reduce((n, b) => n + b.length, 0);
  const head = Buffer.alloc(4 + FRAME_HEADER);
  head.writeUInt32BE(length, 0);
  head.writeUInt16BE(WIRE_MAGIC, 4);
  head[6] = WIRE_VERSION;
  head[7] = op;
  head.writeUInt32BE(id >>> 0, 8);
  return [head, ...body];
}

export function encodeAnswer(op: number, id: number, body: Uint8Array[] = []): Uint8Array[] {
  return encodeFrame((op | ANSWER_FLAG) & 0xff, id, [Buffer.of(0), ...body]);
}

// `details`, when given, follows the message as u32 length + JSON: what a client needs to act on
// the error (SMFS_ERR_LOST_GROUPS: the groups). Older clients read the code and message only.
export function encodeErrorAnswer(op: number, id: number, code: string, message: string, details?: unknown): Uint8Array[] {
  const codeBytes = Buffer.from(code, 'ascii');
  const text = Buffer.from(message.length > 2000 ? `${message.slice(0, 2000)}...` : message, 'utf8');
  const b = Buffer.alloc(1 + 2 + codeBytes.length + 2 + text.length);
  b[0] = 1;
  b.writeUInt16BE(codeBytes.length, 1);
  codeBytes.copy(b, 3);
  b.writeUInt16BE(text.length, 3 + codeBytes.length);
  text.copy(b, 5 + codeBytes.length);
  if (details === undefined) return encodeFrame((op | ANSWER_FLAG) & 0xff, id, [b]);
  const json = encodeJson(details);
  return encodeFrame((op | ANSWER_FLAG) & 0xff, id, [b, encodeU32(json.length), json]);
}

// Reads a body field by field; running off its end, or leaving bytes over, is a malformed frame.
export class Cursor {
  private at = 0;

  constructor(private readonly b: Buffer, private readonly what: string) {}

  u8(): number {
    this.need(1);
    return this.b[this.at++];
  }

  u16(): number {
    this.need(2);
    const v = this.b.readUInt16BE(this.at);
    this.at += 2;
    return v;
  }

  u32(): number {
    this.need(4);
    const v = this.b.readUInt32BE(this.at);
    this.at += 4;
    return v;
  }

  u64(): number {
    this.need(8);
    const v = Number(this.b.readBigUInt64BE(this.at));
    this.at += 8;
    return v;
  }

  bytes(n: number): Buffer {
    this.need(n);
    const v = this.b.subarray(this.at, this.at + n);
    this.at += n;
    return v;
  }

  address(): Address {
    return { log: this.u32(), segment: this.u32(), offset: this.u32() };
  }

  get left(): number {
    return this.b.length - this.at;
  }

  end(): void {
    if (this.at !== this.b.length) throw new SmfsError('SMFS_ERR_FRAME', `${this.what}: ${this.b.length - this.at} bytes left over at the end of the body`);
  }

  private need(n: number): void {
    if (this.at + n > this.b.length) throw new SmfsError('SMFS_ERR_FRAME', `${this.what}: the body ends ${this.at + n - this.b.length} bytes short`);
  }
}

export function encodeAddress(a: Address): Buffer {
  const b = Buffer.alloc(12);
  b.writeUInt32BE(a.log, 0);
  b.writeUInt32BE(a.segment, 4);
  b.writeUInt32BE(a.offset, 8);
  return b;
}

// A count and the addresses, in one buffer (a frame of one piece per address costs a socket
// writev of as many pieces).
export function encodeAddresses(addresses: Address[]): Buffer {
  const b = Buffer.allocUnsafe(4 + 12 * addresses.length);
  b.writeUInt32BE(addresses.length, 0);
  addresses.forEach((a, i) => {
    b.writeUInt32BE(a.log, 4 + 12 * i);
    b.writeUInt32BE(a.segment, 8 + 12 * i);
    b.writeUInt32BE(a.offset, 12 + 12 * i);
  });
  return b;
}

export function encodeU32(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v >>> 0, 0);
  return b;
}

export function encodeU64(v: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(v), 0);
  return b;
}

// The answers that carry a report (stat, clean, list, ...) carry it as JSON.
export function encodeJson(v: unknown): Buffer {
  return Buffer.from(JSON.stringify(v), 'utf8');
}

// An error answer's body (after the status byte), back into the error it was, with its details
// if it has any.
export function decodeError(body: Buffer): SmfsError {
  const c = new Cursor(body, 'error answer');
  const code = c.bytes(c.u16()).toString('ascii');
  const message = c.bytes(c.u16()).toString('utf8');
  let details: unknown;
  if (c.left >= 4) {
    try {
      details = JSON.parse(c.bytes(c.u32()).toString('utf8'));
    } catch {
      details = undefined;
    }
  }
  return new SmfsError(code as SmfsErrorCode, message, { details });
}
