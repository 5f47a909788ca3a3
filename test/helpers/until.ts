// Polls until `done` is true: true when it became so, false once timeoutMs has passed. For what
// no event announces (a counter read over a socket, a process gone, a file written).
export async function until(done: () => boolean, timeoutMs: number, intervalMs = 20): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
  return true;
}
