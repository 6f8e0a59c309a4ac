import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  dnsCapture,
  dnsListenAddresses,
  dnsSourceAllowed,
  withDnsTargets,
} from '../../src/domain/dns-capture.js';
import {
  fitUdpAnswer,
  frameTcp,
  readTcpDns,
  summarizeDns,
  udpAnswerLimit,
} from '../../src/domain/dns-message.js';
import type { Event } from '../../src/domain/events.js';
import { parseResolvConf } from '../../src/domain/resolv-conf.js';
import { initialSession, reduceSession } from '../../src/domain/session.js';
import { dnsQuery } from './fixtures/dns-query.js';
import { foldSession, startupEvents, TARGET_NET_RULE } from './fixtures/session-events.js';

const query = dnsQuery;

const label = fc.stringMatching(/^[a-z0-9-]{1,20}$/);
const name = fc.array(label, { minLength: 1, maxLength: 5 }).map((ls) => ls.join('.'));

describe('DNS messages', () => {
  it('reads id, name and type of any query it builds', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 0xffff }),
        name,
        fc.integer({ min: 1, max: 255 }),
        (id, n, type) => {
          expect(summarizeDns(query(id, n, type))).toEqual({
            _tag: 'Right',
            right: { id, response: false, rcode: 0, name: n, type },
          });
        },
      ),
    );
  });

  it('never throws on junk, and refuses what is not DNS', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        summarizeDns(bytes);
      }),
    );
    expect(summarizeDns(Buffer.from('this is not dns'))._tag).toBe('Left');
    // A compression pointer that points at itself.
    const loop = Buffer.concat([
      query(1, 'a').subarray(0, 12),
      Buffer.from([0xc0, 12, 0, 1, 0, 1]),
    ]);
    expect(summarizeDns(loop)._tag).toBe('Left');
  });

  it('splits a TCP stream into the framed messages however it is cut', () => {
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ maxLength: 600 }), { maxLength: 8 }),
        fc.array(fc.integer({ min: 1, max: 97 }), { minLength: 1, maxLength: 20 }),
        (messages, cuts) => {
          const stream = Buffer.concat(messages.map((m) => frameTcp(m)));
          let pending: Buffer = Buffer.alloc(0);
          const out: Buffer[] = [];
          let pos = 0;
          for (let i = 0; pos < stream.length; i++) {
            const n = cuts[i % cuts.length] ?? 1;
            const [rest, got] = readTcpDns(pending, stream.subarray(pos, pos + n));
            pending = rest;
            out.push(...got);
            pos += n;
          }
          expect(out.map((b) => [...b])).toEqual(messages.map((m) => [...m]));
          expect(pending.length).toBe(0);
        },
      ),
    );
  });
});

describe('answers that came over TCP, going back over UDP', () => {
  const edns = (size: number) => {
    const q = query(9, 'big.lab.test');
    q.writeUInt16BE(1, 10); // one additional record: OPT
    const opt = Buffer.from([0, 0, 41, 0, 0, 0, 0, 0, 0, 0, 0]);
    opt.writeUInt16BE(size, 3);
    return Buffer.concat([q, opt]);
  };

  it('honours the EDNS payload size, else 512', () => {
    expect(udpAnswerLimit(query(1, 'a.b'))).toBe(512);
    expect(udpAnswerLimit(edns(4096))).toBe(4096);
    expect(udpAnswerLimit(edns(100))).toBe(512);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (junk) => {
        expect(udpAnswerLimit(junk)).toBeGreaterThanOrEqual(512);
      }),
    );
  });

  it('truncates a too-big answer to its question with TC set, and leaves one that fits alone', () => {
    const q = query(9, 'big.lab.test');
    const answer = Buffer.concat([q, Buffer.alloc(600, 1)]);
    answer.writeUInt16BE(0x8180, 2);
    answer.writeUInt16BE(20, 6);
    const cut = fitUdpAnswer(answer, 512);
    expect(cut.length).toBe(q.length);
    expect((cut[2] ?? 0) & 0x02).toBe(0x02);
    expect(summarizeDns(cut)).toMatchObject({
      right: { id: 9, name: 'big.lab.test', response: true },
    });
    expect(cut.readUInt16BE(6)).toBe(0);
    expect(fitUdpAnswer(answer, 4096)).toBe(answer);
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 1500 }),
        fc.integer({ min: 512, max: 1400 }),
        (junk, limit) => {
          expect(fitUdpAnswer(junk, limit).length).toBeLessThanOrEqual(
            Math.max(limit, junk.length < 12 ? junk.length : limit),
          );
        },
      ),
    );
  });
});

