/**
 * The Cycle.js loop for rxjs: driver events are merged into one stream,
 * folded by a pure reducer, and the commands it returns are routed back to
 * the drivers.
 *
 * Feedback is trampolined: an event a driver emits while a command is being
 * delivered is queued and folded after the current one, so the reducer never
 * sees a nested event and the recorded order is the order it folded.
 */
import { BehaviorSubject, merge, type Observable, Subject, type Subscription } from 'rxjs';

/** A driver: commands in, events out. It holds no policy. */
export type Driver<C, E> = (commands: Observable<C>) => Observable<E>;

export type Reducer<S, E, C> = (state: S, event: E) => readonly [S, readonly C[]];

/** Observes every fold (the recorder, the status line, tests). */
export type FoldObserver<S, E, C> = (event: E, state: S, commands: readonly C[]) => void;

export interface Running<S> {
  /** The state after every fold. */
  readonly state$: BehaviorSubject<S>;
  /** Stops delivering events and completes every driver's command stream. */
  readonly dispose: () => void;
}

/**
 * Wires `drivers` around `reducer`. `route(command)` names the driver that
 * gets a command; commands for no driver are dropped.
 */
export const run = <S, E, C, K extends string>(opts: {
  readonly reducer: Reducer<S, E, C>;
  readonly initial: S;
  readonly drivers: Readonly<Record<K, Driver<C, E>>>;
  readonly route: (command: C) => K | null;
  readonly observe?: FoldObserver<S, E, C>;
  /** Events to fold first, before any driver's. */
  readonly seed?: readonly E[];
}): Running<S> => {
  const sinks = new Map<K, Subject<C>>();
  for (const name of Object.keys(opts.drivers) as K[]) sinks.set(name, new Subject<C>());
  const state$ = new BehaviorSubject(opts.initial);
  let state = opts.initial;
  const queue: E[] = [];
  let folding = false;
  let disposed = false;

  const fold = (event: E): void => {
    queue.push(event);
    if (folding) return;
    folding = true;
    try {
      for (let next = queue.shift(); next !== undefined; next = queue.shift()) {
        if (disposed) break;
        const [s, commands] = opts.reducer(state, next);
        state = s;
        opts.observe?.(next, s, commands);
        state$.next(s);
        for (const c of commands) {
          const name = opts.route(c);
          if (name !== null) sinks.get(name)?.next(c);
        }
      }
    } finally {
      queue.length = 0;
      folding = false;
    }
  };

  const sources = (Object.entries(opts.drivers) as [K, Driver<C, E>][]).map(([name, driver]) =>
    driver((sinks.get(name) as Subject<C>).asObservable()),
  );
  const sub: Subscription = merge(...sources).subscribe({ next: fold });
  for (const e of opts.seed ?? []) fold(e);

  return {
    state$,
    dispose: () => {
      disposed = true;
      sub.unsubscribe();
      for (const s of sinks.values()) s.complete();
      state$.complete();
    },
  };
};
