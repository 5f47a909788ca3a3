// `smfs mount` with real programs on it (tar, diff, git, sqlite3, postmark), the errno of every
// refusal, a file server that goes away, the lifecycle (SIGTERM, smfs unmount, SIGKILL), and
// the disaster through the lab: the primary killed in the middle of a tar, the mirror promoted,
// the tree mounted from the mirror site. Needs root and /dev/fuse.
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import readline from 'node:readline';
import fs from 'node:fs';
import os from 'node:os';

import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { SMFS_BIN, testCredential, withDir } from '../helpers/smfs';
import { forceUnmount, run, smfsMounts, startFileServers, startMount } from '../helpers/smfs-mount';
import { Lab } from '../../src/lab/lab';
import { startGateways } from '../../src/lab/gateways';
import { promoteMirror, startSmfsPair } from '../../src/lab/smfs';
import { ADDRESSES } from '../../src/lab/topology';
import type { FileServers, MountChild } from '../helpers/smfs-mount';
import { until } from '../helpers/until';

const ROOT = path.resolve(__dirname, '..', '..', '..');
const TREE = ['src', 'docs', 'native'];

// This project's own files as a tarball, made once, removed when the tests end.
let tarball: string | undefined;
function projectTarball(): string {
  if (!tarball) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'smfs-mount-tar-'));
    process.once('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
    tarball = path.join(dir, 'project.tar');
    const r = spawnSync('tar', ['-C', ROOT, '-cf', tarball, ...TREE]);
    assert.is(r.status, 0, String(r.stderr));
  }
  return tarball;
}

interface Ctx {
  dir: string;
  mnt: string;
  servers: FileServers;
  mount: MountChild;
  remount(args?: string[]): Promise<void>;
}

// File servers and a mount in a temporary directory; everything stopped and unmounted after,
// also when the test fails.
async function withMount(fn: (c: Ctx) => Promise<void>, args: string[] = [], options: { mirrored?: boolean } = {}): Promise<void> {
  await withDir('mount', async (dir) => {
    const mnt = path.join(dir, 'mnt');
    fs.mkdirSync(mnt);
    const servers = await startFileServers(dir, options);
    const c: Ctx = {
      dir, mnt, servers, mount: undefined as unknown as MountChild,
      async remount(more = args) {
        const { code } = await c.mount.stop();
        assert.is(code, 0, `the mount committed everything and exited 0: ${c.mount.stderr()}`);
        c.mount = await startMount(mnt, servers.server, more);
      },
    };
    try {
      c.mount = await startMount(mnt, servers.server, args);
      await fn(c);
    } finally {
      await c.mount?.stop();
      await servers.stop();
      forceUnmount(mnt);
    }
  });
}

function sh(script: string, cwd: string, timeoutMs = 120_000) {
  return run('bash', ['-c', `set -e -o pipefail; ${script}`], { cwd, timeoutMs });
}

const programs = suite('smfs mount: real programs');

programs('untar this project\'s src, docs and native: diff -r finds nothing, also after a remount', async () => {
  await withMount(async (c) => {
    const tar = projectTarball();
    const t0 = Date.now();
    let r = await sh(`mkdir tree && tar -C tree -xf ${tar}`, c.mnt);
    assert.is(r.status, 0, r.stderr);
    const seconds = (Date.now() - t0) / 1000;
    for (const d of TREE) {
      r = await run('diff', ['-r', path.join(ROOT, d), path.join(c.mnt, 'tree', d)]);
      assert.is(r.status, 0, `diff -r ${d}: ${r.stdout.slice(0, 2000)}`);
    }
    await c.remount();
    for (const d of TREE) {
      r = await run('diff', ['-r', path.join(ROOT, d), path.join(c.mnt, 'tree', d)]);
      assert.is(r.status, 0, `after the remount, diff -r ${d}: ${r.stdout.slice(0, 2000)}`);
    }
    const files = Number((await sh('find tree -type f | wc -l', c.mnt)).stdout.trim());
    console.log(`  ${files} files untarred in ${seconds.toFixed(1)} s`);
    assert.ok(files > 100);
  });
});

