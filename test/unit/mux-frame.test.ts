import { fc, it as itProp } from '@fast-check/vitest';
import * as E from 'fp-ts/lib/Either.js';
import { describe, expect, it } from 'vitest';
import {
  Cmd,
  decodeFrame,
  decodePayload,
  encodeFrame,
  type Frame,
  isChicken,
} from '../../src/domain/mux/frame.js';

const hex = (b: Uint8Array): string =>
  Buffer.from(b)
    .toString('hex')
    .replace(/(..)(?!$)/g, '$1 ');

const ascii = (s: string): string => hex(Buffer.from(s, 'latin1'));

/** Decodes the bytes `encodeFrame` produced, by hand (no stream decoder). */
const decodeBytes = (b: Buffer): E.Either<string, Frame> => {
  expect(b[0]).toBe(0x53);
  expect(b[1]).toBe(0x53);
  expect(b.readUInt16BE(6)).toBe(b.length - 8);
  return decodePayload(b.readUInt16BE(2), b.readUInt16BE(4), b.subarray(8));
};

/** Frames with Buffers and Uint8Arrays compared by content. */
const norm = (v: unknown): unknown => {
  if (v instanceof Uint8Array)
    return `bytes:${Buffer.from(v.buffer, v.byteOffset, v.length).toString('base64')}`;
  if (Array.isArray(v)) return v.map(norm);
  if (typeof v === 'object' && v !== null) {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, norm(x)]));
  }
  return v;
};

const bytes = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'latin1'));

