/**
 * Timers for the session: `timer.start` commands in, `timer` events out when
 * they are due. The reducer decides when; this only keeps the clock.
 */
import { type Observable, Subject } from 'rxjs';
import type { Command } from '../domain/commands.js';
import type { Event } from '../domain/events.js';

export interface TimerDriver {
  readonly driver: (commands: Observable<Command>) => Observable<Event>;
  /** Cancels every pending timer. */
  readonly close: () => void;
}

export const makeTimerDriver = (now: () => number): TimerDriver => {
  const events = new Subject<Event>();
  const pending = new Map<string, NodeJS.Timeout>();
  return {
    driver: (commands) => {
      commands.subscribe({
        next: (c) => {
          if (c.kind !== 'timer.start') return;
          const old = pending.get(c.name);
          if (old !== undefined) clearTimeout(old);
          pending.set(
            c.name,
            setTimeout(() => {
              pending.delete(c.name);
              events.next({ kind: 'timer', t: now(), name: c.name });
            }, c.ms),
          );
        },
      });
      return events.asObservable();
    },
    close: () => {
      for (const timer of pending.values()) clearTimeout(timer);
      pending.clear();
    },
  };
};
