/**
 * The tproxy plan: goldens against sshuttle-upstream.md §2.3 (upstream's
 * unit-test inputs), our policy routing, the preflight, and properties
 * (every chain, jump, ip rule and route setup adds is removed by restore).
 */
import * as fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  checkRequest,
  type FirewallRequest,
  planRestore,
  planSetup,
  type Step,
} from '../../src/domain/firewall-plan.js';
import {
  planTproxyPreflight,
  tproxyChains,
  tproxyPriority,
} from '../../src/domain/firewall-plan-tproxy.js';
import { type Family, firstMatchOrder, type SubnetRule } from '../../src/domain/subnet.js';
import {
  request as baseRequest,
  iptablesPairs,
  rule,
  tproxyRequestArb,
} from './fixtures/firewall-requests.js';

const request = (over: Partial<FirewallRequest>): FirewallRequest =>
  baseRequest({ udp: true, ...over });

const argvs = (steps: readonly Step[]) => steps.map((s) => [...s.argv]);
const m4 = ['iptables', '-w', '-t', 'mangle'];
const m6 = ['ip6tables', '-w', '-t', 'mangle'];

/** Upstream's tproxy unit-test case (tests/client/test_methods_tproxy.py, v4 part). */
const upstreamV4 = request({
  subnets: [rule(4, '1.2.3.0', 24, false), rule(4, '1.2.3.66', 32, true, 80, 80)],
  nameservers: [{ family: 4, ip: '1.2.3.33' }],
  ports: { tcp4: 1025, tcp6: 0, dns4: 1027, dns6: 0 },
});

/** Its IPv6 part. */
const upstreamV6 = request({
  subnets: [
    rule(6, '2404:6800:4004:80c::', 64, false, 8000, 9000),
    rule(6, '2404:6800:4004:80c::101f', 128, true, 8080, 8080),
  ],
  nameservers: [{ family: 6, ip: '2404:6800:4004:80c::33' }],
  ports: { tcp4: 0, tcp6: 1024, dns4: 0, dns6: 1026 },
});

/** Our policy routing's two commands, as setup adds them (route, then rule). */
const routingAdded = (family: 4 | 6, port: number) => [
  [
    'ip',
    `-${family}`,
    'route',
    'add',
    ...`local default dev lo table 100 metric ${port}`.split(' '),
  ],
  ['ip', `-${family}`, 'rule', 'add', ...`fwmark 0x01 lookup 100 priority ${port}`.split(' ')],
];

/** ... and as restore removes them (rule, then route). */
const routingRemoved = (family: 4 | 6, port: number) =>
  routingAdded(family, port)
    .map((a) => a.map((w) => (w === 'add' ? 'del' : w)))
    .reverse();

const restoreV4 = [
  [...m4, '-D', 'OUTPUT', '-j', 'sshuttle-m-1025'],
  [...m4, '-F', 'sshuttle-m-1025'],
  [...m4, '-X', 'sshuttle-m-1025'],
  [...m4, '-D', 'PREROUTING', '-j', 'sshuttle-t-1025'],
  [...m4, '-F', 'sshuttle-t-1025'],
  [...m4, '-X', 'sshuttle-t-1025'],
  [...m4, '-F', 'sshuttle-d-1025'],
  [...m4, '-X', 'sshuttle-d-1025'],
  ...routingRemoved(4, 1025),
];