programs('git: init, commit the tree, fsck --full, and a second clone from the mount (to a local disk and onto the mount)', async () => {
  await withMount(async (c) => {
    const tar = projectTarball();
    const git = 'git -c user.email=t@example.com -c user.name=t -c init.defaultBranch=main';
    let r = await sh(`mkdir repo && tar -C repo -xf ${tar} && cd repo && ${git} init -q && ${git} add -A && ${git} commit -qm tree && ${git} fsck --full`, c.mnt);
    assert.is(r.status, 0, r.stderr);
    const local = path.join(c.dir, 'clone');
    r = await run('git', ['clone', '-q', path.join(c.mnt, 'repo'), local]);
    assert.is(r.status, 0, r.stderr);
    for (const d of TREE) assert.is((await run('diff', ['-r', path.join(ROOT, d), path.join(local, d)])).status, 0, `the clone's ${d}`);
    r = await sh(`${git} clone -q repo clone2 && cd clone2 && ${git} fsck --full && ${git} log --oneline | wc -l`, c.mnt);
    assert.is(r.status, 0, r.stderr);
    assert.is(r.stdout.trim(), '1');
    await c.remount();
    r = await sh(`cd repo && ${git} fsck --full && ${git} status --porcelain | wc -l`, c.mnt);
    assert.is(r.status, 0, r.stderr);
    assert.is(r.stdout.trim(), '0', 'the work tree is clean after a remount');
  });
});

