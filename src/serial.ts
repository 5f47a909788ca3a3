// Work that must not interleave (a file server's updates, a metadata server's changes of
// state): each run starts once the one before it has settled, in the order asked; a failed run
// does not stop the ones after it.
export class Serial {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.tail.catch(() => undefined).then(fn);
    this.tail = run;
    return run;
  }

  // Resolves once everything asked so far has settled.
  idle(): Promise<void> {
    return this.tail.then(() => undefined, () => undefined);
  }
}
