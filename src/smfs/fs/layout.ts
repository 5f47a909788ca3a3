// Lays a draft out as one append group, as LFS writes: depth first, each changed file's new data
// blocks (blocks a patch kept are pointed at where they are) and then its inode, each changed directory's blocks and inode after its changed
// children, the root inode last, so the log's newest record is always the newest root.
// Pointers to records of the same group are distances back (format.ts); once the storage
// server has answered with the addresses, `commit` checks that they are laid out as assumed
// and gives the draft's nodes their addresses.
import type { Address } from '../format';
import { LIMITS, RECORD_HEADER, formatAddress } from '../format';
import { SmfsError } from '../errors';
import { MAX_BLOCKS, encodeDirBlock, encodeInode, packEntries } from './format';
import type { Pointer } from './format';
import type { DirNode, TreeNode } from './tree';

interface Placed {
  inode: number;                // record index of the node's inode
  pointers: (Address | number)[]; // its blocks: committed ones kept, or record indexes of this group
}

export interface GroupPlan {
  records: Buffer[];
  commit(addresses: Address[]): void;
}

class GroupBuilder {
  readonly records: Buffer[] = [];
  readonly offsets: number[] = []; // of each record, from the first record's address
  private end = 0;

  // Where the next record will start, from the first record's address.
  get next(): number {
    return this.end;
  }

  add(record: Buffer): number {
    this.offsets.push(this.end);
    this.records.push(record);
    this.end += RECORD_HEADER + record.length;
    return this.records.length - 1;
  }

  // A pointer, written into the record that will start at `from`, to a committed node or to
  // a record of this group.
  pointer(target: Address | number, from: number): Pointer {
    return typeof target === 'number' ? { back: from - this.offsets[target] } : { address: target };
  }
}

function tooLarge(what: string, blocks: number): SmfsError {
  return new SmfsError('SMFS_ERR_TOO_LARGE', `${what} needs ${blocks} blocks; an inode holds at most ${MAX_BLOCKS}`);
}

export function layOut(root: DirNode, update: number): GroupPlan {
  const g = new GroupBuilder();
  const placed = new Map<TreeNode, Placed>();

  const inodeOf = (node: TreeNode): Address | number => node.inode ?? placed.get(node)!.inode;

  const place = (node: TreeNode, name: string): number => {
    const blocks: number[] = [];
    let pointers: (Address | number)[];
    let size: number;
    if (node.kind === 'file') {
      pointers = (node.draft ?? node.blocks).map((b) => (Buffer.isBuffer(b) ? g.add(b) : b));
      size = node.size;
    } else if (node.kind === 'symlink') {
      pointers = [];
      size = Buffer.byteLength(node.target, 'utf8');
    } else {
      const names = [...node.entries.keys()].sort();
      for (const n of names) {
        const child = node.entries.get(n)!;
        if (!child.inode) place(child, n);
      }
      const packed = packEntries(names.map((n) => ({ name: n, node: node.entries.get(n)! })));
      if (packed.length > MAX_BLOCKS) throw tooLarge(`directory ${name} with ${names.length} entries`, packed.length);
      for (const entries of packed) {
        const at = g.next;
        blocks.push(g.add(encodeDirBlock(entries.map((e) => ({ name: e.name, inode: g.pointer(inodeOf(e.node), at) })))));
      }
      pointers = blocks;
      size = names.length;
    }
    const at = g.next;
    const inode = g.add(encodeInode({
      type: node.kind, root: node === root, size, mtime: node.mtime, mode: node.mode, uid: node.uid, gid: node.gid, update,
      blocks: pointers.map((b) => g.pointer(b, at)), target: node.kind === 'symlink' ? node.target : undefined,
    }));
    placed.set(node, { inode, pointers });
    return inode;
  };

  place(root, '/');
  const bytes = g.records.reduce((n, r) => n + r.length, 0);
  if (bytes > LIMITS.groupBytes || g.records.length > LIMITS.groupRecords) {
    throw new SmfsError('SMFS_ERR_TOO_LARGE', `the update needs ${g.records.length} records of ${bytes} bytes; one update is one append of at most ${LIMITS.groupRecords} records and ${LIMITS.groupBytes} bytes`);
  }

  return {
    records: g.records,
    commit(addresses: Address[]): void {
      const first = addresses[0];
      addresses.forEach((a, i) => {
        if (a.log !== first.log || a.segment !== first.segment || a.offset - first.offset !== g.offsets[i]) {
          throw new SmfsError('SMFS_ERR_CORRUPT', `record ${i} of update ${update} went to ${formatAddress(a)}, not ${g.offsets[i]} bytes after ${formatAddress(first)} in the same segment; its relative pointers are wrong. Is this storage server's format the one docs/smfs.md describes?`);
        }
      });
      for (const [node, p] of placed) {
        node.inode = addresses[p.inode];
        node.blocks = p.pointers.map((b) => (typeof b === 'number' ? addresses[b] : b));
        if (node.kind === 'file') delete node.draft;
      }
    },
  };
}
