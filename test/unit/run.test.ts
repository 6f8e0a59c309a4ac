import { type Observable, Subject } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { run } from '../../src/streams/run.js';

type E = { n: number; from: string };
type C = { to: 'echo' | 'log'; n: number };

describe('run(main, drivers)', () => {
  it('folds every driver event and routes each command to its driver', () => {
    const source = new Subject<E>();
    const logged: number[] = [];
    const result = run<number, E, C, 'src' | 'echo' | 'log'>({
      reducer: (sum, e) => [sum + e.n, e.from === 'src' ? [{ to: 'log', n: e.n }] : []],
      initial: 0,
      drivers: {
        src: () => source,
        echo: () => new Subject<E>(),
        log: (cmds: Observable<C>) => {
          cmds.subscribe((c) => logged.push(c.n));
          return new Subject<E>();
        },
      },
      route: (c) => c.to,
    });
    source.next({ n: 2, from: 'src' });
    source.next({ n: 3, from: 'src' });
    expect(result.state$.value).toBe(5);
    expect(logged).toEqual([2, 3]);
    result.dispose();
  });

  it('trampolines synchronous feedback: the reducer never sees a nested event', () => {
    const source = new Subject<E>();
    const seen: string[] = [];
    let depth = 0;
    const result = run<number, E, C, 'src' | 'echo'>({
      reducer: (s, e) => {
        depth += 1;
        expect(depth).toBe(1);
        seen.push(`${e.from}${e.n}`);
        depth -= 1;
        // Two commands: the echo driver answers the first synchronously.
        return [
          s + 1,
          e.from === 'src'
            ? [
                { to: 'echo', n: e.n },
                { to: 'echo', n: e.n + 100 },
              ]
            : [],
        ];
      },
      initial: 0,
      drivers: {
        src: () => source,
        echo: (cmds: Observable<C>) => {
          const out = new Subject<E>();
          cmds.subscribe((c) => out.next({ n: c.n, from: 'echo' }));
          return out;
        },
      },
      route: (c) => (c.to === 'echo' ? 'echo' : null),
    });
    source.next({ n: 1, from: 'src' });
    expect(seen).toEqual(['src1', 'echo1', 'echo101']);
    result.dispose();
  });

  it('folds seed events before any driver event and reports each fold to the observer', () => {
    const folds: number[] = [];
    const result = run<number, E, C, 'src'>({
      reducer: (s, e) => [s * 10 + e.n, []],
      initial: 0,
      drivers: { src: () => new Subject<E>() },
      route: () => null,
      seed: [
        { n: 1, from: 'seed' },
        { n: 2, from: 'seed' },
      ],
      observe: (_e, s) => folds.push(s),
    });
    expect(folds).toEqual([1, 12]);
    result.dispose();
  });
});
