/**
 * The datagram session reducer (tproxy UDP): keying by local source, idle
 * expiry, replies to the right application, and a model-based property over
 * random interleavings of datagrams, replies, ticks and transport closes.
 */
import * as fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Command } from '../../src/domain/commands.js';
import type { Event } from '../../src/domain/events.js';
import { initialSession, reduceSession } from '../../src/domain/session.js';
import {
  initialUdp,
  reduceUdp,
  UDP_IDLE_MS,
  type UdpEvent,
  type UdpState,
  udpKey,
} from '../../src/domain/udp-sessions.js';

const IDLE = 30_000;
const chunk = (text: string) => Buffer.from(text);
const recv = (t: number, srcPort: number, dstPort = 7, srcIp = '10.0.0.1'): UdpEvent => ({
  kind: 'udp.recv',
  t,
  family: 4,
  src: { ip: srcIp, port: srcPort },
  dst: { ip: '203.0.113.2', port: dstPort },
  size: 3,
  chunk: chunk('abc'),
});

const run = (events: readonly UdpEvent[], running = true) => {
  let s: UdpState = initialUdp;
  const all: Command[] = [];
  for (const e of events) {
    const [next, cmds] = reduceUdp(s, e, running, IDLE);
    s = next;
    all.push(...cmds);
  }
  return { s, cmds: all.filter((c) => c.kind !== 'log') };
};

