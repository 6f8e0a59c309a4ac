import * as fc from 'fast-check';
import { isLeft, isRight } from 'fp-ts/lib/Either.js';
import { describe, expect, it } from 'vitest';
import {
  checkRequest,
  type FirewallMethod,
  type FirewallRequest,
  familiesToSetup,
  isIpLiteral,
  planRestore,
  planSetup,
  type Step,
} from '../../src/domain/firewall-plan.js';
import { type Family, firstMatchOrder, type SubnetRule } from '../../src/domain/subnet.js';
import { iptablesPairs, request, requestArb, rule } from './fixtures/firewall-requests.js';

// ---------------------------------------------------------------------------
// fixtures
// ---------------------------------------------------------------------------

/** Upstream's documented nat case (tests/client/test_methods_nat.py, v4 part). */
const upstreamV4 = request({
  subnets: [rule(4, '1.2.3.0', 24, false, 8000, 9000), rule(4, '1.2.3.66', 32, true, 8080, 8080)],
  nameservers: [{ family: 4, ip: '1.2.3.33' }],
  ports: { tcp4: 1025, tcp6: 0, dns4: 1027, dns6: 0 },
});

/** Upstream's IPv6 case of the same test. */
const upstreamV6 = request({
  subnets: [
    rule(6, '2404:6800:4004:80c::', 64, false),
    rule(6, '2404:6800:4004:80c::101f', 128, true, 80, 80),
  ],
  nameservers: [{ family: 6, ip: '2404:6800:4004:80c::33' }],
  ports: { tcp4: 0, tcp6: 1024, dns4: 0, dns6: 1026 },
});

const argvs = (steps: readonly Step[]) => steps.map((s) => [...s.argv]);
const v4 = ['iptables', '-w', '-t', 'nat'];
const v6 = ['ip6tables', '-w', '-t', 'nat'];

// ---------------------------------------------------------------------------
// nat goldens
// ---------------------------------------------------------------------------

