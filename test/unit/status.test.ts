import fc from 'fast-check';
import * as E from 'fp-ts/lib/Either.js';
import { describe, expect, it, vi } from 'vitest';
import { parseCommandLine } from '../../src/cli/options.js';
import type { Event } from '../../src/domain/events.js';
import { RECONNECT_TIMER } from '../../src/domain/reconnect.js';
import { initialSession, reduceSession, type SessionState } from '../../src/domain/session.js';
import {
  humanBytes,
  initialStatus,
  RATE_WINDOW_S,
  rates,
  reduceStatus,
  type StatusState,
  statusLine,
  statusReport,
  statusText,
} from '../../src/domain/status.js';
import { startStatusLine } from '../../src/effects/status-line.js';
import { acceptEvent, startupEvents, TARGET_NET_RULE } from './fixtures/session-events.js';

const startup = startupEvents(TARGET_NET_RULE).map((e) =>
  e.kind === 'start' ? { ...e, reconnect: true } : e,
);

/** Session and status folded together, as the client does. */
const foldBoth = (events: readonly Event[]) => {
  let session: SessionState = initialSession;
  let status: StatusState = initialStatus;
  const trail: { session: SessionState; status: StatusState }[] = [];
  for (const e of events) {
    [session] = reduceSession(session, e);
    status = reduceStatus(status, e, session);
    trail.push({ session, status });
  }
  return { session, status, trail };
};

const EMPTY = Buffer.alloc(0);

/** One step of a random session after startup (times are filled in later). */
const step: fc.Arbitrary<(t: number) => Event> = fc.oneof(
  fc.nat(5).map(
    (id) =>
      (t: number): Event =>
        acceptEvent(id, t),
  ),
  fc.nat(5).map(
    (id) =>
      (t: number): Event => ({ kind: 'chan.open', t, id }),
  ),
  fc.tuple(fc.nat(5), fc.constantFrom('local' as const, 'remote' as const), fc.nat(70_000)).map(
    ([id, from, size]) =>
      (t: number): Event => ({ kind: 'data', t, id, from, size, chunk: EMPTY }),
  ),
  fc.tuple(fc.nat(5), fc.constantFrom('local' as const, 'remote' as const), fc.boolean()).map(
    ([id, side, err]) =>
      (t: number): Event => ({ kind: 'closed', t, id, side, error: err ? 'ECONNRESET' : null }),
  ),
  fc.nat(5).map(
    (id) =>
      (t: number): Event => ({ kind: 'chan.failed', t, id, reason: 'connect failed' }),
  ),
  fc.nat(5).map(
    (id) =>
      (t: number): Event => ({
        kind: 'dns.query',
        t,
        id,
        family: 4,
        src: { ip: '127.0.0.1', port: 5353 },
        name: 'web.lab.test',
        qtype: 1,
        size: 30,
        chunk: EMPTY,
      }),
  ),
  fc.nat(5).map(
    (id) =>
      (t: number): Event => ({ kind: 'dns.answer', t, id, rcode: 0, size: 40, chunk: EMPTY }),
  ),
  fc.constant((t: number): Event => ({ kind: 'ssh.down', t, reason: 'EOF' })),
  fc.constant((t: number): Event => ({ kind: 'timer', t, name: RECONNECT_TIMER })),
  fc.constant((t: number): Event => ({ kind: 'ssh.up', t, server: '198.51.100.1', excludes: [] })),
);

const session = fc.array(fc.tuple(step, fc.nat(1500)), { maxLength: 120 }).map((steps) => {
  let t = 10;
  return [
    ...startup,
    ...steps.map(([make, dt]) => {
      t += dt;
      return make(t);
    }),
  ];
});

describe('status reducer properties', () => {
  it('byte totals are the sums of the data events, both ways', () => {
    fc.assert(
      fc.property(session, (events) => {
        const { status } = foldBoth(events);
        const sum = (from: string) =>
          events.reduce((n, e) => (e.kind === 'data' && e.from === from ? n + e.size : n), 0);
        expect(status.bytesUp).toBe(sum('local'));
        expect(status.bytesDown).toBe(sum('remote'));
      }),
    );
  });

  it('the open count is never negative and is what the session holds; refused never exceeds accepted', () => {
    fc.assert(
      fc.property(session, (events) => {
        for (const { session: s, status } of foldBoth(events).trail) {
          expect(status.open).toBeGreaterThanOrEqual(0);
          expect(status.open).toBe(s.conns.size);
          expect(status.refused).toBeLessThanOrEqual(status.accepted);
        }
      }),
    );
  });

  it('counts every accept and DNS query; answers never exceed queries', () => {
    fc.assert(
      fc.property(session, (events) => {
        const { status } = foldBoth(events);
        const count = (k: Event['kind']) => events.filter((e) => e.kind === k).length;
        expect(status.accepted).toBe(count('conn.accept'));
        expect(status.dnsQueries).toBe(count('dns.query'));
        expect(status.dnsAnswered).toBeLessThanOrEqual(status.dnsQueries);
      }),
    );
  });

  it('rates never exceed what the window carried, and never go negative', () => {
    fc.assert(
      fc.property(session, fc.nat(5_000), (events, extra) => {
        const { status } = foldBoth(events);
        const now = status.t + extra;
        const r = rates(status, now);
        const sec = Math.floor(now / 1000);
        const carried = (from: string) =>
          events.reduce(
            (n, e) =>
              e.kind === 'data' &&
              e.from === from &&
              Math.floor(e.t / 1000) < sec &&
              Math.floor(e.t / 1000) >= sec - RATE_WINDOW_S
                ? n + e.size
                : n,
            0,
          );
        expect(r.up).toBe(carried('local') / RATE_WINDOW_S);
        expect(r.down).toBe(carried('remote') / RATE_WINDOW_S);
        expect(status.buckets.length).toBeLessThanOrEqual(4);
      }),
    );
  });
});

