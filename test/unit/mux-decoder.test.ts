import { fc, it as itProp } from '@fast-check/vitest';
import { describe, expect, it } from 'vitest';
import {
  BANNER,
  bufferedBytes,
  type DecoderState,
  feed,
  finish,
  initialDecoder,
  MAX_BANNER_JUNK,
} from '../../src/domain/mux/decoder.js';
import { HDR_LEN, type RawFrame, writeHeader } from '../../src/domain/mux/frame.js';

const MAX_STATE = HDR_LEN + 0xffff;

const raw = (channel: number, cmd: number, payload: Uint8Array): Buffer => {
  const b = Buffer.alloc(HDR_LEN + payload.length);
  writeHeader(b, 0, channel, cmd, payload.length);
  b.set(payload, HDR_LEN);
  return b;
};

interface Run {
  readonly frames: RawFrame[];
  readonly error: string | null;
  readonly state: DecoderState;
  readonly maxBuffered: number;
}

/** Feeds the chunks one by one, collecting frames, the first error and the peak state size. */
const run = (chunks: readonly Uint8Array[], expectBanner = false): Run => {
  let state = initialDecoder(expectBanner);
  const frames: RawFrame[] = [];
  let error: string | null = null;
  let maxBuffered = 0;
  for (const c of chunks) {
    const [next, out, err] = feed(state, c);
    state = next;
    frames.push(...out);
    maxBuffered = Math.max(maxBuffered, bufferedBytes(state));
    if (err !== null) {
      error = err;
      break;
    }
  }
  return { frames, error, state, maxBuffered };
};

/** Splits `b` at the given cut points (any values; taken modulo the length, sorted). */
const split = (b: Uint8Array, cuts: readonly number[]): Uint8Array[] => {
  const points = [...new Set(cuts.map((c) => (b.length === 0 ? 0 : c % (b.length + 1))))].sort(
    (x, y) => x - y,
  );
  const out: Uint8Array[] = [];
  let at = 0;
  for (const p of [...points, b.length]) {
    out.push(b.subarray(at, p));
    at = p;
  }
  return out;
};

const simple = (f: RawFrame) => ({
  channel: f.channel,
  cmd: f.cmd,
  payload: Buffer.from(f.payload).toString('hex'),
});

/**
 * The frames `got` as the frames they were cut from: TCP_DATA comes out in
 * pieces (one per chunk it spans), joined here by the lengths of `want`.
 * A piece that runs past its frame, or pieces of the wrong channel, show.
 */
const regroup = (got: readonly RawFrame[], want: readonly RawFrame[]): RawFrame[] => {
  const out: RawFrame[] = [];
  let i = 0;
  for (const w of want) {
    if (w.cmd !== 0x4206 || w.payload.length === 0) {
      if (i < got.length) out.push(got[i++]!);
      continue;
    }
    const parts: Uint8Array[] = [];
    let n = 0;
    while (n < w.payload.length && i < got.length) {
      const g = got[i++]!;
      expect([g.channel, g.cmd]).toEqual([w.channel, w.cmd]);
      expect(g.payload.length).toBeGreaterThan(0);
      parts.push(g.payload);
      n += g.payload.length;
    }
    out.push({ channel: w.channel, cmd: w.cmd, payload: Buffer.concat(parts) });
  }
  return [...out, ...got.slice(i)];
};

const arbRaw = fc.record({
  channel: fc.integer({ min: 0, max: 0xffff }),
  cmd: fc.oneof(fc.constant(0x4206), fc.integer({ min: 0, max: 0xffff })),
  payload: fc.oneof(
    { weight: 5, arbitrary: fc.uint8Array({ maxLength: 40 }) },
    {
      weight: 1,
      arbitrary: fc
        .tuple(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 1000, max: 0xffff }))
        .map(([b, n]) => new Uint8Array(n).fill(b)),
    },
  ),
});

