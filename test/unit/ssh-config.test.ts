import { fc, test as fcTest } from '@fast-check/vitest';
import * as E from 'fp-ts/lib/Either.js';
import { describe, expect, it } from 'vitest';
import {
  type ConfigLine,
  DEFAULT_SERVER_ALIVE_COUNT_MAX,
  DEFAULT_SERVER_ALIVE_INTERVAL,
  type HostRequest,
  type LocalFacts,
  matchPattern,
  matchPatternList,
  parseProxyJump,
  planHops,
  type ResolvedHost,
  resolveHost,
  tokenizeSshConfig,
} from '../../src/domain/ssh-config.js';

const local: LocalFacts = { home: '/home/me', user: 'me', uid: 1000, hostname: 'laptop.lan' };

const lines = (text: string): readonly ConfigLine[] => {
  const r = tokenizeSshConfig(text, 'cfg');
  if (E.isLeft(r)) throw new Error(r.left);
  return r.right;
};

const req = (
  host: string,
  user: string | null = null,
  port: number | null = null,
): HostRequest => ({
  host,
  user,
  port,
});

const resolve = (text: string, r: HostRequest = req('box')): ResolvedHost => {
  const res = resolveHost(lines(text), r, local);
  if (E.isLeft(res)) throw new Error(res.left);
  return res.right;
};

const resolveErr = (text: string, r: HostRequest = req('box')): string => {
  const res = resolveHost(lines(text), r, local);
  if (E.isRight(res)) throw new Error('expected an error');
  return res.left;
};

describe('tokenizeSshConfig', () => {
  it('reads keyword value, keyword=value, quotes, escapes and comments', () => {
    const ls = lines(
      [
        '# a comment',
        '',
        'Host a b',
        '  HostName=example.org',
        '  Port = 2222',
        '  IdentityFile "~/.ssh/my key"   # trailing comment',
        "  User 'x y'",
        '  ProxyCommand ssh -W %h:%p gw\\ host',
      ].join('\n'),
    );
    expect(ls.map((l) => [l.keyword, l.args, l.line])).toEqual([
      ['host', ['a', 'b'], 3],
      ['hostname', ['example.org'], 4],
      ['port', ['2222'], 5],
      ['identityfile', ['~/.ssh/my key'], 6],
      ['user', ['x y'], 7],
      ['proxycommand', ['ssh', '-W', '%h:%p', 'gw host'], 8],
    ]);
  });

  it('reports an unterminated quote with file and line', () => {
    const r = tokenizeSshConfig('Host a\n  User "oops\n', 'f');
    expect(r).toEqual(E.left('f:2: unterminated quote'));
  });
});

describe('patterns', () => {
  it('implements * and ? (exactly one character), case-insensitively', () => {
    expect(matchPattern('web1.example.org', '*.example.org')).toBe(true);
    expect(matchPattern('WEB1.Example.ORG', 'web?.example.org')).toBe(true);
    expect(matchPattern('web.example.org', 'web?.example.org')).toBe(false);
    expect(matchPattern('web12.example.org', 'web?.example.org')).toBe(false);
    expect(matchPattern('anything', '*')).toBe(true);
    expect(matchPattern('', '*')).toBe(true);
    expect(matchPattern('a.b', 'a*b*')).toBe(true);
  });

  it('a negated pattern vetoes the whole list', () => {
    expect(matchPatternList('db.lan', ['*.lan', '!db.lan'])).toBe(false);
    expect(matchPatternList('web.lan', ['*.lan', '!db.lan'])).toBe(true);
    expect(matchPatternList('web.lan', ['!db.lan'])).toBe(false);
    expect(matchPatternList('x.lan', ['a,*.lan'])).toBe(true);
  });

  const globToRegex = (p: string): RegExp =>
    new RegExp(
      `^${p
        .replace(/[.+^${}()|[\]\\]/g, '\\$&')
        .replace(/\*/g, '.*')
        .replace(/\?/g, '.')}$`,
      'is',
    );
  fcTest.prop([
    fc.string({ unit: fc.constantFrom('a', 'b', '.', '*', '?'), maxLength: 8 }),
    fc.string({ unit: fc.constantFrom('a', 'b', '.'), maxLength: 10 }),
  ])('agrees with a regex translation of the glob', (pattern, text) => {
    expect(matchPattern(text, pattern)).toBe(globToRegex(pattern).test(text));
  });
});

