// Strings in the metadata and file servers' frames: u16 length, then UTF-8. Text that is not
// valid UTF-8 is refused rather than read with replacement characters, so a path names
// exactly the bytes that were sent.
import { SmfsError } from './errors';
import type { SmfsErrorCode } from './errors';
import type { Cursor } from './wire';

const strict = new TextDecoder('utf-8', { fatal: true });

export function encodeU16(v: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(v, 0);
  return b;
}

export function encodeText(text: string): Buffer {
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.length > 0xffff) throw new SmfsError('SMFS_ERR_REQUEST', `a string of ${bytes.length} bytes; frames carry at most 65535`);
  return Buffer.concat([encodeU16(bytes.length), bytes]);
}

export function readU16(c: Cursor): number {
  return (c.u8() << 8) | c.u8();
}

export function readText(c: Cursor, what: string, code: SmfsErrorCode = 'SMFS_ERR_FRAME'): string {
  const bytes = c.bytes(readU16(c));
  try {
    return strict.decode(bytes);
  } catch {
    throw new SmfsError(code, `${what} is not valid UTF-8`);
  }
}
