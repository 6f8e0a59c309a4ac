/**
 * Fatal errors through the BUILT client: each ends with the documented exit
 * code and exactly one error line naming the cause and a hint. Each case runs
 * in its own network namespace (`unshare -n`) against a fake ssh server
 * (ssh2) on loopback, so the machine's firewall is never touched.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT_CODES, EXIT_FATAL, EXIT_USAGE } from '../../src/domain/exit-codes.js';
import { classifyMessage, fatalLine, HINTS } from '../../src/domain/fatal.js';

const ROOT = resolve(import.meta.dirname, '../..');
const CASE = join(ROOT, 'test/unit/fixtures/fatal-case.mjs');

const why =
  process.getuid?.() !== 0
    ? 'needs root (unshare -n, the firewall helper)'
    : spawnSync('unshare', ['-n', 'true']).status !== 0
      ? 'unshare -n does not work here'
      : null;
if (why !== null) console.warn(`cli-fatal: skipped: ${why}`);

let sandbox = '';
let fakeBin = '';
beforeAll(() => {
  sandbox = mkdtempSync(join(tmpdir(), 'sshuttle-ts-fatal-'));
  fakeBin = join(sandbox, 'bin');
  mkdirSync(fakeBin);
  // An nft that refuses to work, as without privileges (only on PATH for the firewall case).
  const nft = join(sandbox, 'nft-broken');
  mkdirSync(nft);
  writeFileSync(join(nft, 'nft'), '#!/bin/sh\necho "Error: Operation not permitted" >&2\nexit 1\n');
  chmodSync(join(nft, 'nft'), 0o755);
});
afterAll(() => {
  if (sandbox !== '') rmSync(sandbox, { recursive: true, force: true });
});

/** The client's error lines (pino JSON on a pipe: level 50). */
const errorLines = (stderr: string): string[] =>
  stderr
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as { level: number; msg: string })
    .filter((l) => l.level >= 50)
    .map((l) => l.msg);

const runCase = (mode: string, args: readonly string[], pathPrefix = fakeBin) => {
  const work = mkdtempSync(join(sandbox, 'case-'));
  const r = spawnSync(
    'unshare',
    ['-n', process.execPath, CASE, mode, work, pathPrefix, '--', ...args],
    {
      encoding: 'utf8',
      timeout: 90_000,
    },
  );
  expect(r.status, r.stderr).toBe(0);
  return JSON.parse(r.stdout.trim().split('\n').at(-1) ?? '{}') as { code: number; stderr: string };
};

/** Exit code 99 and exactly one error line: the cause and the hint. */
const expectFatal = (r: { code: number; stderr: string }, cause: RegExp, hint: string) => {
  const line = oneFatalLine(r);
  expect(line).toMatch(cause);
  expect(line).toContain(`(hint: ${hint})`);
  expect(line).not.toContain('\n');
};

const SUBNET = '10.99.0.0/16';
/** Client args against the fake server with ssh config `config`, then `extra`. */
const toServer = (config: string, ...extra: string[]): string[] => [
  '--ssh-config',
  config,
  ...extra,
  '-r',
  'root@127.0.0.1:{PORT}',
  SUBNET,
];
/** Exactly one error line, exit 99; returns the line. */
const oneFatalLine = (r: { code: number; stderr: string }): string => {
  expect(r.code, r.stderr).toBe(EXIT_FATAL);
  const lines = errorLines(r.stderr);
  expect(lines, r.stderr).toHaveLength(1);
  return lines[0] ?? '';
};

