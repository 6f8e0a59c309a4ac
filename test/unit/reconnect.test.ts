import fc from 'fast-check';
import * as E from 'fp-ts/lib/Either.js';
import { describe, expect, it } from 'vitest';
import type { Command } from '../../src/domain/commands.js';
import { summarizeDns } from '../../src/domain/dns-message.js';
import type { Event } from '../../src/domain/events.js';
import {
  type BackoffPolicy,
  backoffDelay,
  DEFAULT_BACKOFF,
  RECONNECT_TIMER,
} from '../../src/domain/reconnect.js';
import { EXIT_FATAL, reduceSession } from '../../src/domain/session.js';
import { dnsQuery } from './fixtures/dns-query.js';
import {
  acceptEvent as accept,
  foldSession as fold,
  startupEvents,
  TARGET_NET_RULE,
} from './fixtures/session-events.js';

const startupWith = (reconnect: boolean): Event[] =>
  startupEvents(TARGET_NET_RULE).map((e) => (e.kind === 'start' ? { ...e, reconnect } : e));

const down = (t: number): Event => ({
  kind: 'ssh.down',
  t,
  reason: 'connection closed by the server',
});
const timer = (t: number): Event => ({ kind: 'timer', t, name: RECONNECT_TIMER });
const failed = (t: number): Event => ({ kind: 'ssh.failed', t, message: 'ECONNREFUSED' });
const up = (t: number): Event => ({
  kind: 'ssh.up',
  t,
  server: '198.51.100.1',
  excludes: ['198.51.100.1'],
});
const kinds = (cmds: readonly Command[]) => cmds.map((c) => c.kind);

describe('backoff schedule', () => {
  it('starts at 0.5 s, doubles, and stops growing at 4 s', () => {
    expect([0, 1, 2, 3, 4, 5, 50].map((a) => backoffDelay(a))).toEqual([
      500, 1000, 2000, 4000, 4000, 4000, 4000,
    ]);
  });

  it('never shrinks, never exceeds the cap, and is never below the first delay', () => {
    const policy = fc.record({
      firstMs: fc.integer({ min: 1, max: 10_000 }),
      factor: fc.double({ min: 1, max: 4, noNaN: true }),
      maxMs: fc.integer({ min: 10_000, max: 120_000 }),
    });
    fc.assert(
      fc.property(policy, fc.nat(200), (p: BackoffPolicy, a) => {
        const d = backoffDelay(a, p);
        expect(d).toBeLessThanOrEqual(p.maxMs);
        expect(d).toBeGreaterThanOrEqual(p.firstMs);
        expect(backoffDelay(a + 1, p)).toBeGreaterThanOrEqual(d);
      }),
    );
  });
});

describe('reconnect with a kill-switch', () => {
  it('keeps the rules when ssh drops, refuses captured connections at once, and retries', () => {
    const { state, commands } = fold([...startupWith(true), down(10), accept(1, 11)]);
    expect(state.phase).toBe('reconnecting');
    expect(state.exit).toBeNull();
    const onDown = commands.at(-2) ?? [];
    expect(kinds(onDown)).toEqual(['log', 'timer.start']);
    expect(onDown[1]).toEqual({ kind: 'timer.start', name: RECONNECT_TIMER, ms: 500 });
    // No shutdown, so the firewall helper keeps the rules.
    expect(commands.flat().some((c) => c.kind === 'shutdown')).toBe(false);
    // The captured connection is reset at once, never sent to the dead transport.
    expect(commands.at(-1)).toEqual([
      { kind: 'close', id: 1, side: 'local', abort: true },
      {
        kind: 'log',
        level: 'warn',
        msg: 'connection to 203.0.113.2:80 refused: the tunnel is down (reconnecting)',
      },
    ]);
    expect(state.totals.refused).toBe(1);
  });

  it('retries on the backoff schedule until ssh is back, then captures again', () => {
    const { state, commands } = fold([
      ...startupWith(true),
      down(10),
      timer(510),
      failed(520),
      timer(1520),
      failed(1530),
      timer(3530),
      up(3600),
      accept(2, 3700),
    ]);
    const waits = commands.flat().filter((c) => c.kind === 'timer.start');
    expect(waits.map((c) => (c as { ms: number }).ms)).toEqual([500, 1000, 2000]);
    expect(commands.flat().filter((c) => c.kind === 'ssh.connect')).toHaveLength(1 + 3);
    expect(state.phase).toBe('running');
    expect(state.reconnect).toMatchObject({ attempt: 0, downSince: null, reconnects: 1 });
    expect(kinds(commands.at(-1) ?? [])).toEqual(['chan.open', 'log']);
    // The rules were never touched again.
    expect(commands.flat().filter((c) => c.kind === 'fw.setup')).toHaveLength(1);
  });

  it('ignores a late timer once connected, and a drop of a link that never came up', () => {
    const { commands, state } = fold([
      ...startupWith(true),
      down(10),
      timer(510),
      down(515),
      failed(520),
      up(900),
      timer(1000),
    ]);
    expect(commands.at(-1)).toEqual([]);
    expect(state.phase).toBe('running');
    expect(state.exit).toBeNull();
  });

  it('with --no-reconnect, a drop ends the session with the fatal code (as sshuttle)', () => {
    const { state, last } = fold([...startupWith(false), down(10)]);
    expect(state.exit).toMatchObject({ code: EXIT_FATAL });
    expect(last.find((c) => c.kind === 'shutdown')).toMatchObject({ code: EXIT_FATAL });
  });

  it('an initial connection failure still exits, reconnect or not', () => {
    const start = startupWith(true).slice(0, 3);
    expect(fold([...start, failed(5)]).state.exit).toMatchObject({ code: EXIT_FATAL });
    // A drop before the rules were in is not a reconnect either.
    expect(fold([...start, up(4), down(5)]).state.exit).toMatchObject({ code: EXIT_FATAL });
  });

  it('a signal while reconnecting exits cleanly', () => {
    const { state } = fold([
      ...startupWith(true),
      down(10),
      { kind: 'signal', t: 11, name: 'SIGTERM' },
    ]);
    expect(state.exit).toMatchObject({ code: 0 });
  });
});

