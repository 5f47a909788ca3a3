// PID files of gateway daemons: the process ID and a newline, /run/maelstrom/<lan>.pid unless
// --pid-file says otherwise. A PID file is only a hint: `down` signals the process it names only
// once the gateway on the control socket confirms that PID as its own.
import fs from 'node:fs';
import path from 'node:path';
import { runDir } from './control';
import { MaelstromError } from '../errors';

export function defaultPidPath(lan: string): string {
  return path.join(runDir(), `${lan}.pid`);
}

export function defaultLogPath(lan: string): string {
  return path.join(runDir(), `${lan}.log`);
}

// The PID a file holds: a number, 'missing' (no file) or 'invalid' (anything else).
export function readPidFile(file: string): number | 'missing' | 'invalid' {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'missing';
    throw new MaelstromError('MAELSTROM_ERR_DAEMON', `cannot read the PID file ${file}: ${(err as Error).message}`);
  }
  const pid = Number(text.trim());
  return /^\d+$/.test(text.trim()) && Number.isSafeInteger(pid) && pid > 1 ? pid : 'invalid';
}

// Whether a process with this PID runs: a zombie (exited, not yet reaped) does not.
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false; // gone between the two looks
  }
}

// What the process's command line says, for messages ('' when it cannot be read).
export function commandLine(pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean).join(' ');
  } catch {
    return '';
  }
}

// Writes pid to file, atomically; refuses when the file names another process that runs.
export function writePidFile(file: string, pid: number): void {
  const held = readPidFile(file);
  if (typeof held === 'number' && held !== pid && processAlive(held)) {
    throw new MaelstromError('MAELSTROM_ERR_ALREADY_RUNNING',
      `the PID file ${file} names process ${held}, which runs (${commandLine(held) || 'command unknown'}): stop it (maelstrom down) or give another --pid-file`);
  }
  const dir = path.dirname(file);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const temp = path.join(dir, `.${path.basename(file)}.${pid}`);
  fs.writeFileSync(temp, `${pid}\n`, { mode: 0o644 });
  fs.renameSync(temp, file);
}

// Removes the PID file if it still names pid (or always, without pid).
export function removePidFile(file: string, pid?: number): void {
  if (pid === undefined || readPidFile(file) === pid) fs.rmSync(file, { force: true });
}