describe('resolv.conf and what --dns captures', () => {
  it('reads nameservers, keeps IPv6 scopes, skips junk and duplicates', () => {
    const text = [
      '# comment',
      'search lab.test',
      'nameserver 192.0.2.53',
      'nameserver fe80::1%eth0 ; trailing comment',
      'nameserver not-an-ip',
      'nameserver 192.0.2.53',
      '   nameserver 2001:db8::53',
    ].join('\n');
    expect(parseResolvConf(text)).toEqual([
      { family: 4, ip: '192.0.2.53' },
      { family: 6, ip: 'fe80::1%eth0' },
      { family: 6, ip: '2001:db8::53' },
    ]);
  });

  it('--dns takes the resolv.conf servers, --ns-hosts adds its own, --disable-ipv6 drops v6', () => {
    const c = dnsCapture({
      dns: true,
      nsHosts: ['198.51.100.53'],
      disableIpv6: true,
      resolvConfs: ['nameserver 127.0.0.53\nnameserver 2001:db8::53\n', 'nameserver 192.0.2.1\n'],
      linkLocals: [],
    });
    expect(c.nameservers.map((n) => n.ip)).toEqual(['127.0.0.53', '192.0.2.1', '198.51.100.53']);
    expect(c.warnings).toEqual(['--disable-ipv6: not capturing DNS to 2001:db8::53']);
    expect(
      dnsCapture({
        dns: false,
        nsHosts: ['192.0.2.9'],
        disableIpv6: false,
        resolvConfs: [],
        linkLocals: [],
      }).nameservers,
    ).toEqual([{ family: 4, ip: '192.0.2.9' }]);
    expect(
      dnsListenAddresses(c.nameservers, [{ family: 4, ip: '127.0.0.1', port: 12300 }], []),
    ).toEqual([{ family: 4, ip: '127.0.0.1', port: 0 }]);
  });
});

