/**
 * The step runner and method selection, with harmless commands (true, false,
 * printf) only: no root, no firewall touched.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isLeft, isRight } from 'fp-ts/lib/Either.js';
import { describe, expect, it } from 'vitest';
import type { Step } from '../../src/domain/firewall-plan.js';
import { helperArgv } from '../../src/effects/firewall/firewall-client.js';
import { firewallEnv, runCommand, runSteps } from '../../src/effects/firewall/run-steps.js';
import { selectMethod } from '../../src/effects/firewall/select-method.js';

const env = firewallEnv({ PATH: '/usr/local/bin:/usr/bin', HOME: '/root', SECRET: 'x' });

const collect = () => {
  const lines: string[] = [];
  return { lines, log: (level: number, m: string) => lines.push(`${level} ${m}`) };
};

/** `printf TEXT` prints TEXT, so a probe can be given its "listing". */
const listing = (text: string) => ['printf', '%s', text];

describe('firewallEnv', () => {
  it('passes only PATH (extended with the sbin dirs) and LC_ALL=C', () => {
    expect(env).toEqual({
      PATH: '/usr/local/bin:/usr/bin:/sbin:/usr/sbin:/bin',
      LC_ALL: 'C',
    });
    expect(firewallEnv({}).PATH).toBe('/sbin:/usr/sbin:/bin:/usr/bin');
  });
});

describe('runCommand', () => {
  it('never uses a shell', async () => {
    const r = await runCommand(['printf', '%s', '$(echo hi); echo no'], env);
    expect(r).toMatchObject({ code: 0, stdout: '$(echo hi); echo no', spawnError: null });
  });
  it('reports a missing program instead of throwing', async () => {
    const r = await runCommand(['sshuttle-ts-no-such-program'], env);
    expect(r.spawnError).toMatch(/ENOENT/);
  });
});

describe('runSteps', () => {
  it('stops at the first failing fatal step', async () => {
    const { lines, log } = collect();
    const steps: Step[] = [
      { argv: ['true'], fatal: true },
      { argv: ['false'], fatal: true },
      { argv: ['printf', 'never'], fatal: true },
    ];
    const r = await runSteps(steps, { env, log });
    expect(r).toEqual({ _tag: 'Left', left: 'false returned 1' });
    expect(lines.filter((l) => l.startsWith('1 >>'))).toEqual(['1 >> true', '1 >> false']);
  });

  it('logs and skips a failing non-fatal step', async () => {
    const { lines, log } = collect();
    const r = await runSteps(
      [
        { argv: ['false'], fatal: false },
        { argv: ['true'], fatal: true },
      ],
      { env, log },
    );
    expect(isRight(r)).toBe(true);
    expect(lines).toContain('0 error (ignored): false returned 1');
  });

  it('in restore mode runs everything and returns the first error', async () => {
    const { lines, log } = collect();
    const r = await runSteps(
      [
        { argv: ['false'], fatal: true },
        { argv: ['sshuttle-ts-no-such-program'], fatal: true },
        { argv: ['true'], fatal: true },
      ],
      { env, log, keepGoing: true },
    );
    expect(r).toEqual({ _tag: 'Left', left: 'false returned 1' });
    expect(lines.filter((l) => l.startsWith('1 >>')).length).toBe(3);
  });

  it('runs gated steps only when the probe lists the line', async () => {
    const when = {
      argv: listing('Chain INPUT (policy ACCEPT)\nChain sshuttle-1025 (2 references)\n'),
      line: 'Chain sshuttle-1025 ',
      match: 'prefix',
    } as const;
    const absent = { ...when, line: 'Chain sshuttle-1026 ' };
    const exact = { ...when, line: 'Chain sshuttle-1025', match: 'exact' } as const;
    const { lines, log } = collect();
    const r = await runSteps(
      [
        { argv: ['printf', 'present'], fatal: true, when },
        { argv: ['false'], fatal: true, when: absent },
        { argv: ['false'], fatal: true, when: exact },
      ],
      { env, log },
    );
    expect(isRight(r)).toBe(true);
    expect(lines.filter((l) => l.startsWith('1 >>'))).toEqual(['1 >> printf present']);
  });

  it('treats a failing probe as the step failing', async () => {
    const when = { argv: ['false'], line: 'x', match: 'prefix' } as const;
    const { log } = collect();
    expect(isLeft(await runSteps([{ argv: ['true'], fatal: true, when }], { env, log }))).toBe(
      true,
    );
    expect(isRight(await runSteps([{ argv: ['true'], fatal: false, when }], { env, log }))).toBe(
      true,
    );
  });

  it('stops between steps when asked', async () => {
    const { log } = collect();
    let n = 0;
    const r = await runSteps(
      [
        { argv: ['true'], fatal: true },
        { argv: ['true'], fatal: true },
      ],
      { env, log, shouldStop: () => n++ > 0 },
    );
    expect(r).toEqual({ _tag: 'Left', left: 'stopped' });
  });
});

