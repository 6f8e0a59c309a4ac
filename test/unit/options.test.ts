import * as fc from 'fast-check';
import * as E from 'fp-ts/lib/Either.js';
import { describe, expect, it } from 'vitest';
import { helpText } from '../../src/cli/help.js';
import {
  type Command,
  type CommandLineEnv,
  parseCommandLine,
  type ReadFile,
} from '../../src/cli/options.js';
import { defaultConfig } from '../../src/cli/options-defaults.js';
import { argsFromArgFile, entriesFromListFile } from '../../src/cli/options-files.js';
import { shellQuote, shellWords } from '../../src/cli/options-shell-words.js';
import { OPTIONS } from '../../src/cli/options-table.js';
import { type Config, ConfigC, type SubnetSpec } from '../../src/domain/config.js';
import { formatRemote } from '../../src/domain/remote-syntax.js';
import { formatSubnetSpec, parseSubnetSpec } from '../../src/domain/subnet-syntax.js';

// --------------------------------------------------------------------------
// helpers
// --------------------------------------------------------------------------

const HOME = '/home/alice';
const files =
  (contents: Record<string, string> = {}): ReadFile =>
  (path) =>
    path in contents ? E.right(contents[path] as string) : E.left('no such file or directory');

const parse = (
  argv: readonly string[],
  opts: { env?: CommandLineEnv; files?: Record<string, string> } = {},
) => parseCommandLine(argv, opts.env ?? { HOME }, files(opts.files));

const command = (argv: readonly string[], opts?: Parameters<typeof parse>[1]): Command => {
  const r = parse(argv, opts);
  if (E.isLeft(r)) throw new Error(`expected ${argv.join(' ')} to parse: ${r.left.message}`);
  return r.right;
};

const config = (argv: readonly string[], opts?: Parameters<typeof parse>[1]): Config => {
  const c = command(argv, opts);
  if (c.kind !== 'run') throw new Error(`expected a run command, got ${c.kind}`);
  return c.config;
};

const usageError = (argv: readonly string[], opts?: Parameters<typeof parse>[1]): string => {
  const r = parse(argv, opts);
  if (E.isRight(r)) throw new Error(`expected ${argv.join(' ')} to fail, got ${r.right.kind}`);
  return r.left.message;
};

const subnet = (text: string): SubnetSpec => {
  const r = parseSubnetSpec(text);
  if (E.isLeft(r)) throw new Error(r.left);
  return r.right;
};

const BASE = ['-r', 'user@host', '10.0.0.0/8'];

// --------------------------------------------------------------------------
// defaults and every option
// --------------------------------------------------------------------------

describe('defaults', () => {
  it('a minimal command line gives sshuttle 1.3 defaults', () => {
    expect(config(BASE)).toEqual({
      ...defaultConfig(HOME),
      remote: { user: 'user', password: null, host: 'host', port: null },
      subnets: [subnet('10.0.0.0/8')],
    });
    const d = defaultConfig(HOME);
    expect(d.method).toBe('auto');
    expect(d.latencyControl).toBe(true);
    expect(d.latencyBufferSize).toBe(32768);
    expect(d.wrap).toBe(65535);
    expect(d.pidfile).toBe('./sshuttle.pid');
    expect(d.tmark).toBe('0x01');
    expect(d.sshConfig).toBe('/home/alice/.ssh/config');
    expect(d.transport).toBe('auto');
    expect(d.node).toBe('node');
    expect(d.listen).toEqual([]);
  });

  it('the --ssh-config default follows HOME', () => {
    expect(config(BASE, { env: { HOME: '/root/' } }).sshConfig).toBe('/root/.ssh/config');
  });
});

