/**
 * Malformed command lines through the BUILT program: each must end with exit
 * code 2 and exactly one stderr line naming the bad input, print no stack
 * trace, and run nothing (fake nft/iptables/ssh/sudo record any call).
 */
import { spawn, spawnSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { main } from '../../src/cli/main.js';
import { OPTIONS } from '../../src/cli/options-table.js';

// In-process runs of main() below must never reach a real client.
const runClient = vi.hoisted(() => vi.fn(async (_config: unknown): Promise<number> => 0));
vi.mock('../../src/cli/client.js', () => ({ runClient }));

const ROOT = resolve(import.meta.dirname, '../..');
const BIN = join(ROOT, 'bin/sshuttle-ts');
const BUILT_MAIN = join(ROOT, 'dist/cli/main.js');

/** Newest modification time of any file under `dir`. */
const newestMtime = (dir: string): number =>
  readdirSync(dir, { withFileTypes: true }).reduce((newest, entry) => {
    const path = join(dir, entry.name);
    const t = entry.isDirectory() ? newestMtime(path) : statSync(path).mtimeMs;
    return Math.max(newest, t);
  }, 0);

/** Builds dist/ when it is missing or older than src/ (others' type errors do not stop emit). */
const ensureBuilt = (): void => {
  if (existsSync(BUILT_MAIN) && statSync(BUILT_MAIN).mtimeMs >= newestMtime(join(ROOT, 'src'))) {
    return;
  }
  spawnSync('npm', ['run', 'build'], { cwd: ROOT, stdio: 'ignore', timeout: 120_000 });
  if (!existsSync(BUILT_MAIN)) throw new Error('npm run build did not produce dist/cli/main.js');
};

const FAKE_TOOLS = [
  'nft',
  'iptables',
  'ip6tables',
  'iptables-restore',
  'ip',
  'ssh',
  'sshpass',
  'sudo',
  'doas',
  'su',
  'python',
  'python3',
  'logger',
  'pfctl',
  'ipfw',
];

let sandbox = '';
let fakeBin = '';
let home = '';
let work = '';
let marker = '';

beforeAll(() => {
  ensureBuilt();
  sandbox = mkdtempSync(join(tmpdir(), 'sshuttle-ts-bad-input-'));
  fakeBin = join(sandbox, 'bin');
  home = join(sandbox, 'home');
  work = join(sandbox, 'work');
  marker = join(sandbox, 'ran-something');
  for (const dir of [fakeBin, home, work]) mkdirSync(dir);
  for (const tool of FAKE_TOOLS) {
    const path = join(fakeBin, tool);
    writeFileSync(path, `#!/bin/sh\necho "$0 $*" >> '${marker}'\nexit 1\n`);
    chmodSync(path, 0o755);
  }
  writeFileSync(join(sandbox, 'bad-excludes.txt'), '# excludes\n10.1.0.0/16\n10.2.0.0/99\n');
  writeFileSync(join(sandbox, 'loop.conf'), `@${join(sandbox, 'loop.conf')}\n`);
});

afterAll(() => {
  if (sandbox !== '') rmSync(sandbox, { recursive: true, force: true });
});

interface Run {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

const run = (args: readonly string[], extraEnv: Record<string, string> = {}): Promise<Run> =>
  new Promise((done) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      cwd: work,
      env: { PATH: fakeBin, HOME: home, ...extraEnv },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString('utf8');
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString('utf8');
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('close', (status) => {
      clearTimeout(timer);
      done({ status, stdout, stderr });
    });
  });

interface Case {
  readonly name: string;
  readonly args: readonly (string | (() => string))[];
  /** Text the one stderr line must contain (the bad input, quoted). */
  readonly names: string;
  readonly env?: Record<string, string>;
}

const R = ['-r', 'user@server.example'];
const inSandbox = (name: string) => (): string => join(sandbox, name);
const c = (name: string, args: Case['args'], names: string, env?: Record<string, string>): Case =>
  env === undefined ? { name, args, names } : { name, args, names, env };

const CASES: readonly Case[] = [
  c('unknown long option', [...R, '0/0', '--bogus'], '"--bogus"'),
  c('unknown short option', [...R, '0/0', '-q'], '"-q"'),
  c('unknown letter in a cluster', [...R, '0/0', '-vZ'], '"-Z" in "-vZ"'),
  c('missing value at the end', [...R, '0/0', '--method'], '--method needs a value'),
  c('option where a value belongs', ['-r', '--dns', '0/0'], '-r needs a value'),
  c('value given to a flag', [...R, '0/0', '--dns=yes'], '--dns takes no value'),
  c(
    'prefix /33',
    [...R, '10.0.0.0/33'],
    '"10.0.0.0/33": prefix length 33 is out of range for IPv4',
  ),
  c('prefix /129', [...R, '::/129'], '"::/129": prefix length 129'),
  c('bad CIDR address', [...R, '300.1.2.0/24'], '"300.1.2.0/24"'),
  c('port 70000', [...R, '10.0.0.0/8:70000'], 'port 70000 is out of range'),
  c('port 0', [...R, '10.0.0.0/8:0'], 'port 0 is out of range'),
  c('reversed port range', [...R, '10.0.0.0/8:9000-8000'], 'port range 9000-8000 is reversed'),
  c('junk subnet', [...R, 'not a subnet!'], '"not a subnet!"'),
  c('bad exclude', [...R, '0/0', '-x', '1.2.3.4/40'], '"1.2.3.4/40"'),
  c('unknown method', [...R, '0/0', '--method', 'iptables'], 'invalid --method "iptables"'),
  c('unreadable -X file', [...R, '0/0', '-X', '/nonexistent/excludes'], '"/nonexistent/excludes"'),
  c('unreadable -s file', [...R, '-s', '/nonexistent/subnets'], '"/nonexistent/subnets"'),
  c('unreadable @file', ['@/nonexistent/sshuttle.conf'], '"/nonexistent/sshuttle.conf"'),
  c(
    'bad line in -X file',
    [...R, '0/0', '-X', inSandbox('bad-excludes.txt')],
    'line 3: invalid subnet "10.2.0.0/99"',
  ),
  c('@file including itself', [() => `@${join(sandbox, 'loop.conf')}`], 'nested too deeply'),
  c('bad --tmark', [...R, '0/0', '--tmark', 'zz'], 'invalid --tmark "zz"'),
  c('bad -r port', ['-r', 'server:99999', '0/0'], 'invalid remote "server:99999"'),
  c('bad -r brackets', ['-r', '[::1:22', '0/0'], 'invalid remote "[::1:22"'),
  c('-r host that looks like an option', ['-r=-oProxyCommand=x', '0/0'], '"-oProxyCommand=x"'),
  c('missing -r', ['10.0.0.0/8'], 'missing -r/--remote'),
  c('no subnets and no -N', [...R], 'no subnets to capture'),
  c(
    '--namespace with --namespace-pid',
    [...R, '0/0', '--namespace', 'vpn', '--namespace-pid', '1'],
    '--namespace and --namespace-pid',
  ),
  c(
    'negative --latency-buffer-size',
    [...R, '0/0', '--latency-buffer-size', '-5'],
    '--latency-buffer-size needs a value',
  ),
  c(
    'zero --latency-buffer-size',
    [...R, '0/0', '--latency-buffer-size=0'],
    'invalid --latency-buffer-size "0"',
  ),
  c('bad --listen', [...R, '0/0', '-l', 'localhost:0'], 'invalid --listen "localhost:0"'),
  c(
    '--listen port out of range',
    [...R, '0/0', '-l', '127.0.0.1:65536'],
    'invalid --listen "127.0.0.1:65536"',
  ),
  c('bad --transport', [...R, '0/0', '--transport', 'udp'], 'invalid --transport "udp"'),
  c('--hostwatch', ['--hostwatch'], '--hostwatch is not implemented'),
  c('replay without a file', ['replay'], 'replay: missing FILE'),
  c('bad SSHUTTLE_ARGS quoting', [...R, '0/0'], 'SSHUTTLE_ARGS', { SSHUTTLE_ARGS: '-e "ssh' }),
  c('bad subnet from SSHUTTLE_ARGS', [...R], '"1.2.3.4:0"', { SSHUTTLE_ARGS: '1.2.3.4:0' }),
  c(
    'feature not landed yet',
    [...R, '0/0', '--method', 'pf'],
    '--method pf is not implemented yet',
  ),
  c('--sudoers-user alone', [...R, '0/0', '--sudoers-user', 'u'], '--sudoers-user only goes with'),
];

/** Results by case name; the runs go in parallel, a few at a time, before the checks. */
const results = new Map<string, Run>();

beforeAll(async () => {
  const queue = [...CASES];
  const worker = async (): Promise<void> => {
    for (let next = queue.shift(); next !== undefined; next = queue.shift()) {
      const args = next.args.map((a) => (typeof a === 'function' ? a() : a));
      results.set(next.name, await run(args, next.env));
    }
  };
  await Promise.all([worker(), worker(), worker(), worker()]);
});

describe('malformed command lines through the built CLI', () => {
  it('has at least 25 cases', () => {
    expect(CASES.length).toBeGreaterThanOrEqual(25);
  });

  it.each(CASES)('$name', ({ name, names }) => {
    const r = results.get(name);
    if (r === undefined) throw new Error(`no run for ${name}`);
    const lines = r.stderr.split('\n').filter((l) => l !== '');
    expect(r.status).toBe(2);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^sshuttle-ts: /);
    expect(lines[0]).toContain(names);
    expect(r.stderr).not.toMatch(/^\s+at |Error:|internal error/m);
    expect(r.stdout).toBe('');
  });

  it('ran nothing and left no files behind', () => {
    expect(results.size).toBe(CASES.length);
    expect(existsSync(marker) ? readFileSync(marker, 'utf8') : '').toBe('');
    expect(readdirSync(work)).toEqual([]);
  });
});