describe.skipIf(why !== null)('fatal errors: exit code, one line, cause and hint', () => {
  it('the ssh server refuses the connection', () => {
    const r = runCase('none', ['-r', 'root@127.0.0.1:1', SUBNET]);
    expectFatal(
      r,
      /^cannot connect to 127\.0\.0\.1 port 1: .*ECONNREFUSED/,
      HINTS['connect-failed'],
    );
  }, 60_000);

  it('authentication fails', () => {
    const r = runCase('reject-auth', toServer('{CONFIG}'));
    expectFatal(r, /^authentication failed for root@127\.0\.0\.1:\d+: /, HINTS['auth-failed']);
  }, 60_000);

  it('the host key is unknown and StrictHostKeyChecking is yes', () => {
    const r = runCase('accept', toServer('{STRICT}'));
    expectFatal(r, /^host key for \[127\.0\.0\.1\]:\d+ .*not/i, HINTS['host-key-unknown']);
  }, 60_000);

  it('the host key changed', () => {
    const r = runCase('accept', toServer('{CHANGED}'));
    // The driver names the exact known_hosts line and the ssh-keygen -R command: no second hint.
    const line = oneFatalLine(r);
    expect(line).toMatch(
      /^HOST KEY CHANGED for \[127\.0\.0\.1\]:\d+: .*intercepting.*ssh-keygen -R '\[127\.0\.0\.1\]:\d+'/,
    );
    expect(line).not.toContain('(hint:');
  }, 60_000);

  it('node is not found on the server (helper transport): the hint is part of the line', () => {
    const r = runCase(
      'no-node',
      toServer('{CONFIG}', '--transport', 'helper', '--node', '/nonexistent'),
    );
    expect(oneFatalLine(r)).toMatch(/^node not found on the server .*or use --transport direct$/);
  }, 60_000);

  it('the listen port is taken', () => {
    const r = runCase('accept', toServer('{CONFIG}', '-l', '127.0.0.1:{BUSY}'));
    expectFatal(r, /^cannot listen \(tcp\) on 127\.0\.0\.1:\d+: EADDRINUSE/, HINTS.listen);
  }, 60_000);

  it('the firewall does not work', () => {
    // A server that lets us in: as root ssh connects while the helper starts,
    // so a refused ssh connection could be reported first.
    const r = runCase(
      'accept',
      toServer('{CONFIG}', '--method', 'nft'),
      join(sandbox, 'nft-broken'),
    );
    expectFatal(r, /^firewall: .*nft/, HINTS['firewall-root']);
  }, 60_000);

  it('ssh drops with --no-reconnect', () => {
    const r = runCase('drop', toServer('{CONFIG}', '--no-reconnect'));
    expectFatal(r, /^ssh connection lost: /, HINTS['ssh-lost']);
  }, 60_000);

  it('a subnet name that does not resolve is a usage error (2) with a hint', () => {
    const r = runCase('none', ['-r', 'root@127.0.0.1:1', 'no-such-host.invalid']);
    expect(r.code).toBe(EXIT_USAGE);
    const lines = errorLines(r.stderr);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^cannot resolve "no-such-host\.invalid": .* \(hint: /);
  }, 60_000);
});

/** The cells of every markdown table row in `text`, trimmed. */
const tableRows = (text: string): string[][] =>
  text
    .split('\n')
    .filter((l) => l.startsWith('|'))
    .map((l) =>
      l
        .slice(1, -1)
        .split('|')
        .map((c) => c.trim()),
    );

describe('the exit code table', () => {
  it('has one row per code, each documented in docs/exit-codes.md with every hint', () => {
    const rows = tableRows(readFileSync(join(ROOT, 'docs/exit-codes.md'), 'utf8'));
    const has = (cells: string[]) =>
      rows.some((r) => r.length === cells.length && r.every((c, i) => c === cells[i]));
    const codes = EXIT_CODES.map((r) => r.code);
    expect(new Set(codes).size).toBe(codes.length);
    for (const row of EXIT_CODES) expect(has([String(row.code), row.name, row.meaning])).toBe(true);
    for (const [cause, hint] of Object.entries(HINTS)) expect(has([cause, hint])).toBe(true);
  });
});

describe('fatal lines', () => {
  it('are one line: the cause, then the hint', () => {
    expect(fatalLine('listen', 'cannot listen\n  on 127.0.0.1:1: EADDRINUSE')).toBe(
      `cannot listen on 127.0.0.1:1: EADDRINUSE (hint: ${HINTS.listen})`,
    );
  });

  it('guess the cause of a message without one', () => {
    expect(classifyMessage('firewall', 'error: the firewall helper must run as root (sudo)')).toBe(
      'firewall-root',
    );
    expect(classifyMessage('firewall', 'no usable firewall method: ...')).toBe('firewall');
    expect(classifyMessage('ssh', 'node not found on the server ("node" ...)')).toBe(
      'node-not-found',
    );
    expect(classifyMessage('ssh', 'the helper exited with code 1 before it started')).toBe(
      'helper',
    );
    expect(classifyMessage('ssh', 'cannot connect to h port 22: h: timed out')).toBe('timeout');
  });
});
