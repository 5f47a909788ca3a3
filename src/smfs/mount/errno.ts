// What a FUSE request is answered when it fails: POSIX errnos (os.constants), and the one table
// from the file server's codes to them.
import os from 'node:os';
import { SmfsError } from '../errors';
import type { SmfsErrorCode } from '../errors';

export const E = os.constants.errno;

export class FsError extends Error {
  constructor(readonly errno: number, message: string) {
    super(message);
  }
}

export function fail(errno: number, message = ''): never {
  throw new FsError(errno, message);
}

const BY_CODE: Partial<Record<SmfsErrorCode, number>> = {
  SMFS_ERR_NOT_FOUND: E.ENOENT,
  SMFS_ERR_EXISTS: E.EEXIST,
  SMFS_ERR_NOT_DIR: E.ENOTDIR,
  SMFS_ERR_IS_DIR: E.EISDIR,
  SMFS_ERR_NOT_EMPTY: E.ENOTEMPTY,
  SMFS_ERR_PATH: E.EINVAL,
  SMFS_ERR_TOO_LARGE: E.EFBIG,
  SMFS_ERR_AUTH: E.EACCES,
  SMFS_ERR_READONLY: E.EROFS,
};

// The errno for anything a request failed with: our own FsError as it is; a file server's
// code by the table; anything else (the file server or its storage gone, a disk error, a bug)
// is EIO.
export function errnoOf(err: unknown): number {
  if (err instanceof FsError) return err.errno;
  if (err instanceof SmfsError) {
    if (err.code === 'SMFS_ERR_IO' && /ENOSPC|no space/i.test(err.message)) return E.ENOSPC;
    return BY_CODE[err.code] ?? E.EIO;
  }
  return E.EIO;
}
