// `maelstrom up --daemon` and `maelstrom down`. The daemon is a detached copy of the same
// command (same arguments, its output appended to a log file) that tells the starting process
// over an IPC channel when it is up, or why it failed, and then runs on alone. `down` stops it:
// the gateway answering on the control socket must confirm the PID file's process as its own
// before it is sent SIGTERM.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { connectControl } from '../gateway/control';
import { MaelstromError, isErrorCode } from '../errors';
import { commandLine, processAlive, readPidFile, removePidFile } from '../gateway/pid-file';

const CHILD_ENV = 'MAELSTROM_DAEMON_CHILD';
const START_TIMEOUT_MS = 30_000;

// This process is the daemon copy: marked by the parent, with the IPC channel to it.
const daemonChild = process.env[CHILD_ENV] === '1' && typeof process.send === 'function';
delete process.env[CHILD_ENV];

export function isDaemonChild(): boolean {
  return daemonChild;
}

type ChildMessage = { event: 'up'; report: Record<string, unknown> } | { event: 'error'; code?: string; message: string };

function tellParent(message: ChildMessage): Promise<void> {
  if (!daemonChild || !process.connected) return Promise.resolve();
  return new Promise((resolve) => {
    process.send!(message, undefined, {}, () => {
      if (process.connected) process.disconnect(); // the channel would keep this process alive
      resolve();
    });
  });
}

// In the daemon copy: its start report goes to the waiting parent.
export function announceUp(report: Record<string, unknown>): Promise<void> {
  return tellParent({ event: 'up', report });
}

// Runs the start of the gateway; in the daemon copy, a failure is told to the parent first.
export async function relayFailure<T>(start: () => Promise<T>): Promise<T> {
  try {
    return await start();
  } catch (err) {
    await tellParent({ event: 'error', code: (err as MaelstromError).code, message: (err as Error).message });
    throw err;
  }
}

// Starts the daemon copy of this command and waits until it is up; its start report, or its
// failure with its code, message and exit status.
export async function startDaemon(logFile: string, timeoutMs = START_TIMEOUT_MS): Promise<Record<string, unknown>> {
  fs.mkdirSync(path.dirname(logFile), { recursive: true, mode: 0o700 });
  const log = fs.openSync(logFile, 'a', 0o600);
  const child = (() => {
    try {
      return spawn(process.execPath, [...process.execArgv, process.argv[1], ...process.argv.slice(2)], {
        detached: true, stdio: ['ignore', log, log, 'ipc'], env: { ...process.env, [CHILD_ENV]: '1' },
      });
    } finally {
      fs.closeSync(log);
    }
  })();
  return new Promise((resolve, reject) => {
    let failure: { code?: string; message: string } | undefined;
    const timer = setTimeout(() => {
      child.kill('SIGTERM');
      reject(new MaelstromError('MAELSTROM_ERR_DAEMON', `the gateway daemon (pid ${child.pid}) was not up after ${timeoutMs / 1000} s and was stopped: see its log ${logFile}`));
    }, timeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(new MaelstromError('MAELSTROM_ERR_DAEMON', `cannot start the gateway daemon: ${err.message}`, { cause: err }));
    });
    child.on('message', (m: ChildMessage) => {
      if (m.event === 'error') {
        failure = m;
        return;
      }
      clearTimeout(timer);
      child.removeAllListeners('exit');
      child.disconnect();
      child.unref();
      resolve(m.report);
    });
    child.once('exit', (status, signal) => {
      clearTimeout(timer);
      const exitCode = status ?? undefined;
      if (failure && isErrorCode(failure.code)) {
        reject(new MaelstromError(failure.code, failure.message, { exitCode }));
      } else {
        reject(new MaelstromError('MAELSTROM_ERR_DAEMON',
          `the gateway daemon exited (${signal ?? `status ${status}`}) before it was up${failure ? `: ${failure.message}` : ''}; see its log ${logFile}`, { exitCode }));
      }
    });
  });
}

// The status of the gateway answering on the control socket, or undefined when none answers
// within the time.
export async function gatewayStatus(control: string, timeoutMs = 2000): Promise<Record<string, unknown> | undefined> {
  let sock;
  try {
    sock = await connectControl(control);
  } catch {
    return undefined;
  }
  const lines = readline.createInterface({ input: sock });
  const timer = setTimeout(() => sock.destroy(), timeoutMs);
  try {
    sock.write(JSON.stringify({ cmd: 'status' }) + '\n');
    for await (const line of lines) return JSON.parse(line) as Record<string, unknown>;
    return undefined;
  } catch {
    return undefined;
  } finally {
    clearTimeout(timer);
    sock.destroy();
  }
}

async function exited(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (processAlive(pid)) {
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return true;
}

export interface StopResult {
  stopped?: { pid: number; status: Record<string, unknown> };
  notes: string[]; // what was found and cleaned up on the way
}

// Stops the daemon the PID file names, once the gateway on the control socket confirms it.
// A stale PID file (no such process, or not the gateway) is removed and its process left alone.
export async function stopDaemon(pidFile: string, control: string, timeoutMs: number): Promise<StopResult> {
  const notes: string[] = [];
  const pid = readPidFile(pidFile);
  const status = await gatewayStatus(control);
  if (typeof pid === 'number' && status?.pid === pid) {
    process.kill(pid, 'SIGTERM');
    if (!(await exited(pid, timeoutMs))) {
      throw new MaelstromError('MAELSTROM_ERR_DAEMON',
        `the gateway (pid ${pid}) did not exit within ${timeoutMs / 1000} s of SIGTERM; its PID file stays: see its log, then kill -KILL ${pid} and run maelstrom down again`);
    }
    removePidFile(pidFile);
    return { stopped: { pid, status }, notes };
  }
  if (pid === 'invalid') {
    removePidFile(pidFile);
    notes.push(`removed ${pidFile}: it held no process ID`);
  } else if (typeof pid === 'number') {
    const cmd = processAlive(pid) ? commandLine(pid) : undefined;
    if (cmd !== undefined && /maelstrom/.test(cmd) && !status) {
      // Maybe a gateway that has lost its control socket, or hangs: not verifiable, not ours to kill.
      throw new MaelstromError('MAELSTROM_ERR_DAEMON',
        `${pidFile} names process ${pid} (${cmd}), but no gateway answers on ${control} to confirm it: look at it, stop it yourself (kill ${pid}), then run maelstrom down again`);
    }
    removePidFile(pidFile);
    notes.push(`removed stale PID file ${pidFile}: ${cmd === undefined ? `no process ${pid}` : `process ${pid} is not the gateway (${cmd || 'command unknown'}); it was not signalled`}`);
  }
  if (status) {
    throw new MaelstromError('MAELSTROM_ERR_ALREADY_RUNNING',
      `a gateway (pid ${status.pid}) answers on ${control}, but no PID file names it (${pidFile}): it runs in the foreground (stop it there, or kill ${status.pid}) or with another --pid-file`);
  }
  return { notes };
}
