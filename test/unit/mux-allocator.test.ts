import { fc, it as itProp } from '@fast-check/vitest';
import * as E from 'fp-ts/lib/Either.js';
import { describe, expect, it } from 'vitest';
import {
  allocateChannel,
  type ChannelAllocator,
  MAX_PROBES,
  newAllocator,
} from '../../src/domain/mux/channel-allocator.js';

const free = () => false;

const take = (a: ChannelAllocator, used: (ch: number) => boolean = free) => {
  const [next, r] = allocateChannel(a, used);
  return { next, ch: E.isRight(r) ? r.right : null, error: E.isLeft(r) ? r.left : null };
};

/** Upstream's next_channel, transcribed. */
const reference = (last: number, wrap: number, used: ReadonlySet<number>) => {
  let chani = last;
  for (let i = 0; i < 1024; i++) {
    chani += 1;
    if (chani > wrap) chani = 1;
    if (!used.has(chani)) return { last: chani, ch: chani };
  }
  return { last: chani, ch: null };
};

describe('channel allocator', () => {
  it('counts up from 1 and wraps back to 1 (never 0)', () => {
    let a = newAllocator(3);
    const got: (number | null)[] = [];
    for (let i = 0; i < 7; i++) {
      const r = take(a);
      got.push(r.ch);
      a = r.next;
    }
    expect(got).toEqual([1, 2, 3, 1, 2, 3, 1]);
  });

  it('skips ids in use', () => {
    const used = new Set([1, 2, 4]);
    const r = take(newAllocator(), (ch) => used.has(ch));
    expect(r.ch).toBe(3);
    expect(take(r.next, (ch) => used.has(ch)).ch).toBe(5);
  });

  it('gives up after 1024 probes: "too many open channels"', () => {
    const r = take(newAllocator(), (ch) => ch <= MAX_PROBES);
    expect(r.ch).toBeNull();
    expect(r.error).toBe('too many open channels');
    // The 1025th id would have been free: upstream does not look that far.
    expect(take(newAllocator(), (ch) => ch <= MAX_PROBES - 1).ch).toBe(MAX_PROBES);
  });

  it('gives up when every id of a small wrap is in use', () => {
    expect(take(newAllocator(4), () => true).error).toBe('too many open channels');
  });

  it('refuses a wrap outside 1..65535', () => {
    expect(() => newAllocator(0)).toThrow(RangeError);
    expect(() => newAllocator(65536)).toThrow(RangeError);
  });

  itProp.prop(
    [
      fc.integer({ min: 1, max: 65535 }),
      fc.nat(65535),
      fc.uniqueArray(fc.integer({ min: 1, max: 65535 }), { maxLength: 1100 }),
    ],
    { numRuns: 300 },
  )(
    'agrees with upstream, never hands out 0, an id in use or one above wrap',
    (wrap, start, usedList) => {
      const last = start % (wrap + 1);
      const used = new Set(usedList);
      const [next, r] = allocateChannel({ last, wrap }, (ch) => used.has(ch));
      const ref = reference(last, wrap, used);
      expect(next.last).toBe(ref.last);
      expect(E.isRight(r) ? r.right : null).toBe(ref.ch);
      if (E.isRight(r)) {
        expect(r.right).toBeGreaterThanOrEqual(1);
        expect(r.right).toBeLessThanOrEqual(wrap);
        expect(used.has(r.right)).toBe(false);
      }
    },
  );

  itProp.prop([fc.integer({ min: 1, max: 50 }), fc.array(fc.boolean(), { maxLength: 200 })])(
    'with frees and allocations interleaved, open ids stay unique',
    (wrap, ops) => {
      let a = newAllocator(wrap);
      const open: number[] = [];
      for (const alloc of ops) {
        if (alloc || open.length === 0) {
          const r = take(a, (ch) => open.includes(ch));
          a = r.next;
          if (open.length < wrap) expect(r.ch).not.toBeNull();
          if (r.ch !== null) open.push(r.ch);
        } else {
          open.shift();
        }
        expect(new Set(open).size).toBe(open.length);
      }
    },
  );
});
