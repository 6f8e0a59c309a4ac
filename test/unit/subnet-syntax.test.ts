import * as fc from 'fast-check';
import * as E from 'fp-ts/lib/Either.js';
import * as ipaddr from 'ipaddr.js';
import { describe, expect, it } from 'vitest';
import type { SubnetSpec } from '../../src/domain/config.js';
import { networkAddress } from '../../src/domain/subnet.js';
import {
  formatSubnetSpec,
  isIpLiteral,
  parseSubnetSpec,
  rulesFromAddresses,
} from '../../src/domain/subnet-syntax.js';

const ok = (text: string): SubnetSpec => {
  const r = parseSubnetSpec(text);
  if (E.isLeft(r)) throw new Error(`expected ${text} to parse: ${r.left}`);
  return r.right;
};
const err = (text: string): string => {
  const r = parseSubnetSpec(text);
  if (E.isRight(r)) throw new Error(`expected ${text} to fail, got ${JSON.stringify(r.right)}`);
  return r.left;
};
const spec = (host: string, width: number | null, fport: number, lport: number, text: string) => ({
  host,
  width,
  fport,
  lport,
  text,
});

describe('parseSubnetSpec: every accepted form', () => {
  it.each([
    ['1.2.3.4', spec('1.2.3.4', null, 0, 0, '1.2.3.4')],
    ['1.2.3.4/32', spec('1.2.3.4', 32, 0, 0, '1.2.3.4/32')],
    ['1.2.3.0/24', spec('1.2.3.0', 24, 0, 0, '1.2.3.0/24')],
    ['0/0', spec('0.0.0.0', 0, 0, 0, '0/0')],
    ['0.0.0.0/0', spec('0.0.0.0', 0, 0, 0, '0.0.0.0/0')],
    ['::/0', spec('::', 0, 0, 0, '::/0')],
    ['2001:DB8::/32', spec('2001:db8::', 32, 0, 0, '2001:DB8::/32')],
    ['[2001:db8::/64]:80-90', spec('2001:db8::', 64, 80, 90, '[2001:db8::/64]:80-90')],
    ['[2001:db8::1]', spec('2001:db8::1', null, 0, 0, '[2001:db8::1]')],
    ['[2001:db8::1]:443', spec('2001:db8::1', null, 443, 443, '[2001:db8::1]:443')],
    ['2001:db8::/64:8080', spec('2001:db8::', 64, 8080, 8080, '2001:db8::/64:8080')],
    ['1.2.3.0/24:8000-9000', spec('1.2.3.0', 24, 8000, 9000, '1.2.3.0/24:8000-9000')],
    ['1.2.3.4:80', spec('1.2.3.4', null, 80, 80, '1.2.3.4:80')],
    ['1.2.3.4:65535', spec('1.2.3.4', null, 65535, 65535, '1.2.3.4:65535')],
    ['host.example:443', spec('host.example', null, 443, 443, 'host.example:443')],
    ['example.com/24:80', spec('example.com', 24, 80, 80, 'example.com/24:80')],
    ['example.com:8000-9000', spec('example.com', null, 8000, 9000, 'example.com:8000-9000')],
    ['my-host_1', spec('my-host_1', null, 0, 0, 'my-host_1')],
    ['*.example.com', spec('*.example.com', null, 0, 0, '*.example.com')],
    ['*.example.com:443', spec('*.example.com', null, 443, 443, '*.example.com:443')],
  ])('%s', (text, expected) => {
    expect(parseSubnetSpec(text)).toEqual(E.right(expected));
  });
});

