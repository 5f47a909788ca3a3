// One server per store directory: a LOCK file naming the holder's pid and its start time (from
// /proc, so a recycled pid is not taken for the holder). A lock whose holder is gone, as after
// SIGKILL, is taken over. Node has no flock(2); two servers starting on the same directory in
// the same instant as a dead holder's could both take it over, which docs/smfs.md notes.
import fs from 'node:fs';
import path from 'node:path';
import { SmfsError } from './errors';

export const LOCK_FILE = 'LOCK';

function startTime(pid: number): string | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Field 22, counted after the command name, which may hold spaces and parentheses.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

function alive(pid: number, started: string | undefined): boolean {
  const now = startTime(pid);
  if (now !== undefined) return started === undefined || now === started;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export class DirectoryLock {
  private constructor(private readonly file: string, private readonly content: string) {}

  static take(dir: string): DirectoryLock {
    const file = path.join(dir, LOCK_FILE);
    const content = `${process.pid} ${startTime(process.pid) ?? '-'}\n`;
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        fs.writeFileSync(file, content, { flag: 'wx' });
        return new DirectoryLock(file, content);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      const [pidText, started] = readLock(file);
      const pid = Number(pidText);
      if (Number.isInteger(pid) && pid > 0 && alive(pid, started === '-' ? undefined : started)) {
        throw new SmfsError('SMFS_ERR_LOCKED', `${dir} is in use by process ${pid} (${file}); stop that server first, or give another --dir`);
      }
      fs.rmSync(file, { force: true });
    }
    throw new SmfsError('SMFS_ERR_LOCKED', `${dir}: could not take ${file}; another server may be starting on it`);
  }

  release(): void {
    try {
      if (fs.readFileSync(this.file, 'utf8') === this.content) fs.rmSync(this.file);
    } catch {
      // Gone already: nothing to release.
    }
  }
}

function readLock(file: string): string[] {
  try {
    return fs.readFileSync(file, 'utf8').trim().split(/\s+/);
  } catch {
    return [];
  }
}
