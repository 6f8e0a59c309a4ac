import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { autoNets, parseIpRoute, parseNetstat } from '../../src/domain/routes.js';

const r = (ip: string, width: number) => ({
  family: ip.includes(':') ? 6 : 4,
  ip,
  width,
  exclude: false,
  fport: 0,
  lport: 0,
});

describe('auto-nets', () => {
  it('reads ip route and ip -6 route output, skipping default and host-less lines', () => {
    const v4 = [
      'default via 198.51.100.254 dev s0',
      '198.51.100.0/24 dev s0 proto kernel scope link src 198.51.100.1',
      '203.0.113.0/24 dev s1 proto kernel scope link src 203.0.113.1',
      '10.1.2.3/8 via 203.0.113.9 dev s1',
    ].join('\n');
    const v6 =
      '2001:db8:2::/64 dev s1 proto kernel metric 256 pref medium\nfe80::/64 dev s1 proto kernel metric 256\n';
    expect([...parseIpRoute(v4), ...parseIpRoute(v6)]).toEqual([
      r('198.51.100.0', 24),
      r('203.0.113.0', 24),
      r('10.0.0.0', 8),
      r('2001:db8:2::', 64),
      r('fe80::', 64),
    ]);
  });

  it('reads netstat -rn where there is no ip command', () => {
    const text = [
      'Kernel IP routing table',
      'Destination     Gateway         Genmask         Flags   MSS Window  irtt Iface',
      '0.0.0.0         198.51.100.254  0.0.0.0         UG        0 0          0 s0',
      '203.0.113.0     0.0.0.0         255.255.255.0   U         0 0          0 s1',
    ].join('\n');
    expect(parseNetstat(text)).toEqual([r('203.0.113.0', 24)]);
  });

  it("never captures loopback, link-local, multicast, or the ssh server's own path", () => {
    const routes = [
      r('198.51.100.0', 24),
      r('203.0.113.0', 24),
      r('127.0.0.0', 8),
      r('fe80::', 64),
      r('ff00::', 8),
      r('203.0.113.0', 24),
    ] as never[];
    expect(autoNets(routes, ['198.51.100.1'])).toEqual([r('203.0.113.0', 24)]);
  });

  it('never throws on any text', () => {
    fc.assert(
      fc.property(fc.string(), (text) => {
        parseIpRoute(text);
        parseNetstat(text);
      }),
    );
  });
});
