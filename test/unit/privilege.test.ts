import * as fc from 'fast-check';
import { isLeft, isRight, left, right } from 'fp-ts/lib/Either.js';
import { describe, expect, it } from 'vitest';
import { MethodC } from '../../src/domain/config.js';
import {
  chooseElevation,
  elevationPrefix,
  firewallHelperArgs,
  SUDO_PROMPT,
} from '../../src/domain/privilege.js';
import { allowedCommands, sudoersAlias, sudoersSnippet } from '../../src/domain/sudoers.js';
import { helperArgv } from '../../src/effects/firewall/firewall-client.js';
import { idFromEntry } from '../../src/effects/owner.js';

const NODE = '/usr/bin/node';
const SCRIPT = '/opt/sshuttle-ts/bin/sshuttle-ts';
const methods = Object.keys(MethodC.keys) as (keyof typeof MethodC.keys)[];

describe('chooseElevation', () => {
  const has =
    (...tools: string[]) =>
    (t: string) =>
      tools.includes(t);
  it.each<[string, number, string | undefined, string[], ReturnType<typeof chooseElevation>]>([
    ['root needs nothing', 0, undefined, ['sudo'], right('none')],
    ['root ignores the choice', 0, 'doas', [], right('none')],
    ['a user gets sudo', 1000, undefined, ['sudo', 'doas'], right('sudo')],
    ['doas when sudo is absent', 1000, undefined, ['doas'], right('doas')],
    ['auto is the default', 1000, 'auto', ['doas'], right('doas')],
    ['doas when asked for', 1000, 'doas', ['sudo', 'doas'], right('doas')],
    ['sudo when asked for', 1000, 'sudo', ['sudo', 'doas'], right('sudo')],
  ])('%s', (_, uid, requested, tools, want) => {
    expect(chooseElevation({ uid, requested, has: has(...tools) })).toEqual(want);
  });
  it('says why it cannot elevate', () => {
    expect(chooseElevation({ uid: 1000, requested: undefined, has: has() })).toEqual(
      left(
        'the firewall needs root: run as root, or install sudo or doas so the firewall helper can be started with it',
      ),
    );
    expect(chooseElevation({ uid: 1000, requested: 'doas', has: has('sudo') })).toEqual(
      left('SSHUTTLE_TS_ELEVATE=doas, but doas is not installed (not on PATH)'),
    );
    expect(chooseElevation({ uid: 0, requested: 'su', has: has('sudo') })).toEqual(
      left('SSHUTTLE_TS_ELEVATE must be sudo, doas or auto, not "su"'),
    );
  });
});

describe('the elevated command', () => {
  it('is sudo -p with the exact prompt, or doas', () => {
    expect(SUDO_PROMPT).toBe('[local sudo] Password: ');
    expect(elevationPrefix('sudo', '/usr/bin/sudo')).toEqual([
      '/usr/bin/sudo',
      '-p',
      '[local sudo] Password: ',
      '--',
    ]);
    expect(elevationPrefix('doas', '/usr/bin/doas')).toEqual(['/usr/bin/doas']);
    expect(elevationPrefix('none', '')).toEqual([]);
  });

  it('caps -v at two (the helper has no more levels)', () => {
    expect(firewallHelperArgs('nft', 0)).toEqual(['--firewall', '--method', 'nft']);
    expect(firewallHelperArgs('nat', 7)).toEqual(['--firewall', '--method', 'nat', '-v', '-v']);
  });
});