describe('runSteps with nft steps', () => {
  /** A fake `nft` first on PATH: it records each call (args, then stdin) and exits with `code`. */
  const fakeNft = (code: number) => {
    const dir = mkdtempSync(join(tmpdir(), 'fake-nft-'));
    const calls = join(dir, 'calls');
    writeFileSync(
      join(dir, 'nft'),
      `#!/bin/sh\n{ echo "ARGS $*"; [ "$2" = "-" ] && cat; } >> ${calls}\nexit ${code}\n`,
      { mode: 0o755 },
    );
    const fakeEnv = firewallEnv({ PATH: `${dir}:/usr/bin:/bin` });
    const read = () => readFileSync(calls, 'utf8');
    return { fakeEnv, read, done: () => rmSync(dir, { recursive: true, force: true }) };
  };
  const steps: Step[] = [
    { argv: ['nft', 'add', 'table', 'inet', 't'], fatal: true },
    {
      argv: ['nft', 'add', 'chain', 'inet', 't', 'c', '{ type nat hook output priority -100; }'],
      fatal: true,
    },
    { argv: ['nft', 'add', 'rule', 'inet', 't', 'c', 'return'], fatal: true },
  ];

  it('runs consecutive ones as one nft -f - transaction, logging each command', async () => {
    const nft = fakeNft(0);
    const { lines, log } = collect();
    const r = await runSteps(steps, { env: nft.fakeEnv, log });
    expect(isRight(r)).toBe(true);
    expect(nft.read()).toBe(
      'ARGS -f -\nadd table inet t\nadd chain inet t c { type nat hook output priority -100; }\nadd rule inet t c return\n',
    );
    expect(lines.filter((l) => l.startsWith('1 >> nft add'))).toHaveLength(3);
    nft.done();
  });

  it('a failing transaction is one error that says nothing was applied', async () => {
    const nft = fakeNft(1);
    const { log } = collect();
    const r = await runSteps(steps, { env: nft.fakeEnv, log });
    expect(r).toEqual({ _tag: 'Left', left: 'nft -f - returned 1 (3 commands, none applied)' });
    nft.done();
  });

  it('in restore mode runs them one by one, so one failing does not keep the rest from running', async () => {
    const nft = fakeNft(0);
    const { log } = collect();
    await runSteps(steps, { env: nft.fakeEnv, log, keepGoing: true });
    expect(
      nft
        .read()
        .split('\n')
        .filter((l) => l.startsWith('ARGS')),
    ).toEqual([
      'ARGS add table inet t',
      'ARGS add chain inet t c { type nat hook output priority -100; }',
      'ARGS add rule inet t c return',
    ]);
    nft.done();
  });
});

describe('selectMethod', () => {
  const empty = { PATH: '/nonexistent-sshuttle-ts', LC_ALL: 'C' } as const;
  it('explains when no method is usable', async () => {
    const r = await selectMethod('auto', empty);
    expect(r._tag).toBe('Left');
    if (isLeft(r)) expect(r.left).toMatch(/no usable firewall method.*nft.*iptables/);
    expect(isLeft(await selectMethod('nft', empty))).toBe(true);
  });
  it('refuses methods this helper does not implement', async () => {
    const r = await selectMethod('pf', env);
    expect(r).toEqual({
      _tag: 'Left',
      left: 'the pf method is not supported by this firewall helper (yet)',
    });
  });

  it('tproxy needs iptables, ip6tables and ip, and names the missing one', async () => {
    const r = await selectMethod('tproxy', empty);
    expect(r).toEqual({
      _tag: 'Left',
      left: "the tproxy method needs 'iptables', which is not on PATH (/nonexistent-sshuttle-ts)",
    });
  });

  it('an nftables-only machine: nft-tproxy is usable, and tproxy points to it', async () => {
    const bin = mkdtempSync(join(tmpdir(), 'sshuttle-ts-nft-only-'));
    try {
      for (const tool of ['nft', 'ip'])
        writeFileSync(join(bin, tool), '#!/bin/sh\nexit 0\n', { mode: 0o755 });
      const nftOnly = { PATH: bin, LC_ALL: 'C' } as const;
      expect(await selectMethod('nft-tproxy', nftOnly)).toEqual({
        _tag: 'Right',
        right: 'nft-tproxy',
      });
      const r = await selectMethod('tproxy', nftOnly);
      expect(isLeft(r) && r.left).toBe(
        `the tproxy method needs 'iptables', which is not on PATH (${bin}) (nft is here: --method nft-tproxy does the same with nftables)`,
      );
    } finally {
      rmSync(bin, { recursive: true, force: true });
    }
  });
});

describe('helperArgv', () => {
  it('is prefix, command, --firewall, --method, one -v per level', () => {
    expect(
      helperArgv({
        method: 'nft',
        verbose: 2,
        command: ['/usr/bin/node', 'bin/sshuttle-ts'],
        prefix: ['ip', 'netns', 'exec', 'ns1'],
      }),
    ).toEqual([
      'ip',
      'netns',
      'exec',
      'ns1',
      '/usr/bin/node',
      'bin/sshuttle-ts',
      '--firewall',
      '--method',
      'nft',
      '-v',
      '-v',
    ]);
    expect(helperArgv({ method: 'auto', verbose: 0, command: ['x'] })).toEqual([
      'x',
      '--firewall',
      '--method',
      'auto',
    ]);
  });
});