describe('golden frames (byte-exact, as sshuttle writes them)', () => {
  const golden: readonly (readonly [string, Frame, string])[] = [
    ['EXIT', { kind: 'EXIT', channel: 0 }, '53 53 00 00 42 00 00 00'],
    [
      'PING chicken',
      { kind: 'PING', channel: 0, data: bytes('chicken') },
      '53 53 00 00 42 01 00 07 63 68 69 63 6b 65 6e',
    ],
    [
      'PONG rttest',
      { kind: 'PONG', channel: 0, data: bytes('rttest') },
      `53 53 00 00 42 02 00 06 ${ascii('rttest')}`,
    ],
    [
      'TCP_CONNECT',
      { kind: 'TCP_CONNECT', channel: 1, family: 2, ip: '10.0.0.1', port: 80 },
      `53 53 00 01 42 03 00 0d ${ascii('2,10.0.0.1,80')}`,
    ],
    [
      'TCP_CONNECT v6',
      { kind: 'TCP_CONNECT', channel: 0xfffe, family: 10, ip: '2001:db8::1', port: 443 },
      `53 53 ff fe 42 03 00 12 ${ascii('10,2001:db8::1,443')}`,
    ],
    ['TCP_STOP_SENDING', { kind: 'TCP_STOP_SENDING', channel: 5 }, '53 53 00 05 42 04 00 00'],
    ['TCP_EOF', { kind: 'TCP_EOF', channel: 0x0102 }, '53 53 01 02 42 05 00 00'],
    [
      'TCP_DATA',
      { kind: 'TCP_DATA', channel: 7, data: new Uint8Array([0, 0xff, 0x53]) },
      '53 53 00 07 42 06 00 03 00 ff 53',
    ],
    [
      'ROUTES',
      {
        kind: 'ROUTES',
        channel: 0,
        routes: [
          { family: 2, ip: '10.0.0.0', width: 8 },
          { family: 2, ip: '192.168.1.0', width: 24 },
        ],
      },
      `53 53 00 00 42 07 00 1e ${ascii('2,10.0.0.0,8\n2,192.168.1.0,24\n')}`,
    ],
    ['ROUTES empty', { kind: 'ROUTES', channel: 0, routes: [] }, '53 53 00 00 42 07 00 00'],
    [
      'HOST_REQ',
      { kind: 'HOST_REQ', channel: 0, hosts: ['web', 'db.lan'] },
      `53 53 00 00 42 08 00 0a ${ascii('web\ndb.lan')}`,
    ],
    [
      'HOST_LIST',
      {
        kind: 'HOST_LIST',
        channel: 0,
        entries: [
          { name: 'web', ip: '10.0.0.5' },
          { name: 'db', ip: '10.0.0.6' },
        ],
      },
      `53 53 00 00 42 09 00 19 ${ascii('web,10.0.0.5\ndb,10.0.0.6\n')}`,
    ],
    [
      'DNS_REQ',
      { kind: 'DNS_REQ', channel: 9, data: new Uint8Array([0x12, 0x34, 1, 0]) },
      '53 53 00 09 42 0a 00 04 12 34 01 00',
    ],
    [
      'DNS_RESPONSE',
      { kind: 'DNS_RESPONSE', channel: 9, data: new Uint8Array([0x12, 0x34, 0x81, 0x80]) },
      '53 53 00 09 42 0b 00 04 12 34 81 80',
    ],
    ['UDP_OPEN', { kind: 'UDP_OPEN', channel: 3, family: 2 }, '53 53 00 03 42 0c 00 01 32'],
    [
      'UDP_DATA',
      { kind: 'UDP_DATA', channel: 3, ip: '10.0.0.1', port: 53, data: new Uint8Array([1, 0x2c]) },
      `53 53 00 03 42 0d 00 0e ${ascii('10.0.0.1,53,')} 01 2c`,
    ],
    ['UDP_CLOSE', { kind: 'UDP_CLOSE', channel: 3 }, '53 53 00 03 42 0e 00 00'],
    [
      'CAPS (a PING a stock peer echoes)',
      { kind: 'CAPS', channel: 0, caps: { credit: 1048576, frame: 65535 } },
      `53 53 00 00 42 01 00 2e ${ascii('sshuttle-ts/caps v1 credit=1048576 frame=65535')}`,
    ],
    [
      'CREDIT (ours)',
      { kind: 'CREDIT', channel: 4, bytes: 0x10000 },
      '53 53 00 04 42 80 00 04 00 01 00 00',
    ],
    ['CLOSED (ours)', { kind: 'CLOSED', channel: 4 }, '53 53 00 04 42 81 00 00'],
  ];

  for (const [name, frame, wire] of golden) {
    it(`${name}: encodes to the exact bytes and decodes back`, () => {
      const b = encodeFrame(frame);
      expect(hex(b)).toBe(wire);
      const back = decodeBytes(b);
      expect(E.isRight(back)).toBe(true);
      if (E.isRight(back)) expect(norm(back.right)).toEqual(norm(frame));
    });
  }

  it('covers every command code', () => {
    const codes = new Set(golden.map(([, f]) => encodeFrame(f).readUInt16BE(4)));
    for (const code of Object.values(Cmd)) expect(codes.has(code)).toBe(true);
  });
});

// ---------------------------------------------------------------------------
// round trips
// ---------------------------------------------------------------------------

const channel = fc.integer({ min: 0, max: 0xffff });
/** Large payloads repeat a short random seed (generating 64 KiB byte by byte is slow). */
const big = (min: number, max: number): fc.Arbitrary<Uint8Array> =>
  fc
    .tuple(fc.uint8Array({ minLength: 1, maxLength: 16 }), fc.integer({ min, max }))
    .map(([seed, n]) => {
      const out = new Uint8Array(n);
      for (let i = 0; i < n; i += seed.length) out.set(seed.subarray(0, n - i), i);
      return out;
    });
const data = fc.oneof(fc.uint8Array({ maxLength: 300 }), big(257, 5000));
const ip = fc.oneof(fc.ipV4(), fc.ipV6());
const port = fc.integer({ min: 0, max: 0xffff });
const family = fc.oneof(fc.constantFrom(2, 10, 30), fc.integer({ min: 0, max: 99999 }));
const word = fc.stringMatching(/^[a-z0-9][a-z0-9.-]{0,20}$/);