describe('every option sets its field', () => {
  it.each<[string[], Partial<Config>]>([
    [['-l', '127.0.0.1:1234'], { listen: [{ ip: '127.0.0.1', port: 1234 }] }],
    [
      ['--listen', '127.0.0.1:0,[::1]:0'],
      {
        listen: [
          { ip: '127.0.0.1', port: 0 },
          { ip: '::1', port: 0 },
        ],
      },
    ],
    [['--listen=0'], { listen: [{ ip: null, port: 0 }] }],
    [['-l', '[::1]'], { listen: [{ ip: '::1', port: 0 }] }],
    [['-H'], { autoHosts: true }],
    [['--auto-hosts'], { autoHosts: true }],
    [['-N'], { autoNets: true }],
    [['--dns'], { dns: true }],
    [
      ['--ns-hosts', '1.1.1.1, 8.8.8.8 2001:4860:4860::8888'],
      { nsHosts: ['1.1.1.1', '8.8.8.8', '2001:4860:4860::8888'] },
    ],
    [['--to-ns', '1.1.1.1'], { toNs: { ip: '1.1.1.1', port: 53 } }],
    [['--to-ns=1.1.1.1:5353'], { toNs: { ip: '1.1.1.1', port: 5353 } }],
    [['--to-ns', '[2001:db8::53]:53'], { toNs: { ip: '2001:db8::53', port: 53 } }],
    [['--method', 'nft'], { method: 'nft' }],
    [['--method=tproxy'], { method: 'tproxy' }],
    [['--python', '/usr/bin/python3'], { python: '/usr/bin/python3' }],
    [['-x', '10.1.0.0/16'], { excludes: [subnet('10.1.0.0/16')] }],
    [['--exclude', '1.2.3.4', '-x', '::1'], { excludes: [subnet('1.2.3.4'), subnet('::1')] }],
    [['-v'], { verbose: 1 }],
    [['-vv'], { verbose: 2 }],
    [['-vvv'], { verbose: 3 }],
    [['-v', '--verbose', '-vv'], { verbose: 4 }],
    [['-e', 'ssh -p 2222 -i key'], { sshCmd: 'ssh -p 2222 -i key' }],
    [['--ssh-cmd=ssh -v'], { sshCmd: 'ssh -v' }],
    [['--no-cmd-delimiter'], { noCmdDelimiter: true }],
    [['--remote-shell', 'powershell'], { remoteShell: 'powershell' }],
    [['--remote-shell', 'cmd'], { remoteShell: 'cmd' }],
    [
      ['--seed-hosts', 'a.example,b.example 10.0.0.1'],
      { seedHosts: ['a.example', 'b.example', '10.0.0.1'] },
    ],
    [['--no-latency-control'], { latencyControl: false }],
    [['--latency-buffer-size', '65536'], { latencyBufferSize: 65536 }],
    [['--wrap', '100'], { wrap: 100 }],
    [['--disable-ipv6'], { disableIpv6: true }],
    [['-D'], { daemon: true, syslog: true }],
    [['--daemon'], { daemon: true, syslog: true }],
    [['--syslog'], { syslog: true }],
    [['--pidfile', '/run/s.pid'], { pidfile: '/run/s.pid' }],
    [['--user', 'bob'], { user: 'bob' }],
    [['--group', 'staff'], { group: 'staff' }],
    [['--sudoers-user', '%wheel'], { sudoersUser: '%wheel' }],
    [['--no-sudo-pythonpath'], { noSudoPythonpath: true }],
    [['-t', '2'], { tmark: '0x2' }],
    [['--tmark', '0X1F'], { tmark: '0x1f' }],
    [['--tmark=0x01'], { tmark: '0x01' }],
    [['--namespace', 'vpn_ns'], { namespace: 'vpn_ns' }],
    [['--namespace', 'lab-c'], { namespace: 'lab-c' }],
    [['--namespace-pid', '4242'], { namespacePid: 4242 }],
    [['--ssh-config', '/etc/ssh/other'], { sshConfig: '/etc/ssh/other' }],
    [['--transport', 'direct'], { transport: 'direct' }],
    [['--transport=helper'], { transport: 'helper' }],
    [['--helper-cmd', 'node /opt/helper.js'], { helperCmd: 'node /opt/helper.js' }],
    [['--node', '/usr/local/bin/node'], { node: '/usr/local/bin/node' }],
    [['--record', 'session.rec'], { record: 'session.rec' }],
    [
      ['--record', 'session.rec', '--record-payload'],
      { record: 'session.rec', recordPayload: true },
    ],
    [['--no-reconnect'], { noReconnect: true }],
  ])('%j', (args, expected) => {
    expect(config([...BASE, ...args])).toMatchObject(expected);
  });

  it('-s reads subnets from a file, -X excludes from a file (comments and blanks skipped)', () => {
    const c = config(['-r', 'h', '-s', 'inc', '-X', 'exc', '192.168.0.0/16'], {
      files: {
        inc: '# company nets\n10.0.0.0/8\n\n  172.16.0.0/12:443  \r\n',
        exc: '10.1.0.0/16\n# not this\n',
      },
    });
    expect(c.subnets).toEqual([
      subnet('10.0.0.0/8'),
      subnet('172.16.0.0/12:443'),
      subnet('192.168.0.0/16'),
    ]);
    expect(c.excludes).toEqual([subnet('10.1.0.0/16')]);
  });

  it('-s alone satisfies the subnet requirement, and -N needs none', () => {
    expect(config(['-r', 'h', '-s', 'inc'], { files: { inc: '10.0.0.0/8' } }).subnets).toHaveLength(
      1,
    );
    expect(config(['-r', 'h', '-N']).subnets).toEqual([]);
  });

  it('--sudoers-no-modify needs neither -r nor subnets', () => {
    expect(config(['--sudoers-no-modify'])).toMatchObject({ sudoersNoModify: true, remote: null });
  });
});

