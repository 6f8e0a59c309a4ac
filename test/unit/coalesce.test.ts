import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { coalesceWrites } from '../../src/effects/coalesce-writes.js';

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
