import * as fc from 'fast-check';
import { isLeft, isRight, right } from 'fp-ts/lib/Either.js';
import { describe, expect, it } from 'vitest';
import type { FirewallRequest } from '../../src/domain/firewall-plan.js';
import {
  decodeGo,
  decodeHelperLine,
  decodeHost,
  decodeNameserver,
  decodePorts,
  decodeRequest,
  decodeRoute,
  encodeGo,
  encodeHost,
  encodeNameserver,
  encodeReady,
  encodeRequest,
  encodeRoute,
  encodeStarted,
  initialReader,
  MAX_LINE_LENGTH,
  type RequestReader,
  readRequestLine,
} from '../../src/domain/firewall-protocol.js';
import { validateRequest } from '../../src/domain/firewall-request-codec.js';
import type { Family, SubnetRule } from '../../src/domain/subnet.js';
import { makeLineSplitter } from '../../src/effects/firewall/line-splitter.js';

// ---------------------------------------------------------------------------
// arbitraries: valid requests
// ---------------------------------------------------------------------------

const portPair = fc.oneof(
  fc.constant([0, 0] as const),
  fc
    .tuple(fc.integer({ min: 1, max: 65535 }), fc.integer({ min: 1, max: 65535 }))
    .map(([a, b]) => [Math.min(a, b), Math.max(a, b)] as const),
);

const subnet = (family: Family): fc.Arbitrary<SubnetRule> =>
  fc
    .record({
      ip: family === 4 ? fc.ipV4() : fc.ipV6(),
      width: fc.integer({ min: 0, max: family === 4 ? 32 : 128 }),
      exclude: fc.boolean(),
      p: portPair,
    })
    .map(({ ip, width, exclude, p }) => ({ family, ip, width, exclude, fport: p[0], lport: p[1] }));

const port = fc.integer({ min: 0, max: 65535 });
const id = fc.option(fc.integer({ min: 0, max: 2 ** 32 - 2 }));

const arbRequest: fc.Arbitrary<FirewallRequest> = fc.record({
  subnets: fc.array(fc.oneof(subnet(4), subnet(6)), { maxLength: 10 }),
  nameservers: fc.array(
    fc.oneof(
      fc.ipV4().map((ip) => ({ family: 4 as const, ip })),
      fc.ipV6().map((ip) => ({ family: 6 as const, ip })),
      fc.constant({ family: 6 as const, ip: 'fe80::1%eth0' }),
      // A scoped link-local server with its DNAT target (our own extension of NSLIST).
      fc
        .record({
          port: fc.integer({ min: 1, max: 65535 }),
          low: fc.integer({ min: 0, max: 0xffff }),
        })
        .map(({ port, low }) => ({
          family: 6 as const,
          ip: 'fe80::53%eth0',
          via: { ip: `fe80::${low.toString(16)}`, port },
        })),
    ),
    { maxLength: 4 },
  ),
  ports: fc.record({ tcp4: port, tcp6: port, dns4: port, dns6: port }),
  udp: fc.boolean(),
  user: id,
  group: id,
  tmark: fc.integer({ min: 0, max: 0xffffffff }).map((n) => `0x${n.toString(16).padStart(2, '0')}`),
  clientPid: fc.integer({ min: 1, max: 2 ** 31 - 1 }),
});

// ---------------------------------------------------------------------------
// examples
// ---------------------------------------------------------------------------

