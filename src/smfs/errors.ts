// SMFS's typed errors. Every refusal of the store and of the storage, metadata and file servers
// carries one of these codes, on the wire as well as in-process; docs/smfs.md and
// docs/smfs-files.md list them and when each is given.
import { MaelstromError } from '../errors';

export type SmfsErrorCode =
  | 'SMFS_ERR_UNKNOWN_LOG'   // no log with that id on this server
  | 'SMFS_ERR_LOG_EXISTS'    // create-log of an id that is taken
  | 'SMFS_ERR_ADDRESS'       // no record starts at that address (out of range, or mid-record)
  | 'SMFS_ERR_FREED'         // the record at that address was freed
  | 'SMFS_ERR_TOO_LARGE'     // a record, a group or a frame over its limit
  | 'SMFS_ERR_CHECKSUM'      // a record's checksum in a request does not match its data
  | 'SMFS_ERR_FRAME'         // a malformed frame: bad magic, version, op or body
  | 'SMFS_ERR_REQUEST'       // a well-formed request that makes no sense (empty group, same address twice)
  | 'SMFS_ERR_CORRUPT'       // data on disk fails its checksum where no torn write can be
  | 'SMFS_ERR_IO'            // the disk refused (ENOSPC, EIO); the store stops taking writes
  | 'SMFS_ERR_LOCKED'        // another server holds the directory
  | 'SMFS_ERR_CLOSED'        // the store or the connection is shutting down
  | 'SMFS_ERR_READONLY'      // a change sent to a mirror: promote it first
  | 'SMFS_ERR_MIRROR'        // written locally, but not acknowledged at the level asked in time
  | 'SMFS_ERR_DIVERGED'     // the mirror's log is not a prefix of the primary's
  | 'SMFS_ERR_AUTH'          // a peer without the deployment's credential, or a credential file that cannot be used
  | 'SMFS_ERR_RECOVERING'    // a promoted mirror still taking the clients' cached groups: try again
  | 'SMFS_ERR_LOST_GROUPS'   // groups answered 'tagged' that the promoted mirror could not recover (details name them)
  | 'SMFS_ERR_UNAVAILABLE'   // a server this one depends on (storage, metadata) cannot be reached
  | 'SMFS_ERR_NOT_FOUND'     // file server: no file or directory at that path
  | 'SMFS_ERR_EXISTS'        // file server: something is already at that path
  | 'SMFS_ERR_NOT_DIR'       // file server: a path component, or a rename's target, is a file
  | 'SMFS_ERR_IS_DIR'        // file server: a file operation on a directory
  | 'SMFS_ERR_NOT_EMPTY'     // file server: removing or replacing a directory that has entries
  | 'SMFS_ERR_PATH';         // file server: a malformed path (empty component, '..', NUL, too long)

export class SmfsError extends MaelstromError<SmfsErrorCode> {
  // What the server sent beside the message, for errors a client acts on (SMFS_ERR_LOST_GROUPS).
  readonly details: unknown;

  constructor(code: SmfsErrorCode, message: string, options: { cause?: unknown; details?: unknown } = {}) {
    super(code, message, { cause: options.cause });
    this.name = 'SmfsError';
    this.details = options.details;
  }
}

export const SMFS_ERROR_CODES: readonly SmfsErrorCode[] = [
  'SMFS_ERR_UNKNOWN_LOG', 'SMFS_ERR_LOG_EXISTS', 'SMFS_ERR_ADDRESS', 'SMFS_ERR_FREED', 'SMFS_ERR_TOO_LARGE',
  'SMFS_ERR_CHECKSUM', 'SMFS_ERR_FRAME', 'SMFS_ERR_REQUEST', 'SMFS_ERR_CORRUPT', 'SMFS_ERR_IO',
  'SMFS_ERR_LOCKED', 'SMFS_ERR_CLOSED', 'SMFS_ERR_READONLY', 'SMFS_ERR_MIRROR', 'SMFS_ERR_DIVERGED', 'SMFS_ERR_AUTH', 'SMFS_ERR_RECOVERING', 'SMFS_ERR_LOST_GROUPS',
  'SMFS_ERR_UNAVAILABLE', 'SMFS_ERR_NOT_FOUND', 'SMFS_ERR_EXISTS', 'SMFS_ERR_NOT_DIR', 'SMFS_ERR_IS_DIR', 'SMFS_ERR_NOT_EMPTY', 'SMFS_ERR_PATH',
];

export function isSmfsErrorCode(code: string): code is SmfsErrorCode {
  return (SMFS_ERROR_CODES as readonly string[]).includes(code);
}
