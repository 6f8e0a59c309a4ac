// Bundles the remote helper (src/cli/helper-main.ts) into one self-contained
// CommonJS file, dist/helper.cjs, that the client uploads to `node -e` on the
// server. No native modules: only node:* built-ins stay external.
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const outfile = join(root, 'dist', 'helper.cjs');
mkdirSync(dirname(outfile), { recursive: true });

const result = await build({
  stdin: {
    contents:
      "import { runHelper } from './src/cli/helper-main.ts';\nrunHelper(process.argv.slice(1));\n",
    resolveDir: root,
    sourcefile: 'helper-entry.ts',
    loader: 'ts',
  },
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node18',
  minify: true,
  legalComments: 'none',
  outfile,
  metafile: true,
  logLevel: 'warning',
});
const bytes = Object.values(result.metafile.outputs)[0]?.bytes ?? 0;
process.stdout.write(`dist/helper.cjs: ${bytes} bytes\n`);