describe('nat plan (sshuttle-upstream.md §2.1)', () => {
  it("reproduces upstream's documented IPv4 call list", () => {
    const steps = planSetup('nat', 4, upstreamV4);
    const C = 'sshuttle-1025';
    expect(argvs(steps)).toEqual([
      [...v4, '-D', 'OUTPUT', '-j', C],
      [...v4, '-D', 'PREROUTING', '-j', C],
      [...v4, '-F', C],
      [...v4, '-X', C],
      [...v4, '-N', C],
      [...v4, '-F', C],
      [...v4, '-I', 'OUTPUT', '1', '-j', C],
      [...v4, '-I', 'PREROUTING', '1', '-j', C],
      [
        ...v4,
        '-A',
        C,
        '-j',
        'REDIRECT',
        '--dest',
        '1.2.3.33',
        '-p',
        'udp',
        '--dport',
        '53',
        '--to-ports',
        '1027',
      ],
      [
        ...v4,
        '-A',
        C,
        '-j',
        'RETURN',
        '--dest',
        '1.2.3.66/32',
        '-p',
        'tcp',
        '--dport',
        '8080:8080',
      ],
      [
        ...v4,
        '-A',
        C,
        '-j',
        'REDIRECT',
        '--dest',
        '1.2.3.0/24',
        '-p',
        'tcp',
        '--dport',
        '8000:9000',
        '--to-ports',
        '1025',
      ],
      [...v4, '-A', C, '-j', 'RETURN', '-m', 'addrtype', '--dst-type', 'LOCAL'],
    ]);
    // restore-first: gated on `iptables -w -t nat -nL` listing `Chain C `, -X fatal, rest not
    const probe = { argv: [...v4, '-nL'], line: `Chain ${C} `, match: 'prefix' };
    expect(steps.slice(0, 4).map((s) => [s.fatal, s.when])).toEqual([
      [false, probe],
      [false, probe],
      [false, probe],
      [true, probe],
    ]);
    expect(steps.slice(4).every((s) => s.fatal && s.when === undefined)).toBe(true);
  });

  it('restores exactly as upstream', () => {
    expect(argvs(planRestore('nat', 4, upstreamV4))).toEqual([
      [...v4, '-D', 'OUTPUT', '-j', 'sshuttle-1025'],
      [...v4, '-D', 'PREROUTING', '-j', 'sshuttle-1025'],
      [...v4, '-F', 'sshuttle-1025'],
      [...v4, '-X', 'sshuttle-1025'],
    ]);
  });

  it("reproduces upstream's IPv6 case with ip6tables", () => {
    const C = 'sshuttle-1024';
    expect(argvs(planSetup('nat', 6, upstreamV6))).toEqual([
      [...v6, '-D', 'OUTPUT', '-j', C],
      [...v6, '-D', 'PREROUTING', '-j', C],
      [...v6, '-F', C],
      [...v6, '-X', C],
      [...v6, '-N', C],
      [...v6, '-F', C],
      [...v6, '-I', 'OUTPUT', '1', '-j', C],
      [...v6, '-I', 'PREROUTING', '1', '-j', C],
      [
        ...v6,
        '-A',
        C,
        '-j',
        'REDIRECT',
        '--dest',
        '2404:6800:4004:80c::33',
        '-p',
        'udp',
        '--dport',
        '53',
        '--to-ports',
        '1026',
      ],
      [
        ...v6,
        '-A',
        C,
        '-j',
        'RETURN',
        '--dest',
        '2404:6800:4004:80c::101f/128',
        '-p',
        'tcp',
        '--dport',
        '80:80',
      ],
      [
        ...v6,
        '-A',
        C,
        '-j',
        'REDIRECT',
        '--dest',
        '2404:6800:4004:80c::/64',
        '-p',
        'tcp',
        '--to-ports',
        '1024',
      ],
      [...v6, '-A', C, '-j', 'RETURN', '-m', 'addrtype', '--dst-type', 'LOCAL'],
    ]);
  });

  it('marks the owner in mangle and jumps on the mark for user/group', () => {
    const req = { ...upstreamV4, user: 1000, group: 100 };
    const steps = planSetup('nat', 4, req);
    const C = 'sshuttle-1025';
    const mangle = ['iptables', '-w', '-t', 'mangle'];
    const owner = [
      '-m',
      'owner',
      '--uid-owner',
      '1000',
      '--gid-owner',
      '100',
      '-j',
      'MARK',
      '--set-mark',
      '1025',
    ];
    const jump = ['-m', 'mark', '--mark', '1025', '-j', C];
    expect(argvs(steps).slice(0, 9)).toEqual([
      [...mangle, '-D', 'OUTPUT', ...owner],
      [...v4, '-D', 'OUTPUT', ...jump],
      [...v4, '-D', 'PREROUTING', ...jump],
      [...v4, '-F', C],
      [...v4, '-X', C],
      [...v4, '-N', C],
      [...v4, '-F', C],
      [...mangle, '-I', 'OUTPUT', '1', ...owner],
      [...v4, '-I', 'OUTPUT', '1', ...jump],
    ]);
    expect(steps[7]?.fatal).toBe(false); // upstream: nonfatal
    const userOnly = argvs(planSetup('nat', 4, { ...upstreamV4, user: 0 }))[7];
    expect(userOnly).toEqual([
      ...mangle,
      '-I',
      'OUTPUT',
      '1',
      '-m',
      'owner',
      '--uid-owner',
      '0',
      '-j',
      'MARK',
      '--set-mark',
      '1025',
    ]);
  });
});

// ---------------------------------------------------------------------------
// nft goldens
// ---------------------------------------------------------------------------

