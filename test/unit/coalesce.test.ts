import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { coalesceWrites } from '../../src/effects/coalesce-writes.js';
import { flushWindowAdjusts } from '../../src/effects/ssh/flush-window-adjusts.js';

/** A sink that records each system-call-sized write it gets (one per _write/_writev). */
const sink = () => {
  const calls: string[][] = [];
  const w = new Writable({
    write(chunk: Buffer, _enc, cb) {
      calls.push([chunk.toString()]);
      cb();
    },
    writev(chunks, cb) {
      calls.push(chunks.map((c) => (c.chunk as Buffer).toString()));
      cb();
    },
  });
  return { w, calls };
};

const tick = () => new Promise((r) => setImmediate(r));

describe('coalescing the SSH socket writes of one tick', () => {
  it('sends the writes of one tick as one writev, in order', async () => {
    const { w, calls } = sink();
    coalesceWrites(w);
    w.write(Buffer.from('a'));
    w.write(Buffer.from('b'));
    w.write(Buffer.from('c'));
    expect(calls).toEqual([]);
    await tick();
    expect(calls).toEqual([['a', 'b', 'c']]);
  });

  it('keeps writes of different ticks apart, and calls every callback', async () => {
    const { w, calls } = sink();
    coalesceWrites(w);
    const done: string[] = [];
    w.write(Buffer.from('1'), () => done.push('1'));
    await tick();
    w.write(Buffer.from('2'), () => done.push('2'));
    w.write(Buffer.from('3'), () => done.push('3'));
    await tick();
    expect(calls).toEqual([['1'], ['2', '3']]);
    expect(done).toEqual(['1', '2', '3']);
    expect(w.writableCorked).toBe(0);
  });

  it('without it, every write is its own call (what the wrapper changes)', async () => {
    const { w, calls } = sink();
    w.write(Buffer.from('a'));
    w.write(Buffer.from('b'));
    await tick();
    expect(calls.length).toBe(2);
  });
});

describe("coalescing per turn (the SSH socket's mode)", () => {
  /** Two callbacks of one turn of the event loop, like two I/O callbacks. */
  const twoCallbacksOfOneTurn = (a: () => void, b: () => void): Promise<void> =>
    new Promise((resolve) => {
      setImmediate(a);
      setImmediate(b);
      setImmediate(() => setImmediate(resolve));
    });

  it.each([
    ['turn', 'in one writev', [['open', 'close']]],
    ['tick', 'apart, one writev per callback', [['open'], ['close']]],
  ] as const)(
    "'%s' sends the writes of two callbacks of one turn %s",
    async (until, _how, want) => {
      const { w, calls } = sink();
      coalesceWrites(w, until);
      await twoCallbacksOfOneTurn(
        () => w.write(Buffer.from('open')),
        () => w.write(Buffer.from('close')),
      );
      expect(calls).toEqual(want);
    },
  );

  it('the returned flush sends what is corked now, and the turn goes on coalescing', async () => {
    const { w, calls } = sink();
    const flush = coalesceWrites(w, 'turn');
    w.write(Buffer.from('a'));
    flush();
    expect(calls).toEqual([['a']]);
    w.write(Buffer.from('b'));
    w.write(Buffer.from('c'));
    expect(calls).toEqual([['a']]);
    await tick();
    await tick();
    expect(calls).toEqual([['a'], ['b', 'c']]);
    expect(w.writableCorked).toBe(0);
  });

  it('a window adjust leaves at once, other packets at the end of the turn', async () => {
    const { w, calls } = sink();
    const flush = coalesceWrites(w, 'turn');
    const protocol = {
      channelData: (_id: number, data: string) => w.write(Buffer.from(data)),
      channelWindowAdjust: (id: number, amount: number) =>
        w.write(Buffer.from(`adj ${id} ${amount}`)),
    };
    flushWindowAdjusts(protocol, flush);
    protocol.channelData(1, 'data');
    expect(calls).toEqual([]);
    protocol.channelWindowAdjust(1, 65536);
    expect(calls).toEqual([['data', 'adj 1 65536']]);
    protocol.channelData(1, 'more');
    await tick();
    await tick();
    expect(calls).toEqual([['data', 'adj 1 65536'], ['more']]);
  });
});
