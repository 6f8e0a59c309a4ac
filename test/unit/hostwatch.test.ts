import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isUsableHostIp } from '../../src/domain/hosts-file.js';
import {
  addressesSeen,
  DEFAULT_HOSTWATCH_LIMITS,
  type HostwatchCommand,
  type HostwatchState,
  hostListChunks,
  parseNeighbours,
  reduceHostwatch,
  routeGateways,
  startHostwatch,
} from '../../src/domain/hostwatch.js';
import { encodeFrame } from '../../src/domain/mux/index.js';

const runs = (cmds: readonly HostwatchCommand[]) =>
  cmds.flatMap((c) => (c.kind === 'run' ? [c.key] : []));
const emitted = (cmds: readonly HostwatchCommand[]) =>
  cmds.flatMap((c) => (c.kind === 'emit' ? c.entries : []));

describe('hostwatch discovery', () => {
  it('seeds only: a forward look-up per name, a reverse per address; no tables', () => {
    const s = startHostwatch({
      seeds: ['db.lab.test', '203.0.113.9'],
      autoHosts: false,
      hostname: 'srv',
    });
    const [, cmds] = reduceHostwatch(s, { kind: 'tick', t: 0 });
    expect(runs(cmds)).toEqual(['forward db.lab.test', 'reverse 203.0.113.9']);
  });

  it('-H: /etc/hosts, what the server sees, its own name', () => {
    const s = startHostwatch({ seeds: [], autoHosts: true, hostname: 'srv' });
    const [, cmds] = reduceHostwatch(s, { kind: 'tick', t: 0 });
    expect(runs(cmds)).toEqual(['hosts', 'neighbours', 'forward srv']);
  });

  it('sends each name once with its short name, crawls to counterparts, resends a changed address', () => {
    let s = startHostwatch({ seeds: [], autoHosts: true, hostname: null });
    [s] = reduceHostwatch(s, { kind: 'tick', t: 0 });
    let cmds: readonly HostwatchCommand[];
    [s, cmds] = reduceHostwatch(s, {
      kind: 'done',
      key: 'hosts',
      found: [
        { name: 'web.lab.test', ip: '203.0.113.2' },
        { name: 'localhost', ip: '127.0.0.1' },
        { name: 'bad name', ip: '203.0.113.3' },
      ],
      seen: [],
    });
    expect(emitted(cmds)).toEqual([
      { name: 'web.lab.test', ip: '203.0.113.2' },
      { name: 'web', ip: '203.0.113.2' },
    ]);
    // The neighbour table: the address already known and a new one to look up.
    [s, cmds] = reduceHostwatch(s, {
      kind: 'done',
      key: 'neighbours',
      found: [],
      seen: ['203.0.113.2', '203.0.113.8', 'fe80::1', '127.0.0.1'],
    });
    expect(emitted(cmds)).toEqual([]);
    [s, cmds] = reduceHostwatch(s, { kind: 'tick', t: 1000 });
    expect(runs(cmds)).toEqual([
      'forward web.lab.test',
      'reverse 203.0.113.2',
      'reverse 203.0.113.8',
    ]);
    [s, cmds] = reduceHostwatch(s, {
      kind: 'done',
      key: 'reverse 203.0.113.8',
      found: [{ name: 'nas.lab.test', ip: '203.0.113.8' }],
      seen: [],
    });
    expect(emitted(cmds).map((h) => h.name)).toEqual(['nas.lab.test', 'nas']);
    // Found again: nothing new. A new address: sent again.
    [s, cmds] = reduceHostwatch(s, {
      kind: 'done',
      key: 'reverse 203.0.113.2',
      found: [{ name: 'web.lab.test', ip: '203.0.113.2' }],
      seen: [],
    });
    expect(emitted(cmds)).toEqual([]);
    [s, cmds] = reduceHostwatch(s, {
      kind: 'done',
      key: 'forward web.lab.test',
      found: [{ name: 'web.lab.test', ip: '2001:db8:2::2' }],
      seen: [],
    });
    expect(emitted(cmds)).toEqual([
      { name: 'web.lab.test', ip: '2001:db8:2::2' },
      { name: 'web', ip: '2001:db8:2::2' },
    ]);
  });

  it('runs tables again after tableEveryMs and look-ups after lookupEveryMs, never twice at once', () => {
    let s = startHostwatch({ seeds: ['a.test'], autoHosts: true, hostname: null });
    let cmds: readonly HostwatchCommand[];
    [s, cmds] = reduceHostwatch(s, { kind: 'tick', t: 0 });
    expect(runs(cmds)).toEqual(['forward a.test', 'hosts', 'neighbours']);
    [s, cmds] = reduceHostwatch(s, { kind: 'tick', t: 60_000 });
    expect(runs(cmds)).toEqual([]); // all still running
    for (const key of ['forward a.test', 'hosts', 'neighbours']) {
      [s] = reduceHostwatch(s, { kind: 'done', key, found: [], seen: [] });
    }
    [s, cmds] = reduceHostwatch(s, { kind: 'tick', t: 29_999 });
    expect(runs(cmds)).toEqual([]);
    [s, cmds] = reduceHostwatch(s, { kind: 'tick', t: 30_000 });
    expect(runs(cmds)).toEqual(['hosts', 'neighbours']);
    [s, cmds] = reduceHostwatch(s, { kind: 'tick', t: 15 * 60_000 });
    expect(runs(cmds)).toEqual(['forward a.test']);
  });

  // Any sequence of ticks and results (job keys from those asked for).
  const pair = fc.record({
    name: fc.constantFrom('a', 'b.x', 'c.y.z', 'bad name', 'localhost', 'n'),
    ip: fc.oneof(fc.ipV4(), fc.ipV6(), fc.constant('127.0.0.1')),
  });
  const step = fc.oneof(
    fc.record({ kind: fc.constant('tick' as const), dt: fc.integer({ min: 0, max: 100_000 }) }),
    fc.record({
      kind: fc.constant('done' as const),
      pick: fc.nat(),
      found: fc.array(pair, { maxLength: 6 }),
      seen: fc.array(fc.oneof(fc.ipV4(), fc.ipV6()), { maxLength: 6 }),
    }),
  );
  it('bounded: jobs, names and running jobs never exceed their limits; every name sent is usable', () => {
    const limits = { ...DEFAULT_HOSTWATCH_LIMITS, maxJobs: 20, maxNames: 15, maxInFlight: 3 };
    fc.assert(
      fc.property(fc.array(step, { maxLength: 60 }), (steps) => {
        let s: HostwatchState = startHostwatch({
          seeds: ['s1.test', '10.0.0.1'],
          autoHosts: true,
          hostname: 'me',
          limits,
        });
        let t = 0;
        const running: string[] = [];
        const sent = new Map<string, string>();
        for (const st of steps) {
          let cmds: readonly HostwatchCommand[];
          if (st.kind === 'tick') {
            t += st.dt;
            [s, cmds] = reduceHostwatch(s, { kind: 'tick', t });
            running.push(...runs(cmds));
          } else {
            if (running.length === 0) continue;
            const [key] = running.splice(st.pick % running.length, 1);
            [s, cmds] = reduceHostwatch(s, {
              kind: 'done',
              key: key!,
              found: st.found,
              seen: st.seen,
            });
          }
          for (const h of emitted(cmds)) {
            expect(sent.get(h.name)).not.toBe(h.ip);
            expect(h.name).toMatch(/^[-A-Za-z0-9_.]+$/);
            expect(h.name).not.toMatch(/^localhost/);
            expect(h.ip).not.toMatch(/^127\./);
            sent.set(h.name, h.ip);
          }
          expect(s.jobs.size).toBeLessThanOrEqual(limits.maxJobs);
          expect(s.names.size).toBeLessThanOrEqual(limits.maxNames);
          expect(s.inFlight).toBe(running.length);
          expect(s.inFlight).toBeLessThanOrEqual(limits.maxInFlight);
          expect(new Set(running).size).toBe(running.length);
        }
      }),
    );
  });
});