describe('the request on the wire', () => {
  it('is what an upstream 1.1.2+ client sends', () => {
    const req: FirewallRequest = {
      subnets: [
        { family: 4, ip: '1.2.3.0', width: 24, exclude: false, fport: 8000, lport: 9000 },
        { family: 6, ip: '2001:db8::', width: 32, exclude: true, fport: 0, lport: 0 },
      ],
      nameservers: [
        { family: 4, ip: '1.2.3.33' },
        { family: 6, ip: 'fe80::1%eth0' },
      ],
      ports: { tcp4: 12300, tcp6: 12299, dns4: 12298, dns6: 12297 },
      udp: false,
      user: 1000,
      group: null,
      tmark: '0x01',
      clientPid: 777,
    };
    const lines = [
      'ROUTES',
      '2,24,0,1.2.3.0,8000,9000',
      '10,32,1,2001:db8::,0,0',
      'NSLIST',
      '2,1.2.3.33',
      '10,fe80::1%eth0',
      'PORTS 12299,12300,12297,12298',
      'GO 0 1000 - 0x01 777',
    ];
    expect(encodeRequest(req)).toEqual(lines);
    expect(decodeRequest(lines)).toEqual(right(req));
  });

  it('decodes helper lines', () => {
    expect(decodeHelperLine(encodeReady('nft'))).toEqual(right({ kind: 'ready', method: 'nft' }));
    expect(decodeHelperLine('READY nat')).toEqual(right({ kind: 'ready', method: 'nat' }));
    expect(decodeHelperLine(encodeStarted())).toEqual(right({ kind: 'started' }));
    for (const junk of [
      'READY',
      'READY auto',
      'READY nft ',
      'ready nft',
      'STARTED ',
      '',
      'Password:',
    ])
      expect(isLeft(decodeHelperLine(junk))).toBe(true);
  });

  it('decodes HOST lines and rejects unsafe ones', () => {
    expect(decodeHost('HOST db.example,10.0.0.5')).toEqual(
      right({ name: 'db.example', ip: '10.0.0.5' }),
    );
    expect(encodeHost({ name: 'a-b_c.d', ip: '1.2.3.4' })).toBe('HOST a-b_c.d,1.2.3.4');
    // IPv6 names too (upstream's hostwatch is IPv4 only; -H here learns both).
    expect(decodeHost('HOST web.lab.test,2001:db8:2::2')).toEqual(
      right({ name: 'web.lab.test', ip: '2001:db8:2::2' }),
    );
    for (const junk of [
      'HOST a b,1.2.3.4',
      'HOST a,1.2.3.4,5',
      'HOST a,2001:db8::zz',
      'HOST ,1.2.3.4',
      'HOST a\n1.2.3.4 evil,1.2.3.4',
      'HOST a,1.2.3',
      'HOSTa,1.2.3.4',
    ])
      expect(isLeft(decodeHost(junk))).toBe(true);
  });
});