const arbFrame: fc.Arbitrary<Frame> = fc.oneof(
  fc.record({ kind: fc.constant('EXIT' as const), channel }),
  fc.record({ kind: fc.constant('PING' as const), channel, data }),
  fc.record({ kind: fc.constant('PONG' as const), channel, data }),
  fc.record({
    kind: fc.constant('CAPS' as const),
    channel,
    caps: fc.record({
      credit: fc.integer({ min: 1, max: 0x7fffffff }),
      frame: fc.integer({ min: 1, max: 0xffff }),
    }),
  }),
  fc.record({ kind: fc.constant('TCP_CONNECT' as const), channel, family, ip, port }),
  fc.record({ kind: fc.constant('TCP_STOP_SENDING' as const), channel }),
  fc.record({ kind: fc.constant('TCP_EOF' as const), channel }),
  fc.record({
    kind: fc.constant('TCP_DATA' as const),
    channel,
    data: fc.oneof(data, big(65535, 65535)),
  }),
  fc.record({
    kind: fc.constant('ROUTES' as const),
    channel,
    routes: fc.array(fc.record({ family, ip, width: fc.integer({ min: 0, max: 128 }) }), {
      maxLength: 5,
    }),
  }),
  fc.record({ kind: fc.constant('HOST_REQ' as const), channel, hosts: fc.array(word) }),
  fc.record({
    kind: fc.constant('HOST_LIST' as const),
    channel,
    entries: fc.array(fc.record({ name: word, ip }), { maxLength: 8 }),
  }),
  fc.record({ kind: fc.constant('DNS_REQ' as const), channel, data }),
  fc.record({ kind: fc.constant('DNS_RESPONSE' as const), channel, data }),
  fc.record({ kind: fc.constant('UDP_OPEN' as const), channel, family }),
  fc.record({ kind: fc.constant('UDP_DATA' as const), channel, ip, port, data }),
  fc.record({ kind: fc.constant('UDP_CLOSE' as const), channel }),
  fc.record({
    kind: fc.constant('CREDIT' as const),
    channel,
    bytes: fc.integer({ min: 1, max: 0xffffffff }),
  }),
  fc.record({ kind: fc.constant('CLOSED' as const), channel }),
);

describe('round trip', () => {
  itProp.prop([arbFrame], { numRuns: 500 })('decode(encode(f)) = f for every kind', (f) => {
    const back = decodeBytes(encodeFrame(f));
    expect(E.isRight(back)).toBe(true);
    if (E.isRight(back)) expect(norm(back.right)).toEqual(norm(f));
  });

  itProp.prop([arbFrame], { numRuns: 300 })('encode(decode(bytes)) = bytes', (f) => {
    const b = encodeFrame(f);
    const back = decodeFrame({
      channel: f.channel,
      cmd: b.readUInt16BE(4),
      payload: b.subarray(8),
    });
    if (E.isLeft(back)) throw new Error(back.left);
    expect(hex(encodeFrame(back.right))).toBe(hex(b));
  });

  itProp.prop([fc.integer({ min: 0, max: 0xffff }), fc.uint8Array({ maxLength: 200 })])(
    'any payload of any command decodes to a frame or a message, never throws',
    (cmd, payload) => {
      const r = decodePayload(1, cmd, payload);
      if (E.isLeft(r)) expect(r.left.length).toBeGreaterThan(0);
    },
  );
});