describe('resolveHost', () => {
  it('has the defaults the client relies on', () => {
    const h = resolve('');
    expect(h).toMatchObject({
      alias: 'box',
      hostName: 'box',
      user: 'me',
      port: 22,
      identitiesOnly: false,
      identityAgent: 'SSH_AUTH_SOCK',
      strictHostKeyChecking: 'ask',
      proxyJump: [],
      serverAliveInterval: DEFAULT_SERVER_ALIVE_INTERVAL,
      serverAliveCountMax: DEFAULT_SERVER_ALIVE_COUNT_MAX,
      connectTimeout: null,
      hashKnownHosts: false,
    });
    expect(DEFAULT_SERVER_ALIVE_INTERVAL).toBe(15);
    expect(DEFAULT_SERVER_ALIVE_COUNT_MAX).toBe(3);
    expect(h.identityFiles).toEqual([
      { path: '/home/me/.ssh/id_ed25519', explicit: false },
      { path: '/home/me/.ssh/id_ecdsa', explicit: false },
      { path: '/home/me/.ssh/id_rsa', explicit: false },
    ]);
    expect(h.userKnownHostsFiles).toEqual([
      '/home/me/.ssh/known_hosts',
      '/home/me/.ssh/known_hosts2',
    ]);
    expect(h.globalKnownHostsFiles).toEqual([
      '/etc/ssh/ssh_known_hosts',
      '/etc/ssh/ssh_known_hosts2',
    ]);
  });

  it('first obtained value wins, across blocks', () => {
    const cfg = ['Host box', '  User first', '  Port 2200', 'Host *', '  User second', '  Port 1'];
    const h = resolve(cfg.join('\n'));
    expect([h.user, h.port]).toEqual(['first', 2200]);
  });

  it('lines before any Host apply to every host', () => {
    expect(resolve('User top\nHost box\n  User later').user).toBe('top');
  });

  it('expands %h in HostName and matches Host against the alias', () => {
    const cfg = ['Host *.int', '  HostName %h.example.org', 'Host box.int', '  User admin'];
    const h = resolve(cfg.join('\n'), req('box.int'));
    expect(h.hostName).toBe('box.int.example.org');
    expect(h.user).toBe('admin');
  });

  it('negation in a Host line skips the block', () => {
    const cfg = ['Host * !box', '  User nobody', 'Host *', '  User everyone'];
    expect(resolve(cfg.join('\n'), req('box')).user).toBe('everyone');
    expect(resolve(cfg.join('\n'), req('other')).user).toBe('nobody');
  });

  it('the command line user and port beat the file', () => {
    const h = resolve('Host box\n  User cfg\n  Port 2222', req('box', 'cli', 2022));
    expect([h.user, h.port]).toEqual(['cli', 2022]);
  });

  it('collects every IdentityFile with ~ and % expansion, in order, without defaults', () => {
    const cfg = [
      'Host box',
      '  HostName real.example.org',
      '  User bob',
      '  IdentityFile ~/.ssh/id_%h_%r',
      '  IdentityFile %d/keys/%u@%n:%p',
      'Host *',
      '  IdentityFile ~/.ssh/common',
      '  IdentitiesOnly yes',
    ];
    const h = resolve(cfg.join('\n'));
    expect(h.identityFiles).toEqual([
      { path: '/home/me/.ssh/id_real.example.org_bob', explicit: true },
      { path: '/home/me/keys/me@box:22', explicit: true },
      { path: '/home/me/.ssh/common', explicit: true },
    ]);
    expect(h.identitiesOnly).toBe(true);
  });

  it('rejects an unknown % token', () => {
    expect(resolveErr('IdentityFile ~/.ssh/%Q')).toMatch(/cfg:1: unsupported token %Q/);
  });

  it('UserKnownHostsFile: several files, /dev/null and none drop out', () => {
    expect(resolve('UserKnownHostsFile ~/a /dev/null %d/b').userKnownHostsFiles).toEqual([
      '/home/me/a',
      '/home/me/b',
    ]);
    expect(resolve('UserKnownHostsFile /dev/null').userKnownHostsFiles).toEqual([]);
    expect(resolve('UserKnownHostsFile none').userKnownHostsFiles).toEqual([]);
  });

  it('StrictHostKeyChecking values', () => {
    const s = (v: string) => resolve(`StrictHostKeyChecking ${v}`).strictHostKeyChecking;
    expect(s('yes')).toBe('yes');
    expect(s('no')).toBe('no');
    expect(s('off')).toBe('no');
    expect(s('accept-new')).toBe('accept-new');
    expect(s('ask')).toBe('ask');
    expect(resolveErr('StrictHostKeyChecking maybe')).toMatch(/cfg:1: bad StrictHostKeyChecking/);
  });

  it('ServerAlive*, ConnectTimeout, IdentityAgent', () => {
    const h = resolve(
      'ServerAliveInterval 5\nServerAliveCountMax 7\nConnectTimeout 9\nIdentityAgent ~/agent.sock',
    );
    expect([h.serverAliveInterval, h.serverAliveCountMax, h.connectTimeout]).toEqual([5, 7, 9]);
    expect(h.identityAgent).toBe('/home/me/agent.sock');
    expect(resolve('ServerAliveInterval 0').serverAliveInterval).toBe(0);
    expect(resolve('IdentityAgent none').identityAgent).toBeNull();
  });

  it('bad values name the file and line', () => {
    expect(resolveErr('Host box\n  Port 99999')).toBe('cfg:2: bad Port "99999"');
    expect(resolveErr('IdentitiesOnly perhaps')).toMatch(/^cfg:1: expected yes or no/);
  });

  it('ProxyCommand is refused rather than silently ignored', () => {
    expect(resolveErr('ProxyCommand ssh -W %h:%p gw')).toMatch(/ProxyCommand is not supported/);
    expect(resolve('ProxyCommand none').proxyJump).toEqual([]);
  });

  it('reports keywords it does not act on', () => {
    expect(resolve('ForwardAgent yes\nCompression yes\nUser x').ignored).toEqual([
      'compression',
      'forwardagent',
    ]);
  });

  it('Match host / originalhost / user / all', () => {
    const cfg = [
      'Host box',
      '  HostName 10.1.2.3',
      'Match host 10.1.*',
      '  Port 2201',
      'Match originalhost box user bob',
      '  IdentityFile ~/bob',
      'Match all',
      '  ConnectTimeout 4',
    ];
    const h = resolve(cfg.join('\n'), req('box', 'bob'));
    expect(h.port).toBe(2201);
    expect(h.identityFiles[0]?.path).toBe('/home/me/bob');
    expect(h.connectTimeout).toBe(4);
    const other = resolve(cfg.join('\n'), req('box', 'alice'));
    expect(other.identityFiles[0]?.explicit).toBe(false);
  });

  it('never evaluates Match exec (it would run a shell): the block does not apply', () => {
    const h = resolve('Match exec "touch /tmp/pwned"\n  User execuser');
    expect(h.user).toBe('me');
    expect(h.notEvaluated).toEqual(['Match exec (cfg:1)']);
  });

  it('Match final re-reads with the resolved HostName', () => {
    const cfg = [
      'Host box',
      '  HostName real.lan',
      'Match final host real.lan',
      '  User finaluser',
    ];
    expect(resolve(cfg.join('\n')).user).toBe('finaluser');
  });
});

