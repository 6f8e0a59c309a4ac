import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fc, test } from '@fast-check/vitest';
import { describe, expect, it } from 'vitest';
import type { Config } from '../../src/domain/config.js';
import {
  HELPER_MALLOC_ENV,
  HELPER_STDIN_PIPE_BYTES,
  helperArgs,
  loaderScript,
  parseHelperArgs,
  shq,
  sshArgv,
  uploadCommand,
} from '../../src/effects/helper/command.js';
import { explainExit } from '../../src/effects/helper/connect-helper.js';
import { usesHelper } from '../../src/effects/helper/from-config.js';

const base = {
  sshCmd: [] as string[],
  user: null,
  host: 'example.net',
  port: null,
  noCmdDelimiter: false,
  password: null,
  remoteCommand: 'REMOTE',
};

describe('sshArgv (as sshuttle ssh.connect builds it)', () => {
  it('defaults to ssh HOST -- CMD', () => {
    expect(sshArgv(base)).toEqual(['ssh', 'example.net', '--', 'REMOTE']);
  });
  it('puts the split -e words first, then -p PORT, user@host, --, the command', () => {
    expect(
      sshArgv({
        ...base,
        sshCmd: ['ssh', '-F', '/tmp/lab/ssh config', '-o', 'BatchMode=yes'],
        user: 'root',
        port: 2222,
      }),
    ).toEqual([
      'ssh',
      '-F',
      '/tmp/lab/ssh config',
      '-o',
      'BatchMode=yes',
      '-p',
      '2222',
      'root@example.net',
      '--',
      'REMOTE',
    ]);
  });
  it('drops -- with --no-cmd-delimiter', () => {
    expect(sshArgv({ ...base, noCmdDelimiter: true, user: 'u' })).toEqual([
      'ssh',
      'u@example.net',
      'REMOTE',
    ]);
  });
  it('runs sshpass -e when -r carries a password', () => {
    expect(sshArgv({ ...base, password: 'pw' })).toEqual([
      'sshpass',
      '-e',
      'ssh',
      'example.net',
      '--',
      'REMOTE',
    ]);
  });
  it('passes an IPv6 host as given', () => {
    expect(sshArgv({ ...base, host: '2001:db8::1', port: 22 })).toEqual([
      'ssh',
      '-p',
      '22',
      '2001:db8::1',
      '--',
      'REMOTE',
    ]);
  });
});

