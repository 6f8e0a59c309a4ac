/**
 * The mux driver's writes: the frames of one event-loop turn leave in one
 * write to the pipe (one SSH packet on an ssh2 channel, not one per frame),
 * in order; `flush` writes them at once (before the caller ends the pipe),
 * and a large gathering does not wait for the end of the turn. Both ways of
 * gathering (views, or copies into pooled slabs) are checked; a copying
 * driver takes chunks of a shared read buffer and reuses a slab only once
 * the pipe is done with it.
 */
import { PassThrough, Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { feed, initialDecoder } from '../../src/domain/mux/decoder.js';
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

type Pipe = { readonly readable: PassThrough; readonly writable: Writable };

const startWith = (pipe: Pipe, copyWrites: boolean) =>
  startMuxDriver({
    // No latency PINGs: the bytes written are exactly the frames sent.
    config: { ...defaultMuxConfig('server'), latencyControl: false },
    pipe,
    onCommand: () => {},
    now: () => 0,
    tickMs: 0,
    copyWrites,
  });

describe.each([false, true])('mux driver writes (copyWrites %s)', (copyWrites) => {
  const start = (pipe: Pipe) => startWith(pipe, copyWrites);

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

/**
 * A pipe end that holds the chunks it was given (not copies) and takes
 * their bytes only when told to complete them, as an ssh2 channel out of
 * window does: bytes changed under it before then would show.
 */
const holdingPipe = () => {
  const held: { chunk: Buffer; cb: () => void }[] = [];
  const taken: Buffer[] = [];
  const writable = new Writable({
    write(chunk: Buffer, _enc, cb) {
      held.push({ chunk, cb });
    },
  });
  const release = (): void => {
    for (const h of held.splice(0)) {
      taken.push(Buffer.from(h.chunk));
      h.cb();
    }
  };
  return { taken, release, pipe: { readable: new PassThrough(), writable } };
};

/** The TCP_DATA payloads of channel 1 in the bytes a server wrote (after its banner). */
const dataOf = (bytes: Buffer): Buffer => {
  const [, frames, error] = feed(initialDecoder(true), bytes);
  expect(error).toBeNull();
  const out = frames.filter((f) => f.cmd === 0x4206 && f.channel === 1).map((f) => f.payload);
  return Buffer.concat(out);
};

describe('a copying mux driver', () => {
  it('takes chunks of a shared buffer: the pipe gets the bytes as they were, not as reused', async () => {
    const { taken, release, pipe } = holdingPipe();
    const mux = startWith(pipe, true);
    expect(mux.takesTransient()).toBe(true);
    mux.dispatch({
      kind: 'pipeData',
      bytes: encodeFrame({ kind: 'TCP_CONNECT', channel: 1, family: 2, ip: '10.0.0.1', port: 80 }),
    });
    const shared = Buffer.alloc(50_000);
    const want: Buffer[] = [];
    for (let i = 0; i < 40; i++) {
      const n = 1000 + i * 1100;
      shared.fill(i + 1, 0, n);
      want.push(Buffer.alloc(n, i + 1));
      mux.dispatch({
        kind: 'localData',
        channel: 1,
        bytes: shared.subarray(0, n),
        transient: true,
      });
      shared.fill(0xee);
      // Some writes complete at once, some later: a slab is reused only after its callback.
      if (i % 3 === 0) await turn();
      if (i % 5 === 0) release();
    }
    mux.flush();
    // Each completion lets the mux send more (its pipe cap): until all is out.
    for (let i = 0; i < 50; i++) {
      release();
      await turn();
    }
    expect(dataOf(Buffer.concat(taken)).equals(Buffer.concat(want))).toBe(true);
    mux.stop();
    expect(mux.takesTransient()).toBe(false);
  });

  it('does not take transient chunks when it gathers views', () => {
    const { pipe } = recordingPipe();
    const mux = startWith(pipe, false);
    expect(mux.takesTransient()).toBe(false);
    mux.stop();
  });
});