describe('nft plan (sshuttle-upstream.md §2.2)', () => {
  it('plans the upstream case for IPv4, stale table deleted first', () => {
    const T = 'sshuttle-ipv4-1025';
    const steps = planSetup('nft', 4, upstreamV4);
    expect(argvs(steps)).toEqual([
      ['nft', 'delete', 'table', 'inet', T],
      ['nft', 'add', 'table', 'inet', T],
      [
        'nft',
        'add',
        'chain',
        'inet',
        T,
        'prerouting',
        '{ type nat hook prerouting priority -100; policy accept; }',
      ],
      [
        'nft',
        'add',
        'chain',
        'inet',
        T,
        'output',
        '{ type nat hook output priority -100; policy accept; }',
      ],
      ['nft', 'add', 'chain', 'inet', T, T],
      ['nft', 'flush', 'chain', 'inet', T, T],
      ['nft', 'add', 'rule', 'inet', T, 'output', 'jump', T],
      ['nft', 'add', 'rule', 'inet', T, 'prerouting', 'jump', T],
      ['nft', 'add', 'rule', 'inet', T, T, 'meta', 'nfproto', '!=', 'ipv4', 'return'],
      [
        'nft',
        'add',
        'rule',
        'inet',
        T,
        T,
        'ip',
        'daddr',
        '1.2.3.33',
        'udp',
        'dport',
        '53',
        'redirect',
        'to',
        ':1027',
      ],
      ['nft', 'add', 'rule', 'inet', T, T, 'fib', 'daddr', 'type', 'local', 'return'],
      [
        'nft',
        'add',
        'rule',
        'inet',
        T,
        T,
        'meta',
        'nfproto',
        'ipv4',
        'tcp',
        'dport',
        '8080',
        'ip',
        'daddr',
        '1.2.3.66/32',
        'return',
      ],
      [
        'nft',
        'add',
        'rule',
        'inet',
        T,
        T,
        'meta',
        'nfproto',
        'ipv4',
        'tcp',
        'dport',
        '{ 8000-9000 }',
        'ip',
        'daddr',
        '1.2.3.0/24',
        'redirect',
        'to',
        ':1025',
      ],
    ]);
    expect(steps[0]).toEqual({
      argv: ['nft', 'delete', 'table', 'inet', T],
      fatal: false,
      when: { argv: ['nft', 'list', 'tables'], line: `table inet ${T}`, match: 'exact' },
    });
    expect(steps.slice(1).every((s) => s.fatal && s.when === undefined)).toBe(true);
    expect(planRestore('nft', 4, upstreamV4)).toEqual([steps[0]]);
  });

  it('plans the upstream case for IPv6', () => {
    const T = 'sshuttle-ipv6-1024';
    expect(argvs(planSetup('nft', 6, upstreamV6)).slice(6)).toEqual([
      ['nft', 'add', 'rule', 'inet', T, 'output', 'jump', T],
      ['nft', 'add', 'rule', 'inet', T, 'prerouting', 'jump', T],
      ['nft', 'add', 'rule', 'inet', T, T, 'meta', 'nfproto', '!=', 'ipv6', 'return'],
      [
        'nft',
        'add',
        'rule',
        'inet',
        T,
        T,
        'ip6',
        'daddr',
        '2404:6800:4004:80c::33',
        'udp',
        'dport',
        '53',
        'redirect',
        'to',
        ':1026',
      ],
      ['nft', 'add', 'rule', 'inet', T, T, 'fib', 'daddr', 'type', 'local', 'return'],
      [
        'nft',
        'add',
        'rule',
        'inet',
        T,
        T,
        'meta',
        'nfproto',
        'ipv6',
        'tcp',
        'dport',
        '80',
        'ip6',
        'daddr',
        '2404:6800:4004:80c::101f/128',
        'return',
      ],
      [
        'nft',
        'add',
        'rule',
        'inet',
        T,
        T,
        'meta',
        'nfproto',
        'ipv6',
        'meta',
        'l4proto',
        'tcp',
        'ip6',
        'daddr',
        '2404:6800:4004:80c::/64',
        'redirect',
        'to',
        ':1024',
      ],
    ]);
    expect(argvs(planRestore('nft', 6, upstreamV6))).toEqual([
      ['nft', 'delete', 'table', 'inet', T],
    ]);
  });

  it('matches the owner on the output jump and drops the prerouting jump for user/group', () => {
    const T = 'sshuttle-ipv4-1025';
    const jumps = (req: FirewallRequest) =>
      argvs(planSetup('nft', 4, req)).filter((a) => a.includes('jump'));
    expect(jumps({ ...upstreamV4, user: 1000, group: 100 })).toEqual([
      [
        'nft',
        'add',
        'rule',
        'inet',
        T,
        'output',
        'meta',
        'skuid',
        '1000',
        'meta',
        'skgid',
        '100',
        'jump',
        T,
      ],
    ]);
    expect(jumps({ ...upstreamV4, group: 0 })).toEqual([
      ['nft', 'add', 'rule', 'inet', T, 'output', 'meta', 'skgid', '0', 'jump', T],
    ]);
  });
});

// ---------------------------------------------------------------------------
// shared behaviour
// ---------------------------------------------------------------------------

