// Reading several records at once (the storage server's read-many): records that lie one after
// the other in one segment file, as the blocks of a file written in one update do, are read with
// one pread of the span they cover, and each is sliced out of it. Gaps between them (a record
// header, a few bytes of records not asked for) are read and dropped; a larger gap, another
// segment, or a record before the last one starts a new run.

export interface Wanted<K> {
  file: K;          // the segment (anything compared with ===)
  position: number; // where the record's data starts in the file
  length: number;
}

export interface Run<K> {
  file: K;
  position: number;
  length: number;    // bytes of the file to read, from position
  members: number[]; // indexes of the wanted records it covers, in the order given
}

// Bytes of the file read and dropped between two records of one run, at most (raw segments put
// an 8-byte header between records, compacted ones 12).
export const MAX_GAP = 4096;
// One read at most this long: a run longer is cut (a record longer than it is a run alone).
export const MAX_RUN = 8 * 1024 * 1024;

export function readRuns<K>(wanted: readonly Wanted<K>[], maxGap = MAX_GAP, maxRun = MAX_RUN): Run<K>[] {
  const runs: Run<K>[] = [];
  let run: Run<K> | undefined;
  wanted.forEach((w, i) => {
    if (run) {
      const end = run.position + run.length;
      const newEnd = w.position + w.length;
      if (w.file === run.file && w.position >= end && w.position - end <= maxGap && newEnd - run.position <= maxRun) {
        run.length = newEnd - run.position;
        run.members.push(i);
        return;
      }
    }
    run = { file: w.file, position: w.position, length: w.length, members: [i] };
    runs.push(run);
  });
  return runs;
}

// The records of each run, sliced out of what was read for it (`read[k]` for `runs[k]`), in
// the order they were wanted.
export function sliceRuns<K>(wanted: readonly Wanted<K>[], runs: readonly Run<K>[], read: readonly Buffer[]): Buffer[] {
  const out: Buffer[] = new Array(wanted.length);
  runs.forEach((run, k) => {
    for (const i of run.members) {
      const at = wanted[i].position - run.position;
      out[i] = read[k].subarray(at, at + wanted[i].length);
    }
  });
  return out;
}
