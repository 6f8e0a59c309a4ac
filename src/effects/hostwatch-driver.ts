/**
 * Runs the pure hostwatch reducer (domain/hostwatch.ts) with a job runner:
 * ticks every second, starts the jobs the reducer asks for, feeds their
 * results back, and hands every batch of new names to `emit`. Where the
 * jobs run is the caller's: the remote helper runs them on the server
 * itself, the direct transport as read-only commands over ssh exec.
 */
import type { HostName } from '../domain/hosts-file.js';
import {
  type HostJob,
  type HostwatchCommand,
  type HostwatchEvent,
  type HostwatchLimits,
  type HostwatchState,
  reduceHostwatch,
  startHostwatch,
} from '../domain/hostwatch.js';

/** What one job found: name/address pairs, and addresses to look up in reverse. */
export interface JobResult {
  readonly found: readonly HostName[];
  readonly seen: readonly string[];
}

export const NOTHING_FOUND: JobResult = { found: [], seen: [] };

export interface Hostwatch {
  readonly stop: () => void;
}

const withTimeout = <T>(p: Promise<T>, ms: number, fallback: T): Promise<T> =>
  new Promise((resolve) => {
    const timer = setTimeout(() => resolve(fallback), ms);
    p.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      () => {
        clearTimeout(timer);
        resolve(fallback);
      },
    );
  });

export const startHostwatchDriver = (opts: {
  readonly seeds: readonly string[];
  readonly autoHosts: boolean;
  /** The server's own name (looked up with -H), or null. */
  readonly hostname: string | null;
  readonly runJob: (job: HostJob) => Promise<JobResult>;
  readonly emit: (entries: readonly HostName[]) => void;
  readonly now: () => number;
  readonly limits?: HostwatchLimits;
  readonly tickMs?: number;
  /** A job that takes longer counts as finished with nothing (ms). */
  readonly jobTimeoutMs?: number;
}): Hostwatch => {
  let state: HostwatchState = startHostwatch({
    seeds: opts.seeds,
    autoHosts: opts.autoHosts,
    hostname: opts.hostname,
    ...(opts.limits === undefined ? {} : { limits: opts.limits }),
  });
  let stopped = false;
  const dispatch = (e: HostwatchEvent): void => {
    if (stopped) return;
    const [next, cmds] = reduceHostwatch(state, e);
    state = next;
    for (const c of cmds) execute(c);
  };
  const execute = (c: HostwatchCommand): void => {
    if (c.kind === 'emit') {
      opts.emit(c.entries);
      return;
    }
    void withTimeout(
      opts.runJob(c.job).catch(() => NOTHING_FOUND),
      opts.jobTimeoutMs ?? 15_000,
      NOTHING_FOUND,
    ).then((r) => dispatch({ kind: 'done', key: c.key, found: r.found, seen: r.seen }));
  };
  dispatch({ kind: 'tick', t: opts.now() });
  const timer = setInterval(() => dispatch({ kind: 'tick', t: opts.now() }), opts.tickMs ?? 1000);
  timer.unref();
  return {
    stop: () => {
      stopped = true;
      clearInterval(timer);
    },
  };
};
