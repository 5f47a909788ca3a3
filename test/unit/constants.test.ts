// The facts C and C++ own reach TypeScript and the docs from one place: the addon's `constants`
// (native/bindings/constants.cc), generated into src/native/constants.ts. A counter, a parse
// error or a verdict added on one side only fails here.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { AUTH_VERDICTS, PARSE_ERRORS, XDP_STATS } from '../../src/native/constants';

const root = path.resolve(__dirname, '..', '..', '..');
const constants = suite('constants shared by C, C++, TypeScript and the docs');

// The backquoted names in the row of a docs table whose first cell is `name`.
function row(doc: string, name: string, section: string): string[] {
  const text = fs.readFileSync(path.join(root, 'docs', doc), 'utf8');
  const part = text.split(/^## /m).find((s) => s.startsWith(section));
  assert.ok(part, `docs/${doc} has a "${section}" section`);
  const line = part!.split('\n').find((l) => l.startsWith(`| \`${name}\` |`));
  assert.ok(line, `docs/${doc}, "${section}": a row for \`${name}\``);
  return [...line!.split('|')[2].matchAll(/`([^`]+)`/g)].map((m) => m[1]);
}

// The first cells of a table's rows, below a header row that starts with `header`.
function firstColumn(doc: string, section: string, header: string): string[] {
  const text = fs.readFileSync(path.join(root, 'docs', doc), 'utf8');
  const part = text.split(/^#+ /m).find((s) => s.startsWith(section));
  assert.ok(part, `docs/${doc} has a "${section}" section`);
  const lines = part!.split('\n');
  const start = lines.findIndex((l) => l.startsWith(`| ${header} |`));
  assert.ok(start >= 0, `docs/${doc}, "${section}": a table headed ${header}`);
  const names: string[] = [];
  for (const l of lines.slice(start + 2)) {
    if (!l.startsWith('|')) break;
    names.push(...[...l.split('|')[1].matchAll(/`([^`]+)`/g)].map((m) => m[1]));
  }
  return names;
}

constants('src/native/constants.ts is what the addon exports', () => {
  const r = spawnSync(process.execPath, [path.join(root, 'scripts', 'gen-constants.mjs'), '--check'], { encoding: 'utf8' });
  assert.is(r.status, 0, r.stderr);
});

constants('the Counters table of docs/gateway.md names every XDP counter and authentication verdict, and no other', () => {
  assert.equal(row('gateway.md', 'xdp', 'Counters'), ['gw_stat', 'bpf/gateway.h', ...XDP_STATS]);
  assert.equal(row('gateway.md', 'auth', 'Counters'), [...AUTH_VERDICTS, 'unverifiable', '--insecure-no-auth', 'rotations']);
});

constants('docs/protocol.md lists every reason a repair is rejected and every verdict of the envelope', () => {
  const sorted = (a: readonly string[]) => [...a].sort();
  assert.equal(sorted(firstColumn('protocol.md', 'Receiver rules', 'reason')), sorted(PARSE_ERRORS));
  assert.equal(sorted(firstColumn('protocol.md', 'Authentication envelope', 'verdict')), sorted(AUTH_VERDICTS));
});

constants.run();
