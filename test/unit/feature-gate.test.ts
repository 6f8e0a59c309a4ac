import * as E from 'fp-ts/lib/Either.js';
import { describe, expect, it } from 'vitest';
import { notImplementedYet } from '../../src/cli/feature-gate.js';
import { parseCommandLine } from '../../src/cli/options.js';

const gate = (...args: string[]): string | null => {
  const r = parseCommandLine(['-r', 'h', '10.0.0.0/8', ...args], { HOME: '/h' }, () =>
    E.left('no files in this test'),
  );
  if (E.isLeft(r) || r.right.kind !== 'run')
    throw new Error(`bad test command line ${args.join(' ')}`);
  return notImplementedYet(r.right.config);
};

describe('notImplementedYet', () => {
  it.each<[string[], string]>([
    [['--method', 'tproxy', '--transport', 'direct'], '--method tproxy with --transport direct'],
    [
      ['--method', 'nft-tproxy', '--transport', 'direct'],
      '--method nft-tproxy with --transport direct',
    ],
    [['--method', 'pf'], '--method pf'],
    [['--method', 'ipfw'], '--method ipfw'],
    [['--remote-shell', 'cmd'], '--remote-shell'],
    [['--python', 'python3'], '--python'],
    [['--wrap', '10', '--transport', 'direct'], '--wrap with --transport direct'],
    [['--transport', 'direct', '-e', 'ssh'], '-e/--ssh-cmd with --transport direct'],
    [['--transport', 'direct', '--helper-cmd', 'x'], '--helper-cmd with --transport direct'],
  ])('%j is refused as %s', (args, option) => {
    expect(gate(...args)).toBe(`${option} is not implemented yet`);
  });

  it.each<string[]>([
    [],
    ['--method', 'nft'],
    ['--method', 'nat'],
    ['--method', 'auto'],
    ['--method', 'tproxy'],
    ['--method', 'tproxy', '--transport', 'helper', '-t', '0x2a'],
    ['--disable-ipv6'],
    ['-N'],
    ['-H'],
    ['--seed-hosts', 'a'],
    ['-N', '--transport', 'helper'],
    ['-H', '-e', 'ssh'],
    ['--seed-hosts', 'a', '--helper-cmd', 'x'],
    ['--dns'],
    ['--ns-hosts', '1.1.1.1'],
    ['--dns', '--to-ns', '1.1.1.1'],
    ['-l', '127.0.0.1:0,[::1]:0'],
    ['-l', '127.0.0.2:1234'],
    ['-l', '1234'],
    ['--latency-buffer-size', '32768'],
    ['--wrap', '65535'],
    ['--wrap', '10'],
    ['--wrap', '10', '--transport', 'helper'],
    ['--transport', 'direct'],
    ['--transport', 'helper'],
    ['-e', 'ssh -v'],
    ['--helper-cmd', 'x'],
    ['--node', '/opt/node/bin/node'],
    ['--no-cmd-delimiter'],
    ['--no-latency-control'],
    ['--latency-buffer-size', '1000'],
    ['-vvv', '-x', '10.1.0.0/16'],
    ['--record', 'r', '--record-payload', '--no-reconnect'],
    ['--no-sudo-pythonpath', '--no-cmd-delimiter', '-t', '2', '--pidfile', 'p'],
    ['--sudoers-no-modify'],
    ['-D'],
    ['--daemon', '--pidfile', '/run/sshuttle-ts.pid'],
    ['--syslog'],
    ['--user', 'u'],
    ['--group', 'g', '--method', 'nft'],
    ['--namespace', 'ns1'],
    ['--namespace-pid', '1'],
    ['-l', '0.0.0.0:0'],
    ['-l', '[::]:0'],
    ['--sudoers-no-modify', '--sudoers-user', '%wheel'],
  ])('%j is allowed', (...args) => {
    expect(gate(...args)).toBeNull();
  });
});
