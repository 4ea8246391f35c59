#!/usr/bin/env node
// Records the commit dist/ is built from into dist/build-info.json (`bh version` reads it): an
// installed package has no .git to ask. Run by `npm run build` (and so by `npm pack`).
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';

const root = new URL('..', import.meta.url);
// scripts/build-deb.sh builds a copy of the checkout and names the checkout in BH_BUILD_SOURCE.
const source = process.env.BH_BUILD_SOURCE ?? root;
const git = (...args) => execFileSync('git', args, { cwd: source, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();

let info = { commit: null, commitDate: null, dirty: false };
try {
  info = {
    commit: git('rev-parse', 'HEAD'),
    commitDate: git('log', '-1', '--format=%cI', 'HEAD'),
    // Changes to tracked files only: untracked scratch files do not change what is built.
    dirty: git('status', '--porcelain', '--untracked-files=no') !== '',
  };
} catch {
  // Not a git checkout (built from a source tarball): the commit stays unknown.
}
mkdirSync(new URL('dist/', root), { recursive: true });
writeFileSync(new URL('dist/build-info.json', root), JSON.stringify(info, null, 2) + '\n');
