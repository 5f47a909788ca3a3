#!/usr/bin/env node
// smfs: the mirrored log-structured store's command line. Its servers (storage, metadata,
// files) come with the SMFS work (docs/roadmap.md); until then it only answers --help/--version.
import { Command } from 'commander';
import { run } from './run';

const { version } = require('../../../package.json') as { version: string };

const program = new Command('smfs')
  .description('SMFS: a log-structured store mirrored to a remote site (local-, network- or remote-sync)')
  .version(version)
  .addHelpText('after', '\nNo subcommands yet: the storage, metadata and file servers are on the roadmap (docs/roadmap.md).');

void run(program, process.argv);