describe('parseSubnetSpec: refusals name the input and the reason', () => {
  it.each([
    ['10.0.0.0/33', 'prefix length 33 is out of range for IPv4 (0-32)'],
    ['::/129', 'prefix length 129 is out of range for IPv6 (0-128)'],
    ['example.com/129', 'prefix length 129 is out of range for any address (0-128)'],
    ['1.2.3.0/x', 'prefix length "x" is not a number'],
    ['1.2.3.0/', 'prefix length "" is not a number'],
    ['1.2.3.4:0', 'port 0 is out of range (1-65535)'],
    ['1.2.3.4:70000', 'port 70000 is out of range (1-65535)'],
    ['1.2.3.4:80-70000', 'port 70000 is out of range (1-65535)'],
    ['1.2.3.4:9000-8000', 'port range 9000-8000 is reversed'],
    ['1.2.3.4:', 'is not a port or port range'],
    ['1.2.3.4:http', 'is not a port or port range'],
    ['1.2.3.4:80-', 'is not a port or port range'],
    ['256.1.1.1', '"256.1.1.1" is not a valid IPv4 address'],
    ['1.2.3', '"1.2.3" is not a valid IPv4 address'],
    ['010.0.0.1', '"010.0.0.1" is not a valid IPv4 address'],
    ['10/8', '"10" is not a valid IPv4 address'],
    ['1::2::3', 'is not a valid IPv6 address'],
    ['fe80::1%eth0', 'is not a valid IPv6 address'],
    ['::ffff:1.2.3.4', 'is not a valid IPv6 address'],
    ['[2001:db8::1', 'missing "]"'],
    ['2001:db8::1]', 'unbalanced "]"'],
    ['[1.2.3.4]:80', 'brackets must hold an IPv6 address'],
    ['[::1]x', 'unexpected "x" after "]"'],
    ['bad_host!', 'is not a valid IP address or host name'],
    ['-foo', 'is not a valid IP address or host name'],
    ['a..b', 'is not a valid IP address or host name'],
    ['', 'empty subnet'],
    ['   ', 'empty subnet'],
    ['/24', 'missing address'],
  ])('%s', (text, reason) => {
    const message = err(text);
    expect(message).toContain(`invalid subnet ${JSON.stringify(text)}: `);
    expect(message).toContain(reason);
  });

  it('never throws, and every refusal is one line that names the input', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 40 }), (text) => {
        const r = parseSubnetSpec(text);
        if (E.isLeft(r)) {
          expect(r.left).not.toContain('\n');
          expect(r.left.startsWith(`invalid subnet ${JSON.stringify(text)}: `)).toBe(true);
        }
      }),
    );
  });
});

// --------------------------------------------------------------------------
// round trip
// --------------------------------------------------------------------------

const v4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((b) => b.join('.'));
const v6 = fc
  .array(fc.oneof(fc.constant(0), fc.nat(0xffff)), { minLength: 8, maxLength: 8 })
  .map((parts) => ipaddr.parse(parts.map((p) => p.toString(16)).join(':')).toString());
const label = fc.stringMatching(/^[a-z0-9](?:[a-z0-9-]{0,8}[a-z0-9])?$/);
const hostName = fc
  .tuple(
    fc.boolean(),
    fc.array(label, { maxLength: 3 }),
    fc.stringMatching(/^[a-z](?:[a-z-]{0,8}[a-z])?$/),
  )
  .map(([star, labels, top]) => `${star ? '*.' : ''}${[...labels, top].join('.')}`);
const ports = fc.oneof(
  fc.constant([0, 0] as const),
  fc.integer({ min: 1, max: 65535 }).map((p) => [p, p] as const),
  fc
    .tuple(fc.integer({ min: 1, max: 65535 }), fc.integer({ min: 1, max: 65535 }))
    .map(([a, b]) => [Math.min(a, b), Math.max(a, b)] as const),
);
const withText = (s: Omit<SubnetSpec, 'text'>): SubnetSpec => ({
  ...s,
  text: formatSubnetSpec({ ...s, text: '' }),
});
const specOf = (host: fc.Arbitrary<string>, maxWidth: number) =>
  fc
    .tuple(host, fc.option(fc.integer({ min: 0, max: maxWidth }), { nil: null }), ports)
    .map(([h, width, [fport, lport]]) => withText({ host: h, width, fport, lport }));

/** Any valid spec: IPv4, IPv6 or a host name, with or without width and ports. */
const subnetSpecArb: fc.Arbitrary<SubnetSpec> = fc.oneof(
  specOf(v4, 32),
  specOf(v6, 128),
  specOf(hostName, 128),
);