describe('well-formed informational commands through the built CLI', () => {
  it('--help lists every option on stdout and exits 0', async () => {
    const r = await run(['--help']);
    expect(r.status).toBe(0);
    expect(r.stderr).toBe('');
    for (const o of OPTIONS) expect(r.stdout).toContain(`--${o.long}`);
  });

  it('-V prints the package version and exits 0', async () => {
    const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
      version: string;
    };
    const r = await run(['-V']);
    expect(r.status).toBe(0);
    expect(r.stdout).toBe(`sshuttle-ts ${version}\n`);
  });
});

describe('main in-process', () => {
  const captured = (): { stdout: string[]; stderr: string[] } => {
    const out = { stdout: [] as string[], stderr: [] as string[] };
    vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
      out.stdout.push(String(chunk));
      return true;
    });
    vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => {
      out.stderr.push(String(chunk));
      return true;
    });
    return out;
  };

  afterEach(() => {
    vi.restoreAllMocks();
    vi.unstubAllEnvs();
    runClient.mockReset();
    process.exitCode = undefined;
  });

  it('a valid run hands the Config to runClient and exits with its code', async () => {
    vi.stubEnv('SSHUTTLE_ARGS', '');
    runClient.mockResolvedValue(7);
    captured();
    await main(['-r', 'h', '10.0.0.0/8']);
    expect(runClient).toHaveBeenCalledTimes(1);
    expect(runClient.mock.calls[0]?.[0]).toMatchObject({ remote: { host: 'h' } });
    expect(process.exitCode).toBe(7);
  });

  it('a usage error or a gated feature never reaches runClient', async () => {
    const out = captured();
    await main(['-r', 'h', '10.0.0.0/8', '--method', 'pf']);
    await main(['-r', 'h', '10.0.0.0/33']);
    expect(runClient).not.toHaveBeenCalled();
    expect(process.exitCode).toBe(2);
    expect(out.stderr).toEqual([
      'sshuttle-ts: --method pf is not implemented yet\n',
      'sshuttle-ts: invalid subnet "10.0.0.0/33": prefix length 33 is out of range for IPv4 (0-32)\n',
    ]);
  });

  it('an unexpected exception is one "internal error" line and exit 1, stack only when asked', async () => {
    vi.stubEnv('SSHUTTLE_DEBUG', '');
    runClient.mockRejectedValue(new Error('boom'));
    const quiet = captured();
    await main(['-r', 'h', '10.0.0.0/8']);
    expect(process.exitCode).toBe(1);
    expect(quiet.stderr).toEqual([
      'sshuttle-ts: internal error: boom (hint: this is a bug; please report it with the output of -vvv)\n',
    ]);

    vi.restoreAllMocks();
    const loud = captured();
    await main(['-vvv', '-r', 'h', '10.0.0.0/8']);
    expect(loud.stderr[0]).toBe(
      'sshuttle-ts: internal error: boom (hint: this is a bug; please report it with the output of -vvv)\n',
    );
    expect(loud.stderr[1]).toMatch(/^Error: boom\n\s+at /);

    vi.restoreAllMocks();
    vi.stubEnv('SSHUTTLE_DEBUG', '1');
    const debug = captured();
    await main(['-r', 'h', '10.0.0.0/8']);
    expect(debug.stderr).toHaveLength(2);
  });
});
