import { fc, it as itProp } from '@fast-check/vitest';
import { describe, expect, it } from 'vitest';
import { IntMap } from '../../src/domain/int-map.js';

type Op = { readonly set: boolean; readonly key: number; readonly value: string };

// Keys from a small range (collisions, deletes of present keys) and a wide
// one (several trie levels, growth upward).
const key = fc.oneof(
  fc.nat(70),
  fc.nat(2_000_000),
  fc.constantFrom(0, 31, 32, 1023, 1024, 2 ** 40),
);
const op: fc.Arbitrary<Op> = fc.record({ set: fc.boolean(), key, value: fc.string() });

const sortedEntries = (m: Map<number, string>): [number, string][] =>
  [...m.entries()].sort((a, b) => a[0] - b[0]);

describe('IntMap, a persistent map keyed by integers', () => {
  itProp.prop([fc.array(op, { maxLength: 200 })])(
    'behaves as a Map after any sequence of sets and deletes (iterated in key order)',
    (ops) => {
      const model = new Map<number, string>();
      let m = IntMap.empty<string>();
      for (const o of ops) {
        if (o.set) {
          model.set(o.key, o.value);
          m = m.set(o.key, o.value);
        } else {
          model.delete(o.key);
          m = m.delete(o.key);
        }
        expect(m.size).toBe(model.size);
        expect(m.get(o.key)).toBe(model.get(o.key));
        expect(m.has(o.key)).toBe(model.has(o.key));
        expect(m.first()).toEqual(sortedEntries(model)[0]);
      }
      expect([...m]).toEqual(sortedEntries(model));
      expect([...m.keys()]).toEqual(sortedEntries(model).map(([k]) => k));
      expect([...m.values()]).toEqual(sortedEntries(model).map(([, v]) => v));
      for (const k of [0, 1, 31, 32, 33, 1024, 2_000_001, 2 ** 41]) {
        expect(m.get(k)).toBe(model.get(k));
      }
    },
  );

  itProp.prop([fc.array(op, { maxLength: 100 }), fc.array(op, { maxLength: 100 })])(
    'every earlier version stays as it was (persistence)',
    (first, second) => {
      let m = IntMap.empty<string>();
      for (const o of first) m = o.set ? m.set(o.key, o.value) : m.delete(o.key);
      const before = [...m];
      let later = m;
      for (const o of second) later = o.set ? later.set(o.key, o.value) : later.delete(o.key);
      expect([...m]).toEqual(before);
      expect(m.size).toBe(before.length);
    },
  );

  it('drops emptied subtrees and returns to the shared empty map', () => {
    let m = IntMap.empty<string>();
    for (let i = 0; i < 5000; i++) m = m.set(i, `v${i}`).delete(i - 1);
    expect(m.size).toBe(1);
    expect([...m]).toEqual([[4999, 'v4999']]);
    expect(m.delete(4999)).toBe(IntMap.empty());
    expect(m.delete(12)).toBe(m);
  });

  it('builds from entries and works as a ReadonlyMap', () => {
    const m: ReadonlyMap<number, string> = IntMap.of([
      [40, 'b'],
      [3, 'a'],
      [40, 'c'],
    ]);
    const seen: string[] = [];
    m.forEach((v, k) => {
      seen.push(`${k}=${v}`);
    });
    expect(seen).toEqual(['3=a', '40=c']);
    expect(m.size).toBe(2);
  });

  it('refuses keys that are not non-negative safe integers (a bug in the caller)', () => {
    const m = IntMap.empty<string>();
    expect(() => m.set(-1, 'x')).toThrow(RangeError);
    expect(() => m.set(1.5, 'x')).toThrow(RangeError);
    expect(m.get(-1)).toBeUndefined();
    expect(m.get(Number.NaN)).toBeUndefined();
  });
});
