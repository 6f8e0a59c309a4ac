// Bundles the command-line program (src/cli/main.ts) with esbuild into
// dist/bundle/: main.mjs plus one chunk per lazily loaded part (the client,
// the firewall helper, replay, ...), which bin/sshuttle-ts starts. One file
// per part instead of a hundred modules loaded one by one uses about 10 MB
// less memory (see docs/performance-log.md) and starts faster.
// Left outside, loaded from node_modules at run time: ssh2 and cpu-features
// (their native bindings are found by paths relative to their own files)
// and pino-pretty (only on a terminal). Files shipped beside the code
// (package.json, bin/, build/Release/, dist/helper.cjs) are found from the
// package root (src/effects/package-root.ts), not from the chunk's path.
import { mkdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const outdir = join(root, 'dist', 'bundle');
rmSync(outdir, { recursive: true, force: true });
mkdirSync(outdir, { recursive: true });

const result = await build({
  entryPoints: { main: join(root, 'src', 'cli', 'main.ts') },
  bundle: true,
  splitting: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  outdir,
  outExtension: { '.js': '.mjs' },
  chunkNames: '[name]-[hash]',
  external: ['ssh2', 'ssh2/*', 'cpu-features', 'pino-pretty'],
  // rxjs's exports map gives platform "node" its CommonJS build, which cannot
  // be tree-shaken (every operator would be bundled and loaded): take its ESM.
  alias: { rxjs: join(root, 'node_modules', 'rxjs', 'dist', 'esm', 'index.js') },
  // CommonJS dependencies bundled into ESM still call require() for node:*
  // modules: give every chunk a real one.
  banner: {
    js: "import { createRequire as __sshuttleCreateRequire } from 'node:module';\nconst require = __sshuttleCreateRequire(import.meta.url);",
  },
  legalComments: 'none',
  metafile: true,
  logLevel: 'warning',
});
const outputs = Object.entries(result.metafile.outputs);
const bytes = outputs.reduce((n, [, o]) => n + o.bytes, 0);
process.stdout.write(`dist/bundle: ${outputs.length} files, ${bytes} bytes\n`);