describe('sudoersSnippet', () => {
  it('is an alias of the exact command lines and one NOPASSWD line (golden)', () => {
    const s = sudoersSnippet({ user: 'alice', node: NODE, script: SCRIPT });
    expect(isRight(s)).toBe(true);
    if (isLeft(s)) return;
    const alias = sudoersAlias(NODE, SCRIPT);
    expect(alias).toMatch(/^SSHUTTLE_TS_[0-9A-F]{8}$/);
    const lines = s.right.split('\n');
    expect(lines.filter((l) => !l.startsWith('#'))).toEqual([
      `Cmnd_Alias ${alias} = \\`,
      ...methods
        .flatMap((m) =>
          ['', ' -v', ' -v -v'].map((v) => `    ${NODE} ${SCRIPT} --firewall --method ${m}${v}`),
        )
        .map((l, i, all) => (i === all.length - 1 ? l : `${l}, \\`)),
      `alice ALL=(root) NOPASSWD: ${alias}`,
      '',
    ]);
    // No wildcard anywhere: sudo matches the arguments exactly.
    expect(s.right.replace(/^#.*$/gm, '')).not.toMatch(/[*?[\]]/);
  });

  it('matches exactly what the client runs, for every method and verbosity (property)', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...methods),
        fc.integer({ min: 0, max: 20 }),
        (method, verbose) => {
          const argv = helperArgv({
            method,
            verbose,
            command: [NODE, SCRIPT],
            prefix: elevationPrefix('sudo', '/usr/bin/sudo'),
          });
          // What sudo matches: the command after `sudo -p PROMPT --`.
          const command = argv.slice(4).join(' ');
          expect(allowedCommands(NODE, SCRIPT)).toContain(command);
        },
      ),
    );
  });

  it('allows nothing but the helper (property: any other argument list is not listed)', () => {
    const allowed = new Set(allowedCommands(NODE, SCRIPT));
    fc.assert(
      fc.property(
        fc.array(fc.string({ minLength: 1, maxLength: 12 }), { maxLength: 6 }),
        (args) => {
          const line = [NODE, SCRIPT, ...args].join(' ');
          const isHelper = methods.some((m) =>
            [0, 1, 2].some((v) => line === [NODE, SCRIPT, ...firewallHelperArgs(m, v)].join(' ')),
          );
          expect(allowed.has(line)).toBe(isHelper);
        },
      ),
    );
  });

  it('takes %group, #uid and aliases; the alias is stable per installation', () => {
    for (const user of ['%wheel', '#1000', 'OPS', 'bob.smith', 'svc-tunnel'])
      expect(isRight(sudoersSnippet({ user, node: NODE, script: SCRIPT }))).toBe(true);
    expect(sudoersAlias(NODE, SCRIPT)).toBe(sudoersAlias(NODE, SCRIPT));
    expect(sudoersAlias(NODE, SCRIPT)).not.toBe(sudoersAlias(NODE, '/srv/other/bin/sshuttle-ts'));
  });

  it.each([
    ['a user with a space', 'a b', NODE, SCRIPT],
    ['a user list', 'a,b', NODE, SCRIPT],
    ['ALL', 'ALL ALL=(ALL) ALL', NODE, SCRIPT],
    ['a relative node path', 'u', 'node', SCRIPT],
    ['a path with a space', 'u', NODE, '/opt/my dir/bin/sshuttle-ts'],
    ['a path with a comma', 'u', NODE, '/opt/a,b/sshuttle-ts'],
    ['a path with a wildcard', 'u', '/usr/bin/nod*', SCRIPT],
    ['a path with a colon', 'u', NODE, '/opt/a:b/sshuttle-ts'],
  ])('refuses %s', (_, user, node, script) => {
    expect(isLeft(sudoersSnippet({ user, node, script }))).toBe(true);
  });
});

describe('idFromEntry (getent lines)', () => {
  it('reads the third field', () => {
    expect(idFromEntry('alice:x:1000:1000:Alice:/home/alice:/bin/bash')).toBe(1000);
    expect(idFromEntry('staff:x:50:')).toBe(50);
    expect(idFromEntry('root:x:0:0::/root:/bin/sh')).toBe(0);
    expect(idFromEntry('broken')).toBeNull();
    expect(idFromEntry('x:x:-1:')).toBeNull();
    expect(idFromEntry('x:x:4294967295:')).toBeNull();
  });
});