describe('nameserver scope (upstream #736)', () => {
  it.each(['nft', 'nat'] as const)('%s strips %%iface from IPv6 nameservers', (method) => {
    const req = request({
      nameservers: [{ family: 6, ip: 'fe80::1%eth0' }],
      ports: { tcp4: 0, tcp6: 1024, dns4: 0, dns6: 1026 },
    });
    const words = planSetup(method, 6, req).flatMap((s) => s.argv);
    expect(words.some((w) => w.includes('%'))).toBe(false);
    expect(words).toContain('fe80::1');
  });
});

describe('scoped link-local nameserver with a DNAT target (issue 5)', () => {
  // The resolver's socket is bound to eth0, so a redirect to ::1 leaves on eth0;
  // a DNAT to our own link-local address on eth0 stays local and answers.
  const via = { ip: 'fe80::a8bb:ccff:fedd:eeff', port: 12299 };
  const req = request({
    subnets: [rule(6, '2001:db8:2::', 64, false)],
    nameservers: [
      { family: 6, ip: '2001:db8::53' },
      { family: 6, ip: 'fe80::53%eth0', via },
    ],
    ports: { tcp4: 0, tcp6: 1024, dns4: 0, dns6: 1026 },
  });

  /** The DNS rules of a plan, each as one line. */
  const dnsRules = (method: FirewallMethod) =>
    argvs(planSetup(method, 6, req))
      .filter((a) => a.includes('53'))
      .map((a) => a.join(' '));

  it('nft: DNAT on that output interface, the others redirected as before', () => {
    const T = 'sshuttle-ipv6-1024';
    expect(dnsRules('nft')).toEqual([
      `nft add rule inet ${T} ${T} ip6 daddr 2001:db8::53 udp dport 53 redirect to :1026`,
      `nft add rule inet ${T} ${T} ip6 daddr fe80::53 oifname "eth0" udp dport 53 dnat ip6 to [fe80::a8bb:ccff:fedd:eeff]:12299`,
    ]);
  });

  it('nat: DNAT on that output interface, the others redirected as before', () => {
    const C = 'ip6tables -w -t nat -A sshuttle-1024';
    expect(dnsRules('nat')).toEqual([
      `${C} -j REDIRECT --dest 2001:db8::53 -p udp --dport 53 --to-ports 1026`,
      `${C} -j DNAT --dest fe80::53 -o eth0 -p udp --dport 53 --to-destination [fe80::a8bb:ccff:fedd:eeff]:12299`,
    ]);
  });

  it('restores exactly as without it (the rules live in our table / chain)', () => {
    const plain = { ...req, nameservers: [req.nameservers[0] ?? { family: 6, ip: '' }] };
    for (const method of ['nft', 'nat'] as const)
      expect(planRestore(method, 6, req)).toEqual(planRestore(method, 6, plain));
  });

  it.each([
    ['an unscoped server', { family: 6 as const, ip: 'fe80::53', via }],
    ['a global server', { family: 6 as const, ip: '2001:db8::53%eth0', via }],
    ['an IPv4 server', { family: 4 as const, ip: '192.0.2.53', via }],
    [
      'a global target',
      { family: 6 as const, ip: 'fe80::53%eth0', via: { ...via, ip: '2001:db8::1' } },
    ],
    [
      'a scoped target',
      { family: 6 as const, ip: 'fe80::53%eth0', via: { ...via, ip: 'fe80::1%eth0' } },
    ],
    ['port 0', { family: 6 as const, ip: 'fe80::53%eth0', via: { ...via, port: 0 } }],
  ])('checkRequest refuses a DNAT target for %s', (_what, ns) => {
    const bad = {
      ...req,
      ports: { tcp4: 0, tcp6: 1024, dns4: 1027, dns6: 1026 },
      nameservers: [ns],
    };
    expect(isLeft(checkRequest('nft', bad))).toBe(true);
    expect(isRight(checkRequest('nft', req))).toBe(true);
  });

  it('checkRequest refuses a DNAT target with tproxy (it routes, it does not DNAT)', () => {
    expect(isLeft(checkRequest('tproxy', req))).toBe(true);
  });

  it('property: each nameserver gets exactly one DNS rule; scoped ones DNAT via their interface', () => {
    const hex = fc.integer({ min: 1, max: 0xffff }).map((n) => n.toString(16));
    const scoped = fc
      .record({
        host: hex,
        iface: fc.stringMatching(/^[a-z][a-z0-9]{0,7}$/),
        low: hex,
        port: fc.integer({ min: 1, max: 65535 }),
      })
      .map(({ host, iface, low, port }) => ({
        family: 6 as const,
        ip: `fe80::${host}%${iface}`,
        via: { ip: `fe80::1:${low}`, port },
      }));
    const plain = hex.map((h) => ({ family: 6 as const, ip: `2001:db8::${h}` }));
    fc.assert(
      fc.property(
        fc.array(fc.oneof(scoped, plain), { minLength: 1, maxLength: 6 }),
        fc.constantFrom('nft' as const, 'nat' as const),
        (nameservers, method) => {
          const r = { ...req, nameservers };
          expect(isRight(checkRequest(method, r))).toBe(true);
          const dns = argvs(planSetup(method, 6, r)).filter((a) => a.includes('53'));
          expect(dns).toHaveLength(nameservers.length);
          for (const ns of nameservers) {
            const bare = ns.ip.replace(/%.*$/, '');
            const mine = dns.filter((a) => a.includes(bare));
            expect(mine.length).toBeGreaterThan(0);
            if ('via' in ns) {
              const iface = ns.ip.slice(ns.ip.indexOf('%') + 1);
              const target = `[${ns.via.ip}]:${ns.via.port}`;
              expect(mine.some((a) => a.includes(target) && a.some((w) => w.includes(iface)))).toBe(
                true,
              );
            }
            for (const a of mine) expect(a.some((w) => w.includes('%'))).toBe(false);
          }
        },
      ),
    );
  });
});