describe('tproxy plan: goldens (sshuttle-upstream.md §2.3)', () => {
  it('IPv4 setup: restore, chains, jumps, DNS, LOCAL returns, TCP divert, subnets tcp+udp, routing', () => {
    expect(argvs(planSetup('tproxy', 4, upstreamV4))).toEqual([
      ...restoreV4,
      [...m4, '-N', 'sshuttle-m-1025'],
      [...m4, '-F', 'sshuttle-m-1025'],
      [...m4, '-N', 'sshuttle-d-1025'],
      [...m4, '-F', 'sshuttle-d-1025'],
      [...m4, '-N', 'sshuttle-t-1025'],
      [...m4, '-F', 'sshuttle-t-1025'],
      [...m4, '-I', 'OUTPUT', '1', '-j', 'sshuttle-m-1025'],
      [...m4, '-I', 'PREROUTING', '1', '-j', 'sshuttle-t-1025'],
      [
        ...m4,
        '-A',
        'sshuttle-m-1025',
        '-j',
        'MARK',
        '--set-mark',
        '0x01',
        '--dest',
        '1.2.3.33/32',
        '-m',
        'udp',
        '-p',
        'udp',
        '--dport',
        '53',
      ],
      [
        ...m4,
        '-A',
        'sshuttle-t-1025',
        '-j',
        'TPROXY',
        '--tproxy-mark',
        '0x01',
        '--dest',
        '1.2.3.33/32',
        '-m',
        'udp',
        '-p',
        'udp',
        '--dport',
        '53',
        '--on-port',
        '1027',
      ],
      [...m4, '-A', 'sshuttle-t-1025', '-j', 'RETURN', '-m', 'addrtype', '--dst-type', 'LOCAL'],
      [...m4, '-A', 'sshuttle-m-1025', '-j', 'RETURN', '-m', 'addrtype', '--dst-type', 'LOCAL'],
      [...m4, '-A', 'sshuttle-d-1025', '-j', 'MARK', '--set-mark', '0x01'],
      [...m4, '-A', 'sshuttle-d-1025', '-j', 'ACCEPT'],
      [
        ...m4,
        '-A',
        'sshuttle-t-1025',
        '-m',
        'socket',
        '-j',
        'sshuttle-d-1025',
        '-m',
        'tcp',
        '-p',
        'tcp',
      ],
      // upstream's UDP socket divert rule is left out on purpose (module comment)
      [
        ...m4,
        '-A',
        'sshuttle-m-1025',
        '-j',
        'RETURN',
        '--dest',
        '1.2.3.66/32',
        '-m',
        'tcp',
        '-p',
        'tcp',
        '--dport',
        '80:80',
      ],
      [
        ...m4,
        '-A',
        'sshuttle-t-1025',
        '-j',
        'RETURN',
        '--dest',
        '1.2.3.66/32',
        '-m',
        'tcp',
        '-p',
        'tcp',
        '--dport',
        '80:80',
      ],
      [
        ...m4,
        '-A',
        'sshuttle-m-1025',
        '-j',
        'RETURN',
        '--dest',
        '1.2.3.66/32',
        '-m',
        'udp',
        '-p',
        'udp',
        '--dport',
        '80:80',
      ],
      [
        ...m4,
        '-A',
        'sshuttle-t-1025',
        '-j',
        'RETURN',
        '--dest',
        '1.2.3.66/32',
        '-m',
        'udp',
        '-p',
        'udp',
        '--dport',
        '80:80',
      ],
      [
        ...m4,
        '-A',
        'sshuttle-m-1025',
        '-j',
        'MARK',
        '--set-mark',
        '0x01',
        '--dest',
        '1.2.3.0/24',
        '-m',
        'tcp',
        '-p',
        'tcp',
      ],
      [
        ...m4,
        '-A',
        'sshuttle-t-1025',
        '-j',
        'TPROXY',
        '--tproxy-mark',
        '0x01',
        '--dest',
        '1.2.3.0/24',
        '-m',
        'tcp',
        '-p',
        'tcp',
        '--on-port',
        '1025',
      ],
      [
        ...m4,
        '-A',
        'sshuttle-m-1025',
        '-j',
        'MARK',
        '--set-mark',
        '0x01',
        '--dest',
        '1.2.3.0/24',
        '-m',
        'udp',
        '-p',
        'udp',
      ],
      [
        ...m4,
        '-A',
        'sshuttle-t-1025',
        '-j',
        'TPROXY',
        '--tproxy-mark',
        '0x01',
        '--dest',
        '1.2.3.0/24',
        '-m',
        'udp',
        '-p',
        'udp',
        '--on-port',
        '1025',
      ],
      ...routingAdded(4, 1025),
    ]);
  });

  it('IPv4 restore: each chain only if it exists (upstream), then our rule and route only if listed', () => {
    const steps = planRestore('tproxy', 4, upstreamV4);
    expect(argvs(steps)).toEqual(restoreV4);
    expect(steps.map((s) => s.when?.line)).toEqual([
      'Chain sshuttle-m-1025 ',
      'Chain sshuttle-m-1025 ',
      'Chain sshuttle-m-1025 ',
      'Chain sshuttle-t-1025 ',
      'Chain sshuttle-t-1025 ',
      'Chain sshuttle-t-1025 ',
      'Chain sshuttle-d-1025 ',
      'Chain sshuttle-d-1025 ',
      '1025:',
      'local default dev lo table 100',
    ]);
    expect(steps[0]?.when?.argv).toEqual([...m4, '-nL']);
    expect(steps[8]?.when?.argv).toEqual([
      'ip',
      '-4',
      'rule',
      'list',
      'fwmark',
      '0x01',
      'lookup',
      '100',
    ]);
    expect(steps[9]?.when?.argv).toEqual([
      'ip',
      '-4',
      'route',
      'show',
      'table',
      'all',
      'metric',
      '1025',
    ]);
  });

  it('IPv6: ip6tables and ip -6, port ranges on both protocols, a nameserver as /128 (upstream: /32)', () => {
    const a = argvs(planSetup('tproxy', 6, upstreamV6));
    expect(a.every((s) => s[0] === 'ip6tables' || (s[0] === 'ip' && s[1] === '-6'))).toBe(true);
    expect(a).toContainEqual([
      ...m6,
      '-A',
      'sshuttle-t-1024',
      '-j',
      'TPROXY',
      '--tproxy-mark',
      '0x01',
      '--dest',
      '2404:6800:4004:80c::33/128',
      '-m',
      'udp',
      '-p',
      'udp',
      '--dport',
      '53',
      '--on-port',
      '1026',
    ]);
    expect(a.slice(-10, -2)).toEqual([
      [
        ...m6,
        '-A',
        'sshuttle-m-1024',
        '-j',
        'RETURN',
        '--dest',
        '2404:6800:4004:80c::101f/128',
        '-m',
        'tcp',
        '-p',
        'tcp',
        '--dport',
        '8080:8080',
      ],
      [
        ...m6,
        '-A',
        'sshuttle-t-1024',
        '-j',
        'RETURN',
        '--dest',
        '2404:6800:4004:80c::101f/128',
        '-m',
        'tcp',
        '-p',
        'tcp',
        '--dport',
        '8080:8080',
      ],
      [
        ...m6,
        '-A',
        'sshuttle-m-1024',
        '-j',
        'RETURN',
        '--dest',
        '2404:6800:4004:80c::101f/128',
        '-m',
        'udp',
        '-p',
        'udp',
        '--dport',
        '8080:8080',
      ],
      [
        ...m6,
        '-A',
        'sshuttle-t-1024',
        '-j',
        'RETURN',
        '--dest',
        '2404:6800:4004:80c::101f/128',
        '-m',
        'udp',
        '-p',
        'udp',
        '--dport',
        '8080:8080',
      ],
      [
        ...m6,
        '-A',
        'sshuttle-m-1024',
        '-j',
        'MARK',
        '--set-mark',
        '0x01',
        '--dest',
        '2404:6800:4004:80c::/64',
        '-m',
        'tcp',
        '-p',
        'tcp',
        '--dport',
        '8000:9000',
      ],
      [
        ...m6,
        '-A',
        'sshuttle-t-1024',
        '-j',
        'TPROXY',
        '--tproxy-mark',
        '0x01',
        '--dest',
        '2404:6800:4004:80c::/64',
        '-m',
        'tcp',
        '-p',
        'tcp',
        '--dport',
        '8000:9000',
        '--on-port',
        '1024',
      ],
      [
        ...m6,
        '-A',
        'sshuttle-m-1024',
        '-j',
        'MARK',
        '--set-mark',
        '0x01',
        '--dest',
        '2404:6800:4004:80c::/64',
        '-m',
        'udp',
        '-p',
        'udp',
        '--dport',
        '8000:9000',
      ],
      [
        ...m6,
        '-A',
        'sshuttle-t-1024',
        '-j',
        'TPROXY',
        '--tproxy-mark',
        '0x01',
        '--dest',
        '2404:6800:4004:80c::/64',
        '-m',
        'udp',
        '-p',
        'udp',
        '--dport',
        '8000:9000',
        '--on-port',
        '1024',
      ],
    ]);
    expect(a.slice(-2)).toEqual([...routingAdded(6, 1024)]);
  });

  it('--tmark goes into MARK, TPROXY and the ip rule; without UDP no udp rules', () => {
    const a = argvs(planSetup('tproxy', 4, { ...upstreamV4, tmark: '0x2a', udp: false }));
    expect(a.filter((s) => s.includes('--set-mark')).every((s) => s.includes('0x2a'))).toBe(true);
    expect(a.filter((s) => s.includes('TPROXY')).every((s) => s.includes('0x2a'))).toBe(true);
    expect(a).toContainEqual([
      'ip',
      '-4',
      'rule',
      'add',
      'fwmark',
      '0x2a',
      'lookup',
      '100',
      'priority',
      '1025',
    ]);
    // only the DNS capture is UDP
    expect(a.filter((s) => s.includes('udp')).every((s) => s.includes('53'))).toBe(true);
  });

  it('checkRequest accepts UDP for tproxy only', () => {
    expect(checkRequest('tproxy', upstreamV4)._tag).toBe('Right');
    expect(checkRequest('nat', upstreamV4)).toEqual({
      _tag: 'Left',
      left: 'UDP is not supported by the nat method (use tproxy or nft-tproxy)',
    });
  });

  it('rule priority / route metric: the port when below main (32766), else derived', () => {
    expect(tproxyPriority(12300)).toBe(12300);
    expect(tproxyPriority(9001)).toBe(9001);
    expect(tproxyPriority(40000)).toBe(11000);
    expect(tproxyPriority(80)).toBe(1080);
  });

  it('preflight: a scratch chain tries the socket match and the TPROXY target, then goes', () => {
    const p = planTproxyPreflight(4, 77);
    expect(p.checks.map((c) => c.step.argv)).toEqual([
      [...m4, '-N', 'sshuttle-probe-77'],
      [...m4, '-A', 'sshuttle-probe-77', '-m', 'socket', '-j', 'RETURN'],
      [
        ...m4,
        '-A',
        'sshuttle-probe-77',
        '-p',
        'tcp',
        '-j',
        'TPROXY',
        '--on-port',
        '1',
        '--tproxy-mark',
        '0x1',
      ],
    ]);
    expect(p.checks[1]?.missing).toMatch(/"socket" match.*xt_socket/);
    expect(p.checks[2]?.missing).toMatch(/TPROXY target.*xt_TPROXY/);
    expect(argvs(p.cleanup)).toEqual([
      [...m4, '-F', 'sshuttle-probe-77'],
      [...m4, '-X', 'sshuttle-probe-77'],
    ]);
    expect(planTproxyPreflight(6, 77).checks[0]?.step.argv[0]).toBe('ip6tables');
  });
});