// --------------------------------------------------------------------------
// command line syntax
// --------------------------------------------------------------------------

describe('syntax', () => {
  it('short options cluster, and a value can be attached or follow', () => {
    expect(config(['-vvN', '-r', 'h'])).toMatchObject({ verbose: 2, autoNets: true });
    expect(config(['-rhost', '0/0']).remote?.host).toBe('host');
    expect(config(['-r=host', '0/0']).remote?.host).toBe('host');
    expect(config(['-vr', 'host', '0/0'])).toMatchObject({ verbose: 1, remote: { host: 'host' } });
    expect(config(['-Nvx1.2.3.4', '-r', 'h']).excludes).toEqual([subnet('1.2.3.4')]);
  });

  it('--opt=value and --opt value are the same', () => {
    expect(config(['--remote=u@h:22', '0/0'])).toEqual(config(['--remote', 'u@h:22', '0/0']));
  });

  it('long options may be abbreviated when unambiguous, as argparse allows', () => {
    expect(
      config([...BASE, '--exclude-f', 'x'], { files: { x: '1.2.3.4' } }).excludes,
    ).toHaveLength(1);
    expect(config([...BASE, '--disable'])).toMatchObject({ disableIpv6: true });
    expect(usageError([...BASE, '--no'])).toMatch(
      /^ambiguous option "--no": could be --no-cmd-delimiter/,
    );
  });

  it('"--" ends options', () => {
    expect(config(['-r', 'h', '--', '10.0.0.0/8']).subnets).toEqual([subnet('10.0.0.0/8')]);
    expect(usageError(['-r', 'h', '--', '--dns'])).toBe(
      'invalid subnet "--dns": "--dns" is not a valid IP address or host name',
    );
  });

  it('subnets and options can be mixed', () => {
    expect(config(['10.0.0.0/8', '-r', 'h', '::/0']).subnets).toEqual([
      subnet('10.0.0.0/8'),
      subnet('::/0'),
    ]);
  });

  it('for scalar options the last one wins; subnet lists grow', () => {
    const c = config([
      ...BASE,
      '--method',
      'nat',
      '-l',
      '1',
      '--method',
      'nft',
      '-l',
      '2',
      '-x',
      '1.1.1.1',
      '-x',
      '2.2.2.2',
    ]);
    expect(c.method).toBe('nft');
    expect(c.listen).toEqual([{ ip: null, port: 2 }]);
    expect(c.excludes).toHaveLength(2);
  });
});

