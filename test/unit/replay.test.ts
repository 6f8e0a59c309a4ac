import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Event } from '../../src/domain/events.js';
import { decodeRecording, encodeLine, RECORDING_FORMAT } from '../../src/domain/recording.js';
import { initialSession, reduceSession } from '../../src/domain/session.js';
import { replayLines } from '../../src/streams/replay.js';
import { startupEvents, TARGET_NET_RULE } from './fixtures/session-events.js';

const header = (payload: boolean) =>
  JSON.stringify({
    format: RECORDING_FORMAT,
    version: 1,
    program: 'test',
    startedAt: '2026-01-01T00:00:00.000Z',
    payload,
  });

const startup = startupEvents(TARGET_NET_RULE);

const side = fc.constantFrom('local' as const, 'remote' as const);
/** Connection-level events on a handful of ids, in any order: the reducer must cope. */
const connEvent = (t: number) =>
  fc.oneof(
    fc.record({ id: fc.integer({ min: 1, max: 5 }), self: fc.boolean() }).map(
      ({ id, self }): Event => ({
        kind: 'conn.accept',
        t,
        id,
        family: 4,
        src: { ip: '127.0.0.1', port: 40000 + id },
        dst: { ip: '203.0.113.2', port: self ? 12300 : 80 },
        dstIsSelf: self,
      }),
    ),
    fc.integer({ min: 1, max: 5 }).map((id): Event => ({ kind: 'chan.open', t, id })),
    fc
      .integer({ min: 1, max: 5 })
      .map((id): Event => ({ kind: 'chan.failed', t, id, reason: 'connect failed' })),
    fc
      .record({
        id: fc.integer({ min: 1, max: 5 }),
        from: side,
        data: fc.uint8Array({ maxLength: 32 }),
      })
      .map(
        ({ id, from, data }): Event => ({
          kind: 'data',
          t,
          id,
          from,
          size: data.length,
          chunk: Buffer.from(data),
        }),
      ),
    fc
      .record({ id: fc.integer({ min: 1, max: 5 }), side })
      .map((x): Event => ({ kind: 'full', t, ...x })),
    fc
      .record({ id: fc.integer({ min: 1, max: 5 }), side })
      .map((x): Event => ({ kind: 'drain', t, ...x })),
    fc
      .record({ id: fc.integer({ min: 1, max: 5 }), from: side })
      .map((x): Event => ({ kind: 'eof', t, ...x })),
    fc
      .record({
        id: fc.integer({ min: 1, max: 5 }),
        side,
        error: fc.option(fc.constant('ECONNRESET')),
      })
      .map((x): Event => ({ kind: 'closed', t, ...x })),
  );

const sessionEvents = fc
  .array(fc.integer({ min: 0, max: 7 }), { maxLength: 60 })
  .chain((seeds) => fc.tuple(...seeds.map((_, i) => connEvent(10 + i))))
  .map((evs) => [...startup, ...evs]);

const record = (events: readonly Event[], payload: boolean): string => {
  let s = initialSession;
  const lines = [header(payload)];
  events.forEach((e, i) => {
    const [next, cmds] = reduceSession(s, e);
    s = next;
    lines.push(encodeLine(i + 1, e, cmds, payload));
  });
  return `${lines.join('\n')}\n`;
};

const foldAll = (events: readonly Event[]) =>
  events.reduce((s, e) => reduceSession(s, e)[0], initialSession);

describe('recording and replay', () => {
  it('replaying a recording reproduces every command and the final state (with and without payloads)', () => {
    fc.assert(
      fc.property(sessionEvents, fc.boolean(), (events, payload) => {
        const decoded = decodeRecording(record(events, payload));
        expect(decoded.ok).toBe(true);
        if (!decoded.ok) return;
        const result = replayLines(decoded.lines);
        expect(result.divergence).toBeNull();
        const live = foldAll(events);
        expect({ ...result.final, conns: [...result.final.conns] }).toEqual({
          ...live,
          conns: [...live.conns],
        });
      }),
    );
  });

  it('folding the same events twice gives identical commands (determinism)', () => {
    fc.assert(
      fc.property(sessionEvents, (events) => {
        expect(record(events, true)).toBe(record(events, true));
      }),
    );
  });

  it('reports a divergence at the event whose recorded commands differ', () => {
    const events = [
      ...startup,
      {
        kind: 'conn.accept',
        t: 9,
        id: 1,
        family: 4,
        src: { ip: '127.0.0.1', port: 4 },
        dst: { ip: '203.0.113.2', port: 80 },
        dstIsSelf: false,
      } as Event,
    ];
    const text = record(events, false).replace('"chan.open"', '"chan.opened"');
    const decoded = decodeRecording(text);
    if (!decoded.ok) throw new Error(decoded.message);
    expect(replayLines(decoded.lines).divergence?.seq).toBe(6);
  });

  it('names the line of a malformed or incompatible file', () => {
    const good = record(startup, false).split('\n');
    expect(decodeRecording(`${good[0]}\n${good[1]}\n{not json\n`)).toMatchObject({
      ok: false,
      line: 3,
    });
    expect(
      decodeRecording(`${good[0]}\n{"seq":1,"event":{"kind":"bogus","t":0},"commands":[]}\n`),
    ).toMatchObject({
      ok: false,
      line: 2,
    });
    const v2 = good[0]?.replace('"version":1', '"version":2') ?? '';
    const res = decodeRecording(`${v2}\n`);
    expect(res).toMatchObject({ ok: false, line: 1 });
    expect(!res.ok && res.message).toMatch(/version 2 is not supported/);
    expect(decodeRecording('')).toMatchObject({ ok: false, line: 1 });
    expect(decodeRecording('{"hello":1}\n')).toMatchObject({ ok: false, line: 1 });
  });

  it('a start with connectEarly replays; one without it (older recordings) still decodes; a mistyped one does not', () => {
    const start = startup[0] as Extract<Event, { kind: 'start' }>;
    const early = [{ ...start, connectEarly: true }, ...startup.slice(1)] as Event[];
    const decoded = decodeRecording(record(early, false));
    if (!decoded.ok) throw new Error(decoded.message);
    expect(decoded.lines[0]?.event).toMatchObject({ kind: 'start', connectEarly: true });
    expect(replayLines(decoded.lines).divergence).toBeNull();
    const older = record(startup, false);
    expect(older).not.toContain('connectEarly');
    expect(decodeRecording(older).ok).toBe(true);
    const mistyped = record(early, false).replace('"connectEarly":true', '"connectEarly":"yes"');
    expect(decodeRecording(mistyped)).toMatchObject({ ok: false, line: 2 });
  });

  it('keeps payloads out of a recording unless asked', () => {
    const events = [
      ...startup,
      { kind: 'data', t: 9, id: 1, from: 'local', size: 6, chunk: Buffer.from('secret') } as Event,
    ];
    expect(record(events, false)).not.toContain(Buffer.from('secret').toString('base64'));
    expect(record(events, true)).toContain(Buffer.from('secret').toString('base64'));
  });
});