describe('a family with nameservers but no subnets', () => {
  // Two clients capturing only IPv6 DNS (IPv4 subnets, an IPv6 nameserver)
  // must not share table, chain or rule names: those come from the DNS port.
  const only = (dns6: number) =>
    request({
      subnets: [rule(4, '10.0.0.0', 8, false)],
      nameservers: [{ family: 6, ip: '2001:db8::53' }],
      ports: { tcp4: 12300, tcp6: 0, dns4: 0, dns6 },
    });
  it.each(['nft', 'nat', 'tproxy', 'nft-tproxy'] as const)(
    '%s: names come from the DNS port',
    (method) => {
      const words = (dns6: number) =>
        planSetup(method, 6, { ...only(dns6), udp: method.includes('tproxy') })
          .flatMap((st) => st.argv)
          .join(' ');
      expect(words(12299)).toMatch(/12299/);
      expect(words(12299)).not.toMatch(/-0\b|ipv6-0\b|priority 1000\b/);
      expect(words(12299)).not.toBe(words(12298));
    },
  );
});

describe('familiesToSetup', () => {
  it('is IPv6 then IPv4, only families with subnets or nameservers', () => {
    expect(familiesToSetup(upstreamV4)).toEqual([4]);
    expect(familiesToSetup(upstreamV6)).toEqual([6]);
    const both = request({ subnets: upstreamV4.subnets, nameservers: upstreamV6.nameservers });
    expect(familiesToSetup(both)).toEqual([6, 4]);
    expect(familiesToSetup(request({}))).toEqual([]);
  });
});

describe('checkRequest', () => {
  it('accepts the upstream cases', () => {
    expect(isRight(checkRequest('nat', upstreamV4))).toBe(true);
    expect(isRight(checkRequest('nft', upstreamV6))).toBe(true);
  });
  it.each<[string, FirewallRequest]>([
    ['udp', { ...upstreamV4, udp: true }],
    ['v4 subnets without a v4 port', { ...upstreamV4, ports: { ...upstreamV4.ports, tcp4: 0 } }],
    [
      'v4 nameserver without a dns port',
      { ...upstreamV4, ports: { ...upstreamV4.ports, dns4: 0 } },
    ],
    ['port out of range', { ...upstreamV4, ports: { ...upstreamV4.ports, tcp6: 70000 } }],
    ['bad ip', { ...upstreamV4, subnets: [rule(4, '1.2.3.4; flush ruleset', 32, false)] }],
    ['v6 ip in a v4 rule', { ...upstreamV4, subnets: [rule(4, '::1', 32, false)] }],
    ['width too large', { ...upstreamV4, subnets: [rule(4, '1.2.3.0', 33, false)] }],
    ['half a port range', { ...upstreamV4, subnets: [rule(4, '1.2.3.0', 24, false, 0, 80)] }],
    ['reversed port range', { ...upstreamV4, subnets: [rule(4, '1.2.3.0', 24, false, 90, 80)] }],
    ['bad nameserver scope', { ...upstreamV6, nameservers: [{ family: 6, ip: 'fe80::1%eth0 }' }] }],
    ['negative uid', { ...upstreamV4, user: -1 }],
  ])('rejects %s', (_name, req) => {
    expect(isLeft(checkRequest('nft', req))).toBe(true);
  });
});

