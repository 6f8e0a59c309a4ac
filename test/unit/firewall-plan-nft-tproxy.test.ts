/**
 * The nft-tproxy plan: a golden for upstream's tproxy test case written for
 * nftables, the preflight, and properties: it captures exactly what the
 * iptables tproxy plan captures (same subnets, protocols, ports, excludes,
 * nameservers, in the same order), and restore removes what setup adds.
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
  nftTproxyTable,
  planNftTproxyPreflight,
} from '../../src/domain/firewall-plan-nft-tproxy.js';
import { tproxyChains } from '../../src/domain/firewall-plan-tproxy.js';
import type { Family } from '../../src/domain/subnet.js';
import { request, rule, tproxyRequestArb } from './fixtures/firewall-requests.js';

const argvs = (steps: readonly Step[]) => steps.map((s) => [...s.argv]);

/** Upstream's tproxy unit-test case (v4 part), as in firewall-plan-tproxy.test.ts. */
const upstreamV4 = request({
  udp: true,
  subnets: [rule(4, '1.2.3.0', 24, false), rule(4, '1.2.3.66', 32, true, 80, 80)],
  nameservers: [{ family: 4, ip: '1.2.3.33' }],
  ports: { tcp4: 1025, tcp6: 0, dns4: 1027, dns6: 0 },
});

const T = 'sshuttle-tproxy-ipv4-1025';

describe('nft-tproxy plan: golden', () => {
  it('IPv4: restore, table, hooked chains, guard, DNS, local return, TCP divert, subnets tcp+udp, routing', () => {
    const lines = argvs(planSetup('nft-tproxy', 4, upstreamV4)).map((a) => a.join(' '));
    const rule = (chain: string, text: string) => `nft add rule inet ${T} ${chain} ${text}`;
    const mark = 'meta mark set 0x01';
    expect(lines).toEqual([
      `nft delete table inet ${T}`,
      'ip -4 rule del fwmark 0x01 lookup 100 priority 1025',
      'ip -4 route del local default dev lo table 100 metric 1025',
      `nft add table inet ${T}`,
      `nft add chain inet ${T} output { type route hook output priority mangle; policy accept; }`,
      `nft add chain inet ${T} prerouting { type filter hook prerouting priority mangle; policy accept; }`,
      `nft add chain inet ${T} route_to_lo`,
      `nft add chain inet ${T} divert`,
      rule('output', 'jump route_to_lo'),
      rule('prerouting', 'jump divert'),
      rule('route_to_lo', 'meta nfproto != ipv4 return'),
      rule('divert', 'meta nfproto != ipv4 return'),
      rule('route_to_lo', `ip daddr 1.2.3.33/32 udp dport 53 ${mark} return`),
      rule('divert', `ip daddr 1.2.3.33/32 udp dport 53 tproxy ip to :1027 ${mark} accept`),
      rule('route_to_lo', 'fib daddr type local return'),
      rule('divert', 'fib daddr type local return'),
      rule('divert', `meta l4proto tcp socket transparent 1 ${mark} accept`),
      // first match: the /32 exclude before the /24
      rule('route_to_lo', 'ip daddr 1.2.3.66/32 tcp dport 80 return'),
      rule('divert', 'ip daddr 1.2.3.66/32 tcp dport 80 return'),
      rule('route_to_lo', 'ip daddr 1.2.3.66/32 udp dport 80 return'),
      rule('divert', 'ip daddr 1.2.3.66/32 udp dport 80 return'),
      rule('route_to_lo', `ip daddr 1.2.3.0/24 meta l4proto tcp ${mark} return`),
      rule('divert', `ip daddr 1.2.3.0/24 meta l4proto tcp tproxy ip to :1025 ${mark} accept`),
      rule('route_to_lo', `ip daddr 1.2.3.0/24 meta l4proto udp ${mark} return`),
      rule('divert', `ip daddr 1.2.3.0/24 meta l4proto udp tproxy ip to :1025 ${mark} accept`),
      'ip -4 route add local default dev lo table 100 metric 1025',
      'ip -4 rule add fwmark 0x01 lookup 100 priority 1025',
    ]);
  });

  it('IPv6: ip6 matches, tproxy ip6, port ranges as nft ranges, a nameserver as /128', () => {
    const req = request({
      subnets: [rule(6, '2001:db8::', 32, false, 8000, 9000)],
      nameservers: [{ family: 6, ip: '2001:db8::53%eth0' }],
      ports: { tcp4: 0, tcp6: 1024, dns4: 0, dns6: 1026 },
    });
    const a = argvs(planSetup('nft-tproxy', 6, req)).map((w) => w.join(' '));
    expect(a).toContain(
      'nft add rule inet sshuttle-tproxy-ipv6-1024 divert ip6 daddr 2001:db8::/32 tcp dport 8000-9000 tproxy ip6 to :1024 meta mark set 0x01 accept',
    );
    expect(a).toContain(
      'nft add rule inet sshuttle-tproxy-ipv6-1024 divert ip6 daddr 2001:db8::53/128 udp dport 53 tproxy ip6 to :1026 meta mark set 0x01 accept',
    );
    expect(a.some((l) => l.includes('udp dport 8000'))).toBe(false); // no UDP asked for
    expect(a.at(-1)).toBe('ip -6 rule add fwmark 0x01 lookup 100 priority 1024');
  });

  it('restore: the table only if listed, then our rule and route only if listed', () => {
    const r = planRestore('nft-tproxy', 4, upstreamV4);
    expect(r[0]).toEqual({
      argv: ['nft', 'delete', 'table', 'inet', T],
      fatal: true,
      when: { argv: ['nft', 'list', 'tables'], line: `table inet ${T}`, match: 'exact' },
    });
    expect(r.every((s) => s.when !== undefined)).toBe(true);
  });

  it('checkRequest accepts UDP for nft-tproxy', () => {
    expect(checkRequest('nft-tproxy', upstreamV4)._tag).toBe('Right');
  });

  it('preflight: a scratch table tries the socket and tproxy expressions, then goes', () => {
    const p = planNftTproxyPreflight(6, 77);
    expect(p.checks.map((c) => c.step.argv.join(' '))).toEqual([
      'nft add table inet sshuttle-probe-77',
      'nft add chain inet sshuttle-probe-77 p { type filter hook prerouting priority mangle; policy accept; }',
      'nft add rule inet sshuttle-probe-77 p meta l4proto tcp socket transparent 1 accept',
      'nft add rule inet sshuttle-probe-77 p meta l4proto tcp tproxy ip6 to :1',
    ]);
    expect(p.checks[2]?.missing).toMatch(/socket.*nft_socket/);
    expect(p.checks[3]?.missing).toMatch(/IPv6.*tproxy.*nft_tproxy/);
    expect(p.cleanup).toEqual([
      {
        argv: ['nft', 'delete', 'table', 'inet', 'sshuttle-probe-77'],
        fatal: false,
        when: {
          argv: ['nft', 'list', 'tables'],
          line: 'table inet sshuttle-probe-77',
          match: 'exact',
        },
      },
    ]);
  });
});

