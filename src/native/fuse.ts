// The TypeScript side of the addon's FUSE binding (native/bindings/fuse.cc): requests as the
// kernel sent them, batched, and the answers, by request id. Loaded through addon().
import { addon } from './addon';

export type FuseOp =
  | 'lookup' | 'forget' | 'getattr' | 'setattr' | 'readlink' | 'mknod' | 'mkdir' | 'unlink' | 'rmdir' | 'symlink' | 'rename' | 'link'
  | 'open' | 'read' | 'write' | 'flush' | 'release' | 'fsync' | 'opendir' | 'readdir' | 'releasedir' | 'fsyncdir' | 'statfs' | 'create'
  | 'access' | 'fallocate';

// One request; which fields are set depends on op (native/fuse/session.h, struct Request).
export interface FuseRequest {
  id: number;            // answer under it (0 for forget, which takes no answer)
  op: FuseOp;
  ino: number;           // the node, or the parent directory of lookup, mkdir, create, ...
  name?: Buffer;         // an entry's name as the kernel gave it (bytes)
  newParent?: number;    // rename, link
  newName?: Buffer;      // rename, link
  target?: Buffer;       // symlink
  mode?: number;         // mkdir, mknod, create
  flags?: number;        // open, create: open(2) flags; rename: RENAME_*; fsync: datasync; access: mask; fallocate: mode
  off?: number;
  size?: number;         // read, readdir: bytes asked; fallocate: length
  data?: Buffer;         // write
  fh?: number;
  nlookup?: number;      // forget
  toSet?: number;        // setattr: which of the set* fields apply (fuseConstants.setAttr*)
  setMode?: number;
  setUid?: number;
  setGid?: number;
  setSize?: number;
  atime?: [number, number];
  mtime?: [number, number];
  uid?: number;          // the caller's
  gid?: number;
  pid?: number;
}

// [ino, mode, nlink, uid, gid, size, atimeS, atimeNs, mtimeS, mtimeNs, ctimeS, ctimeNs]
export type FuseAttr = [number, number, number, number, number, number, number, number, number, number, number, number];

export interface FuseMountOptions {
  mountpoint: string;
  fsname?: string;
  allowOther?: boolean;   // default true
  autoUnmount?: boolean;  // default true: fusermount3 unmounts when the process dies
  entryTimeout?: number;  // seconds the kernel may cache a name (default 1)
  attrTimeout?: number;   // seconds it may cache attributes (default 1)
  maxWrite?: number;      // bytes in one write request (default 1 MiB)
  readaheadKb?: number;   // the kernel's readahead for the mount, set through sysfs as root (default 1024; 0: the kernel's 128)
}

export interface NativeFuseMount {
  reply(id: number, errno: number): boolean;
  replyEntry(id: number, attr: FuseAttr): boolean;
  replyAttr(id: number, attr: FuseAttr): boolean;
  replyOpen(id: number, fh: number, directIo: boolean, keepCache: boolean): boolean;
  replyCreate(id: number, attr: FuseAttr, fh: number, directIo: boolean, keepCache: boolean): boolean;
  replyWrite(id: number, count: number): boolean;
  replyData(id: number, data: Buffer): boolean;
  replyReadlink(id: number, target: string): boolean;
  // [bsize, blocks, bfree, bavail, files, ffree, namemax]
  replyStatfs(id: number, s: [number, number, number, number, number, number, number]): boolean;
  // [name, ino, mode, offset of the next entry]; as many as fit in size bytes
  replyDir(id: number, size: number, entries: [string, number, number, number][]): boolean;
  inFlight(): number;
  readaheadKb(): number;  // in effect, once the connection is up; -1 before or when unknown (not root)
  stop(): void;
}

export interface FuseConstants {
  setAttrMode: number; setAttrUid: number; setAttrGid: number; setAttrSize: number; setAttrAtime: number; setAttrMtime: number;
  setAttrAtimeNow: number; setAttrMtimeNow: number; renameNoreplace: number; renameExchange: number; libfuse: string;
}

interface FuseAddon {
  FuseMount: new (options: FuseMountOptions, onRequests: (requests: FuseRequest[]) => void, onEnded: (errno: number) => void) => NativeFuseMount;
  fuseConstants: FuseConstants;
}

export function fuseAddon(): FuseAddon {
  return addon() as unknown as FuseAddon;
}