describe('isIpLiteral', () => {
  it('accepts clean literals only', () => {
    expect(isIpLiteral(4, '10.0.0.1')).toBe(true);
    expect(isIpLiteral(4, '010.0.0.1')).toBe(false);
    expect(isIpLiteral(4, '10.0.0')).toBe(false);
    expect(isIpLiteral(6, '::ffff:10.0.0.1')).toBe(true);
    expect(isIpLiteral(6, '::ffff:0x1.0.0.1')).toBe(false);
    expect(isIpLiteral(6, 'fe80::1%eth0')).toBe(false);
    expect(isIpLiteral(6, 'fe80::1%eth0', true)).toBe(true);
    expect(isIpLiteral(6, 'fe80::1%', true)).toBe(false);
    expect(isIpLiteral(6, '10.0.0.1')).toBe(false);
  });
});

// ---------------------------------------------------------------------------
// properties
// ---------------------------------------------------------------------------

const arbRequest = requestArb(
  fc.record({
    user: fc.option(fc.integer({ min: 0, max: 65535 }), { nil: null }),
    group: fc.option(fc.integer({ min: 0, max: 65535 }), { nil: null }),
  }),
  25,
);

const methodArb = fc.constantFrom<FirewallMethod>('nft', 'nat');
const familyArb = fc.constantFrom<Family>(4, 6);

/** Read the subnet rules back out of a plan's argv lists. */
const subnetRulesOf = (method: FirewallMethod, family: Family, steps: readonly Step[]) =>
  steps.flatMap((s): SubnetRule[] => {
    const a = s.argv;
    if (method === 'nat') {
      const dest = a[a.indexOf('--dest') + 1];
      if (!a.includes('tcp') || dest === undefined || !a.includes('--dest')) return [];
      const [ip = '', width = ''] = dest.split('/');
      const dport = a.includes('--dport') ? (a[a.indexOf('--dport') + 1] ?? '') : '0:0';
      const [f = 0, l = 0] = dport.split(':').map(Number);
      return [rule(family, ip, Number(width), a.includes('RETURN'), f, l)];
    }
    const i = a.indexOf('daddr');
    const dest = a[i + 1] ?? '';
    if (i < 0 || !dest.includes('/')) return [];
    const [ip = '', width = ''] = dest.split('/');
    const d = a.includes('dport') ? (a[a.indexOf('dport') + 1] ?? '') : '0';
    const [f = 0, l = f] = d.replace(/[{} ]/g, '').split('-').map(Number);
    return [rule(family, ip, Number(width), a.at(-1) === 'return', f, l)];
  });