describe('formatSubnetSpec', () => {
  it('parse(print(spec)) gives the spec back, for v4, v6 and names with/without ports', () => {
    fc.assert(
      fc.property(subnetSpecArb, (s) => {
        expect(parseSubnetSpec(formatSubnetSpec(s))).toEqual(E.right(s));
      }),
      { numRuns: 500 },
    );
  });

  it('printing a parsed spec is canonical and stable', () => {
    fc.assert(
      fc.property(subnetSpecArb, (s) => {
        const once = formatSubnetSpec(ok(formatSubnetSpec(s)));
        expect(formatSubnetSpec(ok(once))).toBe(once);
      }),
    );
  });

  it.each([
    ['0/0', '0.0.0.0/0'],
    ['2001:DB8:0:0::1', '2001:db8::1'],
    ['2001:db8::/64:80', '[2001:db8::/64]:80'],
    ['1.2.3.4:80-80', '1.2.3.4:80'],
    ['[::1]', '::1'],
  ])('%s prints as %s', (text, printed) => {
    expect(formatSubnetSpec(ok(text))).toBe(printed);
  });
});

// --------------------------------------------------------------------------
// rules
// --------------------------------------------------------------------------

describe('rulesFromAddresses', () => {
  it('an IP literal gives one rule, masked to its width', () => {
    expect(rulesFromAddresses(ok('10.1.2.3/8:80-90'), ['10.1.2.3'], false)).toEqual(
      E.right([{ family: 4, ip: '10.0.0.0', width: 8, exclude: false, fport: 80, lport: 90 }]),
    );
    expect(rulesFromAddresses(ok('2001:db8::1'), ['2001:db8::1'], true)).toEqual(
      E.right([{ family: 6, ip: '2001:db8::1', width: 128, exclude: true, fport: 0, lport: 0 }]),
    );
  });

  it('a name gives one host rule per distinct resolved address, of either family', () => {
    const r = rulesFromAddresses(
      ok('example.com:443'),
      ['192.0.2.1', '2001:db8::5', '192.0.2.1'],
      false,
    );
    expect(r).toEqual(
      E.right([
        { family: 4, ip: '192.0.2.1', width: 32, exclude: false, fport: 443, lport: 443 },
        { family: 6, ip: '2001:db8::5', width: 128, exclude: false, fport: 443, lport: 443 },
      ]),
    );
  });

  it('a mask on a name with both IPv4 and IPv6 addresses is refused, as upstream', () => {
    const r = rulesFromAddresses(ok('example.com/24'), ['192.0.2.1', '2001:db8::5'], false);
    expect(E.isLeft(r) && r.left).toContain('has IPv4 and IPv6 addresses, so the mask /24');
  });

  it('a width too wide for the resolved family is refused', () => {
    const r = rulesFromAddresses(ok('example.com/64'), ['192.0.2.1'], false);
    expect(E.isLeft(r) && r.left).toContain('prefix length 64 is out of range for IPv4 (0-32)');
  });

  it('no addresses, or a non-IP address, is refused', () => {
    expect(E.isLeft(rulesFromAddresses(ok('example.com'), [], false))).toBe(true);
    expect(E.isLeft(rulesFromAddresses(ok('example.com'), ['not-an-ip'], false))).toBe(true);
  });

  it('every rule is a masked network of the spec width (or a single host) with the spec ports', () => {
    fc.assert(
      fc.property(
        subnetSpecArb.filter((s) => isIpLiteral(s.host)),
        fc.boolean(),
        (s, exclude) => {
          const r = rulesFromAddresses(s, [s.host], exclude);
          if (E.isLeft(r)) throw new Error(r.left);
          expect(r.right).toHaveLength(1);
          const [rule] = r.right;
          const max = s.host.includes(':') ? 128 : 32;
          expect(rule?.width).toBe(s.width ?? max);
          expect(rule?.ip).toBe(networkAddress(s.host, s.width ?? max));
          expect(rule?.ip && networkAddress(rule.ip, rule.width)).toBe(rule?.ip);
          expect([rule?.fport, rule?.lport, rule?.exclude]).toEqual([s.fport, s.lport, exclude]);
        },
      ),
    );
  });
});

describe('isIpLiteral', () => {
  it.each([
    ['1.2.3.4', true],
    ['::1', true],
    ['2001:db8::1', true],
    ['example.com', false],
    ['1.2.3', false],
    ['01.2.3.4', false],
    ['fe80::1%eth0', false],
  ])('%s -> %s', (host, expected) => {
    expect(isIpLiteral(host)).toBe(expected);
  });
});
