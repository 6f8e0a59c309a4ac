import { fc, it as itProp } from '@fast-check/vitest';
import * as E from 'fp-ts/lib/Either.js';
import ipaddr from 'ipaddr.js';
import { describe, expect, it } from 'vitest';
import {
  type ConntrackEntry,
  decodeDeleteAcks,
  decodeDump,
  deleteRequest,
  dumpRequest,
  IPPROTO_TCP,
  IPPROTO_UDP,
  IPS_DST_NAT,
  IPS_SEEN_REPLY,
  isStale,
  type Tuple,
} from '../../src/domain/conntrack.js';
import {
  type ByteOrder,
  decodeAttributes,
  decodeMessages,
  encodeAttribute,
  encodeMessage,
  encodeNested,
  NLMSG_DONE,
  NLMSG_ERROR,
} from '../../src/domain/netlink.js';
import { type Family, isCaptured } from '../../src/domain/subnet.js';
import { request, requestArb, rule } from './fixtures/firewall-requests.js';

const orderArb = fc.constantFrom<ByteOrder>('LE', 'BE');

describe('netlink framing', () => {
  const messageArb = fc.record({
    type: fc.integer({ min: 0, max: 0xffff }),
    flags: fc.integer({ min: 0, max: 0xffff }),
    seq: fc.nat(),
    payload: fc.uint8Array({ maxLength: 64 }).map((a) => Buffer.from(a)),
  });

  itProp.prop([fc.array(messageArb, { maxLength: 8 }), orderArb])(
    'messages concatenated into one buffer decode back, in order',
    (messages, order) => {
      const buf = Buffer.concat(messages.map((m) => encodeMessage(m, order)));
      expect(buf.length % 4).toBe(0);
      const back = decodeMessages(buf, order);
      expect(E.isRight(back) && back.right.map((m) => ({ ...m, payload: [...m.payload] }))).toEqual(
        messages.map((m) => ({ ...m, payload: [...m.payload] })),
      );
    },
  );

  itProp.prop([fc.uint8Array({ maxLength: 200 }), orderArb])(
    'any bytes decode to messages or a Left, never a throw',
    (bytes, order) => {
      const r = decodeMessages(Buffer.from(bytes), order);
      if (E.isRight(r))
        for (const m of r.right) expect(m.payload.length).toBeLessThan(bytes.length);
      const a = decodeAttributes(Buffer.from(bytes), order);
      if (E.isRight(a)) for (const x of a.right) expect(x.value.length).toBeLessThan(bytes.length);
    },
  );

  itProp.prop([
    fc.array(fc.tuple(fc.integer({ min: 0, max: 0x3fff }), fc.uint8Array({ maxLength: 20 })), {
      maxLength: 6,
    }),
    orderArb,
  ])('attributes round-trip, also inside a nested one', (attrs, order) => {
    const encoded = attrs.map(([t, v]) => encodeAttribute(t, Buffer.from(v), order));
    const outer = decodeAttributes(encodeNested(7, encoded, order), order);
    expect(E.isRight(outer)).toBe(true);
    if (E.isLeft(outer)) return;
    expect(outer.right).toHaveLength(1);
    expect(outer.right[0]?.type).toBe(7); // the nested flag is not part of the type
    const inner = decodeAttributes(outer.right[0]?.value ?? Buffer.alloc(0), order);
    expect(E.isRight(inner) && inner.right.map((a) => [a.type, [...a.value]])).toEqual(
      attrs.map(([t, v]) => [t, [...v]]),
    );
  });

  it('a length that runs past the end is a Left', () => {
    const m = encodeMessage({ type: 1, flags: 0, seq: 1, payload: Buffer.alloc(8) }, 'LE');
    m.writeUInt32LE(64, 0);
    expect(E.isLeft(decodeMessages(m, 'LE'))).toBe(true);
  });
});

// ---------------------------------------------------------------------------
// ctnetlink
// ---------------------------------------------------------------------------

/**
 * A conntrack entry as the kernel sends it in a dump: IPCTNL_MSG_CT_NEW with
 * the original and reply tuples (nested IP and proto attributes, network
 * byte order values), status, id and sometimes a zone.
 */