describe('what the server sees', () => {
  it('reads ip neigh and /proc/net/arp, skipping entries that never resolved', () => {
    const neigh = [
      '203.0.113.2 dev s1 lladdr 1a:2b:3c:4d:5e:6f REACHABLE',
      '198.51.100.2 dev s0 lladdr 1a:2b:3c:4d:5e:70 STALE',
      '203.0.113.99 dev s1 FAILED',
      '203.0.113.98 dev s1 INCOMPLETE',
      'fe80::1 dev s0 lladdr 1a:2b:3c:4d:5e:71 router STALE',
      '2001:db8:2::2 dev s1 lladdr 1a:2b:3c:4d:5e:6f REACHABLE',
    ].join('\n');
    expect(parseNeighbours(neigh)).toEqual([
      '203.0.113.2',
      '198.51.100.2',
      'fe80::1',
      '2001:db8:2::2',
    ]);
    const arp = [
      'IP address       HW type     Flags       HW address            Mask     Device',
      '203.0.113.2      0x1         0x2         1a:2b:3c:4d:5e:6f     *        s1',
      '203.0.113.97     0x1         0x0         00:00:00:00:00:00     *        s1',
    ].join('\n');
    expect(parseNeighbours(arp)).toEqual(['203.0.113.2']);
  });

  it('finds the gateways of the routing table', () => {
    const routes = [
      'default via 198.51.100.254 dev s0',
      '10.0.0.0/8 via 203.0.113.9 dev s1',
      '10.0.0.0/8 via 203.0.113.9 dev s1 metric 5',
      '2001:db8:9::/48 via inet6 2001:db8:2::9 dev s1',
      '203.0.113.0/24 dev s1 proto kernel scope link src 203.0.113.1',
    ].join('\n');
    expect(routeGateways(routes)).toEqual(['198.51.100.254', '203.0.113.9', '2001:db8:2::9']);
  });

  it('addresses to look up in reverse: neighbours then gateways, usable, once, bounded', () => {
    const neigh = '203.0.113.2 dev s1 lladdr 1a REACHABLE\nfe80::1 dev s0 lladdr 1b STALE\n';
    const routes = 'default via 203.0.113.2 dev s1\n10.0.0.0/8 via 203.0.113.9 dev s1\n';
    expect(addressesSeen(neigh, routes, 10)).toEqual(['203.0.113.2', '203.0.113.9']);
    expect(addressesSeen(neigh, routes, 1)).toEqual(['203.0.113.2']);
  });

  it('never throws on any text, and yields only shell-safe IP literals', () => {
    fc.assert(
      fc.property(fc.string(), fc.string(), (a, b) => {
        parseNeighbours(a);
        routeGateways(a);
        for (const ip of addressesSeen(a, b, 100)) {
          expect(ip).toMatch(/^[0-9A-Fa-f:.]+$/);
          expect(isUsableHostIp(ip)).toBe(true);
        }
      }),
    );
    expect(addressesSeen('2001:db8::1%$(reboot) dev x\n', 'via 2001:db8::2%eth0', 9)).toEqual([]);
  });
});

describe('HOST_LIST chunks', () => {
  it('cut a long list into frames that fit, in order, losing nothing', () => {
    const entries = Array.from({ length: 5000 }, (_, i) => ({
      name: `host-${i}.example.test`,
      ip: `10.${i >> 8}.${i & 255}.1`,
    }));
    const chunks = hostListChunks(entries);
    expect(chunks.length).toBeGreaterThan(1);
    expect(chunks.flat()).toEqual(entries);
    for (const c of chunks) {
      expect(() => encodeFrame({ kind: 'HOST_LIST', channel: 0, entries: c })).not.toThrow();
    }
  });

  it('property: every chunk fits its limit and the concatenation is the input', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ name: fc.string({ minLength: 1, maxLength: 40 }), ip: fc.ipV4() })),
        fc.integer({ min: 60, max: 400 }),
        (entries, max) => {
          const chunks = hostListChunks(entries, max);
          expect(chunks.flat()).toEqual(entries);
          for (const c of chunks) {
            expect(c.reduce((n, e) => n + e.name.length + e.ip.length + 2, 0)).toBeLessThanOrEqual(
              max,
            );
          }
        },
      ),
    );
  });
});