describe('@file arguments', () => {
  it('are read one argument per line: stripped, # comments, one pair of quotes removed', () => {
    const conf = [
      '# sshuttle options',
      '192.168.0.0/16',
      '--remote',
      '  "user@example.com"  ',
      "'--ssh-cmd'",
      'ssh -v',
      '',
      '"-v"',
    ].join('\n');
    const c = config(['@/etc/sshuttle.conf', '-r', 'other@test.example.com'], {
      files: { '/etc/sshuttle.conf': conf },
    });
    expect(c.subnets).toEqual([subnet('192.168.0.0/16')]);
    expect(c.sshCmd).toBe('ssh -v');
    expect(c.verbose).toBe(1);
    // The command line after the file wins.
    expect(c.remote).toMatchObject({ user: 'other', host: 'test.example.com' });
  });

  it('argsFromArgFile strips only one matching pair of quotes', () => {
    expect(argsFromArgFile(`"a"\n'b'\n"c'\n''x''\n"\n  # c\n`)).toEqual([
      'a',
      'b',
      `"c'`,
      "'x'",
      '"',
    ]);
  });

  it('nest, and a file that includes itself fails instead of looping', () => {
    expect(config(['@a'], { files: { a: '@b\n0/0', b: '-r\nh' } }).remote?.host).toBe('h');
    expect(usageError(['@loop'], { files: { loop: '@loop' } })).toMatch(/nested too deeply/);
  });

  it('an unreadable file is a usage error naming it', () => {
    expect(usageError(['@missing.conf'])).toBe(
      'cannot read argument file "missing.conf": no such file or directory',
    );
  });
});

describe('SSHUTTLE_ARGS', () => {
  it('is shell-split and read before argv, so the command line wins', () => {
    const env = { HOME, SSHUTTLE_ARGS: `--method nat -r 'u@h' -x "10.9.0.0/16" 10.0.0.0/8` };
    const c = config(['--method', 'nft', '172.16.0.0/12'], { env });
    expect(c.method).toBe('nft');
    expect(c.remote?.host).toBe('h');
    expect(c.excludes).toEqual([subnet('10.9.0.0/16')]);
    expect(c.subnets).toEqual([subnet('10.0.0.0/8'), subnet('172.16.0.0/12')]);
  });

  it('a scalar option on the command line always beats the same option in SSHUTTLE_ARGS', () => {
    const method = fc.constantFrom('auto', 'nft', 'nat', 'tproxy', 'pf', 'ipfw');
    fc.assert(
      fc.property(method, method, (fromEnv, fromArgv) => {
        const env = { HOME, SSHUTTLE_ARGS: `--method ${fromEnv}` };
        expect(config([...BASE, `--method=${fromArgv}`], { env }).method).toBe(fromArgv);
      }),
    );
  });

  it('bad quoting is a usage error', () => {
    expect(usageError(BASE, { env: { SSHUTTLE_ARGS: `-e 'ssh` } })).toBe(
      'cannot split SSHUTTLE_ARGS: unterminated single quote',
    );
  });
});

describe('shellWords', () => {
  it.each<[string, string[]]>([
    ['', []],
    ['  a  b\tc\n', ['a', 'b', 'c']],
    [`'a b' "c d"`, ['a b', 'c d']],
    [`a'b'"c"`, ['abc']],
    [`'' ""`, ['', '']],
    [`"a\\"b" 'a\\b'`, ['a"b', 'a\\b']],
    [`"\\$x \\n"`, ['$x \\n']],
    ['a\\ b c\\\\', ['a b', 'c\\']],
    ['a\\\nb', ['ab']],
    [`"it's"`, ["it's"]],
  ])('%j', (text, words) => {
    expect(shellWords(text)).toEqual(E.right(words));
  });

  it.each(["'a", '"a', 'a\\'])('%j is refused', (text) => {
    expect(E.isLeft(shellWords(text))).toBe(true);
  });

  it('reads back any list of words quoted by shellQuote', () => {
    fc.assert(
      fc.property(
        fc.array(fc.string({ unit: 'binary', maxLength: 12 }), { maxLength: 6 }),
        (words) => {
          expect(shellWords(words.map(shellQuote).join(' '))).toEqual(E.right(words));
        },
      ),
    );
  });
});

