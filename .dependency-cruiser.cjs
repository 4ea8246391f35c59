/**
 * The layer rules of docs/ARCHITECTURE.md ("Layers"), checked by dependency-cruiser in CI
 * (scripts/test.sh runs `npm run layers` before the tests). A layer imports only the layers
 * listed for it; src/backends/ is reached through src/repo/ alone, and native/ through
 * src/fsx/ alone. Change the table in docs/ARCHITECTURE.md and this map together.
 */
const LAYERS = ['backends', 'chunker', 'fsx', 'repo', 'snapshot', 'sources', 'notify', 'browse', 'legacy', 'system', 'ops', 'jobs', 'clidoc', 'commands'];

/** What each layer of src/ may import besides itself. */
const MAY_IMPORT = {
  backends: [],
  chunker: [],
  fsx: [],
  repo: ['backends', 'chunker'],
  snapshot: ['repo', 'chunker', 'fsx'],
  sources: [],
  notify: [],
  browse: ['snapshot', 'repo', 'chunker', 'fsx'],
  legacy: ['snapshot', 'repo', 'chunker', 'fsx'],
  system: ['snapshot', 'repo', 'chunker', 'fsx'],
  ops: ['snapshot', 'repo', 'chunker', 'fsx', 'notify'],
  jobs: ['repo', 'chunker', 'fsx', 'snapshot', 'sources', 'notify', 'browse', 'legacy', 'system', 'ops'],
  clidoc: [],
  commands: ['repo', 'chunker', 'fsx', 'snapshot', 'sources', 'notify', 'browse', 'legacy', 'system', 'ops', 'jobs', 'clidoc'],
};

const layerRules = LAYERS.map((layer) => {
  const forbidden = LAYERS.filter((other) => other !== layer && !MAY_IMPORT[layer].includes(other));
  return {
    name: `layer-${layer}`,
    comment: `src/${layer}/ may import only ${MAY_IMPORT[layer].length > 0 ? MAY_IMPORT[layer].map((l) => `src/${l}/`).join(', ') : 'nothing else of ours'} (docs/ARCHITECTURE.md)`,
    severity: 'error',
    from: { path: `^src/${layer}/` },
    to: { path: `^src/(${forbidden.join('|')})/` },
  };
});

module.exports = {
  forbidden: [
    ...layerRules,
    {
      name: 'cli-entry',
      comment: 'src/cli.ts wires the commands; it reaches the library only through them and src/repo/',
      severity: 'error',
      from: { path: '^src/cli\\.ts$' },
      to: { path: '^src/(backends)/' },
    },
    {
      name: 'native-only-through-fsx',
      comment: 'the N-API addon (native/) is loaded by src/fsx/ alone',
      severity: 'error',
      from: { path: '^src/', pathNot: '^src/fsx/' },
      to: { path: '^native/' },
    },
    {
      name: 'no-tests-in-src',
      comment: 'the library never imports test code',
      severity: 'error',
      from: { path: '^src/' },
      to: { path: '^tests/' },
    },
    {
      name: 'no-unresolvable',
      comment: 'every import resolves (a typo here would hide a layer violation)',
      severity: 'error',
      from: { path: '^src/' },
      to: { couldNotResolve: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsConfig: { fileName: 'tsconfig.json' },
    tsPreCompilationDeps: true,
  },
};