describe('field validation', () => {
  it.each([
    '30,24,0,1.2.3.0,0,0', // macOS AF_INET6 number
    '4,24,0,1.2.3.0,0,0', // family as 4/6 is not the wire form
    '2,33,0,1.2.3.0,0,0',
    '10,129,0,::,0,0',
    '2,24,2,1.2.3.0,0,0',
    '2,24,0,1.2.3.0,0,80',
    '2,24,0,1.2.3.0,90,80',
    '2,24,0,1.2.3.0,1,65536',
    '2,-1,0,1.2.3.0,0,0',
    '2,24,0,1.2.3.0;flush ruleset,0,0',
    '2,24,0,::1,0,0',
    '10,64,0,1.2.3.0,0,0',
    '10,64,0,fe80::%eth0,0,0', // scope only allowed on nameservers
    '2,24,0,1.2.3.0,0',
    '2,24,0,1.2.3.0,0,0,0',
    ' 2,24,0,1.2.3.0,0,0',
    '2,24,0,1.2.3.0,0,0\r',
    '2,24,0,1.2.3.0,0x10,0x20',
    '2,2e1,0,1.2.3.0,0,0',
  ])('rejects route %j', (line) => {
    expect(isLeft(decodeRoute(line))).toBe(true);
  });

  it.each([
    '2,fe80::1',
    '10,1.2.3.4',
    '3,1.2.3.4',
    '2,1.2.3.4,5',
    '10,fe80::1%eth0;x',
    '10,fe80::1%',
    '2,',
    '10,fe80::53%eth0,fe80::1', // a DNAT target needs its port
    '10,fe80::53%eth0,fe80::1,0',
    '10,fe80::53%eth0,fe80::1,65536',
    '10,fe80::53,fe80::1,53', // only for a scoped server
    '10,2001:db8::53%eth0,fe80::1,53', // only for a link-local server
    '10,fe80::53%eth0,2001:db8::1,53', // to a link-local address
    '10,fe80::53%eth0,fe80::1%eth0,53', // given without scope
    '2,192.0.2.1,fe80::1,53',
  ])('rejects nameserver %j', (line) => {
    expect(isLeft(decodeNameserver(line))).toBe(true);
  });

  it('carries a scoped link-local server with its DNAT target; the upstream form still decodes', () => {
    const ns = { family: 6 as const, ip: 'fe80::53%eth0', via: { ip: 'fe80::1', port: 12300 } };
    expect(encodeNameserver(ns)).toBe('10,fe80::53%eth0,fe80::1,12300');
    expect(decodeNameserver('10,fe80::53%eth0,fe80::1,12300')).toEqual(right(ns));
    expect(decodeNameserver('10,fe80::53%eth0')).toEqual(right({ family: 6, ip: 'fe80::53%eth0' }));
  });

  it.each([
    'PORTS 1,2,3',
    'PORTS 1,2,3,4,5',
    'PORTS 1,2,3,65536',
    'PORTS a,2,3,4',
    'PORTS  1,2,3,4',
    'PORTS -1,2,3,4',
    'PORT 1,2,3,4',
  ])('rejects %j', (line) => {
    expect(isLeft(decodePorts(line))).toBe(true);
  });

  it.each([
    'GO 0 - - 0x01', // 1.1.0 form without group
    'GO 0 - 0x01 42', // 0.78.5..1.0.5 form
    'GO 2 - - 0x01 42',
    'GO 0 root - 0x01 42',
    'GO 0 - - 01 42',
    'GO 0 - - 0x123456789 42',
    'GO 0 - - 0x01 0',
    'GO 0 - - 0x01 -5',
    'GO 0 4294967295 - 0x01 42',
    'GO 0 - - 0x01 42 extra',
    'GO  0 - - 0x01 42',
  ])('rejects %j', (line) => {
    expect(isLeft(decodeGo(line))).toBe(true);
  });

  it('accepts the 1.1.2+ GO line', () => {
    expect(decodeGo('GO 1 0 100 0xff 1')).toEqual(
      right({ udp: true, user: 0, group: 100, tmark: '0xff', clientPid: 1 }),
    );
  });

  it('rejects lines out of order and overlong lines', () => {
    expect(isLeft(decodeRequest(['NSLIST']))).toBe(true);
    expect(isLeft(decodeRequest(['ROUTES', 'PORTS 1,2,3,4']))).toBe(true);
    expect(isLeft(decodeRequest(['ROUTES', 'NSLIST', 'GO 0 - - 0x01 1']))).toBe(true);
    expect(isLeft(decodeRequest(['ROUTES', 'NSLIST', 'PORTS 1,2,3,4']))).toBe(true); // incomplete
    const done = decodeRequest(['ROUTES', 'NSLIST', 'PORTS 1,2,3,4', 'GO 0 - - 0x01 1']);
    expect(isRight(done)).toBe(true);
    expect(isLeft(readRequestLine({ phase: 'routes' }, 'ROUTES'.padEnd(MAX_LINE_LENGTH + 1)))).toBe(
      true,
    );
    if (isRight(done)) {
      const after = readRequestLine({ phase: 'done', request: done.right }, 'ROUTES');
      expect(isLeft(after)).toBe(true);
    }
  });
});

// ---------------------------------------------------------------------------
// properties
// ---------------------------------------------------------------------------

describe('protocol properties', () => {
  it('decode(encode(request)) is the request', () => {
    fc.assert(
      fc.property(arbRequest, (req) => {
        expect(decodeRequest(encodeRequest(req))).toEqual(right(req));
      }),
    );
  });

  it('GO and HOST lines round-trip', () => {
    fc.assert(
      fc.property(
        arbRequest,
        fc.stringMatching(/^[-A-Za-z0-9_.]{1,60}$/),
        fc.ipV4(),
        (req, name, ip) => {
          const { udp, user, group, tmark, clientPid } = req;
          expect(decodeGo(encodeGo(req))).toEqual(right({ udp, user, group, tmark, clientPid }));
          expect(decodeHost(encodeHost({ name, ip }))).toEqual(right({ name, ip }));
        },
      ),
    );
  });

  // Junk made of the characters the protocol uses, so it gets past the first checks.
  const nearLine = fc.string({
    unit: fc.constantFrom(...'0123456789,.:%- abcdefxROUTESNLIPGOH\t\r'.split('')),
    maxLength: 60,
  });
  const phases: fc.Arbitrary<RequestReader> = fc.constantFrom<RequestReader>(
    initialReader,
    { phase: 'route', subnets: [] },
    { phase: 'ns', subnets: [], nameservers: [] },
    { phase: 'go', subnets: [], nameservers: [], ports: { tcp4: 1, tcp6: 2, dns4: 3, dns6: 4 } },
  );

  it('never throws on junk, in any phase', () => {
    fc.assert(
      fc.property(phases, fc.oneof(nearLine, fc.string({ maxLength: 600 })), (state, line) => {
        const r = readRequestLine(state, line);
        expect(r._tag === 'Left' || r._tag === 'Right').toBe(true);
        decodeHelperLine(line);
        decodeHost(line);
      }),
    );
  });

  it('whatever a route line decodes to is clean and re-encodes stably', () => {
    fc.assert(
      fc.property(nearLine, (line) => {
        const r = decodeRoute(line);
        if (isRight(r)) {
          expect(line).not.toMatch(/[ \t\r%]/);
          expect(decodeRoute(encodeRoute(r.right))).toEqual(r);
        }
      }),
    );
  });
});

