// What `smfs reproduce` has running, so that Ctrl-C (or SIGTERM) removes all of it: processes
// it started (killed by PID), the labs (namespaces), temporary directories, and the gateways'
// directories under /run/maelstrom. The lab's own signal handler (topology.ts) deletes the
// namespaces; this one runs first, kills what runs in them, and exits once that handler has.
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import type { Lab } from '../lab';
import { destroyTopology } from '../topology';

export const tracked = {
  children: new Set<ChildProcess>(),
  labs: new Set<Lab>(),
  dirs: new Set<string>(),
};

export function untrack(...children: ChildProcess[]): void {
  for (const c of children) tracked.children.delete(c);
}

let installed = false;
let aborting = false;

export function abortRequested(): boolean {
  return aborting;
}

// onAbort: told first (a progress bar to stop, a message to print).
export function installAbort(onAbort: (signal: string) => void): void {
  if (installed) return;
  installed = true;
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(signal, () => {
      if (aborting) {
        // The lab's handler raised the signal again after removing the namespaces.
        process.exit(130);
      }
      aborting = true;
      onAbort(signal);
      for (const c of tracked.children) {
        if (c.exitCode === null && c.signalCode === null && c.pid) {
          try { process.kill(c.pid, 'SIGKILL'); } catch { /* gone already */ }
        }
      }
      for (const lab of tracked.labs) destroyTopology(lab.topology);
      for (const d of tracked.dirs) fs.rmSync(d, { recursive: true, force: true });
      // With no lab handler installed (no lab made yet), nothing raises it again.
      setImmediate(() => process.exit(130));
    });
  }
}
