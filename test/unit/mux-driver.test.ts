/**
 * The mux driver's writes: the frames of one event-loop turn leave in one
 * write to the pipe (one SSH packet on an ssh2 channel, not one per frame),
 * in order; `flush` writes them at once (before the caller ends the pipe),
 * and a large gathering does not wait for the end of the turn.
 */
import { PassThrough, Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { type ControlFrame, defaultMuxConfig, encodeFrame } from '../../src/domain/mux/index.js';
import { startMuxDriver } from '../../src/effects/helper/mux-driver.js';

/** A pipe end without `_writev`, like an ssh2 channel: every write is one packet. */
const recordingPipe = () => {
  const writes: Buffer[] = [];
  const writable = new Writable({
    write(chunk: Buffer, _enc, cb) {
      writes.push(Buffer.from(chunk));
      cb();
    },
  });
  return { writes, pipe: { readable: new PassThrough(), writable } };
};

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

const routes = (n: number): ControlFrame => ({
  kind: 'ROUTES',
  channel: 0,
  routes: [{ family: 4, ip: `10.0.0.${n}`, width: 32 }],
});

const start = (pipe: ReturnType<typeof recordingPipe>['pipe']) =>
  startMuxDriver({
    // No latency PINGs: the bytes written are exactly the frames sent.
    config: { ...defaultMuxConfig('server'), latencyControl: false },
    pipe,
    onCommand: () => {},
    now: () => 0,
    tickMs: 0,
  });

describe('mux driver writes', () => {
  it('gathers the frames of one turn into one write, in order', async () => {
    const { writes, pipe } = recordingPipe();
    const mux = start(pipe);
    await turn();
    const before = writes.length;
    const frames = [routes(1), routes(2), routes(3)];
    for (const f of frames) mux.dispatch({ kind: 'send', frame: f });
    expect(writes.length).toBe(before); // nothing yet: the turn is not over
    await turn();
    expect(writes.length).toBe(before + 1);
    expect(writes.at(-1)).toEqual(Buffer.concat(frames.map(encodeFrame)));
    mux.stop();
  });

  it('flush writes what was gathered at once; stop flushes too', async () => {
    const { writes, pipe } = recordingPipe();
    const mux = start(pipe);
    await turn();
    const before = writes.length;
    mux.dispatch({ kind: 'send', frame: routes(4) });
    mux.flush();
    expect(writes.length).toBe(before + 1);
    expect(writes.at(-1)).toEqual(encodeFrame(routes(4)));
    mux.dispatch({ kind: 'send', frame: routes(5) });
    mux.stop();
    expect(writes.at(-1)).toEqual(encodeFrame(routes(5)));
    await turn();
    expect(writes.length).toBe(before + 2);
  });

  it('does not hold a large gathering until the end of the turn', async () => {
    const { writes, pipe } = recordingPipe();
    const mux = start(pipe);
    await turn();
    const before = writes.length;
    const many = Array.from({ length: 400 }, (_, i) => routes(i % 250));
    const bytes = many.reduce((n, f) => n + encodeFrame(f).length, 0);
    // Enough frames to pass the threshold several times over.
    const rounds = Math.ceil((3 * 256 * 1024) / bytes);
    for (let r = 0; r < rounds; r++) for (const f of many) mux.dispatch({ kind: 'send', frame: f });
    expect(writes.length).toBeGreaterThanOrEqual(before + 3);
    await turn();
    const written = writes.slice(before).reduce((n, w) => n + w.length, 0);
    expect(written).toBe(rounds * bytes);
    mux.stop();
  });
});