describe('list files', () => {
  it('entriesFromListFile keeps line numbers of non-comment lines', () => {
    expect(entriesFromListFile('# x\n\n a \r\nb\n')).toEqual([
      { line: 3, text: 'a' },
      { line: 4, text: 'b' },
    ]);
  });

  it('a bad line names the file and line', () => {
    expect(
      usageError(['-r', 'h', '-X', 'ex.txt', '0/0'], { files: { 'ex.txt': '# ok\n1.2.3.0/33\n' } }),
    ).toBe(
      '--exclude-from file "ex.txt" line 2: invalid subnet "1.2.3.0/33": prefix length 33 is out of range for IPv4 (0-32)',
    );
  });
});

// --------------------------------------------------------------------------
// other commands
// --------------------------------------------------------------------------

describe('other commands', () => {
  it('-h/--help gives the help text, -V/--version the version', () => {
    expect(command(['-h'])).toEqual({ kind: 'help', text: helpText() });
    expect(command(['--help'])).toEqual({ kind: 'help', text: helpText() });
    expect(command(['-V'])).toEqual({ kind: 'version' });
    expect(command(['--version'])).toEqual({ kind: 'version' });
    expect(command(['-vV'])).toEqual({ kind: 'version' });
  });

  it('replay FILE [-v]', () => {
    expect(command(['replay', 'session.rec'])).toEqual({
      kind: 'replay',
      file: 'session.rec',
      verbose: 0,
    });
    expect(command(['replay', '-vv', 's.rec', '--verbose'])).toEqual({
      kind: 'replay',
      file: 's.rec',
      verbose: 3,
    });
    expect(usageError(['replay'])).toMatch(/^replay: missing FILE/);
    expect(usageError(['replay', 'a', 'b'])).toMatch(/^replay: unexpected argument "b"/);
    expect(usageError(['replay', '--dns', 'a'])).toMatch(/^replay: unknown option "--dns"/);
  });

  it('replay ignores SSHUTTLE_ARGS', () => {
    expect(command(['replay', 'f'], { env: { SSHUTTLE_ARGS: '--bogus' } }).kind).toBe('replay');
  });

  it('--firewall hands the rest of the real command line to the firewall manager', () => {
    expect(command(['--method', 'nft', '--firewall', '-v'])).toEqual({
      kind: 'firewall',
      argv: ['--method', 'nft', '-v'],
    });
    expect(command(['--firewall'], { env: { SSHUTTLE_ARGS: '-r h 0/0' } })).toEqual({
      kind: 'firewall',
      argv: [],
    });
    // As an option's value it is not the --firewall option.
    expect(usageError(['-e', '--firewall', ...BASE])).toMatch(/needs a value/);
    expect(usageError([...BASE, '--pidfile', 'x', '--', '--firewall'])).toMatch(
      /invalid subnet "--firewall"/,
    );
  });

  it('--firewall from SSHUTTLE_ARGS or an @file is refused', () => {
    expect(usageError(BASE, { env: { HOME, SSHUTTLE_ARGS: '--firewall' } })).toMatch(
      /--firewall is internal/,
    );
  });
});

// --------------------------------------------------------------------------
// usage errors
// --------------------------------------------------------------------------

