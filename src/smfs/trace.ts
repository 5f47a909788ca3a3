// A trace of the mirror stream for experiments (`smfs storage --trace-mirror FILE`): one line
// per mirrored group, "send SEQ NS" where a primary hands it to its connection to the mirror and
// "recv SEQ NS" where a mirror takes it in, NS being CLOCK_MONOTONIC nanoseconds. Processes on
// one machine (the lab's namespaces) share that clock, so the two files give each group's
// latency from primary to mirror (smfs reproduce, figure 8). Off unless a file is given.
import fs from 'node:fs';

let fd: number | undefined;
let lines: string[] = [];
let timer: NodeJS.Timeout | undefined;

function flush(): void {
  if (fd === undefined || lines.length === 0) return;
  const text = lines.join('');
  lines = [];
  fs.writeSync(fd, text);
}

export function openMirrorTrace(file: string): void {
  fd = fs.openSync(file, 'a', 0o600);
  // Written a few times a second, and at exit; a process killed with SIGKILL loses the last lines.
  timer = setInterval(flush, 200);
  timer.unref();
  process.on('exit', flush);
}

export function traceMirror(kind: 'send' | 'recv', seq: number): void {
  if (fd === undefined) return;
  lines.push(`${kind} ${seq} ${process.hrtime.bigint()}\n`);
  if (lines.length >= 4096) flush();
}