describe('payload decoding', () => {
  const left = (cmd: number, s: string): string => {
    const r = decodePayload(1, cmd, Buffer.from(s, 'latin1'));
    if (E.isRight(r)) throw new Error(`expected an error for ${JSON.stringify(s)}`);
    return r.left;
  };

  it('rejects malformed text payloads with a message naming the command', () => {
    expect(left(Cmd.TCP_CONNECT, '2,10.0.0.1')).toMatch(/TCP_CONNECT/);
    expect(left(Cmd.TCP_CONNECT, '2,not-an-ip,80')).toMatch(/address/);
    expect(left(Cmd.TCP_CONNECT, '2,10.0.0.1,70000')).toMatch(/port/);
    expect(left(Cmd.ROUTES, '2,10.0.0.0\n')).toMatch(/ROUTES/);
    expect(left(Cmd.HOST_LIST, 'nocomma\n')).toMatch(/HOST_LIST/);
    expect(left(Cmd.UDP_OPEN, 'x')).toMatch(/UDP_OPEN/);
    expect(left(Cmd.UDP_DATA, '10.0.0.1')).toMatch(/UDP_DATA/);
    expect(left(0x4299, '')).toMatch(/unknown command 0x4299/);
  });

  it('reads what upstream accepts: routes with blank lines, hosts split on any whitespace', () => {
    const r = decodePayload(0, Cmd.ROUTES, Buffer.from('\n2,10.0.0.0,8\n\n', 'latin1'));
    expect(r).toEqual(
      E.right({ kind: 'ROUTES', channel: 0, routes: [{ family: 2, ip: '10.0.0.0', width: 8 }] }),
    );
    const h = decodePayload(0, Cmd.HOST_REQ, Buffer.from(' a\tb \n c ', 'latin1'));
    expect(h).toEqual(E.right({ kind: 'HOST_REQ', channel: 0, hosts: ['a', 'b', 'c'] }));
    const l = decodePayload(0, Cmd.HOST_LIST, Buffer.from('a,1.2.3.4 b,::1\n', 'latin1'));
    expect(l).toEqual(
      E.right({
        kind: 'HOST_LIST',
        channel: 0,
        entries: [
          { name: 'a', ip: '1.2.3.4' },
          { name: 'b', ip: '::1' },
        ],
      }),
    );
  });

  it('UDP_DATA keeps commas inside the datagram', () => {
    const r = decodePayload(2, Cmd.UDP_DATA, Buffer.from('::1,53,a,b,c', 'latin1'));
    if (E.isLeft(r) || r.right.kind !== 'UDP_DATA') throw new Error('expected UDP_DATA');
    expect(r.right.ip).toBe('::1');
    expect(r.right.port).toBe(53);
    expect(Buffer.from(r.right.data).toString()).toBe('a,b,c');
  });

  it('only the exact caps text is a CAPS frame; near misses stay plain PINGs', () => {
    const kind = (s: string) => {
      const r = decodePayload(0, Cmd.PING, Buffer.from(s, 'latin1'));
      return E.isRight(r) ? r.right.kind : 'error';
    };
    expect(kind('sshuttle-ts/caps v1 credit=100 frame=1000')).toBe('CAPS');
    expect(kind('sshuttle-ts/caps v1 credit=100 frame=1000 ')).toBe('PING');
    expect(kind('sshuttle-ts/caps v2 credit=100 frame=1000')).toBe('PING');
    expect(kind('sshuttle-ts/caps v1 credit=0 frame=1000')).toBe('PING');
    expect(kind('sshuttle-ts/caps v1 credit=100 frame=70000')).toBe('PING');
    expect(kind('chicken')).toBe('PING');
  });

  it('data payloads are views of the input, not copies', () => {
    const buf = Buffer.from('xxhello', 'latin1');
    const r = decodePayload(1, Cmd.TCP_DATA, buf.subarray(2));
    if (E.isLeft(r) || r.right.kind !== 'TCP_DATA') throw new Error('expected TCP_DATA');
    expect(r.right.data.buffer).toBe(buf.buffer);
  });

  it('recognises PING chicken', () => {
    expect(isChicken({ kind: 'PING', channel: 0, data: bytes('chicken') })).toBe(true);
    expect(isChicken({ kind: 'PING', channel: 0, data: bytes('rttest') })).toBe(false);
    expect(isChicken({ kind: 'PONG', channel: 0, data: bytes('chicken') })).toBe(false);
  });

  it('refuses to encode what cannot be framed (a caller bug)', () => {
    expect(() =>
      encodeFrame({ kind: 'TCP_DATA', channel: 1, data: new Uint8Array(65536) }),
    ).toThrow(RangeError);
    expect(() => encodeFrame({ kind: 'TCP_EOF', channel: 65536 })).toThrow(RangeError);
  });
});