const kernelMessage = (e: Omit<ConntrackEntry, 'origTuple'>, order: ByteOrder): Buffer => {
  const ip = (s: string) => Buffer.from(ipaddr.parse(s).toByteArray());
  const be16 = (n: number) => Buffer.from([n >> 8, n & 0xff]);
  const be32 = (n: number) => {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(n >>> 0);
    return b;
  };
  const [srcT, dstT] = e.family === 4 ? [1, 2] : [3, 4];
  const tuple = (type: number, t: Tuple) =>
    encodeNested(
      type,
      [
        encodeNested(
          1,
          [encodeAttribute(srcT, ip(t.src), order), encodeAttribute(dstT, ip(t.dst), order)],
          order,
        ),
        encodeNested(
          2,
          [
            encodeAttribute(1, Buffer.from([e.proto]), order),
            encodeAttribute(2, be16(t.sport), order),
            encodeAttribute(3, be16(t.dport), order),
          ],
          order,
        ),
      ],
      order,
    );
  const attrs = [
    tuple(1, e.orig),
    tuple(2, e.reply),
    encodeAttribute(3, be32(e.status), order),
    encodeAttribute(7, be32(120), order), // CTA_TIMEOUT: ignored
    ...(e.id === null ? [] : [encodeAttribute(12, be32(e.id), order)]),
    ...(e.zone === null ? [] : [encodeAttribute(18, be16(e.zone), order)]),
  ];
  return encodeMessage(
    {
      type: 0x100,
      flags: 2,
      seq: 1,
      payload: Buffer.concat([Buffer.from([e.family === 4 ? 2 : 10, 0, 0, 0]), ...attrs]),
    },
    order,
  );
};
const done = (order: ByteOrder) =>
  encodeMessage({ type: NLMSG_DONE, flags: 2, seq: 1, payload: Buffer.alloc(4) }, order);

const tupleArb = (family: Family) =>
  fc.record({
    src: family === 4 ? fc.ipV4() : fc.ipV6(),
    dst: family === 4 ? fc.ipV4() : fc.ipV6(),
    sport: fc.integer({ min: 0, max: 65535 }),
    dport: fc.integer({ min: 0, max: 65535 }),
  });
const entryArb = fc.constantFrom<Family>(4, 6).chain((family) =>
  fc.record({
    family: fc.constant(family),
    proto: fc.constantFrom(IPPROTO_TCP, IPPROTO_UDP),
    orig: tupleArb(family),
    reply: tupleArb(family),
    status: fc.nat({ max: 0xffff }),
    id: fc.option(fc.nat(), { nil: null }),
    zone: fc.option(fc.integer({ min: 0, max: 0xffff }), { nil: null }),
  }),
);
const canonical = (t: Tuple): Tuple => ({
  ...t,
  src: ipaddr.parse(t.src).toString(),
  dst: ipaddr.parse(t.dst).toString(),
});

describe('conntrack dump and delete', () => {
  it('the dump request is IPCTNL_MSG_CT_GET with NLM_F_REQUEST|NLM_F_DUMP for the family', () => {
    expect(dumpRequest(4, 'LE').toString('hex')).toBe(
      // len 20, type 0x0101, flags 0x0301, seq 1, pid 0, nfgenmsg AF_INET v0
      '14000000010101030100000000000000' + '02000000',
    );
    expect(dumpRequest(6, 'BE').toString('hex')).toBe(
      '00000014010103010000000100000000' + '0a000000',
    );
  });

  itProp.prop([fc.array(entryArb, { maxLength: 5 }), orderArb])(
    'every TCP/UDP entry of a dump decodes, in order, with its tuples, status, id and zone',
    (entries, order) => {
      const buf = Buffer.concat([...entries.map((e) => kernelMessage(e, order)), done(order)]);
      const dump = decodeDump(buf, order);
      expect(E.isRight(dump)).toBe(true);
      if (E.isLeft(dump)) return;
      expect(dump.right.skipped).toBe(0);
      expect(dump.right.entries.map(({ origTuple: _, ...rest }) => rest)).toEqual(
        entries.map((e) => ({ ...e, orig: canonical(e.orig), reply: canonical(e.reply) })),
      );
    },
  );

  itProp.prop([fc.array(entryArb, { minLength: 1, maxLength: 5 }), orderArb])(
    'a delete names exactly the entry the dump gave: its original tuple, id and zone, acked',
    (entries, order) => {
      const dump = decodeDump(Buffer.concat(entries.map((e) => kernelMessage(e, order))), order);
      if (E.isLeft(dump)) throw new Error(dump.left);
      const msgs = decodeMessages(deleteRequest(dump.right.entries, order), order);
      if (E.isLeft(msgs)) throw new Error(msgs.left);
      expect(msgs.right).toHaveLength(entries.length);
      msgs.right.forEach((m, i) => {
        const e = dump.right.entries[i] as ConntrackEntry;
        expect(m.type).toBe(0x102); // IPCTNL_MSG_CT_DELETE
        expect(m.flags).toBe(0x5); // NLM_F_REQUEST | NLM_F_ACK
        expect(m.payload[0]).toBe(e.family === 4 ? 2 : 10);
        const attrs = decodeAttributes(m.payload.subarray(4), order);
        if (E.isLeft(attrs)) throw new Error(attrs.left);
        const byType = new Map(attrs.right.map((a) => [a.type, a.value]));
        expect(byType.get(1)).toEqual(e.origTuple);
        expect(byType.get(12)?.readUInt32BE(0) ?? null).toBe(e.id);
        expect(byType.get(18)?.readUInt16BE(0) ?? null).toBe(e.zone);
        // A dump made of the original tuple alone decodes to the same tuple.
        expect(byType.has(2)).toBe(false);
      });
    },
  );

  it('ICMP entries (no ports) and other message types are skipped, not errors', () => {
    const icmp = kernelMessage(
      {
        family: 4,
        proto: 1,
        orig: { src: '10.0.0.1', dst: '10.0.0.2', sport: 0, dport: 0 },
        reply: { src: '10.0.0.2', dst: '10.0.0.1', sport: 0, dport: 0 },
        status: 0,
        id: 1,
        zone: null,
      },
      'LE',
    );
    // Drop the port attributes: rebuild the proto nest with only the number.
    const d = decodeDump(
      Buffer.concat([
        icmp,
        encodeMessage({ type: 0x105, flags: 0, seq: 1, payload: Buffer.alloc(4) }, 'LE'),
      ]),
      'LE',
    );
    expect(E.isRight(d) && d.right.entries.length + d.right.skipped).toBe(2);
  });

  it('a refused dump is a Left naming the errno', () => {
    const err = Buffer.alloc(20);
    err.writeInt32LE(-1, 0); // EPERM
    const d = decodeDump(
      encodeMessage({ type: NLMSG_ERROR, flags: 0, seq: 1, payload: err }, 'LE'),
      'LE',
    );
    expect(d).toEqual(E.left('conntrack dump refused (errno 1)'));
  });

  it('acks are tallied: dropped, already gone (ENOENT), refused', () => {
    const ack = (code: number) => {
      const p = Buffer.alloc(20);
      p.writeInt32LE(code, 0);
      return encodeMessage({ type: NLMSG_ERROR, flags: 0, seq: 1, payload: p }, 'LE');
    };
    const r = decodeDeleteAcks(Buffer.concat([ack(0), ack(0), ack(-2), ack(-1)]), 'LE');
    expect(r).toEqual(E.right({ dropped: 2, gone: 1, failed: [1] }));
  });
});