describe('udp sessions', () => {
  it('keys by local source: one session per source, datagrams to any destination share it', () => {
    const { s, cmds } = run([recv(0, 5000, 7), recv(1, 5000, 53), recv(2, 5001, 7)]);
    expect(cmds.map((c) => c.kind)).toEqual([
      'udp.open',
      'udp.send',
      'udp.send',
      'udp.open',
      'udp.send',
    ]);
    expect(cmds[0]).toMatchObject({ kind: 'udp.open', id: 1, src: { ip: '10.0.0.1', port: 5000 } });
    expect(cmds[2]).toMatchObject({ kind: 'udp.send', id: 1, dst: { port: 53 } });
    expect(cmds[3]).toMatchObject({ kind: 'udp.open', id: 2 });
    expect(s.sessions.size).toBe(2);
    expect(s.totals).toMatchObject({ opened: 2, datagramsUp: 3, bytesUp: 9 });
  });

  it('the same port from another address, or another family, is another session', () => {
    const v6: UdpEvent = {
      ...recv(0, 5000),
      family: 6,
      src: { ip: '::1', port: 5000 },
    } as UdpEvent;
    const { s } = run([recv(0, 5000), recv(0, 5000, 7, '10.0.0.2'), v6]);
    expect(s.sessions.size).toBe(3);
    expect(udpKey(4, { ip: '10.0.0.1', port: 1 })).not.toBe(udpKey(6, { ip: '10.0.0.1', port: 1 }));
  });

  it('a reply goes to the session source, sent from the remote peer', () => {
    const { cmds } = run([
      recv(0, 5000),
      {
        kind: 'udp.data',
        t: 5,
        id: 1,
        src: { ip: '203.0.113.2', port: 7 },
        size: 2,
        chunk: chunk('hi'),
      },
    ]);
    expect(cmds.at(-1)).toEqual({
      kind: 'udp.reply',
      family: 4,
      from: { ip: '203.0.113.2', port: 7 },
      to: { ip: '10.0.0.1', port: 5000 },
      chunk: chunk('hi'),
    });
  });

  it('expires after the idle time (either direction counts), on tick or on the next datagram', () => {
    const reply: UdpEvent = {
      kind: 'udp.data',
      t: 20_000,
      id: 1,
      src: { ip: '203.0.113.2', port: 7 },
      size: 1,
      chunk: chunk('x'),
    };
    // the reply at 20 s keeps it alive at 40 s
    expect(run([recv(0, 5000), reply, { kind: 'tick', t: 40_000 }]).s.sessions.size).toBe(1);
    const { s, cmds } = run([recv(0, 5000), reply, { kind: 'tick', t: 50_000 }]);
    expect(s.sessions.size).toBe(0);
    expect(cmds.at(-1)).toEqual({ kind: 'udp.close', id: 1 });
    // lazily, as upstream: a new datagram from another source closes the old one first
    const lazy = run([recv(0, 5000), recv(30_000, 5001)]);
    expect(lazy.cmds.map((c) => c.kind)).toEqual([
      'udp.open',
      'udp.send',
      'udp.close',
      'udp.open',
      'udp.send',
    ]);
    // the same source after expiry gets a new session id
    const again = run([recv(0, 5000), recv(30_000, 5000)]);
    expect(again.cmds.filter((c) => c.kind === 'udp.open').map((c) => c.id)).toEqual([1, 2]);
  });

  it('a datagram of a live session copies neither the source index nor the other sessions', () => {
    const { s } = run(Array.from({ length: 200 }, (_, i) => recv(i, 5000 + i)));
    const [next] = reduceUdp(s, recv(300, 5100), true, IDLE);
    expect(next.byKey).toBe(s.byKey);
    expect(next.sessions.get(1)).toBe(s.sessions.get(1));
    expect(next.sessions.get(101)?.up.datagrams).toBe(2);
    // the busy session moved to the end of the idle order; the oldest leads it
    expect(next.idle.first()?.[1]).toBe(1);
    expect([...next.idle.values()].at(-1)).toBe(101);
  });

  it('an expiry closes the least recently active sessions first', () => {
    const reply = (t: number, id: number): UdpEvent => ({
      kind: 'udp.data',
      t,
      id,
      src: { ip: '203.0.113.2', port: 7 },
      size: 1,
      chunk: chunk('x'),
    });
    // 1 opens first but 2 goes quiet first
    const { cmds } = run([recv(0, 5000), recv(1, 5001), reply(5, 1), { kind: 'tick', t: 40_000 }]);
    expect(cmds.filter((c) => c.kind === 'udp.close')).toEqual([
      { kind: 'udp.close', id: 2 },
      { kind: 'udp.close', id: 1 },
    ]);
  });

  it('drops datagrams before running and replies for unknown sessions', () => {
    expect(run([recv(0, 5000)], false).cmds).toEqual([]);
    expect(run([recv(0, 5000)], false).s.totals.dropped).toBe(1);
    const { s, cmds } = run([
      {
        kind: 'udp.data',
        t: 0,
        id: 9,
        src: { ip: '1.1.1.1', port: 1 },
        size: 1,
        chunk: chunk('x'),
      },
    ]);
    expect(cmds).toEqual([]);
    expect(s.totals.dropped).toBe(1);
  });

  it('a transport close ends the session; a second close is a no-op', () => {
    const { s } = run([
      recv(0, 5000),
      { kind: 'udp.closed', t: 1, id: 1, reason: 'ssh connection lost' },
      { kind: 'udp.closed', t: 2, id: 1, reason: null },
    ]);
    expect(s.sessions.size).toBe(0);
    expect(s.byKey.size).toBe(0);
    expect(s.idle.size).toBe(0);
    expect(s.totals.closed).toBe(1);
  });

  it('the session reducer hands datagram events to it only while running', () => {
    const start: Event = {
      kind: 'start',
      t: 0,
      rules: [],
      listen: [],
      nameservers: [],
      dnsListen: [],
      reconnect: false,
    };
    const [s1] = reduceSession(initialSession, start);
    const [, early] = reduceSession(s1, recv(1, 5000));
    expect(early.filter((c) => c.kind === 'udp.open')).toEqual([]);
    const [s2, ready] = reduceSession(s1, { kind: 'fw.ready', t: 2, method: 'tproxy' });
    expect(ready).toContainEqual({ kind: 'listen', addrs: [], dns: [], tproxy: true });
    const running = { ...s2, phase: 'running' as const };
    const [s3, cmds] = reduceSession(running, recv(3, 5000));
    expect(cmds.map((c) => c.kind)).toContain('udp.open');
    expect(s3.udp.sessions.size).toBe(1);
    expect(UDP_IDLE_MS).toBe(30_000);
  });
});

