import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { encodeFrame } from '../../src/domain/mux/index.js';
import {
  autoNets,
  parseIpRoute,
  parseNetstat,
  routesFromWire,
  routesToWire,
} from '../../src/domain/routes.js';
import type { SubnetRule } from '../../src/domain/subnet.js';

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

describe('ROUTES (the helper transport)', () => {
  it("the server's ip route / ip -6 route become sshuttle's exact ROUTES payload", () => {
    const v4 = [
      'default via 198.51.100.254 dev s0',
      '198.51.100.0/24 dev s0 proto kernel scope link src 198.51.100.1',
      '203.0.113.0/24 dev s1 proto kernel scope link src 203.0.113.1',
      '127.0.0.0/8 dev lo',
    ].join('\n');
    const v6 = '2001:db8:2::/64 dev s1 proto kernel metric 256\nfe80::/64 dev s1 metric 256\n';
    const routes = autoNets([...parseIpRoute(v4), ...parseIpRoute(v6)], []);
    const frame = encodeFrame({ kind: 'ROUTES', channel: 0, routes: routesToWire(routes) });
    const text = '2,198.51.100.0,24\n2,203.0.113.0,24\n10,2001:db8:2::,64\n';
    expect(frame.subarray(0, 8).toString('hex')).toBe(
      `5353000042070${text.length.toString(16).padStart(3, '0')}`,
    );
    expect(frame.subarray(8).toString('latin1')).toBe(text);
  });

  it('reads what a stock server sends (IPv4 lines), masking and dropping what does not fit', () => {
    expect(
      routesFromWire([
        { family: 2, ip: '10.1.2.3', width: 8 },
        { family: 2, ip: '2001:db8::', width: 64 },
        { family: 10, ip: '10.0.0.0', width: 8 },
        { family: 2, ip: '10.0.0.0', width: 33 },
        { family: 30, ip: '2001:db8:1::', width: 48 },
        { family: 2, ip: '1.2.3', width: 24 },
      ]),
    ).toEqual([r('10.0.0.0', 8), r('2001:db8:1::', 48)]);
  });

  const rule = fc.oneof(
    fc.tuple(fc.ipV4(), fc.integer({ min: 1, max: 32 })).map(([ip, w]) => r(ip, w) as SubnetRule),
    fc.tuple(fc.ipV6(), fc.integer({ min: 1, max: 128 })).map(([ip, w]) => r(ip, w) as SubnetRule),
  );
  it('a route table survives the wire (masked), for IPv4 and IPv6', () => {
    fc.assert(
      fc.property(fc.array(rule, { maxLength: 30 }), (rules) => {
        const masked = parseIpRoute(rules.map((x) => `${x.ip}/${x.width} dev x`).join('\n'));
        expect(routesFromWire(routesToWire(masked))).toEqual(masked);
      }),
    );
  });

  it('never more routes than fit in one frame', () => {
    const many = Array.from({ length: 5000 }, (_, i) => r(`10.${i >> 8}.${i & 255}.0`, 24));
    const wire = routesToWire(many as SubnetRule[]);
    expect(wire.length).toBeLessThan(5000);
    expect(() => encodeFrame({ kind: 'ROUTES', channel: 0, routes: wire })).not.toThrow();
  });
});