describe('parseProxyJump', () => {
  it('parses hop lists in all forms', () => {
    expect(parseProxyJump('gw')).toEqual(E.right([{ user: null, host: 'gw', port: null }]));
    expect(parseProxyJump('alice@gw:2222,bob@[::1]:22,ssh://carol@h3:23,[fe80::1]')).toEqual(
      E.right([
        { user: 'alice', host: 'gw', port: 2222 },
        { user: 'bob', host: '::1', port: 22 },
        { user: 'carol', host: 'h3', port: 23 },
        { user: null, host: 'fe80::1', port: null },
      ]),
    );
    expect(parseProxyJump('none')).toEqual(E.right([]));
  });

  it('rejects empty hops and bad ports', () => {
    expect(E.isLeft(parseProxyJump('gw,'))).toBe(true);
    expect(E.isLeft(parseProxyJump('gw:0'))).toBe(true);
    expect(E.isLeft(parseProxyJump('gw:http'))).toBe(true);
    expect(E.isLeft(parseProxyJump('@gw'))).toBe(true);
  });
});

describe('planHops', () => {
  const plan = (text: string, r: HostRequest) => {
    const p = planHops(lines(text), r, local);
    if (E.isLeft(p)) throw new Error(p.left);
    return p.right.map((h) => `${h.user}@${h.hostName}:${h.port}`);
  };

  it('no ProxyJump: just the target', () => {
    expect(plan('', req('box'))).toEqual(['me@box:22']);
  });

  it('each hop resolved through the config, the hop spec overriding user/port', () => {
    const cfg = [
      'Host target',
      '  HostName 10.0.0.5',
      '  ProxyJump gw1,admin@gw2:2022',
      'Host gw1',
      '  HostName 203.0.113.1',
      '  User jump',
      '  Port 2200',
      'Host gw2',
      '  HostName 10.0.0.2',
      '  User ignored',
    ];
    expect(plan(cfg.join('\n'), req('target'))).toEqual([
      'jump@203.0.113.1:2200',
      'admin@10.0.0.2:2022',
      'me@10.0.0.5:22',
    ]);
  });

  it("the first jump host's own ProxyJump is followed; later hops' are not", () => {
    const cfg = [
      'Host target',
      '  ProxyJump a,b',
      'Host a',
      '  ProxyJump outer',
      'Host b',
      '  ProxyJump never',
    ];
    expect(plan(cfg.join('\n'), req('target'))).toEqual([
      'me@outer:22',
      'me@a:22',
      'me@b:22',
      'me@target:22',
    ]);
  });

  it('ProxyJump none in a more specific block wins', () => {
    const cfg = ['Host direct', '  ProxyJump none', 'Host *', '  ProxyJump gw'];
    expect(plan(cfg.join('\n'), req('direct'))).toEqual(['me@direct:22']);
  });

  it('a loop is an error, not a hang', () => {
    const cfg = ['Host a', '  ProxyJump b', 'Host b', '  ProxyJump a'];
    const p = planHops(lines(cfg.join('\n')), req('a'), local);
    expect(E.isLeft(p) && p.left).toMatch(/ProxyJump chain deeper than/);
  });
});