describe('frame decoding', () => {
  it('cuts many frames out of one chunk, as views of it', () => {
    const chunk = Buffer.concat([
      raw(0, 0x4201, Buffer.from('chicken')),
      raw(3, 0x4206, Buffer.from('abc')),
      raw(3, 0x4205, new Uint8Array(0)),
    ]);
    const r = run([chunk]);
    expect(r.error).toBeNull();
    expect(r.frames.map(simple)).toEqual([
      { channel: 0, cmd: 0x4201, payload: Buffer.from('chicken').toString('hex') },
      { channel: 3, cmd: 0x4206, payload: '616263' },
      { channel: 3, cmd: 0x4205, payload: '' },
    ]);
    for (const f of r.frames) expect(f.payload.buffer).toBe(chunk.buffer);
    expect(r.state).toEqual({ phase: 'frames', partial: null, offset: chunk.length });
  });

  it('assembles a control frame split byte by byte', () => {
    const b = raw(0, 0x4201, Buffer.from('hello world'));
    const r = run([...b].map((x) => Uint8Array.of(x)));
    expect(r.frames.map(simple)).toEqual([
      { channel: 0, cmd: 0x4201, payload: Buffer.from('hello world').toString('hex') },
    ]);
  });

  it('passes on a split TCP_DATA frame piece by piece, as views of the chunks (no copy)', () => {
    const b = raw(0x1234, 0x4206, Buffer.from('hello world'));
    const chunks = [b.subarray(0, 3), b.subarray(3, 10), b.subarray(10, 12), b.subarray(12)];
    const fed = chunks.map((c) => new Uint8Array(c)); // each its own ArrayBuffer
    const r = run(fed);
    expect(r.frames.map(simple)).toEqual([
      { channel: 0x1234, cmd: 0x4206, payload: Buffer.from('he').toString('hex') },
      { channel: 0x1234, cmd: 0x4206, payload: Buffer.from('ll').toString('hex') },
      { channel: 0x1234, cmd: 0x4206, payload: Buffer.from('o world').toString('hex') },
    ]);
    for (const [i, f] of r.frames.entries()) expect(f.payload.buffer).toBe(fed[i + 1]!.buffer);
    // Only the header's first 3 bytes were ever held; payload bytes never are.
    expect(r.maxBuffered).toBe(3);
    const bytewise = run([...b].map((x) => Uint8Array.of(x)));
    expect(bytewise.frames).toHaveLength('hello world'.length);
    expect(Buffer.concat(bytewise.frames.map((f) => f.payload)).toString()).toBe('hello world');
  });

  itProp.prop([fc.array(arbRaw, { maxLength: 12 }), fc.array(fc.nat(), { maxLength: 30 })], {
    numRuns: 300,
  })('yields the same frames however the stream is split', (frames, cuts) => {
    const stream = Buffer.concat(frames.map((f) => raw(f.channel, f.cmd, f.payload)));
    const r = run(split(stream, cuts));
    expect(r.error).toBeNull();
    expect(regroup(r.frames, frames).map(simple)).toEqual(frames.map(simple));
    expect(r.state).toEqual({ phase: 'frames', partial: null, offset: stream.length });
    expect(finish(r.state)).toBeNull();
    expect(r.maxBuffered).toBeLessThanOrEqual(MAX_STATE);
  });

  it('fails on bad magic with a clear message, keeping the frames before it', () => {
    const good = raw(1, 0x4206, Buffer.from('ok'));
    const r = run([Buffer.concat([good, Buffer.from('XXjunk')])]);
    expect(r.frames).toHaveLength(1);
    expect(r.error).toMatch(
      /framing error at stream offset 10: expected magic "SS" \(53 53\), got 58 58/,
    );
    expect(r.state.phase).toBe('failed');
    // Failed for good: more input is refused with the same error.
    const [again, frames, err] = feed(r.state, raw(1, 0x4206, Buffer.from('x')));
    expect(again).toBe(r.state);
    expect(frames).toEqual([]);
    expect(err).toBe(r.error);
  });

  it('detects bad magic as soon as the first byte arrives', () => {
    const r = run([Buffer.from('S'), Buffer.from('x')]);
    expect(r.error).toMatch(/got 53 78/);
    expect(run([Buffer.from('Z')]).error).toMatch(/got 5a$|got 5a;/);
  });

  it('reports a stream that ends mid-frame', () => {
    const b = raw(1, 0x4206, Buffer.from('hello'));
    expect(finish(run([b.subarray(0, 3)]).state)).toMatch(/truncated.*3 of 8 bytes/);
    expect(finish(run([b.subarray(0, 10)]).state)).toMatch(/truncated.*10 of 13 bytes/);
    expect(finish(run([b]).state)).toBeNull();
  });
});