/** Any order of drops, timers, failures, successes and accepts after startup. */
const outageEvents = fc.array(
  fc.oneof(
    fc.constant('down' as const),
    fc.constant('timer' as const),
    fc.constant('failed' as const),
    fc.constant('up' as const),
    fc.constant('accept' as const),
  ),
  { maxLength: 60 },
);

describe('reconnect model', () => {
  it('never opens a channel while down, never touches the rules, always retries, never exits', () => {
    fc.assert(
      fc.property(outageEvents, (steps) => {
        let { state } = fold(startupWith(true));
        let t = 10;
        let id = 0;
        for (const step of steps) {
          t += 7;
          // The transports report a failure only for a connect in flight (while reconnecting).
          if (step === 'failed' && state.phase === 'running') continue;
          const e =
            step === 'down'
              ? down(t)
              : step === 'timer'
                ? timer(t)
                : step === 'failed'
                  ? failed(t)
                  : step === 'up'
                    ? up(t)
                    : accept(++id, t);
          const before = state.phase;
          const [next, cmds] = reduceSession(state, e);
          state = next;
          const ks = kinds(cmds);
          expect(ks).not.toContain('shutdown');
          expect(ks).not.toContain('fw.setup');
          expect(state.exit).toBeNull();
          if (e.kind === 'conn.accept') {
            if (before === 'reconnecting') {
              expect(ks).not.toContain('chan.open');
              expect(cmds[0]).toEqual({ kind: 'close', id: e.id, side: 'local', abort: true });
            } else expect(ks).toContain('chan.open');
          }
          // Every failed attempt or drop while running schedules the next one.
          if (
            (e.kind === 'ssh.failed' && before === 'reconnecting') ||
            (e.kind === 'ssh.down' && before === 'running')
          ) {
            const w = cmds.find((c) => c.kind === 'timer.start');
            expect(w).toBeDefined();
            expect((w as { ms: number }).ms).toBeLessThanOrEqual(DEFAULT_BACKOFF.maxMs);
          }
          expect(['running', 'reconnecting']).toContain(state.phase);
        }
      }),
    );
  });
});

describe('DNS while the tunnel is down', () => {
  it('a captured query is answered SERVFAIL at once (same id and question), never forwarded', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 0xffff }),
        fc.array(fc.stringMatching(/^[a-z0-9-]{1,20}$/), { minLength: 1, maxLength: 4 }),
        fc.constantFrom(1, 28),
        (qid, labels, qtype) => {
          const name = labels.join('.');
          const chunk = dnsQuery(qid, name, qtype);
          const { commands, state } = fold([
            ...startupWith(true),
            down(10),
            {
              kind: 'dns.query',
              t: 11,
              id: 7,
              family: 4,
              src: { ip: '127.0.0.1', port: 5353 },
              name,
              qtype,
              size: chunk.length,
              chunk,
            },
          ]);
          const last = commands.at(-1) ?? [];
          expect(kinds(last)).toEqual(['dns.reply', 'log']);
          const reply = last[0] as Extract<Command, { kind: 'dns.reply' }>;
          expect(reply).toMatchObject({ id: 7, family: 4, dst: { ip: '127.0.0.1', port: 5353 } });
          expect(summarizeDns(reply.chunk)).toEqual(
            E.right({ id: qid, response: true, rcode: 2, name, type: qtype }),
          );
          expect(state.totals.dnsFailed).toBe(1);
          expect(state.dns.size).toBe(0);
        },
      ),
    );
  });
});