describe('status views', () => {
  const data = (t: number, from: 'local' | 'remote', size: number): Event => ({
    kind: 'data',
    t,
    id: 1,
    from,
    size,
    chunk: EMPTY,
  });

  it('reports the tunnel state, bytes, rates and the time in that state', () => {
    const { status } = foldBoth([
      ...startup,
      acceptEvent(1, 100),
      { kind: 'chan.open', t: 110, id: 1 },
      data(1200, 'local', 100),
      data(2100, 'remote', 1_048_576),
      data(2500, 'remote', 1_048_576),
    ]);
    const r = statusReport(status, 3_400, { pid: 42, version: '0.1.0' });
    expect(r).toMatchObject({
      tunnel: 'connected',
      server: '198.51.100.1',
      listen: ['127.0.0.1:12300'],
      open: 1,
      bytesUp: 100,
      bytesDown: 2_097_152,
      rateUp: 50,
      rateDown: 1_048_576,
      forS: 3,
    });
    expect(statusLine(r)).toBe(
      'connected to 198.51.100.1 | 1 open | up 100 B 50 B/s | down 2.0 MiB 1.0 MiB/s',
    );
    expect(statusText(r, '/run/sshuttle-ts/12300.42.sock')).toContain(
      'bytes down:  2097152 (2.0 MiB), 1.0 MiB/s',
    );
  });

  it('says when the tunnel is down and captured connections are refused', () => {
    const { status } = foldBoth([...startup, { kind: 'ssh.down', t: 1_000, reason: 'EOF' }]);
    const r = statusReport(status, 8_000, { pid: 1, version: 'x' });
    expect(r.tunnel).toBe('reconnecting');
    expect(statusLine(r)).toContain('RECONNECTING (down 7s, captured connections refused)');
  });

  it('prints sizes in binary units', () => {
    expect([0, 1023, 1536, 10 * 1024 * 1024, 3 * 1024 ** 3].map(humanBytes)).toEqual([
      '0 B',
      '1023 B',
      '1.5 KiB',
      '10 MiB',
      '3.0 GiB',
    ]);
  });
});

describe('the status command line', () => {
  const parse = (argv: string[]) => parseCommandLine(argv, {}, () => E.left('no files'));
  it('takes an optional pid or port and --json', () => {
    expect(parse(['status'])).toEqual(E.right({ kind: 'status', which: null, json: false }));
    expect(parse(['status', '12300', '--json'])).toEqual(
      E.right({ kind: 'status', which: 12300, json: true }),
    );
    expect(parse(['status', 'x'])).toEqual(
      E.left({
        message: 'status: unexpected argument "x" (usage: sshuttle-ts status [PID|PORT] [--json])',
      }),
    );
  });
});

describe('the live status line', () => {
  it('redraws in place each period, truncates to the terminal, and erases itself for logs and at the end', () => {
    vi.useFakeTimers();
    try {
      const writes: string[] = [];
      const out = { columns: 30, write: (s: string) => writes.push(s) > 0 };
      let n = 0;
      const line = startStatusLine(
        () => `tick ${++n} ${'x'.repeat(40)}`,
        out as unknown as NodeJS.WriteStream,
        1_000,
      );
      line.clear(); // nothing drawn yet: nothing to erase
      expect(writes).toEqual([]);
      vi.advanceTimersByTime(2_000);
      expect(writes).toEqual([
        `\r\x1b[Ktick 1 ${'x'.repeat(21)}~`,
        `\r\x1b[Ktick 2 ${'x'.repeat(21)}~`,
      ]);
      line.clear();
      expect(writes.at(-1)).toBe('\r\x1b[K');
      line.stop();
      vi.advanceTimersByTime(5_000);
      expect(writes).toHaveLength(3);
    } finally {
      vi.useRealTimers();
    }
  });
});