describe('usage errors: one line naming the input', () => {
  it.each<[string[], string]>([
    [['--bogus', ...BASE], 'unknown option "--bogus" (see sshuttle-ts --help)'],
    [['-q', ...BASE], 'unknown option "-q" (see sshuttle-ts --help)'],
    [['-vqv', ...BASE], 'unknown option "-q" in "-vqv"'],
    [['-r'], 'option -r needs a value ([USER[:PASSWORD]@]HOST[:PORT])'],
    [['-r', '--dns', '0/0'], 'option -r needs a value'],
    [[...BASE, '--method'], 'option --method needs a value (TYPE)'],
    [[...BASE, '--dns=yes'], 'option --dns takes no value'],
    [
      ['-r', 'h', '10.0.0.0/33'],
      'invalid subnet "10.0.0.0/33": prefix length 33 is out of range for IPv4 (0-32)',
    ],
    [['-r', 'h', '1.2.3.0/24:70000'], 'port 70000 is out of range (1-65535)'],
    [['-r', 'h', '1.2.3.0/24:0'], 'port 0 is out of range (1-65535)'],
    [['-r', 'h', '1.2.3.0/24:9000-8000'], 'port range 9000-8000 is reversed'],
    [['-r', 'h', '1.2.3.256'], 'invalid subnet "1.2.3.256"'],
    [
      [...BASE, '-x', '::/129'],
      'invalid subnet "::/129": prefix length 129 is out of range for IPv6 (0-128)',
    ],
    [
      [...BASE, '--method', 'iptables'],
      'invalid --method "iptables": choose one of auto, nft, nat, tproxy, nft-tproxy, pf, ipfw',
    ],
    [[...BASE, '--transport', 'carrier-pigeon'], 'invalid --transport "carrier-pigeon"'],
    [
      [...BASE, '--remote-shell', 'bash'],
      'invalid --remote-shell "bash": choose one of cmd, powershell',
    ],
    [
      [...BASE, '-X', 'nope.txt'],
      'cannot read --exclude-from file "nope.txt": no such file or directory',
    ],
    [
      ['-r', 'h', '-s', 'nope.txt'],
      'cannot read --subnets file "nope.txt": no such file or directory',
    ],
    [[...BASE, '--tmark', 'xyz'], 'invalid --tmark "xyz": expected a hexadecimal mark'],
    [[...BASE, '-t', '0x'], 'invalid --tmark "0x"'],
    [[...BASE, '-t', '123456789'], 'invalid --tmark "123456789"'],
    [['-r', 'host:0', '0/0'], 'invalid remote "host:0": port 0 is out of range (1-65535)'],
    [['-r', '[::1', '0/0'], 'invalid remote "[::1": missing "]"'],
    [['-r', 'u@', '0/0'], 'invalid remote "u@": missing host'],
    [['0/0'], 'missing -r/--remote'],
    [['-r', 'h'], 'no subnets to capture'],
    [['-r', 'h', '-s', 'empty'], 'no subnets to capture'],
    [
      [...BASE, '--namespace', 'a1', '--namespace-pid', '1'],
      '--namespace and --namespace-pid cannot be used together',
    ],
    [[...BASE, '--namespace', '1bad'], 'invalid --namespace "1bad"'],
    [[...BASE, '--namespace=-x'], 'invalid --namespace "-x"'],
    [[...BASE, '--namespace', 'a/../b'], 'invalid --namespace "a/../b"'],
    [[...BASE, '--namespace-pid', 'abc'], 'invalid --namespace-pid "abc"'],
    [
      [...BASE, '--latency-buffer-size', '0'],
      'invalid --latency-buffer-size "0": expected a whole number from 1',
    ],
    [[...BASE, '--latency-buffer-size', 'big'], 'invalid --latency-buffer-size "big"'],
    [[...BASE, '--wrap', '70000'], 'invalid --wrap "70000"'],
    [[...BASE, '-l', '::1'], 'invalid --listen "::1": write IPv6 addresses in brackets'],
    [
      [...BASE, '-l', 'localhost:0'],
      'invalid --listen "localhost:0": "localhost" is not an IP address',
    ],
    [[...BASE, '-l', '127.0.0.1:70000'], 'invalid --listen "127.0.0.1:70000"'],
    [[...BASE, '-l', '127.0.0.1:1,127.0.0.2:2'], 'more than one IPv4 address'],
    [[...BASE, '-l', '127.0.0.1:1,'], 'invalid --listen "127.0.0.1:1,": empty entry'],
    [[...BASE, '--to-ns', 'dns.example'], 'invalid --to-ns "dns.example"'],
    [
      [...BASE, '--ns-hosts', '1.1.1.1,resolver'],
      'invalid --ns-hosts "1.1.1.1,resolver": "resolver" is not an IP address',
    ],
    [[...BASE, '--record-payload'], '--record-payload needs --record FILE'],
    [[...BASE, '--hostwatch'], '--hostwatch is not implemented'],
    [[...BASE, '--pidfile='], 'option --pidfile needs a non-empty PATH'],
  ])('%j', (argv, message) => {
    const got = usageError(argv, { files: { empty: '# nothing\n' } });
    expect(got).toContain(message);
    expect(got).not.toContain('\n');
  });

  it('control characters in the input cannot break the one-line message', () => {
    expect(usageError(['-r', 'h', 'a\nb'])).toBe(
      'invalid subnet "a\\nb": "a\\nb" is not a valid IP address or host name',
    );
  });
});

