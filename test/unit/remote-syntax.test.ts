import * as fc from 'fast-check';
import * as E from 'fp-ts/lib/Either.js';
import * as ipaddr from 'ipaddr.js';
import { describe, expect, it } from 'vitest';
import type { Remote } from '../../src/domain/config.js';
import { formatRemote, parseRemote } from '../../src/domain/remote-syntax.js';

const remote = (
  user: string | null,
  password: string | null,
  host: string,
  port: number | null,
): Remote => ({ user, password, host, port });

describe('parseRemote: accepted forms', () => {
  it.each([
    ['host', remote(null, null, 'host', null)],
    ['host.example.com', remote(null, null, 'host.example.com', null)],
    ['host:2222', remote(null, null, 'host', 2222)],
    ['user@host', remote('user', null, 'host', null)],
    ['user@host:22', remote('user', null, 'host', 22)],
    ['user:secret@host', remote('user', 'secret', 'host', null)],
    ['user:pa:ss@host:22', remote('user', 'pa:ss', 'host', 22)],
    ['user:p@ss@host', remote('user', 'p@ss', 'host', null)],
    ['user:@host', remote('user', null, 'host', null)],
    [':pw@host', remote(null, 'pw', 'host', null)],
    ['1.2.3.4:22', remote(null, null, '1.2.3.4', 22)],
    ['[::1]:22', remote(null, null, '::1', 22)],
    ['[2001:DB8::1]', remote(null, null, '2001:db8::1', null)],
    ['2001:db8::1', remote(null, null, '2001:db8::1', null)],
    ['root@[fe80::1]:2200', remote('root', null, 'fe80::1', 2200)],
    ['my_alias', remote(null, null, 'my_alias', null)],
  ])('%s', (text, expected) => {
    expect(parseRemote(text)).toEqual(E.right(expected));
  });
});

describe('parseRemote: refusals', () => {
  it.each([
    ['', 'missing host'],
    ['user@', 'missing host'],
    ['user@:22', 'missing host'],
    ['host:0', 'port 0 is out of range (1-65535)'],
    ['host:70000', 'port 70000 is out of range (1-65535)'],
    ['host:ssh', 'port "ssh" is not a number'],
    ['host:', 'port "" is not a number'],
    ['[::1', 'missing "]"'],
    ['::1]:22', 'unbalanced "]"'],
    ['[host]:22', 'brackets must hold an IPv6 address'],
    ['[::1]22', 'unexpected "22" after "]"'],
    ['1:2:3', 'is not a valid IPv6 address'],
    ['-oProxyCommand=evil', 'must not start with "-"'],
    ['bad/host', 'is not a valid host name'],
    ['user@ho st', 'whitespace'],
  ])('%s', (text, reason) => {
    const r = parseRemote(text);
    expect(E.isLeft(r)).toBe(true);
    if (E.isLeft(r)) {
      expect(r.left).toContain(`invalid remote ${JSON.stringify(text)}: `);
      expect(r.left).toContain(reason);
    }
  });
});

const user = fc.option(fc.stringMatching(/^[a-z_][a-z0-9_.@-]{0,10}$/), { nil: null });
const password = fc.option(
  fc.string({ minLength: 1, maxLength: 12 }).filter((s) => !/\p{Cc}/u.test(s)),
  { nil: null },
);
const host = fc.oneof(
  fc.stringMatching(/^[a-z0-9][a-z0-9.-]{0,20}$/),
  fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((b) => b.join('.')),
  fc
    .array(fc.oneof(fc.constant(0), fc.nat(0xffff)), { minLength: 8, maxLength: 8 })
    .map((p) => ipaddr.parse(p.map((x) => x.toString(16)).join(':')).toString()),
);
const port = fc.option(fc.integer({ min: 1, max: 65535 }), { nil: null });

describe('formatRemote', () => {
  it('parse(format(remote)) gives the remote back', () => {
    fc.assert(
      fc.property(user, password, host, port, (u, pw, h, p) => {
        const r = remote(u, pw, h, p);
        expect(parseRemote(formatRemote(r))).toEqual(E.right(r));
      }),
      { numRuns: 500 },
    );
  });
});