describe('scoped link-local nameservers (issue 5)', () => {
  const linkLocals = [
    { ifname: 'lo0', index: 1, ip: 'fe80::1' },
    { ifname: 'eth0', index: 2, ip: 'fe80::a8bb:ccff:fedd:eeff' },
  ];
  const capture = (resolv: string) =>
    dnsCapture({ dns: true, nsHosts: [], disableIpv6: false, resolvConfs: [resolv], linkLocals });

  it('keeps the scope as the interface name (an index too), drops one without a link-local address', () => {
    const c = capture(
      'nameserver fe80::53%eth0\nnameserver fe80::54%2\nnameserver fe80::55%wlan9\n',
    );
    expect(c.nameservers).toEqual([
      { family: 6, ip: 'fe80::53%eth0' },
      { family: 6, ip: 'fe80::54%eth0' },
    ]);
    expect(c.warnings).toEqual([
      'not capturing DNS to fe80::55%wlan9: wlan9 has no IPv6 link-local address',
    ]);
  });

  it('gets a DNS listener on our link-local address of that interface, once per interface', () => {
    const c = capture('nameserver fe80::53%eth0\nnameserver fe80::54%2\nnameserver 2001:db8::53\n');
    expect(dnsListenAddresses(c.nameservers, [], linkLocals)).toEqual([
      { family: 6, ip: '::1', port: 0 },
      { family: 6, ip: 'fe80::a8bb:ccff:fedd:eeff%eth0', port: 0 },
    ]);
  });

  it('goes to the firewall with the bound listener as its DNAT target', () => {
    const listeners = [
      { family: 6 as const, ip: '::1', port: 12299 },
      { family: 6 as const, ip: 'fe80::a8bb:ccff:fedd:eeff%eth0', port: 12298 },
    ];
    expect(
      withDnsTargets(
        [
          { family: 6, ip: 'fe80::53%eth0' },
          { family: 6, ip: '2001:db8::53' },
        ],
        listeners,
      ),
    ).toEqual([
      { family: 6, ip: 'fe80::53%eth0', via: { ip: 'fe80::a8bb:ccff:fedd:eeff', port: 12298 } },
      { family: 6, ip: '2001:db8::53' },
    ]);
  });

  it('answers on a link-local listener only queries from our own addresses', () => {
    const own = () => new Set(['fe80::a8bb:ccff:fedd:eeff', '::1']);
    const ll = 'fe80::a8bb:ccff:fedd:eeff%eth0';
    expect(dnsSourceAllowed(ll, 'fe80::a8bb:ccff:fedd:eeff%eth0', own)).toBe(true);
    expect(dnsSourceAllowed(ll, 'fe80::b8b7:72ff:fefa:2eb1%eth0', own)).toBe(false);
    // Loopback listeners are not asked (nothing else reaches them; router mode wants the LAN).
    const never = () => {
      throw new Error('not asked');
    };
    expect(dnsSourceAllowed('::1', 'fe80::9%eth0', never)).toBe(true);
  });

  it('the session installs the DNAT target; the family port stays the loopback listener', () => {
    const base = startupEvents(TARGET_NET_RULE);
    const events: Event[] = [
      {
        ...(base[0] as Extract<Event, { kind: 'start' }>),
        nameservers: [{ family: 6, ip: 'fe80::53%eth0' }],
        dnsListen: [
          { family: 6, ip: '::1', port: 0 },
          { family: 6, ip: 'fe80::1%eth0', port: 0 },
        ],
      },
      base[1] as Event,
      base[2] as Event,
      { kind: 'dns.listening', t: 2, family: 6, ip: '::1', port: 12299 },
      { kind: 'dns.listening', t: 2, family: 6, ip: 'fe80::1%eth0', port: 12300 },
      base[3] as Event,
    ];
    const { last } = foldSession(events);
    expect(last[0]).toMatchObject({
      kind: 'fw.setup',
      nameservers: [{ family: 6, ip: 'fe80::53%eth0', via: { ip: 'fe80::1', port: 12300 } }],
      ports: { dns6: 12299 },
    });
  });

  it('with tproxy no link-local listener is bound (its rules divert by routing)', () => {
    const base = startupEvents(TARGET_NET_RULE);
    const { commands } = foldSession([
      {
        ...(base[0] as Extract<Event, { kind: 'start' }>),
        nameservers: [{ family: 6, ip: 'fe80::53%eth0' }],
        dnsListen: [
          { family: 6, ip: '::1', port: 0 },
          { family: 6, ip: 'fe80::1%eth0', port: 0 },
        ],
      },
      { kind: 'fw.ready', t: 1, method: 'tproxy' },
    ]);
    expect(commands[1]).toContainEqual(
      expect.objectContaining({ kind: 'listen', dns: [{ family: 6, ip: '::1', port: 0 }] }),
    );
  });

  it.each(['tproxy', 'nft-tproxy'])(
    'with %s a scoped link-local nameserver is named in a warning and left out of the rules',
    (method) => {
      const base = startupEvents(TARGET_NET_RULE);
      const { commands, state } = foldSession([
        {
          ...(base[0] as Extract<Event, { kind: 'start' }>),
          nameservers: [
            { family: 6, ip: 'fe80::53%eth0' },
            { family: 6, ip: '2001:db8::53' },
          ],
          dnsListen: [{ family: 6, ip: '::1', port: 0 }],
        },
        { kind: 'fw.ready', t: 1, method },
      ]);
      expect(commands[1]).toContainEqual({
        kind: 'log',
        level: 'warn',
        msg: `nameserver fe80::53%eth0 is link-local with a scope: --method ${method} cannot capture it (--method nft or nat can); its queries are not tunnelled`,
      });
      expect(state.nameservers).toEqual([{ family: 6, ip: '2001:db8::53' }]);
    },
  );
});