describe('shell quoting and the upload command', () => {
  /** The upload command of a helper bundle `js`, run by this machine's node. */
  const commandRunning = (js: string) =>
    uploadCommand(process.execPath, Buffer.byteLength(js), {
      verbose: 0,
      latencyControl: true,
      latencyBufferSize: 32768,
    });

  test.prop([fc.string()])('shq survives /bin/sh for any word', (word) => {
    fc.pre(!word.includes('\0'));
    const r = spawnSync('/bin/sh', ['-c', `printf %s ${shq(word)}`], { encoding: 'utf8' });
    expect(r.stdout).toBe(word);
  });

  it('starts node through /bin/sh with the loader and the options', () => {
    const cmd = uploadCommand('/opt/node bin/node', 1234, {
      verbose: 2,
      latencyControl: false,
      latencyBufferSize: 65536,
    });
    expect(cmd.startsWith("/bin/sh -c 'export ")).toBe(true);
    // What /bin/sh is asked to run, with its words:
    const words = spawnSync(
      '/bin/sh',
      ['-c', `set -- ${cmd.slice('/bin/sh -c '.length)}; printf '%s\\n' "$@"`],
      { encoding: 'utf8' },
    ).stdout;
    const inner = words.trimEnd();
    expect(inner).toContain("exec '/opt/node bin/node' -e ");
    expect(inner).toContain('n=1234');
    expect(inner.endsWith('v=2 lc=0 lbs=65536')).toBe(true);
  });

  it("the helper runs with glibc's arena and trim settings, unless the server's environment has its own", () => {
    const js =
      'const e=process.env;process.stdout.write(e.MALLOC_ARENA_MAX+" "+e.MALLOC_TRIM_THRESHOLD_)';
    const cmd = commandRunning(js);
    const run = (env: NodeJS.ProcessEnv) =>
      spawnSync('/bin/sh', ['-c', cmd], { input: js, encoding: 'utf8', env }).stdout;
    const bare = { PATH: process.env.PATH ?? '/usr/bin:/bin' };
    expect(run(bare)).toBe(HELPER_MALLOC_ENV.map(([, v]) => v).join(' '));
    expect(run({ ...bare, MALLOC_ARENA_MAX: '4' })).toBe(`4 ${8 * 1024 * 1024}`);
  });

  describe("the helper's stdin pipe", () => {
    // What the uploaded helper sees on fd 0: perl reads the pipe's size (F_GETPIPE_SZ).
    const js =
      'process.stdout.write(require("child_process").execFileSync("perl",["-e","print fcntl(STDIN,1032,0)"],{stdio:[0,"pipe","inherit"]}))';
    // sshd gives the command a pipe; Node's own child stdio is a socket pair, so cat makes one.
    const viaPipe = (command: string, input: string, env: NodeJS.ProcessEnv) =>
      spawnSync('/bin/sh', ['-c', `/bin/cat | ${command}`], { input, encoding: 'utf8', env });
    const env = { PATH: process.env.PATH ?? '/usr/bin:/bin' };

    it('is grown to 1 MiB before node starts (a pipe starts at 64 KiB)', () => {
      const plain = `exec ${shq(process.execPath)} -e ${shq(loaderScript(Buffer.byteLength(js)))}`;
      expect(viaPipe(plain, js, env).stdout).toBe('65536');
      const r = viaPipe(commandRunning(js), js, env);
      expect(r.stderr).toBe('');
      expect(r.stdout).toBe(String(HELPER_STDIN_PIPE_BYTES));
    });

    it('python3 grows it where the server has no perl', () => {
      // A PATH with python3 only (and cat, which the pipe needs).
      const dir = mkdtempSync(join(tmpdir(), 'no-perl-'));
      try {
        const python = spawnSync('python3', ['-c', 'import sys; print(sys.executable)'], {
          encoding: 'utf8',
        }).stdout.trim();
        symlinkSync(python, join(dir, 'python3'));
        // The helper's own check uses perl: here it asks python3 instead.
        const ask = 'import fcntl,sys; sys.stdout.write(str(fcntl.fcntl(0,1032)))';
        const viaPython = `process.stdout.write(require("child_process").execFileSync("python3",["-c",${JSON.stringify(ask)}],{stdio:[0,"pipe","inherit"]}))`;
        const r = viaPipe(commandRunning(viaPython), viaPython, { PATH: dir });
        expect(r.stderr).toBe('');
        expect(r.stdout).toBe(String(HELPER_STDIN_PIPE_BYTES));
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });

    it('without perl or python3 on the server the helper still starts, and nothing is said', () => {
      const bare = 'process.stdout.write("ran")';
      const r = viaPipe(commandRunning(bare), bare, { PATH: '/nonexistent' });
      expect(r.stderr).toBe('');
      expect(r.stdout).toBe('ran');
      expect(r.status).toBe(0);
    });
  });

  it('the loader runs exactly N bytes of stdin as a module and leaves the rest', () => {
    const js = 'process.stdout.write("ran:" + require("fs").readFileSync(0, "utf8"))';
    const r = spawnSync(process.execPath, ['-e', loaderScript(Buffer.byteLength(js))], {
      input: `${js}REST`,
      encoding: 'utf8',
    });
    expect(r.status).toBe(0);
    expect(r.stdout).toBe('ran:REST');
  });

  it('the loader exits 97 when stdin ends early', () => {
    const r = spawnSync(process.execPath, ['-e', loaderScript(100)], {
      input: 'short',
      encoding: 'utf8',
    });
    expect(r.status).toBe(97);
  });

  it('helper options round-trip through the command line', () => {
    const o = {
      verbose: 3,
      latencyControl: false,
      latencyBufferSize: 1000,
      toNs: null,
      autoNets: false,
      autoHosts: false,
    };
    expect(parseHelperArgs(['ignored', ...helperArgs(o)])).toEqual(o);
    const ns = { ...o, toNs: { ip: '2001:db8::53', port: 5353 } };
    expect(parseHelperArgs(helperArgs(ns))).toEqual(ns);
    const names = { ...o, autoNets: true, autoHosts: true };
    expect(helperArgs(names)).toContain('an=1');
    expect(parseHelperArgs(helperArgs(names))).toEqual(names);
    expect(parseHelperArgs([])).toEqual({
      verbose: 0,
      latencyControl: true,
      latencyBufferSize: 32768,
      toNs: null,
      autoNets: false,
      autoHosts: false,
    });
  });
});

describe('errors and transport choice', () => {
  const how = { upload: true, node: '/nonexistent', external: false };
  it('exit 127 while uploading says node is missing and suggests --transport direct', () => {
    const msg = explainExit(
      how,
      { code: 127, signal: null },
      'sh: 1: exec: /nonexistent: not found',
    );
    expect(msg).toMatch(/^node not found on the server/);
    expect(msg).toContain('/nonexistent');
    expect(msg).toContain('--transport direct');
    expect(msg).not.toContain('\n');
  });
  it('exit 127 of --helper-cmd names the helper command', () => {
    expect(explainExit({ ...how, upload: false }, { code: 127, signal: null }, 'x')).toMatch(
      /helper command was not found/,
    );
  });
  it('exit 255 of an external ssh is an ssh failure', () => {
    expect(
      explainExit({ ...how, external: true }, { code: 255, signal: null }, 'Connection refused'),
    ).toBe('ssh failed (exit 255): Connection refused');
  });
  it('auto means direct unless -e, --helper-cmd or --wrap', () => {
    const c = (p: Partial<Config>): Config =>
      ({ transport: 'auto', sshCmd: null, helperCmd: null, wrap: 65535, ...p }) as Config;
    expect(usesHelper(c({}))).toBe(false);
    expect(usesHelper(c({ sshCmd: 'ssh' }))).toBe(true);
    expect(usesHelper(c({ helperCmd: 'x' }))).toBe(true);
    expect(usesHelper(c({ transport: 'helper' }))).toBe(true);
    // tproxy's UDP needs the helper protocol
    expect(usesHelper(c({ method: 'tproxy' }))).toBe(true);
    expect(usesHelper(c({ method: 'nft' }))).toBe(false);
    expect(usesHelper(c({ transport: 'direct', sshCmd: 'ssh' }))).toBe(false);
    expect(usesHelper(c({ wrap: 20 }))).toBe(true);
    expect(usesHelper(c({ transport: 'direct', wrap: 20 }))).toBe(false);
  });
});