describe('plan properties', () => {
  it('subnet rules appear exactly once each, in firstMatchOrder', () => {
    fc.assert(
      fc.property(methodArb, familyArb, arbRequest, (method, family, req) => {
        const mine = req.subnets.filter((r) => r.family === family);
        const got = subnetRulesOf(method, family, planSetup(method, family, req));
        expect(got).toEqual(firstMatchOrder(mine));
      }),
    );
  });

  it('every include gets one redirect and every exclude one return', () => {
    fc.assert(
      fc.property(methodArb, familyArb, arbRequest, (method, family, req) => {
        const mine = req.subnets.filter((r) => r.family === family);
        const steps = planSetup(method, family, req).filter((s) =>
          s.argv.some((w) => w.includes('/') && !w.startsWith('{')),
        );
        const redirects = steps.filter((s) =>
          method === 'nat' ? s.argv.includes('REDIRECT') : s.argv.includes('redirect'),
        );
        expect(redirects.length).toBe(mine.filter((r) => !r.exclude).length);
        expect(steps.length - redirects.length).toBe(mine.filter((r) => r.exclude).length);
      }),
    );
  });

  it('setup starts with the restore plan, and restore removes what setup created', () => {
    fc.assert(
      fc.property(methodArb, familyArb, arbRequest, (method, family, req) => {
        const setup = planSetup(method, family, req);
        const restore = planRestore(method, family, req);
        expect(setup.slice(0, restore.length)).toEqual(restore);
        const built = setup.slice(restore.length);
        if (method === 'nft') {
          const tables = built.filter((s) => s.argv[2] === 'table').map((s) => s.argv[4]);
          expect(tables).toEqual([
            `sshuttle-ipv${family}-${family === 4 ? req.ports.tcp4 : req.ports.tcp6}`,
          ]);
          expect(restore.map((s) => s.argv.slice(1, 5))).toEqual([
            ['delete', 'table', 'inet', tables[0]],
          ]);
          // everything else lives inside that table
          expect(built.every((s) => s.argv[4] === tables[0])).toBe(true);
          return;
        }
        // nat: every -N is -X'ed, every -I is -D'ed with the same rule spec
        const { created, removed, inserted, deleted, appendedTo } = iptablesPairs(built, restore);
        expect(removed).toEqual(created);
        expect(deleted).toEqual(inserted);
        // appended rules only go into the created chain
        expect(appendedTo.every((c) => c === created[0])).toBe(true);
      }),
    );
  });

  it('plans of the generated requests pass checkRequest and are deterministic', () => {
    fc.assert(
      fc.property(methodArb, familyArb, arbRequest, (method, family, req) => {
        expect(checkRequest(method, req)).toEqual({ _tag: 'Right', right: req });
        expect(planSetup(method, family, req)).toEqual(planSetup(method, family, req));
      }),
    );
  });
});

describe('owner match (--user/--group) properties', () => {
  const argAfter = (argv: readonly string[], word: string): string | undefined =>
    argv.includes(word) ? argv[argv.indexOf(word) + 1] : undefined;

  it('nft: only the output jump carries meta skuid/skgid, exactly the ids asked for', () => {
    fc.assert(
      fc.property(familyArb, arbRequest, (family, req) => {
        const steps = planSetup('nft', family, req).map((s) => s.argv);
        const jumps = steps.filter((a) => a.includes('jump'));
        const output = jumps.filter((a) => a.includes('output'));
        const prerouting = jumps.filter((a) => a.includes('prerouting'));
        expect(output).toHaveLength(1);
        const [out = []] = output;
        expect(argAfter(out, 'skuid')).toBe(req.user === null ? undefined : String(req.user));
        expect(argAfter(out, 'skgid')).toBe(req.group === null ? undefined : String(req.group));
        // Forwarded packets have no owner: router-mode capture only without an owner match.
        expect(prerouting).toHaveLength(req.user === null && req.group === null ? 1 : 0);
        expect(steps.filter((a) => a.includes('skuid') || a.includes('skgid')).length).toBe(
          req.user === null && req.group === null ? 0 : 1,
        );
      }),
    );
  });

  it('nat: a mangle owner mark, jumps only on that mark, and restore deletes the same mark', () => {
    fc.assert(
      fc.property(familyArb, arbRequest, (family, req) => {
        const owned = req.user !== null || req.group !== null;
        const port = String(family === 4 ? req.ports.tcp4 : req.ports.tcp6);
        const setup = planSetup('nat', family, req).map((s) => s.argv);
        const marks = setup.filter((a) => a.includes('mangle') && a.includes('-I'));
        expect(marks).toHaveLength(owned ? 1 : 0);
        const [mark = []] = marks;
        if (owned) {
          expect(argAfter(mark, '--uid-owner')).toBe(
            req.user === null ? undefined : String(req.user),
          );
          expect(argAfter(mark, '--gid-owner')).toBe(
            req.group === null ? undefined : String(req.group),
          );
          expect(argAfter(mark, '--set-mark')).toBe(port);
        }
        const jumps = setup.filter(
          (a) => a.includes('-I') && (a.includes('OUTPUT') || a.includes('PREROUTING')),
        );
        for (const j of jumps.filter((a) => a.includes('nat')))
          expect(argAfter(j, '--mark')).toBe(owned ? port : undefined);
        const restoreMarks = planRestore('nat', family, req)
          .map((s) => s.argv)
          .filter((a) => a.includes('mangle'));
        expect(restoreMarks.map((a) => a.slice(a.indexOf('OUTPUT') + 1))).toEqual(
          marks.map((a) => a.slice(a.indexOf('OUTPUT') + 2)),
        );
      }),
    );
  });
});
