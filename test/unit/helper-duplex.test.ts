import { describe, expect, it } from 'vitest';
import type { MuxEvent } from '../../src/domain/mux/index.js';
import { ChannelDuplex } from '../../src/effects/helper/channel-duplex.js';

const tick = () => new Promise((r) => setImmediate(r));

const make = (opts: { readableHighWaterMark?: number } = {}) => {
  const seen: MuxEvent[] = [];
  const d = new ChannelDuplex({ channel: 5, dispatch: (e) => seen.push(e), ...opts });
  d.on('error', () => {});
  return { d, seen };
};

describe('ChannelDuplex (a mux channel as the remote side of a connection)', () => {
  it('one localData event per written chunk, localEof on end', async () => {
    const { d, seen } = make();
    const a = Buffer.from('abc');
    const b = Buffer.alloc(70_000, 1);
    d.write(a);
    d.write(b);
    d.end();
    await tick();
    expect(seen.map((e) => e.kind)).toEqual(['localData', 'localData', 'localEof']);
    expect(seen[0]).toEqual({ kind: 'localData', channel: 5, bytes: a, transient: false });
    expect(seen[1]).toEqual({ kind: 'localData', channel: 5, bytes: b, transient: false });
  });

  it('holds the write callback while paused, so write() backs up and drain waits for resume', async () => {
    const { d } = make();
    d.pauseLocal();
    let done = 0;
    d.write(Buffer.alloc(10), () => done++);
    const ok = d.write(Buffer.alloc(200 * 1024), () => done++);
    await tick();
    expect(done).toBe(0);
    expect(ok).toBe(false);
    let drained = false;
    d.once('drain', () => {
      drained = true;
    });
    d.resumeLocal();
    await tick();
    await tick();
    expect(done).toBe(2);
    expect(drained).toBe(true);
  });

  it('delivered bytes count as drained while the reader keeps up', async () => {
    const { d, seen } = make();
    const got: Buffer[] = [];
    d.on('data', (b: Buffer) => got.push(b));
    d.deliver(Buffer.from('hello'));
    await tick();
    expect(Buffer.concat(got).toString()).toBe('hello');
    expect(seen).toContainEqual({ kind: 'localDrained', channel: 5, bytes: 5 });
  });

  it('a paused reader: nothing drained until it reads again (push() said no)', async () => {
    const { d, seen } = make({ readableHighWaterMark: 8 });
    d.pause();
    d.deliver(Buffer.alloc(6));
    d.deliver(Buffer.alloc(6));
    await tick();
    const drained = () =>
      seen
        .filter((e) => e.kind === 'localDrained')
        .reduce((n, e) => n + (e as { bytes: number }).bytes, 0);
    // The first push fitted under the mark; the second did not.
    expect(drained()).toBe(6);
    let got = 0;
    d.on('data', (b: Buffer) => {
      got += b.length;
    });
    d.resume();
    await tick();
    await tick();
    expect(got).toBe(12);
    expect(drained()).toBe(12);
  });

  it('endLocal ends the readable side; closeLocal destroys only after the reader has everything', async () => {
    const { d, seen } = make();
    d.pause();
    d.deliver(Buffer.from('tail'));
    d.endLocal();
    d.closeLocal();
    await tick();
    expect(d.destroyed).toBe(false);
    const got: Buffer[] = [];
    let closed = false;
    d.on('data', (b: Buffer) => got.push(b));
    d.on('close', () => {
      closed = true;
    });
    d.resume();
    await tick();
    await tick();
    expect(Buffer.concat(got).toString()).toBe('tail');
    expect(closed).toBe(true);
    // The mux closed it: no abort goes back.
    expect(seen.some((e) => e.kind === 'localAbort')).toBe(false);
  });

  it('destroy by the local side aborts the channel once; writes after stopLocalRead are dropped', async () => {
    const { d, seen } = make();
    d.stopLocalRead();
    let cb = false;
    d.write(Buffer.from('x'), () => {
      cb = true;
    });
    await tick();
    expect(cb).toBe(true);
    expect(seen.some((e) => e.kind === 'localData')).toBe(false);
    d.destroy();
    d.destroy();
    await tick();
    expect(seen.filter((e) => e.kind === 'localAbort')).toEqual([
      { kind: 'localAbort', channel: 5 },
    ]);
  });

  it('abortLocal (session over) destroys with an error and sends nothing back', async () => {
    const { d, seen } = make();
    let err: Error | null = null;
    d.on('error', (e) => {
      err = e;
    });
    d.abortLocal('the peer closed the mux stream');
    await tick();
    expect(d.destroyed).toBe(true);
    expect(String(err)).toMatch(/peer closed/);
    expect(seen).toEqual([]);
  });

  it('marks chunks of a shared read buffer transient, and takes them now only when nothing waits', async () => {
    const shared = Buffer.alloc(64);
    const seen: MuxEvent[] = [];
    let muxFree = true;
    const d = new ChannelDuplex({
      channel: 7,
      dispatch: (e) => seen.push(e),
      isTransient: (c) => c.buffer === shared.buffer,
      muxTakesTransient: () => muxFree,
    });
    expect(d.takesNow()).toBe(true);
    d.write(shared.subarray(0, 10));
    d.write(Buffer.from('own'));
    expect(seen.map((e) => (e.kind === 'localData' ? e.transient : null))).toEqual([true, false]);
    // The mux inside a step (or gathering views) cannot take a transient chunk.
    muxFree = false;
    expect(d.takesNow()).toBe(false);
    muxFree = true;
    // Paused: the callback is held and later writes wait in the stream.
    d.pauseLocal();
    expect(d.takesNow()).toBe(false);
    d.write(Buffer.alloc(10));
    d.write(Buffer.alloc(10));
    d.resumeLocal();
    expect(d.takesNow()).toBe(d.writableLength === 0);
    await tick();
    expect(d.takesNow()).toBe(true);
    d.destroy();
    expect(d.takesNow()).toBe(false);
  });
});