// ---------------------------------------------------------------------------
// properties
// ---------------------------------------------------------------------------

const arbRequest = tproxyRequestArb;

const familyArb = fc.constantFrom<Family>(4, 6);

/** The subnet rules in `chain` for `proto`, read back from the argv lists (a plan without DNS). */
const subnetRulesOf = (family: Family, steps: readonly Step[], chain: string, proto: string) =>
  steps.flatMap((s): SubnetRule[] => {
    const a = s.argv;
    if (a[4] !== '-A' || a[5] !== chain || !a.includes('--dest')) return [];
    if (a[a.indexOf('-p') + 1] !== proto) return [];
    const [ip = '', width = ''] = (a[a.indexOf('--dest') + 1] ?? '').split('/');
    const dport = a.includes('--dport') ? (a[a.indexOf('--dport') + 1] ?? '') : '0:0';
    const [f = 0, l = f] = dport.split(':').map(Number);
    return [rule(family, ip, Number(width), a.includes('RETURN'), f, l)];
  });

describe('tproxy plan properties', () => {
  it('subnet rules appear once per chain and protocol, in firstMatchOrder (udp only with UDP)', () => {
    fc.assert(
      fc.property(familyArb, arbRequest, (family, req) => {
        const noDns = { ...req, nameservers: [] };
        const port = family === 4 ? req.ports.tcp4 : req.ports.tcp6;
        const steps = planSetup('tproxy', family, noDns);
        const want = firstMatchOrder(req.subnets.filter((r) => r.family === family));
        const { mark, tproxy } = tproxyChains(port);
        for (const chain of [mark, tproxy]) {
          expect(subnetRulesOf(family, steps, chain, 'tcp')).toEqual(want);
          expect(subnetRulesOf(family, steps, chain, 'udp')).toEqual(req.udp ? want : []);
        }
      }),
    );
  });

  it('setup starts with restore; restore removes every chain, jump, ip rule and route setup adds', () => {
    fc.assert(
      fc.property(familyArb, arbRequest, (family, req) => {
        const setup = planSetup('tproxy', family, req);
        const restore = planRestore('tproxy', family, req);
        expect(setup.slice(0, restore.length)).toEqual(restore);
        expect(restore.every((s) => s.when !== undefined)).toBe(true);
        const built = setup.slice(restore.length);
        const ipt = built.filter((s) => s.argv[0] !== 'ip');
        const { created, removed, inserted, deleted, appendedTo } = iptablesPairs(ipt, restore);
        expect([...removed].sort()).toEqual([...created].sort());
        expect(deleted).toEqual(inserted);
        // appended rules go only into chains we created
        expect(appendedTo.every((c) => created.includes(c))).toBe(true);
        // ip rule/route: every add has a del with the very same spec
        const added = built
          .filter((s) => s.argv[0] === 'ip')
          .map((s) => [s.argv[1], s.argv[2], ...s.argv.slice(4)].join(' '));
        const dels = restore
          .filter((s) => s.argv[0] === 'ip')
          .map((s) => [s.argv[1], s.argv[2], ...s.argv.slice(4)].join(' '));
        expect([...dels].sort()).toEqual([...added].sort());
        expect(built.filter((s) => s.argv[0] === 'ip').map((s) => s.argv[3])).toEqual([
          'add',
          'add',
        ]);
        // every step of the family's plan is for that family only
        const fam = family === 4 ? ['iptables', '-4'] : ['ip6tables', '-6'];
        expect(
          setup.every((s) =>
            fam.includes(s.argv[0] === 'ip' ? (s.argv[1] ?? '') : (s.argv[0] ?? '')),
          ),
        ).toBe(true);
      }),
    );
  });

  it('every nameserver of the family is marked and diverted to the DNS port as a host address', () => {
    fc.assert(
      fc.property(familyArb, arbRequest, (family, req) => {
        const steps = planSetup('tproxy', family, req);
        const dnsport = String(family === 4 ? req.ports.dns4 : req.ports.dns6);
        const mine = req.nameservers.filter((n) => n.family === family);
        const w = family === 4 ? 32 : 128;
        for (const ns of mine) {
          const hits = steps.filter(
            (s) => s.argv.includes(`${ns.ip}/${w}`) && s.argv.includes('53'),
          );
          expect(hits.filter((s) => s.argv.includes('MARK')).length).toBeGreaterThanOrEqual(1);
          expect(
            hits.filter((s) => s.argv.includes('TPROXY') && s.argv.at(-1) === dnsport).length,
          ).toBeGreaterThanOrEqual(1);
        }
      }),
    );
  });
});
