// Small file helpers the store shares: positional reads that insist on every byte, directory
// fsync (a new or renamed file is only durable once its directory is), and the async calls the
// writer uses, so a slow disk stalls the writer but not the readers or the network.
import fs from 'node:fs';
import { promisify } from 'node:util';

export function readAt(fd: number, position: number, length: number): Buffer {
  const b = Buffer.allocUnsafe(length);
  let done = 0;
  while (done < length) {
    const n = fs.readSync(fd, b, done, length - done, position + done);
    if (n === 0) return b.subarray(0, done);
    done += n;
  }
  return b;
}

export function fsyncDirectory(dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

const read = promisify(fs.read);
const writev = promisify(fs.writev);

export async function readExactly(fd: number, position: number, length: number): Promise<Buffer> {
  const b = Buffer.allocUnsafe(length);
  let done = 0;
  while (done < length) {
    const { bytesRead } = await read(fd, b, done, length - done, position + done);
    if (bytesRead === 0) throw new Error(`short read: ${done} of ${length} bytes at ${position}`);
    done += bytesRead;
  }
  return b;
}

// writev until every byte is down (libuv returns short writes as they come).
export async function writeAllAt(fd: number, buffers: Uint8Array[], position: number): Promise<void> {
  let pending = buffers.filter((b) => b.length > 0);
  let at = position;
  while (pending.length > 0) {
    const { bytesWritten: n } = await writev(fd, pending as NodeJS.ArrayBufferView[], at);
    at += n;
    let skip = n;
    const rest: Uint8Array[] = [];
    for (const b of pending) {
      if (skip >= b.length) skip -= b.length;
      else {
        rest.push(skip > 0 ? b.subarray(skip) : b);
        skip = 0;
      }
    }
    pending = rest;
  }
}

export const fdatasync = promisify(fs.fdatasync);
export const ftruncate = promisify(fs.ftruncate);

const openAsync = promisify(fs.open);
const closeAsync = promisify(fs.close);
const fsyncAsync = promisify(fs.fsync);

export async function fsyncDirectoryAsync(dir: string): Promise<void> {
  const fd = await openAsync(dir, 'r');
  try {
    await fsyncAsync(fd);
  } finally {
    await closeAsync(fd);
  }
}
