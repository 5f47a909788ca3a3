// Writes one frame's buffers to a socket in one go. A frame is a list of buffers (a header, then
// the body's parts: an append carries two per record), and a socket.write per buffer is a system
// call per buffer; corked, Node hands them all to one writev (the buffers are not copied).
import type { Writable } from 'node:stream';

export function writeFrame(socket: Writable, buffers: readonly Uint8Array[]): boolean {
  if (buffers.length === 1) return socket.write(buffers[0]);
  socket.cork();
  let ok = true;
  for (const b of buffers) ok = socket.write(b);
  socket.uncork();
  return ok;
}