describe('line splitter', () => {
  it('cuts lines across chunks and refuses overlong lines', () => {
    const s = makeLineSplitter(10);
    expect(s.push('READY n')).toEqual([]);
    expect(s.push(Buffer.from('ft\nSTAR'))).toEqual(['READY nft']);
    expect(s.push('TED\n\n')).toEqual(['STARTED', '']);
    expect(s.push('0123456789A')).toEqual([]);
    expect(s.overflowed()).toBe(true);
    expect(s.push('ok\n')).toEqual([]);
  });

  it('keeps the lines before an overlong one', () => {
    const s = makeLineSplitter(5);
    expect(s.push('ab\ncd\n0123456789\nef\n')).toEqual(['ab', 'cd']);
    expect(s.overflowed()).toBe(true);
  });

  it('splits any chunking the same way', () => {
    fc.assert(
      fc.property(
        fc.array(fc.string({ maxLength: 8 }), { maxLength: 10 }),
        fc.integer({ min: 1, max: 7 }),
        (ls, size) => {
          const text = ls.map((l) => `${l.replace(/\n/g, '')}\n`).join('');
          const s = makeLineSplitter(100);
          const out: string[] = [];
          for (let i = 0; i < text.length; i += size) out.push(...s.push(text.slice(i, i + size)));
          expect(out).toEqual(ls.map((l) => l.replace(/\n/g, '')));
        },
      ),
    );
  });
});

describe('validateRequest (the io-ts gate in the root helper)', () => {
  it('accepts every request the line protocol carries, unchanged', () => {
    fc.assert(
      fc.property(arbRequest, (req) => {
        const decoded = decodeRequest(encodeRequest(req));
        if (isLeft(decoded)) return;
        expect(validateRequest(decoded.right)).toEqual(right(decoded.right));
      }),
    );
  });

  const good: FirewallRequest = {
    subnets: [{ family: 4, ip: '10.0.0.0', width: 8, exclude: false, fport: 0, lport: 0 }],
    nameservers: [{ family: 4, ip: '10.0.0.53' }],
    ports: { tcp4: 12300, tcp6: 0, dns4: 12299, dns6: 0 },
    udp: false,
    user: null,
    group: 100,
    tmark: '0x01',
    clientPid: 42,
  };
  it.each<[string, unknown]>([
    [
      'a shell word in an address',
      { ...good, subnets: [{ ...good.subnets[0], ip: '10.0.0.0;id' }] },
    ],
    ['a width out of range', { ...good, subnets: [{ ...good.subnets[0], width: 33 }] }],
    ['family 5', { ...good, subnets: [{ ...good.subnets[0], family: 5 }] }],
    ['a nameserver with a space', { ...good, nameservers: [{ family: 4, ip: '1.1.1.1 x' }] }],
    ['port 65536', { ...good, ports: { ...good.ports, tcp4: 65536 } }],
    ['a fractional port', { ...good, ports: { ...good.ports, dns4: 1.5 } }],
    ['uid -1', { ...good, user: -1 }],
    ['uid (uid_t)-1', { ...good, user: 2 ** 32 - 1 }],
    ['a gid string', { ...good, group: '0' }],
    ['a bad mark', { ...good, tmark: '0x1 ; reboot' }],
    ['pid 0', { ...good, clientPid: 0 }],
    ['no ports', { ...good, ports: undefined }],
  ])('refuses %s', (_, req) => {
    expect(isLeft(validateRequest(req))).toBe(true);
  });
  it('accepts the example', () => {
    expect(validateRequest(good)).toEqual(right(good));
  });
});
