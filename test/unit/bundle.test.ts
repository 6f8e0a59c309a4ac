/**
 * The built program is the esbuild bundle in dist/bundle, started by
 * bin/sshuttle-ts: it must run from the package layout alone (package.json,
 * bin/, dist/bundle, build/Release, node_modules; no dist/cli, no src), find
 * what ships beside it from the package root, and keep the firewall helper's
 * command (`bin/sshuttle-ts --firewall ...`, named by sudoers rules) working.
 */
import { spawnSync } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '../..');
const BUNDLE = join(ROOT, 'dist/bundle/main.mjs');
const VERSION = (
  JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }
).version;

let copy = '';

beforeAll(() => {
  if (
    !existsSync(BUNDLE) ||
    statSync(BUNDLE).mtimeMs < statSync(join(ROOT, 'src/cli/main.ts')).mtimeMs
  ) {
    spawnSync('npm', ['run', 'build'], { cwd: ROOT, stdio: 'ignore', timeout: 180_000 });
  }
  if (!existsSync(BUNDLE)) throw new Error('npm run build did not produce dist/bundle/main.mjs');
  // The package as installed, minus everything the bundle replaces.
  copy = mkdtempSync(join(tmpdir(), 'sshuttle-ts-bundle-'));
  cpSync(join(ROOT, 'package.json'), join(copy, 'package.json'));
  cpSync(join(ROOT, 'bin'), join(copy, 'bin'), { recursive: true });
  mkdirSync(join(copy, 'dist'));
  cpSync(join(ROOT, 'dist/bundle'), join(copy, 'dist/bundle'), { recursive: true });
  cpSync(join(ROOT, 'dist/helper.cjs'), join(copy, 'dist/helper.cjs'));
  mkdirSync(join(copy, 'build'));
  cpSync(join(ROOT, 'build/Release'), join(copy, 'build/Release'), { recursive: true });
  symlinkSync(join(ROOT, 'node_modules'), join(copy, 'node_modules'));
}, 200_000);

afterAll(() => {
  if (copy !== '') rmSync(copy, { recursive: true, force: true });
});

describe('the bundled program', () => {
  it('starts through bin/sshuttle-ts (its own shebang) and prints --version', () => {
    const r = spawnSync(join(copy, 'bin/sshuttle-ts'), ['--version'], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe(`sshuttle-ts ${VERSION}\n`);
    expect(r.status).toBe(0);
  });

  it('runs from the bundle, not from dist/cli', () => {
    expect(existsSync(join(copy, 'dist/cli'))).toBe(false);
    const r = spawnSync(process.execPath, [join(copy, 'bin/sshuttle-ts'), '--help'], {
      encoding: 'utf8',
    });
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('sshuttle-ts');
  });

  it('refuses bad input with one line and exit code 2', () => {
    const r = spawnSync(join(copy, 'bin/sshuttle-ts'), ['--no-such-option'], { encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });

  it('keeps `bin/sshuttle-ts --firewall` working: the helper says READY and checks its input', () => {
    // In a network namespace of its own (unshare -n), so no real rule is touched.
    const r = spawnSync(
      'unshare',
      ['-n', process.execPath, join(copy, 'bin/sshuttle-ts'), '--firewall', '--method', 'auto'],
      { input: 'HELLO\n', encoding: 'utf8', timeout: 30_000 },
    );
    expect(r.error).toBeUndefined();
    expect(r.stdout).toMatch(/^READY (nft|nat)\n/);
    expect(r.stderr).toContain('expected ROUTES, got "HELLO"');
    expect(r.status).toBe(99);
  });

  it('has the client and the firewall helper in separate chunks (each run loads only its part)', () => {
    const main = readFileSync(BUNDLE, 'utf8');
    const chunk = (name: string): string => {
      const m = new RegExp(`import\\("\\./(${name}-[A-Z0-9]+\\.mjs)"\\)`).exec(main);
      if (m === null) throw new Error(`main.mjs does not load a ${name} chunk lazily`);
      return readFileSync(join(ROOT, 'dist/bundle', m[1]!), 'utf8');
    };
    expect(chunk('client')).toContain('forwardOut(');
    expect(chunk('firewall-main')).not.toContain('forwardOut(');
    // rxjs as ES modules, tree-shaken, not its whole CommonJS build.
    expect(main + chunk('client')).not.toContain('node_modules/rxjs/dist/cjs');
  });

  it("loads only ssh2's client, not its index (which pulls in Node's http, https and tls)", () => {
    // The client chunk as a run loads it: main.mjs imports it on demand.
    const client = readdirSync(join(copy, 'dist/bundle')).find((f) => f.startsWith('client-'));
    expect(client).toBeDefined();
    const probe = `await import(${JSON.stringify(join(copy, 'dist/bundle', client ?? ''))});
      const loaded = process.moduleLoadList.filter((m) => /^NativeModule (http|https|tls|_tls_wrap)$/.test(m));
      process.stdout.write(JSON.stringify(loaded));`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', probe], {
      encoding: 'utf8',
    });
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toEqual([]);
  });
});