// --------------------------------------------------------------------------
// generated command lines
// --------------------------------------------------------------------------

/** One piece of a command line and what it must do to the Config. */
interface Piece {
  readonly args: string[];
  readonly expect: Partial<Config>;
}

const spelling = (long: string, short: string | null, value: string): fc.Arbitrary<string[]> =>
  fc.constantFrom(
    [`--${long}`, value],
    [`--${long}=${value}`],
    ...(short === null ? [] : [[`-${short}`, value], [`-${short}${value}`]]),
  );

const v4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((b) => b.join('.'));
const ports = fc.oneof(
  fc.constant<readonly [number, number]>([0, 0]),
  fc
    .tuple(fc.integer({ min: 1, max: 65535 }), fc.integer({ min: 1, max: 65535 }))
    .map(([a, b]) => [Math.min(a, b), Math.max(a, b)] as const),
);
const specArb = fc
  .tuple(
    fc.oneof(v4, fc.constantFrom('::', '2001:db8::', 'fe80::1', 'example.com', 'a-b.example')),
    fc.option(fc.integer({ min: 0, max: 32 }), { nil: null }),
    ports,
  )
  .map(([host, width, [fport, lport]]) => {
    const text = formatSubnetSpec({ host, width, fport, lport, text: '' });
    return { host, width, fport, lport, text };
  });

const remoteArb = fc.record({
  user: fc.option(fc.stringMatching(/^[a-z][a-z0-9]{0,6}$/), { nil: null }),
  password: fc.option(fc.stringMatching(/^[a-zA-Z0-9:@!]{1,8}$/), { nil: null }),
  host: fc.oneof(fc.stringMatching(/^[a-z][a-z0-9.-]{0,12}$/), v4, fc.constant('2001:db8::1')),
  port: fc.option(fc.integer({ min: 1, max: 65535 }), { nil: null }),
});

const pieceArb: fc.Arbitrary<Piece[]> = fc
  .record({
    remote: remoteArb.chain((r) =>
      spelling('remote', 'r', formatRemote(r)).map((args) => ({ args, expect: { remote: r } })),
    ),
    subnets: fc.array(specArb, { minLength: 1, maxLength: 3 }),
    excludes: fc.array(specArb, { maxLength: 2 }),
    verbose: fc.integer({ min: 0, max: 3 }),
    method: fc.option(fc.constantFrom('auto', 'nft', 'nat', 'tproxy', 'pf', 'ipfw' as const), {
      nil: null,
    }),
    flags: fc.subarray([
      { args: ['--dns'], expect: { dns: true } },
      { args: ['-N'], expect: { autoNets: true } },
      { args: ['-H'], expect: { autoHosts: true } },
      { args: ['--disable-ipv6'], expect: { disableIpv6: true } },
      { args: ['--no-latency-control'], expect: { latencyControl: false } },
      { args: ['--no-reconnect'], expect: { noReconnect: true } },
      { args: ['--no-cmd-delimiter'], expect: { noCmdDelimiter: true } },
      { args: ['--syslog'], expect: { syslog: true } },
    ] satisfies Piece[]),
    listenPort: fc.option(fc.integer({ min: 0, max: 65535 }), { nil: null }),
    tmark: fc.option(fc.stringMatching(/^[0-9a-fA-F]{1,8}$/), { nil: null }),
    buffer: fc.option(fc.integer({ min: 1, max: 1 << 24 }), { nil: null }),
    transport: fc.option(fc.constantFrom('direct', 'helper', 'auto' as const), { nil: null }),
  })
  .chain((g) =>
    fc
      .tuple(
        ...g.excludes.map((s) => spelling('exclude', 'x', s.text)),
        g.method === null ? fc.constant<string[]>([]) : spelling('method', null, g.method),
        g.listenPort === null
          ? fc.constant<string[]>([])
          : spelling('listen', 'l', `127.0.0.1:${g.listenPort}`),
        g.tmark === null ? fc.constant<string[]>([]) : spelling('tmark', 't', g.tmark),
        g.buffer === null
          ? fc.constant<string[]>([])
          : spelling('latency-buffer-size', null, String(g.buffer)),
        g.transport === null ? fc.constant<string[]>([]) : spelling('transport', null, g.transport),
      )
      .map((spelled) => {
        const [method, listen, tmark, buffer, transport] = spelled.slice(g.excludes.length);
        const pieces: Piece[] = [
          g.remote,
          { args: g.subnets.map((s) => s.text), expect: { subnets: g.subnets } },
          { args: spelled.slice(0, g.excludes.length).flat(), expect: { excludes: g.excludes } },
          {
            args: g.verbose === 0 ? [] : [`-${'v'.repeat(g.verbose)}`],
            expect: { verbose: g.verbose },
          },
          ...g.flags,
        ];
        if (g.method !== null) pieces.push({ args: method ?? [], expect: { method: g.method } });
        if (g.listenPort !== null) {
          pieces.push({
            args: listen ?? [],
            expect: { listen: [{ ip: '127.0.0.1', port: g.listenPort }] },
          });
        }
        if (g.tmark !== null)
          pieces.push({ args: tmark ?? [], expect: { tmark: `0x${g.tmark.toLowerCase()}` } });
        if (g.buffer !== null)
          pieces.push({ args: buffer ?? [], expect: { latencyBufferSize: g.buffer } });
        if (g.transport !== null)
          pieces.push({ args: transport ?? [], expect: { transport: g.transport } });
        return pieces;
      }),
  );