describe('which entries are stale', () => {
  const req = request({
    subnets: [rule(4, '203.0.113.0', 24, false), rule(4, '203.0.113.9', 32, true)],
    nameservers: [
      { family: 4, ip: '192.0.2.53' },
      { family: 6, ip: 'fe80::53%eth0' },
    ],
    ports: { tcp4: 12300, tcp6: 0, dns4: 12299, dns6: 12298 },
  });
  const entry = (over: Partial<ConntrackEntry>): ConntrackEntry => ({
    family: 4,
    proto: IPPROTO_TCP,
    orig: { src: '198.51.100.2', dst: '203.0.113.2', sport: 40000, dport: 80 },
    reply: { src: '203.0.113.2', dst: '198.51.100.2', sport: 80, dport: 40000 },
    status: 0,
    id: 1,
    zone: null,
    origTuple: Buffer.alloc(0),
    ...over,
  });

  it('an unanswered, unredirected connection to a captured address is stale', () => {
    expect(isStale(entry({}), req)).toBe(true);
  });
  it('an answered one is left alone (it works, and must keep working)', () => {
    expect(isStale(entry({ status: IPS_SEEN_REPLY }), req)).toBe(false);
  });
  it('a redirected one is ours: left alone', () => {
    expect(isStale(entry({ status: IPS_DST_NAT }), req)).toBe(false);
  });
  it('excluded and uncaptured addresses, and a family we do not capture, are left alone', () => {
    const to = (dst: string, family: Family = 4) =>
      entry({ family, orig: { src: '::1', dst, sport: 1, dport: 80 } });
    expect(isStale(to('203.0.113.9'), req)).toBe(false);
    expect(isStale(to('192.0.2.1'), req)).toBe(false);
    expect(isStale(to('2001:db8::1', 6), { ...req, subnets: [rule(6, '::', 0, false)] })).toBe(
      false,
    );
  });
  it('UDP to a captured nameserver port 53 is stale even when answered; other UDP is not', () => {
    const udp = (dst: string, dport: number, family: Family = 4) =>
      entry({
        family,
        proto: IPPROTO_UDP,
        status: IPS_SEEN_REPLY,
        orig: { src: '::1', dst, sport: 5, dport },
      });
    expect(isStale(udp('192.0.2.53', 53), req)).toBe(true);
    expect(isStale(udp('fe80::53', 53, 6), req)).toBe(true);
    expect(isStale(udp('192.0.2.53', 54), req)).toBe(false);
    expect(isStale(udp('192.0.2.54', 53), req)).toBe(false);
    expect(isStale(udp('192.0.2.53', 53), { ...req, ports: { ...req.ports, dns4: 0 } })).toBe(
      false,
    );
  });

  itProp.prop([requestArb(fc.constant({})), entryArb])(
    'TCP: stale exactly when unanswered, unredirected and captured by the rules',
    (r, e) => {
      const tcp = { ...e, proto: IPPROTO_TCP, origTuple: Buffer.alloc(0) };
      const expected =
        (tcp.status & (IPS_SEEN_REPLY | IPS_DST_NAT)) === 0 &&
        isCaptured(r.subnets, tcp.orig.dst, tcp.orig.dport);
      expect(isStale(tcp, r)).toBe(expected);
    },
  );
});
