// The dependency rule of docs/ARCHITECTURE.md: src/ folders import only folders on their own layer or
// below, the NBD server and the FUSE tree never import the store, third-party packages stay in their
// one home, and there are no import cycles between files. Exits 1 naming every violation.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

const SRC = resolve(new URL('..', import.meta.url).pathname, 'src');

/** Higher layers may import lower ones. */
const LAYERS = {
  cli: 9,
  fuse: 8,
  ingest: 7,
  restore: 7,
  nbd: 6,
  guest: 5,
  formats: 4,
  store: 3,
  url: 2,
  log: 2,
  core: 1,
  util: 1,
};
const FORBIDDEN = [
  { from: 'nbd/server', to: 'store', why: 'the NBD server serves BlockReaders and never sees the store' },
  { from: 'fuse', to: 'store', why: 'the FUSE tree serves a Catalog and never sees the store' },
];
/** Third-party packages and the only folder that may import each. */
const PACKAGE_HOMES = { 'fuse-native': 'fuse', yargs: 'cli', pino: 'log', 'pino-pretty': 'log', 'lru-cache': 'util', '@mongodb-js/zstd': 'util' };

function walk(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? walk(path) : path.endsWith('.ts') && !path.endsWith('.d.ts') ? [path] : [];
  });
}

const files = walk(SRC);
const problems = [];
const graph = new Map();
const folderOf = (file) => relative(SRC, file).split('/')[0];
const IMPORT = /(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g;

for (const file of files) {
  const text = readFileSync(file, 'utf8');
  const edges = [];
  for (const match of text.matchAll(IMPORT)) {
    const spec = match[1] ?? match[2];
    const isTypeOnly = /^\s*(?:import|export)\s+type\s/.test(match[0].trimStart());
    const from = relative(SRC, file);
    if (spec.startsWith('.')) {
      const target = resolve(dirname(file), spec).replace(/\.js$/, '.ts');
      const to = relative(SRC, target);
      const [fromLayer, toLayer] = [LAYERS[folderOf(file)], LAYERS[folderOf(target)]];
      if (fromLayer === undefined || toLayer === undefined) problems.push(`${from}: imports ${spec} outside the known folders`);
      else if (toLayer > fromLayer) problems.push(`${from}: imports ${to}, an upper layer (${folderOf(target)} above ${folderOf(file)})`);
      for (const rule of FORBIDDEN) {
        if (from.startsWith(rule.from + '/') && to.startsWith(rule.to + '/')) problems.push(`${from}: imports ${to}: ${rule.why}`);
      }
      if (!isTypeOnly) edges.push(target);
    } else if (!spec.startsWith('node:')) {
      const pkg = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0];
      const home = PACKAGE_HOMES[pkg];
      if (home !== undefined && folderOf(file) !== home) problems.push(`${from}: imports ${pkg}, which lives in src/${home} only`);
    }
  }
  graph.set(file, edges);
}

// Cycles between files (type-only imports excluded: they vanish at run time).
const state = new Map();
const stack = [];
function visit(file) {
  state.set(file, 'open');
  stack.push(file);
  for (const next of graph.get(file) ?? []) {
    if (state.get(next) === 'open') {
      const cycle = stack.slice(stack.indexOf(next)).concat(next).map((f) => relative(SRC, f));
      problems.push(`import cycle: ${cycle.join(' -> ')}`);
    } else if (!state.has(next) && graph.has(next)) visit(next);
  }
  stack.pop();
  state.set(file, 'done');
}
for (const file of files) if (!state.has(file)) visit(file);

if (problems.length > 0) {
  console.error(`dependency rule: ${problems.length} problem(s)\n  ${problems.join('\n  ')}`);
  process.exit(1);
}
console.log(`dependency rule: ${files.length} files, no upward imports, no cycles`);
