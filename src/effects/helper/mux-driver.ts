/**
 * Runs the pure mux reducer (either role) over a byte pipe: the helper's
 * stdin/stdout, an ssh exec channel, or an external ssh's stdio.
 *
 * The driver owns the pipe: it feeds what it reads to the reducer
 * (`pipeData`, one event per chunk), gathers the frames of every step of one
 * event-loop turn and writes them in one go at its end (copied into a pooled
 * slab, or as views with `writev`, see `copyWrites`), so an ssh2 channel
 * sends one SSH packet for many small frames rather than one per frame:
 * a burst of datagrams or of small writes costs one encryption, not one
 * each. It reports flushed bytes from the write callbacks and pauses
 * reading when the reducer asks. Every other command goes to the role's
 * handler.
 *
 * Events that arrive while a step's commands are being carried out (a
 * handler's stream callback firing synchronously) are queued and folded
 * after it, so the reducer never sees a nested event.
 */
import type { Readable, Writable } from 'node:stream';
import {
  initMux,
  type MuxCommand,
  type MuxConfig,
  type MuxEvent,
  type MuxState,
  muxReduce,
} from '../../domain/mux/index.js';
import { makeSlabPool } from './slab-pool.js';

export interface MuxPipe {
  readonly readable: Readable;
  readonly writable: Writable;
}

/** Commands for the role: everything but pipe writes and pipe pause/resume. */
export type RoleCommand = Exclude<MuxCommand, { kind: 'write' | 'pausePipe' | 'resumePipe' }>;

export interface MuxDriverOptions {
  readonly config: MuxConfig;
  readonly pipe: MuxPipe;
  readonly onCommand: (c: RoleCommand) => void;
  /** Milliseconds on a monotonic clock. */
  readonly now: () => number;
  /** Bytes to write before the mux's first frames (the helper upload). */
  readonly preamble?: Uint8Array;
  /** Tick period for the reducer's PING watchdog; 0 = no timer. */
  readonly tickMs?: number;
  /**
   * Copy frames into pooled slabs as they are made (the client: its local
   * sockets read into one shared buffer, so no step may leave a view of a
   * read behind). Otherwise frames are gathered as views and written with
   * `writev` (the helper, whose target sockets read into their own buffers).
   */
  readonly copyWrites?: boolean;
}

export interface MuxDriver {
  readonly dispatch: (e: MuxEvent) => void;
  readonly state: () => MuxState;
  /** Writes the frames gathered so far now (before the caller ends the pipe). */
  readonly flush: () => void;
  /** Flushes, then stops the timer and the pipe listeners (the pipe itself is the caller's). */
  readonly stop: () => void;
  /**
   * Whether a `localData` event dispatched now is folded at once and its
   * bytes copied before `dispatch` returns (copying writes, not inside a
   * step): a `transient` chunk may then be a view of a shared read buffer.
   */
  readonly takesTransient: () => boolean;
}

/** Gathered bytes that are written at once rather than at the end of the turn. */
const FLUSH_AT = 256 * 1024;
/** A copying driver's slab: a flush's worth plus room for the frame that crosses it. */
const SLAB_BYTES = FLUSH_AT + 64 * 1024 + 16;
/** Free slabs kept: two in flight (the pipe cap is one flush) and spares. */
const SLABS_KEPT = 4;

const hasWritev = (w: Writable): boolean =>
  typeof (w as unknown as { _writev?: unknown })._writev === 'function';