// ---------------------------------------------------------------------------
// model-based property
// ---------------------------------------------------------------------------

type Step =
  | { readonly k: 'recv'; readonly dt: number; readonly src: number; readonly dst: number }
  | { readonly k: 'reply'; readonly dt: number; readonly pick: number }
  | { readonly k: 'tick'; readonly dt: number }
  | { readonly k: 'closed'; readonly dt: number; readonly pick: number };

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  fc.record({
    k: fc.constant('recv' as const),
    dt: fc.nat(20_000),
    src: fc.integer({ min: 1, max: 4 }),
    dst: fc.integer({ min: 1, max: 3 }),
  }),
  fc.record({ k: fc.constant('reply' as const), dt: fc.nat(20_000), pick: fc.nat(20) }),
  fc.record({ k: fc.constant('tick' as const), dt: fc.nat(40_000) }),
  fc.record({ k: fc.constant('closed' as const), dt: fc.nat(5_000), pick: fc.nat(20) }),
);

describe('udp sessions: model', () => {
  it('one live session per source; every open is closed at most once; nothing outlives the idle time', () => {
    fc.assert(
      fc.property(fc.array(stepArb, { maxLength: 80 }), (steps) => {
        let s: UdpState = initialUdp;
        let t = 0;
        const opened = new Map<number, string>(); // id -> source key
        const ended = new Set<number>();
        const last = new Map<number, number>(); // id -> last datagram time
        for (const step of steps) {
          t += step.dt;
          let e: UdpEvent;
          const ids = [...s.sessions.keys()];
          if (step.k === 'recv') e = recv(t, 5000 + step.src, step.dst);
          else if (step.k === 'tick') e = { kind: 'tick', t };
          else {
            const id = ids.length === 0 ? 99 : (ids[step.pick % ids.length] ?? 99);
            e =
              step.k === 'reply'
                ? {
                    kind: 'udp.data',
                    t,
                    id,
                    src: { ip: '203.0.113.2', port: 7 },
                    size: 1,
                    chunk: chunk('r'),
                  }
                : { kind: 'udp.closed', t, id, reason: null };
          }
          const [next, cmds] = reduceUdp(s, e, true, IDLE);
          for (const c of cmds) {
            if (c.kind === 'udp.open') {
              expect(opened.has(c.id)).toBe(false);
              // no other live session for that source
              expect(
                [...opened].filter(([id, k]) => k === udpKey(4, c.src) && !ended.has(id)),
              ).toEqual([]);
              opened.set(c.id, udpKey(4, c.src));
            }
            if (c.kind === 'udp.close') {
              expect(opened.has(c.id) && !ended.has(c.id)).toBe(true);
              ended.add(c.id);
            }
            if (c.kind === 'udp.send') {
              expect(opened.get(c.id)).toBe(
                udpKey(4, (e as { src: { ip: string; port: number } }).src),
              );
              last.set(c.id, t);
            }
            if (c.kind === 'udp.reply') {
              expect(udpKey(4, c.to)).toBe(opened.get((e as { id: number }).id));
              last.set((e as { id: number }).id, t);
            }
          }
          if (e.kind === 'udp.closed' && opened.has(e.id)) ended.add(e.id);
          s = next;
          // state agrees with the model
          const live = [...opened.keys()].filter((id) => !ended.has(id));
          expect([...s.sessions.keys()].sort()).toEqual(live.sort());
          // the source index and the idle order hold exactly the live sessions
          expect([...s.byKey.values()].sort()).toEqual(live.sort());
          expect([...s.idle.values()].sort()).toEqual(live.sort());
          // after a tick no live session is idle for the timeout
          if (e.kind === 'tick')
            for (const id of live) expect(t - (last.get(id) ?? 0)).toBeLessThan(IDLE);
        }
      }),
    );
  });
});
