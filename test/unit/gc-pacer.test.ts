import { fc, it as itProp } from '@fast-check/vitest';
import { describe, expect, it } from 'vitest';
import { type Gc, makeGcPacer, youngGc } from '../../src/effects/gc-pacer.js';

describe('the GC pacer', () => {
  itProp.prop([fc.integer({ min: 1, max: 5000 }), fc.array(fc.nat(3000), { maxLength: 300 })])(
    'collects once each time `every` more bytes have been relayed',
    (every, chunks) => {
      const calls: string[] = [];
      const pace = makeGcPacer(every, (o) => calls.push(o.type));
      let since = 0;
      let expected = 0;
      for (const n of chunks) {
        pace(n);
        since += n;
        if (since >= every) {
          expected++;
          since = 0;
        }
        expect(calls.length).toBe(expected);
      }
      expect(calls.every((t) => t === 'minor')).toBe(true);
    },
  );

  it('does nothing when disabled', () => {
    let n = 0;
    const pace = makeGcPacer(0, () => n++);
    for (let i = 0; i < 100; i++) pace(1 << 20);
    expect(n).toBe(0);
  });

  it("gets V8's collector without leaving gc() exposed to other code", () => {
    const gc: Gc | null = youngGc();
    expect(typeof gc).toBe('function');
    expect(() => gc?.({ type: 'minor' })).not.toThrow();
    expect((globalThis as { gc?: unknown }).gc).toBeUndefined();
  });
});