describe('banner', () => {
  const frame = raw(0, 0x4201, Buffer.from('chicken'));

  it('skips stray output without NULs, then reads frames that follow in the same chunk', () => {
    const r = run([Buffer.concat([Buffer.from('Welcome to host\r\n'), BANNER, frame])], true);
    expect(r.error).toBeNull();
    expect(r.frames.map(simple)).toEqual([
      simple({ channel: 0, cmd: 0x4201, payload: frame.subarray(8) }),
    ]);
  });

  it('skips everything up to the second NUL, as upstream reads byte by byte', () => {
    const r = run([Buffer.from('junk\0more junk\0SSHUTTLE0001'), frame], true);
    expect(r.error).toBeNull();
    expect(r.frames).toHaveLength(1);
  });

  itProp.prop([
    fc.string({ unit: 'binary-ascii' }).map((s) => s.replace(/\0/g, '')),
    fc.array(fc.nat()),
  ])('finds the banner after any NUL-free junk, however split', (junk, cuts) => {
    const stream = Buffer.concat([Buffer.from(junk, 'latin1'), BANNER, frame, frame]);
    const r = run(split(stream, cuts), true);
    expect(r.error).toBeNull();
    expect(r.frames).toHaveLength(2);
  });

  it('refuses a malformed banner, as soon as it goes wrong', () => {
    const r = run([Buffer.from('\0\0SSHUTTLE0002')], true);
    expect(r.error).toBe('expected server init string "SSHUTTLE0001"; got "SSHUTTLE0002"');
    expect(run([Buffer.from('\0\0SSH'), Buffer.from('X')], true).error).toMatch(/got "SSHX"/);
  });

  it('gives up on endless junk instead of waiting forever', () => {
    const junk = Buffer.alloc(64 * 1024, 0x41);
    let state = initialDecoder(true);
    let error: string | null = null;
    for (let i = 0; i * junk.length <= MAX_BANNER_JUNK + junk.length && error === null; i++) {
      [state, , error] = feed(state, junk);
    }
    expect(error).toMatch(/no sshuttle banner/);
  });

  it('reports a stream that ends before the banner', () => {
    expect(finish(run([Buffer.from('motd\0')], true).state)).toMatch(
      /before sending its sshuttle banner/,
    );
  });
});

describe('fuzz', () => {
  const check = (chunks: readonly Uint8Array[], banner: boolean): void => {
    const r = run(chunks, banner);
    expect(r.maxBuffered).toBeLessThanOrEqual(MAX_STATE);
    if (r.error !== null) expect(r.state.phase).toBe('failed');
    // At the end the stream is either clean, broken, or cut inside a frame: always a verdict.
    const verdict = finish(r.state);
    expect(verdict === null || verdict.length > 0).toBe(true);
  };

  itProp.prop([fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 20 }), fc.boolean()], {
    numRuns: 500,
  })('random bytes: never throws, always ends, bounded state', (chunks, banner) => {
    check(chunks, banner);
  });

  itProp.prop(
    [
      fc.array(arbRaw, { minLength: 1, maxLength: 8 }),
      fc.array(
        fc.record({
          at: fc.nat(),
          op: fc.constantFrom('flip', 'insert', 'delete'),
          byte: fc.nat(255),
        }),
        { minLength: 1, maxLength: 4 },
      ),
      fc.array(fc.nat(), { maxLength: 20 }),
    ],
    { numRuns: 500 },
  )('mutated valid streams: never throws, always ends, bounded state', (frames, edits, cuts) => {
    let bytes = Buffer.concat(frames.map((f) => raw(f.channel, f.cmd, f.payload)));
    for (const e of edits) {
      const at = e.at % (bytes.length + 1);
      if (e.op === 'flip' && at < bytes.length) bytes[at] = (bytes[at]! ^ (e.byte || 1)) & 0xff;
      if (e.op === 'insert') {
        bytes = Buffer.concat([bytes.subarray(0, at), Uint8Array.of(e.byte), bytes.subarray(at)]);
      }
      if (e.op === 'delete') bytes = Buffer.concat([bytes.subarray(0, at), bytes.subarray(at + 1)]);
    }
    check(split(bytes, cuts), false);
  });

  it('a header announcing 65535 bytes that never come holds at most one frame', () => {
    const hdr = Buffer.alloc(8);
    writeHeader(hdr, 0, 1, 0x4206, 0xffff);
    const chunks = [hdr, ...Array.from({ length: 70 }, () => Buffer.alloc(1000, 1))];
    const r = run(chunks);
    // 65535 payload bytes complete the frame (in pieces, as they came); the
    // remaining 4465 are the start of a bad header.
    expect(r.frames.reduce((n, f) => n + f.payload.length, 0)).toBe(0xffff);
    expect(r.frames.every((f) => f.channel === 1 && f.cmd === 0x4206)).toBe(true);
    expect(r.maxBuffered).toBeLessThanOrEqual(MAX_STATE);
    expect(r.error).toMatch(/framing error/);
  });
});