programs('sqlite3: 2,000 transactions, then PRAGMA integrity_check says ok, also after a remount', async () => {
  await withMount(async (c) => {
    const n = 2000;
    const lines = ['PRAGMA journal_mode=WAL;', 'CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT, n INTEGER);'];
    for (let i = 0; i < n; i++) lines.push(`BEGIN; INSERT INTO t(v, n) VALUES('row ${i} ' || hex(randomblob(64)), ${i}); UPDATE t SET n = n + 1 WHERE id = ${(i >> 1) + 1}; COMMIT;`);
    const t0 = Date.now();
    let r = await run('sqlite3', [path.join(c.mnt, 'test.db')], { input: lines.join('\n') + '\n', timeoutMs: 180_000 });
    assert.is(r.status, 0, r.stderr);
    console.log(`  ${n} transactions in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    const check = async () => {
      const q = await run('sqlite3', [path.join(c.mnt, 'test.db'), 'PRAGMA integrity_check; SELECT count(*), sum(n) FROM t;']);
      assert.is(q.status, 0, q.stderr);
      assert.equal(q.stdout.trim().split('\n'), ['ok', `${n}|${(n * (n - 1)) / 2 + n}`]);
    };
    await check();
    await c.remount();
    await check();
  });
});

programs('postmark runs to completion', async () => {
  await withMount(async (c) => {
    fs.mkdirSync(path.join(c.mnt, 'pm'));
    const config = `set location ${path.join(c.mnt, 'pm')}\nset number 500\nset transactions 1000\nset size 500 20000\nrun\nquit\n`;
    const r = await run('postmark', [], { input: config, timeoutMs: 180_000 });
    assert.is(r.status, 0, r.stderr);
    const tps = /seconds of transactions \((\d+) per second\)/.exec(r.stdout);
    assert.ok(tps, r.stdout);
    assert.not.match(r.stdout + r.stderr, /error|cannot|failed/i);
    assert.match(r.stdout, /Deleting files\.\.\.Done/);
    console.log(`  postmark: ${tps![1]} transactions per second`);
  });
});

programs.run();

const semantics = suite('smfs mount: POSIX semantics and errnos');

async function errno(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code ?? String(err);
  }
  return 'ok';
}

semantics('every refusal has its errno and changes nothing; renames are atomic, also over a target', async () => {
  await withMount(async (c) => {
    const p = (x: string) => path.join(c.mnt, x);
    const f = fs.promises;
    await f.mkdir(p('d'));
    await f.writeFile(p('d/a'), 'a');
    await f.writeFile(p('b'), 'b');
    const cases: [string, () => Promise<unknown>, string][] = [
      ['open a missing file', () => f.readFile(p('nope')), 'ENOENT'],
      ['mkdir of an existing name', () => f.mkdir(p('d')), 'EEXIST'],
      ['O_EXCL on an existing file', () => f.writeFile(p('b'), 'x', { flag: 'wx' }), 'EEXIST'],
      ['rmdir of a directory with entries', () => f.rmdir(p('d')), 'ENOTEMPTY'],
      ['mkdir under a file', () => f.mkdir(p('b/x')), 'ENOTDIR'],
      ['unlink of a directory', () => f.unlink(p('d')), 'EISDIR'],
      ['rmdir of a file', () => f.rmdir(p('b')), 'ENOTDIR'],
      ['a directory into itself', () => f.rename(p('d'), p('d/sub')), 'EINVAL'],
      ['a file over a directory', () => f.rename(p('b'), p('d')), 'EISDIR'],
      ['a hard link', () => f.link(p('b'), p('c')), 'EPERM'],
      ['a name of 256 bytes', () => f.writeFile(p('n'.repeat(256)), 'x'), 'ENAMETOOLONG'],
      ['a name that is not UTF-8', () => f.writeFile(Buffer.concat([Buffer.from(`${c.mnt}/`), Buffer.from([0x66, 0xff])]), 'x'), 'EILSEQ'],
      ['a write past 32 MiB', async () => {
        const h = await f.open(p('big'), 'w');
        try {
          await h.write(Buffer.from('x'), 0, 1, 32 * 1024 * 1024);
        } finally {
          await h.close();
        }
      }, 'EFBIG'],
      ['a truncate past 32 MiB', () => f.truncate(p('b'), 32 * 1024 * 1024 + 1), 'EFBIG'],
    ];
    for (const [what, fn, code] of cases) assert.is(await errno(fn()), code, what);
    const punch = await run('fallocate', ['-p', '-o', '0', '-l', '4096', p('b')]);
    assert.is(punch.status, 1, 'fallocate --punch-hole is refused');
    assert.match(punch.stderr, /unsupported|not supported/i, punch.stderr);
    assert.equal((await f.readdir(c.mnt)).sort(), ['b', 'big', 'd']);
    assert.is(await f.readFile(p('b'), 'utf8'), 'b');
    // rename over an existing file replaces it in one step: a reader sees old or new, never none.
    await f.writeFile(p('new'), 'new content');
    await f.rename(p('new'), p('b'));
    assert.is(await f.readFile(p('b'), 'utf8'), 'new content');
    await f.mkdir(p('empty'));
    await f.rename(p('d'), p('empty'));
    assert.is(await f.readFile(p('empty/a'), 'utf8'), 'a', 'a directory over an empty one');
    assert.is(await errno(f.stat(p('d'))), 'ENOENT');
  });
});

semantics('partial writes, truncate, holes, symlinks, modes and times survive a remount; a file removed while open stays readable', async () => {
  await withMount(async (c) => {
    const p = (x: string) => path.join(c.mnt, x);
    const f = fs.promises;
    const model = Buffer.alloc(300_000);
    const h = await f.open(p('f'), 'w+');
    for (const [off, len] of [[0, 70_000], [5000, 10], [123_456, 99_999], [4095, 2], [250_000, 50_000]]) {
      const data = Buffer.alloc(len, (off % 251) + 1);
      data.copy(model, off);
      await h.write(data, 0, len, off);
    }
    await h.sync();
    await h.truncate(200_000);
    await h.truncate(280_000); // bytes past 200,000 are zeros now, not the old ones
    model.fill(0, 200_000);
    await h.write(Buffer.from('tail'), 0, 4, 279_996);
    model.write('tail', 279_996);
    await h.close();
    const expect = model.subarray(0, 280_000);
    assert.ok((await f.readFile(p('f'))).equals(expect), 'read back before a commit');
    await f.writeFile(p('holes'), '');
    await f.truncate(p('holes'), 10 * 1024 * 1024);
    await f.symlink('f', p('link'));
    await f.chmod(p('f'), 0o640);
    await f.utimes(p('f'), 1_500_000_000, 1_600_000_000.5);
    // A file unlinked while open: its bytes are still there through the open descriptor after
    // the unlink is committed.
    await f.writeFile(p('gone'), 'still here');
    await run('sync', []);
    const open = await f.open(p('gone'), 'r');
    await f.unlink(p('gone'));
    const dirFd = await f.open(c.mnt, 'r');
    await dirFd.sync();
    await dirFd.close();
    assert.is((await open.read(Buffer.alloc(10), 0, 10, 0)).buffer.toString(), 'still here');
    await open.close();
    await c.remount();
    assert.ok((await f.readFile(p('f'))).equals(expect), 'read back after a remount');
    const st = await f.stat(p('f'));
    assert.is(st.mode & 0o7777, 0o640);
    assert.is(st.mtimeMs, 1_600_000_000_500);
    assert.is(await f.readlink(p('link')), 'f');
    assert.is((await f.lstat(p('link'))).isSymbolicLink(), true);
    assert.is((await f.stat(p('holes'))).size, 10 * 1024 * 1024);
    assert.ok((await f.readFile(p('holes'))).equals(Buffer.alloc(10 * 1024 * 1024)));
    assert.is(await errno(f.stat(p('gone'))), 'ENOENT');
    const st2 = await run(process.execPath, [SMFS_BIN, 'ls', '/', '--json', '--server', c.servers.server], { env: { ...process.env, SMFS_CREDENTIALS: testCredential().file } });
    assert.equal((JSON.parse(st2.stdout) as { name: string; type: string }[]).map((e) => [e.name, e.type]), [['f', 'file'], ['holes', 'file'], ['link', 'symlink']]);
  });
});

semantics('fsync is acknowledged at the mount\'s level: --level remote on a storage server with no mirror fails the fsync with EIO', async () => {
  await withMount(async (c) => {
    const h = await fs.promises.open(path.join(c.mnt, 'x'), 'w');
    await h.write('x');
    assert.is(await errno(h.sync()), 'EIO');
    await h.close();
    const { code } = await c.mount.stop();
    assert.is(code, 1, 'the mount says its changes were not committed');
    assert.match(c.mount.stdout(), /"committed":false/);
  }, ['--level', 'remote']);
});

semantics('a file server that goes away gives EIO on new calls, not a hang; the mount still unmounts', async () => {
  await withMount(async (c) => {
    const p = (x: string) => path.join(c.mnt, x);
    await fs.promises.writeFile(p('kept'), Buffer.alloc(100_000, 7));
    await run('sync', []);
    await c.remount(); // nothing of 'kept' in the kernel's cache
    c.servers.files.child.kill('SIGKILL');
    await new Promise((r) => c.servers.files.child.once('exit', r));
    const t0 = Date.now();
    assert.is(await errno(fs.promises.readFile(p('kept'))), 'EIO', 'a read of committed data');
    const h = await fs.promises.open(p('new'), 'w');
    await h.write('y');
    assert.is(await errno(h.sync()), 'EIO', 'an fsync');
    await h.close();
    assert.ok(Date.now() - t0 < 15_000, `answered in ${Date.now() - t0} ms`);
    assert.ok((await fs.promises.stat(p('kept'))).size === 100_000, 'what the mount holds in memory is still answered');
    const { code } = await c.mount.stop();
    assert.is(code, 1);
    assert.not.ok(smfsMounts().includes(c.mnt));
  });
});

semantics('writes past --max-dirty fill the next commit while one is in flight: 24 MiB through --max-dirty 1M arrive whole; with the file server gone, such a write is EIO, not a hang', async () => {
  await withMount(async (c) => {
    const p = (x: string) => path.join(c.mnt, x);
    const data = randomBytes(24 << 20);
    const chunk = 256 << 10;
    let h = await fs.promises.open(p('big'), 'w');
    for (let off = 0; off < data.length; off += chunk) await h.write(data, off, chunk, off);
    await h.sync();
    await h.close();
    const first = c.mount;
    await c.remount();
    const stats = JSON.parse(first.stdout().split('\n').find((l) => l.includes('"unmounted"'))!) as { commits: number; bytesCommitted: number; writes: number };
    assert.ok(stats.commits >= 12, `${stats.commits} commits of at most 1 MiB each`);
    assert.is(stats.bytesCommitted, data.length);
    assert.ok((await fs.promises.readFile(p('big'))).equals(data), 'every byte, after a remount');
    c.servers.files.child.kill('SIGKILL');
    await new Promise((r) => c.servers.files.child.once('exit', r));
    const t0 = Date.now();
    h = await fs.promises.open(p('more'), 'w');
    let failed = 'ok';
    for (let off = 0; off < 8 * chunk && failed === 'ok'; off += chunk) failed = await errno(h.write(data, off, chunk, off));
    await h.close().catch(() => undefined);
    assert.is(failed, 'EIO', 'a write that waits for room, with no file server to commit to');
    assert.ok(Date.now() - t0 < 15_000, `answered in ${Date.now() - t0} ms`);
    const { code } = await c.mount.stop();
    assert.is(code, 1);
  }, ['--max-dirty', '1M']);
});

semantics('tagged: fsync answered with the commit kept until the mirror has it, then dropped; a commit past --cache goes at remote; at unmount nothing is left unmirrored', async () => {
  await withMount(async (c) => {
    const put = async (name: string, data: Buffer) => {
      const h = await fs.promises.open(path.join(c.mnt, name), 'w');
      await h.write(data);
      await h.sync();
      await h.close();
    };
    for (let i = 0; i < 3; i++) await put(`small-${i}`, Buffer.alloc(10_000, i));
    await put('big', randomBytes(2 << 20));
    const { code } = await c.mount.stop('SIGTERM');
    assert.is(code, 0, c.mount.stderr());
    const stopped = JSON.parse(c.mount.stdout().split('\n').find((l) => l.includes('"unmounted"'))!) as { commits: number; unmirrored: number; level: string; tagged: { kept: number; dropped: number; mirroredAtAnswer: number; degraded: number; peakBytes: number; limitBytes: number } };
    assert.is(stopped.level, 'tagged');
    assert.is(stopped.unmirrored, 0);
    assert.is(stopped.tagged.kept, 0);
    assert.ok(stopped.tagged.dropped + stopped.tagged.mirroredAtAnswer >= 3, `the small files' commits: ${JSON.stringify(stopped.tagged)}`);
    assert.is(stopped.tagged.degraded, 1, 'the 2 MiB file does not fit a 1 MiB cache: it went at remote');
    assert.ok(stopped.tagged.peakBytes <= stopped.tagged.limitBytes, JSON.stringify(stopped.tagged));
    c.mount = await startMount(c.mnt, c.servers.server);
    assert.is((await fs.promises.readFile(path.join(c.mnt, 'big'))).length, 2 << 20);
  }, ['--level', 'tagged', '--cache', '1M'], { mirrored: true });
});

semantics.run();

const lifecycle = suite('smfs mount: lifecycle');

lifecycle('smfs unmount commits and exits 0; a SIGKILLed mount leaves no mount point behind (auto_unmount); bad options are refused', async () => {
  await withMount(async (c) => {
    await fs.promises.writeFile(path.join(c.mnt, 'a'), 'a');
    const env = { ...process.env, SMFS_CREDENTIALS: testCredential().file };
    let r = await run(process.execPath, [SMFS_BIN, 'unmount', c.mnt], { env });
    assert.is(r.status, 0, r.stderr);
    const { code } = await c.mount.exited;
    assert.is(code, 0, c.mount.stderr());
    assert.match(c.mount.stdout(), /"reason":"unmounted","committed":true/);
    assert.not.ok(smfsMounts().includes(c.mnt));
    c.mount = await startMount(c.mnt, c.servers.server);
    assert.is(await fs.promises.readFile(path.join(c.mnt, 'a'), 'utf8'), 'a');
    c.mount.child.kill('SIGKILL');
    await c.mount.exited;
    let gone = false;
    for (let i = 0; i < 50 && !gone; i++) {
      gone = !smfsMounts().includes(c.mnt);
      if (!gone) await new Promise((res) => setTimeout(res, 100));
    }
    assert.ok(gone, 'fusermount3 unmounted the killed mount');
    for (const [args, message] of [
      [['mount', c.mnt, '--server', c.servers.server, '--level', 'tagged'], /--level tagged needs a file server on a primary storage server with a mirror/],
      [['mount', c.mnt, '--sites', '127.0.0.1:1'], /--sites is for --level tagged/],
      [['mount', c.mnt, '--level', 'fast'], /--level is one of/],
      [['mount', path.join(c.dir, 'nope')], /cannot use/],
      [['mount', c.mnt, '--max-dirty', '1G'], /--max-dirty is from/],
      [['unmount', path.join(c.dir, 'nope')], /fusermount3/],
    ] as [string[], RegExp][]) {
      r = await run(process.execPath, [SMFS_BIN, ...args], { env });
      assert.ok(r.status === 1 || r.status === 2, `${args.join(' ')}: exit ${r.status}`);
      assert.match(r.stderr, message);
    }
    assert.not.ok(smfsMounts().includes(c.mnt));
  });
});

lifecycle.run();



const disaster = suite('smfs mount: disaster through the lab');

// `smfs <args> --json` in a lab namespace; resolves to its first line (listening) and the child.
async function startInNs(lab: Lab, ns: string, args: string[]): Promise<{ listening: Record<string, unknown>; stop(): Promise<void> }> {
  const child = lab.spawn(ns, [process.execPath, SMFS_BIN, ...args, '--json']);
  let err = '';
  child.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
  const first = await new Promise<string | undefined>((resolve) => {
    readline.createInterface({ input: child.stdout! }).once('line', resolve);
    child.once('exit', () => resolve(undefined));
  });
  if (first === undefined) throw new Error(`smfs ${args[0]} in ${ns} exited: ${err}`);
  return {
    listening: JSON.parse(first) as Record<string, unknown>,
    stop: () => new Promise((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      child.once('exit', () => resolve());
      child.kill('SIGKILL');
    }),
  };
}

// Site A of a disaster test: a mirrored storage pair, and a metadata and a file server on the
// primary; each goes into `servers` as it starts, to be stopped whatever happens.
async function startPrimarySite(lab: Lab, root: string, credentials: string, servers: { stop(): Promise<void> }[]) {
  const A = ADDRESSES.hostA;
  const pair = await startSmfsPair(lab, credentials, { primary: path.join(root, 'primary'), mirror: path.join(root, 'mirror') });
  servers.push(pair.primary, pair.mirror);
  const meta = await startInNs(lab, lab.ns.hostA, ['metadata', '--dir', path.join(root, 'metaA'), '--storage', `${A}:7610`, '--host', A, '--port', '7611', '--credentials', credentials]);
  servers.push(meta);
  const files = await startInNs(lab, lab.ns.hostA, ['files', '--metadata', `${A}:7611`, '--host', A, '--port', '7612', '--credentials', credentials]);
  servers.push(files);
  return { pair, meta, files, log: files.listening.log as number };
}

// After the disaster: the mirror promoted, a metadata server that places the log at site B, and
// a file server that recovers the tree from the log alone, at B:7612.
async function serveFromMirrorSite(lab: Lab, root: string, credentials: string, log: number, servers: { stop(): Promise<void> }[]): Promise<void> {
  const B = ADDRESSES.hostB;
  assert.is(promoteMirror(lab, credentials).event, 'promoted');
  fs.mkdirSync(path.join(root, 'metaB'));
  fs.writeFileSync(path.join(root, 'metaB', 'metadata.json'), JSON.stringify({ version: 1, nextLog: log + 1, logs: [{ log, host: B, port: 7610 }], intents: [] }));
  servers.push(await startInNs(lab, lab.ns.hostB, ['metadata', '--dir', path.join(root, 'metaB'), '--storage', `${B}:7610`, '--host', B, '--port', '7611', '--credentials', credentials]));
  servers.push(await startInNs(lab, lab.ns.hostB, ['files', '--metadata', `${B}:7611`, '--log', String(log), '--host', B, '--port', '7612', '--credentials', credentials]));
}

disaster('the primary SIGKILLed in the middle of a tar through a mirrored pair, the mirror promoted and mounted: an earlier state of the tar, every file whole or absent, the fsynced files there', async () => {
  const lab = await Lab.create({ delayMs: 10 });
  const credentials = testCredential().file;
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'smfs-mount-disaster-'));
  const mnt = path.join(root, 'mnt');
  const mnt2 = path.join(root, 'mnt2');
  fs.mkdirSync(mnt);
  fs.mkdirSync(mnt2);
  const servers: { stop(): Promise<void> }[] = [];
  const mounts: MountChild[] = [];
  const A = ADDRESSES.hostA;
  const B = ADDRESSES.hostB;
  try {
    const gw = await startGateways(lab);
    try {
      const { pair, meta, files, log } = await startPrimarySite(lab, root, credentials, servers);
      const mount = await startMount(mnt, `${A}:7612`, ['--level', 'remote', '--sync-interval', '200'], ['nsenter', `--net=/run/netns/${lab.ns.hostA}`]);
      mounts.push(mount);
      // Files fsynced before the tar: acknowledged remote, so at the mirror whatever comes next.
      const synced = new Map<string, Buffer>();
      for (let i = 0; i < 3; i++) {
        const data = Buffer.alloc(5000 + i * 4096, 65 + i);
        const h = await fs.promises.open(path.join(mnt, `synced-${i}`), 'w');
        await h.write(data);
        await h.sync();
        await h.close();
        synced.set(`synced-${i}`, data);
      }
      // The tar, fed slowly; the primary killed halfway.
      const tarFile = projectTarball();
      const bytes = fs.readFileSync(tarFile);
      fs.mkdirSync(path.join(mnt, 'tree'));
      const tar = spawn('tar', ['-C', path.join(mnt, 'tree'), '-xf', '-'], { stdio: ['pipe', 'ignore', 'ignore'] });
      tar.stdin.on('error', () => undefined);
      const tarDone = new Promise((resolve) => tar.once('exit', resolve));
      for (let at = 0; at < bytes.length / 2; at += 8192) {
        tar.stdin.write(bytes.subarray(at, at + 8192));
        await new Promise((r) => setTimeout(r, 10));
      }
      await pair.primary.stop('SIGKILL');
      tar.kill('SIGKILL');
      await tarDone;
      const stats = await mount.stop('SIGKILL');
      assert.ok(stats.signal === 'SIGKILL');
      await files.stop();
      await meta.stop();
      // The mirror site: promoted, a metadata server that places the log there, a file server
      // that recovers the tree from the log alone, and a mount of it.
      await serveFromMirrorSite(lab, root, credentials, log, servers);
      const mount2 = await startMount(mnt2, `${B}:7612`, [], ['nsenter', `--net=/run/netns/${lab.ns.hostB}`]);
      mounts.push(mount2);
      for (const [name, data] of synced) assert.ok(fs.readFileSync(path.join(mnt2, name)).equals(data), `${name} was fsynced: it is at the mirror`);
      // The tar's regular files in its order: those present are its first k, whole; the k-th may
      // be the file tar was writing when a background commit came (one waits at most five
      // intervals for no file to be half written): then it holds a beginning of that file, as the
      // tree did at that moment.
      const members = spawnSync('tar', ['-tf', tarFile], { encoding: 'utf8' }).stdout.split('\n').filter((m) => m && !m.endsWith('/'));
      let k = 0;
      while (k < members.length && fs.existsSync(path.join(mnt2, 'tree', members[k]))) k++;
      for (let i = 0; i < k; i++) {
        const got = fs.readFileSync(path.join(mnt2, 'tree', members[i]));
        const want = fs.readFileSync(path.join(ROOT, members[i]));
        if (i < k - 1) assert.ok(got.equals(want), `${members[i]} is whole`);
        else assert.ok(got.equals(want.subarray(0, got.length)), `${members[i]}, the last, is whole or a beginning of itself (${got.length} of ${want.length} bytes)`);
      }
      const after = members.slice(k).filter((m) => fs.existsSync(path.join(mnt2, 'tree', m)));
      assert.equal(after, [], `nothing past the first ${k} files of the tar`);
      console.log(`  the promoted mirror holds the first ${k} of the tar's ${members.length} files, each whole, and the 3 fsynced files`);
      assert.ok(k > 0, 'some of the tar was committed before the kill');
      assert.ok(k < members.length, 'the kill came in the middle of the tar');
    } finally {
      for (const m of mounts) await m.stop('SIGKILL');
      for (const s of servers) await s.stop();
      await gw.a.stop();
      await gw.b.stop();
    }
  } finally {
    for (const m of [mnt, mnt2]) forceUnmount(m);
    await lab.destroy();
    fs.rmSync(root, { recursive: true, force: true });
  }
});

