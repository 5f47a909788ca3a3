// Paths in the file server's tree: UTF-8, components separated by '/', a leading '/' optional
// ("a/b" and "/a/b" are the same file), one trailing '/' allowed. "/" is the root.
import { SmfsError } from '../errors';
import { MAX_NAME_BYTES, MAX_PATH_BYTES } from './format';

// The components of a path; [] for the root.
export function parsePath(path: string): string[] {
  const bad = (why: string) => new SmfsError('SMFS_ERR_PATH', `bad path ${JSON.stringify(path.length > 80 ? `${path.slice(0, 80)}...` : path)}: ${why}`);
  if (typeof path !== 'string' || path === '') throw bad('it is empty');
  if (Buffer.byteLength(path, 'utf8') > MAX_PATH_BYTES) throw bad(`a path has at most ${MAX_PATH_BYTES} bytes`);
  if (path.includes('\0')) throw bad('it holds a NUL byte');
  if (path === '/') return [];
  const inner = path.replace(/^\//, '').replace(/\/$/, '');
  const parts = inner.split('/');
  for (const p of parts) {
    if (p === '') throw bad('an empty component (two slashes in a row)');
    if (p === '.' || p === '..') throw bad(`'${p}' is not a name here; paths are absolute, from the root`);
    if (Buffer.byteLength(p, 'utf8') > MAX_NAME_BYTES) throw bad(`a name has at most ${MAX_NAME_BYTES} bytes`);
  }
  return parts;
}

export function joinPath(parts: string[]): string {
  return `/${parts.join('/')}`;
}