// ---------------------------------------------------------------------------
// properties
// ---------------------------------------------------------------------------

/** One capture decision, method-neutral: what is matched and where it goes. */
interface Decision {
  readonly chain: 'mark' | 'divert';
  readonly net: string;
  readonly proto: string;
  readonly ports: string;
  /** 'return', or the listener port. */
  readonly to: string;
}

/** The iptables plan's decisions for subnets and nameservers (not LOCAL or socket rules). */
const iptablesDecisions = (steps: readonly Step[], port: number): Decision[] => {
  const { mark, tproxy } = tproxyChains(port);
  return steps.flatMap((s): Decision[] => {
    const a = s.argv;
    if (a[4] !== '-A' || !a.includes('--dest')) return [];
    const chain = a[5] === mark ? 'mark' : a[5] === tproxy ? 'divert' : null;
    if (chain === null) return [];
    const ports = a.includes('--dport') ? (a[a.indexOf('--dport') + 1] ?? '') : '';
    const to = a.includes('RETURN')
      ? 'return'
      : chain === 'mark'
        ? 'mark'
        : (a[a.indexOf('--on-port') + 1] ?? '');
    return [
      {
        chain,
        net: a[a.indexOf('--dest') + 1] ?? '',
        proto: a[a.indexOf('-p') + 1] ?? '',
        ports: ports.replace(':', '-').replace(/^(\d+)-\1$/, '$1'),
        to,
      },
    ];
  });
};

const nftDecisions = (steps: readonly Step[]): Decision[] =>
  steps.flatMap((s): Decision[] => {
    const a = s.argv;
    const chain = a[5] === 'route_to_lo' ? 'mark' : a[5];
    if (a[2] !== 'rule' || (chain !== 'mark' && chain !== 'divert')) return [];
    const d = a.indexOf('daddr');
    if (d < 0 || a[d - 1] === 'fib') return [];
    const l4 = a.indexOf('l4proto');
    const proto = l4 >= 0 ? (a[l4 + 1] ?? '') : (a[d + 2] ?? '');
    const ports = a.includes('dport') ? (a[a.indexOf('dport') + 1] ?? '') : '';
    const to = a.includes('tproxy')
      ? (a[a.indexOf('to') + 1] ?? '').slice(1)
      : a.includes('set')
        ? 'mark'
        : 'return';
    return [{ chain, net: a[d + 1] ?? '', proto, ports, to }];
  });

const familyArb = fc.constantFrom<Family>(4, 6);

describe('nft-tproxy plan properties', () => {
  it('captures exactly what the iptables tproxy plan captures, in the same order', () => {
    fc.assert(
      fc.property(familyArb, tproxyRequestArb, (family, req: FirewallRequest) => {
        const port = family === 4 ? req.ports.tcp4 : req.ports.tcp6;
        const ipt = iptablesDecisions(planSetup('tproxy', family, req), port);
        const nft = nftDecisions(planSetup('nft-tproxy', family, req));
        expect(nft).toEqual(ipt);
      }),
    );
  });

  it('setup starts with restore; restore deletes the one table setup adds and its routing', () => {
    fc.assert(
      fc.property(familyArb, tproxyRequestArb, (family, req) => {
        const setup = planSetup('nft-tproxy', family, req);
        const restore = planRestore('nft-tproxy', family, req);
        expect(setup.slice(0, restore.length)).toEqual(restore);
        const built = setup.slice(restore.length);
        const port = family === 4 ? req.ports.tcp4 : req.ports.tcp6;
        const table = nftTproxyTable(family, port);
        const tables = built.filter((s) => s.argv[1] === 'add' && s.argv[2] === 'table');
        expect(tables.map((s) => s.argv[4])).toEqual([table]);
        expect(restore[0]?.argv).toEqual(['nft', 'delete', 'table', 'inet', table]);
        // every nft step touches our table only
        expect(built.filter((s) => s.argv[0] === 'nft').every((s) => s.argv[4] === table)).toBe(
          true,
        );
        // the routing is the iptables plan's, added and removed alike
        const ipSteps = (steps: readonly Step[]) => steps.filter((s) => s.argv[0] === 'ip');
        expect(ipSteps(planSetup('tproxy', family, req))).toEqual(ipSteps(setup));
        expect(ipSteps(planRestore('tproxy', family, req))).toEqual(ipSteps(restore));
      }),
    );
  });
});