describe('DNS in the session', () => {
  const rule = {
    family: 4 as const,
    ip: '203.0.113.0',
    width: 24,
    exclude: false,
    fport: 0,
    lport: 0,
  };
  const base = startupEvents(rule);
  const withDns: Event[] = [
    {
      ...(base[0] as Extract<Event, { kind: 'start' }>),
      nameservers: [{ family: 4, ip: '192.0.2.53' }],
      dnsListen: [{ family: 4, ip: '127.0.0.1', port: 0 }],
    },
    base[1] as Event,
    base[2] as Event,
    { kind: 'dns.listening', t: 2, family: 4, ip: '127.0.0.1', port: 12299 },
    base[3] as Event,
    base[4] as Event,
  ];
  const fold = (events: readonly Event[]) => {
    let s = initialSession;
    const cmds = [];
    for (const e of events) {
      const [n, c] = reduceSession(s, e);
      s = n;
      cmds.push(c);
    }
    return { s, cmds };
  };

  it('waits for the DNS listener and redirects the nameservers to it', () => {
    const { cmds } = fold(withDns);
    expect(cmds[3]).toEqual([]);
    expect(cmds[4]?.[0]).toMatchObject({
      kind: 'fw.setup',
      nameservers: [{ family: 4, ip: '192.0.2.53' }],
      ports: { tcp4: 12300, dns4: 12299 },
    });
  });

  it('forwards a query and answers the application that asked, once', () => {
    const q = query(7, 'web.lab.test');
    const answer = Buffer.from(q);
    const { s, cmds } = fold([
      ...withDns,
      {
        kind: 'dns.query',
        t: 5,
        id: 1,
        family: 4,
        src: { ip: '127.0.0.1', port: 5353 },
        name: 'web.lab.test',
        qtype: 1,
        size: q.length,
        chunk: q,
      },
      { kind: 'dns.answer', t: 6, id: 1, rcode: 0, size: answer.length, chunk: answer },
      { kind: 'dns.answer', t: 7, id: 1, rcode: 0, size: answer.length, chunk: answer },
    ]);
    expect(cmds[6]?.[0]).toEqual({ kind: 'dns.forward', id: 1, chunk: q });
    expect(cmds[7]?.[0]).toEqual({
      kind: 'dns.reply',
      id: 1,
      family: 4,
      dst: { ip: '127.0.0.1', port: 5353 },
      chunk: answer,
    });
    expect(cmds[8]).toEqual([]);
    expect(s.totals).toMatchObject({ dnsQueries: 1, dnsAnswered: 1, dnsFailed: 0 });
    expect(s.dns.size).toBe(0);
  });

  it('drops a malformed request without forwarding it, and forgets failed queries', () => {
    const junk = Buffer.from('junk');
    const { s, cmds } = fold([
      ...withDns,
      {
        kind: 'dns.query',
        t: 5,
        id: 1,
        family: 4,
        src: { ip: '127.0.0.1', port: 1 },
        name: null,
        qtype: 0,
        size: 4,
        chunk: junk,
      },
      {
        kind: 'dns.query',
        t: 5,
        id: 2,
        family: 4,
        src: { ip: '127.0.0.1', port: 1 },
        name: 'a',
        qtype: 1,
        size: 4,
        chunk: junk,
      },
      { kind: 'dns.failed', t: 6, id: 2, reason: 'timeout' },
    ]);
    expect(cmds[6]?.some((c) => c.kind === 'dns.forward')).toBe(false);
    expect(s.totals).toMatchObject({ dnsQueries: 2, dnsFailed: 2, dnsAnswered: 0 });
    expect(s.dns.size).toBe(0);
  });
});