describe('generated valid command lines', () => {
  it('parse to a Config with exactly the requested values, which the codec round-trips', () => {
    fc.assert(
      fc.property(pieceArb, (pieces) => {
        const argv = pieces.flatMap((p) => p.args);
        const c = config(argv);
        const expected = Object.assign({}, defaultConfig(HOME), ...pieces.map((p) => p.expect));
        expect(c).toEqual(expected);
        expect(ConfigC.decode(ConfigC.encode(c))).toEqual(E.right(c));
      }),
      { numRuns: 300 },
    );
  });

  it('the same pieces in any order give the same Config (subnet order aside)', () => {
    fc.assert(
      fc.property(
        pieceArb.chain((pieces) =>
          fc.tuple(fc.constant(pieces), fc.shuffledSubarray(pieces, { minLength: pieces.length })),
        ),
        ([pieces, shuffled]) => {
          expect(config(shuffled.flatMap((p) => p.args))).toEqual(
            config(pieces.flatMap((p) => p.args)),
          );
        },
      ),
    );
  });

  it('as an @file and via SSHUTTLE_ARGS they mean the same as on the command line', () => {
    fc.assert(
      fc.property(pieceArb, (pieces) => {
        const argv = pieces.flatMap((p) => p.args);
        const direct = config(argv);
        expect(config(['@opts'], { files: { opts: argv.join('\n') } })).toEqual(direct);
        expect(
          config([], { env: { HOME, SSHUTTLE_ARGS: argv.map(shellQuote).join(' ') } }),
        ).toEqual(direct);
      }),
      { numRuns: 100 },
    );
  });
});

describe('help', () => {
  it('lists every option with its short name, and every group', () => {
    const text = helpText();
    for (const o of OPTIONS) {
      expect(text).toContain(`--${o.long}`);
      if ('short' in o) expect(text).toContain(`-${o.short}, --${o.long}`);
      if ('default' in o) expect(text).toContain(`[default: ${o.default}]`);
    }
    for (const group of [
      'Tunnel target:',
      'What to capture:',
      'DNS and names:',
      'Capture method and listener:',
      'Transport:',
      'Flow control:',
      'Running in the background:',
      'Privileges:',
      'Debugging and recording:',
    ]) {
      expect(text).toContain(group);
    }
  });

  it('every option in the help text is understood by the parser', () => {
    for (const o of OPTIONS) {
      const r = parse([...BASE, `--${o.long}`, ...(o.metavar === null ? [] : ['x'])]);
      if (E.isLeft(r)) expect(r.left.message).not.toMatch(/unknown option/);
    }
  });
});