export const startMuxDriver = (opts: MuxDriverOptions): MuxDriver => {
  const { pipe, onCommand } = opts;
  const [s0, first] = initMux(opts.config, opts.now());
  let state = s0;
  const queue: MuxEvent[] = [];
  let busy = false;
  let stopped = false;
  const writev = hasWritev(pipe.writable);
  const slabs = opts.copyWrites === true ? makeSlabPool(SLAB_BYTES, SLABS_KEPT) : null;

  const pipeDone = (bytes: number, slab: Buffer | null) => (err?: Error | null) => {
    if (slab !== null) slabs?.give(slab);
    if (!err) dispatch({ kind: 'pipeFlushed', bytes });
  };
  const closed = (): boolean => pipe.writable.destroyed || pipe.writable.writableEnded;

  // By reference: the frames of this turn as views, written with `writev`
  // (or concatenated where the stream has none).
  let gathered: Uint8Array[] = [];
  const writeGathered = (bytes: number): void => {
    const chunks = gathered;
    gathered = [];
    if (closed()) return;
    const done = pipeDone(bytes, null);
    if (chunks.length === 1) {
      pipe.writable.write(chunks[0]!, done);
    } else if (writev) {
      pipe.writable.cork();
      const last = chunks.length - 1;
      for (let i = 0; i < last; i++) pipe.writable.write(chunks[i]!);
      pipe.writable.write(chunks[last]!, done);
      pipe.writable.uncork();
    } else {
      pipe.writable.write(Buffer.concat(chunks as Uint8Array[], bytes), done);
    }
  };

  // By copy: the frames are copied into a pooled slab as they are made, so
  // no view of a caller's chunk outlives the step that made it.
  let slab: Buffer | null = null;
  const writeSlab = (bytes: number): void => {
    const s = slab;
    slab = null;
    if (s === null) return;
    if (closed()) slabs?.give(s);
    else pipe.writable.write(s.subarray(0, bytes), pipeDone(bytes, s));
  };

  // The bytes of this turn, written by `flush` at its end.
  let gatheredBytes = 0;
  let flushScheduled = false;
  const flush = (): void => {
    flushScheduled = false;
    const bytes = gatheredBytes;
    if (bytes === 0) return;
    gatheredBytes = 0;
    if (slabs === null) writeGathered(bytes);
    else writeSlab(bytes);
  };
  const write = (chunks: readonly Uint8Array[], bytes: number): void => {
    if (slabs === null) {
      for (const c of chunks) gathered.push(c);
      gatheredBytes += bytes;
    } else {
      for (const c of chunks) {
        if (slab !== null && slab.length - gatheredBytes < c.length) flush();
        if (slab === null) slab = slabs.take(c.length);
        slab.set(c, gatheredBytes);
        gatheredBytes += c.length;
      }
    }
    if (gatheredBytes >= FLUSH_AT) flush();
    else if (!flushScheduled && gatheredBytes > 0) {
      flushScheduled = true;
      setImmediate(flush);
    }
  };

  const run = (cmds: readonly MuxCommand[]): void => {
    for (const c of cmds) {
      switch (c.kind) {
        case 'write':
          write(c.chunks, c.bytes);
          break;
        case 'pausePipe':
          pipe.readable.pause();
          break;
        case 'resumePipe':
          pipe.readable.resume();
          break;
        default:
          onCommand(c);
      }
    }
  };

  const dispatch = (e: MuxEvent): void => {
    if (stopped) return;
    queue.push(e);
    if (busy) return;
    busy = true;
    try {
      for (let next = queue.shift(); next !== undefined; next = queue.shift()) {
        const [s, cmds] = muxReduce(state, next);
        state = s;
        run(cmds);
      }
    } finally {
      queue.length = 0;
      busy = false;
    }
  };

  const onData = (bytes: Buffer): void => dispatch({ kind: 'pipeData', bytes });
  const onEnd = (): void => dispatch({ kind: 'pipeEnd' });
  pipe.readable.on('data', onData);
  pipe.readable.on('end', onEnd);
  pipe.readable.on('close', onEnd);
  pipe.writable.on('error', () => {});

  const tickMs = opts.tickMs ?? 1000;
  const timer =
    tickMs > 0 ? setInterval(() => dispatch({ kind: 'tick', t: opts.now() }), tickMs) : null;
  timer?.unref();

  busy = true;
  try {
    if (opts.preamble !== undefined && opts.preamble.length > 0) {
      pipe.writable.write(opts.preamble);
    }
    run(first);
  } finally {
    busy = false;
  }
  // Anything queued while the first commands ran.
  const pending = queue.splice(0);
  for (const e of pending) dispatch(e);

  return {
    dispatch,
    state: () => state,
    flush,
    takesTransient: () => slabs !== null && !busy && !stopped,
    stop: () => {
      flush();
      stopped = true;
      if (timer !== null) clearInterval(timer);
      pipe.readable.off('data', onData);
      pipe.readable.off('end', onEnd);
      pipe.readable.off('close', onEnd);
    },
  };
};
