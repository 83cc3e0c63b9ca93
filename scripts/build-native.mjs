// Builds native/ (lseek SEEK_DATA/SEEK_HOLE, block-device size, syncfs) with node-gyp against Node's
// headers. Cairn works without it (pure-JS fallbacks), so a failed build warns and never fails install.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

const require = createRequire(import.meta.url);

function nodeGypCommand() {
  // npm hands its bundled node-gyp to lifecycle scripts; otherwise look for one on PATH.
  const bundled = process.env.npm_config_node_gyp;
  if (bundled && existsSync(bundled)) return [process.execPath, bundled];
  try {
    return [process.execPath, require.resolve('node-gyp/bin/node-gyp.js')];
  } catch {
    // Run by hand (`node scripts/build-native.mjs`): use the node-gyp that ships inside npm.
    const insideNpm = join(dirname(dirname(process.execPath)), 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
    return existsSync(insideNpm) ? [process.execPath, insideNpm] : ['node-gyp'];
  }
}

// Build against the headers installed with Node (Debian's nodejs ships them under /usr/include/node):
// node-gyp must never try to download them.
function nodeDirArgs() {
  const configured = process.env.npm_config_nodedir;
  if (configured) return [`--nodedir=${configured}`];
  const prefix = dirname(dirname(process.execPath));
  return existsSync(join(prefix, 'include', 'node', 'node_api.h')) ? [`--nodedir=${prefix}`] : [];
}

const [command, ...prefix] = nodeGypCommand();
const result = spawnSync(command, [...prefix, 'rebuild', '--directory', 'native', ...nodeDirArgs()], { stdio: 'inherit' });
if (result.status !== 0) {
  console.warn('cairn: native addon not built; using the pure-JS fallbacks (no SEEK_DATA hole skipping, fsync per chunk).');
}