disaster('tagged: a mount at a third site keeps its fsynced commits until the mirror has them, and after a disaster hands what the mirror lacked to the promoted site\'s file server: every fsynced file is there', async () => {
  const lab = await Lab.create({ delayMs: 10, clientSite: true });
  const credentials = testCredential().file;
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'smfs-mount-tagged-'));
  const mnt = path.join(root, 'mnt');
  const mnt2 = path.join(root, 'mnt2');
  fs.mkdirSync(mnt);
  fs.mkdirSync(mnt2);
  const servers: { stop(): Promise<void> }[] = [];
  const mounts: MountChild[] = [];
  const A = ADDRESSES.hostA;
  const B = ADDRESSES.hostB;
  try {
    const gw = await startGateways(lab);
    try {
      const { pair, meta, files, log } = await startPrimarySite(lab, root, credentials, servers);
      // The mount at the client site, which keeps its own links to both sites.
      const mount = await startMount(mnt, `${A}:7612`, ['--level', 'tagged', '--sites', `${B}:7612`, '--sync-interval', '200'], ['nsenter', `--net=/run/netns/${lab.ns.hostC}`]);
      mounts.push(mount);
      const written = new Map<string, Buffer>();
      const put = async (name: string, data: Buffer) => {
        const h = await fs.promises.open(path.join(mnt, name), 'w');
        await h.write(data);
        await h.sync();
        await h.close();
        written.set(name, data);
      };
      for (let i = 0; i < 3; i++) await put(`early-${i}`, Buffer.alloc(3000 + i * 4096, 97 + i));
      // The primary's way to its mirror cut at the primary's site: what comes now is answered
      // (tagged: at local) and never reaches the mirror.
      lab.exec(lab.ns.hostA, ['ip', 'route', 'add', 'blackhole', `${B}/32`]);
      for (let i = 0; i < 3; i++) await put(`late-${i}`, Buffer.alloc(9000 + i * 4096, 65 + i));
      fs.mkdirSync(path.join(mnt, 'dir'));
      await put('dir/last', Buffer.from('fsynced last'));
      // The disaster: the primary's site gone, the mirror promoted, a file server on it.
      await pair.primary.stop('SIGKILL');
      await files.stop();
      await meta.stop();
      await serveFromMirrorSite(lab, root, credentials, log, servers);
      // The mount, asking for the watermark, finds site B's file server and hands over.
      assert.ok(await until(() => mount.stderr().includes('"event":"failover"'), 30_000), `no failover: ${mount.stderr()}`);
      const failover = JSON.parse(mount.stderr().split('\n').find((l) => l.includes('"event":"failover"'))!) as { to: string; at: number; replayed: number };
      assert.is(failover.to, `${B}:7612`);
      assert.ok(failover.replayed >= 4, `${failover.replayed} commits replayed: the three late files, and the directory with its file, at least`);
      for (const [name, data] of written) assert.ok(fs.readFileSync(path.join(mnt, name)).equals(data), `${name} through the mount after the failover`);
      await put('after', Buffer.from('written after the failover'));
      const { code } = await mount.stop('SIGTERM');
      assert.is(code, 0, mount.stderr());
      const stopped = JSON.parse(mount.stdout().split('\n').find((l) => l.includes('"unmounted"'))!) as { tagged: { failovers: number; replayed: number }; server: string; level: string };
      assert.is(stopped.tagged.failovers, 1);
      assert.is(stopped.server, `${B}:7612`);
      // A fresh mount of the promoted site's tree: the log there has every fsynced file.
      const mount2 = await startMount(mnt2, `${B}:7612`, [], ['nsenter', `--net=/run/netns/${lab.ns.hostB}`]);
      mounts.push(mount2);
      for (const [name, data] of written) assert.ok(fs.readFileSync(path.join(mnt2, name)).equals(data), `${name} was fsynced: it is at the promoted site`);
      assert.ok(failover.at < (mount2.mounted.update as number), `the promoted site had update ${failover.at} of ${mount2.mounted.update as number} before the hand-over`);
      console.log(`  the promoted mirror had update ${failover.at}; the mount replayed ${failover.replayed} commits; all ${written.size} fsynced files there`);
    } finally {
      for (const m of mounts) await m.stop('SIGKILL');
      for (const s of servers) await s.stop();
      await gw.a.stop();
      await gw.b.stop();
    }
  } finally {
    for (const m of [mnt, mnt2]) forceUnmount(m);
    await lab.destroy();
    fs.rmSync(root, { recursive: true, force: true });
  }
});

disaster.run();
